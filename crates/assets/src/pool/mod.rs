//! The redemption pool: tokens back to satoshis, one for one minus a fee, paid over Lightning
//! (through [`PaymentRail`]) or on chain.
//!
//! A redemption is first written to the ledger ([`Op::Redeem`]): the tokens are locked and the
//! request joins the queue, which is the ledger's list of pending redemptions in order. The pool
//! pays the queue's head when the [limits](limits) allow and stops at the first one they hold,
//! so redemptions are served first come, first served; a payment that succeeds is recorded as
//! [`Op::Redeemed`] (tokens burned, collateral out), one that fails for good as
//! [`Op::RedeemCancelled`] (tokens back). A crash between paying and recording loses nothing:
//! [`RedemptionPool::recover`] asks the node how each pending payment ended. Every step goes
//! through the ledger's rules, so `collateral ≥ supply` holds throughout.
//!
//! A payment is never sent twice nor counted failed while it may still succeed. A redemption
//! the pool may have tried to pay before — one pending at start (the crash may have come after
//! the node sent it), or one whose attempt ended without an answer — is a *retry*: the node's
//! record is asked first, and a retry the node refuses before sending (no route yet, say) is no
//! answer, because LDK may still hold the earlier attempt's HTLC while its record is missing.
//! Only a success, or a failure of a payment sent by the retry itself, ends it; a retry of an
//! invoice that expired more than [`IN_FLIGHT_HORIZON_SECS`] ago with no success on record is
//! cancelled, since no HTLC of it can be pending that long.
//!
//! A payout costs the node more than the sats it delivers: Lightning routing fees, or an
//! on-chain transaction's fee. The redemption's own fee (in tokens, one sat each) pays it:
//! every payout goes out with that fee as its network-fee limit, and [`Op::Redeemed`] records
//! the network fee really paid, so the ledger's collateral falls by exactly what left the node
//! and never by more than the tokens burned. A member who routes the payout through their own
//! high-fee node can therefore take nothing of the collateral that backs the other members'
//! tokens; below [`PoolConfig::min_redemption`] no redemption is taken at all.
//!
//! A redemption never waits on a payment, and neither does the queue. [`RedemptionPool::redeem`]
//! only locks the tokens and queues the request; [`RedemptionPool::process`] pays (the caller
//! runs it in the background, woken by [`RedemptionPool::woken`]). A payout whose outcome is
//! still unknown after [`PoolConfig::payout_wait_secs`] — its recipient holding the HTLC, say —
//! is *parked*: it leaves the head of the queue, its tokens stay locked and its amount stays
//! reserved under the caps, and each later round asks the node how it ended. Invoices are
//! bounded ([`PoolConfig::max_invoice_expiry_secs`]) and so is the route's CLTV
//! ([`PoolConfig::max_payout_cltv`]), so a held payment must end within days. One payout per
//! account is out at a time: an account's later redemptions wait behind its parked one, and
//! nobody else's do.
//!
//! An on-chain payout carries the redemption's [`onchain_tag`] in an `OP_RETURN` output. A
//! retry looks for that tag among the payout wallet's transactions (after a sync) before it
//! pays: found, the payout went out before the crash — it is broadcast again, in case a
//! mempool lost it, and the redemption is paid; not found, nothing went out and it is paid now.

pub mod limits;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use moip_lightning::{
    LightningError, PayRequest, PaymentHash, PaymentRail, PaymentState, RouteLimits,
};
use moip_wallet::{Fee, MoipWallet, SendRequest};

use crate::ledger::{
    fee_sats, AccountId, JournalStore, Ledger, LedgerError, Op, PendingRedemption, TokenLedger,
};
use crate::util::{lock, unix_now as now};
pub use limits::{Hold, Limiter, PoolConfig, TRUST_FLOOR};

/// How long after its invoice expired a retried redemption waits for an earlier attempt's
/// HTLC to resolve before it is cancelled: past LDK's default CLTV limit (1,008 blocks, a week)
/// with room for an on-chain resolution.
pub const IN_FLIGHT_HORIZON_SECS: u64 = 14 * 24 * 3600;

/// Prefix of an on-chain payout destination.
pub const ONCHAIN_PREFIX: &str = "bitcoin:";

/// The `OP_RETURN` data of redemption `id`'s on-chain payout in the ledger of token `token_id`:
/// `moip-redeem`, the id (8 bytes, big-endian) and the first 16 bytes of the token id's
/// SHA-256 — 35 bytes, within the 80 that relay policy allows.
pub fn onchain_tag(token_id: &str, id: u64) -> Vec<u8> {
    use bitcoin::hashes::{sha256, Hash};
    let mut tag = b"moip-redeem".to_vec();
    tag.extend_from_slice(&id.to_be_bytes());
    tag.extend_from_slice(&sha256::Hash::hash(token_id.as_bytes())[..16]);
    tag
}

/// Why a redemption was refused outright (nothing written to the ledger).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The ledger refused it (an unknown account, a balance too small, …).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The invoice is unusable: malformed, for another network, expired.
    #[error("the invoice cannot be paid: {0}")]
    Invoice(String),
    /// The invoice asks for another amount than the redemption pays.
    #[error("the invoice asks for {asked_msat} msat; this redemption pays {sats_out} sat")]
    AmountMismatch {
        /// What the invoice asks.
        asked_msat: u64,
        /// What the redemption pays.
        sats_out: u64,
    },
    /// The fee takes the whole amount.
    #[error("{0} tokens do not cover the redemption fee")]
    TooSmall(u64),
    /// Fewer tokens than the pool's minimum redemption.
    #[error("a redemption takes at least {min} tokens; {amount} asked")]
    BelowMinimum {
        /// What was asked.
        amount: u64,
        /// The minimum.
        min: u64,
    },
    /// On-chain payouts need an on-chain wallet, which this pool lacks.
    #[error("this pool pays over Lightning only")]
    NoOnchainWallet,
}

/// Where a redemption stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Paid; the tokens are burned.
    Paid,
    /// Waiting in the queue (position 0 is next), held by the limits or by the ones before it.
    Queued {
        /// Place in the queue.
        position: usize,
        /// What holds the queue's head, if the limits do.
        hold: Option<Hold>,
    },
    /// The payment failed for good; the tokens are back.
    Cancelled {
        /// Why.
        reason: String,
    },
    /// A payment is out and its result unknown (a timeout): resolved by a later
    /// [`RedemptionPool::process`] or [`RedemptionPool::recover`].
    InFlight,
}

/// A redemption as the pool answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// Its number.
    pub id: u64,
    /// Satoshis it pays.
    pub sats_out: u64,
    /// The pool's fee, in tokens.
    pub fee: u64,
    /// Where it stands.
    pub status: Status,
}

/// What one payment attempt came to.
enum Attempt {
    /// Paid, at this network fee.
    Paid {
        fee_msat: u64,
    },
    Failed(String),
    /// No answer yet. `sent`: this call's own payment is out (LDK took it), so the node's
    /// record is now of that payment and a failed record of it is final.
    Unknown {
        sent: bool,
    },
    /// Not sent, for want of outbound liquidity on a first attempt: it waits in the queue
    /// for liquidity (a deposit just received settles its channel update a moment later;
    /// the hot float is refilled) instead of failing.
    NotNow,
}

/// A payout out whose outcome is not known yet, parked off the head of the queue.
#[derive(Clone, Copy)]
struct Parked {
    /// Whose redemption (one payout per account is out at a time).
    from: AccountId,
    /// Reserved under the limits until it ends.
    reserved: u64,
    /// Its payment was sent by this process (LDK took it), which is then the only attempt
    /// out: a failed record of it is final. A payout parked after a restart whose retry LDK
    /// refused may have an earlier attempt still out, so it is retried as
    /// [`RedemptionPool::recover`] says instead.
    sent_here: bool,
}

/// What the node may pay for one redemption's payout at most: its fee, in msat.
fn fee_budget_msat(pending: &PendingRedemption) -> u64 {
    (pending.amount - pending.sats_out).saturating_mul(1000)
}

/// The pool over a ledger, a Lightning node and optionally an on-chain wallet.
pub struct RedemptionPool<S> {
    ledger: Arc<Mutex<Ledger<S>>>,
    rail: Arc<dyn PaymentRail>,
    onchain: Option<Arc<Mutex<MoipWallet>>>,
    limiter: Mutex<Limiter>,
    trust: Mutex<HashMap<u64, f64>>,
    last_hold: Mutex<Option<Hold>>,
    /// Redemptions the pool may have tried to pay already (see the module docs).
    attempted: Mutex<HashSet<u64>>,
    /// Payouts out whose outcome is unknown, by redemption.
    parked: Mutex<HashMap<u64, Parked>>,
    /// How redemptions ended, as far as this process has seen (a cancelled one is no longer
    /// pending either: only this tells it from a paid one).
    ended: Mutex<HashMap<u64, Status>>,
    busy: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
}

impl<S: JournalStore + Send + 'static> RedemptionPool<S> {
    /// A pool paying with `rail`, its limits rebuilt from the redemptions the journal records
    /// as paid in the current epoch and breaker window.
    ///
    /// # Errors
    /// A store error while reading the journal.
    pub fn new(
        ledger: Arc<Mutex<Ledger<S>>>,
        rail: Arc<dyn PaymentRail>,
        config: PoolConfig,
    ) -> Result<RedemptionPool<S>, PoolError> {
        let mut limiter = Limiter::new(config);
        {
            let mut ledger = lock(&ledger);
            let mut requested = HashMap::new();
            for entry in ledger.entries(0)? {
                match entry.op {
                    Op::Redeem {
                        id, from, sats_out, ..
                    } => {
                        requested.insert(id, (from, sats_out));
                    }
                    Op::Redeemed { id, fee_msat } => {
                        if let Some((from, sats_out)) = requested.get(&id) {
                            limiter.record(entry.time, from, sats_out + fee_sats(fee_msat));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(RedemptionPool {
            ledger,
            rail,
            onchain: None,
            limiter: Mutex::new(limiter),
            trust: Mutex::new(HashMap::new()),
            last_hold: Mutex::new(None),
            attempted: Mutex::new(HashSet::new()),
            parked: Mutex::new(HashMap::new()),
            ended: Mutex::new(HashMap::new()),
            busy: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Lets the pool pay `bitcoin:<address>` destinations from `wallet`.
    pub fn with_onchain(mut self, wallet: MoipWallet) -> RedemptionPool<S> {
        self.onchain = Some(Arc::new(Mutex::new(wallet)));
        self
    }

    /// The fee for redeeming `amount` tokens.
    pub fn fee(&self, amount: u64) -> u64 {
        lock(&self.limiter).fee(amount)
    }

    /// The ledger the pool redeems from.
    pub fn ledger(&self) -> &Arc<Mutex<Ledger<S>>> {
        &self.ledger
    }

    /// Redeems `amount` of `from`'s tokens, paying `payout` — a BOLT11 invoice for exactly the
    /// amount after the fee (or an amountless one), or `bitcoin:<address>` — with the account's
    /// cap scaled by `trust` (0 to 1). The tokens are locked and the request queued at once;
    /// the payment goes out in the next [`RedemptionPool::process`] (which this wakes), never
    /// while the caller waits.
    ///
    /// # Errors
    /// [`PoolError`] when the request is refused outright; nothing is locked then.
    pub async fn redeem(
        &self,
        from: &AccountId,
        amount: u64,
        payout: &str,
        trust: f64,
    ) -> Result<Ticket, PoolError> {
        let config = self.config();
        if amount < config.min_redemption {
            return Err(PoolError::BelowMinimum {
                amount,
                min: config.min_redemption,
            });
        }
        let fee = self.fee(amount);
        let sats_out = amount - fee;
        if sats_out == 0 {
            return Err(PoolError::TooSmall(amount));
        }
        if payout.starts_with(ONCHAIN_PREFIX) {
            if self.onchain.is_none() {
                return Err(PoolError::NoOnchainWallet);
            }
        } else {
            let invoice = self
                .rail
                .decode_invoice(payout)
                .map_err(|e| PoolError::Invoice(e.to_string()))?;
            if invoice.expires_at <= now() {
                return Err(PoolError::Invoice("it has expired".into()));
            }
            if invoice.expires_at > now().saturating_add(config.max_invoice_expiry_secs) {
                return Err(PoolError::Invoice(format!(
                    "it expires too late: at most {} s from now",
                    config.max_invoice_expiry_secs
                )));
            }
            if invoice.min_final_cltv_expiry_delta >= u64::from(config.max_payout_cltv) {
                return Err(PoolError::Invoice(format!(
                    "its final CLTV delta ({} blocks) leaves no route within the pool's {} blocks",
                    invoice.min_final_cltv_expiry_delta, config.max_payout_cltv
                )));
            }
            if let Some(asked_msat) = invoice.amount_msat {
                if asked_msat != sats_out * 1000 {
                    return Err(PoolError::AmountMismatch {
                        asked_msat,
                        sats_out,
                    });
                }
            }
            // A second redemption to the same invoice would find "already paid" and burn its
            // tokens for nothing.
            if self.invoice_in_use(invoice.payment_hash).await {
                return Err(PoolError::Invoice(
                    "this node has paid it, is paying it, or has it queued".into(),
                ));
            }
        }
        let id = {
            let mut ledger = lock(&self.ledger);
            let id = ledger.state().next_redemption();
            ledger.commit(Op::Redeem {
                id,
                from: *from,
                amount,
                sats_out,
                payout: payout.to_owned(),
            })?;
            id
        };
        lock(&self.trust).insert(id, trust);
        self.wake.notify_one();
        let status = self.queued_status(id);
        Ok(Ticket {
            id,
            sats_out,
            fee,
            status,
        })
    }

    /// Whether a pending redemption pays the invoice with `hash`, or the node has a payment
    /// for it that did not fail.
    async fn invoice_in_use(&self, hash: PaymentHash) -> bool {
        let queued = {
            let ledger = lock(&self.ledger);
            ledger.state().redemptions().values().any(|r| {
                moip_lightning::read_invoice(&r.payout).is_ok_and(|i| i.payment_hash == hash)
            })
        };
        queued
            || match self.rail.payment_by_hash(hash).await {
                Ok(Some(record)) => record.state != PaymentState::Failed,
                Ok(None) => false,
                // Cannot tell: refuse rather than risk it.
                Err(_) => true,
            }
    }

    /// Returns once a redemption was queued since the last call (or at once if one was queued
    /// before anyone waited): the signal for a background task to [process](Self::process).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    fn queued_status(&self, id: u64) -> Status {
        if lock(&self.parked).contains_key(&id) {
            return Status::InFlight;
        }
        let mut ledger = lock(&self.ledger);
        if let Some(position) = ledger.state().redemptions().keys().position(|k| *k == id) {
            return Status::Queued {
                position,
                hold: *lock(&self.last_hold),
            };
        }
        if let Some(status) = lock(&self.ended).get(&id) {
            return status.clone();
        }
        // Ended before this process started: the journal says how.
        let ended = ledger.entries(0).ok().and_then(|entries| {
            entries.into_iter().find_map(|e| match e.op {
                Op::Redeemed { id: i, .. } if i == id => Some(Status::Paid),
                Op::RedeemCancelled { id: i } if i == id => Some(Status::Cancelled {
                    reason: "the payment failed; the tokens are back".into(),
                }),
                _ => None,
            })
        });
        drop(ledger);
        match ended {
            Some(status) => {
                lock(&self.ended).insert(id, status.clone());
                status
            }
            // Unreadable journal: say only that it is not waiting.
            None => Status::InFlight,
        }
    }

    /// Where redemption `id` stands now.
    pub fn status(&self, id: u64) -> Option<Status> {
        let ledger = lock(&self.ledger);
        if id >= ledger.state().next_redemption() {
            return None;
        }
        drop(ledger);
        Some(self.queued_status(id))
    }

    /// Settles the parked payouts whose outcome the node now knows, then pays the queue in
    /// order for as long as the limits allow; returns what happened to each redemption it
    /// took up. A payout still unknown after [`PoolConfig::payout_wait_secs`] is parked and
    /// the queue goes on (see the module docs).
    pub async fn process(&self) -> Vec<(u64, Status)> {
        let _one_at_a_time = self.busy.lock().await;
        let mut outcomes = Vec::new();
        let parked: Vec<(u64, Parked)> = lock(&self.parked).iter().map(|(i, p)| (*i, *p)).collect();
        for (id, flight) in parked {
            let Some(pending) = self.pending(id) else {
                lock(&self.parked).remove(&id);
                continue;
            };
            let attempt = match pending.payout.strip_prefix(ONCHAIN_PREFIX) {
                Some(address) => self.pay_onchain(id, address, &pending).await,
                None if flight.sent_here => self.poll_parked(&pending).await,
                None => self.pay_lightning(id, &pending).await,
            };
            if let Attempt::Unknown { sent: true } = attempt {
                if let Some(p) = lock(&self.parked).get_mut(&id) {
                    p.sent_here = true;
                }
            }
            if let Some(status) = self.conclude(id, &pending, flight.reserved, attempt) {
                lock(&self.parked).remove(&id);
                outcomes.push((id, status));
            }
        }
        let queue: Vec<(u64, PendingRedemption)> = {
            let ledger = lock(&self.ledger);
            ledger
                .state()
                .redemptions()
                .iter()
                .map(|(id, r)| (*id, r.clone()))
                .collect()
        };
        for (id, pending) in queue {
            let out = {
                let parked = lock(&self.parked);
                parked.contains_key(&id) || parked.values().any(|p| p.from == pending.from)
            };
            if out {
                continue;
            }
            let trust = lock(&self.trust).get(&id).copied().unwrap_or(0.0);
            // The most that may leave: what it pays plus its fee, the network's limit.
            let reserved = pending.amount;
            let checked = lock(&self.limiter).check(now(), &pending.from, reserved, trust);
            if let Err(hold) = checked {
                *lock(&self.last_hold) = Some(hold);
                break;
            }
            *lock(&self.last_hold) = None;
            lock(&self.limiter).reserve(&pending.from, reserved);
            let first = !lock(&self.attempted).contains(&id);
            let attempt = if let Some(address) = pending.payout.strip_prefix(ONCHAIN_PREFIX) {
                self.pay_onchain(id, address, &pending).await
            } else {
                self.pay_lightning(id, &pending).await
            };
            if let Attempt::NotNow = attempt {
                // Nothing left the node: as if never tried. Later ones may still fit.
                lock(&self.attempted).remove(&id);
                lock(&self.limiter).release(&pending.from, reserved);
                continue;
            }
            let sent = matches!(attempt, Attempt::Unknown { sent: true });
            match self.conclude(id, &pending, reserved, attempt) {
                Some(status) => outcomes.push((id, status)),
                None => {
                    lock(&self.parked).insert(
                        id,
                        Parked {
                            from: pending.from,
                            reserved,
                            sent_here: first || sent,
                        },
                    );
                    outcomes.push((id, Status::InFlight));
                }
            }
        }
        outcomes
    }

    /// Redemption `id`, if it is still pending.
    fn pending(&self, id: u64) -> Option<PendingRedemption> {
        lock(&self.ledger).state().redemptions().get(&id).cloned()
    }

    /// Records how redemption `id` ended — paid (burned, its network fee out of collateral, and
    /// counted against the limits at what it cost) or failed (tokens back) — releasing the
    /// `reserved` room under the limits; returns its status, `None` while the result is unknown.
    fn conclude(
        &self,
        id: u64,
        pending: &PendingRedemption,
        reserved: u64,
        attempt: Attempt,
    ) -> Option<Status> {
        let status = match attempt {
            Attempt::Paid { fee_msat } => {
                if self.settle(id, Op::Redeemed { id, fee_msat }) {
                    let out = pending.sats_out + fee_sats(fee_msat);
                    lock(&self.limiter).record(now(), &pending.from, out);
                }
                Status::Paid
            }
            Attempt::Failed(reason) => {
                self.settle(id, Op::RedeemCancelled { id });
                Status::Cancelled { reason }
            }
            Attempt::Unknown { .. } | Attempt::NotNow => return None,
        };
        lock(&self.ended).insert(id, status.clone());
        lock(&self.limiter).release(&pending.from, reserved);
        Some(status)
    }

    /// Records the end of redemption `id`; false if it was already recorded.
    fn settle(&self, id: u64, op: Op) -> bool {
        let mut ledger = lock(&self.ledger);
        if !ledger.state().redemptions().contains_key(&id) {
            return false;
        }
        match ledger.commit(op) {
            Ok(_) => {
                lock(&self.trust).remove(&id);
                lock(&self.attempted).remove(&id);
                true
            }
            Err(e) => {
                tracing::error!("redemption {id}: could not record its end: {e}");
                false
            }
        }
    }

    /// Pays redemption `id`'s invoice, with its fee as the routing-fee limit — or, on a retry,
    /// first learns whether an earlier attempt paid it (see the module docs).
    async fn pay_lightning(&self, id: u64, pending: &PendingRedemption) -> Attempt {
        let invoice = &pending.payout;
        let summary = match moip_lightning::read_invoice(invoice) {
            Ok(summary) => summary,
            Err(e) => return Attempt::Failed(e.to_string()),
        };
        let hash = summary.payment_hash;
        let budget = fee_budget_msat(pending);
        let retry = !lock(&self.attempted).insert(id);
        if retry {
            if let paid @ Attempt::Paid { .. } = self.outcome_of(hash, true, budget).await {
                return paid;
            }
            if summary.expires_at.saturating_add(IN_FLIGHT_HORIZON_SECS) < now() {
                return Attempt::Failed(
                    "the invoice expired long ago and no payment to it succeeded".into(),
                );
            }
        }
        let decoded = match self.rail.decode_invoice(invoice) {
            Ok(decoded) => decoded,
            Err(_) if retry => return Attempt::Unknown { sent: false },
            Err(e) => return Attempt::Failed(e.to_string()),
        };
        let config = self.config();
        let mut request = PayRequest::new(invoice.as_str());
        if decoded.amount_msat.is_none() {
            request.amount_msat = Some(pending.sats_out * 1000);
        }
        request.limits = RouteLimits {
            max_fee_msat: Some(budget),
            max_cltv_expiry_delta: Some(config.max_payout_cltv),
            ..RouteLimits::default()
        };
        request.timeout = Duration::from_secs(config.payout_wait_secs);
        match self.rail.pay(request).await {
            Ok(outcome) => Attempt::Paid {
                // Unknown fee: count the most it can have been.
                fee_msat: outcome.fee_paid_msat.unwrap_or(budget),
            },
            // LDK's last word on the payment this call sent.
            Err(e @ LightningError::PaymentFailed { .. }) => Attempt::Failed(e.to_string()),
            // Checked before anything is sent: the payout waits for liquidity.
            Err(LightningError::InsufficientBalance { .. }) if !retry => Attempt::NotNow,
            // Refused before sending: the end of a first attempt, no answer for a retry.
            Err(
                e @ (LightningError::NotSent { .. }
                | LightningError::InsufficientBalance { .. }
                | LightningError::InvoiceExpired { .. }
                | LightningError::Malformed { .. }
                | LightningError::WrongNetwork { .. }
                | LightningError::InvalidAmount(_)),
            ) if !retry => Attempt::Failed(e.to_string()),
            // Sent, and no outcome within the wait: the record is now of this payment.
            Err(LightningError::Timeout { .. }) => {
                match self.outcome_of(hash, false, budget).await {
                    Attempt::Unknown { .. } => Attempt::Unknown { sent: true },
                    known => known,
                }
            }
            Err(_) => self.outcome_of(hash, retry, budget).await,
        }
    }

    /// How a parked payout this process sent ended, if the node knows: it was the only
    /// attempt, so a failed record is final.
    async fn poll_parked(&self, pending: &PendingRedemption) -> Attempt {
        match moip_lightning::read_invoice(&pending.payout) {
            Ok(invoice) => {
                self.outcome_of(invoice.payment_hash, false, fee_budget_msat(pending))
                    .await
            }
            Err(e) => Attempt::Failed(e.to_string()),
        }
    }

    /// What the node knows of the payment for `hash`, whose network fee was limited to
    /// `budget_msat`. On a retry a failed record is no answer: it may be the record of a
    /// refused retry while the first attempt is still out.
    async fn outcome_of(&self, hash: PaymentHash, retry: bool, budget_msat: u64) -> Attempt {
        match self.rail.payment_by_hash(hash).await {
            Ok(Some(record)) => match record.state {
                PaymentState::Succeeded => Attempt::Paid {
                    fee_msat: record.fee_paid_msat.unwrap_or(budget_msat),
                },
                PaymentState::Failed if !retry => Attempt::Failed("the payment failed".into()),
                PaymentState::Failed | PaymentState::Pending => Attempt::Unknown { sent: false },
            },
            _ => Attempt::Unknown { sent: false },
        }
    }

    /// Pays redemption `id` on chain, tagged, if the transaction's fee fits in the
    /// redemption's — or, on a retry, first looks for the tagged payout an earlier attempt may
    /// have sent (see the module docs).
    async fn pay_onchain(&self, id: u64, address: &str, pending: &PendingRedemption) -> Attempt {
        let sats_out = pending.sats_out;
        let budget = fee_budget_msat(pending);
        let Some(wallet) = self.onchain.clone() else {
            return Attempt::Failed("this pool pays over Lightning only".into());
        };
        let retry = !lock(&self.attempted).insert(id);
        let token = lock(&self.ledger)
            .token()
            .map(|t| t.id.clone())
            .unwrap_or_default();
        let tag = onchain_tag(&token, id);
        let address = address.to_owned();
        let paid = tokio::task::spawn_blocking(move || {
            let mut wallet = lock(&wallet);
            if let Err(e) = wallet.sync() {
                // A retry cannot tell what went out without a sync: no answer yet.
                return if retry {
                    Attempt::Unknown { sent: false }
                } else {
                    Attempt::Failed(e.to_string())
                };
            }
            if retry {
                match wallet.tagged(&tag) {
                    Ok(Some((tx, confirmed))) => {
                        return if confirmed || wallet.rebroadcast(&tx).is_ok() {
                            // Its fee was checked against the budget before it went out.
                            Attempt::Paid { fee_msat: budget }
                        } else {
                            Attempt::Unknown { sent: false }
                        };
                    }
                    Ok(None) => {} // nothing went out
                    Err(e) => return Attempt::Failed(e.to_string()),
                }
            }
            let request = SendRequest {
                recipients: vec![(address, bitcoin::Amount::from_sat(sats_out))],
                drain_to: None,
                fee: Fee::Target(6),
                coins: vec![],
                data: Some(tag),
            };
            let prepared = match wallet.prepare_send(&request) {
                Ok(prepared) => prepared,
                // Building or signing failed: nothing went out.
                Err(e) => return Attempt::Failed(e.to_string()),
            };
            let fee_msat = prepared.fee.to_sat().saturating_mul(1000);
            if fee_msat > budget {
                return Attempt::Failed(format!(
                    "the on-chain fee ({} sat) exceeds the redemption's fee ({} sat)",
                    prepared.fee.to_sat(),
                    budget / 1000
                ));
            }
            match wallet.broadcast(&prepared.psbt) {
                Ok(_) => Attempt::Paid { fee_msat },
                // The server refused it: nothing went out.
                Err(e @ moip_wallet::WalletError::Broadcast(_)) => Attempt::Failed(e.to_string()),
                // It may have gone out (an answer lost): the retry looks for the tag.
                Err(_) => Attempt::Unknown { sent: false },
            }
        })
        .await;
        paid.unwrap_or(Attempt::Unknown { sent: false })
    }

    /// After a restart: settles every pending Lightning redemption the node saw paid, then
    /// processes the queue. Every redemption pending now is a retry from here on, since the
    /// crash may have come after the node sent its payment.
    pub async fn recover(&self) -> Vec<(u64, Status)> {
        let pending: Vec<(u64, PendingRedemption)> = {
            let ledger = lock(&self.ledger);
            ledger
                .state()
                .redemptions()
                .iter()
                .map(|(id, r)| (*id, r.clone()))
                .collect()
        };
        let mut outcomes = Vec::new();
        for (id, pending) in pending {
            lock(&self.attempted).insert(id);
            if pending.payout.starts_with(ONCHAIN_PREFIX) {
                // Settled by its first retry, which looks for the tagged payout first.
                continue;
            }
            let Ok(invoice) = moip_lightning::read_invoice(&pending.payout) else {
                continue;
            };
            let attempt = self
                .outcome_of(invoice.payment_hash, true, fee_budget_msat(&pending))
                .await;
            if let paid @ Attempt::Paid { .. } = attempt {
                if let Some(status) = self.conclude(id, &pending, 0, paid) {
                    outcomes.push((id, status));
                }
            }
        }
        outcomes.extend(self.process().await);
        outcomes
    }

    /// The pool's fee and limits.
    pub fn config(&self) -> PoolConfig {
        lock(&self.limiter).config().clone()
    }

    /// Satoshis paid out in the current epoch, network fees included.
    pub fn epoch_out(&self) -> u64 {
        lock(&self.limiter).epoch_out()
    }

    /// Whether the circuit breaker holds payouts now.
    pub fn breaker_tripped(&self) -> bool {
        lock(&self.limiter).tripped(now())
    }

    /// Tokens in the queue and the queue's length.
    pub fn queue(&self) -> (u64, usize) {
        let ledger = lock(&self.ledger);
        let redemptions = ledger.state().redemptions();
        (
            redemptions.values().map(|r| r.amount).sum(),
            redemptions.len(),
        )
    }

    /// The ledger's supply and collateral, for a caller's invariant checks.
    pub fn totals(&self) -> (u64, u64) {
        let ledger = lock(&self.ledger);
        (ledger.supply(), ledger.collateral())
    }
}
