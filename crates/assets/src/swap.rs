//! Cross-community swaps: tokens of community A for tokens of community B, settled atomically
//! over Lightning with a hold invoice.
//!
//! B's [`SwapDesk`] offers a hold invoice for the satoshis the swap carries, recording the offer
//! in its ledger ([`Op::SwapOffer`]). A redeems the user's A-tokens through its
//! [redemption pool](crate::pool), paying that invoice. When the payment arrives B's node holds
//! it (the HTLC is locked, nothing is settled) and the desk decides: within B's exposure limit
//! for A, it settles — claiming the payment with the preimage — and only then records
//! [`Op::SwapIn`], which deposits the satoshis as collateral and mints the tokens in one entry;
//! otherwise it cancels, the payment fails back to A, and A's pool returns the user's tokens.
//! Either both ledgers move or neither does.
//!
//! Preimages are not stored: each is `HMAC-SHA256(secret, nonce)` with the desk's secret and the
//! offer's nonce, so a desk restarted between settling and recording recomputes nothing secret
//! from its database and [`SwapDesk::recover`] finishes the job from the node's payment record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
use moip_lightning::{LightningEvent, PaymentHash, PaymentRail, PaymentState, Preimage};
use tokio::sync::broadcast;

use crate::ledger::{AccountId, JournalStore, Ledger, LedgerError, Op};
use crate::util::{hex, lock, unix_now};

/// How much one community lets another bring in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwapLimits {
    /// Largest single swap, in satoshis.
    pub max_per_swap: u64,
    /// Most satoshis swapped in from one community per epoch (offered, pending and settled).
    pub max_per_community: u64,
    /// Length of an epoch, in seconds.
    pub epoch_secs: u64,
}

impl Default for SwapLimits {
    fn default() -> Self {
        SwapLimits {
            max_per_swap: 1_000_000,
            max_per_community: 5_000_000,
            epoch_secs: 86_400,
        }
    }
}

/// Why a swap was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwapError {
    /// Over a limit.
    #[error("over the exposure limit for {community}: {left} sat left this epoch")]
    Exposure {
        /// The paying community.
        community: String,
        /// What is left.
        left: u64,
    },
    /// Larger than one swap may be.
    #[error("a swap carries at most {0} sat")]
    TooLarge(u64),
    /// The ledger refused.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The node failed.
    #[error("lightning: {0}")]
    Lightning(String),
}

/// An offer to hand to the paying community.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwapOfferTicket {
    /// The hold invoice A's pool pays.
    pub invoice: String,
    /// Its payment hash.
    pub payment_hash: PaymentHash,
}

/// What became of a swap whose payment arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwapOutcome {
    /// Settled and minted.
    Minted,
    /// Refused and cancelled: the payer's payment failed back.
    Refused(String),
}

/// Community B's side of swaps.
pub struct SwapDesk<S> {
    ledger: Arc<Mutex<Ledger<S>>>,
    rail: Arc<dyn PaymentRail>,
    secret: [u8; 32],
    limits: SwapLimits,
    /// Satoshis taken in per (community, epoch), settled ones included.
    exposure: Mutex<HashMap<(String, u64), u64>>,
}

impl<S: JournalStore + Send + 'static> SwapDesk<S> {
    /// A desk on `ledger` and `rail`; `secret` derives the preimages (keep it with the node's
    /// keys: losing it strands offers that were paid but not settled).
    ///
    /// # Errors
    /// A store error while reading the journal to rebuild the exposure.
    pub fn new(
        ledger: Arc<Mutex<Ledger<S>>>,
        rail: Arc<dyn PaymentRail>,
        secret: [u8; 32],
        limits: SwapLimits,
    ) -> Result<SwapDesk<S>, SwapError> {
        let mut exposure = HashMap::new();
        {
            let mut l = lock(&ledger);
            let mut offers = HashMap::new();
            for entry in l.entries(0)? {
                match entry.op {
                    Op::SwapOffer {
                        hash,
                        sats,
                        from_community,
                        ..
                    } => {
                        offers.insert(hash, (from_community, sats));
                    }
                    Op::SwapIn { hash } => {
                        if let Some((community, sats)) = offers.get(&hash) {
                            let epoch = entry.time / limits.epoch_secs.max(1);
                            *exposure.entry((community.clone(), epoch)).or_insert(0) += sats;
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(SwapDesk {
            ledger,
            rail,
            secret,
            limits,
            exposure: Mutex::new(exposure),
        })
    }

    fn epoch(&self, time: u64) -> u64 {
        time / self.limits.epoch_secs.max(1)
    }

    fn preimage(&self, nonce: u64) -> [u8; 32] {
        let mut engine = hmac::HmacEngine::<sha256::Hash>::new(&self.secret);
        engine.input(b"moip/swap/preimage");
        engine.input(&nonce.to_be_bytes());
        hmac::Hmac::<sha256::Hash>::from_engine(engine).to_byte_array()
    }

    /// What `community` may still bring in this epoch, counting pending offers.
    fn room(&self, community: &str) -> u64 {
        let epoch = self.epoch(unix_now());
        let settled = lock(&self.exposure)
            .get(&(community.to_owned(), epoch))
            .copied()
            .unwrap_or(0);
        let pending: u64 = lock(&self.ledger)
            .state()
            .swaps()
            .values()
            .filter(|s| s.from_community == community)
            .map(|s| s.sats)
            .sum();
        self.limits
            .max_per_community
            .saturating_sub(settled.saturating_add(pending))
    }

    /// Offers `sats` of this community's tokens to `to` for a Lightning payment from
    /// `from_community`: a hold invoice, valid `expiry_secs`.
    ///
    /// # Errors
    /// [`SwapError::TooLarge`], [`SwapError::Exposure`], a node or ledger error.
    pub async fn offer(
        &self,
        from_community: &str,
        to: &AccountId,
        sats: u64,
        expiry_secs: u32,
    ) -> Result<SwapOfferTicket, SwapError> {
        if sats > self.limits.max_per_swap {
            return Err(SwapError::TooLarge(self.limits.max_per_swap));
        }
        let left = self.room(from_community);
        if sats > left {
            return Err(SwapError::Exposure {
                community: from_community.to_owned(),
                left,
            });
        }
        let nonce = lock(&self.ledger).len();
        let preimage = Preimage(self.preimage(nonce));
        let payment_hash = preimage.payment_hash();
        let invoice = self
            .rail
            .create_hold_invoice(payment_hash, sats * 1000, "moip swap", expiry_secs)
            .await
            .map_err(|e| SwapError::Lightning(e.to_string()))?;
        lock(&self.ledger).commit(Op::SwapOffer {
            hash: hex(&payment_hash.0),
            nonce,
            to: *to,
            sats,
            from_community: from_community.to_owned(),
        })?;
        Ok(SwapOfferTicket {
            invoice: invoice.bolt11,
            payment_hash,
        })
    }

    /// Decides a held payment to offer `hash`: settle and mint within the limits, cancel
    /// otherwise. `None` when the hash is no pending offer of this desk.
    pub async fn on_accepted(&self, hash: PaymentHash, amount_msat: u64) -> Option<SwapOutcome> {
        let key = hex(&hash.0);
        let swap = lock(&self.ledger).state().swaps().get(&key).cloned()?;
        // The offer's own amount counts as pending in `room`; what matters now is whether the
        // settled total would pass the limit.
        let epoch = self.epoch(unix_now());
        let settled = lock(&self.exposure)
            .get(&(swap.from_community.clone(), epoch))
            .copied()
            .unwrap_or(0);
        let refusal = if amount_msat < swap.sats * 1000 {
            Some(format!(
                "{amount_msat} msat held for an offer of {} sat",
                swap.sats
            ))
        } else if settled.saturating_add(swap.sats) > self.limits.max_per_community {
            Some(format!(
                "over the exposure limit for {}",
                swap.from_community
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            let _ = self.rail.cancel_hold_invoice(hash).await;
            self.close(&key);
            return Some(SwapOutcome::Refused(reason));
        }
        match self
            .rail
            .settle_hold_invoice(Preimage(self.preimage(swap.nonce)))
            .await
        {
            Ok(()) => {
                self.mint(&key, &swap.from_community, swap.sats);
                Some(SwapOutcome::Minted)
            }
            Err(e) => {
                // Not claimed (the HTLC timed out, or the node refused): nothing came in.
                let _ = self.rail.cancel_hold_invoice(hash).await;
                self.close(&key);
                Some(SwapOutcome::Refused(e.to_string()))
            }
        }
    }

    fn mint(&self, key: &str, community: &str, sats: u64) {
        let committed = lock(&self.ledger).commit(Op::SwapIn {
            hash: key.to_owned(),
        });
        match committed {
            Ok(_) => {
                let epoch = self.epoch(unix_now());
                *lock(&self.exposure)
                    .entry((community.to_owned(), epoch))
                    .or_insert(0) += sats;
            }
            Err(e) => tracing::error!("swap {key}: settled but not recorded: {e}"),
        }
    }

    fn close(&self, key: &str) {
        if let Err(e) = lock(&self.ledger).commit(Op::SwapClosed {
            hash: key.to_owned(),
        }) {
            tracing::warn!("swap {key}: could not close: {e}");
        }
    }

    /// Decides every held payment as it arrives, until the node's event stream ends.
    pub async fn run(self: Arc<Self>) {
        let mut events = self.rail.events();
        loop {
            match events.recv().await {
                Ok(LightningEvent::HoldInvoiceAccepted {
                    payment_hash,
                    amount_msat,
                    ..
                }) => {
                    self.on_accepted(payment_hash, amount_msat).await;
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.recover().await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// After a restart (or missed events): finishes every pending offer the node has an
    /// answer for — settled ones are minted, failed ones closed.
    pub async fn recover(&self) {
        let pending: Vec<(String, crate::ledger::PendingSwap)> = lock(&self.ledger)
            .state()
            .swaps()
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        for (key, swap) in pending {
            let hash = PaymentHash(Preimage(self.preimage(swap.nonce)).payment_hash().0);
            match self.rail.payment_by_hash(hash).await {
                Ok(Some(record)) if record.inbound => match record.state {
                    PaymentState::Succeeded => self.mint(&key, &swap.from_community, swap.sats),
                    PaymentState::Failed => self.close(&key),
                    // Not paid yet, or held: a held payment is decided when the node reports
                    // it; an unpaid offer stays open until it is paid or cancelled.
                    PaymentState::Pending => {}
                },
                _ => {}
            }
        }
    }
}
