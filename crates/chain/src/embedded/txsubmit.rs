//! Transactions into the mempool: single submissions, test-only checks, packages (CPFP), and the
//! mempool file kept across restarts.

use std::collections::BTreeSet;
use std::io::{BufReader, BufWriter, Read, Write};
use std::sync::Arc;

use bitcoin::consensus::encode::Decodable;
use bitcoin::{Amount, BlockHash, FeeRate, OutPoint, Transaction, Txid, Wtxid};

use super::accept::{self, AcceptOptions, ChainView, Checked, Refusal};
use super::chainstate::median_time_past;
use super::mempool::Mempool;
use super::policy::{self, DEFAULT_MAX_FEE_RATE};
use super::{unix_now, EmbeddedNode, Inner, State};
use crate::types::fee_rate_of;
use crate::{
    ChainError, ChainEvent, LocatedTx, PackageOutcome, PackageTxOutcome, RejectKind, RemovalReason,
    TxRejection,
};

const MEMPOOL_FILE: &str = "mempool.dat";
const MEMPOOL_MAGIC: &[u8; 8] = b"moipmp01";
/// Largest package `submitpackage` and `testmempoolaccept` take, as in Core.
pub(crate) const MAX_PACKAGE_COUNT: usize = 25;

/// Limits the RPCs let a caller set on a submission.
#[derive(Debug, Clone, Copy)]
pub struct SubmitOptions {
    /// Refuse transactions paying more than this fee rate (0 disables; default 0.10 BTC/kvB).
    pub max_fee_rate: FeeRate,
    /// Refuse transactions burning more than this to unspendable outputs (default 0).
    pub max_burn: Amount,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        SubmitOptions {
            max_fee_rate: DEFAULT_MAX_FEE_RATE,
            max_burn: Amount::ZERO,
        }
    }
}

impl SubmitOptions {
    fn accept(&self, bypass_fee: bool) -> AcceptOptions {
        AcceptOptions {
            bypass_fee,
            max_fee_rate: Some(self.max_fee_rate),
            max_burn: Some(self.max_burn),
        }
    }
}

/// One transaction's verdict from `testmempoolaccept`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestAcceptResult {
    /// The transaction's txid.
    pub txid: Txid,
    /// Its wtxid.
    pub wtxid: Wtxid,
    /// Refusal, if any; `None` means it would be accepted.
    pub rejection: Option<TxRejection>,
    /// Virtual size (when accepted).
    pub vsize: Option<u64>,
    /// Fee (when accepted).
    pub fee: Option<Amount>,
}

impl Inner {
    fn view_parts(&self) -> Result<(u32, u32), ChainError> {
        self.with_kernel(|k| {
            let height = k.height();
            Ok((height + 1, median_time_past(k, height)))
        })
    }

    /// Runs the checks against `pool` (the live one or a scratch copy).
    fn check_against(
        &self,
        pool: &Mempool,
        tx: &Arc<Transaction>,
        opts: &AcceptOptions,
    ) -> Result<Checked, Refusal> {
        let (next_height, tip_mtp) = self.view_parts()?;
        let mtp_at = |h: u32| {
            self.with_kernel(|k| Ok(median_time_past(k, h)))
                .unwrap_or(0)
        };
        let view = ChainView {
            store: &self.store,
            next_height,
            tip_mtp,
            mtp_at: &mtp_at,
            now: unix_now(),
        };
        accept::check(tx, pool, &view, opts)
    }

    /// Checks and inserts into the live mempool, evicting what it replaces; emits events when
    /// `announce` is set.
    pub(super) fn accept_into_pool(
        &self,
        state: &mut State,
        tx: Arc<Transaction>,
        bypass_fee: bool,
        announce: bool,
    ) -> Result<(Txid, Vec<Txid>), Refusal> {
        let opts = AcceptOptions {
            bypass_fee,
            ..AcceptOptions::default()
        };
        self.insert_checked(state, &tx, &opts, announce)
    }

    fn insert_checked(
        &self,
        state: &mut State,
        tx: &Arc<Transaction>,
        opts: &AcceptOptions,
        announce: bool,
    ) -> Result<(Txid, Vec<Txid>), Refusal> {
        let checked = self.check_against(&state.mempool, tx, opts)?;
        let txid = checked.entry.txid;
        let mut replaced = Vec::new();
        for gone in &checked.replaces {
            for removed in state.mempool.remove_with_descendants(gone) {
                replaced.push(removed.txid);
                if announce {
                    self.emit(ChainEvent::TxRemoved {
                        txid: removed.txid,
                        reason: RemovalReason::Replaced,
                    });
                }
            }
        }
        state.mempool.insert(checked.entry);
        if announce {
            self.emit(ChainEvent::TxAdded { txid });
        }
        Ok((txid, replaced))
    }

    /// A transaction from the mempool or, through the index, from the chain.
    pub(super) fn find_transaction(
        &self,
        txid: &Txid,
        block: Option<&BlockHash>,
    ) -> Result<Option<LocatedTx>, ChainError> {
        if block.is_none() {
            if let Some(entry) = self.lock_state().mempool.get(txid) {
                return Ok(Some(LocatedTx {
                    tx: (*entry.tx).clone(),
                    location: None,
                }));
            }
        }
        let location = match (self.store.tx_location(txid)?, block) {
            (Some(loc), Some(b)) if loc.block_hash != *b => None,
            (loc, _) => loc,
        };
        let (hash, position) = match (location, block) {
            (Some(loc), _) => (loc.block_hash, Some(loc.position as usize)),
            (None, Some(b)) => (*b, None),
            (None, None) => return Ok(None),
        };
        let Some(block_data) = self.recent_block(&hash)? else {
            return Ok(None);
        };
        let found = match position {
            Some(p) => block_data
                .txdata
                .get(p)
                .filter(|t| t.compute_txid() == *txid)
                .map(|t| (p, t.clone())),
            None => block_data
                .txdata
                .iter()
                .enumerate()
                .find(|(_, t)| t.compute_txid() == *txid)
                .map(|(p, t)| (p, t.clone())),
        };
        let Some((position, tx)) = found else {
            return Ok(None);
        };
        let entry = self.with_kernel(|k| Ok(k.entry(&hash)))?;
        Ok(Some(LocatedTx {
            tx,
            location: entry.map(|e| crate::TxLocation {
                block_hash: hash,
                height: e.height,
                position: position as u32,
            }),
        }))
    }

    /// A block by hash, from the small cache of recent reads or the kernel.
    fn recent_block(&self, hash: &BlockHash) -> Result<Option<Arc<bitcoin::Block>>, ChainError> {
        const KEEP: usize = 8;
        if let Ok(cache) = self.recent_blocks.lock() {
            if let Some((_, block)) = cache.iter().find(|(h, _)| h == hash) {
                return Ok(Some(Arc::clone(block)));
            }
        }
        let Some(block) = self.with_kernel(|k| k.block(hash))? else {
            return Ok(None);
        };
        let block = Arc::new(block);
        if let Ok(mut cache) = self.recent_blocks.lock() {
            if cache.len() >= KEEP {
                cache.pop_front();
            }
            cache.push_back((*hash, Arc::clone(&block)));
        }
        Ok(Some(block))
    }

    pub(super) fn load_mempool(&self, state: &mut State) {
        let path = self.config.data_dir.join(MEMPOOL_FILE);
        let Ok(file) = std::fs::File::open(&path) else {
            return;
        };
        let mut reader = BufReader::new(file);
        let mut magic = [0u8; 8];
        if reader.read_exact(&mut magic).is_err() || &magic != MEMPOOL_MAGIC {
            tracing::warn!("ignoring {} with an unknown format", path.display());
            return;
        }
        let (mut loaded, mut refused) = (0, 0);
        while let Ok(tx) = Transaction::consensus_decode(&mut reader) {
            match self.accept_into_pool(state, Arc::new(tx), false, true) {
                Ok(_) => loaded += 1,
                Err(_) => refused += 1,
            }
        }
        tracing::info!(loaded, refused, "mempool loaded");
        let _ = std::fs::remove_file(&path);
    }

    pub(super) fn save_mempool(&self, state: &State) -> Result<(), ChainError> {
        let path = self.config.data_dir.join(MEMPOOL_FILE);
        let tmp = path.with_extension("new");
        {
            let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
            out.write_all(MEMPOOL_MAGIC)?;
            for txid in state.mempool.txids_by_sequence() {
                if let Some(entry) = state.mempool.get(&txid) {
                    out.write_all(&bitcoin::consensus::serialize(&*entry.tx))?;
                }
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(tmp, path)?;
        Ok(())
    }
}

fn refusal_error(refusal: Refusal) -> ChainError {
    match refusal {
        Refusal::Tx(rejection) => ChainError::Rejected(rejection),
        Refusal::Node(e) => e,
    }
}

/// Whether a refusal is about fees only, so the transaction may still enter as part of a package.
fn fee_only(refusal: &Refusal) -> bool {
    matches!(refusal, Refusal::Tx(r) if r.reason == "min relay fee not met")
}

impl EmbeddedNode {
    /// Submits a transaction (`sendrawtransaction`). A transaction already in the mempool is not
    /// an error; one already confirmed is (`-27`).
    pub fn send_raw_transaction(
        &self,
        tx: &Transaction,
        opts: &SubmitOptions,
    ) -> Result<Txid, ChainError> {
        let txid = tx.compute_txid();
        let mut state = self.inner.lock_state();
        for vout in 0..tx.output.len() as u32 {
            if self.inner.store.coin(&OutPoint { txid, vout })?.is_some() {
                return Err(TxRejection::new(
                    RejectKind::AlreadyInChain,
                    "Transaction outputs already in utxo set",
                )
                .into());
            }
        }
        if state
            .mempool
            .get(&txid)
            .is_some_and(|e| e.wtxid == tx.compute_wtxid())
        {
            return Ok(txid);
        }
        let tx = Arc::new(tx.clone());
        self.inner
            .insert_checked(&mut state, &tx, &opts.accept(false), true)
            .map(|(t, _)| t)
            .map_err(refusal_error)
    }

    /// Checks transactions without submitting them (`testmempoolaccept`); later ones may spend
    /// earlier ones.
    pub fn test_mempool_accept(
        &self,
        txs: &[Transaction],
        opts: &SubmitOptions,
    ) -> Result<Vec<TestAcceptResult>, ChainError> {
        let state = self.inner.lock_state();
        let mut scratch = state.mempool.clone();
        drop(state);
        let mut results = Vec::with_capacity(txs.len());
        for tx in txs {
            let arc = Arc::new(tx.clone());
            let (txid, wtxid) = (tx.compute_txid(), tx.compute_wtxid());
            match self
                .inner
                .check_against(&scratch, &arc, &opts.accept(false))
            {
                Ok(checked) => {
                    results.push(TestAcceptResult {
                        txid,
                        wtxid,
                        rejection: None,
                        vsize: Some(checked.entry.vsize),
                        fee: Some(checked.entry.fee),
                    });
                    for gone in &checked.replaces {
                        scratch.remove_with_descendants(gone);
                    }
                    scratch.insert(checked.entry);
                }
                Err(Refusal::Tx(rejection)) => results.push(TestAcceptResult {
                    txid,
                    wtxid,
                    rejection: Some(rejection),
                    vsize: None,
                    fee: None,
                }),
                Err(Refusal::Node(e)) => return Err(e),
            }
        }
        Ok(results)
    }

    /// Submits a child with its unconfirmed parents (`submitpackage`). Parents too cheap on
    /// their own enter when the package as a whole pays the relay fee rate (CPFP).
    pub fn submit_package(
        &self,
        txs: &[Transaction],
        opts: &SubmitOptions,
    ) -> Result<PackageOutcome, ChainError> {
        check_package_topology(txs)?;
        let mut state = self.inner.lock_state();
        let mut results: Vec<PackageTxOutcome> = txs
            .iter()
            .map(|tx| PackageTxOutcome {
                txid: tx.compute_txid(),
                wtxid: tx.compute_wtxid(),
                vsize: None,
                fee: None,
                effective_fee_rate: None,
                effective_includes: Vec::new(),
                error: None,
                other_wtxid: None,
            })
            .collect();
        let mut replaced = Vec::new();
        let mut deferred: Vec<usize> = Vec::new();
        let mut failed = false;
        let child = txs.len() - 1;
        for (i, tx) in txs.iter().enumerate() {
            let arc = Arc::new(tx.clone());
            if let Some(existing) = state.mempool.get(&results[i].txid) {
                results[i].vsize = Some(existing.vsize);
                results[i].fee = Some(existing.fee);
                if existing.wtxid != results[i].wtxid {
                    results[i].other_wtxid = Some(existing.wtxid);
                }
                continue;
            }
            if i == child && !deferred.is_empty() {
                break; // judged with the deferred parents below
            }
            match self
                .inner
                .insert_checked(&mut state, &arc, &opts.accept(false), true)
            {
                Ok((_, gone)) => {
                    let entry = state.mempool.get(&results[i].txid).expect("just inserted");
                    results[i].vsize = Some(entry.vsize);
                    results[i].fee = Some(entry.fee);
                    results[i].effective_fee_rate = Some(fee_rate_of(entry.fee, entry.vsize));
                    results[i].effective_includes = vec![results[i].wtxid];
                    replaced.extend(gone);
                }
                Err(refusal) if fee_only(&refusal) && i != child => deferred.push(i),
                Err(Refusal::Tx(rejection)) => {
                    results[i].error = Some(rejection.to_string());
                    failed = true;
                }
                Err(Refusal::Node(e)) => return Err(e),
            }
        }
        if !deferred.is_empty() && !failed {
            deferred.push(child);
            failed = !self.accept_cpfp(
                &mut state,
                txs,
                &deferred,
                opts,
                &mut results,
                &mut replaced,
            )?;
        } else if !deferred.is_empty() {
            for i in deferred {
                results[i].error = Some("min relay fee not met".into());
            }
        }
        let message = if failed || results.iter().any(|r| r.error.is_some()) {
            "transaction failed"
        } else {
            "success"
        };
        Ok(PackageOutcome {
            message: message.into(),
            tx_results: results,
            replaced,
        })
    }

    /// Judges deferred parents and the child by their combined fee rate; on success inserts them
    /// all. Returns whether they went in.
    fn accept_cpfp(
        &self,
        state: &mut State,
        txs: &[Transaction],
        members: &[usize],
        opts: &SubmitOptions,
        results: &mut [PackageTxOutcome],
        replaced: &mut Vec<Txid>,
    ) -> Result<bool, ChainError> {
        let mut scratch = state.mempool.clone();
        let (mut fee, mut vsize) = (Amount::ZERO, 0u64);
        for &i in members {
            let arc = Arc::new(txs[i].clone());
            match self.inner.check_against(&scratch, &arc, &opts.accept(true)) {
                Ok(checked) => {
                    fee += checked.entry.fee;
                    vsize += checked.entry.vsize;
                    for gone in &checked.replaces {
                        scratch.remove_with_descendants(gone);
                    }
                    scratch.insert(checked.entry);
                }
                Err(Refusal::Tx(rejection)) => {
                    results[i].error = Some(rejection.to_string());
                    return Ok(false);
                }
                Err(Refusal::Node(e)) => return Err(e),
            }
        }
        let needed = policy::fee_for(policy::MIN_RELAY_FEE, vsize);
        if fee < needed {
            for &i in members {
                results[i].error = Some(format!(
                    "min relay fee not met, {} < {}",
                    fee.to_sat(),
                    needed.to_sat()
                ));
            }
            return Ok(false);
        }
        let rate = fee_rate_of(fee, vsize);
        let includes: Vec<Wtxid> = members.iter().map(|&i| results[i].wtxid).collect();
        for &i in members {
            let arc = Arc::new(txs[i].clone());
            let (txid, gone) = self
                .inner
                .insert_checked(state, &arc, &opts.accept(true), true)
                .map_err(refusal_error)?;
            let entry = state.mempool.get(&txid).expect("just inserted");
            results[i].vsize = Some(entry.vsize);
            results[i].fee = Some(entry.fee);
            results[i].effective_fee_rate = Some(rate);
            results[i].effective_includes = includes.clone();
            replaced.extend(gone);
        }
        Ok(true)
    }
}

/// Core's `IsChildWithParentsTree`: the last transaction spends every other one, and the
/// others do not spend each other.
fn check_package_topology(txs: &[Transaction]) -> Result<(), ChainError> {
    let invalid = |m: &str| ChainError::Invalid(m.to_owned());
    if txs.is_empty() {
        return Err(invalid("Package must contain at least one transaction"));
    }
    if txs.len() > MAX_PACKAGE_COUNT {
        return Err(invalid("Array must contain between 1 and 25 transactions."));
    }
    let txids: Vec<Txid> = txs.iter().map(Transaction::compute_txid).collect();
    let unique: BTreeSet<_> = txids.iter().collect();
    if unique.len() != txids.len() {
        return Err(invalid("package-contains-duplicates"));
    }
    let (child, parents) = txs.split_last().expect("non-empty");
    let child_parents: BTreeSet<Txid> =
        child.input.iter().map(|i| i.previous_output.txid).collect();
    let parent_ids: BTreeSet<Txid> = txids[..parents.len()].iter().copied().collect();
    let parents_ok = parent_ids.iter().all(|p| child_parents.contains(p));
    let independent = parents.iter().all(|p| {
        p.input
            .iter()
            .all(|i| !parent_ids.contains(&i.previous_output.txid))
    });
    if !parents_ok || !independent {
        return Err(invalid(
            "package topology disallowed. not child-with-parents or parents depend on each other.",
        ));
    }
    Ok(())
}
