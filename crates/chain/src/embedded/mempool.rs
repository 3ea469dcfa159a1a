//! The mempool's data structure: transactions, the graph between them, and block-template
//! selection by ancestor fee rate. Pure: no I/O, no validation (that is `accept.rs`), so the
//! graph logic is tested on its own.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use bitcoin::{Amount, OutPoint, Transaction, TxOut, Txid, Wtxid};

use crate::MempoolEntry;

/// A transaction in the mempool.
#[derive(Debug, Clone)]
pub(crate) struct PoolTx {
    pub tx: Arc<Transaction>,
    pub txid: Txid,
    pub wtxid: Wtxid,
    pub fee: Amount,
    pub vsize: u64,
    pub weight: u64,
    pub sigop_cost: u64,
    pub time: u64,
    pub height: u32,
    pub prevouts: Vec<TxOut>,
    pub signals_rbf: bool,
    /// Order of entry; breaks fee-rate ties (older first) and orders re-acceptance after reorgs.
    pub sequence: u64,
    parents: BTreeSet<Txid>,
    children: BTreeSet<Txid>,
}

impl PoolTx {
    pub(crate) fn new(
        tx: Arc<Transaction>,
        fee: Amount,
        sigop_cost: u64,
        time: u64,
        height: u32,
        prevouts: Vec<TxOut>,
    ) -> PoolTx {
        let weight = tx.weight().to_wu();
        // Core's virtual size also accounts for sigops: max(weight, sigops * 20) / 4.
        let vsize = weight.max(sigop_cost * 20).div_ceil(4);
        PoolTx {
            txid: tx.compute_txid(),
            wtxid: tx.compute_wtxid(),
            signals_rbf: tx.is_explicitly_rbf(),
            tx,
            fee,
            vsize,
            weight,
            sigop_cost,
            time,
            height,
            prevouts,
            sequence: 0,
            parents: BTreeSet::new(),
            children: BTreeSet::new(),
        }
    }
}

/// Totals over a set of transactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub count: u64,
    pub vsize: u64,
    pub weight: u64,
    pub fee: Amount,
    pub sigop_cost: u64,
}

impl Totals {
    fn add(&mut self, tx: &PoolTx) {
        self.count += 1;
        self.vsize += tx.vsize;
        self.weight += tx.weight;
        self.fee += tx.fee;
        self.sigop_cost += tx.sigop_cost;
    }
}

/// Fee over size, compared exactly by cross-multiplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    pub fee: u64,
    pub vsize: u64,
}

impl Ord for Rate {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.fee as u128 * other.vsize.max(1) as u128)
            .cmp(&(other.fee as u128 * self.vsize.max(1) as u128))
    }
}

impl PartialOrd for Rate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Default, Clone)]
pub(crate) struct Mempool {
    txs: HashMap<Txid, PoolTx>,
    spenders: HashMap<OutPoint, Txid>,
    wtxids: HashMap<Wtxid, Txid>,
    next_sequence: u64,
}

impl Mempool {
    pub(crate) fn get(&self, txid: &Txid) -> Option<&PoolTx> {
        self.txs.get(txid)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &PoolTx> {
        self.txs.values()
    }

    /// Txids in the order they entered.
    pub(crate) fn txids_by_sequence(&self) -> Vec<Txid> {
        let mut all: Vec<_> = self.txs.values().map(|t| (t.sequence, t.txid)).collect();
        all.sort_unstable();
        all.into_iter().map(|(_, txid)| txid).collect()
    }

    /// The mempool transaction spending `outpoint`, if any.
    pub(crate) fn spender(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spenders.get(outpoint).copied()
    }

    /// An output created by a mempool transaction.
    pub(crate) fn output(&self, outpoint: &OutPoint) -> Option<&TxOut> {
        self.txs
            .get(&outpoint.txid)?
            .tx
            .output
            .get(outpoint.vout as usize)
    }

    /// Sum of virtual sizes, for `getmempoolinfo`.
    pub(crate) fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        self.txs.values().for_each(|t| totals.add(t));
        totals
    }

    /// In-mempool parents of a transaction that is not (yet) in the pool.
    pub(crate) fn parents_of(&self, tx: &Transaction) -> BTreeSet<Txid> {
        tx.input
            .iter()
            .map(|i| i.previous_output.txid)
            .filter(|t| self.txs.contains_key(t))
            .collect()
    }

    fn closure(&self, start: impl IntoIterator<Item = Txid>, up: bool) -> BTreeSet<Txid> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<Txid> = start.into_iter().collect();
        while let Some(txid) = stack.pop() {
            if !seen.insert(txid) {
                continue;
            }
            if let Some(t) = self.txs.get(&txid) {
                stack.extend(
                    if up {
                        t.parents.iter()
                    } else {
                        t.children.iter()
                    }
                    .copied(),
                );
            }
        }
        seen
    }

    /// In-mempool ancestors reached from the given parents (the parents included).
    pub(crate) fn ancestors_from(&self, parents: &BTreeSet<Txid>) -> BTreeSet<Txid> {
        self.closure(parents.iter().copied(), true)
    }

    /// Ancestors of a pool transaction, itself excluded.
    pub(crate) fn ancestors(&self, txid: &Txid) -> BTreeSet<Txid> {
        let parents = self
            .txs
            .get(txid)
            .map(|t| t.parents.clone())
            .unwrap_or_default();
        self.ancestors_from(&parents)
    }

    /// Descendants of a pool transaction, itself excluded.
    pub(crate) fn descendants(&self, txid: &Txid) -> BTreeSet<Txid> {
        let children = self
            .txs
            .get(txid)
            .map(|t| t.children.clone())
            .unwrap_or_default();
        self.closure(children, false)
    }

    pub(crate) fn totals_of<'a>(&self, txids: impl IntoIterator<Item = &'a Txid>) -> Totals {
        let mut totals = Totals::default();
        for txid in txids {
            if let Some(t) = self.txs.get(txid) {
                totals.add(t);
            }
        }
        totals
    }

    /// Adds a transaction whose inputs the caller has checked; links it into the graph.
    pub(crate) fn insert(&mut self, mut tx: PoolTx) {
        tx.parents = self.parents_of(&tx.tx);
        tx.sequence = self.next_sequence;
        self.next_sequence += 1;
        for parent in &tx.parents {
            if let Some(p) = self.txs.get_mut(parent) {
                p.children.insert(tx.txid);
            }
        }
        for input in &tx.tx.input {
            self.spenders.insert(input.previous_output, tx.txid);
        }
        self.wtxids.insert(tx.wtxid, tx.txid);
        self.txs.insert(tx.txid, tx);
    }

    /// Removes one transaction, leaving its descendants (used when it confirmed).
    pub(crate) fn remove(&mut self, txid: &Txid) -> Option<PoolTx> {
        let tx = self.txs.remove(txid)?;
        for input in &tx.tx.input {
            if self.spenders.get(&input.previous_output) == Some(txid) {
                self.spenders.remove(&input.previous_output);
            }
        }
        self.wtxids.remove(&tx.wtxid);
        for parent in &tx.parents {
            if let Some(p) = self.txs.get_mut(parent) {
                p.children.remove(txid);
            }
        }
        for child in &tx.children {
            if let Some(c) = self.txs.get_mut(child) {
                c.parents.remove(txid);
            }
        }
        Some(tx)
    }

    /// Removes a transaction and everything spending from it, descendants last.
    pub(crate) fn remove_with_descendants(&mut self, txid: &Txid) -> Vec<PoolTx> {
        if !self.txs.contains_key(txid) {
            return Vec::new();
        }
        let mut doomed: Vec<Txid> = self.descendants(txid).into_iter().collect();
        doomed.push(*txid);
        let mut removed: Vec<PoolTx> = doomed.iter().filter_map(|t| self.remove(t)).collect();
        removed.sort_by_key(|t| t.sequence);
        removed
    }

    /// Removes everything, returning transactions in entry order.
    pub(crate) fn drain(&mut self) -> Vec<PoolTx> {
        let mut all: Vec<PoolTx> = self.txs.drain().map(|(_, t)| t).collect();
        self.spenders.clear();
        self.wtxids.clear();
        all.sort_by_key(|t| t.sequence);
        all
    }

    /// The public view of an entry, with ancestor and descendant statistics.
    pub(crate) fn entry(&self, txid: &Txid) -> Option<MempoolEntry> {
        let t = self.txs.get(txid)?;
        let ancestors = self.ancestors(txid);
        let descendants = self.descendants(txid);
        let mut anc = self.totals_of(&ancestors);
        anc.add(t);
        let mut desc = self.totals_of(&descendants);
        desc.add(t);
        let bip125_replaceable = t.signals_rbf || ancestors.iter().any(|a| self.txs[a].signals_rbf);
        Some(MempoolEntry {
            tx: Arc::clone(&t.tx),
            txid: t.txid,
            wtxid: t.wtxid,
            fee: t.fee,
            vsize: t.vsize,
            weight: t.weight,
            time: t.time,
            height: t.height,
            prevouts: t.prevouts.clone(),
            depends: t.parents.iter().copied().collect(),
            spent_by: t.children.iter().copied().collect(),
            ancestor_count: anc.count,
            ancestor_vsize: anc.vsize,
            ancestor_fees: anc.fee,
            descendant_count: desc.count,
            descendant_vsize: desc.vsize,
            descendant_fees: desc.fee,
            bip125_replaceable,
        })
    }

    /// Chooses transactions for a block by ancestor fee rate, so a child paying for its parents
    /// (CPFP) pulls them in. Returns txids in a valid order (parents before children).
    pub(crate) fn select(&self, max_weight: u64, max_sigop_cost: u64) -> Vec<Txid> {
        #[derive(PartialEq, Eq)]
        struct Candidate {
            rate: Rate,
            sequence: std::cmp::Reverse<u64>,
            txid: Txid,
        }
        impl Ord for Candidate {
            fn cmp(&self, other: &Self) -> Ordering {
                self.rate
                    .cmp(&other.rate)
                    .then(self.sequence.cmp(&other.sequence))
                    .then(self.txid.cmp(&other.txid))
            }
        }
        impl PartialOrd for Candidate {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }

        let mut included: HashSet<Txid> = HashSet::new();
        let mut failed: HashSet<Txid> = HashSet::new();
        let mut order = Vec::new();
        let (mut weight, mut sigops) = (0u64, 0u64);

        // The package of a transaction: itself plus its ancestors not yet in the block.
        let package = |txid: &Txid, included: &HashSet<Txid>| -> (Vec<Txid>, Totals) {
            let mut members: Vec<Txid> = self
                .ancestors(txid)
                .into_iter()
                .filter(|a| !included.contains(a))
                .collect();
            members.push(*txid);
            let totals = self.totals_of(&members);
            (members, totals)
        };
        let candidate = |txid: Txid, totals: &Totals| Candidate {
            rate: Rate {
                fee: totals.fee.to_sat(),
                vsize: totals.vsize,
            },
            sequence: std::cmp::Reverse(self.txs[&txid].sequence),
            txid,
        };

        let mut heap: BinaryHeap<Candidate> = self
            .txs
            .keys()
            .map(|txid| {
                let (_, totals) = package(txid, &included);
                candidate(*txid, &totals)
            })
            .collect();

        while let Some(top) = heap.pop() {
            if included.contains(&top.txid) || failed.contains(&top.txid) {
                continue;
            }
            let (members, totals) = package(&top.txid, &included);
            let fresh = candidate(top.txid, &totals);
            if fresh.rate != top.rate {
                heap.push(fresh); // stale key: its ancestors changed since it was pushed
                continue;
            }
            if weight + totals.weight > max_weight || sigops + totals.sigop_cost > max_sigop_cost {
                failed.insert(top.txid);
                continue;
            }
            weight += totals.weight;
            sigops += totals.sigop_cost;
            let mut members = members;
            // Fewer ancestors first is a topological order.
            members.sort_by_key(|m| (self.ancestors(m).len(), self.txs[m].sequence));
            let mut touched = BTreeSet::new();
            for m in members {
                included.insert(m);
                order.push(m);
                touched.extend(self.descendants(&m));
            }
            // Descendants now carry fewer ancestors; queue them with their new package rate.
            for d in touched {
                if !included.contains(&d) && !failed.contains(&d) {
                    let (_, totals) = package(&d, &included);
                    heap.push(candidate(d, &totals));
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::hashes::Hash;
    use bitcoin::transaction::Version;
    use bitcoin::{ScriptBuf, Sequence, TxIn, Witness};

    fn tx(inputs: &[OutPoint], tag: u8) -> Arc<Transaction> {
        Arc::new(Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: inputs
                .iter()
                .map(|o| TxIn {
                    previous_output: *o,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                })
                .collect(),
            output: vec![TxOut {
                value: Amount::from_sat(1000),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51, tag]),
            }],
        })
    }

    fn confirmed(n: u8) -> OutPoint {
        OutPoint {
            txid: Txid::from_byte_array([n; 32]),
            vout: 0,
        }
    }

    fn add(pool: &mut Mempool, t: &Arc<Transaction>, fee: u64) -> Txid {
        let entry = PoolTx::new(Arc::clone(t), Amount::from_sat(fee), 0, 0, 0, vec![]);
        let txid = entry.txid;
        pool.insert(entry);
        txid
    }

    #[test]
    fn graph_links_and_unlinks() {
        let mut pool = Mempool::default();
        let a = add(&mut pool, &tx(&[confirmed(1)], 1), 100);
        let b = add(&mut pool, &tx(&[OutPoint { txid: a, vout: 0 }], 2), 100);
        let c = add(&mut pool, &tx(&[OutPoint { txid: b, vout: 0 }], 3), 100);
        assert_eq!(pool.ancestors(&c), [a, b].into_iter().collect());
        assert_eq!(pool.descendants(&a), [b, c].into_iter().collect());
        let e = pool.entry(&b).expect("present");
        assert_eq!((e.ancestor_count, e.descendant_count), (2, 2));
        let removed = pool.remove_with_descendants(&b);
        assert_eq!(
            removed.iter().map(|t| t.txid).collect::<Vec<_>>(),
            vec![b, c]
        );
        assert!(pool.descendants(&a).is_empty());
        assert_eq!(pool.spender(&OutPoint { txid: a, vout: 0 }), None);
    }

    #[test]
    fn child_pays_for_parent() {
        let mut pool = Mempool::default();
        let parent = add(&mut pool, &tx(&[confirmed(1)], 1), 0);
        let other = add(&mut pool, &tx(&[confirmed(2)], 2), 500);
        let child = add(
            &mut pool,
            &tx(
                &[OutPoint {
                    txid: parent,
                    vout: 0,
                }],
                3,
            ),
            5000,
        );
        // Room for two of the three transactions.
        let one = pool.get(&parent).expect("present").weight;
        let order = pool.select(one * 2, u64::MAX);
        assert_eq!(
            order,
            vec![parent, child],
            "the rich child pulls its zero-fee parent in first"
        );
        let all = pool.select(u64::MAX, u64::MAX);
        assert_eq!(all, vec![parent, child, other]);
    }

    #[test]
    fn rate_compares_exactly() {
        assert!(Rate { fee: 1, vsize: 3 } < Rate { fee: 1, vsize: 2 });
        assert_eq!(
            Rate { fee: 2, vsize: 4 }.cmp(&Rate { fee: 1, vsize: 2 }),
            Ordering::Equal
        );
    }
}
