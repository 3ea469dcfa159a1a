//! Mempool acceptance: Core's `MemPoolAccept` checks in Core's order, with Core's reject reasons.
//! Consensus script checks go to the kernel; everything else reads the node's UTXO view.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bitcoin::{Amount, FeeRate, OutPoint, Transaction, TxOut, Txid};

/// BIP68: set, the input has no relative lock.
const SEQUENCE_LOCKTIME_DISABLE_FLAG: u32 = 1 << 31;
/// BIP68: set, the relative lock counts 512-second units instead of blocks.
const SEQUENCE_LOCKTIME_TYPE_FLAG: u32 = 1 << 22;

use super::kernel::{self, CONSENSUS_FLAGS};
use super::mempool::{Mempool, PoolTx};
use super::policy::{self, fee_for};
use super::store::{Coin, Store};
use crate::{ChainError, RejectKind, TxRejection};

/// What the chain looks like to a transaction entering the mempool.
pub(crate) struct ChainView<'a> {
    pub store: &'a Store,
    /// Height of the block the transaction could first be mined in (tip + 1).
    pub next_height: u32,
    /// Median-time-past of the tip, the time locks are judged against.
    pub tip_mtp: u32,
    /// Median-time-past of the block at a height (for BIP68 time locks).
    pub mtp_at: &'a dyn Fn(u32) -> u32,
    pub now: u64,
}

/// How strictly to judge.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AcceptOptions {
    /// Skip the minimum-fee check (transactions returning from disconnected blocks).
    pub bypass_fee: bool,
    /// Refuse if the fee rate is above this (`maxfeerate` of the RPCs).
    pub max_fee_rate: Option<FeeRate>,
    /// Refuse if more than this is sent to unspendable outputs (`maxburnamount`).
    pub max_burn: Option<Amount>,
}

/// A transaction that passed every check, ready to enter the pool.
pub(crate) struct Checked {
    pub entry: PoolTx,
    /// Pool transactions the entry replaces (direct conflicts and their descendants).
    pub replaces: BTreeSet<Txid>,
}

/// Why a check failed: a refusal (the normal case) or the node's own failure.
pub(crate) enum Refusal {
    Tx(TxRejection),
    Node(ChainError),
}

impl From<TxRejection> for Refusal {
    fn from(r: TxRejection) -> Self {
        Refusal::Tx(r)
    }
}

impl From<ChainError> for Refusal {
    fn from(e: ChainError) -> Self {
        Refusal::Node(e)
    }
}

fn btc(amount: Amount) -> String {
    format!("{:.8}", amount.to_btc())
}

fn btc_per_kvb(fee: Amount, vsize: u64) -> String {
    let sat_per_kvb = fee.to_sat() * 1000 / vsize.max(1);
    format!("{:.8} BTC/kvB", sat_per_kvb as f64 / 1e8)
}

/// Core's `CheckTransaction` reasons for the common failures; the kernel checks the rest.
fn check_context_free(tx: &Transaction) -> Result<(), TxRejection> {
    if tx.input.is_empty() {
        return Err(TxRejection::rejected("bad-txns-vin-empty"));
    }
    if tx.output.is_empty() {
        return Err(TxRejection::rejected("bad-txns-vout-empty"));
    }
    if tx.base_size() * 4 > policy::MAX_BLOCK_WEIGHT as usize {
        return Err(TxRejection::rejected("bad-txns-oversize"));
    }
    let mut total = Amount::ZERO;
    for output in &tx.output {
        if output.value > Amount::MAX_MONEY {
            return Err(TxRejection::rejected("bad-txns-vout-toolarge"));
        }
        total = total
            .checked_add(output.value)
            .filter(|t| *t <= Amount::MAX_MONEY)
            .ok_or_else(|| TxRejection::rejected("bad-txns-txouttotal-toolarge"))?;
    }
    let mut seen = std::collections::HashSet::with_capacity(tx.input.len());
    if !tx.input.iter().all(|i| seen.insert(i.previous_output)) {
        return Err(TxRejection::rejected("bad-txns-inputs-duplicate"));
    }
    if tx.is_coinbase() {
        return Err(TxRejection::rejected("coinbase"));
    }
    if tx.input.iter().any(|i| i.previous_output.is_null()) {
        return Err(TxRejection::rejected("bad-txns-prevout-null"));
    }
    kernel::check_transaction(tx).map_err(|e| TxRejection::rejected("bad-txns-check").with_debug(e))
}

/// Core's BIP68 `CheckSequenceLocks` with the heights of the coins spent.
fn sequence_locks_ok(tx: &Transaction, coin_heights: &[u32], view: &ChainView<'_>) -> bool {
    if tx.version.0 < 2 {
        return true;
    }
    let (mut min_height, mut min_time) = (-1i64, -1i64);
    for (input, &coin_height) in tx.input.iter().zip(coin_heights) {
        let seq = input.sequence.to_consensus_u32();
        if seq & SEQUENCE_LOCKTIME_DISABLE_FLAG != 0 {
            continue;
        }
        let value = i64::from(seq & 0x0000_ffff);
        if seq & SEQUENCE_LOCKTIME_TYPE_FLAG != 0 {
            let coin_time = i64::from((view.mtp_at)(coin_height.saturating_sub(1)));
            min_time = min_time.max(coin_time + (value << 9) - 1);
        } else {
            min_height = min_height.max(i64::from(coin_height) + value - 1);
        }
    }
    min_height < i64::from(view.next_height) && min_time < i64::from(view.tip_mtp)
}

/// Runs every check on `tx` against `pool` and the chain; changes nothing.
pub(crate) fn check(
    tx: &Arc<Transaction>,
    pool: &Mempool,
    view: &ChainView<'_>,
    opts: &AcceptOptions,
) -> Result<Checked, Refusal> {
    check_context_free(tx)?;
    policy::check_standard(tx)?;
    if !policy::is_final(tx, view.next_height, view.tip_mtp) {
        return Err(TxRejection::rejected("non-final").into());
    }
    let txid = tx.compute_txid();
    if let Some(existing) = pool.get(&txid) {
        let reason = if existing.wtxid == tx.compute_wtxid() {
            "txn-already-in-mempool"
        } else {
            "txn-same-nonwitness-data-in-mempool"
        };
        return Err(TxRejection::rejected(reason).into());
    }

    // Resolve inputs against the mempool first, then the UTXO set; note what the tx conflicts with.
    let mut conflicts = BTreeSet::new();
    let mut prevouts = Vec::with_capacity(tx.input.len());
    let mut coin_heights = Vec::with_capacity(tx.input.len());
    for input in &tx.input {
        let outpoint = input.previous_output;
        if let Some(spender) = pool.spender(&outpoint) {
            conflicts.insert(spender);
        }
        let coin = if let Some(out) = pool.output(&outpoint) {
            Coin {
                txout: out.clone(),
                height: view.next_height,
                coinbase: false,
            }
        } else if let Some(coin) = view.store.coin(&outpoint)? {
            coin
        } else {
            // Core first asks whether the transaction itself is already confirmed.
            for vout in 0..tx.output.len() as u32 {
                if view.store.coin(&OutPoint { txid, vout })?.is_some() {
                    return Err(
                        TxRejection::new(RejectKind::AlreadyInChain, "txn-already-known").into(),
                    );
                }
            }
            return Err(TxRejection::new(
                RejectKind::MissingInputs,
                "bad-txns-inputs-missingorspent",
            )
            .into());
        };
        if coin.coinbase && view.next_height - coin.height < policy::COINBASE_MATURITY {
            return Err(
                TxRejection::rejected("bad-txns-premature-spend-of-coinbase")
                    .with_debug(format!(
                        "tried to spend coinbase at depth {}",
                        view.next_height - coin.height
                    ))
                    .into(),
            );
        }
        coin_heights.push(coin.height);
        prevouts.push(coin.txout);
    }

    let value_in = prevouts
        .iter()
        .map(|o| o.value)
        .try_fold(Amount::ZERO, Amount::checked_add)
        .filter(|v| *v <= Amount::MAX_MONEY)
        .ok_or_else(|| TxRejection::rejected("bad-txns-inputvalues-outofrange"))?;
    let value_out: Amount = tx.output.iter().map(|o| o.value).sum();
    if value_in < value_out {
        return Err(TxRejection::rejected("bad-txns-in-belowout")
            .with_debug(format!(
                "value in ({}) < value out ({})",
                btc(value_in),
                btc(value_out)
            ))
            .into());
    }
    let fee = value_in - value_out;

    if !sequence_locks_ok(tx, &coin_heights, view) {
        return Err(TxRejection::rejected("non-BIP68-final").into());
    }

    let by_outpoint: HashMap<OutPoint, TxOut> = tx
        .input
        .iter()
        .map(|i| i.previous_output)
        .zip(prevouts.iter().cloned())
        .collect();
    let sigop_cost = tx.total_sigop_cost(|o| by_outpoint.get(o).cloned()) as u64;
    if sigop_cost > policy::MAX_STANDARD_TX_SIGOPS_COST {
        return Err(TxRejection::rejected("bad-txns-too-many-sigops")
            .with_debug(sigop_cost.to_string())
            .into());
    }

    let entry = PoolTx::new(
        Arc::clone(tx),
        fee,
        sigop_cost,
        view.now,
        view.next_height - 1,
        prevouts,
    );
    let vsize = entry.vsize;

    if let Some(max_burn) = opts.max_burn {
        let burnt: Amount = tx
            .output
            .iter()
            .filter(|o| o.script_pubkey.is_op_return())
            .map(|o| o.value)
            .sum();
        if burnt > max_burn {
            return Err(
                TxRejection::new(RejectKind::MaxFeeExceeded, "max-burn-exceeded")
                    .with_debug(
                        "Unspendable output exceeds maximum configured by user (maxburnamount)",
                    )
                    .into(),
            );
        }
    }
    if !opts.bypass_fee {
        let min = fee_for(policy::MIN_RELAY_FEE, vsize);
        if fee < min {
            return Err(TxRejection::rejected("min relay fee not met")
                .with_debug(format!("{} < {}", fee.to_sat(), min.to_sat()))
                .into());
        }
    }
    if let Some(max_rate) = opts.max_fee_rate {
        if max_rate > FeeRate::ZERO && fee > fee_for(max_rate, vsize) {
            return Err(
                TxRejection::new(RejectKind::MaxFeeExceeded, "max-fee-exceeded")
                    .with_debug(
                        "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)",
                    )
                    .into(),
            );
        }
    }

    // Ancestor and descendant limits (Core's pre-cluster-mempool package limits).
    let parents = pool.parents_of(tx);
    let ancestors = pool.ancestors_from(&parents);
    let anc = pool.totals_of(&ancestors);
    if anc.count + 1 > policy::ANCESTOR_LIMIT {
        return Err(TxRejection::rejected("too-long-mempool-chain")
            .with_debug(format!(
                "too many unconfirmed ancestors [limit: {}]",
                policy::ANCESTOR_LIMIT
            ))
            .into());
    }
    if anc.vsize + vsize > policy::PACKAGE_SIZE_LIMIT {
        return Err(TxRejection::rejected("too-long-mempool-chain")
            .with_debug(format!(
                "exceeds ancestor size limit [limit: {}]",
                policy::PACKAGE_SIZE_LIMIT
            ))
            .into());
    }
    for ancestor in &ancestors {
        let desc = pool.descendants(ancestor);
        let totals = pool.totals_of(desc.iter().chain(std::iter::once(ancestor)));
        if totals.count + 1 > policy::DESCENDANT_LIMIT {
            return Err(TxRejection::rejected("too-long-mempool-chain")
                .with_debug(format!(
                    "too many descendants for tx {ancestor} [limit: {}]",
                    policy::DESCENDANT_LIMIT
                ))
                .into());
        }
        if totals.vsize + vsize > policy::PACKAGE_SIZE_LIMIT {
            return Err(TxRejection::rejected("too-long-mempool-chain")
                .with_debug(format!(
                    "exceeds descendant size limit for tx {ancestor} [limit: {}]",
                    policy::PACKAGE_SIZE_LIMIT
                ))
                .into());
        }
    }

    let replaces = if conflicts.is_empty() {
        BTreeSet::new()
    } else {
        check_replacement(&entry, &conflicts, &ancestors, pool)?
    };

    // Last and dearest: the kernel's script interpreter with every consensus rule.
    if let Err(failure) = kernel::verify_scripts(tx, &entry.prevouts, CONSENSUS_FLAGS) {
        return Err(TxRejection::rejected("mandatory-script-verify-flag-failed")
            .with_debug(format!(
                "input {}: {} (libbitcoinkernel script verification)",
                failure.input, failure.message
            ))
            .into());
    }
    Ok(Checked { entry, replaces })
}

/// BIP125 rules 2-6 under full-RBF (every transaction is replaceable, as in Core 28+).
fn check_replacement(
    entry: &PoolTx,
    conflicts: &BTreeSet<Txid>,
    ancestors: &BTreeSet<Txid>,
    pool: &Mempool,
) -> Result<BTreeSet<Txid>, TxRejection> {
    let txid = entry.txid;
    let mut all = conflicts.clone();
    for c in conflicts {
        all.extend(pool.descendants(c));
        if all.len() > policy::MAX_REPLACEMENT_CANDIDATES {
            break;
        }
    }
    // Rule 5: a bounded number of evictions.
    if all.len() > policy::MAX_REPLACEMENT_CANDIDATES {
        return Err(
            TxRejection::rejected("too many potential replacements").with_debug(format!(
                "rejecting replacement {txid}; too many potential replacements ({} > {})",
                all.len(),
                policy::MAX_REPLACEMENT_CANDIDATES
            )),
        );
    }
    if let Some(spent) = ancestors.iter().find(|a| all.contains(*a)) {
        return Err(TxRejection::rejected("bad-txns-spends-conflicting-tx")
            .with_debug(format!("{txid} spends conflicting transaction {spent}")));
    }
    // Rule 2: no unconfirmed input that none of the replaced transactions had.
    let conflict_parents: BTreeSet<Txid> = conflicts
        .iter()
        .filter_map(|c| pool.get(c))
        .flat_map(|c| c.tx.input.iter().map(|i| i.previous_output.txid))
        .collect();
    for (idx, input) in entry.tx.input.iter().enumerate() {
        let parent = input.previous_output.txid;
        if pool.get(&parent).is_some() && !conflict_parents.contains(&parent) {
            return Err(
                TxRejection::rejected("replacement-adds-unconfirmed").with_debug(format!(
                    "replacement {txid} adds unconfirmed input, idx {idx}"
                )),
            );
        }
    }
    // Rule 6: a higher fee rate than every transaction it directly replaces.
    for c in conflicts.iter().filter_map(|c| pool.get(c)) {
        let new = super::mempool::Rate {
            fee: entry.fee.to_sat(),
            vsize: entry.vsize,
        };
        let old = super::mempool::Rate {
            fee: c.fee.to_sat(),
            vsize: c.vsize,
        };
        if new <= old {
            return Err(
                TxRejection::rejected("insufficient fee").with_debug(format!(
                    "rejecting replacement {txid}; new feerate {} <= old feerate {}",
                    btc_per_kvb(entry.fee, entry.vsize),
                    btc_per_kvb(c.fee, c.vsize)
                )),
            );
        }
    }
    // Rules 3 and 4: pays at least what it evicts, plus relay for its own size.
    let old_fees = pool.totals_of(&all).fee;
    if entry.fee < old_fees {
        return Err(
            TxRejection::rejected("insufficient fee").with_debug(format!(
                "rejecting replacement {txid}, less fees than conflicting txs; {} < {}",
                btc(entry.fee),
                btc(old_fees)
            )),
        );
    }
    let additional = entry.fee - old_fees;
    let relay = fee_for(policy::INCREMENTAL_RELAY_FEE, entry.vsize);
    if additional < relay {
        return Err(
            TxRejection::rejected("insufficient fee").with_debug(format!(
                "rejecting replacement {txid}, not enough additional fees to relay; {} < {}",
                btc(additional),
                btc(relay)
            )),
        );
    }
    Ok(all)
}
