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
use crate::permissions::{default_permissions, Permission};

/// A spending limit that renews with a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredBudget")]
pub struct Budget {
    /// Most the app may spend (amounts plus routing fees) in one period.
    pub limit_msat: u64,
    /// When the spent amount starts again from zero.
    pub renewal: Renewal,
}

/// A budget as stores before calendar renewal wrote it (`period_secs`, a sliding period from
/// the connection's creation) or as they write it now (`renewal`): old files keep opening.
#[derive(Deserialize)]
struct StoredBudget {
    limit_msat: u64,
    #[serde(default)]
    renewal: Option<Renewal>,
    #[serde(default)]
    period_secs: Option<u64>,
}

impl From<StoredBudget> for Budget {
    fn from(stored: StoredBudget) -> Budget {
        let renewal = match (stored.renewal, stored.period_secs) {
            (Some(renewal), _) => renewal,
            (None, Some(secs)) => Renewal::from_period_secs(secs),
            (None, None) => Renewal::Never,
        };
        Budget {
            limit_msat: stored.limit_msat,
            renewal,
        }
    }
}

const DAY_SECS: u64 = 86_400;

/// How often a budget renews, by Alby Hub's `budget_renewal` names: at the start of the UTC
/// calendar day, ISO week (Monday), month or year — or never. Apps and their users expect
/// "50 000 sat a month" to mean this calendar month, not 30 days from when the app was paired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Renewal {
    /// At 00:00 UTC every day.
    Daily,
    /// At 00:00 UTC every Monday.
    Weekly,
    /// At 00:00 UTC on the first of every month.
    Monthly,
    /// At 00:00 UTC every 1 January.
    Yearly,
    /// The budget is spent once.
    Never,
    /// A period of this many seconds from the last renewal: only budgets stored before calendar
    /// renewal with a period no calendar name matches, honoured as they were made.
    #[serde(rename = "every_secs")]
    EverySecs(u64),
}

/// A `budget_renewal` name that is not one of Alby Hub's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("budget renewal {0:?}: one of daily, weekly, monthly, yearly, never")]
pub struct UnknownRenewal(pub String);

impl std::str::FromStr for Renewal {
    type Err = UnknownRenewal;

    fn from_str(name: &str) -> Result<Renewal, UnknownRenewal> {
        match name {
            "daily" => Ok(Renewal::Daily),
            "weekly" => Ok(Renewal::Weekly),
            "monthly" => Ok(Renewal::Monthly),
            "yearly" => Ok(Renewal::Yearly),
            "never" => Ok(Renewal::Never),
            other => Err(UnknownRenewal(other.to_owned())),
        }
    }
}

impl fmt::Display for Renewal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Renewal::Daily => f.write_str("daily"),
            Renewal::Weekly => f.write_str("weekly"),
            Renewal::Monthly => f.write_str("monthly"),
            Renewal::Yearly => f.write_str("yearly"),
            Renewal::Never => f.write_str("never"),
            Renewal::EverySecs(secs) => write!(f, "every {secs} s"),
        }
    }
}

impl Renewal {
    /// The renewal an old store's sliding `period_secs` stands for: a day or a week by its
    /// calendar name (what moip's pairing always meant by 86 400), any other length kept.
    fn from_period_secs(secs: u64) -> Renewal {
        match secs {
            DAY_SECS => Renewal::Daily,
            s if s == 7 * DAY_SECS => Renewal::Weekly,
            s => Renewal::EverySecs(s),
        }
    }

    /// When the period a budget last started at `period_start` was renewed again by `now`:
    /// the start of the newest period, or `None` while `period_start` is still in the current
    /// one (or the budget never renews). A clock set back renews nothing.
    pub fn renewed_at(self, period_start: u64, now: u64) -> Option<u64> {
        let start = match self {
            Renewal::Never => return None,
            Renewal::EverySecs(secs) => {
                return (now.saturating_sub(period_start) >= secs).then_some(now)
            }
            calendar => calendar.calendar_start(now),
        };
        (start > period_start).then_some(start)
    }

    /// When a budget whose current period began at `period_start` next renews, seen at `now`
    /// (NIP-47 `get_budget`'s `renews_at`): the start of the next calendar period, or
    /// `period_start` plus the sliding period; `None` for a budget that never renews.
    pub fn renews_at(self, period_start: u64, now: u64) -> Option<u64> {
        let current = self.calendar_start(now);
        match self {
            Renewal::Never => None,
            Renewal::EverySecs(secs) => {
                let start = self.renewed_at(period_start, now).unwrap_or(period_start);
                Some(start.saturating_add(secs))
            }
            Renewal::Daily => Some(current + DAY_SECS),
            Renewal::Weekly => Some(current + 7 * DAY_SECS),
            // A day past the longest month, or the longest year, is in the next one.
            Renewal::Monthly => Some(self.calendar_start(current + 32 * DAY_SECS)),
            Renewal::Yearly => Some(self.calendar_start(current + 367 * DAY_SECS)),
        }
    }

    /// The start (UTC, seconds since the Unix epoch) of the calendar period holding `now`.
    fn calendar_start(self, now: u64) -> u64 {
        let days = now / DAY_SECS;
        let start_day = match self {
            // 1 January 1970 was a Thursday: Monday-based weekday 3.
            Renewal::Weekly => days.saturating_sub((days + 3) % 7),
            Renewal::Monthly => {
                let (year, month, _) = civil_from_days(days);
                days_from_civil(year, month, 1)
            }
            Renewal::Yearly => {
                let (year, _, _) = civil_from_days(days);
                days_from_civil(year, 1, 1)
            }
            _ => days,
        };
        start_day * DAY_SECS
    }
}

/// Year, month (1–12) and day (1–31) of the proleptic Gregorian calendar for a day count since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a date on or after it (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

impl Connection {
    /// What it may do: its permissions, or [`default_permissions`] for one stored without.
    pub fn permitted(&self) -> BTreeSet<Permission> {
        self.permissions.clone().unwrap_or_else(default_permissions)
    }

    /// Whether it may call `method` (a method no permission names: no).
    pub fn permits(&self, method: &str) -> bool {
        Permission::of_method(method).is_some_and(|p| self.permitted().contains(&p))
    }
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
    /// What it may do, chosen when paired (permissions: pay, receive, read, sign). `None`, a
    /// connection stored before connections had permissions: [`default_permissions`], what it
    /// could do then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<BTreeSet<Permission>>,
    /// From then on (seconds since the Unix epoch) the connection is treated as revoked: a
    /// URI handed to an app for a while stops working by itself. `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Created, seconds since the Unix epoch.
    pub created_at: u64,
    /// Payment hashes (hex) of the payments this connection made: with the invoices it made,
    /// all of the node's history it may look up or list. Another app's payments, and the
    /// preimages of other apps' invoices, are not its to see.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub paid: BTreeSet<String>,
    /// The invoices of those payments (bolt11, by payment hash in hex) that were made by
    /// invoice: what `lookup_invoice` and `list_transactions` show as their `invoice`, which
    /// the node's history does not keep. Keysend payments, and payments recorded before this
    /// was kept, have none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub paid_invoices: BTreeMap<String, String>,
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
    /// For a hold invoice: the amount held, once a payment to it arrived and until it is
    /// settled or cancelled. The node reports an arrival once and forgets it when it stops,
    /// so this is what lets the app settle it after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_msat: Option<u64>,
    /// For a held payment: the block height from which the node no longer claims it (LDK
    /// fails its HTLCs back to the payer there, and a claim after it does nothing), if the
    /// node said. Kept so a settle after it is refused, not answered with a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_deadline: Option<u32>,
}

/// A payment an app asked for that was answered before it ended (the wait ran out), kept with
/// the connections until the node says how it ended: its budget reservation is then replaced
/// by what it cost, and a success is notified — also after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlightPayment {
    /// The connection that made it.
    pub client: PublicKey,
    /// What its budget reservation holds: the amount and the fee cap.
    pub reserved_msat: u64,
    /// What the payee is to receive.
    pub amount_msat: u64,
    /// The invoice paid, empty for keysend.
    pub bolt11: String,
    /// When the invoice expires, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The start of the budget period the reservation was counted in (set by
    /// [`ConnectionStore::note_in_flight`]): once the budget has renewed, the reservation went
    /// with the old period, and the new one is not touched.
    #[serde(default)]
    pub period_start: u64,
}

impl MadeInvoice {
    /// Whether its held payment was failed back by `block_height`: the deadline is reached.
    pub fn hold_timed_out(&self, block_height: u32) -> bool {
        self.accepted_msat.is_some() && self.claim_deadline.is_some_and(|d| block_height >= d)
    }
}

impl Connection {
    /// Whether it has expired by `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// Neither revoked nor expired at `now`.
    pub fn is_active(&self, now: u64) -> bool {
        !self.revoked && !self.expired(now)
    }

    /// What it may still spend in the period holding `now` (a period that has ended counts as
    /// renewed); `None` without a budget.
    pub fn left_msat(&self, now: u64) -> Option<u64> {
        let budget = self.budget?;
        if budget.renewal.renewed_at(self.period_start, now).is_some() {
            return Some(budget.limit_msat);
        }
        Some(budget.limit_msat.saturating_sub(self.spent_msat))
    }
}

/// Why a spend was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpendRefusal {
    /// No such connection, or it was revoked or has expired.
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
    /// Payments answered before they ended, by payment hash (hex).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    in_flight: BTreeMap<String, InFlightPayment>,
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

    /// Adds a connection for `client`, until `expires_at` (`None`: until revoked).
    pub fn add(
        &mut self,
        name: &str,
        client: PublicKey,
        budget: Option<Budget>,
        expires_at: Option<u64>,
        now: u64,
    ) {
        self.connections.insert(
            client.to_hex(),
            Connection {
                permissions: None,
                name: name.to_string(),
                client,
                budget,
                spent_msat: 0,
                period_start: now,
                revoked: false,
                expires_at,
                created_at: now,
                paid: BTreeSet::new(),
                paid_invoices: BTreeMap::new(),
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

    /// Writes down that a payment of `amount_msat` to the hold invoice with this hash (hex)
    /// arrived and is held until block `claim_deadline` (if the node said); `false` if no
    /// connection made that invoice.
    pub fn hold_accepted(
        &mut self,
        payment_hash: &str,
        amount_msat: u64,
        claim_deadline: Option<u32>,
    ) -> bool {
        match self.made.get_mut(payment_hash) {
            Some(made) => {
                made.accepted_msat = Some(amount_msat);
                made.claim_deadline = claim_deadline;
                true
            }
            None => false,
        }
    }

    /// Writes down that the held payment to this hash (hex) was settled or cancelled.
    pub fn hold_decided(&mut self, payment_hash: &str) {
        if let Some(made) = self.made.get_mut(payment_hash) {
            made.accepted_msat = None;
            made.claim_deadline = None;
        }
    }

    /// Every held payment not yet decided: payment hash (hex) and amount.
    pub fn held(&self) -> Vec<(String, u64)> {
        self.made
            .iter()
            .filter_map(|(hash, made)| Some((hash.clone(), made.accepted_msat?)))
            .collect()
    }

    /// Writes down that `client` made the payment with this hash (hex), so it may look it up,
    /// and the invoice it paid (`bolt11`; empty for keysend, which has none).
    pub fn record_paid(&mut self, client: &PublicKey, payment_hash: &str, bolt11: &str) {
        if let Some(connection) = self.connections.get_mut(&client.to_hex()) {
            connection.paid.insert(payment_hash.to_owned());
            if !bolt11.is_empty() {
                connection
                    .paid_invoices
                    .insert(payment_hash.to_owned(), bolt11.to_owned());
            }
        }
    }

    /// The invoice `client` paid with this payment hash (hex), if it paid one and it was kept.
    pub fn paid_invoice(&self, client: &PublicKey, payment_hash: &str) -> Option<&str> {
        self.connections
            .get(&client.to_hex())?
            .paid_invoices
            .get(payment_hash)
            .map(String::as_str)
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
    /// renewed); `None` for an unknown, revoked or expired connection, or one without a budget.
    pub fn left_msat(&self, client: &PublicKey, now: u64) -> Option<u64> {
        self.active(client, now)?.left_msat(now)
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

    /// The active (neither revoked nor expired at `now`) connection of `client`.
    pub fn active(&self, client: &PublicKey, now: u64) -> Option<&Connection> {
        self.connections
            .get(&client.to_hex())
            .filter(|c| c.is_active(now))
    }

    /// Sets what `client`'s connection may do; `false` for an unknown connection.
    pub fn permit(&mut self, client: &PublicKey, permissions: BTreeSet<Permission>) -> bool {
        match self.connections.get_mut(&client.to_hex()) {
            Some(c) => {
                c.permissions = Some(permissions);
                true
            }
            None => false,
        }
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
            .filter(|c| c.is_active(now))
            .ok_or(SpendRefusal::Unauthorized)?;
        let Some(budget) = connection.budget else {
            return Ok(());
        };
        if let Some(start) = budget.renewal.renewed_at(connection.period_start, now) {
            connection.period_start = start;
            connection.spent_msat = 0;
        }
        let left = budget.limit_msat.saturating_sub(connection.spent_msat);
        if amount_msat > left {
            return Err(SpendRefusal::QuotaExceeded { left_msat: left });
        }
        connection.spent_msat += amount_msat;
        Ok(())
    }

    /// Keeps `payment` (answered before it ended) until
    /// [`conclude_in_flight`](Self::conclude_in_flight), noting the budget period its
    /// reservation is counted in.
    pub fn note_in_flight(&mut self, payment_hash: &str, mut payment: InFlightPayment) {
        payment.period_start = self
            .connections
            .get(&payment.client.to_hex())
            .map_or(0, |c| c.period_start);
        self.in_flight.insert(payment_hash.to_owned(), payment);
    }

    /// Payment hashes (hex) of the payments answered before they ended.
    pub fn in_flight(&self) -> Vec<String> {
        self.in_flight.keys().cloned().collect()
    }

    /// The in-flight payment with this hash (hex), if any.
    pub fn in_flight_payment(&self, payment_hash: &str) -> Option<&InFlightPayment> {
        self.in_flight.get(payment_hash)
    }

    /// Concludes an in-flight payment that cost `spent_msat` (amount and fees; 0 when it
    /// failed): its reservation becomes that, unless the budget has renewed since (the
    /// reservation went with the old period). Once: the payment is taken out, and a second
    /// call for it returns `None`.
    pub fn conclude_in_flight(
        &mut self,
        payment_hash: &str,
        spent_msat: u64,
    ) -> Option<InFlightPayment> {
        let payment = self.in_flight.remove(payment_hash)?;
        let same_period = self
            .connections
            .get(&payment.client.to_hex())
            .is_some_and(|c| c.period_start == payment.period_start);
        if same_period {
            self.settle(&payment.client, payment.reserved_msat, spent_msat);
        }
        Some(payment)
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

    /// A payment answered before it ended: its reservation stays until it is concluded, once,
    /// with what it cost; kept across a reopening of the store; a budget renewed meanwhile is
    /// not touched by the old period's reservation.
    #[test]
    fn an_in_flight_payment_is_concluded_once_in_its_own_period() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.json");
        let mut store = ConnectionStore::open(&path).expect("store");
        let app = key();
        let budget = Budget {
            limit_msat: 100_000,
            renewal: Renewal::Daily,
        };
        let day = 20_000 * DAY_SECS;
        store.add("till", app, Some(budget), None, day);
        store.reserve(&app, 30_000, day + 10).expect("reserve");
        let payment = InFlightPayment {
            client: app,
            reserved_msat: 30_000,
            amount_msat: 25_000,
            bolt11: "lnbcrt1".into(),
            expires_at: None,
            period_start: 0,
        };
        store.note_in_flight("aa", payment.clone());
        store.save().expect("save");
        let mut store = ConnectionStore::open(&path).expect("reopened");
        assert_eq!(store.in_flight(), vec!["aa".to_string()]);
        assert_eq!(
            store.left_msat(&app, day + 20),
            Some(70_000),
            "still reserved"
        );
        let concluded = store.conclude_in_flight("aa", 25_100).expect("in flight");
        assert_eq!(concluded.amount_msat, 25_000);
        assert_eq!(
            store.left_msat(&app, day + 20),
            Some(74_900),
            "what it cost"
        );
        assert!(store.conclude_in_flight("aa", 0).is_none(), "once");
        assert_eq!(store.left_msat(&app, day + 20), Some(74_900));

        // Reserved yesterday, failed today after a payment of today's: today's count keeps
        // today's payment whole.
        store.reserve(&app, 30_000, day + 30).expect("reserve");
        store.note_in_flight("bb", payment);
        let tomorrow = day + DAY_SECS;
        store.reserve(&app, 10_000, tomorrow + 5).expect("today's");
        store.conclude_in_flight("bb", 0).expect("in flight");
        assert_eq!(store.left_msat(&app, tomorrow + 6), Some(90_000));
    }

    /// `get_budget`'s `renews_at`: the next UTC calendar period's start, across a month's and
    /// a year's end; a sliding period from its start; never for `never`.
    #[test]
    fn budgets_say_when_they_renew_next() {
        // 2025-12-31 23:00 UTC, a Wednesday.
        let now = 1_767_222_000;
        let new_year = 1_767_225_600;
        assert_eq!(Renewal::Daily.renews_at(0, now), Some(new_year));
        assert_eq!(Renewal::Monthly.renews_at(0, now), Some(new_year));
        assert_eq!(Renewal::Yearly.renews_at(0, now), Some(new_year));
        // Monday 2026-01-05.
        assert_eq!(Renewal::Weekly.renews_at(0, now), Some(1_767_571_200));
        // 2026-01-15 12:00: February starts on 2026-02-01, the next year on 2027-01-01.
        let mid_january = 1_768_478_400;
        assert_eq!(
            Renewal::Monthly.renews_at(0, mid_january),
            Some(1_769_904_000)
        );
        assert_eq!(
            Renewal::Yearly.renews_at(0, mid_january),
            Some(1_798_761_600)
        );
        assert_eq!(Renewal::Never.renews_at(0, now), None);
        assert_eq!(Renewal::EverySecs(100).renews_at(1_000, 1_050), Some(1_100));
    }

    #[test]
    fn budgets_reserve_settle_and_renew() {
        let mut store = ConnectionStore::in_memory();
        let app = key();
        let budget = Budget {
            limit_msat: 100_000,
            renewal: Renewal::EverySecs(60),
        };
        store.add("app", app, Some(budget), None, 1_000);
        store.reserve(&app, 60_000, 1_000).expect("fits");
        assert_eq!(
            store.reserve(&app, 50_000, 1_001),
            Err(SpendRefusal::QuotaExceeded { left_msat: 40_000 })
        );
        // A failed payment gives its reservation back; a paid one adds its fee.
        store.settle(&app, 60_000, 0);
        store.reserve(&app, 90_000, 1_002).expect("fits again");
        store.settle(&app, 90_000, 90_500);
        assert_eq!(
            store.active(&app, 1_002).expect("active").spent_msat,
            90_500
        );
        // The next period starts from zero.
        store.reserve(&app, 100_000, 1_060).expect("renewed");
    }

    #[test]
    fn a_connection_sees_only_its_own_invoices_and_payments() {
        let mut store = ConnectionStore::in_memory();
        let (a, b) = (key(), key());
        let budget = Budget {
            limit_msat: 10_000,
            renewal: Renewal::Daily,
        };
        store.add("a", a, Some(budget), None, 0);
        store.add("b", b, None, None, 0);
        store.remember_made(
            "aa",
            MadeInvoice {
                client: a,
                bolt11: "lnbcrt1".into(),
                amount_msat: Some(1),
                description: None,
                created_at: 0,
                expires_at: 10,
                accepted_msat: None,
                claim_deadline: None,
            },
        );
        store.record_paid(&b, "bb", "lnbcrt2");
        assert!(store.sees(&a, "aa", true) && !store.sees(&b, "aa", true));
        assert!(store.sees(&b, "bb", false) && !store.sees(&a, "bb", false));
        // A hash made as an invoice is not seen as a payment, nor the reverse.
        assert!(!store.sees(&a, "aa", false) && !store.sees(&b, "bb", true));
        // The invoice paid is the payer's to see.
        assert_eq!(store.paid_invoice(&b, "bb"), Some("lnbcrt2"));
        assert_eq!(store.paid_invoice(&a, "bb"), None);
        store.reserve(&a, 4_000, 1).expect("fits");
        assert_eq!(store.left_msat(&a, 2), Some(6_000));
        assert_eq!(store.left_msat(&a, DAY_SECS), Some(10_000), "renewed");
        assert_eq!(store.left_msat(&b, 2), None, "no budget");
    }

    #[test]
    fn revoked_and_unknown_connections_cannot_spend() {
        let mut store = ConnectionStore::in_memory();
        let (app, stranger) = (key(), key());
        store.add("app", app, None, None, 0);
        store.reserve(&app, u64::MAX, 0).expect("no budget");
        assert!(store.revoke(&app));
        assert!(store.active(&app, 0).is_none());
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
        store.add("app", app, None, Some(1_000), 5);
        store.record_paid(&app, "bb", "lnbcrt2");
        store.record_paid(&app, "cc", "");
        store.remember_made(
            "aa",
            MadeInvoice {
                client: app,
                bolt11: "lnbcrt1".into(),
                amount_msat: None,
                description: Some("tea".into()),
                created_at: 5,
                expires_at: 50,
                accepted_msat: None,
                claim_deadline: None,
            },
        );
        assert!(store.hold_accepted("aa", 7_000, Some(300)));
        assert!(
            !store.hold_accepted("zz", 7_000, None),
            "no connection made it"
        );
        store.revoke(&app);
        store.save().expect("save");
        let reopened = ConnectionStore::open(&path).expect("reopen");
        assert_eq!(reopened.list(), store.list());
        assert!(reopened.active(&app, 5).is_none());
        assert_eq!(reopened.made("aa"), store.made("aa"));
        assert_eq!(reopened.held(), vec![("aa".to_owned(), 7_000)]);
        assert!(reopened.sees(&app, "bb", false) && reopened.sees(&app, "aa", true));
        assert_eq!(reopened.paid_invoice(&app, "bb"), Some("lnbcrt2"));
        assert!(reopened.sees(&app, "cc", false), "a keysend payment");
        assert_eq!(
            reopened.paid_invoice(&app, "cc"),
            None,
            "keysend has no invoice"
        );
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

    /// 2024-02-29 13:14:15 UTC, a Thursday in a leap year.
    const LEAP_DAY: u64 = 1_709_212_455;

    fn at(year: u64, month: u64, day: u64) -> u64 {
        days_from_civil(year, month, day) * DAY_SECS
    }

    #[test]
    fn civil_dates_round_trip_across_months_years_and_leap_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(LEAP_DAY / DAY_SECS), (2024, 2, 29));
        assert_eq!(civil_from_days(LEAP_DAY / DAY_SECS + 1), (2024, 3, 1));
        assert_eq!(
            at(2000, 3, 1) - at(2000, 2, 28),
            2 * DAY_SECS,
            "2000 is a leap year"
        );
        assert_eq!(at(2100, 3, 1) - at(2100, 2, 28), DAY_SECS, "2100 is not");
        assert_eq!(at(2025, 1, 1) - at(2024, 12, 31), DAY_SECS);
        for days in (0..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn budgets_renew_at_the_start_of_the_utc_calendar_period() {
        let now = LEAP_DAY;
        let start = |renewal: Renewal| renewal.calendar_start(now);
        assert_eq!(start(Renewal::Daily), at(2024, 2, 29));
        assert_eq!(start(Renewal::Weekly), at(2024, 2, 26), "the Monday before");
        assert_eq!(start(Renewal::Monthly), at(2024, 2, 1));
        assert_eq!(start(Renewal::Yearly), at(2024, 1, 1));
        // A Monday is its own week's start; a Sunday belongs to the week before.
        assert_eq!(
            Renewal::Weekly.calendar_start(at(2024, 3, 4)),
            at(2024, 3, 4)
        );
        assert_eq!(
            Renewal::Weekly.calendar_start(at(2024, 3, 4) - 1),
            at(2024, 2, 26)
        );
        // New Year's Eve to New Year's Day renews the day, month and year budgets; the week
        // (Tuesday to Wednesday) goes on, and renews on Monday.
        let eve = at(2024, 12, 31) + 23 * 3_600;
        assert_eq!(Renewal::Weekly.renewed_at(eve, at(2025, 1, 5)), None);
        assert_eq!(
            Renewal::Weekly.renewed_at(eve, at(2025, 1, 6)),
            Some(at(2025, 1, 6))
        );
        for renewal in [Renewal::Daily, Renewal::Monthly, Renewal::Yearly] {
            assert_eq!(
                renewal.renewed_at(eve, at(2025, 1, 1)),
                Some(at(2025, 1, 1)),
                "{renewal}"
            );
        }
        // Not from when it was made: spent at 23:00, the day budget is back at midnight.
        assert_eq!(Renewal::Daily.renewed_at(eve, eve + 3_599), None);
        assert_eq!(
            Renewal::Monthly.renewed_at(at(2024, 2, 1), at(2024, 2, 29)),
            None
        );
        assert_eq!(
            Renewal::Monthly.renewed_at(LEAP_DAY, at(2024, 3, 1)),
            Some(at(2024, 3, 1))
        );
        assert_eq!(
            Renewal::Yearly.renewed_at(at(2024, 1, 1), at(2024, 12, 31)),
            None
        );
        assert_eq!(Renewal::Never.renewed_at(0, u64::MAX), None);
        assert_eq!(
            Renewal::Daily.renewed_at(now, now - DAY_SECS),
            None,
            "clock set back"
        );
    }

    #[test]
    fn a_daily_budget_spent_today_is_refused_until_midnight_utc() {
        let mut store = ConnectionStore::in_memory();
        let app = key();
        let budget = Budget {
            limit_msat: 10_000,
            renewal: Renewal::Daily,
        };
        let paired = at(2024, 2, 28) + 20 * 3_600;
        store.add("app", app, Some(budget), None, paired);
        store.reserve(&app, 10_000, paired).expect("fits");
        let before_midnight = at(2024, 2, 29) - 1;
        assert_eq!(
            store.reserve(&app, 1, before_midnight),
            Err(SpendRefusal::QuotaExceeded { left_msat: 0 })
        );
        assert_eq!(store.left_msat(&app, before_midnight), Some(0));
        // Four hours after pairing, not twenty-four: the calendar day turned.
        assert_eq!(store.left_msat(&app, at(2024, 2, 29)), Some(10_000));
        store
            .reserve(&app, 10_000, at(2024, 2, 29))
            .expect("renewed");
        assert_eq!(
            store.reserve(&app, 1, LEAP_DAY),
            Err(SpendRefusal::QuotaExceeded { left_msat: 0 })
        );
        let never = key();
        let once = Budget {
            limit_msat: 5,
            renewal: Renewal::Never,
        };
        store.add("once", never, Some(once), None, 0);
        store.reserve(&never, 5, 0).expect("fits");
        assert!(
            store.reserve(&never, 1, u64::MAX / 2).is_err(),
            "never renews"
        );
    }

    #[test]
    fn an_expired_connection_is_refused_like_a_revoked_one() {
        let mut store = ConnectionStore::in_memory();
        let app = key();
        let budget = Budget {
            limit_msat: 10_000,
            renewal: Renewal::Daily,
        };
        store.add("app", app, Some(budget), Some(100), 0);
        assert!(store.active(&app, 99).is_some());
        store.reserve(&app, 1, 99).expect("not expired yet");
        assert!(store.active(&app, 100).is_none());
        assert_eq!(store.reserve(&app, 1, 100), Err(SpendRefusal::Unauthorized));
        assert_eq!(store.left_msat(&app, 100), None);
        assert!(store.list()[0].expired(100));
    }

    #[test]
    fn old_stores_without_paid_invoices_still_open() {
        let app = key();
        let old = format!(
            r#"{{"connections":{{"{hex}":{{"name":"old","client":"{hex}","budget":null,
            "spent_msat":0,"period_start":0,"revoked":false,"created_at":0,"paid":["bb"]}}}}}}"#,
            hex = app.to_hex(),
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("connections.json");
        std::fs::write(&path, old).expect("write");
        let store = ConnectionStore::open(&path).expect("an old store opens");
        assert!(store.sees(&app, "bb", false));
        assert_eq!(store.paid_invoice(&app, "bb"), None);
    }

    #[test]
    fn old_stores_with_a_sliding_period_still_open() {
        let app = key();
        let old = format!(
            r#"{{"connections":{{"{hex}":{{"name":"old","client":"{hex}",
            "budget":{{"limit_msat":1000,"period_secs":86400}},"spent_msat":600,
            "period_start":{start},"revoked":false,"created_at":{start}}}}},
            "made":{{"aa":{{"client":"{hex}","bolt11":"lnbcrt1","amount_msat":null,
            "description":null,"created_at":0,"expires_at":1}}}}}}"#,
            hex = app.to_hex(),
            start = LEAP_DAY,
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("connections.json");
        std::fs::write(&path, old).expect("write");
        let mut store = ConnectionStore::open(&path).expect("an old store opens");
        let connection = store.active(&app, LEAP_DAY).expect("active").clone();
        assert_eq!(connection.expires_at, None);
        assert_eq!(connection.budget.map(|b| b.renewal), Some(Renewal::Daily));
        assert_eq!(store.left_msat(&app, LEAP_DAY + 60), Some(400));
        assert_eq!(store.made("aa").and_then(|m| m.accepted_msat), None);
        // Another length is honoured as the sliding period it was.
        let budget: Budget =
            serde_json::from_str(r#"{"limit_msat":1,"period_secs":3600}"#).expect("budget");
        assert_eq!(budget.renewal, Renewal::EverySecs(3_600));
        // And what is written now reads back.
        store.reserve(&app, 100, LEAP_DAY + 60).expect("fits");
        store.save().expect("save");
        let reopened = ConnectionStore::open(&path).expect("reopen");
        assert_eq!(reopened.list(), store.list());
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(r#""renewal": "daily""#), "{text}");
    }

    #[test]
    fn renewal_names_are_alby_hub_s() {
        for name in ["daily", "weekly", "monthly", "yearly", "never"] {
            let renewal: Renewal = name.parse().expect("a name");
            assert_eq!(renewal.to_string(), name);
            assert_eq!(serde_json::to_value(renewal).expect("json"), name);
        }
        assert_eq!(
            "fortnightly".parse::<Renewal>(),
            Err(UnknownRenewal("fortnightly".into()))
        );
    }
}
