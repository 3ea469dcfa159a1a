//! The journal in PostgreSQL: one table shared by every ledger of a database, keyed by the
//! ledger's name and the entry's position. Each append is one `INSERT` (its own transaction,
//! committed synchronously), and the primary key refuses a second entry at a taken position,
//! so two processes writing one ledger cannot both append entry `n`.

use postgres::error::SqlState;
use postgres::{Client, NoTls};

use super::error::StoreError;
use super::store::JournalStore;

/// A journal in a PostgreSQL database.
pub struct PostgresJournal {
    client: Client,
    ledger: String,
}

fn backend(e: postgres::Error) -> StoreError {
    StoreError::Backend(format!("postgres: {e}"))
}

impl PostgresJournal {
    /// Connects to `url` (`postgres://user:password@host:port/db`, or key=value pairs) and opens
    /// the journal of ledger `ledger`, creating the table if needed. Plain TCP: use a Unix
    /// socket or a loopback address (TLS to remote databases is not supported yet).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database cannot be reached or refuses.
    pub fn connect(url: &str, ledger: &str) -> Result<PostgresJournal, StoreError> {
        let mut client = Client::connect(url, NoTls).map_err(backend)?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS moip_journal (
                     ledger TEXT   NOT NULL,
                     seq    BIGINT NOT NULL,
                     body   TEXT   NOT NULL,
                     hash   BYTEA  NOT NULL,
                     PRIMARY KEY (ledger, seq)
                 )",
            )
            .map_err(backend)?;
        Ok(PostgresJournal {
            client,
            ledger: ledger.to_owned(),
        })
    }
}

impl JournalStore for PostgresJournal {
    fn load(&mut self) -> Result<Vec<(u64, String)>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT seq, body FROM moip_journal WHERE ledger = $1 ORDER BY seq",
                &[&self.ledger],
            )
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get(0).map_err(backend)?;
                let body: String = row.try_get(1).map_err(backend)?;
                let seq = u64::try_from(seq)
                    .map_err(|_| StoreError::Backend(format!("negative journal position {seq}")))?;
                Ok((seq, body))
            })
            .collect()
    }

    fn append(&mut self, seq: u64, body: &str, hash: &[u8; 32]) -> Result<(), StoreError> {
        let position = i64::try_from(seq).map_err(|_| StoreError::Conflict(seq))?;
        let inserted = self.client.execute(
            "INSERT INTO moip_journal (ledger, seq, body, hash) VALUES ($1, $2, $3, $4)",
            &[&self.ledger, &position, &body, &&hash[..]],
        );
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(StoreError::Conflict(seq))
            }
            Err(e) => Err(backend(e)),
        }
    }
}
