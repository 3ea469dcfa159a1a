//! The journal in SQLite: one table, one row per entry, each append its own transaction in
//! WAL mode with `synchronous = FULL`, so an acknowledged entry survives a power cut and a
//! crash mid-append leaves the entry whole or absent.

use std::path::Path;

use rusqlite::{params, Connection, ErrorCode};

use super::error::StoreError;
use super::store::JournalStore;

/// A journal in an SQLite file.
pub struct SqliteJournal {
    conn: Connection,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

impl SqliteJournal {
    /// Opens (creating if needed) the journal at `path`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the file cannot be opened or is not a moip journal.
    pub fn open(path: &Path) -> Result<SqliteJournal, StoreError> {
        SqliteJournal::init(Connection::open(path).map_err(backend)?)
    }

    /// A journal in memory (gone when dropped).
    ///
    /// # Errors
    /// [`StoreError::Backend`] if SQLite cannot start.
    pub fn in_memory() -> Result<SqliteJournal, StoreError> {
        SqliteJournal::init(Connection::open_in_memory().map_err(backend)?)
    }

    fn init(conn: Connection) -> Result<SqliteJournal, StoreError> {
        // `journal_mode` answers with a row, so it is queried rather than executed.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(backend)?;
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS journal (
                 seq  INTEGER PRIMARY KEY,
                 body TEXT NOT NULL,
                 hash BLOB NOT NULL
             );",
        )
        .map_err(backend)?;
        Ok(SqliteJournal { conn })
    }
}

impl JournalStore for SqliteJournal {
    fn load(&mut self) -> Result<Vec<(u64, String)>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT seq, body FROM journal ORDER BY seq")
            .map_err(backend)?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (seq, body) = row.map_err(backend)?;
            let seq = u64::try_from(seq)
                .map_err(|_| StoreError::Backend(format!("negative journal position {seq}")))?;
            Ok((seq, body))
        })
        .collect()
    }

    fn append(&mut self, seq: u64, body: &str, hash: &[u8; 32]) -> Result<(), StoreError> {
        let position = i64::try_from(seq).map_err(|_| StoreError::Conflict(seq))?;
        let inserted = self
            .conn
            .prepare_cached("INSERT INTO journal (seq, body, hash) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![position, body, &hash[..]]));
        match inserted {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Conflict(seq))
            }
            Err(e) => Err(backend(e)),
        }
    }
}
