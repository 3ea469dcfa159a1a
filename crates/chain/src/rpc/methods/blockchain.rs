//! Chain queries: `getblockchaininfo`, `getblock*`, `getdeploymentinfo`, `getindexinfo`.

use bitcoin::{BlockHash, Network};
use serde_json::{json, Value};

use crate::rpc::error::{RpcError, INVALID_ADDRESS_OR_KEY, INVALID_PARAMETER};
use crate::rpc::json::{self, HeaderContext};
use crate::rpc::jsonrpc::object;
use crate::rpc::params::Params;
use crate::rpc::RpcContext;
use crate::ChainSource;

pub(super) fn getblockchaininfo(ctx: &RpcContext, _: &Params) -> Result<Value, RpcError> {
    chain_info_json(ctx)
}

/// Shared with REST's `/rest/chaininfo.json`.
pub(crate) fn chain_info_json(ctx: &RpcContext) -> Result<Value, RpcError> {
    let info = ctx.node.chain_info()?;
    Ok(object(vec![
        ("chain", json!("regtest")),
        ("blocks", json!(info.tip.height)),
        ("headers", json!(info.tip.height)),
        ("bestblockhash", json!(info.tip.hash.to_string())),
        (
            "bits",
            json!(format!("{:08x}", info.header.bits.to_consensus())),
        ),
        ("target", json!(hex(&info.header.target().to_be_bytes()))),
        ("difficulty", json!(ctx.node.difficulty(&info.header))),
        ("time", json!(info.header.time)),
        ("mediantime", json!(info.median_time)),
        ("verificationprogress", json!(1)),
        ("initialblockdownload", json!(false)),
        ("chainwork", json!(info.chainwork)),
        ("size_on_disk", json!(info.size_on_disk)),
        ("pruned", json!(false)),
        ("warnings", json!([])),
    ]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn getblockcount(ctx: &RpcContext, _: &Params) -> Result<Value, RpcError> {
    Ok(json!(ctx.node.tip()?.height))
}

pub(super) fn getbestblockhash(ctx: &RpcContext, _: &Params) -> Result<Value, RpcError> {
    Ok(json!(ctx.node.tip()?.hash.to_string()))
}

pub(super) fn getblockhash(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let height = p.int(0, "height")?;
    let hash = u32::try_from(height)
        .ok()
        .map(|h| ctx.node.block_hash(h))
        .transpose()?
        .flatten();
    hash.map(|h| json!(h.to_string()))
        .ok_or_else(|| RpcError::new(INVALID_PARAMETER, "Block height out of range"))
}

/// Header, position and neighbours of a known block, as the header printers need them.
pub(crate) fn header_context(
    ctx: &RpcContext,
    hash: &BlockHash,
) -> Result<(bitcoin::block::Header, HeaderContext), RpcError> {
    let entry = ctx
        .node
        .header(hash)?
        .ok_or_else(|| RpcError::new(INVALID_ADDRESS_OR_KEY, "Block not found"))?;
    let tip = ctx.node.tip()?;
    let (confirmations, next) = if entry.in_active_chain {
        (
            i64::from(tip.height - entry.height) + 1,
            ctx.node.block_hash(entry.height + 1)?,
        )
    } else {
        (-1, None)
    };
    let median_time = if entry.in_active_chain {
        ctx.node.median_time_past(entry.height)?
    } else {
        entry.header.time
    };
    let n_tx = ctx.node.block(hash)?.map_or(0, |b| b.txdata.len());
    let hc = HeaderContext {
        height: entry.height,
        confirmations,
        median_time,
        chainwork: ctx.node.chainwork(entry.height),
        n_tx,
        next,
        difficulty: ctx.node.difficulty(&entry.header),
    };
    Ok((entry.header, hc))
}

pub(super) fn getblockheader(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let hash = p.block_hash(0, "hash")?;
    let verbose = p.opt_bool(1)?.unwrap_or(true);
    let (header, hc) = header_context(ctx, &hash)?;
    if !verbose {
        return Ok(json!(hex(&bitcoin::consensus::serialize(&header))));
    }
    Ok(object(json::header(&header, &hc)))
}

/// Core accepts a boolean (legacy `verbose`) or 0-3.
fn verbosity(p: &Params, index: usize, default: u8) -> Result<u8, RpcError> {
    match p.get(index) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(u8::from(*b)),
        Some(_) => {
            let v = p.int(index, "verbosity")?;
            u8::try_from(v).map_err(|_| RpcError::new(INVALID_PARAMETER, "Invalid verbosity value"))
        }
    }
}

pub(crate) fn block_json(
    ctx: &RpcContext,
    hash: &BlockHash,
    verbosity: u8,
) -> Result<Value, RpcError> {
    let block = ctx
        .node
        .block(hash)?
        .ok_or_else(|| RpcError::new(INVALID_ADDRESS_OR_KEY, "Block not found"))?;
    if verbosity == 0 {
        return Ok(json!(hex(&bitcoin::consensus::serialize(&block))));
    }
    let (_, hc) = header_context(ctx, hash)?;
    let spent = if verbosity >= 2 {
        ctx.node.spent_outputs(hash)?
    } else {
        None
    };
    Ok(json::block(
        &block,
        &hc,
        verbosity.min(3),
        spent.as_deref(),
        Network::Regtest,
    ))
}

pub(super) fn getblock(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let hash = p.block_hash(0, "blockhash")?;
    block_json(ctx, &hash, verbosity(p, 1, 1)?)
}

pub(super) fn getdeploymentinfo(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let hash = match p.get(0) {
        Some(_) => p.block_hash(0, "blockhash")?,
        None => ctx.node.tip()?.hash,
    };
    let entry = ctx
        .node
        .header(&hash)?
        .ok_or_else(|| RpcError::new(INVALID_ADDRESS_OR_KEY, "Block not found"))?;
    // Regtest's schedule (Core `CRegTestParams`): everything buried at 1 (segwit at 0), taproot
    // always active, testdummy defined but never started.
    let buried = |height: u32| {
        object(vec![
            ("type", json!("buried")),
            ("active", json!(entry.height + 1 >= height)),
            ("height", json!(height)),
        ])
    };
    let taproot = object(vec![
        ("type", json!("bip9")),
        ("height", json!(0)),
        ("active", json!(true)),
        (
            "bip9",
            object(vec![
                ("start_time", json!(-1)),
                ("timeout", json!(i64::MAX)),
                ("min_activation_height", json!(0)),
                ("status", json!("active")),
                ("since", json!(0)),
                ("status_next", json!("active")),
            ]),
        ),
    ]);
    let testdummy = object(vec![
        ("type", json!("bip9")),
        ("active", json!(false)),
        (
            "bip9",
            object(vec![
                ("bit", json!(28)),
                ("start_time", json!(0)),
                ("timeout", json!(i64::MAX)),
                ("min_activation_height", json!(0)),
                ("status", json!("defined")),
                ("since", json!(0)),
                ("status_next", json!("defined")),
            ]),
        ),
    ]);
    Ok(object(vec![
        ("hash", json!(hash.to_string())),
        ("height", json!(entry.height)),
        (
            "deployments",
            object(vec![
                ("bip34", buried(1)),
                ("bip66", buried(1)),
                ("bip65", buried(1)),
                ("csv", buried(1)),
                ("segwit", buried(0)),
                ("testdummy", testdummy),
                ("taproot", taproot),
            ]),
        ),
    ]))
}

pub(super) fn getindexinfo(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let name = p.opt_str(0)?;
    let tip = ctx.node.tip()?;
    // Both indexes live in the node's store and move with every block.
    let summary = || {
        object(vec![
            ("synced", json!(true)),
            ("best_block_height", json!(tip.height)),
        ])
    };
    let mut pairs = Vec::new();
    for index in ["txindex", "txospenderindex"] {
        if name.is_none_or(|n| n == index) {
            pairs.push((index, summary()));
        }
    }
    Ok(object(pairs))
}
