//! The service's local copy of its log: every receipt with the event it decided on, in SQLite
//! or in PostgreSQL (one table shared by communities, keyed by the community and the sequence
//! number).
//!
//! A restart replays it without waiting for relays. It is a cache, not the record — the
//! receipts and events on the relays are — so when it is lost the service rebuilds it from
//! them ([`crate::service`]).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use moip_assets::ledger::{postgres_call, PgClient};

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

const PG_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS moip_work_log (
    community TEXT   NOT NULL,
    seq       BIGINT NOT NULL,
    receipt   TEXT   NOT NULL,
    event     TEXT,
    PRIMARY KEY (community, seq)
)";

/// Receipts and their events, by sequence number.
pub struct WorkLog {
    backend: Backend,
}

enum Backend {
    Sqlite(Connection),
    Postgres {
        // Boxed: the client is large, and a log is opened once.
        client: Box<PgClient>,
        community: String,
    },
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
        Ok(WorkLog {
            backend: Backend::Sqlite(conn),
        })
    }

    /// Connects to the PostgreSQL database at `url` and opens `community`'s log there
    /// (creating the table if needed).
    ///
    /// # Errors
    /// [`LogError`] when the database cannot be reached or refuses.
    pub fn connect(url: &str, community: &str) -> Result<WorkLog, LogError> {
        postgres_call(|| {
            let mut client = PgClient::connect(url).map_err(err)?;
            client.batch_execute(PG_SCHEMA).map_err(err)?;
            Ok(WorkLog {
                backend: Backend::Postgres {
                    client: Box::new(client),
                    community: community.to_owned(),
                },
            })
        })
    }

    /// A log in memory (tests, or a node told to keep nothing).
    ///
    /// # Errors
    /// [`LogError`] if SQLite cannot start.
    pub fn in_memory() -> Result<WorkLog, LogError> {
        let conn = Connection::open_in_memory().map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(WorkLog {
            backend: Backend::Sqlite(conn),
        })
    }

    /// Appends `receipt` with its event's JSON.
    ///
    /// # Errors
    /// [`LogError`] on a write failure or a sequence number already used.
    pub fn append(&mut self, receipt: &Receipt, event: Option<&str>) -> Result<(), LogError> {
        let body = serde_json::to_string(receipt).map_err(err)?;
        let seq = i64::try_from(receipt.seq).map_err(err)?;
        match &mut self.backend {
            Backend::Sqlite(conn) => {
                conn.execute(
                    "INSERT INTO log (seq, receipt, event) VALUES (?1, ?2, ?3)",
                    params![seq, body, event],
                )
                .map_err(err)?;
            }
            Backend::Postgres { client, community } => {
                postgres_call(|| {
                    client.execute(
                        "INSERT INTO moip_work_log (community, seq, receipt, event) \
                         VALUES ($1, $2, $3, $4)",
                        &[&*community, &seq, &body, &event],
                    )
                })
                .map_err(err)?;
            }
        }
        Ok(())
    }

    /// The last sequence number, 0 for an empty log.
    ///
    /// # Errors
    /// [`LogError`] on a read failure.
    pub fn last_seq(&mut self) -> Result<u64, LogError> {
        let last: Option<i64> = match &mut self.backend {
            Backend::Sqlite(conn) => conn
                .query_row("SELECT MAX(seq) FROM log", [], |row| row.get(0))
                .optional()
                .map_err(err)?
                .flatten(),
            Backend::Postgres { client, community } => postgres_call(|| {
                client.query_one(
                    "SELECT MAX(seq) FROM moip_work_log WHERE community = $1",
                    &[&*community],
                )
            })
            .map_err(err)?
            .try_get(0)
            .map_err(err)?,
        };
        Ok(last.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
    }

    /// How many entries the log holds, and their bytes (receipts and events, as stored text):
    /// what the service's limits bound.
    ///
    /// # Errors
    /// [`LogError`] on a read failure.
    pub fn usage(&mut self) -> Result<(u64, u64), LogError> {
        let (entries, bytes): (i64, i64) = match &mut self.backend {
            Backend::Sqlite(conn) => conn
                .query_row(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(receipt AS BLOB)) + COALESCE(LENGTH(CAST(event AS BLOB)), 0)), 0) \
                     FROM log",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(err)?,
            Backend::Postgres { client, community } => {
                let row = postgres_call(|| {
                    client.query_one(
                        "SELECT COUNT(*), COALESCE(SUM(OCTET_LENGTH(receipt) \
                         + COALESCE(OCTET_LENGTH(event), 0)), 0)::BIGINT \
                         FROM moip_work_log WHERE community = $1",
                        &[&*community],
                    )
                })
                .map_err(err)?;
                (row.try_get(0).map_err(err)?, row.try_get(1).map_err(err)?)
            }
        };
        Ok((
            u64::try_from(entries).unwrap_or(0),
            u64::try_from(bytes).unwrap_or(0),
        ))
    }

    /// Every entry, in order.
    ///
    /// # Errors
    /// [`LogError`] on a read failure or an entry that does not parse.
    pub fn entries(&mut self) -> Result<Vec<(Receipt, Option<String>)>, LogError> {
        let rows: Vec<(String, Option<String>)> = match &mut self.backend {
            Backend::Sqlite(conn) => {
                let mut statement = conn
                    .prepare("SELECT receipt, event FROM log ORDER BY seq")
                    .map_err(err)?;
                let rows = statement
                    .query_map([], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
                    })
                    .map_err(err)?;
                rows.collect::<Result<_, _>>().map_err(err)?
            }
            Backend::Postgres { client, community } => postgres_call(|| {
                client.query(
                    "SELECT receipt, event FROM moip_work_log WHERE community = $1 ORDER BY seq",
                    &[&*community],
                )
            })
            .map_err(err)?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, postgres::Error>>()
            .map_err(err)?,
        };
        rows.into_iter()
            .map(|(receipt, event)| Ok((serde_json::from_str(&receipt).map_err(err)?, event)))
            .collect()
    }
}
