//! Core's REST interface (`src/rest.cpp`), the subset third-party software uses: blocks,
//! headers, block hash by height, chain info, mempool and transactions. Read-only, no auth.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Network, Txid};
use serde_json::{json, Value};

use super::json::{self, TxContext};
use super::methods::{
    block_json, chain_info_json, mempool_info_json, mempool_txids_json, verbose_mempool,
};
use super::AppState;
use crate::ChainSource;

/// Most headers one request returns, as in Core.
const MAX_REST_HEADERS: u32 = 2_000;
/// Headers returned when `count` is not given.
const DEFAULT_REST_HEADERS: u32 = 5;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Bin,
    Hex,
    Json,
}

fn split_format(path: &str) -> Option<(&str, Format)> {
    let (stem, ext) = path.rsplit_once('.')?;
    let format = match ext {
        "bin" => Format::Bin,
        "hex" => Format::Hex,
        "json" => Format::Json,
        _ => return None,
    };
    Some((stem, format))
}

/// A REST failure: Core answers with a status and a plain-text line.
struct RestError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let mut text = self.message;
        text.push_str("\r\n");
        (self.status, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> RestError {
    RestError {
        status,
        message: message.into(),
    }
}

fn format_not_found() -> RestError {
    error(
        StatusCode::NOT_FOUND,
        "output format not found (available: .bin, .hex, .json)",
    )
}

fn bytes_response(
    format: Format,
    bytes: Vec<u8>,
    json_value: impl FnOnce() -> Result<Value, RestError>,
) -> Response {
    match format {
        Format::Bin => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        Format::Hex => {
            let mut text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            text.push('\n');
            ([(header::CONTENT_TYPE, "text/plain")], text).into_response()
        }
        Format::Json => match json_value() {
            Ok(v) => json_body(&v),
            Err(e) => e.into_response(),
        },
    }
}

fn json_body(v: &Value) -> Response {
    let mut text = v.to_string();
    text.push('\n');
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn parse_hash<H: std::str::FromStr>(s: &str) -> Result<H, RestError> {
    if s.len() != 64 {
        return Err(error(StatusCode::BAD_REQUEST, format!("Invalid hash: {s}")));
    }
    s.parse()
        .map_err(|_| error(StatusCode::BAD_REQUEST, format!("Invalid hash: {s}")))
}

fn internal(e: impl std::fmt::Display) -> RestError {
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

pub(super) async fn handle(
    State(state): State<AppState>,
    Path(path): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let ctx = state.ctx;
    tokio::task::spawn_blocking(move || {
        route(&ctx, &path, &query).unwrap_or_else(IntoResponse::into_response)
    })
    .await
    .unwrap_or_else(|e| internal(e).into_response())
}

fn route(
    ctx: &super::RpcContext,
    path: &str,
    query: &std::collections::HashMap<String, String>,
) -> Result<Response, RestError> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["block", "notxdetails", rest] => block(ctx, rest, 1),
        ["block", rest] => block(ctx, rest, 2),
        ["headers", count, rest] => {
            let count = count.parse::<u32>().ok();
            headers(ctx, rest, count)
        }
        ["headers", rest] => {
            let count = match query.get("count") {
                Some(c) => c.parse::<u32>().ok(),
                None => Some(DEFAULT_REST_HEADERS),
            };
            headers(ctx, rest, count)
        }
        ["blockhashbyheight", rest] => block_hash_by_height(ctx, rest),
        ["chaininfo.json"] => Ok(json_body(
            &chain_info_json(ctx).map_err(|e| internal(e.message))?,
        )),
        ["chaininfo", ..] => Err(error(
            StatusCode::NOT_FOUND,
            "output format not found (available: json)",
        )),
        ["mempool", "info.json"] => Ok(json_body(&mempool_info_json(ctx))),
        ["mempool", "contents.json"] => {
            let verbose = query.get("verbose").map(String::as_str) != Some("false");
            if verbose {
                Ok(json_body(
                    &verbose_mempool(ctx).map_err(|e| internal(e.message))?,
                ))
            } else {
                Ok(json_body(&mempool_txids_json(ctx)))
            }
        }
        ["mempool", ..] => Err(error(
            StatusCode::NOT_FOUND,
            "output format not found (available: json)",
        )),
        ["tx", rest] => tx(ctx, rest),
        _ => Err(error(StatusCode::NOT_FOUND, "")),
    }
}

fn block(ctx: &super::RpcContext, rest: &str, verbosity: u8) -> Result<Response, RestError> {
    let (hash, format) = split_format(rest).ok_or_else(format_not_found)?;
    let hash: BlockHash = parse_hash(hash)?;
    let bytes = ctx
        .node
        .block_bytes(&hash)
        .map_err(internal)?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("{hash} not found")))?;
    Ok(bytes_response(format, bytes, || {
        block_json(ctx, &hash, verbosity).map_err(|e| internal(e.message))
    }))
}

fn headers(ctx: &super::RpcContext, rest: &str, count: Option<u32>) -> Result<Response, RestError> {
    let (hash, format) = split_format(rest).ok_or_else(format_not_found)?;
    let count = count
        .filter(|c| (1..=MAX_REST_HEADERS).contains(c))
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                format!(
                    "Header count is invalid or out of acceptable range (1-{MAX_REST_HEADERS})"
                ),
            )
        })?;
    let hash: BlockHash = parse_hash(hash)?;
    let mut list = Vec::new();
    if let Some(entry) = ctx.node.header(&hash).map_err(internal)? {
        if entry.in_active_chain {
            list = ctx.node.headers(entry.height, count).map_err(internal)?;
        }
    }
    let bytes: Vec<u8> = list
        .iter()
        .flat_map(bitcoin::consensus::serialize)
        .collect();
    Ok(bytes_response(format, bytes, || {
        let mut out = Vec::with_capacity(list.len());
        for h in &list {
            let (header, hc) = super::methods::header_context(ctx, &h.block_hash())
                .map_err(|e| internal(e.message))?;
            out.push(super::jsonrpc::object(json::header(&header, &hc)));
        }
        Ok(Value::Array(out))
    }))
}

fn block_hash_by_height(ctx: &super::RpcContext, rest: &str) -> Result<Response, RestError> {
    let (height, format) = split_format(rest).ok_or_else(format_not_found)?;
    let h: u32 = height
        .parse()
        .map_err(|_| error(StatusCode::BAD_REQUEST, format!("Invalid height: {height}")))?;
    let hash = ctx
        .node
        .block_hash(h)
        .map_err(internal)?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "Block height out of range"))?;
    let bytes = hash.to_byte_array().to_vec();
    Ok(bytes_response(format, bytes, || {
        Ok(json!({ "blockhash": hash.to_string() }))
    }))
}

fn tx(ctx: &super::RpcContext, rest: &str) -> Result<Response, RestError> {
    let (txid, format) = split_format(rest).ok_or_else(format_not_found)?;
    let txid: Txid = parse_hash(txid)?;
    let found = ctx
        .node
        .transaction(&txid, None)
        .map_err(internal)?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("{txid} not found")))?;
    let bytes = bitcoin::consensus::serialize(&found.tx);
    Ok(bytes_response(format, bytes, || {
        let mut v = json::transaction(
            &found.tx,
            Network::Regtest,
            &TxContext {
                spent: None,
                prevouts: false,
                hex: true,
            },
        );
        if let (Some(loc), Value::Object(map)) = (found.location, &mut v) {
            map.insert("blockhash".into(), json!(loc.block_hash.to_string()));
        }
        Ok(v)
    }))
}
