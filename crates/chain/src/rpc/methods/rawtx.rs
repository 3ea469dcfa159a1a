//! Transactions: `getrawtransaction`, `sendrawtransaction`, `testmempoolaccept`, `submitpackage`.

use bitcoin::consensus::deserialize;
use bitcoin::{FeeRate, Network, Transaction};
use serde_json::{json, Map, Value};

use crate::embedded::SubmitOptions;
use crate::rpc::error::{
    RpcError, DESERIALIZATION_ERROR, INVALID_ADDRESS_OR_KEY, INVALID_PARAMETER,
};
use crate::rpc::json::{self, TxContext};
use crate::rpc::jsonrpc::object;
use crate::rpc::params::Params;
use crate::rpc::RpcContext;
use crate::ChainSource;

/// Decodes a hex transaction as Core's `DecodeHexTx`, with its error.
pub fn decode_tx(hex: &str) -> Result<Transaction, RpcError> {
    let bytes = decode_hex(hex).ok_or_else(|| {
        RpcError::new(
            DESERIALIZATION_ERROR,
            "TX decode failed. Make sure the tx has at least one input.",
        )
    })?;
    deserialize(&bytes).map_err(|_| {
        RpcError::new(
            DESERIALIZATION_ERROR,
            "TX decode failed. Make sure the tx has at least one input.",
        )
    })
}

/// Strict hex: even length, hex digits only.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    // `from_str_radix` alone would take a sign ("+f" reads as 0x0f).
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// `maxfeerate` in BTC/kvB to a fee rate; 0 means no limit.
fn max_fee_rate(p: &Params, index: usize) -> Result<FeeRate, RpcError> {
    Ok(match p.opt_btc(index)? {
        Some(per_kvb) => FeeRate::from_sat_per_kwu(per_kvb.to_sat() / 4),
        None => SubmitOptions::default().max_fee_rate,
    })
}

fn submit_options(
    p: &Params,
    rate_index: usize,
    burn_index: Option<usize>,
) -> Result<SubmitOptions, RpcError> {
    let mut opts = SubmitOptions {
        max_fee_rate: max_fee_rate(p, rate_index)?,
        ..SubmitOptions::default()
    };
    if let Some(i) = burn_index {
        if let Some(burn) = p.opt_btc(i)? {
            opts.max_burn = burn;
        }
    }
    Ok(opts)
}

pub(super) fn getrawtransaction(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let txid = p.txid(0, "txid")?;
    let verbosity = match p.get(1) {
        None => 0,
        Some(Value::Bool(b)) => u8::from(*b),
        Some(_) => u8::try_from(p.int(1, "verbosity")?)
            .map_err(|_| RpcError::new(INVALID_PARAMETER, "Invalid verbosity value"))?,
    };
    let block_hash = p.get(2).map(|_| p.block_hash(2, "blockhash")).transpose()?;
    let mut in_active_chain = None;
    if let Some(hash) = &block_hash {
        let entry = ctx
            .node
            .header(hash)?
            .ok_or_else(|| RpcError::new(INVALID_ADDRESS_OR_KEY, "Block hash not found"))?;
        in_active_chain = Some(entry.in_active_chain);
    }
    let genesis_coinbase = ctx
        .node
        .block_hash(0)?
        .and_then(|g| ctx.node.block(&g).ok().flatten())
        .map(|b| b.txdata[0].compute_txid());
    if genesis_coinbase == Some(txid) {
        return Err(RpcError::new(
            INVALID_ADDRESS_OR_KEY,
            "The genesis block coinbase is not considered an ordinary transaction and cannot be retrieved",
        ));
    }
    let Some(found) = ctx.node.transaction(&txid, block_hash.as_ref())? else {
        let message = if block_hash.is_some() {
            "No such transaction found in the provided block. Use gettransaction for wallet transactions."
        } else {
            "No such mempool or blockchain transaction. Use gettransaction for wallet transactions."
        };
        return Err(RpcError::new(INVALID_ADDRESS_OR_KEY, message));
    };
    if verbosity == 0 {
        return Ok(json!(bitcoin::consensus::encode::serialize_hex(&found.tx)));
    }
    let spent = match (&found.location, verbosity >= 2 && !found.tx.is_coinbase()) {
        (Some(loc), true) => ctx
            .node
            .spent_outputs(&loc.block_hash)?
            .and_then(|undo| undo.into_iter().nth(loc.position as usize - 1)),
        _ => None,
    };
    let body = json::transaction(
        &found.tx,
        Network::Regtest,
        &TxContext {
            spent: spent.as_deref(),
            prevouts: verbosity >= 2,
            hex: true,
        },
    );
    let Value::Object(body) = body else {
        unreachable!("transaction() builds an object")
    };
    let mut out = Map::new();
    if let Some(active) = in_active_chain {
        out.insert("in_active_chain".into(), json!(active));
    }
    out.extend(body);
    if let Some(loc) = found.location {
        let tip = ctx.node.tip()?;
        let entry = ctx.node.header(&loc.block_hash)?;
        out.insert("blockhash".into(), json!(loc.block_hash.to_string()));
        match entry {
            Some(e) if e.in_active_chain => {
                out.insert("confirmations".into(), json!(tip.height - e.height + 1));
                out.insert("time".into(), json!(e.header.time));
                out.insert("blocktime".into(), json!(e.header.time));
            }
            _ => {
                out.insert("confirmations".into(), json!(0));
            }
        }
    }
    Ok(Value::Object(out))
}

pub(super) fn sendrawtransaction(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let tx = decode_tx(p.str(0, "hexstring")?)?;
    let opts = submit_options(p, 1, Some(2))?;
    Ok(json!(ctx
        .node
        .send_raw_transaction(&tx, &opts)?
        .to_string()))
}

fn decode_list(p: &Params, name: &str) -> Result<Vec<Transaction>, RpcError> {
    let raw = p.array(0, name)?;
    if raw.is_empty() || raw.len() > crate::embedded::MAX_PACKAGE_COUNT {
        return Err(RpcError::new(
            INVALID_PARAMETER,
            "Array must contain between 1 and 25 transactions.",
        ));
    }
    raw.iter()
        .map(|v| {
            let hex = v.as_str().ok_or_else(|| {
                RpcError::new(
                    crate::rpc::error::TYPE_ERROR,
                    "JSON value is not a string as expected",
                )
            })?;
            decode_tx(hex).map_err(|_| {
                RpcError::new(
                    DESERIALIZATION_ERROR,
                    format!("TX decode failed: {hex} Make sure the tx has at least one input."),
                )
            })
        })
        .collect()
}

fn fees_json(base: bitcoin::Amount, rate: Option<FeeRate>, includes: &[bitcoin::Wtxid]) -> Value {
    let mut pairs = vec![("base", json::btc(base))];
    if let Some(rate) = rate {
        pairs.push(("effective-feerate", json::btc_per_kvb(rate)));
        pairs.push((
            "effective-includes",
            json!(includes.iter().map(ToString::to_string).collect::<Vec<_>>()),
        ));
    }
    object(pairs)
}

pub(super) fn testmempoolaccept(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let txs = decode_list(p, "rawtxs")?;
    let opts = submit_options(p, 1, None)?;
    let results = ctx.node.test_mempool_accept(&txs, &opts)?;
    Ok(Value::Array(
        results
            .into_iter()
            .map(|r| {
                let mut pairs = vec![
                    ("txid", json!(r.txid.to_string())),
                    ("wtxid", json!(r.wtxid.to_string())),
                ];
                match (&r.rejection, r.vsize, r.fee) {
                    (None, Some(vsize), Some(fee)) => {
                        pairs.push(("allowed", json!(true)));
                        pairs.push(("vsize", json!(vsize)));
                        let rate = crate::types::fee_rate_of(fee, vsize);
                        pairs.push(("fees", fees_json(fee, Some(rate), &[r.wtxid])));
                    }
                    (Some(rejection), _, _) => {
                        pairs.push(("allowed", json!(false)));
                        pairs.push(("reject-reason", json!(rejection.reason)));
                        pairs.push(("reject-details", json!(rejection.to_string())));
                    }
                    _ => pairs.push(("allowed", json!(false))),
                }
                object(pairs)
            })
            .collect(),
    ))
}

pub(super) fn submitpackage(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let txs = decode_list(p, "package")?;
    let opts = submit_options(p, 1, Some(2))?;
    let outcome = ctx.node.submit_package(&txs, &opts).map_err(|e| match e {
        crate::ChainError::Invalid(m) => RpcError::new(INVALID_PARAMETER, m),
        other => other.into(),
    })?;
    let mut results = Map::new();
    for r in &outcome.tx_results {
        let mut pairs = vec![("txid", json!(r.txid.to_string()))];
        if let Some(other) = r.other_wtxid {
            pairs.push(("other-wtxid", json!(other.to_string())));
        }
        if let (Some(vsize), Some(fee)) = (r.vsize, r.fee) {
            pairs.push(("vsize", json!(vsize)));
            pairs.push((
                "fees",
                fees_json(fee, r.effective_fee_rate, &r.effective_includes),
            ));
        }
        if let Some(error) = &r.error {
            pairs.push(("error", json!(error)));
        }
        results.insert(r.wtxid.to_string(), object(pairs));
    }
    Ok(object(vec![
        ("package_msg", json!(outcome.message)),
        ("tx-results", Value::Object(results)),
        (
            "replaced-transactions",
            json!(outcome
                .replaced
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()),
        ),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_with_a_sign_is_refused_found_by_fuzzing() {
        // fuzz/artifacts chain_rpc: "+2" decoded as the byte 0x02.
        assert_eq!(decode_hex("+2"), None);
        assert_eq!(decode_hex("0a"), Some(vec![0x0a]));
        // A valid transaction with one "00" written "+0" is not hex, as in Core.
        let genesis = bitcoin::constants::genesis_block(Network::Bitcoin);
        let hex = bitcoin::consensus::encode::serialize_hex(&genesis.txdata[0]);
        assert!(decode_tx(&hex).is_ok());
        let err = decode_tx(&hex.replacen("00", "+0", 1)).expect_err("not hex");
        assert_eq!(err.code, DESERIALIZATION_ERROR);
    }
}
