//! [`PaymentRail`] for [`LightningNode`].
//!
//! ldk-node's calls block (some on network round trips), so each one runs on the caller's
//! blocking pool rather than on an async worker.

use crate::error::{LightningError, Result};
use crate::node::LightningNode;
use crate::rail::{
    Balance, Invoice, KeysendRequest, LightningEvent, NodeInfo, PayRequest, PaymentHash,
    PaymentOutcome, PaymentRail, PaymentRecord, Preimage,
};

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LightningError::Internal(format!("a node call did not finish: {e}")))?
}

#[async_trait::async_trait]
impl PaymentRail for LightningNode {
    async fn create_invoice(
        &self,
        amount_msat: Option<u64>,
        description: &str,
        expiry_secs: u32,
    ) -> Result<Invoice> {
        let (node, description) = (self.clone(), description.to_string());
        blocking(move || node.create_invoice(amount_msat, &description, expiry_secs)).await
    }

    async fn pay(&self, request: PayRequest) -> Result<PaymentOutcome> {
        let node = self.clone();
        blocking(move || {
            node.pay(
                &request.invoice,
                request.amount_msat,
                request.limits,
                request.timeout,
            )
        })
        .await
    }

    async fn create_invoice_for_description_hash(
        &self,
        amount_msat: Option<u64>,
        description_hash: [u8; 32],
        expiry_secs: u32,
    ) -> Result<Invoice> {
        let node = self.clone();
        blocking(move || {
            node.create_invoice_for_description_hash(amount_msat, description_hash, expiry_secs)
        })
        .await
    }

    async fn pay_keysend(&self, request: KeysendRequest) -> Result<PaymentOutcome> {
        let node = self.clone();
        blocking(move || node.pay_keysend(request)).await
    }

    fn sign_message(&self, message: &[u8]) -> Result<String> {
        Ok(LightningNode::sign_message(self, message))
    }

    async fn create_hold_invoice(
        &self,
        payment_hash: PaymentHash,
        amount_msat: u64,
        description: &str,
        expiry_secs: u32,
    ) -> Result<Invoice> {
        let (node, description) = (self.clone(), description.to_string());
        blocking(move || {
            node.create_hold_invoice(payment_hash, amount_msat, &description, expiry_secs)
        })
        .await
    }

    async fn settle_hold_invoice(&self, preimage: Preimage) -> Result<()> {
        let node = self.clone();
        blocking(move || node.settle_hold_invoice(preimage)).await
    }

    fn restore_held(&self, payment_hash: PaymentHash, amount_msat: u64) {
        LightningNode::restore_held(self, payment_hash, amount_msat);
    }

    async fn cancel_hold_invoice(&self, payment_hash: PaymentHash) -> Result<()> {
        let node = self.clone();
        blocking(move || node.cancel_hold_invoice(payment_hash)).await
    }

    async fn balance(&self) -> Result<Balance> {
        let node = self.clone();
        blocking(move || Ok(node.balance())).await
    }

    fn decode_invoice(&self, invoice: &str) -> Result<Invoice> {
        LightningNode::decode_invoice(self, invoice)
    }

    async fn payments(&self) -> Result<Vec<PaymentRecord>> {
        let node = self.clone();
        blocking(move || Ok(node.payments())).await
    }

    async fn payment_by_hash(&self, payment_hash: PaymentHash) -> Result<Option<PaymentRecord>> {
        let node = self.clone();
        blocking(move || Ok(node.payment_by_hash(payment_hash))).await
    }

    fn node_info(&self) -> NodeInfo {
        LightningNode::node_info(self)
    }

    fn events(&self) -> tokio::sync::broadcast::Receiver<LightningEvent> {
        self.subscribe()
    }
}
