//! Backends of the protocol crates on the Lightning node.

use std::sync::Arc;

use moip_assets::ledger::{AnyJournal, AppChargeError, AppPaymentOutcome, Op};
use moip_lightning::{
    LightningError, LightningEvent, PayRequest, PaymentHash, PaymentRail, RouteLimits,
};
use moip_moneysocket::provider::{BackendError, Paid, ProviderBackend};
use moip_moneysocket::v0::message::ErrorCode;
use moip_nwc::{AccountRefusal, AppAccounts, PublicKey};
use tokio::sync::broadcast;

use crate::hub::SharedLedger;

/// A Moneysocket provider's wallet: the node behind a [`PaymentRail`].
pub struct RailProvider {
    rail: Arc<dyn PaymentRail>,
    received: broadcast::Sender<([u8; 32], [u8; 32])>,
}

impl RailProvider {
    /// Wraps `rail`; must be called inside a tokio runtime (a task turns the node's
    /// payment-received events into (hash, preimage) pairs for the providers).
    pub fn new(rail: Arc<dyn PaymentRail>) -> Arc<RailProvider> {
        let received = broadcast::channel(256).0;
        let provider = Arc::new(RailProvider {
            rail: Arc::clone(&rail),
            received: received.clone(),
        });
        let mut events = rail.events();
        tokio::spawn(async move {
            loop {
                let payment_hash = match events.recv().await {
                    Ok(LightningEvent::PaymentReceived { payment_hash, .. }) => payment_hash,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if let Ok(Some(record)) = rail.payment_by_hash(payment_hash).await {
                    if let Some(preimage) = record.preimage {
                        let _ = received.send((payment_hash.0, preimage.0));
                    }
                }
            }
        });
        provider
    }
}

/// The Moneysocket error code for a node error, so apps can tell a bad request from a failed
/// payment. Only the errors that say nothing was paid, or nothing will be, are final; any
/// other (a wait that timed out above all) leaves the outcome unknown, so a beacon's budget
/// keeps the amount reserved until the node knows.
fn backend_error(e: LightningError) -> BackendError {
    let code = match &e {
        LightningError::Malformed { .. }
        | LightningError::WrongNetwork { .. }
        | LightningError::InvoiceExpired { .. } => ErrorCode::INVALID_INVOICE,
        LightningError::InvalidAmount(_) => ErrorCode::AMOUNT_MISMATCH,
        LightningError::InsufficientBalance { .. } => ErrorCode::INSUFFICIENT_BALANCE,
        LightningError::DuplicatePayment => ErrorCode::INVALID_REQUEST,
        LightningError::PaymentFailed { .. } | LightningError::NotSent { .. } => {
            ErrorCode::PAYMENT_FAILED
        }
        _ => return BackendError::outcome_unknown(ErrorCode::NOT_READY, e.to_string()),
    };
    BackendError::new(code, e.to_string())
}

#[async_trait::async_trait]
impl ProviderBackend for RailProvider {
    async fn balance_msat(&self) -> Result<u64, BackendError> {
        let balance = self.rail.balance().await.map_err(backend_error)?;
        Ok(balance.lightning_sats.saturating_mul(1000))
    }

    async fn invoice(
        &self,
        msats: u64,
        description: Option<&str>,
    ) -> Result<(String, [u8; 32]), BackendError> {
        let invoice = self
            .rail
            .create_invoice(Some(msats), description.unwrap_or("moneysocket"), 3600)
            .await
            .map_err(|e| {
                let mut e = backend_error(e);
                e.code = ErrorCode::INVOICE_FAILED;
                e
            })?;
        Ok((invoice.bolt11, invoice.payment_hash.0))
    }

    async fn pay(&self, bolt11: &str, amount_msat: Option<u64>) -> Result<Paid, BackendError> {
        let mut request = PayRequest::new(bolt11);
        request.amount_msat = amount_msat;
        // The fee cap the provider reserved in the beacon's budget, enforced on the route.
        let amount = amount_msat.or_else(|| self.rail.decode_invoice(bolt11).ok()?.amount_msat);
        if let Some(amount) = amount {
            request.limits = RouteLimits::max_fee(self.max_fee_msat(amount));
        }
        let outcome = self.rail.pay(request).await.map_err(backend_error)?;
        // Paid without a recorded preimage: the budget learns the outcome from the node later.
        let preimage = outcome.preimage.ok_or_else(|| {
            BackendError::outcome_unknown(
                ErrorCode::PAYMENT_FAILED,
                "paid, but no preimage recorded",
            )
        })?;
        Ok(Paid {
            preimage: preimage.0,
            fee_msat: outcome.fee_paid_msat.unwrap_or(0),
        })
    }

    /// LDK's own default: 1 % of the amount plus 50 sat.
    fn max_fee_msat(&self, amount_msat: u64) -> u64 {
        (amount_msat / 100).saturating_add(50_000)
    }

    fn received(&self) -> broadcast::Receiver<([u8; 32], [u8; 32])> {
        self.received.subscribe()
    }
}

/// NWC apps' accounts in the community's ledger: each app (by its connection's client key)
/// spends only its own sub-account, funded by the operator from free collateral, never the
/// collateral itself. A payment's amount and fee cap are charged in the ledger before it leaves
/// and what it did not cost comes back once its outcome is known (the one copy of that logic is
/// [`moip_assets::ledger::AppPaymentOutcome`] and `Ledger::conclude_app_payment`), so a crash
/// mid-payment leaves the app charged, never the collateral. A payment whose outcome the wait
/// did not learn stays charged until [`LedgerApps::resolve`] reads the node's record of it —
/// its open charges are in the ledger, so this holds across restarts
/// (`attacks::apps::a_late_failure_is_refunded_across_a_restart`).
pub struct LedgerApps {
    ledger: SharedLedger,
    /// Payments charged by this process and not yet sent or answered: the node's record of
    /// their hash (none yet, or an earlier failed attempt) is not their outcome.
    in_flight: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Rung when a payment's wait ended without its outcome: it may have ended while it was
    /// still in flight here, when the resolver skipped it, and no event would come again.
    wake: tokio::sync::Notify,
}

impl LedgerApps {
    /// Accounts kept in `ledger`.
    pub fn new(ledger: SharedLedger) -> Arc<LedgerApps> {
        Arc::new(LedgerApps {
            ledger,
            in_flight: std::sync::Mutex::new(std::collections::HashSet::new()),
            wake: tokio::sync::Notify::new(),
        })
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, moip_assets::ledger::Ledger<AnyJournal>> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn commit(&self, op: Op) {
        if let Err(e) = self.ledger().commit(op.clone()) {
            tracing::warn!("an app's ledger entry {op:?} was refused: {e}");
        }
    }

    fn conclude(&self, hash: &str, outcome: AppPaymentOutcome) {
        match self.ledger().conclude_app_payment(hash, outcome) {
            Ok(Some(msat)) => tracing::info!("app payment {hash}: {outcome:?}, {msat} msat back"),
            Ok(None) => {}
            Err(e) => tracing::warn!("app payment {hash} not concluded: {e}"),
        }
    }

    /// Concludes every app payment charged and still open — one whose wait timed out, or one
    /// in flight when `moip up` stopped — by the node's own record of it: succeeded, the
    /// unused fee cap comes back; failed, all of it; pending or unknown to the node, it stays
    /// charged. Returns how many were concluded.
    pub async fn resolve(&self, rail: &dyn PaymentRail) -> usize {
        let open = self.ledger().open_app_charges();
        let mut concluded = 0;
        for (hash, charge) in open {
            // NWC apps' only (a client key, 64 hex digits): a beacon's account concludes its
            // own payments.
            if charge.app.len() != 64 || self.in_flight().contains(&hash) {
                continue;
            }
            let Ok(payment_hash) = hash.parse::<PaymentHash>() else {
                continue;
            };
            let record = match rail.payment_by_hash(payment_hash).await {
                Ok(Some(record)) if !record.inbound => record,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!("app payment {hash}: the node's record unreadable: {e}");
                    continue;
                }
            };
            let outcome = AppPaymentOutcome::from_record(&record);
            // Sent again meanwhile by this process: its own answer concludes it. The lock is
            // held while concluding, so it cannot be sent again in between.
            let in_flight = self.in_flight();
            if outcome == AppPaymentOutcome::Pending || in_flight.contains(&hash) {
                continue;
            }
            self.conclude(&hash, outcome);
            drop(in_flight);
            concluded += 1;
        }
        concluded
    }

    /// Resolves the open charges now and again whenever the node reports an outgoing payment
    /// ended (and after missed events); runs until the node's events end.
    pub fn spawn_resolver(self: &Arc<Self>, rail: Arc<dyn PaymentRail>) {
        let apps = Arc::clone(self);
        let mut events = rail.events();
        tokio::spawn(async move {
            apps.resolve(rail.as_ref()).await;
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(
                            LightningEvent::PaymentSent { .. } | LightningEvent::PaymentFailed { .. },
                        )
                        | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    () = apps.wake.notified() => {}
                }
                apps.resolve(rail.as_ref()).await;
            }
        });
    }
}

impl AppAccounts for LedgerApps {
    fn available_msat(&self, app: &PublicKey) -> Result<u64, AccountRefusal> {
        Ok(self.ledger().state().app_balance_msat(&app.to_hex()))
    }

    fn reserve(
        &self,
        app: &PublicKey,
        msat: u64,
        payment_hash: &str,
    ) -> Result<(), AccountRefusal> {
        let mut in_flight = self.in_flight();
        self.ledger()
            .charge_app(&app.to_hex(), msat, payment_hash)
            .map_err(|e| match e {
                AppChargeError::Insufficient {
                    available_msat,
                    wanted_msat,
                } => AccountRefusal::Insufficient {
                    available_msat,
                    wanted_msat,
                },
                AppChargeError::Ledger(e) => AccountRefusal::Unavailable(e.to_string()),
            })?;
        in_flight.insert(payment_hash.to_owned());
        Ok(())
    }

    fn settle(
        &self,
        _app: &PublicKey,
        _reserved_msat: u64,
        spent_msat: Option<u64>,
        payment_hash: &str,
    ) {
        let mut in_flight = self.in_flight();
        match spent_msat {
            Some(0) => self.conclude(payment_hash, AppPaymentOutcome::Failed),
            Some(spent_msat) => self.conclude(payment_hash, AppPaymentOutcome::Paid { spent_msat }),
            None => {}
        }
        in_flight.remove(payment_hash);
        if spent_msat.is_none() {
            // Stores a permit when the resolver is busy: the wake-up is not lost.
            self.wake.notify_one();
        }
    }

    fn received(&self, app: &PublicKey, msat: u64, payment_hash: &str) {
        self.commit(Op::AppReceived {
            app: app.to_hex(),
            msat,
            hash: payment_hash.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use moip_assets::ledger::{CollateralSource, Ledger, SqliteJournal, TokenInfo};
    use moip_lightning::testing::PaperRail;
    use moip_lightning::{PaymentId, PaymentRecord, PaymentState, PaymentType};

    use super::*;

    /// Waits, with a deadline, until `app` may spend `msat`.
    async fn refunded(
        apps: &LedgerApps,
        app: &moip_nwc::PublicKey,
        msat: u64,
    ) -> Result<(), tokio::time::error::Elapsed> {
        tokio::time::timeout(Duration::from_secs(10), async {
            while apps.available_msat(app).expect("balance") != msat {
                tokio::task::yield_now().await;
            }
        })
        .await
    }

    /// A payment that fails while the NWC service is still waiting on it — its node event
    /// comes, but the resolver skips a payment in flight — and whose wait then times out is
    /// still refunded: the service's settle without an outcome wakes the resolver.
    #[tokio::test]
    async fn a_payment_ending_as_its_wait_times_out_is_still_concluded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = SqliteJournal::open(&dir.path().join("ledger.sqlite")).expect("journal");
        let token = TokenInfo {
            id: "t".into(),
            name: "t".into(),
            symbol: "T".into(),
        };
        let mut ledger = Ledger::create(AnyJournal::Sqlite(journal), token).expect("ledger");
        let app = moip_nwc::PublicKey::from_hex(&"02".repeat(32)).expect("a key");
        ledger
            .commit(Op::Deposit {
                sats: 1,
                source: CollateralSource::Lightning {
                    payment_hash: "01".repeat(32),
                },
            })
            .expect("deposit");
        ledger
            .commit(Op::AppReceived {
                app: app.to_hex(),
                msat: 10_000,
                hash: "03".repeat(32),
            })
            .expect("received");
        // A payment charged before this start, whose outcome the wait never learnt.
        ledger
            .commit(Op::AppSpent {
                app: app.to_hex(),
                msat: 2_000,
                hash: "05".repeat(32),
            })
            .expect("charged");
        let apps = LedgerApps::new(Arc::new(std::sync::Mutex::new(ledger)));
        // Every payment the node knows of failed.
        let failed = |hash: &str| PaymentRecord {
            id: PaymentId([4; 32]),
            kind: PaymentType::Bolt11,
            inbound: false,
            state: PaymentState::Failed,
            amount_msat: Some(1_000),
            fee_paid_msat: None,
            payment_hash: Some(hash.parse().expect("hash")),
            preimage: None,
            updated_at: 0,
        };
        // It sends no events: the resolver hears of a payment only from the service's settle.
        let rail = Arc::new(PaperRail::default());
        rail.set_record(failed(&"05".repeat(32)));
        apps.spawn_resolver(Arc::clone(&rail) as Arc<dyn PaymentRail>);
        refunded(&apps, &app, 10_000)
            .await
            .expect("the earlier charge concluded at start");

        // Now one fails while still in flight here (its node event, had it come, skipped),
        // and then its wait times out: no outcome, and no node event will come again.
        let hash = "04".repeat(32);
        apps.reserve(&app, 6_000, &hash).expect("charged");
        rail.set_record(failed(&hash));
        assert_eq!(apps.resolve(rail.as_ref()).await, 0, "in flight: skipped");
        apps.settle(&app, 6_000, None, &hash);
        refunded(&apps, &app, 10_000)
            .await
            .expect("refunded in full");
    }
}
