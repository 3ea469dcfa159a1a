//! The Moneysocket beacons `moip up` hands out, kept as one of the node's documents
//! (`beacons.json`, or its row in PostgreSQL): each beacon's seed, its spending limit, what it
//! has spent and what is reserved for payments whose outcome is not known yet. The budget is
//! the beacon's, not a session's: a consumer that reconnects, or a restart of the node, starts
//! from what was spent. A payment's amount is reserved (and written down) before it is sent,
//! counted as spent with its fee once paid, and given back only when the node says it failed
//! for good; a payment whose wait timed out stays reserved until the node knows its outcome
//! ([`Beacons::resolve_pending`] asks it, every few seconds and after a restart).
//!
//! Each beacon is also an account of its own in the community's ledger (`beacon:<id>`, with
//! the `App*` entries NWC apps use), so its consumers spend what it holds and never the node's
//! balance, which is the collateral behind the members' tokens. A payment is charged its amount
//! and fee cap (`AppSpent`) before it leaves, and what it did not cost comes back once its
//! outcome is known (`AppRefunded`); an invoice a consumer made on the beacon is written down
//! before the consumer gets it, and once paid credits the beacon (`AppReceived`, once per
//! payment hash: the ledger refuses a hash already counted as a deposit or by another app). The
//! operator funds a beacon from free collateral ([`Beacons::fund`]). The limit stays, as a cap
//! on what the account may spend.
//!
//! The limit renews at the start of each UTC calendar period (`daily`, `weekly`, `monthly`,
//! `yearly`, or `never`: NWC's [`Renewal`], the one calendar both use), so "30 000 sat a day"
//! means this calendar day. A payment's reservation counts in the period it was made, even
//! when its outcome is only known in a later one. A book written before renewal (a lifetime
//! limit) reads as `never`.
//!
//! Beacons are listed (without their seeds) and revoked by the operator; a revoked beacon, or
//! one past its `expires_at`, is no longer served, its live session ends, and its budget
//! refuses every payment.
//!
//! The document holds bearer secrets (the seeds): as a file it is written whole, beside the
//! old one, readable by its owner only, then renamed over it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moip_assets::ledger::{AnyJournal, AppChargeError, AppPaymentOutcome, Ledger, LedgerError, Op};
use moip_lightning::{LightningEvent, PaymentHash, PaymentRail, PaymentState};
use moip_moneysocket::provider::{Account, BeaconBudget, BudgetError, Reservation};
use moip_moneysocket::SharedSeed;
use moip_nwc::Renewal;
use serde::{Deserialize, Serialize};

use crate::hub::SharedLedger;
use crate::pairing::{self, PairingError, ProviderPath};
use crate::state::{Document, StateError};
use crate::util::{lock, now};

/// The layout of the document; another version is refused rather than misread.
const VERSION: u32 = 1;

/// How often payments left pending are looked up on the node.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(2);

/// How long an invoice a beacon's consumer made is watched for a payment: twice the hour it is
/// valid for (the node refuses a payment to an expired invoice), after which it is forgotten.
const WATCH_INVOICE_SECS: u64 = 2 * 3600;

/// The beacon's account in the ledger (the ledger checks the form).
fn app(id: &str) -> String {
    format!("beacon:{id}")
}

/// Why a beacon could not be made, read, or revoked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BeaconError {
    /// The document could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The document is not a beacon book this version reads.
    #[error("{place}: {reason}")]
    Corrupt {
        /// Where it is.
        place: String,
        /// What is wrong.
        reason: String,
    },
    /// The beacon could not be encoded.
    #[error(transparent)]
    Pairing(#[from] PairingError),
    /// No beacon has this id.
    #[error("no beacon {0}")]
    Unknown(String),
    /// The beacon was revoked: it is not funded any more.
    #[error("beacon {0} was revoked")]
    Revoked(String),
    /// The beacon has expired: it is not funded any more.
    #[error("beacon {0} has expired")]
    Expired(String),
    /// A new beacon's expiry is not in the future.
    #[error("expires_at {0}: a time in the future, Unix seconds")]
    ExpiryPast(u64),
    /// The ledger refused the entry (for funding: not that much free collateral).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// One beacon as the operator sees it (never its seed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BeaconView {
    /// Its id (not a secret).
    pub id: String,
    /// Most its apps may spend per period, fees included, in msat (`null`: no limit).
    pub limit_msat: Option<u64>,
    /// When the limit renews, at the start of the UTC calendar period: `daily`, `weekly`
    /// (Monday), `monthly`, `yearly` or `never` (a lifetime limit).
    pub budget_renewal: String,
    /// What its apps have spent in the current period, fees included, in msat.
    pub spent_msat: u64,
    /// What is reserved for payments not yet settled (of any period), in msat.
    pub reserved_msat: u64,
    /// What the limit leaves in the current period, in msat (`null`: no limit).
    pub left_msat: Option<u64>,
    /// When it stops being served, Unix seconds (`null`: until revoked).
    pub expires_at: Option<u64>,
    /// It has expired: not served, and its budget refuses every payment.
    pub expired: bool,
    /// What its account in the ledger holds, in msat: all its apps may spend, fees included
    /// (within the limit).
    pub balance_msat: u64,
    /// When it was made, Unix seconds.
    pub created_at: u64,
    /// When it was revoked, Unix seconds (`null`: in service).
    pub revoked_at: Option<u64>,
}

#[derive(Serialize, Deserialize, Default)]
struct Book {
    version: u32,
    next_reservation: u64,
    beacons: Vec<Record>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Record {
    id: String,
    /// The shared seed, hex: a bearer secret.
    seed: String,
    limit_msat: Option<u64>,
    /// When the limit renews; a book from before renewal had a lifetime limit: `never`.
    #[serde(default = "lifetime")]
    renewal: Renewal,
    /// When the current period began, Unix seconds (0 in a book from before renewal).
    #[serde(default)]
    period_start: u64,
    /// Spent in the current period.
    spent_msat: u64,
    created_at: u64,
    revoked_at: Option<u64>,
    /// From then on (Unix seconds) it is treated as revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    reserved: Vec<Held>,
    /// Invoices its consumers made, not yet seen paid.
    #[serde(default)]
    invoices: Vec<Invoiced>,
}

/// An invoice a beacon's consumer made: a payment to it is the beacon's.
#[derive(Clone, Serialize, Deserialize)]
struct Invoiced {
    /// Its payment hash, hex.
    payment_hash: String,
    /// When it was made, Unix seconds.
    made_at: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Held {
    id: u64,
    /// The payment's hash, hex, to ask the node about it.
    payment_hash: Option<String>,
    amount_msat: u64,
    /// The most routing fee it may cost, reserved with the amount.
    #[serde(default)]
    max_fee_msat: u64,
    /// Its outcome was not known when the provider stopped waiting.
    unresolved: bool,
    /// What the beacon's ledger account was charged for it (amount and fee cap); 0 for a
    /// payment of a book written before beacons had accounts.
    #[serde(default)]
    charged_msat: u64,
    /// The start of the period it was made in: it counts there, and in no later period.
    #[serde(default)]
    period_start: u64,
}

/// The renewal of a limit written before limits renewed.
fn lifetime() -> Renewal {
    Renewal::Never
}

impl Record {
    /// The current period at `now`: its start, and what was spent in it (nothing, if the
    /// period the record last saw has ended).
    fn period(&self, now: u64) -> (u64, u64) {
        match self.renewal.renewed_at(self.period_start, now) {
            Some(start) => (start, 0),
            None => (self.period_start, self.spent_msat),
        }
    }

    /// Moves the record to the period holding `now`, if a new one began.
    fn renew(&mut self, now: u64) {
        (self.period_start, self.spent_msat) = self.period(now);
    }

    /// Reserved for payments made in the period starting at `period_start`.
    fn reserved_in(&self, period_start: u64) -> u64 {
        self.reserved
            .iter()
            .filter(|h| h.period_start == period_start)
            .map(|h| h.amount_msat.saturating_add(h.max_fee_msat))
            .sum()
    }

    /// Spent and reserved in the period holding `now`.
    fn committed_msat(&self, now: u64) -> u64 {
        let (start, spent) = self.period(now);
        spent.saturating_add(self.reserved_in(start))
    }

    /// What the limit leaves at `now`; `None` without a limit.
    fn left_msat(&self, now: u64) -> Option<u64> {
        Some(self.limit_msat?.saturating_sub(self.committed_msat(now)))
    }

    fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// Neither revoked nor expired at `now`: served, and its budget may pay.
    fn is_active(&self, now: u64) -> bool {
        self.revoked_at.is_none() && !self.expired(now)
    }

    /// Admits a payment of `amount_msat` with a routing fee of at most `max_fee_msat` at
    /// `now`, moving the record to the current period first. Returns the period's start, the
    /// one the reservation counts in.
    fn admit(&mut self, amount_msat: u64, max_fee_msat: u64, now: u64) -> Result<u64, BudgetError> {
        if self.revoked_at.is_some() {
            return Err(BudgetError::Revoked);
        }
        if self.expired(now) {
            return Err(BudgetError::Expired);
        }
        self.renew(now);
        if let Some(max) = self.limit_msat {
            let committed = self.committed_msat(now);
            if committed
                .saturating_add(amount_msat)
                .saturating_add(max_fee_msat)
                > max
            {
                return Err(BudgetError::Exhausted {
                    left_msat: max.saturating_sub(committed),
                });
            }
        }
        Ok(self.period_start)
    }

    fn view(&self, now: u64) -> BeaconView {
        let (_, spent_msat) = self.period(now);
        BeaconView {
            id: self.id.clone(),
            limit_msat: self.limit_msat,
            budget_renewal: self.renewal.to_string(),
            spent_msat,
            reserved_msat: self
                .reserved
                .iter()
                .map(|h| h.amount_msat.saturating_add(h.max_fee_msat))
                .sum(),
            left_msat: self.left_msat(now),
            expires_at: self.expires_at,
            expired: self.expired(now),
            balance_msat: 0,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// The node's beacons and their budgets.
pub struct Beacons {
    document: Document,
    book: Mutex<Book>,
    rail: Arc<dyn PaymentRail>,
    /// The community's ledger, where each beacon's account is.
    ledger: SharedLedger,
    /// The task serving each beacon, ended on revocation.
    serving: Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Writes `text` as the document: as a file, created readable by its owner only, synced and
/// renamed over the old one (the old or the new one whatever happens); as a row, in one
/// statement.
fn write_private(document: &Document, text: &str) -> Result<(), StateError> {
    let Document::File(path) = document else {
        return document.write(text);
    };
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |e: std::io::Error| StateError {
        place: path.display().to_string(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension("tmp");
    // A leftover keeps its old mode when opened again: start from nothing.
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&tmp).map_err(failed)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(failed)
}

/// The book in `document`, empty if it was never written.
fn read_book(document: &Document) -> Result<Book, BeaconError> {
    let Some(text) = document.read()? else {
        return Ok(Book {
            version: VERSION,
            ..Book::default()
        });
    };
    let book: Book = serde_json::from_str(&text).map_err(|e| BeaconError::Corrupt {
        place: document.place(),
        reason: e.to_string(),
    })?;
    if book.version != VERSION {
        return Err(BeaconError::Corrupt {
            place: document.place(),
            reason: format!("version {} (this moip reads {VERSION})", book.version),
        });
    }
    Ok(book)
}

impl Beacons {
    /// The beacons kept in `document` (none if it was never written), paying through `rail`,
    /// their accounts in `ledger`.
    /// Every reservation found is a payment of a previous run, whose outcome is now the node's
    /// to tell: all are left for [`Beacons::resolve_pending`].
    ///
    /// # Errors
    /// [`BeaconError`] when the document cannot be read or is not a beacon book.
    pub fn open(
        document: Document,
        rail: Arc<dyn PaymentRail>,
        ledger: SharedLedger,
    ) -> Result<Arc<Beacons>, BeaconError> {
        let mut book = read_book(&document)?;
        for record in &mut book.beacons {
            for held in &mut record.reserved {
                held.unresolved = true;
            }
        }
        Ok(Arc::new(Beacons {
            document,
            book: Mutex::new(book),
            rail,
            ledger,
            serving: Mutex::new(HashMap::new()),
        }))
    }

    fn save(&self, book: &Book) -> Result<(), StateError> {
        let text = serde_json::to_string(book).map_err(|e| StateError {
            place: self.document.place(),
            reason: e.to_string(),
        })?;
        write_private(&self.document, &text)
    }

    /// Writes the book after a change that must not be lost but cannot be undone (a payment
    /// settled or failed): the change stays in memory and goes out with the next write.
    fn save_or_log(&self, book: &Book) {
        if let Err(e) = self.save(book) {
            tracing::error!("the beacon book: {e}");
        }
    }

    /// A new beacon on the relay at `relay_url` with a limit of `limit_msat` (none: no limit)
    /// renewing as `renewal` says, served until `expires_at` (none: until revoked), written
    /// down, then served through `path` from now on. Returns its id and the beacon.
    ///
    /// # Errors
    /// [`BeaconError::ExpiryPast`] for an expiry not in the future; [`BeaconError`] when the
    /// relay URL cannot go in a beacon or the book cannot be written.
    pub fn create(
        self: &Arc<Self>,
        relay_url: &str,
        path: ProviderPath,
        account: &Arc<Account>,
        limit_msat: Option<u64>,
        renewal: Renewal,
        expires_at: Option<u64>,
    ) -> Result<(String, String), BeaconError> {
        let made_at = now();
        if let Some(at) = expires_at.filter(|at| *at <= made_at) {
            return Err(BeaconError::ExpiryPast(at));
        }
        let seed = SharedSeed::from_bytes(rand::random());
        let uri = pairing::beacon_uri(relay_url, seed)?;
        let id = hex(&rand::random::<[u8; 8]>());
        {
            let mut book = lock(&self.book);
            book.beacons.push(Record {
                id: id.clone(),
                seed: seed.to_hex(),
                limit_msat,
                renewal,
                period_start: made_at,
                spent_msat: 0,
                created_at: made_at,
                revoked_at: None,
                expires_at,
                reserved: Vec::new(),
                invoices: Vec::new(),
            });
            if let Err(e) = self.save(&book) {
                book.beacons.pop();
                return Err(e.into());
            }
        }
        self.serve(&id, seed, relay_url, path, account);
        Ok((id, uri))
    }

    fn serve(
        self: &Arc<Self>,
        id: &str,
        seed: SharedSeed,
        relay_url: &str,
        path: ProviderPath,
        account: &Arc<Account>,
    ) {
        let budget: Arc<dyn BeaconBudget> = Arc::new(Budget {
            beacons: Arc::clone(self),
            id: id.to_owned(),
        });
        let task = tokio::spawn(pairing::serve_beacon(
            relay_url.to_owned(),
            path,
            seed,
            Arc::clone(account),
            budget,
        ));
        lock(&self.serving).insert(id.to_owned(), task.abort_handle());
    }

    /// Serves every beacon neither revoked nor expired (after a restart).
    pub fn serve_all(
        self: &Arc<Self>,
        relay_url: &str,
        path: &ProviderPath,
        account: &Arc<Account>,
    ) {
        let live: Vec<(String, String)> = lock(&self.book)
            .beacons
            .iter()
            .filter(|r| r.is_active(now()))
            .map(|r| (r.id.clone(), r.seed.clone()))
            .collect();
        for (id, seed) in live {
            match seed.parse::<SharedSeed>() {
                Ok(seed) => self.serve(&id, seed, relay_url, path.clone(), account),
                Err(e) => tracing::error!("beacon {id}: its seed does not read: {e}"),
            }
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger<AnyJournal>> {
        lock(self.ledger.as_ref())
    }

    /// What beacon `id`'s account holds, msat.
    fn balance_msat(&self, id: &str) -> u64 {
        self.ledger().state().app_balance_msat(&app(id))
    }

    /// `record`'s view with its account's balance. Called with the book's lock released: only
    /// a payment's charge and its conclusion hold both, always the book's first.
    fn view(&self, record: BeaconView) -> BeaconView {
        BeaconView {
            balance_msat: self.balance_msat(&record.id),
            ..record
        }
    }

    /// Every beacon, oldest first.
    pub fn list(&self) -> Vec<BeaconView> {
        let at = now();
        let views: Vec<BeaconView> = lock(&self.book)
            .beacons
            .iter()
            .map(|r| r.view(at))
            .collect();
        views.into_iter().map(|v| self.view(v)).collect()
    }

    /// Moves `sats` of the community's free collateral to beacon `id`'s account: what its
    /// consumers may spend from then on (within its limit). Collateral backing tokens is never
    /// moved.
    ///
    /// # Errors
    /// [`BeaconError::Unknown`] for an id that names no beacon, [`BeaconError::Revoked`] or
    /// [`BeaconError::Expired`] for one no longer served, [`BeaconError::Ledger`] when the ledger refuses (0 sat, or not that much
    /// free collateral); nothing changes then.
    pub fn fund(&self, id: &str, sats: u64) -> Result<BeaconView, BeaconError> {
        let record = lock(&self.book)
            .beacons
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.view(now()))
            .ok_or_else(|| BeaconError::Unknown(id.to_owned()))?;
        if record.revoked_at.is_some() {
            return Err(BeaconError::Revoked(id.to_owned()));
        }
        if record.expired {
            return Err(BeaconError::Expired(id.to_owned()));
        }
        self.ledger().commit(Op::AppFund { app: app(id), sats })?;
        Ok(self.view(record))
    }

    /// Revokes beacon `id`: written down first, then its budget refuses every payment, its
    /// serving ends (the live session with it) and it is not served after a restart. Payments
    /// already in flight keep their reservations until their outcome is known. Revoking a
    /// revoked beacon changes nothing.
    ///
    /// # Errors
    /// [`BeaconError::Unknown`] for an id that names no beacon; [`BeaconError::State`] when
    /// the book cannot be written (the beacon then stays in service).
    pub fn revoke(&self, id: &str) -> Result<BeaconView, BeaconError> {
        let view = {
            let mut book = lock(&self.book);
            let at = book
                .beacons
                .iter()
                .position(|r| r.id == id)
                .ok_or_else(|| BeaconError::Unknown(id.to_owned()))?;
            if book.beacons[at].revoked_at.is_none() {
                book.beacons[at].revoked_at = Some(now());
                if let Err(e) = self.save(&book) {
                    book.beacons[at].revoked_at = None;
                    return Err(e.into());
                }
            }
            book.beacons[at].view(now())
        };
        if let Some(task) = lock(&self.serving).remove(id) {
            task.abort();
        }
        Ok(self.view(view))
    }

    /// Ends the serving (and the live session) of every beacon that has expired by `now`.
    fn end_expired(&self, now: u64) {
        let expired: Vec<String> = lock(&self.book)
            .beacons
            .iter()
            .filter(|r| r.expired(now))
            .map(|r| r.id.clone())
            .collect();
        let mut serving = lock(&self.serving);
        for id in expired {
            if let Some(task) = serving.remove(&id) {
                tracing::info!("beacon {id} expired: no longer served");
                task.abort();
            }
        }
    }

    /// Looks up, on the node, every payment left pending (timed out, or from before a
    /// restart): paid → spent with its fee; failed for good → given back; still in flight, or
    /// unknown to the node → still reserved.
    pub async fn resolve_pending(&self) {
        let pending: Vec<(String, u64, [u8; 32])> = lock(&self.book)
            .beacons
            .iter()
            .flat_map(|r| {
                r.reserved.iter().filter(|h| h.unresolved).filter_map(|h| {
                    Some((r.id.clone(), h.id, unhex32(h.payment_hash.as_deref()?)?))
                })
            })
            .collect();
        for (beacon, held, hash) in pending {
            let record = match self.rail.payment_by_hash(PaymentHash(hash)).await {
                Ok(Some(record)) if !record.inbound => record,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!("looking up a beacon's pending payment: {e}");
                    continue;
                }
            };
            let fee = match record.state {
                PaymentState::Pending => continue,
                PaymentState::Succeeded => Some(record.fee_paid_msat.unwrap_or(0)),
                PaymentState::Failed => None,
            };
            self.finish(&beacon, held, fee);
        }
        self.resolve_invoices().await;
    }

    /// Looks up, on the node, every invoice a beacon's consumer made and that is not yet seen
    /// paid: one paid (while the node's event was missed, e.g. across a restart) is credited;
    /// one unpaid long after it expired is forgotten.
    async fn resolve_invoices(&self) {
        let watched: Vec<(String, u64, [u8; 32])> = lock(&self.book)
            .beacons
            .iter()
            .flat_map(|r| {
                r.invoices
                    .iter()
                    .filter_map(|i| Some((r.id.clone(), i.made_at, unhex32(&i.payment_hash)?)))
            })
            .collect();
        for (beacon, made_at, hash) in watched {
            match self.rail.payment_by_hash(PaymentHash(hash)).await {
                Ok(Some(record)) if record.inbound && record.state == PaymentState::Succeeded => {
                    if let Some(amount_msat) = record.amount_msat {
                        self.credit(hash, amount_msat);
                    }
                }
                Ok(_) if now().saturating_sub(made_at) > WATCH_INVOICE_SECS => {
                    let mut book = lock(&self.book);
                    if let Some(record) = book.beacons.iter_mut().find(|r| r.id == beacon) {
                        record.invoices.retain(|i| i.payment_hash != hex(&hash));
                        self.save_or_log(&book);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("looking up a beacon's invoice: {e}"),
            }
        }
    }

    /// A payment of `amount_msat` arrived for `hash`: if a beacon's consumer made the invoice,
    /// the beacon's account is credited (`AppReceived`) and the invoice no longer watched. The
    /// ledger counts each payment hash once, and refuses one already counted as a community
    /// deposit or by another app: then the beacon gets nothing.
    fn credit(&self, hash: [u8; 32], amount_msat: u64) {
        let hash_hex = hex(&hash);
        let owner = lock(&self.book)
            .beacons
            .iter()
            .find(|r| r.invoices.iter().any(|i| i.payment_hash == hash_hex))
            .map(|r| r.id.clone());
        let Some(beacon) = owner else { return };
        let counted = self.ledger().commit(Op::AppReceived {
            app: app(&beacon),
            msat: amount_msat,
            hash: hash_hex.clone(),
        });
        match counted {
            // Counted now, or before (by this beacon, or refused as someone else's): done.
            Ok(_) | Err(LedgerError::DuplicateDeposit(_)) => {}
            Err(e) => {
                // Kept watched: the next look-up tries again.
                tracing::warn!("beacon {beacon}: its received payment {hash_hex}: {e}");
                return;
            }
        }
        let mut book = lock(&self.book);
        if let Some(record) = book.beacons.iter_mut().find(|r| r.id == beacon) {
            record.invoices.retain(|i| i.payment_hash != hash_hex);
            self.save_or_log(&book);
        }
    }

    /// Credits each beacon's invoices as the node reports them paid, and runs
    /// [`Beacons::resolve_pending`] and ends the serving of expired beacons every
    /// [`RESOLVE_EVERY`], for as long as the runtime runs.
    pub async fn run(self: Arc<Self>) {
        let mut events = self.rail.events();
        let mut listening = true;
        let mut every = tokio::time::interval(RESOLVE_EVERY);
        loop {
            tokio::select! {
                event = events.recv(), if listening => match event {
                    Ok(LightningEvent::PaymentReceived { payment_hash, amount_msat, .. }) => {
                        self.credit(payment_hash.0, amount_msat);
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    // The node's events ended: the look-ups carry on alone.
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => listening = false,
                },
                _ = every.tick() => {
                    self.end_expired(now());
                    self.resolve_pending().await;
                }
            }
        }
    }

    /// Ends reservation `held` of beacon `beacon`: spent with `Some(fee)`, given back with
    /// `None`; the beacon's account gets back what the payment did not cost of its charge.
    /// Returns what the beacon has spent.
    fn finish(&self, beacon: &str, held: u64, fee_msat: Option<u64>) -> u64 {
        let mut book = lock(&self.book);
        let Some(record) = book.beacons.iter_mut().find(|r| r.id == beacon) else {
            return 0;
        };
        let Some(at) = record.reserved.iter().position(|h| h.id == held) else {
            return record.spent_msat;
        };
        let held = record.reserved.remove(at);
        let cost_msat = match fee_msat {
            Some(fee) => held.amount_msat.saturating_add(fee),
            None => 0,
        };
        // Spent in the period it was reserved in: one that has ended takes nothing of this one.
        record.renew(now());
        if held.period_start == record.period_start {
            record.spent_msat = record.spent_msat.saturating_add(cost_msat);
        }
        let spent = record.spent_msat;
        self.save_or_log(&book);
        // Concluded once, under the book's lock (taken before the ledger's, as a charge
        // does), so nobody sees the reservation gone and its refund not yet made. A payment
        // of a book from before beacons had accounts was never charged.
        if let Some(hash) = held.payment_hash.filter(|_| held.charged_msat > 0) {
            let outcome = match fee_msat {
                Some(_) => AppPaymentOutcome::Paid {
                    spent_msat: cost_msat,
                },
                None => AppPaymentOutcome::Failed,
            };
            if let Err(e) = self.ledger().conclude_app_payment(&hash, outcome) {
                tracing::warn!("beacon {beacon}: concluding payment {hash}: {e}");
            }
        }
        spent
    }
}

/// One beacon's budget, kept in the book.
struct Budget {
    beacons: Arc<Beacons>,
    id: String,
}

impl BeaconBudget for Budget {
    fn reserve(
        &self,
        amount_msat: u64,
        max_fee_msat: u64,
        bolt11: &str,
    ) -> Result<Reservation, BudgetError> {
        // The ledger charges a payment by its hash: an invoice that does not read is not paid.
        let payment_hash = self
            .beacons
            .rail
            .decode_invoice(bolt11)
            .map(|invoice| hex(&invoice.payment_hash.0))
            .map_err(|e| BudgetError::InvalidInvoice(e.to_string()))?;
        let beacons = &self.beacons;
        let mut book = lock(&beacons.book);
        let id = book.next_reservation + 1;
        let record = book
            .beacons
            .iter_mut()
            .find(|r| r.id == self.id)
            .ok_or(BudgetError::Revoked)?;
        let period_start = record.admit(amount_msat, max_fee_msat, now())?;
        // The beacon's own account covers the amount and the fee cap, or nothing is sent. The
        // ledger stays locked until it is charged, so two payments cannot both count on it.
        let wanted_msat = amount_msat.saturating_add(max_fee_msat);
        let mut ledger = beacons.ledger();
        let available_msat = ledger.state().app_balance_msat(&app(&self.id));
        if wanted_msat > available_msat {
            return Err(BudgetError::Insufficient {
                available_msat,
                wanted_msat,
            });
        }
        record.reserved.push(Held {
            id,
            payment_hash: Some(payment_hash.clone()),
            amount_msat,
            max_fee_msat,
            unresolved: false,
            charged_msat: wanted_msat,
            period_start,
        });
        book.next_reservation = id;
        // Written down before the payment goes out, or the payment is not made; the book
        // first, so a crash before the charge leaves a reservation the ledger has nothing to
        // conclude for, never a charge no reservation will conclude.
        let charged = beacons
            .save(&book)
            .map_err(|e| e.to_string())
            .map_err(BudgetError::Store)
            .and_then(|()| {
                ledger
                    .charge_app(&app(&self.id), wanted_msat, &payment_hash)
                    .map_err(|e| match e {
                        AppChargeError::Insufficient {
                            available_msat,
                            wanted_msat,
                        } => BudgetError::Insufficient {
                            available_msat,
                            wanted_msat,
                        },
                        e => BudgetError::Store(e.to_string()),
                    })
            });
        if let Err(e) = charged {
            if let Some(record) = book.beacons.iter_mut().find(|r| r.id == self.id) {
                record.reserved.retain(|h| h.id != id);
            }
            beacons.save_or_log(&book);
            return Err(e);
        }
        Ok(Reservation {
            id,
            amount_msat,
            max_fee_msat,
        })
    }

    fn settle(&self, reservation: Reservation, fee_msat: u64) -> u64 {
        self.beacons
            .finish(&self.id, reservation.id, Some(fee_msat))
    }

    fn release(&self, reservation: Reservation) {
        self.beacons.finish(&self.id, reservation.id, None);
    }

    fn unresolved(&self, reservation: Reservation) {
        let mut book = lock(&self.beacons.book);
        let held = book
            .beacons
            .iter_mut()
            .find(|r| r.id == self.id)
            .and_then(|r| r.reserved.iter_mut().find(|h| h.id == reservation.id));
        if let Some(held) = held {
            held.unresolved = true;
            self.beacons.save_or_log(&book);
        }
    }

    /// The beacon's account, within what its limit leaves: its consumers are never told the
    /// node's balance.
    fn balance_msat(&self) -> Option<u64> {
        let left_msat = lock(&self.beacons.book)
            .beacons
            .iter()
            .find(|r| r.id == self.id)
            .and_then(|r| r.left_msat(now()));
        let balance = self.beacons.balance_msat(&self.id);
        Some(left_msat.map_or(balance, |left| left.min(balance)))
    }

    /// In service and its limit leaves something: a consumer is told `payer` only then (the
    /// account's balance is checked by the provider through [`BeaconBudget::balance_msat`]).
    fn may_pay(&self) -> bool {
        let now = now();
        lock(&self.beacons.book)
            .beacons
            .iter()
            .find(|r| r.id == self.id)
            .is_some_and(|r| r.is_active(now) && r.left_msat(now) != Some(0))
    }

    /// In service (neither revoked nor expired): a consumer is told `payee` only then.
    fn may_receive(&self) -> bool {
        let now = now();
        lock(&self.beacons.book)
            .beacons
            .iter()
            .find(|r| r.id == self.id)
            .is_some_and(|r| r.is_active(now))
    }

    /// Written down before the consumer gets the invoice: a payment to it is the beacon's.
    fn invoiced(&self, payment_hash: [u8; 32]) -> Result<(), BudgetError> {
        let mut book = lock(&self.beacons.book);
        let record = book
            .beacons
            .iter_mut()
            .find(|r| r.id == self.id)
            .ok_or(BudgetError::Revoked)?;
        record.invoices.push(Invoiced {
            payment_hash: hex(&payment_hash),
            made_at: now(),
        });
        if let Err(e) = self.beacons.save(&book) {
            if let Some(record) = book.beacons.iter_mut().find(|r| r.id == self.id) {
                record.invoices.pop();
            }
            return Err(BudgetError::Store(e.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moip_assets::ledger::{CollateralSource, SqliteJournal, TokenInfo};
    use moip_lightning::testing::PaperRail;

    const ID: &str = "0123456789abcdef";

    /// Beacons over a real ledger holding 10 000 sat of collateral, 6 000 of them backing
    /// tokens, and beacon [`ID`] without a limit.
    fn beacons(dir: &std::path::Path) -> Arc<Beacons> {
        let token = TokenInfo {
            id: "t".into(),
            name: "t".into(),
            symbol: "T".into(),
        };
        let journal = SqliteJournal::open(&dir.join("ledger.sqlite")).expect("journal");
        let mut ledger = moip_assets::ledger::Ledger::create(AnyJournal::Sqlite(journal), token)
            .expect("ledger");
        ledger
            .commit(Op::Deposit {
                sats: 10_000,
                source: CollateralSource::Lightning {
                    payment_hash: "dd".repeat(32),
                },
            })
            .expect("deposit");
        ledger
            .commit(Op::Mint {
                to: moip_assets::ledger::AccountId::from_bytes([1; 32]),
                amount: 6_000,
            })
            .expect("mint");
        let document = Document::File(dir.join("beacons.json"));
        let beacons = Beacons::open(
            document,
            Arc::new(PaperRail::default()),
            Arc::new(Mutex::new(ledger)),
        )
        .expect("beacons");
        lock(&beacons.book).beacons.push(Record {
            id: ID.into(),
            seed: "11".repeat(16),
            limit_msat: None,
            renewal: Renewal::Never,
            period_start: 1,
            spent_msat: 0,
            created_at: 1,
            revoked_at: None,
            expires_at: None,
            reserved: Vec::new(),
            invoices: Vec::new(),
        });
        beacons
    }

    /// 2026-12-06 20:00 UTC, and the midnight after it.
    const EVENING: u64 = 1_796_587_200;
    const MIDNIGHT: u64 = 1_796_601_600;

    fn daily(limit_msat: u64, at: u64) -> Record {
        Record {
            id: ID.into(),
            seed: "11".repeat(16),
            limit_msat: Some(limit_msat),
            renewal: Renewal::Daily,
            period_start: at,
            spent_msat: 0,
            created_at: at,
            revoked_at: None,
            expires_at: None,
            reserved: Vec::new(),
            invoices: Vec::new(),
        }
    }

    fn held(id: u64, amount_msat: u64, period_start: u64) -> Held {
        Held {
            id,
            payment_hash: Some(hex(&[u8::try_from(id).unwrap_or(0); 32])),
            amount_msat,
            max_fee_msat: 0,
            unresolved: true,
            charged_msat: 0,
            period_start,
        }
    }

    /// A daily limit spent at 20:00 UTC is refused for the rest of that day and renews at
    /// 00:00 UTC (NWC's calendar, `moip_nwc::Renewal`); a payment whose outcome is still
    /// unknown counts in the day it was made, and not in the next.
    #[test]
    fn a_daily_beacon_limit_spent_is_refused_until_midnight_utc() {
        let mut record = daily(30_000, EVENING - 3_600);
        // The period a beacon made today starts when it was made.
        assert_eq!(record.admit(20_000, 1_000, EVENING), Ok(EVENING - 3_600));
        record.spent_msat = 21_000;
        assert_eq!(
            record.admit(10_000, 0, MIDNIGHT - 1),
            Err(BudgetError::Exhausted { left_msat: 9_000 }),
            "refused for the rest of the day"
        );
        assert_eq!(record.view(MIDNIGHT - 1).left_msat, Some(9_000));
        // A payment reserved before midnight whose outcome is unknown: it counts that day.
        record.reserved.push(held(1, 9_000, record.period_start));
        assert_eq!(
            record.admit(1, 0, MIDNIGHT - 1),
            Err(BudgetError::Exhausted { left_msat: 0 })
        );
        // The next day starts from nothing: the unknown payment stays reserved (the account
        // still holds it) but takes nothing of the new day's limit.
        assert_eq!(record.view(MIDNIGHT).left_msat, Some(30_000));
        assert_eq!(record.admit(30_000, 0, MIDNIGHT), Ok(MIDNIGHT));
        assert_eq!(
            (record.period_start, record.spent_msat),
            (MIDNIGHT, 0),
            "renewed at 00:00 UTC"
        );
        assert_eq!(record.view(MIDNIGHT).reserved_msat, 9_000);
    }

    /// A payment reserved in a day that has ended and settled now is spent in that day: the
    /// current day's limit is untouched. One reserved today is spent today.
    #[test]
    fn a_late_outcome_is_spent_in_the_period_its_payment_was_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        let beacons = beacons(dir.path());
        let yesterday = now() - 86_400;
        {
            let mut book = lock(&beacons.book);
            let record = &mut book.beacons[0];
            *record = daily(50_000, yesterday);
            record.reserved.push(held(1, 20_000, yesterday));
        }
        assert_eq!(beacons.finish(ID, 1, Some(100)), 0, "spent yesterday");
        assert_eq!(beacons.list()[0].left_msat, Some(50_000));
        let today = lock(&beacons.book).beacons[0].period_start;
        lock(&beacons.book).beacons[0]
            .reserved
            .push(held(2, 20_000, today));
        assert_eq!(beacons.finish(ID, 2, Some(100)), 20_100, "spent today");
        assert_eq!(beacons.list()[0].left_msat, Some(29_900));
    }

    /// A beacon past its `expires_at` is refused like a revoked one: its budget pays nothing,
    /// the operator cannot fund it, the list says it expired, it is not served after a restart,
    /// and a beacon cannot be made already expired.
    #[test]
    fn an_expired_beacon_is_refused_like_a_revoked_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let beacons = beacons(dir.path());
        let mut record = daily(30_000, EVENING);
        record.expires_at = Some(MIDNIGHT);
        assert!(record.is_active(MIDNIGHT - 1));
        assert_eq!(record.admit(1, 0, MIDNIGHT - 1), Ok(EVENING));
        assert_eq!(record.admit(1, 0, MIDNIGHT), Err(BudgetError::Expired));
        assert!(!record.is_active(MIDNIGHT));

        beacons.fund(ID, 100).expect("funded while in service");
        lock(&beacons.book).beacons[0].expires_at = Some(now() - 1);
        let budget = Budget {
            beacons: Arc::clone(&beacons),
            id: ID.into(),
        };
        let bill = format!("lnbcrt{}", hex(&[7; 32]));
        assert_eq!(budget.reserve(1_000, 0, &bill), Err(BudgetError::Expired));
        assert_eq!(
            BudgetError::Expired.code(),
            moip_moneysocket::v0::message::ErrorCode::SPENDING_LIMIT
        );
        assert!(matches!(beacons.fund(ID, 1), Err(BeaconError::Expired(_))));
        let view = &beacons.list()[0];
        assert!(view.expired, "{view:?}");
        assert_eq!(
            (view.reserved_msat, view.balance_msat),
            (0, 100_000),
            "nothing charged"
        );
        assert!(!lock(&beacons.book).beacons[0].is_active(now()));
    }

    /// What the provider tells consumers as `payer`/`payee` follows the beacon: no paying once
    /// its limit is used up, neither once it has expired. (Both were always true.)
    #[test]
    fn a_beacon_says_it_pays_only_while_it_can() {
        let dir = tempfile::tempdir().expect("tempdir");
        let beacons = beacons(dir.path());
        let budget = Budget {
            beacons: Arc::clone(&beacons),
            id: ID.into(),
        };
        assert!(
            budget.may_pay() && budget.may_receive(),
            "in service, no limit"
        );
        lock(&beacons.book).beacons[0].limit_msat = Some(0);
        assert!(!budget.may_pay(), "its limit is used up");
        assert!(budget.may_receive(), "it still takes payments");
        lock(&beacons.book).beacons[0].limit_msat = None;
        lock(&beacons.book).beacons[0].expires_at = Some(now() - 1);
        assert!(!budget.may_pay() && !budget.may_receive(), "expired");
        let gone = Budget {
            beacons,
            id: "not a beacon".into(),
        };
        assert!(!gone.may_pay() && !gone.may_receive(), "unknown");
    }

    /// A book written before limits renewed and beacons expired (a lifetime limit, no period,
    /// reservations without one) still opens: its limit renews `never`, what was spent and what
    /// is reserved still count, and it never expires.
    #[test]
    fn an_old_book_with_a_lifetime_limit_still_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let document = Document::File(dir.path().join("beacons.json"));
        let old = r#"{"version":1,"next_reservation":1,"beacons":[{"id":"00","seed":"1111",
            "limit_msat":30000,"spent_msat":20000,"created_at":5,"revoked_at":null,
            "reserved":[{"id":1,"payment_hash":null,"amount_msat":5000,"unresolved":true}]}]}"#;
        document.write(old).expect("write");
        let mut book = read_book(&document).expect("an old book reads");
        let record = &mut book.beacons[0];
        assert_eq!(record.renewal, Renewal::Never);
        assert_eq!(record.expires_at, None);
        let years_later = EVENING;
        assert_eq!(record.view(years_later).left_msat, Some(5_000));
        assert_eq!(
            record.admit(5_001, 0, years_later),
            Err(BudgetError::Exhausted { left_msat: 5_000 }),
            "a lifetime limit never renews"
        );
        assert_eq!(record.view(years_later).budget_renewal, "never");
    }

    /// The operator funds a beacon from free collateral only; its payment is charged its
    /// amount and fee cap before it leaves and gets back what it did not cost; it never spends
    /// more than its account holds; an invoice made on it credits it once, and a payment hash
    /// already counted as a community deposit not at all.
    #[test]
    fn a_beacon_spends_and_receives_through_its_own_ledger_account() {
        let dir = tempfile::tempdir().expect("tempdir");
        let beacons = beacons(dir.path());
        let balance = || beacons.list()[0].balance_msat;
        let collateral = || lock(&beacons.ledger).state().collateral();
        assert!(matches!(
            beacons.fund(ID, 4_001),
            Err(BeaconError::Ledger(LedgerError::InsufficientCollateral {
                free: 4_000,
                ..
            }))
        ));
        assert!(matches!(
            beacons.fund("00", 1),
            Err(BeaconError::Unknown(_))
        ));
        assert_eq!((balance(), collateral()), (0, 10_000), "nothing moved");
        assert_eq!(
            beacons
                .fund(ID, 1_000)
                .expect("free collateral")
                .balance_msat,
            1_000_000
        );
        assert_eq!(collateral(), 9_000);

        let budget = Budget {
            beacons: Arc::clone(&beacons),
            id: ID.into(),
        };
        let bill = |n: u8| format!("lnbcrt{}", hex(&[n; 32]));
        // Over its account with the fee cap: refused, nothing reserved or charged.
        assert_eq!(
            budget.reserve(900_000, 100_001, &bill(1)),
            Err(BudgetError::Insufficient {
                available_msat: 1_000_000,
                wanted_msat: 1_000_001
            })
        );
        assert!(matches!(
            budget.reserve(1, 0, "garbage"),
            Err(BudgetError::InvalidInvoice(_))
        ));
        assert_eq!((beacons.list()[0].reserved_msat, balance()), (0, 1_000_000));
        // Within it: charged before it leaves; the fee cap it did not use comes back.
        let paid = budget
            .reserve(900_000, 100_000, &bill(1))
            .expect("all it has");
        assert_eq!((balance(), budget.balance_msat()), (0, Some(0)));
        assert_eq!(budget.settle(paid, 40_000), 940_000);
        assert_eq!(balance(), 60_000);
        // A payment that failed for good gives all of its charge back.
        let failed = budget
            .reserve(50_000, 10_000, &bill(2))
            .expect("60 000 left");
        assert_eq!(balance(), 0);
        budget.release(failed);
        assert_eq!(balance(), 60_000);
        assert_eq!(
            collateral(),
            9_000,
            "the collateral never moves with its payments"
        );

        // An invoice made on the beacon, paid: credited once.
        budget.invoiced([3; 32]).expect("written down");
        beacons.credit([3; 32], 5_000);
        beacons.credit([3; 32], 5_000);
        assert_eq!(balance(), 65_000);
        // A hash the ledger counted as the community's deposit is not also the beacon's.
        budget.invoiced([0xdd; 32]).expect("written down");
        beacons.credit([0xdd; 32], 5_000);
        assert_eq!(balance(), 65_000);
        assert!(
            lock(&beacons.book).beacons[0].invoices.is_empty(),
            "settled"
        );
        // Paid to an invoice no beacon made: nobody's.
        beacons.credit([4; 32], 5_000);
        assert_eq!(balance(), 65_000);

        beacons.revoke(ID).expect("revoked");
        assert!(matches!(beacons.fund(ID, 1), Err(BeaconError::Revoked(_))));
    }

    #[test]
    fn the_book_is_private_versioned_and_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let document = Document::File(dir.path().join("beacons.json"));
        assert_eq!(read_book(&document).expect("empty").beacons.len(), 0);
        let mut book = Book {
            version: VERSION,
            ..Book::default()
        };
        book.beacons.push(Record {
            id: "00".into(),
            seed: "11".repeat(16),
            limit_msat: Some(5),
            renewal: Renewal::Never,
            period_start: 1,
            spent_msat: 3,
            created_at: 1,
            revoked_at: None,
            expires_at: None,
            reserved: vec![Held {
                id: 1,
                payment_hash: Some("22".repeat(32)),
                amount_msat: 2,
                max_fee_msat: 1,
                unresolved: false,
                charged_msat: 3,
                period_start: 1,
            }],
            invoices: Vec::new(),
        });
        let text = serde_json::to_string(&book).expect("json");
        write_private(&document, &text).expect("write");
        write_private(&document, &text).expect("rewrite");
        let read = read_book(&document).expect("read");
        assert_eq!(read.beacons[0].view(1).reserved_msat, 3);
        assert_eq!(unhex32(&"22".repeat(32)), Some([0x22; 32]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("beacons.json"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!dir.path().join("beacons.tmp").exists());
        // Another layout is refused, not misread.
        write_private(&document, &text.replace("\"version\":1", "\"version\":2")).expect("write");
        assert!(matches!(
            read_book(&document),
            Err(BeaconError::Corrupt { .. })
        ));
    }
}
