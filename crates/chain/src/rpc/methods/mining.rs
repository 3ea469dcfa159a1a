//! Mining and fees: `generate*`, `submitblock`, `estimatesmartfee`.

use std::str::FromStr;

use bitcoin::consensus::deserialize;
use bitcoin::{Address, Block, Network, ScriptBuf};
use miniscript::descriptor::{Descriptor, DescriptorPublicKey};
use serde_json::{json, Value};

use super::rawtx::{decode_hex, decode_tx};
use crate::embedded::BlockSubmission;
use crate::rpc::error::{
    RpcError, DESERIALIZATION_ERROR, INVALID_ADDRESS_OR_KEY, INVALID_PARAMETER, MISC_ERROR,
};
use crate::rpc::json as core_json;
use crate::rpc::jsonrpc::object;
use crate::rpc::params::Params;
use crate::rpc::RpcContext;
use crate::{ChainSource, FeeMode};

/// Most blocks one `generate*` call mines (keeps one request from holding the node for hours).
const MAX_GENERATE: i64 = 100_000;

fn address_script(s: &str) -> Result<ScriptBuf, RpcError> {
    Address::from_str(s)
        .ok()
        .and_then(|a| a.require_network(Network::Regtest).ok())
        .map(|a| a.script_pubkey())
        .ok_or_else(|| RpcError::new(INVALID_ADDRESS_OR_KEY, "Error: Invalid address"))
}

/// A single-script descriptor's output script. `addr()` and `raw()` are Core's own descriptors,
/// which miniscript does not parse; the rest goes to miniscript.
pub fn descriptor_script(s: &str) -> Result<ScriptBuf, RpcError> {
    let invalid = |m: String| RpcError::new(INVALID_ADDRESS_OR_KEY, m);
    let body = match s.split_once('#') {
        Some((body, sum)) => {
            let expected = miniscript::descriptor::checksum::desc_checksum(body)
                .map_err(|e| invalid(e.to_string()))?;
            if expected != sum {
                return Err(invalid(format!(
                    "Provided checksum '{sum}' does not match computed checksum '{expected}'"
                )));
            }
            body
        }
        None => s,
    };
    if let Some(address) = body.strip_prefix("addr(").and_then(|r| r.strip_suffix(')')) {
        return address_script(address);
    }
    if let Some(hex) = body.strip_prefix("raw(").and_then(|r| r.strip_suffix(')')) {
        let bytes = decode_hex(hex).ok_or_else(|| invalid("Raw script is not hex".into()))?;
        return Ok(ScriptBuf::from_bytes(bytes));
    }
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let (desc, _keys) = Descriptor::<DescriptorPublicKey>::parse_descriptor(&secp, s)
        .map_err(|e| RpcError::new(INVALID_ADDRESS_OR_KEY, e.to_string()))?;
    if desc.has_wildcard() {
        return Err(RpcError::new(
            INVALID_PARAMETER,
            "Ranged descriptor not accepted. Maybe pass through deriveaddresses first?",
        ));
    }
    let definite = desc
        .at_derivation_index(0)
        .map_err(|e| RpcError::new(INVALID_ADDRESS_OR_KEY, e.to_string()))?;
    Ok(definite.script_pubkey())
}

fn block_count(p: &Params) -> Result<u32, RpcError> {
    let n = p.int(0, "nblocks")?;
    if !(0..=MAX_GENERATE).contains(&n) {
        return Err(RpcError::new(
            INVALID_PARAMETER,
            format!("nblocks must be between 0 and {MAX_GENERATE}"),
        ));
    }
    if let Some(tries) = p.opt_int(2)? {
        if tries < 1 {
            return Err(RpcError::new(
                INVALID_PARAMETER,
                "maxtries must be positive",
            ));
        }
    }
    Ok(n as u32)
}

fn generate(ctx: &RpcContext, n: u32, script: &ScriptBuf) -> Result<Value, RpcError> {
    let hashes = ctx.node.generate(n, script)?;
    Ok(json!(hashes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()))
}

pub(super) fn generatetoaddress(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let n = block_count(p)?;
    let script = address_script(p.str(1, "address")?)?;
    generate(ctx, n, &script)
}

pub(super) fn generatetodescriptor(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let n = block_count(p)?;
    let script = descriptor_script(p.str(1, "descriptor")?)?;
    generate(ctx, n, &script)
}

pub(super) fn generateblock(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let output = p.str(0, "output")?;
    let script = descriptor_script(output)
        .or_else(|_| address_script(output))
        .map_err(|_| {
            RpcError::new(
                INVALID_ADDRESS_OR_KEY,
                "Error: Invalid address or descriptor",
            )
        })?;
    let submit = p.opt_bool(2)?.unwrap_or(true);
    let mut txs = Vec::new();
    for item in p.array(1, "transactions")? {
        let s = item.as_str().ok_or_else(|| {
            RpcError::new(
                crate::rpc::error::TYPE_ERROR,
                "JSON value is not a string as expected",
            )
        })?;
        if s.len() == 64 {
            if let Ok(txid) = s.parse::<bitcoin::Txid>() {
                let found = ctx
                    .node
                    .transaction(&txid, None)?
                    .filter(|t| t.location.is_none());
                let tx = found.ok_or_else(|| {
                    RpcError::new(
                        INVALID_ADDRESS_OR_KEY,
                        format!("Transaction {txid} not in mempool."),
                    )
                })?;
                txs.push(tx.tx);
                continue;
            }
        }
        txs.push(decode_tx(s).map_err(|_| {
            RpcError::new(
                DESERIALIZATION_ERROR,
                format!(
                    "Transaction decode failed for {s}. Make sure the tx has at least one input."
                ),
            )
        })?);
    }
    let block = ctx
        .node
        .generate_block(&script, txs, submit)
        .map_err(|e| match e {
            crate::ChainError::InvalidBlock(m) => RpcError::new(crate::rpc::error::VERIFY_ERROR, m),
            other => other.into(),
        })?;
    let mut pairs = vec![("hash", json!(block.block_hash().to_string()))];
    if !submit {
        pairs.push((
            "hex",
            json!(bitcoin::consensus::encode::serialize_hex(&block)),
        ));
    }
    Ok(object(pairs))
}

pub(super) fn submitblock(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let bytes = decode_hex(p.str(0, "hexdata")?)
        .ok_or_else(|| RpcError::new(DESERIALIZATION_ERROR, "Block decode failed"))?;
    let block: Block = deserialize(&bytes)
        .map_err(|_| RpcError::new(DESERIALIZATION_ERROR, "Block decode failed"))?;
    if block.txdata.first().is_none_or(|cb| !cb.is_coinbase()) {
        return Err(RpcError::new(
            DESERIALIZATION_ERROR,
            "Block does not start with a coinbase",
        ));
    }
    Ok(match ctx.node.submit_block(&block)? {
        BlockSubmission::Accepted => Value::Null,
        BlockSubmission::Inconclusive => json!("inconclusive"),
        BlockSubmission::Duplicate => json!("duplicate"),
        BlockSubmission::Rejected(reason) => json!(reason),
    })
}

pub(super) fn estimatesmartfee(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let target = p.int(0, "conf_target")?;
    if !(1..=1008).contains(&target) {
        return Err(RpcError::new(
            INVALID_PARAMETER,
            "Invalid conf_target, must be between 1 and 1008",
        ));
    }
    let mode = match p.opt_str(1)? {
        Some(s) => FeeMode::from_str(s).map_err(|_| {
            RpcError::new(INVALID_PARAMETER, "Invalid estimate_mode parameter, must be one of: \"unset\", \"economical\", \"conservative\"")
        })?,
        None => FeeMode::Economical,
    };
    match ctx.node.estimate_fee(target as u16, mode)? {
        Some(estimate) => Ok(object(vec![
            ("feerate", core_json::btc_per_kvb(estimate.fee_rate)),
            ("blocks", json!(estimate.blocks)),
        ])),
        None => Ok(object(vec![
            ("errors", json!(["Insufficient data or no feerate found"])),
            ("blocks", json!(0)),
        ])),
    }
}

/// Used by `stop` to refuse a second stop; kept here with the other side effects.
pub(super) fn misc(message: &str) -> RpcError {
    RpcError::new(MISC_ERROR, message)
}
