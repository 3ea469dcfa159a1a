//! Connections: one key pair per app, each with its own budget and its own revocation.
//!
//! NIP-47 lets a wallet service tell apps apart only by the key that signs their requests. Giving
//! every app its own client key (inside its connection URI) is what makes a budget per app and
//! revoking one app without the others possible. The service keeps only the client's public key;
//! the secret lives in the URI the user hands to the app.
//!
//! The store is plain data with the budget arithmetic in it, so it is tested without relays; the
//! service persists it as JSON after every change (it holds no secrets) — to a file, or to
//! wherever the application keeps its state ([`StoreLocation::Custom`]: a database row, say).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nostr_sdk::PublicKey;
use serde::{Deserialize, Serialize};

use crate::error::NwcError;

/// A spending limit that renews every `period_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Most the app may spend (amounts plus routing fees) in one period.
    pub limit_msat: u64,
    /// Length of a period, e.g. 86 400 for a daily budget.
    pub period_secs: u64,
}

/// One app's connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// A name for the user ("coffee shop till").
    pub name: String,
    /// The key the app signs its requests with.
    pub client: PublicKey,
    /// Its spending limit; `None` spends freely.
    pub budget: Option<Budget>,
    /// Spent (and reserved for payments in flight) in the current period.
    pub spent_msat: u64,
    /// When the current period began, seconds since the Unix epoch.
    pub period_start: u64,
    /// A revoked connection gets `UNAUTHORIZED` for everything.
    pub revoked: bool,
    /// Created, seconds since the Unix epoch.
    pub created_at: u64,
    /// Payment hashes (hex) of the payments this connection made: with the invoices it made,
    /// all of the node's history it may look up or list. Another app's payments, and the
    /// preimages of other apps' invoices, are not its to see.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub paid: BTreeSet<String>,
}

/// An invoice a connection made (plain or hold): who may see, settle or cancel it, and what
/// NIP-47 answers need that the node's history does not keep. Kept with the connections, so
/// ownership and notifications survive a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeInvoice {
    /// The connection that made it.
    pub client: PublicKey,
    /// The encoded invoice.
    pub bolt11: String,
    /// Its amount, `None` for any amount.
    pub amount_msat: Option<u64>,
    /// The description the app gave, if any.
    pub description: Option<String>,
    /// Made, seconds since the Unix epoch.
    pub created_at: u64,
    /// Expires, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Why a spend was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpendRefusal {
    /// No such connection, or it was revoked.
    Unauthorized,
    /// The amount does not fit in what is left of the budget.
    QuotaExceeded {
        /// What is left in this period.
        left_msat: u64,
    },
}

/// A place an application keeps one document of its own (the store's JSON) between runs.
pub trait DocumentStore: Send + Sync {
    /// The document, or `None` if none was saved yet.
    ///
    /// # Errors
    /// Why it cannot be read.
    fn load(&self) -> Result<Option<Vec<u8>>, String>;

    /// Replaces the document, atomically: a crash leaves the old or the new version.
    ///
    /// # Errors
    /// Why it cannot be written.
    fn save(&self, bytes: &[u8]) -> Result<(), String>;
}

/// Where a connection store is kept between runs.
#[derive(Clone)]
pub enum StoreLocation {
    /// A JSON file, replaced atomically on each save.
    File(PathBuf),
    /// A document the application keeps (in its database, say).
    Custom(Arc<dyn DocumentStore>),
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::File(path) => f.debug_tuple("File").field(path).finish(),
            StoreLocation::Custom(_) => f.write_str("Custom"),
        }
    }
}

impl From<PathBuf> for StoreLocation {
    fn from(path: PathBuf) -> StoreLocation {
        StoreLocation::File(path)
    }
}

impl DocumentStore for PathBuf {
    fn load(&self) -> Result<Option<Vec<u8>>, String> {
        match std::fs::read(self) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.display())),
        }
    }

    fn save(&self, bytes: &[u8]) -> Result<(), String> {
        let tmp = self.with_extension("tmp");
        let io = |e: std::io::Error| format!("{}: {e}", self.display());
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, self).map_err(io)
    }
}

impl StoreLocation {
    fn document(&self) -> &dyn DocumentStore {
        match self {
            StoreLocation::File(path) => path,
            StoreLocation::Custom(store) => store.as_ref(),
        }
    }
}

/// How long a carried-out request is remembered across restarts, by its date. A restarted
/// service asks the relays for requests from a few seconds before it started (see
/// [`crate::service`]); anything dated earlier never reaches it again, so remembering two
/// minutes covers that look-back and clocks a little apart.
pub const REPLAY_WINDOW_SECS: u64 = 120;

/// Every connection of a service, by client key.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ConnectionStore {
    connections: BTreeMap<String, Connection>,
    /// Invoices made through the service, by payment hash (hex).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    made: BTreeMap<String, MadeInvoice>,
    /// Requests of connections carried out lately: event id (hex) and its date, so a request
    /// republished after a restart is not carried out again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    handled: BTreeMap<String, u64>,
    #[serde(skip)]
    location: Option<StoreLocation>,
}

impl ConnectionStore {
    /// A store kept only in memory.
    pub fn in_memory() -> ConnectionStore {
        ConnectionStore::default()
    }

    /// The store saved at `path`, or an empty one if the file does not exist yet.
    ///
    /// # Errors
    /// [`NwcError::Store`] when the file cannot be read or is not a store.
    pub fn open(path: &Path) -> Result<ConnectionStore, NwcError> {
        ConnectionStore::open_at(StoreLocation::File(path.to_path_buf()))
    }

    /// The store kept at `location`, or an empty one if nothing was saved there yet.
    ///
    /// # Errors
    /// [`NwcError::Store`] when it cannot be read or is not a store.
    pub fn open_at(location: StoreLocation) -> Result<ConnectionStore, NwcError> {
        let mut store = match location.document().load().map_err(NwcError::Store)? {
            Some(bytes) => serde_json::from_slice::<ConnectionStore>(&bytes).map_err(|e| {
                NwcError::Store(format!("{location:?} is not a connection store: {e}"))
            })?,
            None => ConnectionStore::default(),
        };
        store.location = Some(location);
        Ok(store)
    }

    /// Writes the store where it is kept (atomically: a crash leaves the old or the new
    /// version).
    ///
    /// # Errors
    /// [`NwcError::Store`] on a failure to write.
    pub fn save(&self) -> Result<(), NwcError> {
        let Some(location) = &self.location else {
            return Ok(());
        };
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| NwcError::Store(e.to_string()))?;
        location.document().save(&bytes).map_err(NwcError::Store)
    }

    /// Adds a connection for `client`.
    pub fn add(&mut self, name: &str, client: PublicKey, budget: Option<Budget>, now: u64) {
        self.connections.insert(
            client.to_hex(),
            Connection {
                name: name.to_string(),
                client,
                budget,
                spent_msat: 0,
                period_start: now,
                revoked: false,
                created_at: now,
                paid: BTreeSet::new(),
            },
        );
    }

    /// `true` the first time the request with event id `id` (hex), dated `created_at`, is
    /// offered: it is remembered until its date is [`REPLAY_WINDOW_SECS`] old (requests from
    /// unknown keys are never offered, so strangers cannot fill this).
    pub fn first_request(&mut self, id: &str, created_at: u64, now: u64) -> bool {
        self.handled
            .retain(|_, at| at.saturating_add(REPLAY_WINDOW_SECS) >= now);
        if self.handled.contains_key(id) {
            return false;
        }
        if created_at.saturating_add(REPLAY_WINDOW_SECS) >= now {
            self.handled.insert(id.to_owned(), created_at);
        }
        true
    }

    /// Remembers an invoice `made.client` made, under its payment hash (hex).
    pub fn remember_made(&mut self, payment_hash: &str, made: MadeInvoice) {
        self.made.insert(payment_hash.to_owned(), made);
    }

    /// The invoice made through the service with this payment hash (hex), whoever made it.
    pub fn made(&self, payment_hash: &str) -> Option<&MadeInvoice> {
        self.made.get(payment_hash)
    }

    /// Writes down that `client` made the payment with this hash (hex), so it may look it up.
    pub fn record_paid(&mut self, client: &PublicKey, payment_hash: &str) {
        if let Some(connection) = self.connections.get_mut(&client.to_hex()) {
            connection.paid.insert(payment_hash.to_owned());
        }
    }

    /// Whether `client` may see the node's record of this payment: an incoming one only if it
    /// made the invoice, an outgoing one only if it made the payment.
    pub fn sees(&self, client: &PublicKey, payment_hash: &str, inbound: bool) -> bool {
        if inbound {
            self.made
                .get(payment_hash)
                .is_some_and(|made| made.client == *client)
        } else {
            self.connections
                .get(&client.to_hex())
                .is_some_and(|c| c.paid.contains(payment_hash))
        }
    }

    /// What `client` may still spend in the current period (a period that has ended counts as
    /// renewed); `None` for an unknown or revoked connection, or one without a budget.
    pub fn left_msat(&self, client: &PublicKey, now: u64) -> Option<u64> {
        let connection = self.active(client)?;
        let budget = connection.budget?;
        if now.saturating_sub(connection.period_start) >= budget.period_secs {
            return Some(budget.limit_msat);
        }
        Some(budget.limit_msat.saturating_sub(connection.spent_msat))
    }

    /// Revokes the connection of `client`; `false` if there is none.
    pub fn revoke(&mut self, client: &PublicKey) -> bool {
        match self.connections.get_mut(&client.to_hex()) {
            Some(connection) => {
                connection.revoked = true;
                true
            }
            None => false,
        }
    }

    /// The active (not revoked) connection of `client`.
    pub fn active(&self, client: &PublicKey) -> Option<&Connection> {
        self.connections
            .get(&client.to_hex())
            .filter(|c| !c.revoked)
    }

    /// Every connection, revoked ones included.
    pub fn list(&self) -> Vec<Connection> {
        self.connections.values().cloned().collect()
    }

    /// Reserves `amount_msat` of `client`'s budget for a payment about to be made.
    ///
    /// # Errors
    /// [`SpendRefusal`] when the connection is not active or the budget is short.
    pub fn reserve(
        &mut self,
        client: &PublicKey,
        amount_msat: u64,
        now: u64,
    ) -> Result<(), SpendRefusal> {
        let connection = self
            .connections
            .get_mut(&client.to_hex())
            .filter(|c| !c.revoked)
            .ok_or(SpendRefusal::Unauthorized)?;
        let Some(budget) = connection.budget else {
            return Ok(());
        };
        if now.saturating_sub(connection.period_start) >= budget.period_secs {
            connection.period_start = now;
            connection.spent_msat = 0;
        }
        let left = budget.limit_msat.saturating_sub(connection.spent_msat);
        if amount_msat > left {
            return Err(SpendRefusal::QuotaExceeded { left_msat: left });
        }
        connection.spent_msat += amount_msat;
        Ok(())
    }

    /// Settles a reservation: `reserved_msat` was set aside, `spent_msat` (amount plus fees, or
    /// zero when the payment failed) is what it cost. Fees may take the period over its limit:
    /// the payment was already made.
    pub fn settle(&mut self, client: &PublicKey, reserved_msat: u64, spent_msat: u64) {
        if let Some(connection) = self.connections.get_mut(&client.to_hex()) {
            if connection.budget.is_some() {
                connection.spent_msat = connection
                    .spent_msat
                    .saturating_sub(reserved_msat)
                    .saturating_add(spent_msat);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr_sdk::Keys;

    fn key() -> PublicKey {
        Keys::generate().public_key()
    }

    #[test]
    fn budgets_reserve_settle_and_renew() {
        let mut store = ConnectionStore::in_memory();
        let app = key();
        let budget = Budget {
            limit_msat: 100_000,
            period_secs: 60,
        };
        store.add("app", app, Some(budget), 1_000);
        store.reserve(&app, 60_000, 1_000).expect("fits");
        assert_eq!(
            store.reserve(&app, 50_000, 1_001),
            Err(SpendRefusal::QuotaExceeded { left_msat: 40_000 })
        );
        // A failed payment gives its reservation back; a paid one adds its fee.
        store.settle(&app, 60_000, 0);
        store.reserve(&app, 90_000, 1_002).expect("fits again");
        store.settle(&app, 90_000, 90_500);
        assert_eq!(store.active(&app).expect("active").spent_msat, 90_500);
        // The next period starts from zero.
        store.reserve(&app, 100_000, 1_060).expect("renewed");
    }

    #[test]
    fn a_connection_sees_only_its_own_invoices_and_payments() {
        let mut store = ConnectionStore::in_memory();
        let (a, b) = (key(), key());
        let budget = Budget {
            limit_msat: 10_000,
            period_secs: 60,
        };
        store.add("a", a, Some(budget), 0);
        store.add("b", b, None, 0);
        store.remember_made(
            "aa",
            MadeInvoice {
                client: a,
                bolt11: "lnbcrt1".into(),
                amount_msat: Some(1),
                description: None,
                created_at: 0,
                expires_at: 10,
            },
        );
        store.record_paid(&b, "bb");
        assert!(store.sees(&a, "aa", true) && !store.sees(&b, "aa", true));
        assert!(store.sees(&b, "bb", false) && !store.sees(&a, "bb", false));
        // A hash made as an invoice is not seen as a payment, nor the reverse.
        assert!(!store.sees(&a, "aa", false) && !store.sees(&b, "bb", true));
        store.reserve(&a, 4_000, 1).expect("fits");
        assert_eq!(store.left_msat(&a, 2), Some(6_000));
        assert_eq!(store.left_msat(&a, 60), Some(10_000), "renewed");
        assert_eq!(store.left_msat(&b, 2), None, "no budget");
    }

    #[test]
    fn revoked_and_unknown_connections_cannot_spend() {
        let mut store = ConnectionStore::in_memory();
        let (app, stranger) = (key(), key());
        store.add("app", app, None, 0);
        store.reserve(&app, u64::MAX, 0).expect("no budget");
        assert!(store.revoke(&app));
        assert!(store.active(&app).is_none());
        assert_eq!(store.reserve(&app, 1, 0), Err(SpendRefusal::Unauthorized));
        assert_eq!(
            store.reserve(&stranger, 1, 0),
            Err(SpendRefusal::Unauthorized)
        );
        assert!(!store.revoke(&stranger));
    }

    #[test]
    fn the_store_survives_a_restart_and_rejects_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("connections.json");
        let app = key();
        let mut store = ConnectionStore::open(&path).expect("new store");
        store.add("app", app, None, 5);
        store.record_paid(&app, "bb");
        store.remember_made(
            "aa",
            MadeInvoice {
                client: app,
                bolt11: "lnbcrt1".into(),
                amount_msat: None,
                description: Some("tea".into()),
                created_at: 5,
                expires_at: 50,
            },
        );
        store.revoke(&app);
        store.save().expect("save");
        let reopened = ConnectionStore::open(&path).expect("reopen");
        assert_eq!(reopened.list(), store.list());
        assert!(reopened.active(&app).is_none());
        assert_eq!(reopened.made("aa"), store.made("aa"));
        assert!(reopened.sees(&app, "bb", false) && reopened.sees(&app, "aa", true));
        let mut store = reopened;
        assert!(store.first_request("e1", 100, 100));
        store.save().expect("save");
        let mut reopened = ConnectionStore::open(&path).expect("reopen");
        assert!(
            !reopened.first_request("e1", 100, 110),
            "a replay after a restart"
        );
        assert!(reopened.first_request("e2", 100, 110));
        // Forgotten once its date is past the window (the relays no longer send it).
        assert!(reopened.first_request("e1", 100, 100 + REPLAY_WINDOW_SECS + 1));
        std::fs::write(&path, b"{not json").expect("write");
        assert!(matches!(
            ConnectionStore::open(&path),
            Err(NwcError::Store(_))
        ));
    }
}
