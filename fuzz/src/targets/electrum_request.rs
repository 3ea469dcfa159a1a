//! The Electrum server's request path: one received line (a call or a batch) is parsed as JSON,
//! each call's method and parameters become a typed `Request` for every protocol version, and
//! the request runs against a small indexed chain, as `Session::execute` runs it.

use std::str::FromStr;
use std::sync::OnceLock;

use moip_electrum::protocol::{negotiate, parse_request, ProtocolVersion, Request, RpcError};
use moip_electrum::query::Query;
use moip_electrum::ScriptHash;
use serde_json::Value;

fn query() -> &'static Query {
    static QUERY: OnceLock<Query> = OnceLock::new();
    QUERY.get_or_init(crate::electrum::indexed_query)
}

/// What the session does with a parsed request, minus subscriptions and cost accounting.
fn execute(query: &Query, request: Request) -> Result<Value, RpcError> {
    match request {
        Request::ServerVersion { protocol, .. } => negotiate(protocol.as_ref())
            .map(|v| Value::String(v.to_string()))
            .map_err(|e| RpcError::bad_request(e.to_string())),
        Request::BlockHeader { height, cp_height } => query.block_header(height, cp_height),
        Request::BlockHeaders {
            start,
            count,
            cp_height,
        } => query.block_headers(start, count, cp_height, true),
        Request::EstimateFee { blocks, mode } => query.estimate_fee(blocks, mode),
        Request::RelayFee => query.relay_fee(),
        Request::FeeHistogram => Ok(query.fee_histogram()),
        Request::MempoolInfo => query.mempool_info(),
        Request::Broadcast(hex) => query.broadcast(&hex),
        Request::BroadcastPackage { txs, verbose } => query.broadcast_package(&txs, verbose),
        Request::TxGet { txid, verbose } => query.transaction_get(&txid, verbose),
        Request::TxMerkle { txid, height } => query.merkle(&txid, height),
        Request::IdFromPos {
            height,
            pos,
            merkle,
        } => query.id_from_pos(height, pos, merkle),
        Request::Balance(sh) => query.balance(&sh),
        Request::History {
            scripthash,
            from,
            to,
        } => query.history(&scripthash, from, to),
        Request::Mempool(sh) => Ok(query.mempool_history(&sh)),
        Request::ListUnspent(sh) => query.listunspent(&sh),
        Request::Subscribe(sh) => query.status(&sh).map(|s| serde_json::json!(s)),
        Request::HeadersSubscribe => Ok(query.tip().unwrap_or(Value::Null)),
        _ => Ok(Value::Null),
    }
}

fn call(query: &Query, call: &Value) {
    let Some(obj) = call.as_object() else { return };
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        return;
    };
    let params = obj.get("params").cloned().unwrap_or(Value::Null);
    for version in ProtocolVersion::SUPPORTED {
        let Ok(request) = parse_request(method, &params, version) else {
            continue;
        };
        let cost = request.base_cost();
        assert!(
            cost.is_finite() && cost >= 0.0,
            "cost {cost} of {request:?}"
        );
        let reply = moip_electrum::protocol::reply(&Value::Null, execute(query, request));
        let _ = reply.to_string();
    }
}

/// One input of the `electrum_request` target.
pub fn electrum_request(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Every string the server reads as a script hash reads back as the same 64 hex digits.
    if let Ok(sh) = ScriptHash::from_str(text) {
        assert_eq!(
            sh.to_string(),
            text.to_ascii_lowercase(),
            "script hash {text:?}"
        );
    }
    if let Some(v) = ProtocolVersion::parse(text) {
        let _ = v.to_string();
    }
    let Ok(parsed) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let query = query();
    match &parsed {
        // The session refuses batches over its limit (2,000) before running any call.
        Value::Array(calls) => calls.iter().take(2_000).for_each(|c| call(query, c)),
        other => call(query, other),
    }
}
