//! [`ChainSource`] over a user's bitcoind: JSON-RPC (cookie or user/password), REST for raw
//! blocks and headers when bitcoind runs with `-rest`, and a poller that turns tip and mempool
//! changes into [`ChainEvent`]s.

mod client;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::consensus::deserialize;
use bitcoin::hashes::Hash;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, FeeRate, Network, OutPoint, ScriptBuf, Transaction,
    TxMerkleNode, TxOut, Txid, Wtxid,
};
use serde_json::{json, Value};
use tokio::sync::broadcast;

pub use client::BitcoindAuth;
use client::RpcClient;

use crate::{
    BlockId, ChainError, ChainEvent, ChainSource, FeeEstimate, FeeMode, HeaderEntry, LocatedTx,
    MempoolEntry, PackageOutcome, PackageTxOutcome, RejectKind, RemovalReason, SpentOutput,
    TxLocation, TxRejection,
};

/// How often the poller asks bitcoind for its tip and mempool.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Blocks of history the poller remembers to find the fork point of a reorganisation.
const REORG_MEMORY: u32 = 1_000;

struct Shared {
    rpc: RpcClient,
    network: Network,
    rest: AtomicBool,
    events: broadcast::Sender<ChainEvent>,
    poller_started: AtomicBool,
    stop: AtomicBool,
    poll_interval: Duration,
}

/// A bitcoind reached over JSON-RPC. Cheap to clone.
#[derive(Clone)]
pub struct BitcoindRpc {
    shared: Arc<Shared>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn btc_to_amount(v: &Value) -> Option<Amount> {
    let btc = v.as_f64()?;
    if !(0.0..=21e6).contains(&btc) {
        return None;
    }
    Some(Amount::from_sat((btc * 1e8).round() as u64))
}

fn decode_field<T: FromStr>(v: &Value, key: &str) -> Result<T, ChainError> {
    v.get(key)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ChainError::Decode(format!("bitcoind reply lacks a valid {key}")))
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, ChainError> {
    use bitcoin::hex::FromHex;
    Vec::<u8>::from_hex(s).map_err(|_| ChainError::Decode("bitcoind sent invalid hex".into()))
}

fn is_not_found(e: &ChainError) -> bool {
    matches!(e, ChainError::Rpc { code: -5 | -8, .. })
}

impl BitcoindRpc {
    /// Connects to bitcoind at `url` (e.g. `http://127.0.0.1:8332`) and learns its network.
    ///
    /// # Errors
    /// Fails if bitcoind cannot be reached or refuses the credentials.
    pub fn connect(url: &str, auth: BitcoindAuth) -> Result<BitcoindRpc, ChainError> {
        Self::connect_with(url, auth, DEFAULT_POLL_INTERVAL)
    }

    /// As [`Self::connect`], with the poll interval of the event stream.
    pub fn connect_with(
        url: &str,
        auth: BitcoindAuth,
        poll_interval: Duration,
    ) -> Result<BitcoindRpc, ChainError> {
        let rpc = RpcClient::new(url, auth);
        let info = rpc.call("getblockchaininfo", json!([]))?;
        let network = match info.get("chain").and_then(Value::as_str) {
            Some("main") => Network::Bitcoin,
            Some("test") => Network::Testnet,
            Some("testnet4") => Network::Testnet4,
            Some("signet") => Network::Signet,
            Some("regtest") => Network::Regtest,
            other => return Err(ChainError::Decode(format!("unknown chain {other:?}"))),
        };
        let (events, _) = broadcast::channel(65_536);
        let shared = Arc::new(Shared {
            rpc,
            network,
            rest: AtomicBool::new(true),
            events,
            poller_started: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            poll_interval,
        });
        Ok(BitcoindRpc { shared })
    }

    /// Calls any RPC method, for what the trait does not cover.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, ChainError> {
        self.shared.rpc.call(method, params)
    }

    fn rest(&self, path: &str) -> Result<Option<Vec<u8>>, ChainError> {
        if !self.shared.rest.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match self.shared.rpc.rest(path)? {
            Some(bytes) => Ok(Some(bytes)),
            None => {
                // A 404 on chaininfo means REST is off; remember and stop asking.
                if self.shared.rpc.rest("chaininfo.json")?.is_none() {
                    self.shared.rest.store(false, Ordering::Relaxed);
                }
                Ok(None)
            }
        }
    }

    fn header_from_verbose(v: &Value) -> Result<(Header, u32, i64), ChainError> {
        let num = |k: &str| {
            v.get(k)
                .and_then(Value::as_i64)
                .ok_or_else(|| ChainError::Decode(format!("header lacks {k}")))
        };
        let bits = u32::from_str_radix(v.get("bits").and_then(Value::as_str).unwrap_or(""), 16)
            .map_err(|_| ChainError::Decode("header lacks bits".into()))?;
        let prev = match v.get("previousblockhash") {
            Some(_) => decode_field::<BlockHash>(v, "previousblockhash")?,
            None => BlockHash::all_zeros(),
        };
        let header = Header {
            version: BlockVersion::from_consensus(num("version")? as i32),
            prev_blockhash: prev,
            merkle_root: decode_field::<TxMerkleNode>(v, "merkleroot")?,
            time: num("time")? as u32,
            bits: CompactTarget::from_consensus(bits),
            nonce: num("nonce")? as u32,
        };
        let hash: BlockHash = decode_field(v, "hash")?;
        if header.block_hash() != hash {
            return Err(ChainError::Decode(format!(
                "header fields do not hash to {hash}"
            )));
        }
        Ok((header, num("height")? as u32, num("confirmations")?))
    }

    fn start_poller(&self) {
        if self.shared.poller_started.swap(true, Ordering::SeqCst) {
            return;
        }
        // The first look happens now, so a subscriber sees every change after `subscribe`.
        let mut state = PollState::default();
        if let Err(e) = poll_once(self, &mut state) {
            tracing::warn!("bitcoind poll failed: {e}");
        }
        let weak = Arc::downgrade(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("bitcoind-poller".into())
            .spawn(move || poll_loop(weak, state));
        if let Err(e) = spawned {
            tracing::error!("could not start the bitcoind poller: {e}");
        }
    }

    /// Builds entries from `getmempoolentry`-shaped JSON keyed by txid: fetches the raw
    /// transactions, and their prevouts from mempool parents or the UTXO set.
    fn entries_from(
        &self,
        map: &serde_json::Map<String, Value>,
    ) -> Result<Vec<MempoolEntry>, ChainError> {
        let txids: Vec<String> = map.keys().cloned().collect();
        let mut txs = self.raw_transactions(&txids)?;
        // Parents outside the requested set still lend their outputs.
        let parents: Vec<String> = map
            .values()
            .flat_map(|e| {
                e.get("depends")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|d| d.as_str().map(str::to_owned))
            .filter(|d| d.parse::<Txid>().is_ok_and(|t| !txs.contains_key(&t)))
            .collect();
        let parent_txs = self.raw_transactions(&parents)?;
        let requested: HashSet<Txid> = txs.keys().copied().collect();
        txs.extend(parent_txs);
        // Prevouts: from mempool parents, else from the UTXO set.
        let confirmed: Vec<OutPoint> = txs
            .iter()
            .filter(|(txid, _)| requested.contains(*txid))
            .flat_map(|(_, tx)| tx.input.iter().map(|i| i.previous_output))
            .filter(|o| !txs.contains_key(&o.txid))
            .collect();
        let coins = self.shared.rpc.batch(
            "gettxout",
            confirmed
                .iter()
                .map(|o| json!([o.txid.to_string(), o.vout, false]))
                .collect(),
        )?;
        let mut utxo: HashMap<OutPoint, TxOut> = HashMap::new();
        for (outpoint, coin) in confirmed.iter().zip(coins) {
            if let Ok(c) = coin {
                let value = c.get("value").and_then(btc_to_amount);
                let script = c
                    .get("scriptPubKey")
                    .and_then(|s| s.get("hex"))
                    .and_then(Value::as_str);
                if let (Some(value), Some(script)) = (value, script) {
                    utxo.insert(
                        *outpoint,
                        TxOut {
                            value,
                            script_pubkey: ScriptBuf::from_bytes(hex_bytes(script)?),
                        },
                    );
                }
            }
        }
        let mut out = Vec::with_capacity(requested.len());
        for (txid_s, e) in map {
            let Ok(txid) = txid_s.parse::<Txid>() else {
                continue;
            };
            let Some(tx) = txs.get(&txid) else { continue };
            let prevouts: Vec<TxOut> = tx
                .input
                .iter()
                .filter_map(|i| {
                    let o = i.previous_output;
                    txs.get(&o.txid)
                        .and_then(|p| p.output.get(o.vout as usize).cloned())
                        .or_else(|| utxo.get(&o).cloned())
                })
                .collect();
            let fees = e.get("fees");
            let amount = |k: &str| {
                fees.and_then(|f| f.get(k))
                    .and_then(btc_to_amount)
                    .unwrap_or(Amount::ZERO)
            };
            let num = |k: &str| e.get(k).and_then(Value::as_u64).unwrap_or(0);
            let ids = |k: &str| -> Vec<Txid> {
                e.get(k)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
                    .unwrap_or_default()
            };
            out.push(MempoolEntry {
                tx: Arc::new(tx.clone()),
                txid,
                wtxid: e
                    .get("wtxid")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<Wtxid>().ok())
                    .unwrap_or_else(|| tx.compute_wtxid()),
                fee: amount("base"),
                vsize: num("vsize"),
                weight: num("weight"),
                time: num("time"),
                height: num("height") as u32,
                prevouts,
                depends: ids("depends"),
                spent_by: ids("spentby"),
                ancestor_count: num("ancestorcount"),
                ancestor_vsize: num("ancestorsize"),
                ancestor_fees: amount("ancestor"),
                descendant_count: num("descendantcount"),
                descendant_vsize: num("descendantsize"),
                descendant_fees: amount("descendant"),
                bip125_replaceable: e
                    .get("bip125-replaceable")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
            });
        }
        out.sort_by_key(|e| (e.time, e.txid));
        Ok(out)
    }

    /// Raw transactions by txid, in one batch; ones bitcoind no longer has are skipped.
    fn raw_transactions(&self, txids: &[String]) -> Result<HashMap<Txid, Transaction>, ChainError> {
        let raws = self.shared.rpc.batch(
            "getrawtransaction",
            txids.iter().map(|t| json!([t, false])).collect(),
        )?;
        let mut txs = HashMap::new();
        for raw in raws.into_iter().flatten() {
            if let Some(hex) = raw.as_str() {
                let tx: Transaction = deserialize(&hex_bytes(hex)?)?;
                txs.insert(tx.compute_txid(), tx);
            }
        }
        Ok(txs)
    }

    fn rejection(e: ChainError) -> ChainError {
        match e {
            ChainError::Rpc { code, message } => {
                let kind = match code {
                    -26 => RejectKind::Rejected,
                    -27 => RejectKind::AlreadyInChain,
                    -25 if message.contains("maximum") => RejectKind::MaxFeeExceeded,
                    -25 => RejectKind::MissingInputs,
                    _ => return ChainError::Rpc { code, message },
                };
                ChainError::Rejected(TxRejection::new(kind, message))
            }
            other => other,
        }
    }
}

/// What the poller has seen so far.
#[derive(Default)]
struct PollState {
    chain: BTreeMap<u32, BlockHash>,
    mempool: HashSet<Txid>,
    primed: bool,
}

/// Follows bitcoind's tip and mempool and publishes the differences as events.
fn poll_loop(shared: Weak<Shared>, mut state: PollState) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        let interval = s.poll_interval;
        std::thread::sleep(interval);
        let node = BitcoindRpc { shared: s };
        if let Err(e) = poll_once(&node, &mut state) {
            tracing::warn!("bitcoind poll failed: {e}");
        }
    }
}

fn poll_once(node: &BitcoindRpc, state: &mut PollState) -> Result<(), ChainError> {
    let tip = node.tip()?;
    let emit = |e: ChainEvent| {
        let _ = node.shared.events.send(e);
    };
    let mut confirmed: HashSet<Txid> = HashSet::new();
    let chain = &mut state.chain;
    if !state.primed {
        chain.insert(tip.height, tip.hash);
    } else if chain.get(&tip.height) != Some(&tip.hash)
        || chain.keys().next_back() != Some(&tip.height)
    {
        // Find the highest remembered block still on bitcoind's chain.
        let mut fork = None;
        for (&h, &hash) in chain.iter().rev() {
            if node.block_hash(h)? == Some(hash) {
                fork = Some(h);
                break;
            }
        }
        let fork = fork.unwrap_or_else(|| tip.height.saturating_sub(1));
        let stale: Vec<(u32, BlockHash)> = chain
            .range(fork + 1..)
            .map(|(h, b)| (*h, *b))
            .rev()
            .collect();
        for (height, hash) in stale {
            chain.remove(&height);
            emit(ChainEvent::BlockDisconnected(BlockId { height, hash }));
        }
        for height in fork + 1..=tip.height {
            let Some(hash) = node.block_hash(height)? else {
                break;
            };
            if let Some(block) = node.block(&hash)? {
                confirmed.extend(block.txdata.iter().map(Transaction::compute_txid));
            }
            chain.insert(height, hash);
            emit(ChainEvent::BlockConnected(BlockId { height, hash }));
        }
        while chain.len() as u32 > REORG_MEMORY {
            let lowest = *chain.keys().next().expect("non-empty");
            chain.remove(&lowest);
        }
    }
    let now: HashSet<Txid> = node
        .call("getrawmempool", json!([]))?
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    if state.primed {
        for txid in state.mempool.difference(&now) {
            let reason = if confirmed.contains(txid) {
                RemovalReason::Block
            } else {
                RemovalReason::Replaced
            };
            emit(ChainEvent::TxRemoved {
                txid: *txid,
                reason,
            });
        }
        for txid in now.difference(&state.mempool) {
            emit(ChainEvent::TxAdded { txid: *txid });
        }
    }
    state.mempool = now;
    state.primed = true;
    Ok(())
}

impl ChainSource for BitcoindRpc {
    fn network(&self) -> Network {
        self.shared.network
    }

    fn tip(&self) -> Result<BlockId, ChainError> {
        let info = self.call("getblockchaininfo", json!([]))?;
        let height = info
            .get("blocks")
            .and_then(Value::as_u64)
            .ok_or_else(|| ChainError::Decode("no blocks".into()))?;
        Ok(BlockId {
            height: height as u32,
            hash: decode_field(&info, "bestblockhash")?,
        })
    }

    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, ChainError> {
        match self.call("getblockhash", json!([height])) {
            Ok(v) => {
                Ok(Some(v.as_str().and_then(|s| s.parse().ok()).ok_or_else(
                    || ChainError::Decode("bad block hash".into()),
                )?))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderEntry>, ChainError> {
        match self.call("getblockheader", json!([hash.to_string(), true])) {
            Ok(v) => {
                let (header, height, confirmations) = Self::header_from_verbose(&v)?;
                Ok(Some(HeaderEntry {
                    height,
                    header,
                    in_active_chain: confirmations >= 0,
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn headers(&self, start_height: u32, count: u32) -> Result<Vec<Header>, ChainError> {
        let Some(start) = self.block_hash(start_height)? else {
            return Ok(Vec::new());
        };
        if let Some(bytes) = self.rest(&format!("headers/{start}.bin?count={}", count.min(2000)))? {
            let headers: Vec<Header> = bytes
                .chunks_exact(80)
                .map(deserialize)
                .collect::<Result<_, _>>()?;
            if count <= 2000 || headers.len() < 2000 {
                return Ok(headers);
            }
        }
        let hashes = self.shared.rpc.batch(
            "getblockhash",
            (start_height..start_height.saturating_add(count))
                .map(|h| json!([h]))
                .collect(),
        )?;
        let hashes: Vec<String> = hashes
            .into_iter()
            .map_while(|r| r.ok()?.as_str().map(str::to_owned))
            .collect();
        let raw = self.shared.rpc.batch(
            "getblockheader",
            hashes.iter().map(|h| json!([h, false])).collect(),
        )?;
        raw.into_iter()
            .map(|r| {
                let v = r?;
                let bytes = hex_bytes(v.as_str().unwrap_or(""))?;
                Ok(deserialize(&bytes)?)
            })
            .collect()
    }

    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
        if let Some(bytes) = self.rest(&format!("block/{hash}.bin"))? {
            let block: Block = deserialize(&bytes)?;
            if block.block_hash() == *hash {
                return Ok(Some(block));
            }
        }
        match self.call("getblock", json!([hash.to_string(), 0])) {
            Ok(v) => {
                let block: Block = deserialize(&hex_bytes(v.as_str().unwrap_or(""))?)?;
                if block.block_hash() != *hash {
                    return Err(ChainError::Decode(format!(
                        "bitcoind returned a different block for {hash}"
                    )));
                }
                Ok(Some(block))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn spent_outputs(&self, hash: &BlockHash) -> Result<Option<Vec<Vec<SpentOutput>>>, ChainError> {
        let v = match self.call("getblock", json!([hash.to_string(), 3])) {
            Ok(v) => v,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let txs = v
            .get("tx")
            .and_then(Value::as_array)
            .ok_or_else(|| ChainError::Decode("getblock 3 lacks tx".into()))?;
        let mut out = Vec::with_capacity(txs.len().saturating_sub(1));
        for tx in txs.iter().skip(1) {
            let vin = tx
                .get("vin")
                .and_then(Value::as_array)
                .ok_or_else(|| ChainError::Decode("tx lacks vin".into()))?;
            let mut spent = Vec::with_capacity(vin.len());
            for input in vin {
                let p = input.get("prevout").ok_or_else(|| {
                    ChainError::Decode("bitcoind did not send prevouts (needs Core 22+)".into())
                })?;
                let script = p
                    .get("scriptPubKey")
                    .and_then(|s| s.get("hex"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                spent.push(SpentOutput {
                    txout: TxOut {
                        value: p
                            .get("value")
                            .and_then(btc_to_amount)
                            .ok_or_else(|| ChainError::Decode("bad prevout value".into()))?,
                        script_pubkey: ScriptBuf::from_bytes(hex_bytes(script)?),
                    },
                    height: p.get("height").and_then(Value::as_u64).unwrap_or(0) as u32,
                    coinbase: p.get("generated").and_then(Value::as_bool).unwrap_or(false),
                });
            }
            out.push(spent);
        }
        Ok(Some(out))
    }

    fn transaction(
        &self,
        txid: &Txid,
        block: Option<&BlockHash>,
    ) -> Result<Option<LocatedTx>, ChainError> {
        let mut params = vec![json!(txid.to_string()), json!(1)];
        if let Some(b) = block {
            params.push(json!(b.to_string()));
        }
        let v = match self.call("getrawtransaction", Value::Array(params)) {
            Ok(v) => v,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let tx: Transaction = deserialize(&hex_bytes(
            v.get("hex").and_then(Value::as_str).unwrap_or(""),
        )?)?;
        if tx.compute_txid() != *txid {
            return Err(ChainError::Decode(format!(
                "bitcoind returned a different transaction for {txid}"
            )));
        }
        let location = match v
            .get("blockhash")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<BlockHash>().ok())
        {
            Some(block_hash) => {
                let height = self.header(&block_hash)?.map_or(0, |h| h.height);
                let ids = self.call("getblock", json!([block_hash.to_string(), 1]))?;
                let position = ids
                    .get("tx")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().position(|t| t.as_str() == Some(&txid.to_string())))
                    .unwrap_or(0) as u32;
                Some(TxLocation {
                    block_hash,
                    height,
                    position,
                })
            }
            None => None,
        };
        Ok(Some(LocatedTx { tx, location }))
    }

    fn mempool(&self) -> Result<Vec<MempoolEntry>, ChainError> {
        let verbose = self.call("getrawmempool", json!([true]))?;
        let map = verbose
            .as_object()
            .ok_or_else(|| ChainError::Decode("getrawmempool true is not an object".into()))?;
        self.entries_from(map)
    }

    fn mempool_txids(&self) -> Result<Vec<Txid>, ChainError> {
        let v = self.call("getrawmempool", json!([]))?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(|t| t.as_str()?.parse().ok()).collect())
            .unwrap_or_default())
    }

    fn mempool_entries(&self, txids: &[Txid]) -> Result<Vec<MempoolEntry>, ChainError> {
        let replies = self.shared.rpc.batch(
            "getmempoolentry",
            txids.iter().map(|t| json!([t.to_string()])).collect(),
        )?;
        let mut map = serde_json::Map::new();
        for (txid, reply) in txids.iter().zip(replies) {
            // Gone from the mempool since it was listed: skip.
            if let Ok(entry) = reply {
                map.insert(txid.to_string(), entry);
            }
        }
        self.entries_from(&map)
    }

    fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        let receiver = self.shared.events.subscribe();
        self.start_poller();
        receiver
    }

    fn broadcast(&self, tx: &Transaction) -> Result<Txid, ChainError> {
        let hex = bitcoin::consensus::encode::serialize_hex(tx);
        let v = self
            .call("sendrawtransaction", json!([hex]))
            .map_err(Self::rejection)?;
        v.as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ChainError::Decode("sendrawtransaction returned no txid".into()))
    }

    fn broadcast_package(&self, txs: &[Transaction]) -> Result<PackageOutcome, ChainError> {
        let hexes: Vec<String> = txs
            .iter()
            .map(bitcoin::consensus::encode::serialize_hex)
            .collect();
        let v = self
            .call("submitpackage", json!([hexes]))
            .map_err(Self::rejection)?;
        let results = v
            .get("tx-results")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let tx_results = txs
            .iter()
            .map(|tx| {
                let wtxid = tx.compute_wtxid();
                let r = results
                    .get(&wtxid.to_string())
                    .cloned()
                    .unwrap_or(Value::Null);
                let fees = r.get("fees");
                PackageTxOutcome {
                    txid: tx.compute_txid(),
                    wtxid,
                    vsize: r.get("vsize").and_then(Value::as_u64),
                    fee: fees.and_then(|f| f.get("base")).and_then(btc_to_amount),
                    effective_fee_rate: fees
                        .and_then(|f| f.get("effective-feerate"))
                        .and_then(btc_to_amount)
                        .map(|a| FeeRate::from_sat_per_kwu(a.to_sat() / 4)),
                    effective_includes: fees
                        .and_then(|f| f.get("effective-includes"))
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|w| w.as_str()?.parse().ok()).collect())
                        .unwrap_or_default(),
                    error: r.get("error").and_then(Value::as_str).map(str::to_owned),
                    other_wtxid: r
                        .get("other-wtxid")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse().ok()),
                }
            })
            .collect();
        Ok(PackageOutcome {
            message: v
                .get("package_msg")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            tx_results,
            replaced: v
                .get("replaced-transactions")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|t| t.as_str()?.parse().ok()).collect())
                .unwrap_or_default(),
        })
    }

    fn estimate_fee(
        &self,
        target_blocks: u16,
        mode: FeeMode,
    ) -> Result<Option<FeeEstimate>, ChainError> {
        let mode = match mode {
            FeeMode::Unset => "unset",
            FeeMode::Economical => "economical",
            FeeMode::Conservative => "conservative",
        };
        let v = self.call("estimatesmartfee", json!([target_blocks, mode]))?;
        let Some(rate) = v.get("feerate").and_then(btc_to_amount) else {
            return Ok(None);
        };
        let blocks = v
            .get("blocks")
            .and_then(Value::as_u64)
            .unwrap_or(u64::from(target_blocks)) as u16;
        Ok(Some(FeeEstimate {
            fee_rate: FeeRate::from_sat_per_kwu(rate.to_sat() / 4),
            blocks,
        }))
    }

    fn mempool_fee_info(&self) -> Result<crate::MempoolFeeInfo, ChainError> {
        let v = self.call("getmempoolinfo", json!([]))?;
        let rate = |k: &str| {
            v.get(k)
                .and_then(btc_to_amount)
                .map(|a| FeeRate::from_sat_per_kwu(a.to_sat() / 4))
                .ok_or_else(|| ChainError::Decode(format!("getmempoolinfo lacks {k}")))
        };
        Ok(crate::MempoolFeeInfo {
            mempool_min_fee: rate("mempoolminfee")?,
            min_relay_fee: rate("minrelaytxfee")?,
            incremental_relay_fee: rate("incrementalrelayfee")?,
        })
    }

    fn relay_fee(&self) -> Result<FeeRate, ChainError> {
        let v = self.call("getnetworkinfo", json!([]))?;
        let rate = v
            .get("relayfee")
            .and_then(btc_to_amount)
            .ok_or_else(|| ChainError::Decode("getnetworkinfo lacks relayfee".into()))?;
        Ok(FeeRate::from_sat_per_kwu(rate.to_sat() / 4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_from_json_numbers() {
        assert_eq!(btc_to_amount(&json!(0.00001)), Some(Amount::from_sat(1000)));
        assert_eq!(
            btc_to_amount(&json!(50)),
            Some(Amount::from_sat(5_000_000_000))
        );
        assert_eq!(btc_to_amount(&json!(-1)), None);
        assert_eq!(btc_to_amount(&json!("1")), None);
    }
}
