//! Backends of the protocol crates on the Lightning node.

use std::sync::Arc;

use moip_lightning::{LightningEvent, PayRequest, PaymentRail};
use moip_moneysocket::provider::ProviderBackend;
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

#[async_trait::async_trait]
impl ProviderBackend for RailProvider {
    async fn balance_msat(&self) -> Result<u64, String> {
        let balance = self.rail.balance().await.map_err(|e| e.to_string())?;
        Ok(balance.lightning_sats.saturating_mul(1000))
    }

    async fn invoice(&self, msats: u64) -> Result<(String, [u8; 32]), String> {
        let invoice = self
            .rail
            .create_invoice(Some(msats), "moneysocket", 3600)
            .await
            .map_err(|e| e.to_string())?;
        Ok((invoice.bolt11, invoice.payment_hash.0))
    }

    async fn pay(&self, bolt11: &str) -> Result<([u8; 32], u64), String> {
        let outcome = self
            .rail
            .pay(PayRequest::new(bolt11))
            .await
            .map_err(|e| e.to_string())?;
        let preimage = outcome
            .preimage
            .ok_or_else(|| "paid, but no preimage recorded".to_string())?;
        Ok((preimage.0, outcome.fee_paid_msat.unwrap_or(0)))
    }

    fn received(&self) -> broadcast::Receiver<([u8; 32], [u8; 32])> {
        self.received.subscribe()
    }
}
