//! Backends of the protocol crates on the Lightning node.

use std::sync::Arc;

use moip_lightning::{LightningError, LightningEvent, PayRequest, PaymentRail, RouteLimits};
use moip_moneysocket::provider::{BackendError, Paid, ProviderBackend};
use moip_moneysocket::v0::message::ErrorCode;
use tokio::sync::broadcast;

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
