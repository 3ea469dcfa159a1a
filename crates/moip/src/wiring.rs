//! Backends of the protocol crates on the Lightning node.

use std::sync::Arc;

use moip_assets::ledger::{AnyJournal, Op};
use moip_lightning::{LightningError, LightningEvent, PayRequest, PaymentRail, RouteLimits};
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
/// (`Op::AppSpent`) and what it did not cost comes back after (`Op::AppRefunded`), so a crash
/// mid-payment leaves the app charged, never the collateral.
pub struct LedgerApps {
    ledger: SharedLedger,
}

impl LedgerApps {
    /// Accounts kept in `ledger`.
    pub fn new(ledger: SharedLedger) -> Arc<LedgerApps> {
        Arc::new(LedgerApps { ledger })
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, moip_assets::ledger::Ledger<AnyJournal>> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn commit(&self, op: Op) {
        if let Err(e) = self.ledger().commit(op.clone()) {
            tracing::warn!("an app's ledger entry {op:?} was refused: {e}");
        }
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
        let app = app.to_hex();
        let mut ledger = self.ledger();
        let available = ledger.state().app_balance_msat(&app);
        if msat > available {
            return Err(AccountRefusal::Insufficient {
                available_msat: available,
                wanted_msat: msat,
            });
        }
        ledger
            .commit(Op::AppSpent {
                app,
                msat,
                hash: payment_hash.to_owned(),
            })
            .map(|_| ())
            .map_err(|e| AccountRefusal::Unavailable(e.to_string()))
    }

    fn settle(&self, app: &PublicKey, reserved_msat: u64, spent_msat: u64, payment_hash: &str) {
        let unused = reserved_msat.saturating_sub(spent_msat);
        if unused > 0 {
            self.commit(Op::AppRefunded {
                app: app.to_hex(),
                msat: unused,
                hash: payment_hash.to_owned(),
            });
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
