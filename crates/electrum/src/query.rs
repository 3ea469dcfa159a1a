//! Answers to the protocol's questions, from the index, the mempool view and the chain source.
//! Synchronous and independent of transports and sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Network, Transaction, Txid};
use moip_chain::{ChainSource, FeeMode};
use serde_json::{json, Value};

use crate::index::Index;
use crate::mempool::Mempool;
use crate::merkle::{branch_and_root, HeaderProofCache};
use crate::protocol::{RpcError, BAD_REQUEST, DAEMON_ERROR, HISTORY_TOO_LARGE};
use crate::status::status_hash;
use crate::types::ScriptHash;

/// Most headers one `blockchain.block.headers` call returns (the spec recommends ≥ 2016).
pub const MAX_HEADERS: u32 = 2016;

fn hex_rev(hash: [u8; 32]) -> String {
    hash.iter().rev().map(|b| format!("{b:02x}")).collect()
}

fn header_hex(h: &bitcoin::block::Header) -> String {
    serialize_hex(h)
}

/// Fee estimates by (target, mode), valid for one tip.
type FeeCache = (Option<BlockHash>, HashMap<(u16, u8), f64>);

/// The questions, answered.
pub struct Query {
    pub(crate) index: Arc<Index>,
    pub(crate) mempool: RwLock<Mempool>,
    pub(crate) source: Arc<dyn ChainSource>,
    pub(crate) network: Network,
    /// Longest history sent unpaged; past it `get_history` asks the client to page.
    pub(crate) max_history: usize,
    header_proofs: Mutex<HeaderProofCache>,
    fees: Mutex<FeeCache>,
    statuses: Mutex<HashMap<ScriptHash, Option<String>>>,
    /// Held for writing while the index and the mempool view move together, so readers never
    /// see a transaction both confirmed and in the mempool.
    pub(crate) update: RwLock<()>,
}

impl Query {
    pub fn new(index: Arc<Index>, source: Arc<dyn ChainSource>, max_history: usize) -> Query {
        let network = source.network();
        Query {
            index,
            mempool: RwLock::new(Mempool::default()),
            source,
            network,
            max_history,
            header_proofs: Mutex::new(HeaderProofCache::default()),
            fees: Mutex::new((None, HashMap::new())),
            statuses: Mutex::new(HashMap::new()),
            update: RwLock::new(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.update.read().expect("update lock")
    }

    /// Forgets cached statuses of these scripts (all of them with `None`) and, after a
    /// reorganisation, the header proof tree.
    pub fn invalidate(&self, scripts: Option<&std::collections::HashSet<ScriptHash>>, reorg: bool) {
        let mut statuses = self.statuses.lock().expect("status cache");
        match scripts {
            Some(set) => set.iter().for_each(|sh| {
                statuses.remove(sh);
            }),
            None => statuses.clear(),
        }
        if reorg {
            self.header_proofs.lock().expect("proof cache").clear();
        }
    }

    pub fn genesis_hash(&self) -> String {
        bitcoin::constants::genesis_block(self.network)
            .block_hash()
            .to_string()
    }

    /// `{hex, height}` of the tip, for `headers.subscribe`.
    pub fn tip(&self) -> Option<Value> {
        let (height, _) = self.index.tip()?;
        let header = self.index.header(height)?;
        Some(json!({ "hex": header_hex(&header), "height": height }))
    }

    fn checkpoint(&self, height: u32, cp_height: u32) -> Result<(Vec<String>, String), RpcError> {
        let tip = self.index.tip().map_or(0, |(h, _)| h);
        if height > cp_height || cp_height > tip {
            return Err(RpcError::bad_request(format!("header height {height} must be <= cp_height {cp_height} which must be <= chain height {tip}")));
        }
        let mut cache = self.header_proofs.lock().expect("proof cache");
        let (branch, root) = cache
            .proof(
                || {
                    self.index
                        .hashes_upto(cp_height)
                        .iter()
                        .map(|h| h.to_byte_array())
                        .collect()
                },
                height,
                cp_height,
            )
            .ok_or_else(|| RpcError::bad_request("checkpoint proof unavailable"))?;
        Ok((branch.into_iter().map(hex_rev).collect(), hex_rev(root)))
    }

    pub fn block_header(&self, height: u32, cp_height: u32) -> Result<Value, RpcError> {
        let header = self
            .index
            .header(height)
            .ok_or_else(|| RpcError::bad_request(format!("height {height} out of range")))?;
        if cp_height == 0 {
            return Ok(json!(header_hex(&header)));
        }
        let (branch, root) = self.checkpoint(height, cp_height)?;
        Ok(json!({ "header": header_hex(&header), "branch": branch, "root": root }))
    }

    pub fn block_headers(
        &self,
        start: u32,
        count: u32,
        cp_height: u32,
        list: bool,
    ) -> Result<Value, RpcError> {
        let count = count.min(MAX_HEADERS);
        let headers: Vec<String> = {
            let chain = self.index.chain();
            chain
                .headers
                .iter()
                .skip(start as usize)
                .take(count as usize)
                .map(header_hex)
                .collect()
        };
        let n = headers.len() as u32;
        let mut result = if list {
            json!({ "count": n, "max": MAX_HEADERS, "headers": headers })
        } else {
            json!({ "count": n, "max": MAX_HEADERS, "hex": headers.concat() })
        };
        if cp_height > 0 && n > 0 {
            let (branch, root) = self.checkpoint(start + n - 1, cp_height)?;
            result["branch"] = json!(branch);
            result["root"] = json!(root);
        }
        Ok(result)
    }

    /// The status hash of a script, cached until the script changes.
    pub fn status(&self, sh: &ScriptHash) -> Result<Option<String>, RpcError> {
        if let Some(s) = self.statuses.lock().expect("status cache").get(sh) {
            return Ok(s.clone());
        }
        let _g = self.read();
        let confirmed = self.index.history(sh, None)?;
        let mempool = self.mempool.read().expect("mempool").history(sh);
        let status = status_hash(
            confirmed
                .iter()
                .map(|c| (c.txid, i64::from(c.height)))
                .chain(mempool.iter().map(|m| (m.txid, i64::from(m.height)))),
        );
        self.statuses
            .lock()
            .expect("status cache")
            .insert(*sh, status.clone());
        Ok(status)
    }

    /// Confirmed history then mempool, optionally paged by height (`to` −1: the tip).
    pub fn history(
        &self,
        sh: &ScriptHash,
        from: Option<u32>,
        to: Option<i64>,
    ) -> Result<Value, RpcError> {
        let _g = self.read();
        let paged = from.is_some() || to.is_some();
        let tip = self.index.tip().map_or(0, |(h, _)| h);
        let lo = from.unwrap_or(0);
        let hi = match to {
            None | Some(-1) => tip + 1,
            Some(h) => (h as u64).min(u64::from(tip) + 1) as u32,
        };
        let confirmed = self
            .index
            .history(sh, if paged { Some((lo, hi.max(lo))) } else { None })?;
        let include_mempool = !paged || matches!(to, None | Some(-1));
        let mempool = if include_mempool {
            self.mempool.read().expect("mempool").history(sh)
        } else {
            Vec::new()
        };
        if !paged && confirmed.len() + mempool.len() > self.max_history {
            return Err(RpcError::new(
                HISTORY_TOO_LARGE,
                format!(
                    "history too large ({} transactions); page it with from_height and to_height",
                    confirmed.len() + mempool.len()
                ),
            ));
        }
        let mut out: Vec<Value> = confirmed
            .iter()
            .map(|c| json!({ "tx_hash": c.txid.to_string(), "height": c.height }))
            .collect();
        out.extend(
            mempool.iter().map(
                |m| json!({ "tx_hash": m.txid.to_string(), "height": m.height, "fee": m.fee }),
            ),
        );
        Ok(Value::Array(out))
    }

    pub fn mempool_history(&self, sh: &ScriptHash) -> Value {
        let entries = self.mempool.read().expect("mempool").history(sh);
        Value::Array(
            entries
                .iter()
                .map(|m| json!({ "tx_hash": m.txid.to_string(), "height": m.height, "fee": m.fee }))
                .collect(),
        )
    }

    pub fn balance(&self, sh: &ScriptHash) -> Result<Value, RpcError> {
        let _g = self.read();
        let confirmed: u64 = self.index.utxos(sh)?.iter().map(|(_, v)| v.value).sum();
        let unconfirmed = self.mempool.read().expect("mempool").balance_delta(sh);
        Ok(json!({ "confirmed": confirmed, "unconfirmed": unconfirmed }))
    }

    pub fn listunspent(&self, sh: &ScriptHash) -> Result<Value, RpcError> {
        let _g = self.read();
        let mut confirmed = self.index.utxos(sh)?;
        // Chain order: height, then position in the block.
        let mut position: HashMap<Txid, u32> = HashMap::new();
        for (k, _) in &confirmed {
            if let std::collections::hash_map::Entry::Vacant(e) = position.entry(k.outpoint.txid) {
                e.insert(self.index.locate(&k.outpoint.txid)?.map_or(0, |(_, p)| p));
            }
        }
        confirmed.sort_by_key(|(k, v)| (v.height, position[&k.outpoint.txid], k.outpoint.vout));
        let mempool = self.mempool.read().expect("mempool");
        let mut out: Vec<Value> = confirmed
            .iter()
            .filter(|(k, _)| !mempool.is_spent(&k.outpoint))
            .map(|(k, v)| json!({ "tx_hash": k.outpoint.txid.to_string(), "tx_pos": k.outpoint.vout, "height": v.height, "value": v.value }))
            .collect();
        out.extend(
            mempool
                .outputs_to(sh)
                .into_iter()
                .filter(|(o, _)| !mempool.is_spent(o))
                .map(|(o, value)| json!({ "tx_hash": o.txid.to_string(), "tx_pos": o.vout, "height": 0, "value": value })),
        );
        Ok(Value::Array(out))
    }

    fn transaction(&self, txid: &Txid) -> Result<(Transaction, Option<(u32, u32)>), RpcError> {
        let location = self.index.locate(txid)?;
        let block = location.and_then(|(h, _)| self.index.block_hash(h));
        let found = self.source.transaction(txid, block.as_ref())?;
        let found = found.ok_or_else(|| {
            RpcError::new(
                DAEMON_ERROR,
                format!("no such mempool or blockchain transaction: {txid}"),
            )
        })?;
        if found.tx.compute_txid() != *txid {
            return Err(RpcError::new(
                DAEMON_ERROR,
                "the node returned a different transaction",
            ));
        }
        Ok((found.tx, location))
    }

    pub fn transaction_get(&self, txid: &Txid, verbose: bool) -> Result<Value, RpcError> {
        let (tx, location) = self.transaction(txid)?;
        if !verbose {
            return Ok(json!(serialize_hex(&tx)));
        }
        let ctx = moip_chain::rpc::json::TxContext {
            spent: None,
            prevouts: false,
            hex: true,
        };
        let mut v = moip_chain::rpc::json::transaction(&tx, self.network, &ctx);
        if let (Some((height, _)), Value::Object(map)) = (location, &mut v) {
            let tip = self.index.tip().map_or(height, |(h, _)| h);
            if let (Some(hash), Some(header)) =
                (self.index.block_hash(height), self.index.header(height))
            {
                map.insert("blockhash".into(), json!(hash.to_string()));
                map.insert("confirmations".into(), json!(tip - height + 1));
                map.insert("time".into(), json!(header.time));
                map.insert("blocktime".into(), json!(header.time));
            }
        }
        Ok(v)
    }

    pub fn merkle(&self, txid: &Txid, height: Option<u32>) -> Result<Value, RpcError> {
        let (found_height, pos) = self
            .index
            .locate(txid)?
            .ok_or_else(|| RpcError::bad_request(format!("tx {txid} not in a block")))?;
        if let Some(h) = height {
            if h != found_height {
                return Err(RpcError::bad_request(format!(
                    "tx {txid} not in block at height {h}"
                )));
            }
        }
        let txids = self
            .index
            .block_txids(found_height)?
            .ok_or_else(|| RpcError::bad_request("block not indexed"))?;
        let leaves: Vec<[u8; 32]> = txids.iter().map(|t| t.to_byte_array()).collect();
        let (branch, _) = branch_and_root(&leaves, pos as usize)
            .ok_or_else(|| RpcError::bad_request("position out of range"))?;
        Ok(
            json!({ "block_height": found_height, "merkle": branch.into_iter().map(hex_rev).collect::<Vec<_>>(), "pos": pos }),
        )
    }

    pub fn id_from_pos(&self, height: u32, pos: u32, merkle: bool) -> Result<Value, RpcError> {
        let txids = self
            .index
            .block_txids(height)?
            .ok_or_else(|| RpcError::bad_request(format!("height {height} out of range")))?;
        let txid = txids.get(pos as usize).ok_or_else(|| {
            RpcError::bad_request(format!(
                "no tx at position {pos} in block at height {height}"
            ))
        })?;
        if !merkle {
            return Ok(json!(txid.to_string()));
        }
        let leaves: Vec<[u8; 32]> = txids.iter().map(|t| t.to_byte_array()).collect();
        let (branch, _) = branch_and_root(&leaves, pos as usize).expect("position checked");
        Ok(
            json!({ "tx_hash": txid.to_string(), "merkle": branch.into_iter().map(hex_rev).collect::<Vec<_>>() }),
        )
    }

    /// BTC/kvB for `blocks`, or −1; cached until the tip moves.
    pub fn estimate_fee(&self, blocks: u16, mode: Option<FeeMode>) -> Result<Value, RpcError> {
        let tip = self.index.tip().map(|(_, h)| h);
        let key = (blocks, mode.map_or(0, |m| m as u8 + 1));
        {
            let mut cache = self.fees.lock().expect("fee cache");
            if cache.0 != tip {
                *cache = (tip, HashMap::new());
            }
            if let Some(v) = cache.1.get(&key) {
                return Ok(json!(v));
            }
        }
        let estimate = self.source.estimate_fee(blocks, mode.unwrap_or_default())?;
        let value = estimate.map_or(-1.0, |e| (e.fee_rate.to_sat_per_kwu() * 4) as f64 / 1e8);
        self.fees.lock().expect("fee cache").1.insert(key, value);
        Ok(json!(value))
    }

    pub fn relay_fee(&self) -> Result<Value, RpcError> {
        let rate = self.source.relay_fee()?;
        Ok(json!((rate.to_sat_per_kwu() * 4) as f64 / 1e8))
    }

    pub fn mempool_info(&self) -> Result<Value, RpcError> {
        let info = self.source.mempool_fee_info()?;
        let btc = |r: bitcoin::FeeRate| (r.to_sat_per_kwu() * 4) as f64 / 1e8;
        Ok(json!({
            "mempoolminfee": btc(info.mempool_min_fee),
            "minrelaytxfee": btc(info.min_relay_fee),
            "incrementalrelayfee": btc(info.incremental_relay_fee),
        }))
    }

    pub fn fee_histogram(&self) -> Value {
        json!(self.mempool.read().expect("mempool").fee_histogram())
    }

    fn decode_tx(hex: &str) -> Result<Transaction, RpcError> {
        use bitcoin::hex::FromHex;
        let bytes = Vec::<u8>::from_hex(hex)
            .map_err(|_| RpcError::bad_request("raw transaction is not hex"))?;
        bitcoin::consensus::deserialize(&bytes)
            .map_err(|e| RpcError::bad_request(format!("cannot decode the transaction: {e}")))
    }

    /// Relays a transaction; refusals come back as ElectrumX words them.
    pub fn broadcast(&self, hex: &str) -> Result<Value, RpcError> {
        let tx = Self::decode_tx(hex)?;
        match self.source.broadcast(&tx) {
            Ok(txid) => Ok(json!(txid.to_string())),
            Err(moip_chain::ChainError::Rejected(r)) => Err(RpcError::new(
                BAD_REQUEST,
                format!(
                    "the transaction was rejected by network rules.\n\n{r}\n[{}]",
                    hex.chars().take(2000).collect::<String>()
                ),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub fn broadcast_package(&self, hexes: &[String], verbose: bool) -> Result<Value, RpcError> {
        if hexes.is_empty() || hexes.len() > 25 {
            return Err(RpcError::bad_request(
                "a package holds 1 to 25 transactions",
            ));
        }
        let txs = hexes
            .iter()
            .map(|h| Self::decode_tx(h))
            .collect::<Result<Vec<_>, _>>()?;
        let outcome = match self.source.broadcast_package(&txs) {
            Ok(o) => o,
            Err(moip_chain::ChainError::Invalid(m))
            | Err(moip_chain::ChainError::Rpc { message: m, .. }) => {
                return Err(RpcError::bad_request(m));
            }
            Err(e) => return Err(e.into()),
        };
        let errors: Vec<Value> = outcome
            .tx_results
            .iter()
            .filter_map(|r| {
                r.error
                    .as_ref()
                    .map(|e| json!({ "txid": r.txid.to_string(), "error": e }))
            })
            .collect();
        let success = outcome.message == "success";
        if verbose {
            return Ok(json!({
                "package_msg": outcome.message,
                "tx-results": outcome.tx_results.iter().map(|r| (r.wtxid.to_string(), json!({
                    "txid": r.txid.to_string(),
                    "vsize": r.vsize,
                    "fees": { "base": r.fee.map(|f| f.to_btc()) },
                    "error": r.error,
                }))).collect::<serde_json::Map<String, Value>>(),
                "replaced-transactions": outcome.replaced.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }));
        }
        let mut result = json!({ "success": success });
        if !errors.is_empty() {
            result["errors"] = Value::Array(errors);
        }
        Ok(result)
    }
}
