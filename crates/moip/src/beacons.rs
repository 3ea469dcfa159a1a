//! The Moneysocket beacons `moip up` hands out, kept as one of the node's documents
//! (`beacons.json`, or its row in PostgreSQL): each beacon's seed, its spending limit, what it
//! has spent and what is reserved for payments whose outcome is not known yet. The budget is
//! the beacon's, not a session's: a consumer that reconnects, or a restart of the node, starts
//! from what was spent. A payment's amount is reserved (and written down) before it is sent,
//! counted as spent with its fee once paid, and given back only when the node says it failed
//! for good; a payment whose wait timed out stays reserved until the node knows its outcome
//! ([`Beacons::resolve_pending`] asks it, every few seconds and after a restart).
//!
//! Beacons are listed (without their seeds) and revoked by the operator; a revoked beacon is
//! no longer served, its live session ends, and its budget refuses every payment.
//!
//! The document holds bearer secrets (the seeds): as a file it is written whole, beside the
//! old one, readable by its owner only, then renamed over it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moip_lightning::{PaymentHash, PaymentRail, PaymentState};
use moip_moneysocket::provider::{Account, BeaconBudget, BudgetError, Reservation};
use moip_moneysocket::SharedSeed;
use serde::{Deserialize, Serialize};

use crate::pairing::{self, PairingError, ProviderPath};
use crate::state::{Document, StateError};
use crate::util::{lock, now};

/// The layout of the document; another version is refused rather than misread.
const VERSION: u32 = 1;

/// How often payments left pending are looked up on the node.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(2);

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
}

/// One beacon as the operator sees it (never its seed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BeaconView {
    /// Its id (not a secret).
    pub id: String,
    /// Most its apps may spend in all, fees included, in msat (`null`: no limit).
    pub limit_msat: Option<u64>,
    /// What its apps have spent, fees included, in msat.
    pub spent_msat: u64,
    /// What is reserved for payments not yet settled, in msat.
    pub reserved_msat: u64,
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
    spent_msat: u64,
    created_at: u64,
    revoked_at: Option<u64>,
    reserved: Vec<Held>,
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
}

impl Record {
    fn reserved_msat(&self) -> u64 {
        self.reserved
            .iter()
            .map(|h| h.amount_msat.saturating_add(h.max_fee_msat))
            .sum()
    }

    fn view(&self) -> BeaconView {
        BeaconView {
            id: self.id.clone(),
            limit_msat: self.limit_msat,
            spent_msat: self.spent_msat,
            reserved_msat: self.reserved_msat(),
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
    /// The beacons kept in `document` (none if it was never written), paying through `rail`.
    /// Every reservation found is a payment of a previous run, whose outcome is now the node's
    /// to tell: all are left for [`Beacons::resolve_pending`].
    ///
    /// # Errors
    /// [`BeaconError`] when the document cannot be read or is not a beacon book.
    pub fn open(
        document: Document,
        rail: Arc<dyn PaymentRail>,
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

    /// A new beacon on the relay at `relay_url` with a limit of `limit_msat` (none: no limit),
    /// written down, then served through `path` from now on. Returns its id and the beacon.
    ///
    /// # Errors
    /// [`BeaconError`] when the relay URL cannot go in a beacon or the book cannot be written.
    pub fn create(
        self: &Arc<Self>,
        relay_url: &str,
        path: ProviderPath,
        account: &Arc<Account>,
        limit_msat: Option<u64>,
    ) -> Result<(String, String), BeaconError> {
        let seed = SharedSeed::from_bytes(rand::random());
        let uri = pairing::beacon_uri(relay_url, seed)?;
        let id = hex(&rand::random::<[u8; 8]>());
        {
            let mut book = lock(&self.book);
            book.beacons.push(Record {
                id: id.clone(),
                seed: seed.to_hex(),
                limit_msat,
                spent_msat: 0,
                created_at: now(),
                revoked_at: None,
                reserved: Vec::new(),
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

    /// Serves every beacon not revoked (after a restart).
    pub fn serve_all(
        self: &Arc<Self>,
        relay_url: &str,
        path: &ProviderPath,
        account: &Arc<Account>,
    ) {
        let live: Vec<(String, String)> = lock(&self.book)
            .beacons
            .iter()
            .filter(|r| r.revoked_at.is_none())
            .map(|r| (r.id.clone(), r.seed.clone()))
            .collect();
        for (id, seed) in live {
            match seed.parse::<SharedSeed>() {
                Ok(seed) => self.serve(&id, seed, relay_url, path.clone(), account),
                Err(e) => tracing::error!("beacon {id}: its seed does not read: {e}"),
            }
        }
    }

    /// Every beacon, oldest first.
    pub fn list(&self) -> Vec<BeaconView> {
        lock(&self.book).beacons.iter().map(Record::view).collect()
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
            book.beacons[at].view()
        };
        if let Some(task) = lock(&self.serving).remove(id) {
            task.abort();
        }
        Ok(view)
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
    }

    /// Runs [`Beacons::resolve_pending`] every [`RESOLVE_EVERY`], for as long as the runtime
    /// runs.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.resolve_pending().await;
            tokio::time::sleep(RESOLVE_EVERY).await;
        }
    }

    /// Ends reservation `held` of beacon `beacon`: spent with `Some(fee)`, given back with
    /// `None`. Returns what the beacon has spent.
    fn finish(&self, beacon: &str, held: u64, fee_msat: Option<u64>) -> u64 {
        let mut book = lock(&self.book);
        let Some(record) = book.beacons.iter_mut().find(|r| r.id == beacon) else {
            return 0;
        };
        let Some(at) = record.reserved.iter().position(|h| h.id == held) else {
            return record.spent_msat;
        };
        let held = record.reserved.remove(at);
        if let Some(fee) = fee_msat {
            record.spent_msat = record
                .spent_msat
                .saturating_add(held.amount_msat)
                .saturating_add(fee);
        }
        let spent = record.spent_msat;
        self.save_or_log(&book);
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
        let payment_hash = self
            .beacons
            .rail
            .decode_invoice(bolt11)
            .ok()
            .map(|invoice| hex(&invoice.payment_hash.0));
        let beacons = &self.beacons;
        let mut book = lock(&beacons.book);
        let id = book.next_reservation + 1;
        let record = book
            .beacons
            .iter_mut()
            .find(|r| r.id == self.id)
            .ok_or(BudgetError::Revoked)?;
        if record.revoked_at.is_some() {
            return Err(BudgetError::Revoked);
        }
        let committed = record.spent_msat.saturating_add(record.reserved_msat());
        if let Some(max) = record.limit_msat {
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
        record.reserved.push(Held {
            id,
            payment_hash,
            amount_msat,
            max_fee_msat,
            unresolved: false,
        });
        book.next_reservation = id;
        // Written down before the payment goes out, or the payment is not made.
        if let Err(e) = beacons.save(&book) {
            if let Some(record) = book.beacons.iter_mut().find(|r| r.id == self.id) {
                record.reserved.retain(|h| h.id != id);
            }
            return Err(BudgetError::Store(e.to_string()));
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
            spent_msat: 3,
            created_at: 1,
            revoked_at: None,
            reserved: vec![Held {
                id: 1,
                payment_hash: Some("22".repeat(32)),
                amount_msat: 2,
                max_fee_msat: 1,
                unresolved: false,
            }],
        });
        let text = serde_json::to_string(&book).expect("json");
        write_private(&document, &text).expect("write");
        write_private(&document, &text).expect("rewrite");
        let read = read_book(&document).expect("read");
        assert_eq!(read.beacons[0].view().reserved_msat, 3);
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
