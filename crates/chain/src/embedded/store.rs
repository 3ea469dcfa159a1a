//! The embedded node's own index, in RocksDB: the UTXO set (for mempool checks), a transaction
//! index, a spender index (which confirmed transaction spent an output, Core's
//! `txospenderindex`), per-block undo records, the blocks it has seen and the blocks a user
//! invalidated, and the journal of blocks the kernel has not yet made durable.
//!
//! Every block is connected or disconnected in one `WriteBatch` that also moves the index tip, so
//! after a crash the index is exactly at some block and catches up from there.

use std::path::Path;

use bitcoin::consensus::encode::{self, Decodable, Encodable, VarInt};
use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, OutPoint, ScriptBuf, TxOut, Txid};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, DB};

use crate::{BlockId, ChainError, SpentOutput, TxLocation};

const CF_UTXO: &str = "utxo";
const CF_TXINDEX: &str = "txindex";
const CF_UNDO: &str = "undo";
const CF_BLOCKS: &str = "blocks";
const CF_ARCHIVE: &str = "archive";
const CF_META: &str = "meta";
const CF_SPENDERS: &str = "spenders";
const CF_JOURNAL: &str = "journal";
const COLUMN_FAMILIES: [&str; 8] = [
    CF_UTXO,
    CF_TXINDEX,
    CF_UNDO,
    CF_BLOCKS,
    CF_ARCHIVE,
    CF_META,
    CF_SPENDERS,
    CF_JOURNAL,
];

const KEY_TIP: &[u8] = b"tip";

/// A coin of the UTXO set: an unspent output with the height and kind of its transaction.
pub(crate) type Coin = SpentOutput;

/// What the index remembers about a block it has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockRecord {
    pub height: u32,
    pub prev: BlockHash,
    /// Marked invalid by `invalidateblock` (the block itself, not its descendants).
    pub invalidated: bool,
}

/// Everything needed to take a block back out of the index without reading the block again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UndoRecord {
    /// Each transaction of the block with its number of outputs, in block order.
    pub txs: Vec<(Txid, u32)>,
    /// Every coin the block spent, with the outpoint it had.
    pub spent: Vec<(OutPoint, Coin)>,
}

pub(crate) struct Store {
    db: DB,
}

fn outpoint_key(outpoint: &OutPoint) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..32].copy_from_slice(outpoint.txid.as_byte_array());
    key[32..].copy_from_slice(&outpoint.vout.to_be_bytes());
    key
}

fn encode_coin(coin: &Coin, out: &mut Vec<u8>) {
    out.extend_from_slice(&coin.height.to_le_bytes());
    out.push(u8::from(coin.coinbase));
    out.extend_from_slice(&coin.txout.value.to_sat().to_le_bytes());
    VarInt(coin.txout.script_pubkey.len() as u64)
        .consensus_encode(out)
        .expect("writing to a vec cannot fail");
    out.extend_from_slice(coin.txout.script_pubkey.as_bytes());
}

fn decode_coin(mut bytes: &[u8]) -> Result<(Coin, &[u8]), ChainError> {
    let corrupt = || ChainError::Store("corrupt coin record".into());
    if bytes.len() < 13 {
        return Err(corrupt());
    }
    let height = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    let coinbase = bytes[4] != 0;
    let value = u64::from_le_bytes(bytes[5..13].try_into().expect("8 bytes"));
    bytes = &bytes[13..];
    let len = VarInt::consensus_decode(&mut bytes)
        .map_err(|_| corrupt())?
        .0 as usize;
    if bytes.len() < len {
        return Err(corrupt());
    }
    let script_pubkey = ScriptBuf::from_bytes(bytes[..len].to_vec());
    let coin = Coin {
        txout: TxOut {
            value: Amount::from_sat(value),
            script_pubkey,
        },
        height,
        coinbase,
    };
    Ok((coin, &bytes[len..]))
}

impl UndoRecord {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        VarInt(self.txs.len() as u64)
            .consensus_encode(&mut out)
            .expect("vec");
        for (txid, outputs) in &self.txs {
            out.extend_from_slice(txid.as_byte_array());
            out.extend_from_slice(&outputs.to_le_bytes());
        }
        VarInt(self.spent.len() as u64)
            .consensus_encode(&mut out)
            .expect("vec");
        for (outpoint, coin) in &self.spent {
            out.extend_from_slice(&outpoint_key(outpoint));
            encode_coin(coin, &mut out);
        }
        out
    }

    fn decode(mut bytes: &[u8]) -> Result<UndoRecord, ChainError> {
        let corrupt = |e: encode::Error| ChainError::Store(format!("corrupt undo record: {e}"));
        let short = || ChainError::Store("corrupt undo record: truncated".into());
        let n = VarInt::consensus_decode(&mut bytes).map_err(corrupt)?.0 as usize;
        let mut txs = Vec::with_capacity(n.min(100_000));
        for _ in 0..n {
            if bytes.len() < 36 {
                return Err(short());
            }
            let txid = Txid::from_slice(&bytes[..32]).map_err(|_| short())?;
            let outputs = u32::from_le_bytes(bytes[32..36].try_into().expect("4 bytes"));
            txs.push((txid, outputs));
            bytes = &bytes[36..];
        }
        let n = VarInt::consensus_decode(&mut bytes).map_err(corrupt)?.0 as usize;
        let mut spent = Vec::with_capacity(n.min(100_000));
        for _ in 0..n {
            if bytes.len() < 36 {
                return Err(short());
            }
            let txid = Txid::from_slice(&bytes[..32]).map_err(|_| short())?;
            let vout = u32::from_be_bytes(bytes[32..36].try_into().expect("4 bytes"));
            let (coin, rest) = decode_coin(&bytes[36..])?;
            spent.push((OutPoint { txid, vout }, coin));
            bytes = rest;
        }
        Ok(UndoRecord { txs, spent })
    }
}

/// The changes one block makes to the index, applied atomically by [`Store::apply`].
#[derive(Default)]
pub(crate) struct BlockChanges {
    batch: WriteBatch,
}

impl Store {
    pub(crate) fn open(path: &Path) -> Result<Store, ChainError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_open_files(256);
        let cfs = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Store { db })
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    /// The block the index reflects, or `None` for a new index.
    pub(crate) fn tip(&self) -> Result<Option<BlockId>, ChainError> {
        let Some(v) = self.db.get_cf(self.cf(CF_META), KEY_TIP)? else {
            return Ok(None);
        };
        if v.len() != 36 {
            return Err(ChainError::Store("corrupt tip record".into()));
        }
        let hash = BlockHash::from_slice(&v[..32]).expect("32 bytes");
        let height = u32::from_le_bytes(v[32..].try_into().expect("4 bytes"));
        Ok(Some(BlockId { height, hash }))
    }

    pub(crate) fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, ChainError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_UTXO), outpoint_key(outpoint))?
        {
            Some(v) => Ok(Some(decode_coin(&v)?.0)),
            None => Ok(None),
        }
    }

    pub(crate) fn tx_location(&self, txid: &Txid) -> Result<Option<TxLocation>, ChainError> {
        let Some(v) = self
            .db
            .get_pinned_cf(self.cf(CF_TXINDEX), txid.as_byte_array())?
        else {
            return Ok(None);
        };
        if v.len() != 40 {
            return Err(ChainError::Store("corrupt txindex record".into()));
        }
        Ok(Some(TxLocation {
            block_hash: BlockHash::from_slice(&v[..32]).expect("32 bytes"),
            height: u32::from_le_bytes(v[32..36].try_into().expect("4 bytes")),
            position: u32::from_le_bytes(v[36..].try_into().expect("4 bytes")),
        }))
    }

    /// The confirmed transaction that spent `outpoint`, if any.
    pub(crate) fn spender(&self, outpoint: &OutPoint) -> Result<Option<Txid>, ChainError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_SPENDERS), outpoint_key(outpoint))?
        {
            Some(v) => {
                Ok(Some(Txid::from_slice(&v).map_err(|_| {
                    ChainError::Store("corrupt spender record".into())
                })?))
            }
            None => Ok(None),
        }
    }

    pub(crate) fn undo(&self, hash: &BlockHash) -> Result<Option<UndoRecord>, ChainError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_UNDO), hash.as_byte_array())?
        {
            Some(v) => Ok(Some(UndoRecord::decode(&v)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn block_record(&self, hash: &BlockHash) -> Result<Option<BlockRecord>, ChainError> {
        let Some(v) = self
            .db
            .get_pinned_cf(self.cf(CF_BLOCKS), hash.as_byte_array())?
        else {
            return Ok(None);
        };
        if v.len() != 37 {
            return Err(ChainError::Store("corrupt block record".into()));
        }
        Ok(Some(BlockRecord {
            height: u32::from_le_bytes(v[..4].try_into().expect("4 bytes")),
            prev: BlockHash::from_slice(&v[4..36]).expect("32 bytes"),
            invalidated: v[36] != 0,
        }))
    }

    pub(crate) fn put_block_record(
        &self,
        hash: &BlockHash,
        record: &BlockRecord,
    ) -> Result<(), ChainError> {
        self.db.put_cf(
            self.cf(CF_BLOCKS),
            hash.as_byte_array(),
            encode_block_record(record),
        )?;
        Ok(())
    }

    /// Records a block the kernel has just accepted and keeps its bytes in the journal, in one
    /// write synced to disk before it returns. The kernel holds new blocks in memory until its
    /// next flush, so this copy is what makes a block durable the moment it is acknowledged:
    /// after a crash, [`Store::journal`] hands it back to be validated again.
    pub(crate) fn journal_block(
        &self,
        hash: &BlockHash,
        record: &BlockRecord,
        raw: &[u8],
    ) -> Result<(), ChainError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_BLOCKS),
            hash.as_byte_array(),
            encode_block_record(record),
        );
        let mut v = Vec::with_capacity(4 + raw.len());
        v.extend_from_slice(&record.height.to_le_bytes());
        v.extend_from_slice(raw);
        batch.put_cf(self.cf(CF_JOURNAL), hash.as_byte_array(), v);
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        self.db.write_opt(batch, &sync)?;
        Ok(())
    }

    /// The journaled blocks (hash, height, raw bytes), lowest first, so parents come before
    /// their children.
    pub(crate) fn journal(&self) -> Result<Vec<(BlockHash, u32, Vec<u8>)>, ChainError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_JOURNAL), rocksdb::IteratorMode::Start)
        {
            let (k, v) = item?;
            let hash = BlockHash::from_slice(&k)
                .map_err(|_| ChainError::Store("corrupt journal key".into()))?;
            if v.len() < 4 {
                return Err(ChainError::Store("corrupt journal entry".into()));
            }
            let height = u32::from_le_bytes(v[..4].try_into().expect("4 bytes"));
            out.push((hash, height, v[4..].to_vec()));
        }
        out.sort_by_key(|(hash, height, _)| (*height, *hash));
        Ok(out)
    }

    /// Empties the journal, once the kernel has flushed every block in it.
    pub(crate) fn clear_journal(&self) -> Result<(), ChainError> {
        let mut batch = WriteBatch::default();
        let cf = self.cf(CF_JOURNAL);
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, _) = item?;
            batch.delete_cf(cf, k);
        }
        self.db.write(batch)?;
        Ok(())
    }

    /// Every block the node has accepted or been told to invalidate, with its record.
    pub(crate) fn block_records(&self) -> Result<Vec<(BlockHash, BlockRecord)>, ChainError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_BLOCKS), rocksdb::IteratorMode::Start)
        {
            let (k, _) = item?;
            let hash = BlockHash::from_slice(&k)
                .map_err(|_| ChainError::Store("corrupt block key".into()))?;
            if let Some(record) = self.block_record(&hash)? {
                out.push((hash, record));
            }
        }
        Ok(out)
    }

    /// Raw bytes of a block kept outside the kernel (blocks the kernel's chainstate dropped when
    /// it was rebuilt without them).
    pub(crate) fn archived_block(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, ChainError> {
        Ok(self.db.get_cf(self.cf(CF_ARCHIVE), hash.as_byte_array())?)
    }

    pub(crate) fn archive_block(&self, hash: &BlockHash, raw: &[u8]) -> Result<(), ChainError> {
        self.db
            .put_cf(self.cf(CF_ARCHIVE), hash.as_byte_array(), raw)?;
        Ok(())
    }

    /// Starts the changes for connecting a block with the given undo record; `spenders` names
    /// the transaction spending each entry of `undo.spent`, in the same order.
    pub(crate) fn connect_changes(
        &self,
        block: BlockId,
        undo: &UndoRecord,
        created: &[(OutPoint, Coin)],
        spenders: &[Txid],
    ) -> BlockChanges {
        let mut batch = WriteBatch::default();
        let (utxo, txindex) = (self.cf(CF_UTXO), self.cf(CF_TXINDEX));
        // Created first, spent after: an output created and spent inside the block ends deleted.
        for (outpoint, coin) in created {
            let mut v = Vec::with_capacity(48);
            encode_coin(coin, &mut v);
            batch.put_cf(utxo, outpoint_key(outpoint), v);
        }
        for ((outpoint, _), spender) in undo.spent.iter().zip(spenders) {
            batch.delete_cf(utxo, outpoint_key(outpoint));
            batch.put_cf(
                self.cf(CF_SPENDERS),
                outpoint_key(outpoint),
                spender.as_byte_array(),
            );
        }
        for (position, (txid, _)) in undo.txs.iter().enumerate() {
            let mut v = Vec::with_capacity(40);
            v.extend_from_slice(block.hash.as_byte_array());
            v.extend_from_slice(&block.height.to_le_bytes());
            v.extend_from_slice(&(position as u32).to_le_bytes());
            batch.put_cf(txindex, txid.as_byte_array(), v);
        }
        batch.put_cf(self.cf(CF_UNDO), block.hash.as_byte_array(), undo.encode());
        batch.put_cf(self.cf(CF_META), KEY_TIP, tip_value(&block));
        BlockChanges { batch }
    }

    /// Starts the changes for taking `block` (whose parent is `parent`) back out.
    pub(crate) fn disconnect_changes(
        &self,
        block: &BlockId,
        parent: &BlockId,
        undo: &UndoRecord,
    ) -> BlockChanges {
        let mut batch = WriteBatch::default();
        let (utxo, txindex) = (self.cf(CF_UTXO), self.cf(CF_TXINDEX));
        // Restored first, created deleted after: an output created and spent inside the block
        // ends deleted.
        for (outpoint, coin) in &undo.spent {
            let mut v = Vec::with_capacity(48);
            encode_coin(coin, &mut v);
            batch.put_cf(utxo, outpoint_key(outpoint), v);
            batch.delete_cf(self.cf(CF_SPENDERS), outpoint_key(outpoint));
        }
        for (txid, outputs) in &undo.txs {
            for vout in 0..*outputs {
                batch.delete_cf(utxo, outpoint_key(&OutPoint { txid: *txid, vout }));
            }
            batch.delete_cf(txindex, txid.as_byte_array());
        }
        batch.delete_cf(self.cf(CF_UNDO), block.hash.as_byte_array());
        batch.put_cf(self.cf(CF_META), KEY_TIP, tip_value(parent));
        BlockChanges { batch }
    }

    /// Applies a block's changes atomically.
    pub(crate) fn apply(&self, changes: BlockChanges) -> Result<(), ChainError> {
        self.db.write(changes.batch)?;
        Ok(())
    }

    /// Forces memtables to disk (on clean shutdown, so the next start reads less WAL).
    pub(crate) fn flush(&self) -> Result<(), ChainError> {
        for name in COLUMN_FAMILIES {
            self.db.flush_cf(self.cf(name))?;
        }
        Ok(())
    }
}

fn encode_block_record(record: &BlockRecord) -> Vec<u8> {
    let mut v = Vec::with_capacity(37);
    v.extend_from_slice(&record.height.to_le_bytes());
    v.extend_from_slice(record.prev.as_byte_array());
    v.push(u8::from(record.invalidated));
    v
}

fn tip_value(block: &BlockId) -> Vec<u8> {
    let mut v = Vec::with_capacity(36);
    v.extend_from_slice(block.hash.as_byte_array());
    v.extend_from_slice(&block.height.to_le_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undo_record_round_trips() {
        let coin = Coin {
            txout: TxOut {
                value: Amount::from_sat(5_000),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            },
            height: 7,
            coinbase: true,
        };
        let record = UndoRecord {
            txs: vec![(Txid::all_zeros(), 2)],
            spent: vec![(
                OutPoint {
                    txid: Txid::all_zeros(),
                    vout: 3,
                },
                coin,
            )],
        };
        assert_eq!(
            UndoRecord::decode(&record.encode()).expect("decodes"),
            record
        );
    }

    #[test]
    fn truncated_undo_record_is_an_error_not_a_panic() {
        let record = UndoRecord {
            txs: vec![(Txid::all_zeros(), 2)],
            spent: vec![],
        };
        let bytes = record.encode();
        for len in 0..bytes.len() {
            assert!(UndoRecord::decode(&bytes[..len]).is_err(), "length {len}");
        }
    }
}
