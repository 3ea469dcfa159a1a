//! Where the journal is kept. The journal is the only thing stored: balances are rebuilt by
//! replaying it, so a store has to do two things right — keep entries in order, and make each
//! append atomic and durable.

use super::error::StoreError;

/// A durable, ordered, append-only list of journal entries.
pub trait JournalStore {
    /// Every entry, in order: `(seq, body)`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails.
    fn load(&mut self) -> Result<Vec<(u64, String)>, StoreError>;

    /// Appends entry `seq` with its canonical `body` and `hash`, atomically and durably: after
    /// `Ok` the entry survives a crash, after a crash mid-call it is either whole or absent.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when `seq` is already stored; [`StoreError::Backend`] otherwise.
    fn append(&mut self, seq: u64, body: &str, hash: &[u8; 32]) -> Result<(), StoreError>;
}

/// A journal in memory, for tests and throwaway ledgers.
#[derive(Default, Debug)]
pub struct MemoryJournal {
    entries: Vec<String>,
}

impl JournalStore for MemoryJournal {
    fn load(&mut self) -> Result<Vec<(u64, String)>, StoreError> {
        Ok((0u64..).zip(self.entries.iter().cloned()).collect())
    }

    fn append(&mut self, seq: u64, body: &str, _hash: &[u8; 32]) -> Result<(), StoreError> {
        if seq != self.entries.len() as u64 {
            return Err(StoreError::Conflict(seq));
        }
        self.entries.push(body.to_owned());
        Ok(())
    }
}

/// A journal in the store chosen at run time: SQLite by default, PostgreSQL for larger
/// communities (`moip up --database postgres://…`).
pub enum AnyJournal {
    /// In a SQLite file.
    Sqlite(super::SqliteJournal),
    /// In a PostgreSQL database (boxed: its client is large, and the journal is made once).
    Postgres(Box<super::PostgresJournal>),
}

impl JournalStore for AnyJournal {
    fn load(&mut self) -> Result<Vec<(u64, String)>, StoreError> {
        match self {
            AnyJournal::Sqlite(s) => s.load(),
            AnyJournal::Postgres(p) => p.load(),
        }
    }

    fn append(&mut self, seq: u64, body: &str, hash: &[u8; 32]) -> Result<(), StoreError> {
        match self {
            AnyJournal::Sqlite(s) => s.append(seq, body, hash),
            AnyJournal::Postgres(p) => p.append(seq, body, hash),
        }
    }
}
