//! Bringing the index level with a `ChainSource`: step back over reorganised blocks with their
//! undo data, then fetch and turn new blocks into rows on every core and write them in order, in
//! batches that each end with the new tip.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bitcoin::block::Header;
use bitcoin::BlockHash;
use moip_chain::ChainSource;
use rocksdb::WriteBatch;

use super::rows::BlockRows;
use super::{Index, REORG_LIMIT};
use crate::types::{ScriptHash, TxNum};
use crate::IndexError;

/// Blocks written per batch during catch-up (a batch is also cut at `BATCH_TXS`).
const BATCH_BLOCKS: usize = 500;
/// Transactions written per batch during catch-up.
const BATCH_TXS: usize = 200_000;
/// A batch is also cut after this long, so headers and progress show during a slow catch-up.
const BATCH_TIME: Duration = Duration::from_secs(1);
/// Below this many new blocks, the scripts touched are collected for notifications.
const TOUCH_COLLECT_LIMIT: u32 = 100;

/// Where an initial sync stands, for progress reports.
#[derive(Debug, Clone, Copy)]
pub struct SyncProgress {
    /// Height indexed so far.
    pub height: u32,
    /// Height being synced to.
    pub target: u32,
    /// Height the sync started from.
    pub start: u32,
    /// Time since the sync started.
    pub elapsed: Duration,
}

impl SyncProgress {
    /// Estimated time left, from the rate so far.
    pub fn eta(&self) -> Option<Duration> {
        let done = self.height.saturating_sub(self.start);
        if done == 0 {
            return None;
        }
        let left = self.target.saturating_sub(self.height);
        Some(self.elapsed.mul_f64(f64::from(left) / f64::from(done)))
    }
}

/// What one sync changed.
#[derive(Debug, Default)]
pub struct SyncOutcome {
    /// New tip, when it moved.
    pub tip_changed: bool,
    /// Scripts whose confirmed history changed (collected only for small updates).
    pub touched: HashSet<ScriptHash>,
    /// Whether the touched set is complete (false after a large catch-up).
    pub touched_complete: bool,
    /// Blocks taken back out.
    pub disconnected: u32,
    /// Blocks added.
    pub connected: u32,
}

/// Runs syncs of one index from one chain source.
pub struct Syncer<'a> {
    pub index: &'a Index,
    pub source: &'a dyn ChainSource,
    /// Threads fetching blocks and computing rows.
    pub threads: usize,
}

impl Syncer<'_> {
    /// Syncs until the index is at the source's tip.
    pub fn sync(&self, progress: &mut dyn FnMut(SyncProgress)) -> Result<SyncOutcome, IndexError> {
        let mut outcome = SyncOutcome {
            touched_complete: true,
            ..SyncOutcome::default()
        };
        loop {
            let target = self.source.tip()?;
            if self.index.tip().map(|(_, h)| h) == Some(target.hash) {
                return Ok(outcome);
            }
            self.step_back(target.height, &mut outcome)?;
            let from = self.index.chain().height().map_or(0, |h| h + 1);
            if from <= target.height {
                let collect = target.height - from < TOUCH_COLLECT_LIMIT;
                if !collect {
                    outcome.touched_complete = false;
                }
                self.connect(from, target.height, collect, &mut outcome, progress)?;
            }
        }
    }

    /// Disconnects indexed blocks the source no longer has on its active chain.
    fn step_back(&self, target_height: u32, outcome: &mut SyncOutcome) -> Result<(), IndexError> {
        loop {
            let Some((height, hash)) = self.index.tip() else {
                return Ok(());
            };
            let on_chain = height <= target_height && self.source.block_hash(height)? == Some(hash);
            if on_chain {
                return Ok(());
            }
            let undo = self
                .index
                .store()
                .undo(height)?
                .ok_or(IndexError::ReorgTooDeep {
                    height,
                    limit: REORG_LIMIT,
                })?;
            let (first, end) = self
                .index
                .chain()
                .tx_range(height)
                .expect("tip is in the view");
            let mut batch = WriteBatch::default();
            self.index
                .store()
                .remove_block(&mut batch, height, first, end, &undo)?;
            match height.checked_sub(1) {
                Some(parent) => {
                    let parent_hash = self
                        .index
                        .block_hash(parent)
                        .expect("parent is in the view");
                    self.index.store().set_tip(&mut batch, parent, &parent_hash);
                }
                None => self.index.store().clear_tip(&mut batch),
            }
            self.index.store().write(batch)?;
            self.index.chain_mut().pop();
            outcome.touched.extend(undo.touched);
            outcome.disconnected += 1;
            outcome.tip_changed = true;
            tracing::info!(height, %hash, "block disconnected from the index");
        }
    }

    fn connect(
        &self,
        from: u32,
        to: u32,
        collect: bool,
        outcome: &mut SyncOutcome,
        progress: &mut dyn FnMut(SyncProgress),
    ) -> Result<(), IndexError> {
        let started = Instant::now();
        let next = AtomicU32::new(from);
        let stop = AtomicBool::new(false);
        let threads = self.threads.max(1);
        let (tx, rx) = mpsc::sync_channel::<(u32, Result<BlockRows, IndexError>)>(threads * 4);
        std::thread::scope(|scope| -> Result<(), IndexError> {
            for i in 0..threads {
                let tx = tx.clone();
                let (next, stop, source) = (&next, &stop, self.source);
                std::thread::Builder::new()
                    .name(format!("index-fetch-{i}"))
                    .spawn_scoped(scope, move || {
                        while !stop.load(Ordering::Relaxed) {
                            let height = next.fetch_add(1, Ordering::Relaxed);
                            if height > to {
                                return;
                            }
                            let rows = fetch_rows(source, height);
                            if tx.send((height, rows)).is_err() {
                                return;
                            }
                        }
                    })
                    .map_err(|e| IndexError::Io(e.to_string()))?;
            }
            drop(tx);
            let result = self.write_in_order(from, to, &rx, collect, outcome, progress, started);
            stop.store(true, Ordering::Relaxed);
            // Drain so blocked senders finish.
            while rx.recv().is_ok() {}
            result
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn write_in_order(
        &self,
        from: u32,
        to: u32,
        rx: &mpsc::Receiver<(u32, Result<BlockRows, IndexError>)>,
        collect: bool,
        outcome: &mut SyncOutcome,
        progress: &mut dyn FnMut(SyncProgress),
        started: Instant,
    ) -> Result<(), IndexError> {
        let mut waiting: BTreeMap<u32, BlockRows> = BTreeMap::new();
        let mut expected = from;
        let mut batch = WriteBatch::default();
        let mut pending: Vec<(Header, TxNum, u64)> = Vec::new();
        let mut batch_txs = 0usize;
        let mut batch_started = Instant::now();
        let (mut prev_hash, mut next_txnum) = {
            let chain = self.index.chain();
            (chain.hashes.last().copied(), chain.next_txnum)
        };
        let store = self.index.store();
        let flush = |batch: &mut WriteBatch,
                     pending: &mut Vec<(Header, TxNum, u64)>,
                     tip: (u32, BlockHash)|
         -> Result<(), IndexError> {
            store.set_tip(batch, tip.0, &tip.1);
            store.write(std::mem::take(batch))?;
            let mut chain = self.index.chain_mut();
            for (header, first, count) in pending.drain(..) {
                chain.push(header, first, count);
            }
            Ok(())
        };
        while expected <= to {
            let rows = match waiting.remove(&expected) {
                Some(rows) => rows,
                None => match rx.recv() {
                    Ok((h, rows)) => {
                        waiting.insert(h, rows?);
                        continue;
                    }
                    Err(_) => {
                        return Err(IndexError::Source("block fetchers stopped early".into()))
                    }
                },
            };
            let header: Header = bitcoin::consensus::deserialize(&rows.header)
                .map_err(|_| IndexError::Corrupt("header".into()))?;
            if expected > 0 && Some(header.prev_blockhash) != prev_hash {
                // The source reorganised while we were fetching: write what we have and let the
                // caller step back and start again.
                break;
            }
            let keep_undo = rows.height + REORG_LIMIT > to;
            let prune = rows.height.checked_sub(REORG_LIMIT);
            store.add_block(&mut batch, &rows, next_txnum, keep_undo, prune);
            if collect {
                outcome
                    .touched
                    .extend(rows.history.iter().map(|(sh, _)| *sh));
            }
            let count = rows.txids.len() as u64;
            pending.push((header, next_txnum, count));
            next_txnum = TxNum(next_txnum.0 + count);
            batch_txs += rows.txids.len();
            prev_hash = Some(rows.hash);
            outcome.connected += 1;
            outcome.tip_changed = true;
            if pending.len() >= BATCH_BLOCKS
                || batch_txs >= BATCH_TXS
                || expected == to
                || batch_started.elapsed() >= BATCH_TIME
            {
                flush(&mut batch, &mut pending, (rows.height, rows.hash))?;
                batch_txs = 0;
                batch_started = Instant::now();
                progress(SyncProgress {
                    height: rows.height,
                    target: to,
                    start: from,
                    elapsed: started.elapsed(),
                });
            }
            expected += 1;
        }
        if let (Some(last), false) = (pending.last(), pending.is_empty()) {
            let height = expected - 1;
            let hash = last.0.block_hash();
            flush(&mut batch, &mut pending, (height, hash))?;
        }
        Ok(())
    }
}

fn fetch_rows(source: &dyn ChainSource, height: u32) -> Result<BlockRows, IndexError> {
    let hash = source
        .block_hash(height)?
        .ok_or_else(|| IndexError::Source(format!("no block at height {height}")))?;
    let block = source
        .block(&hash)?
        .ok_or_else(|| IndexError::Source(format!("block {hash} unavailable")))?;
    let spent = if height == 0 {
        Vec::new()
    } else {
        source
            .spent_outputs(&hash)?
            .ok_or_else(|| IndexError::Source(format!("undo data of {hash} unavailable")))?
    };
    BlockRows::compute(height, &block, &spent).map_err(|e| IndexError::Source(e.to_string()))
}
