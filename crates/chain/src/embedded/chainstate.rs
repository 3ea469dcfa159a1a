//! Everything that moves the chain: block submission, mining, keeping the index level with the
//! kernel, `invalidateblock`/`reconsiderblock`, and the journal and checkpoints that make new
//! blocks durable.
//!
//! A block is durable before it is acknowledged: the kernel keeps new blocks in memory until it
//! flushes, so every block it accepts is first written, synced, to the store's journal
//! ([`Store::journal_block`](super::store::Store::journal_block)); a crash before the next
//! checkpoint loses nothing, because the next start hands the journal back to the kernel. A
//! checkpoint (the kernel closed and reopened, which flushes it) empties the journal.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::{Block, BlockHash, OutPoint, ScriptBuf, Transaction};

use super::kernel::{Kernel, Processed};
use super::mempool::PoolTx;
use super::store::{BlockRecord, Coin, UndoRecord};
use super::{fees, miner, policy, unix_now, EmbeddedNode, Inner, State, CHECKPOINT_INTERVAL};
use crate::{BlockId, ChainError, ChainEvent, RemovalReason};

/// Outputs larger than this can never be spent; Core keeps them out of the UTXO set.
const MAX_SCRIPT_SIZE: usize = 10_000;

/// The answer to a submitted block, in `submitblock`'s terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockSubmission {
    /// Valid and now part of the active chain.
    Accepted,
    /// Valid and stored, but not on the active chain (less or equal work).
    Inconclusive,
    /// Already known.
    Duplicate,
    /// Invalid; Core's reject reason.
    Rejected(String),
}

pub(crate) fn kernel_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("kernel")
}

fn rebuild_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("kernel.rebuild")
}

fn old_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("kernel.old")
}

const REBUILD_DONE: &str = "REBUILD_COMPLETE";

/// Finishes or discards a chainstate rebuild that a crash interrupted, so that `kernel/` is
/// always a whole chainstate.
pub(crate) fn recover_interrupted_rebuild(data_dir: &Path) -> Result<(), ChainError> {
    let (live, rebuilt, old) = (
        kernel_dir(data_dir),
        rebuild_dir(data_dir),
        old_dir(data_dir),
    );
    let rebuilt_complete = rebuilt.join(REBUILD_DONE).exists();
    if !live.exists() && rebuilt_complete {
        std::fs::rename(&rebuilt, &live)?;
    }
    if rebuilt.exists() {
        std::fs::remove_dir_all(&rebuilt)?; // incomplete: the rebuild runs again from the records
    }
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// Median of the timestamps of the eleven blocks ending at `height` (BIP113).
pub(crate) fn median_time_past(kernel: &Kernel, height: u32) -> u32 {
    let mut times: Vec<u32> = (height.saturating_sub(10)..=height)
        .filter_map(|h| kernel.header_at(h))
        .map(|h| h.time)
        .collect();
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or(0)
}

impl Inner {
    /// At open: give the kernel back the blocks it lost in a crash, redo a rebuild a crash
    /// interrupted, then bring the index level with the kernel.
    pub(super) fn resume(&self, state: &mut State) -> Result<(), ChainError> {
        self.replay_journal()?;
        let excluded = self.excluded_blocks()?;
        let active_excluded = self.with_kernel(|k| {
            Ok(excluded
                .iter()
                .any(|h| k.entry(h).is_some_and(|e| e.in_active_chain)))
        })?;
        if active_excluded {
            self.rebuild(state)?;
        }
        self.sync_index(state)
    }

    /// Validates again every journaled block the kernel does not know: those accepted since its
    /// last flush before a crash. Invalidated blocks stay out.
    fn replay_journal(&self) -> Result<(), ChainError> {
        let journal = self.store.journal()?;
        if journal.is_empty() {
            return Ok(());
        }
        let excluded = self.excluded_blocks()?;
        let mut restored = 0u32;
        for (hash, height, raw) in journal {
            if excluded.contains(&hash) {
                continue;
            }
            let block: Block = deserialize(&raw)?;
            match self.with_kernel(|k| k.process_block(&block))? {
                Processed::New => restored += 1,
                Processed::Duplicate => {}
                Processed::Rejected(reason) => {
                    tracing::error!(block = %hash, height, %reason, "kernel refused a journaled block");
                }
            }
        }
        if restored > 0 {
            tracing::info!(restored, "blocks restored from the journal after a crash");
        }
        Ok(())
    }

    /// Blocks that may not be on the active chain: those invalidated and their descendants.
    fn excluded_blocks(&self) -> Result<BTreeSet<BlockHash>, ChainError> {
        let records = self.store.block_records()?;
        let mut children: HashMap<BlockHash, Vec<BlockHash>> = HashMap::new();
        let mut stack = Vec::new();
        for (hash, record) in &records {
            children.entry(record.prev).or_default().push(*hash);
            if record.invalidated {
                stack.push(*hash);
            }
        }
        let mut excluded = BTreeSet::new();
        while let Some(hash) = stack.pop() {
            if excluded.insert(hash) {
                stack.extend(children.get(&hash).into_iter().flatten().copied());
            }
        }
        Ok(excluded)
    }

    /// Whether `hash` is invalidated or descends from an invalidated block.
    fn is_excluded(&self, mut hash: BlockHash) -> Result<bool, ChainError> {
        loop {
            let Some(record) = self.store.block_record(&hash)? else {
                return Ok(false);
            };
            if record.invalidated {
                return Ok(true);
            }
            if record.height == 0
                || self.with_kernel(|k| Ok(k.hash_at(record.height) == Some(hash)))?
            {
                return Ok(false);
            }
            hash = record.prev;
        }
    }

    /// Takes the index (and the mempool) from where it is to the kernel's active tip: blocks the
    /// kernel left are disconnected, blocks it joined are connected, and transactions of
    /// disconnected blocks go back to the mempool.
    pub(super) fn sync_index(&self, state: &mut State) -> Result<(), ChainError> {
        let mut tip = self.store.tip()?;
        let mut returning: Vec<Vec<Transaction>> = Vec::new();
        // Walk back until the index tip is on the kernel's active chain.
        while let Some(at) = tip {
            if self.with_kernel(|k| Ok(k.hash_at(at.height) == Some(at.hash)))? {
                break;
            }
            let undo = self
                .store
                .undo(&at.hash)?
                .ok_or_else(|| ChainError::Store(format!("no undo record for {}", at.hash)))?;
            let prev = match self.store.block_record(&at.hash)? {
                Some(record) => record.prev,
                None => self
                    .block_anywhere(&at.hash)?
                    .map(|b| b.header.prev_blockhash)
                    .ok_or_else(|| ChainError::Store(format!("no record of block {}", at.hash)))?,
            };
            let parent = BlockId {
                height: at.height.saturating_sub(1),
                hash: prev,
            };
            if let Some(block) = self.block_anywhere(&at.hash)? {
                returning.push(block.txdata.into_iter().skip(1).collect());
            } else {
                tracing::warn!(block = %at.hash, "block data gone; its transactions cannot return to the mempool");
            }
            self.store
                .apply(self.store.disconnect_changes(&at, &parent, &undo))?;
            self.emit(ChainEvent::BlockDisconnected(at));
            tip = if at.height == 0 { None } else { Some(parent) };
        }
        let kernel_height = self.with_kernel(|k| Ok(k.height()))?;
        let start = tip.map_or(0, |t| t.height + 1);
        for height in start..=kernel_height {
            self.connect_one(state, height)?;
        }
        if !returning.is_empty() {
            returning.reverse(); // oldest disconnected block first
            self.reaccept_after_reorg(state, returning.into_iter().flatten().collect());
        }
        Ok(())
    }

    /// A block from the kernel, or from the archive of blocks a rebuild left out.
    fn block_anywhere(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
        if let Ok(Some(block)) = self.with_kernel(|k| k.block(hash)) {
            return Ok(Some(block));
        }
        self.archived(hash)
    }

    /// A block kept in the archive of blocks a rebuild left out.
    pub(super) fn archived(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
        match self.store.archived_block(hash)? {
            Some(raw) => Ok(Some(deserialize(&raw)?)),
            None => Ok(None),
        }
    }

    fn connect_one(&self, state: &mut State, height: u32) -> Result<(), ChainError> {
        let (hash, block, spent) = self.with_kernel(|k| {
            let hash = k
                .hash_at(height)
                .ok_or_else(|| ChainError::Kernel(format!("no block at height {height}")))?;
            let block = k
                .block(&hash)?
                .ok_or_else(|| ChainError::Kernel(format!("block {hash} has no data")))?;
            let spent = k
                .spent_outputs(&hash)?
                .ok_or_else(|| ChainError::Kernel(format!("block {hash} has no undo data")))?;
            Ok((hash, block, spent))
        })?;
        let id = BlockId { height, hash };
        let mut undo = UndoRecord::default();
        let mut created = Vec::new();
        let mut spenders = Vec::new();
        if height > 0 {
            // The genesis coinbase is not spendable and not indexed, as in Core.
            for (position, tx) in block.txdata.iter().enumerate() {
                let txid = tx.compute_txid();
                undo.txs.push((txid, tx.output.len() as u32));
                for (vout, out) in tx.output.iter().enumerate() {
                    if out.script_pubkey.is_op_return() || out.script_pubkey.len() > MAX_SCRIPT_SIZE
                    {
                        continue;
                    }
                    let coin = Coin {
                        txout: out.clone(),
                        height,
                        coinbase: position == 0,
                    };
                    created.push((
                        OutPoint {
                            txid,
                            vout: vout as u32,
                        },
                        coin,
                    ));
                }
            }
            if spent.len() + 1 != block.txdata.len() {
                return Err(ChainError::Kernel(format!(
                    "undo data of {hash} does not match the block"
                )));
            }
            for (tx, coins) in block.txdata.iter().skip(1).zip(spent) {
                let txid = tx.compute_txid();
                for (input, coin) in tx.input.iter().zip(coins) {
                    undo.spent.push((input.previous_output, coin));
                    spenders.push(txid);
                }
            }
        }
        if self.store.block_record(&hash)?.is_none() {
            let record = BlockRecord {
                height,
                prev: block.header.prev_blockhash,
                invalidated: false,
            };
            self.store.put_block_record(&hash, &record)?;
        }
        self.store
            .apply(self.store.connect_changes(id, &undo, &created, &spenders))?;

        // Mined transactions leave the mempool, then whatever conflicted with them.
        for tx in block.txdata.iter().skip(1) {
            let txid = tx.compute_txid();
            if state.mempool.remove(&txid).is_some() {
                self.emit(ChainEvent::TxRemoved {
                    txid,
                    reason: RemovalReason::Block,
                });
            }
        }
        for tx in block.txdata.iter().skip(1) {
            for input in &tx.input {
                if let Some(spender) = state.mempool.spender(&input.previous_output) {
                    for gone in state.mempool.remove_with_descendants(&spender) {
                        self.emit(ChainEvent::TxRemoved {
                            txid: gone.txid,
                            reason: RemovalReason::Conflict,
                        });
                    }
                }
            }
        }
        self.emit(ChainEvent::BlockConnected(id));
        Ok(())
    }

    /// After a reorganisation, transactions of disconnected blocks go back in (without the fee
    /// floor, as Core does), followed by the old mempool; whatever no longer fits is dropped.
    fn reaccept_after_reorg(&self, state: &mut State, returning: Vec<Transaction>) {
        let before: BTreeSet<_> = state.mempool.iter().map(|t| t.txid).collect();
        let old: Vec<PoolTx> = state.mempool.drain();
        for tx in returning {
            let _ = self.accept_into_pool(state, Arc::new(tx), true, false);
        }
        for entry in old {
            let _ = self.accept_into_pool(state, entry.tx, false, false);
        }
        let after: BTreeSet<_> = state.mempool.iter().map(|t| t.txid).collect();
        for txid in before.difference(&after) {
            self.emit(ChainEvent::TxRemoved {
                txid: *txid,
                reason: RemovalReason::Reorg,
            });
        }
        for txid in after.difference(&before) {
            self.emit(ChainEvent::TxAdded { txid: *txid });
        }
    }

    /// Validates a block with the kernel, records it and follows the chain if it moved.
    pub(super) fn submit_block(
        &self,
        state: &mut State,
        block: &Block,
    ) -> Result<BlockSubmission, ChainError> {
        let hash = block.block_hash();
        if let Some(record) = self.store.block_record(&hash)? {
            if record.invalidated || self.is_excluded(hash)? {
                return Ok(BlockSubmission::Rejected("duplicate-invalid".into()));
            }
        }
        if let Some(reason) = self.precheck(block)? {
            return Ok(BlockSubmission::Rejected(reason));
        }
        let processed = self.with_kernel(|k| k.process_block(block))?;
        match processed {
            Processed::Rejected(reason) => Ok(BlockSubmission::Rejected(reason)),
            Processed::Duplicate => Ok(BlockSubmission::Duplicate),
            Processed::New => {
                let height = self
                    .with_kernel(|k| Ok(k.entry(&hash)))?
                    .map(|e| e.height)
                    .ok_or_else(|| {
                        ChainError::Kernel("accepted block has no index entry".into())
                    })?;
                let record = BlockRecord {
                    height,
                    prev: block.header.prev_blockhash,
                    invalidated: false,
                };
                self.store
                    .journal_block(&hash, &record, &serialize(block))?;
                self.sync_index(state)?;
                let active =
                    self.with_kernel(|k| Ok(k.entry(&hash).is_some_and(|e| e.in_active_chain)))?;
                Ok(if active {
                    BlockSubmission::Accepted
                } else {
                    BlockSubmission::Inconclusive
                })
            }
        }
    }

    /// Checks that give Core's precise reject reasons where the kernel reports only a category.
    fn precheck(&self, block: &Block) -> Result<Option<String>, ChainError> {
        let header = &block.header;
        if header.validate_pow(header.target()).is_err() {
            return Ok(Some("high-hash".into()));
        }
        if header.bits != miner::regtest_bits() {
            return Ok(Some("bad-diffbits".into()));
        }
        let prev = header.prev_blockhash;
        let Some(parent) = self.with_kernel(|k| Ok(k.entry(&prev)))? else {
            if self.store.archived_block(&prev)?.is_some() {
                return Ok(Some("bad-prevblk".into()));
            }
            return Ok(Some("prev-blk-not-found".into()));
        };
        if self.is_excluded(prev)? {
            return Ok(Some("bad-prevblk".into()));
        }
        let mtp = self.with_kernel(|k| {
            Ok(if parent.in_active_chain {
                median_time_past(k, parent.height)
            } else {
                0
            })
        })?;
        if header.time <= mtp {
            return Ok(Some("time-too-old".into()));
        }
        if block.txdata.is_empty() || !block.txdata[0].is_coinbase() {
            return Ok(Some("bad-cb-missing".into()));
        }
        if !block.check_merkle_root() {
            return Ok(Some("bad-txnmrklroot".into()));
        }
        if !miner::has_bip34_height(block, parent.height + 1) {
            return Ok(Some("bad-cb-height".into()));
        }
        if !block.check_witness_commitment() {
            return Ok(Some("bad-witness-merkle-match".into()));
        }
        Ok(None)
    }

    /// Mines one block on the tip paying `script`, with the best of the mempool (or with exactly
    /// `txs` when given, as `generateblock` does).
    pub(super) fn mine_one(
        &self,
        state: &mut State,
        script: &ScriptBuf,
        txs: Option<Vec<Transaction>>,
    ) -> Result<Block, ChainError> {
        let (tip, height, time) = self.with_kernel(|k| {
            let height = k.height();
            let mtp = median_time_past(k, height);
            let time = (mtp + 1).max(unix_now() as u32);
            Ok((k.tip_hash(), height + 1, time))
        })?;
        let (txs, fees) = match txs {
            Some(txs) => {
                let fees = txs
                    .iter()
                    .filter_map(|tx| state.mempool.get(&tx.compute_txid()).map(|e| e.fee))
                    .sum();
                (txs, fees)
            }
            None => {
                let limit = policy::MAX_BLOCK_WEIGHT - fees::COINBASE_RESERVED_WEIGHT;
                let chosen = state
                    .mempool
                    .select(limit, policy::MAX_BLOCK_SIGOPS_COST - 400);
                let fees = chosen
                    .iter()
                    .filter_map(|t| state.mempool.get(t))
                    .map(|e| e.fee)
                    .sum();
                let txs = chosen
                    .iter()
                    .filter_map(|t| state.mempool.get(t))
                    .map(|e| (*e.tx).clone())
                    .collect();
                (txs, fees)
            }
        };
        let extra_nonce = self
            .extra_nonce
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let coinbase = miner::coinbase(
            height,
            extra_nonce,
            script.clone(),
            miner::subsidy(height) + fees,
        );
        Ok(miner::assemble(tip, time, coinbase, txs))
    }

    /// Marks a block invalid and, if it is on the active chain, rebuilds the chainstate without it.
    pub(super) fn invalidate(&self, state: &mut State, hash: &BlockHash) -> Result<(), ChainError> {
        let entry = self.with_kernel(|k| Ok(k.entry(hash)))?;
        let record = match (self.store.block_record(hash)?, entry) {
            (Some(record), _) => record,
            (None, Some(e)) => BlockRecord {
                height: e.height,
                prev: e.header.prev_blockhash,
                invalidated: false,
            },
            (None, None) => return Err(ChainError::Invalid("Block not found".into())),
        };
        if record.height == 0 {
            return Err(ChainError::Invalid(
                "Genesis block cannot be invalidated".into(),
            ));
        }
        self.store.put_block_record(
            hash,
            &BlockRecord {
                invalidated: true,
                ..record
            },
        )?;
        if entry.is_some_and(|e| e.in_active_chain) {
            self.rebuild(state)?;
            self.sync_index(state)?;
        }
        Ok(())
    }

    /// Clears the invalid mark of a block and its descendants and offers them to the kernel
    /// again; it follows them if they carry more work.
    pub(super) fn reconsider(&self, state: &mut State, hash: &BlockHash) -> Result<(), ChainError> {
        let records = self.store.block_records()?;
        if !records.iter().any(|(h, _)| h == hash)
            && self.with_kernel(|k| Ok(k.entry(hash).is_none()))?
        {
            return Err(ChainError::Invalid("Block not found".into()));
        }
        let mut children: HashMap<BlockHash, Vec<(BlockHash, BlockRecord)>> = HashMap::new();
        for (h, r) in &records {
            children.entry(r.prev).or_default().push((*h, *r));
        }
        let mut subtree = BTreeMap::new(); // (height, hash) → record, parents before children
        let mut stack: Vec<(BlockHash, BlockRecord)> =
            records.iter().filter(|(h, _)| h == hash).cloned().collect();
        while let Some((h, r)) = stack.pop() {
            if r.invalidated {
                self.store.put_block_record(
                    &h,
                    &BlockRecord {
                        invalidated: false,
                        ..r
                    },
                )?;
            }
            subtree.insert((r.height, h), r);
            stack.extend(children.get(&h).into_iter().flatten().cloned());
        }
        let excluded = self.excluded_blocks()?;
        for ((_, h), record) in &subtree {
            if excluded.contains(h) {
                continue;
            }
            if let Some(raw) = self.store.archived_block(h)? {
                let block: Block = deserialize(&raw)?;
                match self.with_kernel(|k| k.process_block(&block))? {
                    Processed::New => {
                        let record = BlockRecord {
                            invalidated: false,
                            ..*record
                        };
                        self.store.journal_block(h, &record, &raw)?;
                    }
                    Processed::Duplicate => {}
                    Processed::Rejected(reason) => {
                        tracing::warn!(block = %h, %reason, "reconsidered block rejected by the kernel");
                    }
                }
            }
        }
        self.sync_index(state)
    }

    /// Replaces the kernel's chainstate with one holding every known block except the excluded
    /// ones. libbitcoinkernel has no `InvalidateBlock`, so this is how the node steps back: the
    /// blocks are validated again by the kernel, in a side directory swapped in when complete.
    /// Left-out blocks are archived so `reconsiderblock` can offer them again.
    fn rebuild(&self, _state: &mut State) -> Result<(), ChainError> {
        let data_dir = &self.config.data_dir;
        let excluded = self.excluded_blocks()?;
        let mut records: Vec<(BlockHash, BlockRecord)> = self.store.block_records()?;
        // Active-chain blocks first, so equal-work branches keep losing as they did.
        let active: BTreeSet<BlockHash> = self.with_kernel(|k| {
            Ok(records
                .iter()
                .filter(|(h, r)| k.hash_at(r.height) == Some(*h))
                .map(|(h, _)| *h)
                .collect())
        })?;
        records.sort_by_key(|(h, r)| (!active.contains(h), r.height));
        for hash in &excluded {
            if self.store.archived_block(hash)?.is_none() {
                if let Some(raw) = self.with_kernel(|k| k.block_bytes(hash))? {
                    self.store.archive_block(hash, &raw)?;
                }
            }
        }
        let target = rebuild_dir(data_dir);
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        let started = std::time::Instant::now();
        {
            let fresh = Kernel::open(&target, self.config.script_threads)?;
            let mut replayed = 0u32;
            for (hash, record) in &records {
                if record.height == 0 || excluded.contains(hash) {
                    continue;
                }
                let raw = match self.with_kernel(|k| k.block_bytes(hash))? {
                    Some(raw) => raw,
                    None => match self.store.archived_block(hash)? {
                        Some(raw) => raw,
                        None => continue,
                    },
                };
                let block: Block = deserialize(&raw)?;
                if let Processed::Rejected(reason) = fresh.process_block(&block)? {
                    tracing::warn!(block = %hash, %reason, "block refused while rebuilding the chainstate");
                }
                replayed += 1;
            }
            tracing::info!(
                replayed,
                excluded = excluded.len(),
                ms = started.elapsed().as_millis() as u64,
                "chainstate rebuilt"
            );
        } // the fresh kernel closes (and flushes) here
        std::fs::write(target.join(REBUILD_DONE), b"")?;
        let mut slot = self.kernel.write().expect("kernel lock poisoned");
        drop(slot.take());
        let live = kernel_dir(data_dir);
        std::fs::rename(&live, old_dir(data_dir))?;
        std::fs::rename(&target, &live)?;
        std::fs::remove_file(live.join(REBUILD_DONE))?;
        std::fs::remove_dir_all(old_dir(data_dir))?;
        *slot = Some(Kernel::open(&live, self.config.script_threads)?);
        // The rebuilt chainstate was flushed when it closed: it holds every journaled block
        // that is not excluded, and the excluded ones are archived.
        self.store.clear_journal()?;
        Ok(())
    }

    /// Flushes the kernel, so the journal can be emptied. The kernel writes its chainstate and
    /// block index only now and then (Core: about once an hour); closing the chainstate manager
    /// flushes them, so a checkpoint closes and reopens it. Until then, new blocks are durable
    /// through the journal; checkpoints keep it short and the next start quick.
    pub(super) fn checkpoint_now(&self) -> Result<(), ChainError> {
        let _state = self.lock_state();
        let mut slot = self.kernel.write().expect("kernel lock poisoned");
        let Some(kernel) = slot.take() else {
            return Ok(());
        };
        let tip = kernel.tip_hash();
        drop(kernel);
        *slot = Some(Kernel::open(
            &kernel_dir(&self.config.data_dir),
            self.config.script_threads,
        )?);
        // The state lock is held: no block was accepted since the kernel closed.
        self.store.clear_journal()?;
        self.checkpoint.lock().expect("checkpoint lock").0 = Some(tip);
        Ok(())
    }

    pub(super) fn stop_checkpoints(&self) {
        self.checkpoint.lock().expect("checkpoint lock").1 = true;
        self.checkpoint_wake.notify_all();
    }
}

/// The background checkpoint: wakes every few seconds and checkpoints if the tip moved.
pub(super) fn checkpoint_loop(node: Weak<Inner>) {
    loop {
        let Some(inner) = node.upgrade() else { return };
        let due = {
            let guard = inner.checkpoint.lock().expect("checkpoint lock");
            let (guard, _) = inner
                .checkpoint_wake
                .wait_timeout_while(guard, CHECKPOINT_INTERVAL, |(_, stop)| !*stop)
                .expect("checkpoint lock");
            if guard.1 {
                return;
            }
            let last = guard.0;
            drop(guard);
            inner
                .with_kernel(|k| Ok(Some(k.tip_hash()) != last))
                .unwrap_or(false)
        };
        if due {
            if let Err(e) = inner.checkpoint_now() {
                tracing::error!("checkpoint failed: {e}");
            }
        }
    }
}

impl EmbeddedNode {
    /// Validates and, if it is the best, connects a block (`submitblock`).
    pub fn submit_block(&self, block: &Block) -> Result<BlockSubmission, ChainError> {
        let mut state = self.inner.lock_state();
        self.inner.submit_block(&mut state, block)
    }

    /// Mines `count` blocks paying `script`, each filled from the mempool by ancestor fee rate.
    ///
    /// # Errors
    /// Fails if the kernel refuses a block the node built, which is a bug worth reporting.
    pub fn generate(&self, count: u32, script: &ScriptBuf) -> Result<Vec<BlockHash>, ChainError> {
        let mut hashes = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let mut state = self.inner.lock_state();
            let block = self.inner.mine_one(&mut state, script, None)?;
            let block = match self.inner.submit_block(&mut state, &block)? {
                BlockSubmission::Accepted => block,
                other => {
                    // The mempool held something the kernel refuses: mine an empty block so the
                    // chain still moves, and say so.
                    tracing::error!(
                        ?other,
                        "kernel refused a mined template; mining an empty block"
                    );
                    let empty = self.inner.mine_one(&mut state, script, Some(Vec::new()))?;
                    match self.inner.submit_block(&mut state, &empty)? {
                        BlockSubmission::Accepted => empty,
                        other => return Err(ChainError::InvalidBlock(format!("{other:?}"))),
                    }
                }
            };
            hashes.push(block.block_hash());
        }
        Ok(hashes)
    }

    /// Builds a block with exactly `txs` (in order) on the tip; submits it when `submit` is set
    /// (`generateblock`).
    pub fn generate_block(
        &self,
        script: &ScriptBuf,
        txs: Vec<Transaction>,
        submit: bool,
    ) -> Result<Block, ChainError> {
        let mut state = self.inner.lock_state();
        let block = self.inner.mine_one(&mut state, script, Some(txs))?;
        if submit {
            match self.inner.submit_block(&mut state, &block)? {
                BlockSubmission::Accepted => {}
                BlockSubmission::Rejected(reason) => {
                    return Err(ChainError::InvalidBlock(format!(
                        "TestBlockValidity failed: {reason}"
                    )))
                }
                other => return Err(ChainError::InvalidBlock(format!("{other:?}"))),
            }
        }
        Ok(block)
    }

    /// Marks a block invalid; if it is on the active chain the node steps back to its parent
    /// (`invalidateblock`).
    pub fn invalidate_block(&self, hash: &BlockHash) -> Result<(), ChainError> {
        let mut state = self.inner.lock_state();
        self.inner.invalidate(&mut state, hash)
    }

    /// Undoes [`Self::invalidate_block`] for a block and its descendants (`reconsiderblock`).
    pub fn reconsider_block(&self, hash: &BlockHash) -> Result<(), ChainError> {
        let mut state = self.inner.lock_state();
        self.inner.reconsider(&mut state, hash)
    }

    /// Flushes the kernel now rather than at the next background checkpoint. Blocks are durable
    /// without it (see the module's documentation); this empties the journal.
    pub fn checkpoint(&self) -> Result<(), ChainError> {
        self.inner.checkpoint_now()
    }
}
