//! The journal in PostgreSQL: one table shared by every ledger of a database, keyed by the
//! ledger's name and the entry's position. Each append is one `INSERT` (its own transaction,
//! committed synchronously), and the primary key refuses a second entry at a taken position,
//! so two processes writing one ledger cannot both append entry `n`.

use postgres::error::SqlState;
use postgres::{Client, NoTls};

use super::error::StoreError;
use super::store::JournalStore;

/// A blocking PostgreSQL client that may be used, and dropped, anywhere — on a tokio worker
/// thread too (see [`postgres_call`]): closing the connection blocks like any other call.
pub struct PgClient(Option<Client>);

impl PgClient {
    /// Connects to `url` (plain TCP: a Unix socket or a loopback address).
    ///
    /// # Errors
    /// When the database cannot be reached or refuses.
    pub fn connect(url: &str) -> Result<PgClient, postgres::Error> {
        postgres_call(|| Client::connect(url, NoTls)).map(|c| PgClient(Some(c)))
    }
}

impl std::ops::Deref for PgClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        // Only `drop` takes the client out.
        self.0.as_ref().expect("a connected client")
    }
}

impl std::ops::DerefMut for PgClient {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("a connected client")
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            postgres_call(move || drop(client));
        }
    }
}

/// A journal in a PostgreSQL database.
pub struct PostgresJournal {
    client: PgClient,
    ledger: String,
}

fn backend(e: postgres::Error) -> StoreError {
    StoreError::Backend(format!("postgres: {e}"))
}

/// Runs `f`, a call of the blocking `postgres` client, safely from anywhere: the client drives
/// its connection on a runtime of its own, which cannot start on a tokio worker thread — so
/// there the call goes through [`tokio::task::block_in_place`], which hands the worker's other
/// tasks to another thread meanwhile. Elsewhere (plain threads, `spawn_blocking`) it runs as is.
pub fn postgres_call<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl PostgresJournal {
    /// Connects to `url` (`postgres://user:password@host:port/db`, or key=value pairs) and opens
    /// the journal of ledger `ledger`, creating the table if needed. Plain TCP: use a Unix
    /// socket or a loopback address (TLS to remote databases is not supported yet).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database cannot be reached or refuses.
    pub fn connect(url: &str, ledger: &str) -> Result<PostgresJournal, StoreError> {
        postgres_call(|| Self::connect_here(url, ledger))
    }

    fn connect_here(url: &str, ledger: &str) -> Result<PostgresJournal, StoreError> {
        let mut client = PgClient::connect(url).map_err(backend)?;
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
        postgres_call(|| self.load_here())
    }

    fn append(&mut self, seq: u64, body: &str, hash: &[u8; 32]) -> Result<(), StoreError> {
        postgres_call(|| self.append_here(seq, body, hash))
    }
}

impl PostgresJournal {
    fn load_here(&mut self) -> Result<Vec<(u64, String)>, StoreError> {
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

    fn append_here(&mut self, seq: u64, body: &str, hash: &[u8; 32]) -> Result<(), StoreError> {
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
