//! Deposits over Lightning that mint tokens to the depositor: the first half of Flow 2 on a
//! running node.
//!
//! A member asks for an invoice for `sats` (`POST /api/deposits`); the node remembers which
//! account it is for *before* handing the invoice out, in a small book on disk. When the node
//! receives the payment, the collateral and the tokens are written to the ledger together,
//! under one lock, as two consecutive journal entries (`Deposit`, then `Mint`). A crash between
//! the two leaves a `Deposit` with no `Mint` after it; on start every unfinished deposit in
//! the book is settled again, and the journal says whether its tokens were minted — so a
//! deposit is minted exactly once whatever happens, and the book only speeds things up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use moip_assets::ledger::{
    AccountId, CollateralSource, JournalStore, Ledger, LedgerError, Op, TokenLedger,
};
use moip_lightning::{LightningEvent, PaymentHash, PaymentRail, PaymentState};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::state::{Document, StateError};
use crate::util::{lock, now};

/// Smallest deposit, in sat (below it the fee of paying it is most of it).
pub const MIN_DEPOSIT_SATS: u64 = 1_000;

/// Largest deposit, in sat (ldk-node lets a tenth of a channel be in flight; this is a
/// community node, not an exchange).
pub const MAX_DEPOSIT_SATS: u64 = 10_000_000;

/// How long a deposit invoice may be paid, in seconds.
pub const INVOICE_EXPIRY_SECS: u32 = 3_600;

/// Most unpaid invoices kept at once; beyond it new ones are refused until some expire.
pub const MAX_PENDING: usize = 10_000;

/// Most unpaid invoices one member may hold at once (the operator is not bounded): a member
/// pays one invoice at a time, and a stranger with a key cannot fill the book alone.
pub const MAX_PENDING_PER_ACCOUNT: usize = 3;

/// Most unpaid invoices held together by accounts that hold no tokens yet (newcomers, or
/// strangers with fresh keys, which cost nothing to make): they may take this share of the
/// book and no more, so a flood of fresh keys leaves the rest to members who hold tokens.
pub const MAX_PENDING_NEWCOMERS: usize = MAX_PENDING / 10;

/// Who asks for a deposit invoice, which decides the bounds it meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depositor {
    /// The operator (the node's token): only the book's size bounds it.
    Operator,
    /// A logged-in member asking for their own account: [`MAX_PENDING_PER_ACCOUNT`], and
    /// [`MAX_PENDING_NEWCOMERS`] while the account holds no tokens.
    Member,
}

/// Why a deposit could not be made or settled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DepositError {
    /// The amount is outside the limits.
    #[error("a deposit is {min} to {max} sat, not {0}", min = MIN_DEPOSIT_SATS, max = MAX_DEPOSIT_SATS)]
    Amount(u64),
    /// Too many invoices wait to be paid.
    #[error("too many deposits wait to be paid; try again later")]
    Busy,
    /// This member holds as many unpaid invoices as one may.
    #[error(
        "you have {max} unpaid deposit invoices already: pay one, or let one expire (after {secs} s)",
        max = MAX_PENDING_PER_ACCOUNT,
        secs = INVOICE_EXPIRY_SECS
    )]
    TooManyUnpaid,
    /// The Lightning node failed.
    #[error("lightning: {0}")]
    Lightning(String),
    /// The ledger refused or its store failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The book could not be written.
    #[error("the deposit book {place}: {reason}")]
    Book {
        /// The file or database row.
        place: String,
        /// What failed.
        reason: String,
    },
}

/// One deposit as the book remembers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposit {
    /// Who gets the tokens.
    pub account: AccountId,
    /// What the invoice asks, in sat.
    pub sats: u64,
    /// The invoice (BOLT11).
    pub invoice: String,
    /// When it was asked for (Unix seconds).
    pub created: u64,
    /// Tokens minted for it (0 until paid).
    pub minted: u64,
}

/// Deposits to accounts, over a ledger and the node that receives them.
pub struct Deposits<S> {
    rail: Arc<dyn PaymentRail>,
    ledger: Arc<Mutex<Ledger<S>>>,
    book: Mutex<BTreeMap<String, Deposit>>,
    document: Option<Document>,
    /// Held while an invoice is checked against the bounds, made and booked, so requests at
    /// the same moment cannot pass a bound together.
    making: tokio::sync::Mutex<()>,
}

impl<S: JournalStore + Send + 'static> Deposits<S> {
    /// Deposits kept in the book `document` (read when present; `None`: in memory).
    ///
    /// # Errors
    /// [`DepositError::Book`] when the book cannot be read.
    pub fn open(
        rail: Arc<dyn PaymentRail>,
        ledger: Arc<Mutex<Ledger<S>>>,
        document: Option<Document>,
    ) -> Result<Deposits<S>, DepositError> {
        let book = match &document {
            Some(d) => match d.read()? {
                Some(text) => serde_json::from_str(&text).map_err(|e| book_error(d, e))?,
                None => BTreeMap::new(),
            },
            None => BTreeMap::new(),
        };
        Ok(Deposits {
            rail,
            ledger,
            book: Mutex::new(book),
            document,
            making: tokio::sync::Mutex::new(()),
        })
    }

    /// A new invoice for `sats`, whose payment mints `sats` tokens to `account`; with its
    /// payment hash, under which the book keeps it.
    ///
    /// # Errors
    /// [`DepositError::Amount`], [`DepositError::Busy`], or the node or the book failing.
    pub async fn invoice(
        &self,
        account: AccountId,
        sats: u64,
    ) -> Result<(PaymentHash, Deposit), DepositError> {
        self.invoice_for(Depositor::Operator, account, sats).await
    }

    /// [`Deposits::invoice`], within the bounds of `depositor`.
    ///
    /// # Errors
    /// [`DepositError::Amount`], [`DepositError::TooManyUnpaid`], [`DepositError::Busy`], or
    /// the node or the book failing.
    pub async fn invoice_for(
        &self,
        depositor: Depositor,
        account: AccountId,
        sats: u64,
    ) -> Result<(PaymentHash, Deposit), DepositError> {
        if !(MIN_DEPOSIT_SATS..=MAX_DEPOSIT_SATS).contains(&sats) {
            return Err(DepositError::Amount(sats));
        }
        let _making = self.making.lock().await;
        let at = now();
        {
            let mut book = lock(&self.book);
            // Unpaid invoices past their expiry can never be paid: forget them.
            book.retain(|_, d| d.minted > 0 || d.created + u64::from(INVOICE_EXPIRY_SECS) > at);
            let unpaid = || book.values().filter(|d| d.minted == 0);
            if unpaid().count() >= MAX_PENDING {
                return Err(DepositError::Busy);
            }
            if depositor == Depositor::Member {
                if unpaid().filter(|d| d.account == account).count() >= MAX_PENDING_PER_ACCOUNT {
                    return Err(DepositError::TooManyUnpaid);
                }
                let ledger = lock(&self.ledger);
                let newcomer = |a: &AccountId| ledger.balance(a) == 0;
                if newcomer(&account)
                    && unpaid().filter(|d| newcomer(&d.account)).count() >= MAX_PENDING_NEWCOMERS
                {
                    return Err(DepositError::Busy);
                }
            }
        }
        let invoice = self
            .rail
            .create_invoice(
                Some(sats * 1_000),
                "deposit: tokens 1:1 in the community",
                INVOICE_EXPIRY_SECS,
            )
            .await
            .map_err(|e| DepositError::Lightning(e.to_string()))?;
        let deposit = Deposit {
            account,
            sats,
            invoice: invoice.bolt11,
            created: at,
            minted: 0,
        };
        let mut book = lock(&self.book);
        book.insert(invoice.payment_hash.to_string(), deposit.clone());
        self.save(&book)?;
        Ok((invoice.payment_hash, deposit))
    }

    /// The deposit whose invoice has `payment_hash` (hex), as it stands.
    pub fn get(&self, payment_hash: &str) -> Option<Deposit> {
        lock(&self.book).get(payment_hash).cloned()
    }

    /// Credits and mints deposit `hash` if the node has received it; returns the tokens minted
    /// now (`None`: not ours, not paid yet, or done before).
    ///
    /// # Errors
    /// The node, the ledger or the book failing.
    pub async fn settle(&self, hash: PaymentHash) -> Result<Option<u64>, DepositError> {
        let key = hash.to_string();
        let Some(deposit) = self.get(&key) else {
            return Ok(None);
        };
        if deposit.minted > 0 {
            return Ok(None);
        }
        let record = self
            .rail
            .payment_by_hash(hash)
            .await
            .map_err(|e| DepositError::Lightning(e.to_string()))?;
        let Some(record) = record else {
            return Ok(None);
        };
        let sats = record.amount_msat.unwrap_or(0) / 1_000;
        if !record.inbound || record.state != PaymentState::Succeeded || sats == 0 {
            return Ok(None);
        }
        let source = CollateralSource::Lightning {
            payment_hash: key.clone(),
        };
        let minted = {
            let mut ledger = lock(&self.ledger);
            match ledger.deposit(sats, source.clone()) {
                Ok(_) => {
                    ledger.mint(&deposit.account, sats)?;
                    true
                }
                // Credited before a crash: the journal says whether the tokens followed.
                Err(LedgerError::DuplicateDeposit(_)) => {
                    if minted_after(&mut ledger, &source)? {
                        false
                    } else {
                        ledger.mint(&deposit.account, sats)?;
                        true
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        let mut book = lock(&self.book);
        if let Some(entry) = book.get_mut(&key) {
            entry.minted = sats;
        }
        self.save(&book)?;
        Ok(minted.then_some(sats))
    }

    /// Settles every deposit the book holds unfinished (after a restart), then each one the
    /// node receives, until the node stops.
    pub async fn run(self: Arc<Self>) {
        let mut events = self.rail.events();
        let unfinished: Vec<String> = lock(&self.book)
            .iter()
            .filter(|(_, d)| d.minted == 0)
            .map(|(k, _)| k.clone())
            .collect();
        for key in unfinished {
            if let Ok(hash) = key.parse::<PaymentHash>() {
                self.settle_logged(hash).await;
            }
        }
        loop {
            match events.recv().await {
                Ok(LightningEvent::PaymentReceived { payment_hash, .. }) => {
                    self.settle_logged(payment_hash).await;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn settle_logged(&self, hash: PaymentHash) {
        match self.settle(hash).await {
            Ok(Some(sats)) => tracing::info!("deposit of {sats} sat minted"),
            Ok(None) => {}
            Err(e) => tracing::warn!("settling a deposit failed: {e}"),
        }
    }

    fn save(&self, book: &BTreeMap<String, Deposit>) -> Result<(), DepositError> {
        let Some(document) = &self.document else {
            return Ok(());
        };
        let text = serde_json::to_string_pretty(book).map_err(|e| book_error(document, e))?;
        Ok(document.write(&text)?)
    }
}

/// Whether the journal has the `Mint` that follows the deposit from `source`.
fn minted_after<S: JournalStore>(
    ledger: &mut Ledger<S>,
    source: &CollateralSource,
) -> Result<bool, LedgerError> {
    let entries = ledger.entries(0)?;
    let at = entries
        .iter()
        .position(|e| matches!(&e.op, Op::Deposit { source: s, .. } if s == source));
    Ok(at
        .and_then(|i| entries.get(i + 1))
        .is_some_and(|next| matches!(next.op, Op::Mint { .. })))
}

impl From<StateError> for DepositError {
    fn from(e: StateError) -> DepositError {
        DepositError::Book {
            place: e.place,
            reason: e.reason,
        }
    }
}

fn book_error(document: &Document, e: impl std::fmt::Display) -> DepositError {
    DepositError::Book {
        place: document.place(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moip_assets::ledger::{MemoryJournal, TokenInfo};
    use moip_lightning::testing::PaperRail;

    fn ledger() -> Ledger<MemoryJournal> {
        Ledger::create(
            MemoryJournal::default(),
            TokenInfo {
                id: "t".into(),
                name: "t".into(),
                symbol: "T".into(),
            },
        )
        .expect("ledger")
    }

    /// Fresh keys cost nothing: strangers with one each fill at most the newcomers' share of
    /// the book, one key at most its own bound, and a member holding tokens still gets an
    /// invoice after the flood (so does the operator).
    #[tokio::test]
    async fn fresh_keys_fill_only_the_newcomers_share() {
        let ledger = Arc::new(Mutex::new(ledger()));
        let holder = AccountId::from_bytes([7; 32]);
        {
            let mut l = lock(&ledger);
            l.deposit(
                5_000,
                CollateralSource::Lightning {
                    payment_hash: "ab".repeat(32),
                },
            )
            .expect("deposit");
            l.mint(&holder, 5_000).expect("mint");
        }
        let deposits = Deposits::open(Arc::new(PaperRail::default()), Arc::clone(&ledger), None)
            .expect("book");
        let one = AccountId::from_bytes([1; 32]);
        for _ in 0..MAX_PENDING_PER_ACCOUNT {
            deposits
                .invoice_for(Depositor::Member, one, 1_000)
                .await
                .expect("within the account's bound");
        }
        assert!(matches!(
            deposits.invoice_for(Depositor::Member, one, 1_000).await,
            Err(DepositError::TooManyUnpaid)
        ));
        let mut made = MAX_PENDING_PER_ACCOUNT;
        let mut key = 0u32;
        loop {
            key += 1;
            let mut bytes = [2u8; 32];
            bytes[..4].copy_from_slice(&key.to_be_bytes());
            match deposits
                .invoice_for(Depositor::Member, AccountId::from_bytes(bytes), 1_000)
                .await
            {
                Ok(_) => made += 1,
                Err(DepositError::Busy) => break,
                Err(e) => panic!("{e}"),
            }
            assert!(made <= MAX_PENDING_NEWCOMERS, "past the newcomers' share");
        }
        assert_eq!(made, MAX_PENDING_NEWCOMERS);
        deposits
            .invoice_for(Depositor::Member, holder, 1_000)
            .await
            .expect("a member holding tokens still deposits");
        deposits
            .invoice(AccountId::from_bytes([3; 32]), 1_000)
            .await
            .expect("the operator still asks for anyone");
    }

    #[test]
    fn the_journal_tells_whether_a_deposit_was_minted() {
        let mut l = ledger();
        let source = CollateralSource::Lightning {
            payment_hash: "ab".repeat(32),
        };
        l.deposit(5_000, source.clone()).expect("deposit");
        assert!(!minted_after(&mut l, &source).expect("journal"));
        l.mint(&AccountId::from_bytes([1; 32]), 5_000)
            .expect("mint");
        assert!(minted_after(&mut l, &source).expect("journal"));
        let other = CollateralSource::Lightning {
            payment_hash: "cd".repeat(32),
        };
        assert!(!minted_after(&mut l, &other).expect("journal"));
    }
}
