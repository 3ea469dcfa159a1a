//! The small documents of a community node's state beside its ledger and Work log: the deposit
//! book, the record of supply commitments, the NWC connections. Each is one JSON document,
//! rewritten whole on every change. They live where the ledger lives: files in the data
//! directory by default, or rows of one PostgreSQL table (`moip_state`, keyed by community and
//! name) when the node runs with `--database` — so a database backup holds the whole state,
//! and a data directory holds none of it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use moip_assets::ledger::{postgres_call, PgClient};

use crate::util::lock;

/// A document could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{place}: {reason}")]
pub struct StateError {
    /// The file, or the database row.
    pub place: String,
    /// What failed.
    pub reason: String,
}

/// Where the documents are kept.
#[derive(Clone)]
pub enum StateStore {
    /// Files in this directory.
    Files(PathBuf),
    /// Rows of `moip_state` for this community.
    Postgres {
        /// One connection, shared by the documents.
        client: Arc<Mutex<PgClient>>,
        /// The community the rows belong to (one database may hold several).
        community: String,
    },
}

impl StateStore {
    /// The documents of `community`: in the database at `database` when given (the table is
    /// created if needed), else as files in `dir`.
    ///
    /// # Errors
    /// [`StateError`] when the database cannot be reached or refuses.
    pub fn open(
        database: Option<&str>,
        community: &str,
        dir: &Path,
    ) -> Result<StateStore, StateError> {
        let Some(url) = database else {
            return Ok(StateStore::Files(dir.to_path_buf()));
        };
        let failed = |e: postgres::Error| StateError {
            place: "the database".into(),
            reason: e.to_string(),
        };
        let client = postgres_call(|| -> Result<PgClient, StateError> {
            let mut client = PgClient::connect(url).map_err(failed)?;
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS moip_state (
                         community TEXT NOT NULL,
                         name      TEXT NOT NULL,
                         body      TEXT NOT NULL,
                         PRIMARY KEY (community, name)
                     )",
                )
                .map_err(failed)?;
            Ok(client)
        })?;
        Ok(StateStore::Postgres {
            client: Arc::new(Mutex::new(client)),
            community: community.to_owned(),
        })
    }

    /// The document called `name` (a file name relative to the directory, for files).
    pub fn document(&self, name: &str) -> Document {
        match self {
            StateStore::Files(dir) => Document::File(dir.join(name)),
            StateStore::Postgres { client, community } => Document::Row {
                client: Arc::clone(client),
                community: community.clone(),
                name: name.to_owned(),
            },
        }
    }
}

/// One document of the node's state.
#[derive(Clone)]
pub enum Document {
    /// A file, replaced atomically (written beside it, synced, renamed over it), readable by
    /// the owner only.
    File(PathBuf),
    /// A row of `moip_state`, replaced in one statement.
    Row {
        /// The database connection.
        client: Arc<Mutex<PgClient>>,
        /// The community.
        community: String,
        /// The document's name.
        name: String,
    },
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.place())
    }
}

impl Document {
    /// Where it is, for messages.
    pub fn place(&self) -> String {
        match self {
            Document::File(path) => path.display().to_string(),
            Document::Row {
                community, name, ..
            } => format!("moip_state ({community}, {name})"),
        }
    }

    fn error(&self, e: impl std::fmt::Display) -> StateError {
        StateError {
            place: self.place(),
            reason: e.to_string(),
        }
    }

    /// The document, or `None` if it was never written.
    ///
    /// # Errors
    /// [`StateError`] when it cannot be read.
    pub fn read(&self) -> Result<Option<String>, StateError> {
        match self {
            Document::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.error(e)),
            },
            Document::Row {
                client,
                community,
                name,
            } => postgres_call(|| {
                lock(client)
                    .query_opt(
                        "SELECT body FROM moip_state WHERE community = $1 AND name = $2",
                        &[community, name],
                    )
                    .and_then(|row| row.map(|r| r.try_get(0)).transpose())
            })
            .map_err(|e| self.error(e)),
        }
    }

    /// Replaces the document with `text`: afterwards it is the old or the new one, whatever
    /// happens.
    ///
    /// # Errors
    /// [`StateError`] when it cannot be written.
    pub fn write(&self, text: &str) -> Result<(), StateError> {
        match self {
            // Owner-only (0600) from its creation: the NWC connections hold apps' secrets.
            Document::File(path) => {
                crate::secrets::write_private(path, text.as_bytes()).map_err(|e| self.error(e))
            }
            Document::Row {
                client,
                community,
                name,
            } => postgres_call(|| {
                lock(client).execute(
                    "INSERT INTO moip_state (community, name, body) VALUES ($1, $2, $3)
                     ON CONFLICT (community, name) DO UPDATE SET body = EXCLUDED.body",
                    &[community, name, &text],
                )
            })
            .map(|_| ())
            .map_err(|e| self.error(e)),
        }
    }
}

/// Signed requests already taken (by event id), kept in one of the node's documents so that a
/// request replayed after a restart is refused as it is before one: a signed redemption
/// request, taken twice, would redeem twice. Ids older than the freshness window are
/// forgotten, since requests that old are refused anyway.
pub struct SeenRequests {
    document: Option<Document>,
    seen: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl SeenRequests {
    /// The ids written in `document` (none when absent; `None`: kept in memory only).
    ///
    /// # Errors
    /// [`StateError`] when the document cannot be read or is not such a record.
    pub fn open(document: Option<Document>) -> Result<SeenRequests, StateError> {
        let seen = match &document {
            Some(d) => match d.read()? {
                Some(text) => serde_json::from_str(&text).map_err(|e| d.error(e))?,
                None => std::collections::BTreeMap::new(),
            },
            None => std::collections::BTreeMap::new(),
        };
        Ok(SeenRequests {
            document,
            seen: Mutex::new(seen),
        })
    }

    /// Takes request `id` (signed at `created_at`) at `now`: `true` the first time, once it is
    /// written down; `false` when it was taken before. Ids signed more than `window` seconds
    /// from `now` are forgotten first.
    ///
    /// # Errors
    /// [`StateError`] when the record cannot be written: then the request is not taken
    /// (refusing it is safe; taking it unrecorded is not).
    pub fn take(
        &self,
        id: &str,
        created_at: u64,
        now: u64,
        window: u64,
    ) -> Result<bool, StateError> {
        let mut seen = lock(&self.seen);
        seen.retain(|_, at| at.abs_diff(now) <= window);
        if seen.contains_key(id) {
            return Ok(false);
        }
        seen.insert(id.to_owned(), created_at);
        if let Some(document) = &self.document {
            let written = serde_json::to_string(&*seen)
                .map_err(|e| document.error(e))
                .and_then(|text| document.write(&text));
            if let Err(e) = written {
                seen.remove(id);
                return Err(e);
            }
        }
        Ok(true)
    }
}

/// The NWC service keeps its connection list as one of the node's documents.
impl moip_nwc::DocumentStore for Document {
    fn load(&self) -> Result<Option<Vec<u8>>, String> {
        self.read()
            .map(|text| text.map(String::into_bytes))
            .map_err(|e| e.to_string())
    }

    fn save(&self, bytes: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(bytes).map_err(|e| self.error(e).to_string())?;
        self.write(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_taken_once_across_reopenings_until_it_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = StateStore::open(None, "mill", dir.path()).expect("files");
        let seen = SeenRequests::open(Some(store.document("seen.json"))).expect("open");
        assert!(seen.take("a", 1_000, 1_000, 600).expect("take"));
        assert!(!seen.take("a", 1_000, 1_001, 600).expect("take"));
        drop(seen);
        let seen = SeenRequests::open(Some(store.document("seen.json"))).expect("reopen");
        assert!(
            !seen.take("a", 1_000, 1_002, 600).expect("take"),
            "after a restart"
        );
        assert!(seen.take("b", 1_700, 1_700, 600).expect("take"));
        // "a" is past the window now (and would be refused as stale before reaching here).
        assert!(seen.take("a", 1_000, 1_700, 600).expect("take"));
    }

    #[test]
    fn a_file_document_is_absent_then_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = StateStore::open(None, "mill", dir.path()).expect("files");
        let book = store.document("book.json");
        assert_eq!(book.read().expect("read"), None);
        book.write("{\"a\":1}").expect("write");
        book.write("{\"b\":2}").expect("rewrite");
        assert_eq!(book.read().expect("read").as_deref(), Some("{\"b\":2}"));
        assert!(!dir.path().join("book.json.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("book.json"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            book.place(),
            dir.path().join("book.json").display().to_string()
        );
    }
}
