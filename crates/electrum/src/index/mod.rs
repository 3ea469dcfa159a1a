//! The chain index: fed by any `ChainSource`, read by the protocol handlers.
//!
//! Headers, block hashes and the first transaction number of every block live in memory as well
//! as on disk, so height lookups, header requests and txnum→height are memory operations.

mod rows;
mod store;
mod sync;

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

use bitcoin::block::Header;
use bitcoin::{BlockHash, Txid};

pub use rows::{BlockRows, UtxoKey, UtxoValue};
pub use sync::{SyncProgress, Syncer};

use self::store::Store;
use crate::types::{ScriptHash, TxNum};
use crate::IndexError;

/// Blocks below the tip whose undo data is kept: reorganisations deeper than this cannot be
/// followed without re-indexing (ElectrumX keeps 8,000 on mainnet; regtest tests go far less).
pub const REORG_LIMIT: u32 = 1_000;

/// The active chain as the index knows it.
#[derive(Debug, Default, Clone)]
pub(crate) struct ChainView {
    pub headers: Vec<Header>,
    pub hashes: Vec<BlockHash>,
    /// First transaction number of each block; `next_txnum` follows the last.
    pub first_txnum: Vec<TxNum>,
    pub next_txnum: TxNum,
    pub by_hash: HashMap<BlockHash, u32>,
}

impl ChainView {
    pub fn height(&self) -> Option<u32> {
        (self.hashes.len() as u32).checked_sub(1)
    }

    /// The height of the block containing `txnum`.
    pub fn height_of(&self, txnum: TxNum) -> Option<u32> {
        if txnum >= self.next_txnum {
            return None;
        }
        // The last block whose first txnum is <= txnum.
        let idx = self.first_txnum.partition_point(|f| *f <= txnum);
        (idx as u32).checked_sub(1)
    }

    /// Transaction numbers of block `height`: `[first, end)`.
    pub fn tx_range(&self, height: u32) -> Option<(TxNum, TxNum)> {
        let first = *self.first_txnum.get(height as usize)?;
        let end = self
            .first_txnum
            .get(height as usize + 1)
            .copied()
            .unwrap_or(self.next_txnum);
        Some((first, end))
    }

    fn push(&mut self, header: Header, first: TxNum, tx_count: u64) {
        let hash = header.block_hash();
        self.by_hash.insert(hash, self.hashes.len() as u32);
        self.headers.push(header);
        self.hashes.push(hash);
        self.first_txnum.push(first);
        self.next_txnum = TxNum(first.0 + tx_count);
    }

    fn pop(&mut self) {
        if let Some(hash) = self.hashes.pop() {
            self.by_hash.remove(&hash);
            self.headers.pop();
            if let Some(first) = self.first_txnum.pop() {
                self.next_txnum = first;
            }
        }
    }
}

/// A confirmed history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    pub txid: Txid,
    pub height: u32,
    pub txnum: TxNum,
}

/// The index: RocksDB plus the in-memory chain view.
pub struct Index {
    store: Store,
    chain: RwLock<ChainView>,
}

impl Index {
    /// Opens (or creates) the index in `dir` and loads the chain view.
    pub fn open(dir: &Path) -> Result<Index, IndexError> {
        std::fs::create_dir_all(dir).map_err(|e| IndexError::Io(e.to_string()))?;
        let store = Store::open(dir)?;
        let mut chain = ChainView::default();
        let rows = store.headers()?;
        let tip = store.tip()?;
        for (height, row) in rows.iter().enumerate() {
            let header: Header = bitcoin::consensus::deserialize(&row.header)
                .map_err(|_| IndexError::Corrupt("header".into()))?;
            let count = match rows.get(height + 1) {
                Some(next) => next.first_txnum.0 - row.first_txnum.0,
                None => 0,
            };
            chain.push(header, row.first_txnum, count);
        }
        // The last block's transaction count: its rows run to the end of the tx column family.
        if let (Some((height, hash)), Some(last)) = (tip, rows.last()) {
            if chain.height() != Some(height) || chain.hashes.last() != Some(&hash) {
                return Err(IndexError::Corrupt("tip does not match headers".into()));
            }
            let mut end = last.first_txnum;
            while store.txid(end)?.is_some() {
                end = TxNum(end.0 + 1);
            }
            chain.next_txnum = end;
        }
        Ok(Index {
            store,
            chain: RwLock::new(chain),
        })
    }

    pub(crate) fn chain(&self) -> std::sync::RwLockReadGuard<'_, ChainView> {
        self.chain.read().expect("chain lock")
    }

    /// Indexed tip (height, hash), if any.
    pub fn tip(&self) -> Option<(u32, BlockHash)> {
        let chain = self.chain();
        Some((chain.height()?, *chain.hashes.last()?))
    }

    pub fn header(&self, height: u32) -> Option<Header> {
        self.chain().headers.get(height as usize).copied()
    }

    pub fn block_hash(&self, height: u32) -> Option<BlockHash> {
        self.chain().hashes.get(height as usize).copied()
    }

    pub fn height_of_block(&self, hash: &BlockHash) -> Option<u32> {
        self.chain().by_hash.get(hash).copied()
    }

    /// Block hashes `0..=upto` (for checkpoint proofs).
    pub fn hashes_upto(&self, upto: u32) -> Vec<BlockHash> {
        self.chain()
            .hashes
            .iter()
            .take(upto as usize + 1)
            .copied()
            .collect()
    }

    /// Txids of the block at `height`, in order.
    pub fn block_txids(&self, height: u32) -> Result<Option<Vec<Txid>>, IndexError> {
        let Some((first, end)) = self.chain().tx_range(height) else {
            return Ok(None);
        };
        Ok(Some(self.store.txids(first, end)?))
    }

    /// The txid at a position of a block.
    pub fn txid_at(&self, height: u32, pos: u32) -> Result<Option<Txid>, IndexError> {
        let Some((first, end)) = self.chain().tx_range(height) else {
            return Ok(None);
        };
        let n = TxNum(first.0 + u64::from(pos));
        if n >= end {
            return Ok(None);
        }
        self.store.txid(n)
    }

    /// Where a confirmed transaction is: height and position.
    pub fn locate(&self, txid: &Txid) -> Result<Option<(u32, u32)>, IndexError> {
        for n in self.store.txnum_candidates(txid)? {
            if self.store.txid(n)? == Some(*txid) {
                let chain = self.chain();
                let Some(height) = chain.height_of(n) else {
                    continue;
                };
                let (first, _) = chain.tx_range(height).expect("height from the same view");
                return Ok(Some((height, (n.0 - first.0) as u32)));
            }
        }
        Ok(None)
    }

    /// A script's confirmed history in chain order, optionally limited to `[from, to)` heights.
    pub fn history(
        &self,
        sh: &ScriptHash,
        heights: Option<(u32, u32)>,
    ) -> Result<Vec<Confirmed>, IndexError> {
        let (from, to) = {
            let chain = self.chain();
            match heights {
                None => (TxNum(0), TxNum(u64::MAX >> 24)),
                Some((lo, hi)) => {
                    let first = |h: u32| {
                        chain
                            .first_txnum
                            .get(h as usize)
                            .copied()
                            .unwrap_or(chain.next_txnum)
                    };
                    (first(lo), first(hi))
                }
            }
        };
        let nums = self.store.history(sh, from, to)?;
        let txids = self.store.txids_of(&nums)?;
        let chain = self.chain();
        Ok(nums
            .into_iter()
            .zip(txids)
            .filter_map(|(n, txid)| {
                // Either is missing only when a concurrent reorg removed the transaction.
                Some(Confirmed {
                    txid: txid?,
                    height: chain.height_of(n)?,
                    txnum: n,
                })
            })
            .collect())
    }

    /// A script's unspent outputs in the chain (mempool spends not applied).
    pub fn utxos(&self, sh: &ScriptHash) -> Result<Vec<(UtxoKey, UtxoValue)>, IndexError> {
        self.store.utxos(sh)
    }

    /// Bytes of the index on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.store.size_on_disk()
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn chain_mut(&self) -> std::sync::RwLockWriteGuard<'_, ChainView> {
        self.chain.write().expect("chain lock")
    }

    /// Flushes to disk (clean shutdown).
    pub fn flush(&self) -> Result<(), IndexError> {
        self.store.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txnum_to_height() {
        let mut chain = ChainView::default();
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
        chain.push(genesis, TxNum(0), 0); // genesis is not indexed: no transactions
        let mut h1 = genesis;
        h1.nonce += 1;
        chain.push(h1, TxNum(0), 3);
        let mut h2 = genesis;
        h2.nonce += 2;
        chain.push(h2, TxNum(3), 2);
        assert_eq!(chain.height_of(TxNum(0)), Some(1));
        assert_eq!(chain.height_of(TxNum(2)), Some(1));
        assert_eq!(chain.height_of(TxNum(3)), Some(2));
        assert_eq!(chain.height_of(TxNum(5)), None);
        assert_eq!(chain.tx_range(2), Some((TxNum(3), TxNum(5))));
        chain.pop();
        assert_eq!(chain.next_txnum, TxNum(3));
        assert_eq!(chain.height_of(TxNum(3)), None);
    }
}
