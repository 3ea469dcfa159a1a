//! Node control and network: `invalidateblock`, `reconsiderblock`, `getnetworkinfo`, `uptime`,
//! `stop`.

use serde_json::{json, Value};

use crate::embedded::policy_figures;
use crate::rpc::error::{RpcError, INVALID_ADDRESS_OR_KEY};
use crate::rpc::json;
use crate::rpc::jsonrpc::object;
use crate::rpc::params::Params;
use crate::rpc::RpcContext;

/// The Bitcoin Core version whose consensus code the kernel carries and whose RPC interface the
/// node serves (31.0; ElectrumX 2.0 requires it). The mempool follows the ancestor/descendant
/// policy of Core 30, so Core 31's cluster-mempool fields are absent (`docs/embedded-node.md`).
pub(crate) const CORE_VERSION: u32 = 310_000;

pub(super) fn invalidateblock(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let hash = p.block_hash(0, "blockhash")?;
    ctx.node.invalidate_block(&hash).map_err(not_found)?;
    Ok(Value::Null)
}

pub(super) fn reconsiderblock(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let hash = p.block_hash(0, "blockhash")?;
    ctx.node.reconsider_block(&hash).map_err(not_found)?;
    Ok(Value::Null)
}

fn not_found(e: crate::ChainError) -> RpcError {
    match e {
        crate::ChainError::Invalid(m) if m == "Block not found" => {
            RpcError::new(INVALID_ADDRESS_OR_KEY, m)
        }
        crate::ChainError::Invalid(m) => RpcError::new(crate::rpc::error::MISC_ERROR, m),
        other => other.into(),
    }
}

pub(super) fn getnetworkinfo(_: &RpcContext, _: &Params) -> Result<Value, RpcError> {
    let figures = policy_figures();
    let networks: Vec<Value> = ["ipv4", "ipv6", "onion", "i2p", "cjdns"]
        .iter()
        .map(|name| {
            object(vec![
                ("name", json!(name)),
                ("limited", json!(true)),
                ("reachable", json!(false)),
                ("proxy", json!("")),
                ("proxy_randomize_credentials", json!(false)),
            ])
        })
        .collect();
    Ok(object(vec![
        ("version", json!(CORE_VERSION)),
        (
            "subversion",
            json!(format!("/moip:{}/", env!("CARGO_PKG_VERSION"))),
        ),
        ("protocolversion", json!(70016)),
        ("localservices", json!("0000000000000408")),
        ("localservicesnames", json!(["WITNESS", "NETWORK_LIMITED"])),
        ("localrelay", json!(true)),
        ("timeoffset", json!(0)),
        ("networkactive", json!(false)),
        ("connections", json!(0)),
        ("connections_in", json!(0)),
        ("connections_out", json!(0)),
        ("networks", Value::Array(networks)),
        ("relayfee", json::btc_per_kvb(figures.min_relay_fee)),
        (
            "incrementalfee",
            json::btc_per_kvb(figures.incremental_relay_fee),
        ),
        ("localaddresses", json!([])),
        ("warnings", json!([])),
    ]))
}

pub(super) fn uptime(ctx: &RpcContext, _: &Params) -> Result<Value, RpcError> {
    Ok(json!(ctx.node.uptime()))
}

pub(super) fn stop(ctx: &RpcContext, _: &Params) -> Result<Value, RpcError> {
    if ctx.request_stop() {
        Ok(json!("moip node stopping"))
    } else {
        Err(super::mining::misc("Already stopping"))
    }
}
