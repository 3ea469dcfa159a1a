//! Mempool queries: `getrawmempool`, `getmempoolentry`, `getmempoolinfo`, `gettxspendingprevout`.

use bitcoin::{OutPoint, Txid};
use serde_json::{json, Map, Value};

use crate::embedded::{policy_figures, Spend};
use crate::rpc::error::{RpcError, INVALID_ADDRESS_OR_KEY, INVALID_PARAMETER, TYPE_ERROR};
use crate::rpc::json;
use crate::rpc::jsonrpc::object;
use crate::rpc::params::{parse_hash, Params};
use crate::rpc::RpcContext;
use crate::MempoolEntry;

/// Core's `entryToJSON` (pre-cluster-mempool shape).
pub(crate) fn entry_json(e: &MempoolEntry) -> Value {
    object(vec![
        ("vsize", json!(e.vsize)),
        ("weight", json!(e.weight)),
        ("time", json!(e.time)),
        ("height", json!(e.height)),
        ("descendantcount", json!(e.descendant_count)),
        ("descendantsize", json!(e.descendant_vsize)),
        ("ancestorcount", json!(e.ancestor_count)),
        ("ancestorsize", json!(e.ancestor_vsize)),
        ("wtxid", json!(e.wtxid.to_string())),
        (
            "fees",
            object(vec![
                ("base", json::btc(e.fee)),
                ("modified", json::btc(e.fee)),
                ("ancestor", json::btc(e.ancestor_fees)),
                ("descendant", json::btc(e.descendant_fees)),
            ]),
        ),
        (
            "depends",
            json!(e
                .depends
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()),
        ),
        (
            "spentby",
            json!(e
                .spent_by
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()),
        ),
        ("bip125-replaceable", json!(e.bip125_replaceable)),
        ("unbroadcast", json!(false)),
    ])
}

/// Mempool txids in entry order, shared with REST's `/rest/mempool/contents.json?verbose=false`.
pub(crate) fn mempool_txids_json(ctx: &RpcContext) -> Value {
    json!(ctx
        .node
        .mempool_txids()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>())
}

/// The verbose mempool map, shared with REST's `/rest/mempool/contents.json`.
pub(crate) fn verbose_mempool(ctx: &RpcContext) -> Result<Value, RpcError> {
    let mut map = Map::new();
    for e in crate::ChainSource::mempool(&ctx.node)? {
        map.insert(e.txid.to_string(), entry_json(&e));
    }
    Ok(Value::Object(map))
}

pub(super) fn getrawmempool(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let verbose = p.opt_bool(0)?.unwrap_or(false);
    let sequence = p.opt_bool(1)?.unwrap_or(false);
    if verbose && sequence {
        return Err(RpcError::new(
            INVALID_PARAMETER,
            "Verbose results cannot contain mempool sequence values.",
        ));
    }
    if verbose {
        return verbose_mempool(ctx);
    }
    let txids = mempool_txids_json(ctx);
    if sequence {
        return Ok(object(vec![
            ("txids", txids),
            ("mempool_sequence", json!(ctx.node.mempool_sequence())),
        ]));
    }
    Ok(txids)
}

pub(super) fn getmempoolentry(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let txid = p.txid(0, "txid")?;
    let entry = ctx
        .node
        .mempool_entry(&txid)
        .ok_or_else(|| RpcError::new(INVALID_ADDRESS_OR_KEY, "Transaction not in mempool"))?;
    Ok(entry_json(&entry))
}

/// Shared with REST's `/rest/mempool/info.json`.
pub(crate) fn mempool_info_json(ctx: &RpcContext) -> Value {
    let info = ctx.node.mempool_info();
    let figures = policy_figures();
    object(vec![
        ("loaded", json!(true)),
        ("size", json!(info.size)),
        ("bytes", json!(info.bytes)),
        ("usage", json!(info.usage)),
        (
            "total_fee",
            json::btc(bitcoin::Amount::from_sat(info.total_fee)),
        ),
        ("maxmempool", json!(300_000_000u64)),
        ("mempoolminfee", json::btc_per_kvb(figures.min_relay_fee)),
        ("minrelaytxfee", json::btc_per_kvb(figures.min_relay_fee)),
        (
            "incrementalrelayfee",
            json::btc_per_kvb(figures.incremental_relay_fee),
        ),
        ("unbroadcastcount", json!(0)),
        ("fullrbf", json!(true)),
        ("permitbaremultisig", json!(true)),
        ("maxdatacarriersize", json!(figures.max_datacarrier_bytes)),
    ])
}

pub(super) fn getmempoolinfo(ctx: &RpcContext, _: &Params) -> Result<Value, RpcError> {
    Ok(mempool_info_json(ctx))
}

pub(super) fn gettxout(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let txid = p.txid(0, "txid")?;
    let n = u32::try_from(p.int(1, "n")?)
        .map_err(|_| RpcError::new(INVALID_PARAMETER, "Invalid output index"))?;
    let include_mempool = p.opt_bool(2)?.unwrap_or(true);
    let Some(coin) = ctx
        .node
        .unspent_output(&OutPoint { txid, vout: n }, include_mempool)?
    else {
        return Ok(Value::Null);
    };
    let tip = crate::ChainSource::tip(&ctx.node)?;
    let confirmations = if coin.height > tip.height {
        0
    } else {
        tip.height - coin.height + 1
    };
    Ok(object(vec![
        ("bestblock", json!(tip.hash.to_string())),
        ("confirmations", json!(confirmations)),
        ("value", json::btc(coin.txout.value)),
        (
            "scriptPubKey",
            json::script_pubkey(&coin.txout.script_pubkey, bitcoin::Network::Regtest),
        ),
        ("coinbase", json!(coin.coinbase)),
    ]))
}

pub(super) fn gettxspendingprevout(ctx: &RpcContext, p: &Params) -> Result<Value, RpcError> {
    let outputs = p.array(0, "outputs")?;
    if outputs.is_empty() {
        return Err(RpcError::new(
            INVALID_PARAMETER,
            "Invalid parameter, outputs are missing",
        ));
    }
    let mut mempool_only = false; // the node always has the spender index
    let mut return_tx = false;
    if let Some(options) = p.opt_object(1)? {
        for (key, value) in options {
            let flag = value.as_bool().ok_or_else(|| {
                RpcError::new(
                    TYPE_ERROR,
                    format!(
                        "JSON value of type {value} for field {key} is not of expected type bool"
                    ),
                )
            });
            match key.as_str() {
                "mempool_only" => mempool_only = flag?,
                "return_spending_tx" => return_tx = flag?,
                other => return Err(RpcError::new(TYPE_ERROR, format!("Unexpected key {other}"))),
            }
        }
    }
    let mut requests = Vec::with_capacity(outputs.len());
    for o in outputs {
        let obj = o
            .as_object()
            .ok_or_else(|| RpcError::new(TYPE_ERROR, "JSON value is not an object as expected"))?;
        if let Some(other) = obj.keys().find(|k| *k != "txid" && *k != "vout") {
            return Err(RpcError::new(TYPE_ERROR, format!("Unexpected key {other}")));
        }
        let txid: Txid = match obj.get("txid").and_then(Value::as_str) {
            Some(s) => parse_hash(s, "txid")?,
            None => return Err(RpcError::new(TYPE_ERROR, "Missing txid")),
        };
        let vout = obj
            .get("vout")
            .and_then(Value::as_i64)
            .ok_or_else(|| RpcError::new(TYPE_ERROR, "Missing vout"))?;
        let vout = u32::try_from(vout).map_err(|_| {
            RpcError::new(
                INVALID_PARAMETER,
                "Invalid parameter, vout cannot be negative",
            )
        })?;
        requests.push((o.clone(), OutPoint { txid, vout }));
    }
    let with_spender =
        |raw: &Value, txid: Txid, block: Option<bitcoin::BlockHash>| -> Result<Value, RpcError> {
            let mut out = raw.as_object().cloned().unwrap_or_default();
            out.insert("spendingtxid".into(), json!(txid.to_string()));
            if return_tx {
                let tx = crate::ChainSource::transaction(&ctx.node, &txid, block.as_ref())?
                    .ok_or_else(|| {
                        RpcError::new(
                            crate::rpc::error::MISC_ERROR,
                            format!("spending transaction {txid} not found"),
                        )
                    })?;
                out.insert(
                    "spendingtx".into(),
                    json!(bitcoin::consensus::encode::serialize_hex(&tx.tx)),
                );
            }
            if let Some(block) = block {
                out.insert("blockhash".into(), json!(block.to_string()));
            }
            Ok(Value::Object(out))
        };
    // As in Core: outputs spent in the mempool (or all of them, when mempool_only) come first,
    // then the ones answered from the spender index.
    let mut from_mempool = Vec::new();
    let mut from_index = Vec::new();
    for (raw, outpoint) in &requests {
        match ctx.node.spender_of(outpoint, mempool_only)? {
            Spend::Mempool(txid) => from_mempool.push(with_spender(raw, txid, None)?),
            Spend::Confirmed { txid, block } => {
                from_index.push(with_spender(raw, txid, Some(block))?)
            }
            Spend::Unspent if mempool_only => from_mempool.push(raw.clone()),
            Spend::Unspent => from_index.push(raw.clone()),
        }
    }
    from_mempool.extend(from_index);
    Ok(Value::Array(from_mempool))
}
