//! The embedded regtest node: Bitcoin Core's block validation (libbitcoinkernel) with moip's own
//! UTXO view, transaction index, mempool, miner and fee estimator around it.
//!
//! Locking: `state` (the mempool, and the right to change the chain) is always taken before
//! `kernel`. The kernel lock is a read lock for everything but the rare chainstate rebuild behind
//! `invalidateblock`, so readers (RPC, indexers) never queue behind validation.

mod accept;
mod chainstate;
mod fees;
mod kernel;
mod mempool;
mod miner;
mod policy;
mod store;
mod txsubmit;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, FeeRate, Network, OutPoint, Transaction, Txid};
use tokio::sync::broadcast;

use self::kernel::Kernel;
use self::mempool::Mempool;
use self::store::Store;
use crate::{
    BlockId, ChainError, ChainEvent, ChainSource, FeeEstimate, FeeMode, HeaderEntry, LocatedTx,
    MempoolEntry, PackageOutcome, SpentOutput,
};

pub use chainstate::BlockSubmission;
pub use policy::is_bare_multisig;
pub(crate) use txsubmit::MAX_PACKAGE_COUNT;
pub use txsubmit::{SubmitOptions, TestAcceptResult};

/// How often the background checkpoint looks for new blocks to make durable.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);
/// Events buffered per subscriber before it is told it lagged.
const EVENT_BUFFER: usize = 65_536;

/// Settings of an [`EmbeddedNode`].
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Directory holding the kernel's chainstate, the index and `mempool.dat`.
    pub data_dir: PathBuf,
    /// Threads the kernel uses to check scripts of blocks in parallel (0: none).
    pub script_threads: i32,
    /// Save the mempool on shutdown and load it on start, like Core's `-persistmempool`.
    pub persist_mempool: bool,
    /// Make new blocks durable in the background (see [`EmbeddedNode::checkpoint`]).
    pub background_checkpoints: bool,
}

impl NodeConfig {
    /// Defaults for a node in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            data_dir: data_dir.into(),
            script_threads: 2,
            persist_mempool: true,
            background_checkpoints: true,
        }
    }
}

/// What spends an output, as `gettxspendingprevout` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Nothing (in the mempool, or at all when the index was asked too).
    Unspent,
    /// A mempool transaction.
    Mempool(Txid),
    /// A confirmed transaction in the given block.
    Confirmed {
        /// The spending transaction.
        txid: Txid,
        /// The block that confirmed it.
        block: BlockHash,
    },
}

/// Figures for `getmempoolinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolInfo {
    /// Number of transactions.
    pub size: u64,
    /// Sum of virtual sizes.
    pub bytes: u64,
    /// Estimated memory use.
    pub usage: u64,
    /// Sum of fees, in satoshis.
    pub total_fee: u64,
}

/// Relay policy figures the RPCs report.
#[derive(Debug, Clone, Copy)]
pub struct PolicyFigures {
    /// Lowest fee rate relayed.
    pub min_relay_fee: FeeRate,
    /// Extra fee rate a replacement pays for its own size.
    pub incremental_relay_fee: FeeRate,
    /// Largest total OP_RETURN payload of a standard transaction.
    pub max_datacarrier_bytes: usize,
}

/// The node's relay policy.
pub fn policy_figures() -> PolicyFigures {
    PolicyFigures {
        min_relay_fee: policy::MIN_RELAY_FEE,
        incremental_relay_fee: policy::INCREMENTAL_RELAY_FEE,
        max_datacarrier_bytes: policy::MAX_DATACARRIER_BYTES,
    }
}

/// What `getblockchaininfo` reports.
#[derive(Debug, Clone)]
pub struct ChainInfo {
    /// The active tip.
    pub tip: BlockId,
    /// Its header.
    pub header: Header,
    /// Its median-time-past.
    pub median_time: u32,
    /// Total work, as 64 hex digits.
    pub chainwork: String,
    /// Bytes on disk of chainstate, blocks and index.
    pub size_on_disk: u64,
}

pub(crate) struct State {
    mempool: Mempool,
}

pub(crate) struct Inner {
    config: NodeConfig,
    state: Mutex<State>,
    kernel: RwLock<Option<Kernel>>,
    store: Store,
    events: broadcast::Sender<ChainEvent>,
    started: Instant,
    /// Coinbase extra nonce of the next mined block; starts random so restarts do not repeat.
    extra_nonce: std::sync::atomic::AtomicU32,
    /// Counts mempool additions and removals (`getrawmempool`'s `mempool_sequence`).
    mempool_sequence: AtomicU64,
    /// Tip at the last checkpoint, and the flag that stops the checkpoint thread.
    checkpoint: Mutex<(Option<BlockHash>, bool)>,
    checkpoint_wake: Condvar,
    /// The last few blocks read for transaction lookups: an Electrum server fetching a
    /// wallet's transactions asks for many from the same blocks, and each kernel read parses
    /// a whole block. Keyed by hash, so a reorg cannot serve stale data.
    recent_blocks: Mutex<std::collections::VecDeque<(BlockHash, Arc<bitcoin::Block>)>>,
}

/// A regtest node validating with Bitcoin Core's consensus engine. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedNode {
    inner: Arc<Inner>,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl EmbeddedNode {
    /// Opens the node in `config.data_dir`, creating a new regtest chain there if there is none,
    /// and brings its index level with the kernel's chainstate (after a crash, too).
    ///
    /// # Errors
    /// Fails if the directory cannot be used or the chainstate cannot be loaded.
    pub fn open(config: NodeConfig) -> Result<EmbeddedNode, ChainError> {
        std::fs::create_dir_all(&config.data_dir)?;
        chainstate::recover_interrupted_rebuild(&config.data_dir)?;
        let store = Store::open(&config.data_dir.join("index"))?;
        let kernel = Kernel::open(
            &chainstate::kernel_dir(&config.data_dir),
            config.script_threads,
        )?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                mempool: Mempool::default(),
            }),
            kernel: RwLock::new(Some(kernel)),
            store,
            events,
            started: Instant::now(),
            mempool_sequence: AtomicU64::new(1),
            extra_nonce: std::sync::atomic::AtomicU32::new(rand::random::<u32>() >> 1),
            checkpoint: Mutex::new((None, false)),
            checkpoint_wake: Condvar::new(),
            recent_blocks: Mutex::new(std::collections::VecDeque::new()),
            config,
        });
        {
            let mut state = inner.lock_state();
            inner.resume(&mut state)?;
            if inner.config.persist_mempool {
                inner.load_mempool(&mut state);
            }
        }
        let tip = inner.with_kernel(|k| Ok(k.tip_hash()))?;
        inner.checkpoint.lock().expect("checkpoint lock").0 = Some(tip);
        if inner.config.background_checkpoints {
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name("chain-checkpoint".into())
                .spawn(move || chainstate::checkpoint_loop(weak))?;
        }
        tracing::info!(height = tip_height(&inner)?, dir = %inner.config.data_dir.display(), "embedded regtest node open");
        Ok(EmbeddedNode { inner })
    }

    /// The directory the node keeps its files in.
    pub fn data_dir(&self) -> &Path {
        &self.inner.config.data_dir
    }

    /// Seconds since the node was opened.
    pub fn uptime(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }

    /// Chain figures for `getblockchaininfo`.
    pub fn chain_info(&self) -> Result<ChainInfo, ChainError> {
        let size_on_disk = dir_size(&chainstate::kernel_dir(&self.inner.config.data_dir))
            + dir_size(&self.inner.config.data_dir.join("index"));
        self.inner.with_kernel(|k| {
            let height = k.height();
            let header = k
                .header_at(height)
                .ok_or_else(|| ChainError::Kernel("tip header missing".into()))?;
            Ok(ChainInfo {
                tip: BlockId {
                    height,
                    hash: header.block_hash(),
                },
                header,
                median_time: chainstate::median_time_past(k, height),
                chainwork: miner::chainwork_hex(height),
                size_on_disk,
            })
        })
    }

    /// Median-time-past of the active-chain block at `height`.
    pub fn median_time_past(&self, height: u32) -> Result<u32, ChainError> {
        self.inner
            .with_kernel(|k| Ok(chainstate::median_time_past(k, height)))
    }

    /// Total chain work up to `height`, as 64 hex digits.
    pub fn chainwork(&self, height: u32) -> String {
        miner::chainwork_hex(height)
    }

    /// Core's difficulty figure for a header's `bits`.
    pub fn difficulty(&self, header: &Header) -> f64 {
        miner::difficulty(header.bits)
    }

    /// The next-block subsidy schedule of regtest.
    pub fn subsidy(&self, height: u32) -> bitcoin::Amount {
        miner::subsidy(height)
    }

    /// Raw bytes of a block known to the node.
    pub fn block_bytes(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, ChainError> {
        match self.inner.with_kernel(|k| k.block_bytes(hash))? {
            Some(raw) => Ok(Some(raw)),
            None => self.inner.store.archived_block(hash),
        }
    }

    /// Mempool statistics.
    pub fn mempool_info(&self) -> MempoolInfo {
        let state = self.inner.lock_state();
        let totals = state.mempool.totals();
        MempoolInfo {
            size: totals.count,
            bytes: totals.vsize,
            usage: totals.weight * 2 + totals.count * 400,
            total_fee: totals.fee.to_sat(),
        }
    }

    /// Txids in the mempool, in the order they entered.
    pub fn mempool_txids(&self) -> Vec<Txid> {
        self.inner.lock_state().mempool.txids_by_sequence()
    }

    /// The mempool sequence number: grows with every addition and removal.
    pub fn mempool_sequence(&self) -> u64 {
        self.inner.mempool_sequence.load(Ordering::Relaxed)
    }

    /// One mempool entry with its statistics.
    pub fn mempool_entry(&self, txid: &Txid) -> Option<MempoolEntry> {
        self.inner.lock_state().mempool.entry(txid)
    }

    /// An unspent output (`gettxout`): from the UTXO set, or with `include_mempool` also from
    /// mempool transactions, and then hidden if a mempool transaction spends it. Mempool outputs
    /// carry the height of the next block.
    pub fn unspent_output(
        &self,
        outpoint: &OutPoint,
        include_mempool: bool,
    ) -> Result<Option<SpentOutput>, ChainError> {
        let state = self.inner.lock_state();
        if include_mempool {
            if state.mempool.spender(outpoint).is_some() {
                return Ok(None);
            }
            if let Some(out) = state.mempool.output(outpoint) {
                let height = self.inner.with_kernel(|k| Ok(k.height() + 1))?;
                return Ok(Some(SpentOutput {
                    txout: out.clone(),
                    height,
                    coinbase: false,
                }));
            }
        }
        self.inner.store.coin(outpoint)
    }

    /// What spends an output: a mempool transaction, else (unless `mempool_only`) a confirmed
    /// one from the spender index, with its block.
    pub fn spender_of(&self, outpoint: &OutPoint, mempool_only: bool) -> Result<Spend, ChainError> {
        if let Some(txid) = self.inner.lock_state().mempool.spender(outpoint) {
            return Ok(Spend::Mempool(txid));
        }
        if mempool_only {
            return Ok(Spend::Unspent);
        }
        let Some(txid) = self.inner.store.spender(outpoint)? else {
            return Ok(Spend::Unspent);
        };
        let block = self
            .inner
            .store
            .tx_location(&txid)?
            .ok_or_else(|| ChainError::Store(format!("spender {txid} is not in the txindex")))?
            .block_hash;
        Ok(Spend::Confirmed { txid, block })
    }

    /// Stops background work and makes everything durable: the chainstate is flushed, the index
    /// flushed and the mempool saved. The node answers nothing afterwards.
    pub fn shutdown(&self) -> Result<(), ChainError> {
        self.inner.stop_checkpoints();
        let state = self.inner.lock_state();
        if self.inner.config.persist_mempool {
            self.inner.save_mempool(&state)?;
        }
        let kernel = self.inner.kernel.write().expect("kernel lock").take();
        if let Some(kernel) = kernel {
            drop(kernel); // destroying the chainstate manager flushes it
            self.inner.store.clear_journal()?;
        }
        self.inner.store.flush()?;
        tracing::info!("embedded node stopped");
        Ok(())
    }
}

fn tip_height(inner: &Inner) -> Result<u32, ChainError> {
    inner.with_kernel(|k| Ok(k.height()))
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

impl Inner {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("state lock poisoned")
    }

    /// Runs `f` with the kernel; fails once the node has shut down.
    fn with_kernel<R>(
        &self,
        f: impl FnOnce(&Kernel) -> Result<R, ChainError>,
    ) -> Result<R, ChainError> {
        let guard = self.kernel.read().expect("kernel lock poisoned");
        match guard.as_ref() {
            Some(kernel) => f(kernel),
            None => Err(ChainError::ShuttingDown),
        }
    }

    fn emit(&self, event: ChainEvent) {
        if matches!(
            event,
            ChainEvent::TxAdded { .. } | ChainEvent::TxRemoved { .. }
        ) {
            self.mempool_sequence.fetch_add(1, Ordering::Relaxed);
        }
        // No subscribers is fine.
        let _ = self.events.send(event);
    }
}

impl ChainSource for EmbeddedNode {
    fn network(&self) -> Network {
        Network::Regtest
    }

    fn tip(&self) -> Result<BlockId, ChainError> {
        self.inner.with_kernel(|k| {
            Ok(BlockId {
                height: k.height(),
                hash: k.tip_hash(),
            })
        })
    }

    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, ChainError> {
        self.inner.with_kernel(|k| Ok(k.hash_at(height)))
    }

    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderEntry>, ChainError> {
        if let Some(entry) = self.inner.with_kernel(|k| Ok(k.entry(hash)))? {
            return Ok(Some(entry));
        }
        // Blocks a rebuild left out (invalidated) stay readable, off the active chain, as in Core.
        let (Some(record), Some(block)) = (
            self.inner.store.block_record(hash)?,
            self.inner.archived(hash)?,
        ) else {
            return Ok(None);
        };
        Ok(Some(HeaderEntry {
            height: record.height,
            header: block.header,
            in_active_chain: false,
        }))
    }

    fn headers(&self, start_height: u32, count: u32) -> Result<Vec<Header>, ChainError> {
        self.inner.with_kernel(|k| {
            let end = start_height
                .saturating_add(count)
                .min(k.height().saturating_add(1));
            Ok((start_height..end).map_while(|h| k.header_at(h)).collect())
        })
    }

    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
        match self.inner.with_kernel(|k| k.block(hash))? {
            Some(block) => Ok(Some(block)),
            None => self.inner.archived(hash),
        }
    }

    fn spent_outputs(&self, hash: &BlockHash) -> Result<Option<Vec<Vec<SpentOutput>>>, ChainError> {
        self.inner.with_kernel(|k| k.spent_outputs(hash))
    }

    fn transaction(
        &self,
        txid: &Txid,
        block: Option<&BlockHash>,
    ) -> Result<Option<LocatedTx>, ChainError> {
        self.inner.find_transaction(txid, block)
    }

    fn mempool(&self) -> Result<Vec<MempoolEntry>, ChainError> {
        let state = self.inner.lock_state();
        Ok(state
            .mempool
            .txids_by_sequence()
            .iter()
            .filter_map(|t| state.mempool.entry(t))
            .collect())
    }

    fn mempool_txids(&self) -> Result<Vec<Txid>, ChainError> {
        Ok(EmbeddedNode::mempool_txids(self))
    }

    fn mempool_entries(&self, txids: &[Txid]) -> Result<Vec<MempoolEntry>, ChainError> {
        let state = self.inner.lock_state();
        Ok(txids
            .iter()
            .filter_map(|t| state.mempool.entry(t))
            .collect())
    }

    fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.inner.events.subscribe()
    }

    fn broadcast(&self, tx: &Transaction) -> Result<Txid, ChainError> {
        self.send_raw_transaction(tx, &SubmitOptions::default())
    }

    fn broadcast_package(&self, txs: &[Transaction]) -> Result<PackageOutcome, ChainError> {
        self.submit_package(txs, &SubmitOptions::default())
    }

    fn estimate_fee(
        &self,
        target_blocks: u16,
        mode: FeeMode,
    ) -> Result<Option<FeeEstimate>, ChainError> {
        let state = self.inner.lock_state();
        Ok(Some(fees::estimate(&state.mempool, target_blocks, mode)))
    }

    fn relay_fee(&self) -> Result<FeeRate, ChainError> {
        Ok(policy::MIN_RELAY_FEE)
    }

    fn mempool_fee_info(&self) -> Result<crate::MempoolFeeInfo, ChainError> {
        Ok(crate::MempoolFeeInfo {
            mempool_min_fee: policy::MIN_RELAY_FEE,
            min_relay_fee: policy::MIN_RELAY_FEE,
            incremental_relay_fee: policy::INCREMENTAL_RELAY_FEE,
        })
    }
}
