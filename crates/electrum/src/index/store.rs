//! The index in RocksDB: one column family per row kind, every block's rows (and the new tip)
//! in one atomic write batch, so a crash leaves the index exactly at some block.

use std::path::Path;

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions,
    WriteBatch, DB,
};

use super::rows::{history_key, txid_key, BlockRows, UtxoKey, UtxoValue, TXID_PREFIX};
use crate::types::{ScriptHash, TxNum};
use crate::IndexError;

pub const CF_HEADERS: &str = "headers";
pub const CF_TX: &str = "tx";
pub const CF_TXID: &str = "txid";
pub const CF_HISTORY: &str = "history";
pub const CF_UTXO: &str = "utxo";
pub const CF_UNDO: &str = "undo";
pub const CF_META: &str = "meta";
const CFS: [&str; 7] = [
    CF_HEADERS, CF_TX, CF_TXID, CF_HISTORY, CF_UTXO, CF_UNDO, CF_META,
];

const KEY_TIP: &[u8] = b"tip";
const KEY_VERSION: &[u8] = b"version";
/// Bumped whenever the row layout changes; an index of another version is rebuilt.
const SCHEMA_VERSION: u32 = 1;

/// A header row: the header and the number of the block's first transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRow {
    pub header: [u8; 80],
    pub first_txnum: TxNum,
}

/// What a block needs to be taken out again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Undo {
    pub touched: Vec<ScriptHash>,
    pub created: Vec<UtxoKey>,
    pub spent: Vec<(UtxoKey, UtxoValue)>,
}

impl Undo {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            12 + self.touched.len() * 32 + self.created.len() * 68 + self.spent.len() * 80,
        );
        out.extend_from_slice(&(self.touched.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.created.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.spent.len() as u32).to_le_bytes());
        for sh in &self.touched {
            out.extend_from_slice(&sh.0);
        }
        for k in &self.created {
            out.extend_from_slice(&k.to_bytes());
        }
        for (k, v) in &self.spent {
            out.extend_from_slice(&k.to_bytes());
            out.extend_from_slice(&v.to_bytes());
        }
        out
    }

    fn decode(b: &[u8]) -> Option<Undo> {
        let n = |i: usize| -> Option<usize> {
            Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize)
        };
        let (t, c, s) = (n(0)?, n(4)?, n(8)?);
        if b.len() != 12 + t * 32 + c * 68 + s * 80 {
            return None;
        }
        let mut at = 12;
        let mut undo = Undo::default();
        for _ in 0..t {
            undo.touched
                .push(ScriptHash(b[at..at + 32].try_into().ok()?));
            at += 32;
        }
        for _ in 0..c {
            undo.created.push(UtxoKey::from_bytes(&b[at..at + 68])?);
            at += 68;
        }
        for _ in 0..s {
            undo.spent.push((
                UtxoKey::from_bytes(&b[at..at + 68])?,
                UtxoValue::from_bytes(&b[at + 68..at + 80])?,
            ));
            at += 80;
        }
        Some(undo)
    }
}

pub struct Store {
    db: DB,
}

fn corrupt(what: &str) -> IndexError {
    IndexError::Corrupt(what.to_owned())
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, IndexError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_open_files(512);
        opts.increase_parallelism(
            std::thread::available_parallelism().map_or(2, |n| n.get() as i32),
        );
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = CFS.iter().map(|name| {
            let mut cf = Options::default();
            cf.set_compression_type(rocksdb::DBCompressionType::Lz4);
            let mut table = BlockBasedOptions::default();
            // Point lookups of history prefixes and txids dominate reads.
            table.set_bloom_filter(10.0, false);
            table.set_block_size(16 * 1024);
            cf.set_block_based_table_factory(&table);
            cf.set_write_buffer_size(64 << 20);
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let store = Store { db };
        match store.db.get_cf(store.cf(CF_META), KEY_VERSION)? {
            None => store.db.put_cf(store.cf(CF_META), KEY_VERSION, SCHEMA_VERSION.to_le_bytes())?,
            Some(v) if v.as_slice() == SCHEMA_VERSION.to_le_bytes() => {}
            Some(_) => return Err(IndexError::Corrupt(format!("index schema is not version {SCHEMA_VERSION}; delete the index directory to rebuild it"))),
        }
        Ok(store)
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    /// The indexed tip, or `None` for an empty index.
    pub fn tip(&self) -> Result<Option<(u32, BlockHash)>, IndexError> {
        let Some(v) = self.db.get_cf(self.cf(CF_META), KEY_TIP)? else {
            return Ok(None);
        };
        if v.len() != 36 {
            return Err(corrupt("tip"));
        }
        let height = u32::from_le_bytes(v[..4].try_into().expect("4 bytes"));
        Ok(Some((
            height,
            BlockHash::from_slice(&v[4..]).expect("32 bytes"),
        )))
    }

    /// Every header row, in height order (read once at start).
    pub fn headers(&self) -> Result<Vec<HeaderRow>, IndexError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_HEADERS), IteratorMode::Start)
        {
            let (k, v) = item?;
            let height =
                u32::from_be_bytes(k.as_ref().try_into().map_err(|_| corrupt("header key"))?);
            if height as usize != out.len() || v.len() != 85 {
                return Err(corrupt("headers"));
            }
            out.push(HeaderRow {
                header: v[..80].try_into().expect("80 bytes"),
                first_txnum: TxNum::from_bytes(&v[80..]).ok_or_else(|| corrupt("header txnum"))?,
            });
        }
        Ok(out)
    }

    pub fn txid(&self, txnum: TxNum) -> Result<Option<Txid>, IndexError> {
        match self.db.get_pinned_cf(self.cf(CF_TX), txnum.to_bytes())? {
            Some(v) => Ok(Some(Txid::from_slice(&v).map_err(|_| corrupt("tx row"))?)),
            None => Ok(None),
        }
    }

    /// Txids of many transaction numbers (ascending) in one batched read: a history of a
    /// hundred entries costs one RocksDB call instead of a hundred.
    pub fn txids_of(&self, nums: &[TxNum]) -> Result<Vec<Option<Txid>>, IndexError> {
        let keys: Vec<[u8; 5]> = nums.iter().map(|n| n.to_bytes()).collect();
        let sorted = keys.windows(2).all(|w| w[0] <= w[1]);
        self.db
            .batched_multi_get_cf(self.cf(CF_TX), keys.iter(), sorted)
            .into_iter()
            .map(|row| match row? {
                Some(v) => Ok(Some(Txid::from_slice(&v).map_err(|_| corrupt("tx row"))?)),
                None => Ok(None),
            })
            .collect()
    }

    /// Txids of a contiguous range of transaction numbers.
    pub fn txids(&self, first: TxNum, end: TxNum) -> Result<Vec<Txid>, IndexError> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(end.to_bytes().to_vec());
        let iter = self.db.iterator_cf_opt(
            self.cf(CF_TX),
            opts,
            IteratorMode::From(&first.to_bytes(), Direction::Forward),
        );
        let mut out = Vec::with_capacity((end.0.saturating_sub(first.0)) as usize);
        for item in iter {
            let (_, v) = item?;
            out.push(Txid::from_slice(&v).map_err(|_| corrupt("tx row"))?);
        }
        Ok(out)
    }

    /// Transaction numbers whose txid starts like `txid` (verify each against `tx`).
    pub fn txnum_candidates(&self, txid: &Txid) -> Result<Vec<TxNum>, IndexError> {
        let prefix = &txid.as_byte_array()[..TXID_PREFIX];
        let mut out = Vec::new();
        for item in self.db.prefix_iterator_cf(self.cf(CF_TXID), prefix) {
            let (k, _) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push(TxNum::from_bytes(&k[TXID_PREFIX..]).ok_or_else(|| corrupt("txid row"))?);
        }
        Ok(out)
    }

    /// Transaction numbers in a script's history, in chain order, within `[from, to)`.
    pub fn history(
        &self,
        sh: &ScriptHash,
        from: TxNum,
        to: TxNum,
    ) -> Result<Vec<TxNum>, IndexError> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(history_key(sh, to).to_vec());
        let start = history_key(sh, from);
        let iter = self.db.iterator_cf_opt(
            self.cf(CF_HISTORY),
            opts,
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (k, _) = item?;
            out.push(TxNum::from_bytes(&k[32..]).ok_or_else(|| corrupt("history row"))?);
        }
        Ok(out)
    }

    /// A script's unspent outputs.
    pub fn utxos(&self, sh: &ScriptHash) -> Result<Vec<(UtxoKey, UtxoValue)>, IndexError> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator_cf(self.cf(CF_UTXO), sh.0) {
            let (k, v) = item?;
            if !k.starts_with(&sh.0) {
                break;
            }
            let key = UtxoKey::from_bytes(&k).ok_or_else(|| corrupt("utxo key"))?;
            out.push((
                key,
                UtxoValue::from_bytes(&v).ok_or_else(|| corrupt("utxo value"))?,
            ));
        }
        Ok(out)
    }

    pub fn undo(&self, height: u32) -> Result<Option<Undo>, IndexError> {
        match self.db.get_cf(self.cf(CF_UNDO), height.to_be_bytes())? {
            Some(v) => Ok(Some(Undo::decode(&v).ok_or_else(|| corrupt("undo"))?)),
            None => Ok(None),
        }
    }

    /// Adds a block's rows to `batch`, numbering its transactions from `first`. Keeps undo data
    /// when `keep_undo` (blocks that may still be reorganised away).
    pub fn add_block(
        &self,
        batch: &mut WriteBatch,
        rows: &BlockRows,
        first: TxNum,
        keep_undo: bool,
        prune_undo_below: Option<u32>,
    ) {
        let mut header = [0u8; 85];
        header[..80].copy_from_slice(&rows.header);
        header[80..].copy_from_slice(&first.to_bytes());
        batch.put_cf(self.cf(CF_HEADERS), rows.height.to_be_bytes(), header);
        for (i, txid) in rows.txids.iter().enumerate() {
            let n = TxNum(first.0 + i as u64);
            batch.put_cf(self.cf(CF_TX), n.to_bytes(), txid.as_byte_array());
            batch.put_cf(self.cf(CF_TXID), txid_key(txid, n), []);
        }
        for (sh, i) in &rows.history {
            batch.put_cf(
                self.cf(CF_HISTORY),
                history_key(sh, TxNum(first.0 + u64::from(*i))),
                [],
            );
        }
        // Created before spent: an output created and spent in this batch ends deleted.
        for (k, v) in &rows.created {
            batch.put_cf(self.cf(CF_UTXO), k.to_bytes(), v.to_bytes());
        }
        for (k, _) in &rows.spent {
            batch.delete_cf(self.cf(CF_UTXO), k.to_bytes());
        }
        if keep_undo {
            let mut touched: Vec<ScriptHash> = rows.history.iter().map(|(sh, _)| *sh).collect();
            touched.sort_unstable();
            touched.dedup();
            let undo = Undo {
                touched,
                created: rows.created.iter().map(|(k, _)| *k).collect(),
                spent: rows.spent.clone(),
            };
            batch.put_cf(self.cf(CF_UNDO), rows.height.to_be_bytes(), undo.encode());
        }
        if let Some(below) = prune_undo_below {
            batch.delete_cf(self.cf(CF_UNDO), below.to_be_bytes());
        }
    }

    /// Writes the new tip into `batch`.
    pub fn set_tip(&self, batch: &mut WriteBatch, height: u32, hash: &BlockHash) {
        let mut v = [0u8; 36];
        v[..4].copy_from_slice(&height.to_le_bytes());
        v[4..].copy_from_slice(hash.as_byte_array());
        batch.put_cf(self.cf(CF_META), KEY_TIP, v);
    }

    /// Writes "no blocks" as the tip into `batch` (after taking out the genesis block).
    pub fn clear_tip(&self, batch: &mut WriteBatch) {
        batch.delete_cf(self.cf(CF_META), KEY_TIP);
    }

    /// Adds to `batch` the removal of the block at `height` whose transactions are
    /// `[first, end)`, restoring what it spent.
    pub fn remove_block(
        &self,
        batch: &mut WriteBatch,
        height: u32,
        first: TxNum,
        end: TxNum,
        undo: &Undo,
    ) -> Result<(), IndexError> {
        for (n, txid) in (first.0..end.0).zip(self.txids(first, end)?) {
            batch.delete_cf(self.cf(CF_TXID), txid_key(&txid, TxNum(n)));
        }
        batch.delete_range_cf(self.cf(CF_TX), first.to_bytes(), end.to_bytes());
        for sh in &undo.touched {
            batch.delete_range_cf(
                self.cf(CF_HISTORY),
                history_key(sh, first),
                history_key(sh, end),
            );
        }
        for k in &undo.created {
            batch.delete_cf(self.cf(CF_UTXO), k.to_bytes());
        }
        for (k, v) in &undo.spent {
            batch.put_cf(self.cf(CF_UTXO), k.to_bytes(), v.to_bytes());
        }
        batch.delete_cf(self.cf(CF_UNDO), height.to_be_bytes());
        batch.delete_cf(self.cf(CF_HEADERS), height.to_be_bytes());
        Ok(())
    }

    pub fn write(&self, batch: WriteBatch) -> Result<(), IndexError> {
        self.db.write(batch)?;
        Ok(())
    }

    /// Bytes of SST files, for `docs/benchmarks.md` and metrics.
    pub fn size_on_disk(&self) -> u64 {
        CFS.iter()
            .filter_map(|name| {
                self.db
                    .property_int_value_cf(self.cf(name), "rocksdb.total-sst-files-size")
                    .ok()
                    .flatten()
            })
            .sum()
    }

    /// Flushes memtables (at shutdown and after the initial sync).
    pub fn flush(&self) -> Result<(), IndexError> {
        for name in CFS {
            self.db.flush_cf(self.cf(name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undo_round_trips_and_rejects_truncation() {
        let k = UtxoKey {
            scripthash: ScriptHash([1; 32]),
            outpoint: bitcoin::OutPoint::null(),
        };
        let undo = Undo {
            touched: vec![ScriptHash([2; 32])],
            created: vec![k],
            spent: vec![(
                k,
                UtxoValue {
                    value: 1,
                    height: 2,
                },
            )],
        };
        let bytes = undo.encode();
        assert_eq!(Undo::decode(&bytes), Some(undo));
        for len in 0..bytes.len() {
            assert_eq!(Undo::decode(&bytes[..len]), None);
        }
    }
}
