//! A [`TreeStore`] on RocksDB, for trees larger than memory.
//!
//! Each record is one key-value pair: the key is an optional namespace followed by the
//! 34-byte [`NodePosition`] encoding, the value is [`encode_record`](super::encode_record).
//! One tree update is one `WriteBatch`, so a crash leaves either the old tree or the new one.
//! Writes go through RocksDB's write-ahead log, which survives a process crash; to survive a
//! power loss as well, turn on [`RocksDbStore::with_sync_writes`] (an fsync per update).

use std::path::Path;
use std::sync::Arc;

use rocksdb::{Options, WriteBatch, WriteOptions, DB};

use super::record::{decode_record, encode_record};
use super::{ChangeSet, NodePosition, StoredNode, TreeStore};
use crate::mssmt::error::RocksDbStoreError;

/// Records of one tree in a RocksDB database.
pub struct RocksDbStore {
    db: Arc<DB>,
    namespace: Vec<u8>,
    sync_writes: bool,
}

impl RocksDbStore {
    /// Opens (creating if missing) a database at `path` holding one tree.
    ///
    /// # Errors
    ///
    /// When RocksDB cannot open the database.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RocksDbStoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, path)?;
        Ok(Self::with_namespace(Arc::new(db), Vec::new()))
    }

    /// Keeps one tree in a shared database, every key prefixed by `namespace`.
    ///
    /// Record keys have a fixed length after the namespace, so two trees cannot collide as
    /// long as their namespaces differ (even when one is a prefix of the other).
    pub fn with_namespace(db: Arc<DB>, namespace: impl Into<Vec<u8>>) -> Self {
        Self {
            db,
            namespace: namespace.into(),
            sync_writes: false,
        }
    }

    /// Makes every commit wait for an fsync of the write-ahead log (off by default).
    pub fn with_sync_writes(mut self, sync: bool) -> Self {
        self.sync_writes = sync;
        self
    }

    /// The underlying database.
    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    fn db_key(&self, position: &NodePosition) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.namespace.len() + NodePosition::ENCODED_LEN);
        key.extend_from_slice(&self.namespace);
        key.extend_from_slice(&position.to_bytes());
        key
    }
}

impl std::fmt::Debug for RocksDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbStore")
            .field("path", &self.db.path())
            .field("namespace", &self.namespace)
            .field("sync_writes", &self.sync_writes)
            .finish()
    }
}

impl TreeStore for RocksDbStore {
    type Error = RocksDbStoreError;

    fn get(&self, position: &NodePosition) -> Result<Option<StoredNode>, RocksDbStoreError> {
        match self.db.get_pinned(self.db_key(position))? {
            Some(bytes) => Ok(Some(decode_record(&bytes)?)),
            None => Ok(None),
        }
    }

    fn commit(&mut self, changes: ChangeSet) -> Result<(), RocksDbStoreError> {
        let mut batch = WriteBatch::default();
        for (position, node) in changes.iter() {
            let key = self.db_key(position);
            match node {
                Some(node) => batch.put(key, encode_record(node)),
                None => batch.delete(key),
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(self.sync_writes);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }
}
