//! The mempool as Electrum sees it: which scripts each mempool transaction touches, what it
//! spends and pays, and the fee histogram. Kept in step with the chain source by diffing txids.

use std::collections::{HashMap, HashSet};

use bitcoin::{OutPoint, Txid};
use moip_chain::{ChainSource, MempoolEntry};

use crate::types::ScriptHash;
use crate::IndexError;

/// ElectrumX's bin size for `mempool.get_fee_histogram`, in vbytes.
const HISTOGRAM_BIN_VSIZE: f64 = 30_000.0;

/// A mempool transaction reduced to what the protocol needs.
#[derive(Debug, Clone)]
pub struct MempoolTx {
    pub txid: Txid,
    pub fee: u64,
    pub vsize: u64,
    /// Outputs paid, by script: (script, vout, value).
    pub funding: Vec<(ScriptHash, u32, u64)>,
    /// Outputs spent, by the script they paid: (script, outpoint, value).
    pub spending: Vec<(ScriptHash, OutPoint, u64)>,
    /// Whether an input spends another mempool transaction (height −1 in histories).
    pub has_unconfirmed_inputs: bool,
}

impl MempoolTx {
    fn from_entry(e: &MempoolEntry) -> MempoolTx {
        let funding =
            e.tx.output
                .iter()
                .enumerate()
                .filter(|(_, o)| !o.script_pubkey.is_op_return())
                .map(|(vout, o)| {
                    (
                        ScriptHash::of(&o.script_pubkey),
                        vout as u32,
                        o.value.to_sat(),
                    )
                })
                .collect();
        let spending =
            e.tx.input
                .iter()
                .zip(&e.prevouts)
                .map(|(i, p)| {
                    (
                        ScriptHash::of(&p.script_pubkey),
                        i.previous_output,
                        p.value.to_sat(),
                    )
                })
                .collect();
        MempoolTx {
            txid: e.txid,
            fee: e.fee.to_sat(),
            vsize: e.vsize,
            funding,
            spending,
            has_unconfirmed_inputs: false,
        }
    }

    fn scripts(&self) -> impl Iterator<Item = ScriptHash> + '_ {
        self.funding
            .iter()
            .map(|f| f.0)
            .chain(self.spending.iter().map(|s| s.0))
    }
}

/// A mempool history entry: the txid, 0 or −1, and the fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolHistoryEntry {
    pub txid: Txid,
    pub height: i32,
    pub fee: u64,
}

#[derive(Default)]
pub struct Mempool {
    txs: HashMap<Txid, MempoolTx>,
    by_script: HashMap<ScriptHash, HashSet<Txid>>,
    spends: HashMap<OutPoint, Txid>,
    histogram: Vec<(f64, u64)>,
}

impl Mempool {
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    pub fn contains(&self, txid: &Txid) -> bool {
        self.txs.contains_key(txid)
    }

    /// Brings the view level with the source. Returns the scripts whose mempool part changed.
    pub fn sync(&mut self, source: &dyn ChainSource) -> Result<HashSet<ScriptHash>, IndexError> {
        let now: HashSet<Txid> = source.mempool_txids()?.into_iter().collect();
        let mut changed = HashSet::new();
        let gone: Vec<Txid> = self
            .txs
            .keys()
            .filter(|t| !now.contains(*t))
            .copied()
            .collect();
        for txid in &gone {
            if let Some(tx) = self.txs.remove(txid) {
                changed.extend(tx.scripts());
                for sh in tx.scripts() {
                    if let Some(set) = self.by_script.get_mut(&sh) {
                        set.remove(txid);
                        if set.is_empty() {
                            self.by_script.remove(&sh);
                        }
                    }
                }
                for (_, outpoint, _) in &tx.spending {
                    if self.spends.get(outpoint) == Some(txid) {
                        self.spends.remove(outpoint);
                    }
                }
            }
        }
        let new: Vec<Txid> = now
            .iter()
            .filter(|t| !self.txs.contains_key(*t))
            .copied()
            .collect();
        if !new.is_empty() {
            for entry in source.mempool_entries(&new)? {
                if entry.prevouts.len() != entry.tx.input.len() {
                    continue; // its inputs could not all be resolved (raced with a block)
                }
                let tx = MempoolTx::from_entry(&entry);
                for sh in tx.scripts() {
                    self.by_script.entry(sh).or_default().insert(tx.txid);
                    changed.insert(sh);
                }
                for (_, outpoint, _) in &tx.spending {
                    self.spends.insert(*outpoint, tx.txid);
                }
                self.txs.insert(tx.txid, tx);
            }
        }
        if !gone.is_empty() || !new.is_empty() {
            // A parent confirming (or arriving) changes its children's height between 0 and −1.
            let parents: HashSet<Txid> = self.txs.keys().copied().collect();
            for tx in self.txs.values_mut() {
                let unconfirmed = tx
                    .spending
                    .iter()
                    .any(|(_, o, _)| parents.contains(&o.txid));
                if unconfirmed != tx.has_unconfirmed_inputs {
                    tx.has_unconfirmed_inputs = unconfirmed;
                    changed.extend(
                        tx.funding
                            .iter()
                            .map(|f| f.0)
                            .chain(tx.spending.iter().map(|s| s.0)),
                    );
                }
            }
            self.histogram = compress_histogram(self.txs.values(), HISTOGRAM_BIN_VSIZE);
        }
        Ok(changed)
    }

    /// A script's mempool transactions in the 1.6 canonical order: height 0 before −1, then by
    /// txid compared as display hex.
    pub fn history(&self, sh: &ScriptHash) -> Vec<MempoolHistoryEntry> {
        let Some(set) = self.by_script.get(sh) else {
            return Vec::new();
        };
        let mut out: Vec<MempoolHistoryEntry> = set
            .iter()
            .filter_map(|t| self.txs.get(t))
            .map(|tx| MempoolHistoryEntry {
                txid: tx.txid,
                height: -i32::from(tx.has_unconfirmed_inputs),
                fee: tx.fee,
            })
            .collect();
        out.sort_by(|a, b| {
            b.height
                .cmp(&a.height)
                .then_with(|| display_order(&a.txid).cmp(&display_order(&b.txid)))
        });
        out
    }

    /// Mempool effect on a script's balance: paid to it minus spent from it.
    pub fn balance_delta(&self, sh: &ScriptHash) -> i64 {
        let Some(set) = self.by_script.get(sh) else {
            return 0;
        };
        let mut delta = 0i64;
        for tx in set.iter().filter_map(|t| self.txs.get(t)) {
            delta += tx
                .funding
                .iter()
                .filter(|f| f.0 == *sh)
                .map(|f| f.2 as i64)
                .sum::<i64>();
            delta -= tx
                .spending
                .iter()
                .filter(|s| s.0 == *sh)
                .map(|s| s.2 as i64)
                .sum::<i64>();
        }
        delta
    }

    /// Outputs to a script created in the mempool: (outpoint, value).
    pub fn outputs_to(&self, sh: &ScriptHash) -> Vec<(OutPoint, u64)> {
        let Some(set) = self.by_script.get(sh) else {
            return Vec::new();
        };
        let mut out: Vec<(OutPoint, u64)> = set
            .iter()
            .filter_map(|t| self.txs.get(t))
            .flat_map(|tx| {
                tx.funding.iter().filter(|f| f.0 == *sh).map(|f| {
                    (
                        OutPoint {
                            txid: tx.txid,
                            vout: f.1,
                        },
                        f.2,
                    )
                })
            })
            .collect();
        out.sort_by(|a, b| {
            display_order(&a.0.txid)
                .cmp(&display_order(&b.0.txid))
                .then(a.0.vout.cmp(&b.0.vout))
        });
        out
    }

    /// Whether a mempool transaction spends `outpoint`.
    pub fn is_spent(&self, outpoint: &OutPoint) -> bool {
        self.spends.contains_key(outpoint)
    }

    /// The compact fee histogram: `[fee rate sat/vB, vsize]`, fee rate descending.
    pub fn fee_histogram(&self) -> &[(f64, u64)] {
        &self.histogram
    }
}

/// A txid's bytes in display order, the sort key the 1.6 protocol prescribes.
pub fn display_order(txid: &Txid) -> [u8; 32] {
    use bitcoin::hashes::Hash;
    let mut b = txid.to_byte_array();
    b.reverse();
    b
}

/// ElectrumX's histogram compaction: rates floored to 0.1 sat/vB, bins of about `bin` vbytes
/// growing by 10% each, more precise at the top.
fn compress_histogram<'a>(txs: impl Iterator<Item = &'a MempoolTx>, bin: f64) -> Vec<(f64, u64)> {
    let mut by_rate: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    for tx in txs {
        let tenths = (tx.fee * 10) / tx.vsize.max(1);
        *by_rate.entry(tenths).or_default() += tx.vsize;
    }
    let mut bin = bin;
    let mut compact = Vec::new();
    let mut cum = 0u64;
    let mut prev: Option<u64> = None;
    for (&tenths, &size) in by_rate.iter().rev() {
        if size as f64 > 2.0 * bin && cum > 0 {
            if let Some(p) = prev {
                compact.push((p as f64 / 10.0, cum));
                cum = 0;
                bin *= 1.1;
            }
        }
        cum += size;
        if cum as f64 > bin {
            compact.push((tenths as f64 / 10.0, cum));
            cum = 0;
            bin *= 1.1;
        }
        prev = Some(tenths);
    }
    compact
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn tx(n: u8, fee: u64, vsize: u64) -> MempoolTx {
        MempoolTx {
            txid: Txid::from_byte_array([n; 32]),
            fee,
            vsize,
            funding: vec![],
            spending: vec![],
            has_unconfirmed_inputs: false,
        }
    }

    #[test]
    fn histogram_matches_electrumx_compaction() {
        // 10 sat/vB × 50k vB, then 5 sat/vB × 10k vB, then 1 sat/vB × 40k vB.
        let txs = [
            tx(1, 500_000, 50_000),
            tx(2, 50_000, 10_000),
            tx(3, 40_000, 40_000),
        ];
        let h = compress_histogram(txs.iter(), 30_000.0);
        assert_eq!(h, vec![(10.0, 50_000), (1.0, 50_000)]);
    }

    #[test]
    fn mempool_history_is_in_canonical_order() {
        let mut m = Mempool::default();
        let sh = ScriptHash([1; 32]);
        for (n, unconfirmed) in [(0x01u8, true), (0x02, false), (0x03, false)] {
            let mut t = tx(n, 100, 100);
            t.has_unconfirmed_inputs = unconfirmed;
            t.funding.push((sh, 0, 1));
            m.by_script.entry(sh).or_default().insert(t.txid);
            m.txs.insert(t.txid, t);
        }
        let order: Vec<(u8, i32)> = m
            .history(&sh)
            .iter()
            .map(|e| (e.txid.to_byte_array()[0], e.height))
            .collect();
        assert_eq!(order, vec![(0x02, 0), (0x03, 0), (0x01, -1)]);
    }
}
