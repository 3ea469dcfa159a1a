//! The service's local copy of its log: every receipt with the event it decided on, in SQLite.
//!
//! A restart replays it without waiting for relays. It is a cache, not the record — the
//! receipts and events on the relays are — so when it is lost the service rebuilds it from
//! them ([`crate::service`]).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::receipt::Receipt;

/// The log could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("work log: {0}")]
pub struct LogError(String);

fn err(e: impl std::fmt::Display) -> LogError {
    LogError(e.to_string())
}

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, receipt TEXT NOT NULL, event TEXT);";

/// Receipts and their events, by sequence number.
pub struct WorkLog {
    conn: Connection,
}

impl WorkLog {
    /// Opens (creating if needed) the log at `path`.
    ///
    /// # Errors
    /// [`LogError`] when the file cannot be opened or is not a log.
    pub fn open(path: &Path) -> Result<WorkLog, LogError> {
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch("PRAGMA journal_mode = WAL;")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(WorkLog { conn })
    }

    /// A log in memory (tests, or a node told to keep nothing).
    ///
    /// # Errors
    /// [`LogError`] if SQLite cannot start.
    pub fn in_memory() -> Result<WorkLog, LogError> {
        let conn = Connection::open_in_memory().map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(WorkLog { conn })
    }

    /// Appends `receipt` with its event's JSON.
    ///
    /// # Errors
    /// [`LogError`] on a write failure or a sequence number already used.
    pub fn append(&mut self, receipt: &Receipt, event: Option<&str>) -> Result<(), LogError> {
        let body = serde_json::to_string(receipt).map_err(err)?;
        let seq = i64::try_from(receipt.seq).map_err(err)?;
        self.conn
            .execute(
                "INSERT INTO log (seq, receipt, event) VALUES (?1, ?2, ?3)",
                params![seq, body, event],
            )
            .map_err(err)?;
        Ok(())
    }

    /// The last sequence number, 0 for an empty log.
    ///
    /// # Errors
    /// [`LogError`] on a read failure.
    pub fn last_seq(&self) -> Result<u64, LogError> {
        let last: Option<i64> = self
            .conn
            .query_row("SELECT MAX(seq) FROM log", [], |row| row.get(0))
            .optional()
            .map_err(err)?
            .flatten();
        Ok(last.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
    }

    /// Every entry, in order.
    ///
    /// # Errors
    /// [`LogError`] on a read failure or an entry that does not parse.
    pub fn entries(&self) -> Result<Vec<(Receipt, Option<String>)>, LogError> {
        let mut statement = self
            .conn
            .prepare("SELECT receipt, event FROM log ORDER BY seq")
            .map_err(err)?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
            })
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let (receipt, event) = row.map_err(err)?;
            out.push((serde_json::from_str(&receipt).map_err(err)?, event));
        }
        Ok(out)
    }
}
