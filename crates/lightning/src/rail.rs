//! The `PaymentRail` trait: the one seam between Lightning and the layers above it.
//!
//! The Moneysocket provider, the NWC service, the redemption pool and work payouts need to
//! create invoices, pay them, hold a payment in escrow until a condition is met, and watch what
//! happens — never to open channels or pick routes. Keeping them behind this trait lets each of
//! them be written and tested without knowing about LDK, and keeps the types they see small:
//! invoices travel as BOLT11 strings, hashes and preimages as 32-byte newtypes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use ldk_node::bitcoin::hashes::{sha256, Hash};
use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::bitcoin::Network;

use crate::error::{LightningError, Result};

macro_rules! hex32 {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for byte in self.0 {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }

        impl FromStr for $name {
            type Err = LightningError;
            fn from_str(s: &str) -> Result<Self> {
                let malformed = |reason: &str| LightningError::Malformed {
                    what: $what,
                    reason: reason.to_string(),
                };
                let s = s.trim();
                // `from_str_radix` alone would take a sign ("+f" reads as 0x0f).
                if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(malformed("expected 64 hex digits"));
                }
                let mut out = [0u8; 32];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                        .map_err(|_| malformed("not hexadecimal"))?;
                }
                Ok($name(out))
            }
        }
    };
}

hex32!(
    /// The SHA-256 hash that identifies a Lightning payment.
    PaymentHash,
    "payment hash"
);
hex32!(
    /// The secret whose hash is the payment hash; revealing it settles the payment.
    Preimage,
    "preimage"
);
hex32!(
    /// The node-local id of a payment (for BOLT11 and keysend it equals the payment hash; BOLT12
    /// payments get a random id).
    PaymentId,
    "payment id"
);

impl fmt::Debug for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentHash({self})")
    }
}

impl fmt::Debug for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentId({self})")
    }
}

/// A preimage is what a hold invoice's escrow protects: Debug shows only its hash, so a log
/// line never settles a payment for someone who reads it.
impl fmt::Debug for Preimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Preimage(hash {})", self.payment_hash())
    }
}

impl Preimage {
    /// A fresh random preimage (for hold invoices whose secret the caller keeps).
    pub fn random() -> Preimage {
        Preimage(rand::random())
    }

    /// SHA-256 of the preimage.
    pub fn payment_hash(&self) -> PaymentHash {
        PaymentHash(sha256::Hash::hash(&self.0).to_byte_array())
    }
}

/// A BOLT11 invoice this node issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invoice {
    /// The encoded invoice, to hand to the payer.
    pub bolt11: String,
    /// Its payment hash.
    pub payment_hash: PaymentHash,
    /// The amount asked, or `None` for an any-amount invoice.
    pub amount_msat: Option<u64>,
    /// When it expires, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// The CLTV delta the recipient asks for the last hop, in blocks: how long at least the
    /// payment's HTLC stays locked if the recipient holds it.
    pub min_final_cltv_expiry_delta: u64,
}

/// What to pay and under which limits.
#[derive(Clone, Debug)]
pub struct PayRequest {
    /// A BOLT11 invoice.
    pub invoice: String,
    /// The amount, required for any-amount invoices; may exceed a fixed amount (a tip).
    pub amount_msat: Option<u64>,
    /// Fee and splitting limits.
    pub limits: RouteLimits,
    /// How long to wait for the outcome. The payment is not abandoned when it passes: the result
    /// shows up later in the events and the history.
    pub timeout: Duration,
}

impl PayRequest {
    /// Pays `invoice` as it is, with LDK's default fee limit and a one-minute wait.
    pub fn new(invoice: impl Into<String>) -> PayRequest {
        PayRequest {
            invoice: invoice.into(),
            amount_msat: None,
            limits: RouteLimits::default(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// A spontaneous (keysend) payment and under which limits: NIP-47's `pay_keysend`.
#[derive(Clone, Debug)]
pub struct KeysendRequest {
    /// The payee's node id.
    pub node_id: PublicKey,
    /// What the payee receives.
    pub amount_msat: u64,
    /// The preimage to send: the payer chooses it in keysend, so its hash, the payment's id,
    /// is known before the payment leaves (a wallet service charges an account under it).
    pub preimage: Preimage,
    /// Custom TLV records for the payee (type, value), as podcasting 2.0 boostagrams use.
    pub tlv_records: Vec<(u64, Vec<u8>)>,
    /// Fee and splitting limits.
    pub limits: RouteLimits,
    /// How long to wait for the outcome; the payment is not abandoned when it passes.
    pub timeout: Duration,
}

/// Limits on how a payment is routed. The default leaves all three to LDK: fees up to 1% plus
/// 50 sat, at most 10 parts, a CLTV delta of at most 1,008 blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteLimits {
    /// The most the sender will pay in routing fees over all parts.
    pub max_fee_msat: Option<u64>,
    /// The most parts (paths) a multi-path payment is split into. LDK only tries paths that
    /// carry at least 1/`max_parts` of the amount, so a payment that needs a thin path (an
    /// announced ldk-node channel lets only 10% of its capacity be in flight) needs more parts.
    pub max_parts: Option<u8>,
    /// The most blocks the payment's HTLCs may stay locked, summed over the route (the final
    /// hop's delta included). It bounds how long a recipient who holds the payment can keep
    /// the sender's funds out and its outcome unknown.
    pub max_cltv_expiry_delta: Option<u32>,
}

impl RouteLimits {
    /// A fee limit, LDK's default for the rest.
    pub fn max_fee(max_fee_msat: u64) -> RouteLimits {
        RouteLimits {
            max_fee_msat: Some(max_fee_msat),
            ..RouteLimits::default()
        }
    }
}

/// A completed outgoing payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentOutcome {
    /// The node-local id.
    pub payment_id: PaymentId,
    /// The payment hash, if known (BOLT12 payments learn it from the invoice).
    pub payment_hash: Option<PaymentHash>,
    /// The proof of payment.
    pub preimage: Option<Preimage>,
    /// The amount delivered to the recipient.
    pub amount_msat: Option<u64>,
    /// The routing fees paid over all parts.
    pub fee_paid_msat: Option<u64>,
}

/// What the node holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    /// Our side of all channels (what we would get if they all closed now, before fees).
    pub lightning_sats: u64,
    /// What we can send now over usable channels (sum of each channel's next-HTLC limit).
    pub sendable_msat: u64,
    /// What we can receive now over usable channels.
    pub receivable_msat: u64,
    /// The on-chain wallet, confirmed and unconfirmed.
    pub onchain_sats: u64,
    /// The part of the on-chain wallet that can be spent (less the anchor-channel reserve).
    pub onchain_spendable_sats: u64,
}

/// A channel as events name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelRef {
    /// The id this node gave the channel when it was opened or accepted.
    pub user_channel_id: u128,
    /// The peer, when LDK knows it.
    pub counterparty: Option<PublicKey>,
}

/// Something that happened on the node. Delivered to every subscriber of
/// [`PaymentRail::events`]; the authoritative record remains the payment history.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LightningEvent {
    /// An incoming payment was claimed and is ours.
    PaymentReceived {
        /// The payment id (equal to the hash for BOLT11 and keysend).
        payment_id: Option<PaymentId>,
        /// Its hash.
        payment_hash: PaymentHash,
        /// What arrived.
        amount_msat: u64,
    },
    /// A payment to a hold invoice arrived and waits for settle or cancel. It must be decided
    /// before the HTLCs' deadline, or the node's channel is force-closed by the payer's side.
    HoldInvoiceAccepted {
        /// The hold invoice's hash.
        payment_hash: PaymentHash,
        /// What is held.
        amount_msat: u64,
        /// The block height by which it must be settled, if known.
        claim_deadline: Option<u32>,
    },
    /// An outgoing payment succeeded.
    PaymentSent {
        /// The payment id.
        payment_id: Option<PaymentId>,
        /// Its hash.
        payment_hash: PaymentHash,
        /// The routing fees paid.
        fee_paid_msat: Option<u64>,
    },
    /// An outgoing payment failed for good.
    PaymentFailed {
        /// The payment id.
        payment_id: Option<PaymentId>,
        /// Its hash, if known.
        payment_hash: Option<PaymentHash>,
        /// Why, as LDK reports it.
        reason: String,
    },
    /// We forwarded a payment and earned a fee.
    PaymentForwarded {
        /// The fee earned.
        fee_earned_msat: Option<u64>,
        /// The amount sent on.
        amount_forwarded_msat: Option<u64>,
    },
    /// A channel's funding transaction was broadcast.
    ChannelPending {
        /// The channel.
        channel: ChannelRef,
    },
    /// A channel can carry payments.
    ChannelReady {
        /// The channel.
        channel: ChannelRef,
    },
    /// A channel was closed.
    ChannelClosed {
        /// The channel.
        channel: ChannelRef,
        /// Why, as LDK reports it.
        reason: String,
    },
}

/// A payment's kind in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentType {
    /// A BOLT11 invoice.
    Bolt11,
    /// A BOLT12 offer.
    Bolt12,
    /// A spontaneous (keysend) payment.
    Keysend,
    /// An on-chain transaction of the node's wallet.
    Onchain,
}

/// Where a payment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentState {
    /// In flight (or a hold invoice not yet decided).
    Pending,
    /// Completed.
    Succeeded,
    /// Failed for good (or a hold invoice cancelled).
    Failed,
}

/// One entry of the payment history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRecord {
    /// The node-local id.
    pub id: PaymentId,
    /// What kind of payment.
    pub kind: PaymentType,
    /// `true` when we received it.
    pub inbound: bool,
    /// Where it stands.
    pub state: PaymentState,
    /// The amount, if known.
    pub amount_msat: Option<u64>,
    /// Routing fees we paid (outbound only).
    pub fee_paid_msat: Option<u64>,
    /// The payment hash, for Lightning payments.
    pub payment_hash: Option<PaymentHash>,
    /// The preimage, once known.
    pub preimage: Option<Preimage>,
    /// Last change, seconds since the Unix epoch.
    pub updated_at: u64,
}

/// Who the node is, for a wallet service's `get_info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node id.
    pub node_id: PublicKey,
    /// The chain it runs on.
    pub network: Network,
    /// Its announced alias, if it has one.
    pub alias: Option<String>,
    /// The best block it has processed.
    pub block_height: u32,
}

/// Payments over Lightning, as the upper layers need them.
///
/// Every method returns typed errors; an error of kind [`LightningError::Malformed`],
/// [`LightningError::InvoiceExpired`], [`LightningError::WrongNetwork`],
/// [`LightningError::InvalidAmount`] or [`LightningError::InsufficientBalance`] means nothing
/// was sent and nothing was recorded.
#[async_trait::async_trait]
pub trait PaymentRail: Send + Sync {
    /// Issues a BOLT11 invoice for `amount_msat` (`None`: the payer chooses), valid for
    /// `expiry_secs`.
    async fn create_invoice(
        &self,
        amount_msat: Option<u64>,
        description: &str,
        expiry_secs: u32,
    ) -> Result<Invoice>;

    /// Pays a BOLT11 invoice (over several paths if needed) and waits for the outcome.
    async fn pay(&self, request: PayRequest) -> Result<PaymentOutcome>;

    /// Issues a BOLT11 invoice that commits to `description_hash`, the SHA-256 of a
    /// description the payer holds (LNURL-pay and zaps: the description is too long for an
    /// invoice, or is a signed zap request).
    ///
    /// The default refuses: a rail that cannot make one says so, nothing is made.
    async fn create_invoice_for_description_hash(
        &self,
        _amount_msat: Option<u64>,
        _description_hash: [u8; 32],
        _expiry_secs: u32,
    ) -> Result<Invoice> {
        Err(LightningError::Internal(
            "this rail cannot make invoices with a description hash".into(),
        ))
    }

    /// Sends a keysend payment and waits for the outcome.
    ///
    /// The default refuses: nothing is sent.
    async fn pay_keysend(&self, _request: KeysendRequest) -> Result<PaymentOutcome> {
        Err(LightningError::Internal(
            "this rail cannot send keysend payments".into(),
        ))
    }

    /// Signs `message` with the node's key the way LND's and CLN's `signmessage` do (the
    /// "Lightning Signed Message:" prefix, zbase32), so any of their verifiers checks it
    /// against the node id.
    ///
    /// The default refuses.
    fn sign_message(&self, _message: &[u8]) -> Result<String> {
        Err(LightningError::Internal(
            "this rail cannot sign messages".into(),
        ))
    }

    /// Issues an invoice for a hash whose preimage the caller keeps. A payment to it is held
    /// (reported by [`LightningEvent::HoldInvoiceAccepted`]) until
    /// [`settle_hold_invoice`](Self::settle_hold_invoice) or
    /// [`cancel_hold_invoice`](Self::cancel_hold_invoice): the escrow primitive.
    async fn create_hold_invoice(
        &self,
        payment_hash: PaymentHash,
        amount_msat: u64,
        description: &str,
        expiry_secs: u32,
    ) -> Result<Invoice>;

    /// Claims a held payment by revealing its preimage.
    async fn settle_hold_invoice(&self, preimage: Preimage) -> Result<()>;

    /// Fails a held payment back to the payer (or refuses future ones to that hash).
    async fn cancel_hold_invoice(&self, payment_hash: PaymentHash) -> Result<()>;

    /// Reminds the rail that a payment of `amount_msat` to the hold invoice `payment_hash`
    /// arrived before it restarted: the node reports an arrival once
    /// ([`LightningEvent::HoldInvoiceAccepted`]) and forgets it when it stops, though the
    /// payment stays held; whoever kept the report hands it back before settling. A rail that
    /// keeps its own record ignores this.
    fn restore_held(&self, _payment_hash: PaymentHash, _amount_msat: u64) {}

    /// Current balances.
    async fn balance(&self) -> Result<Balance>;

    /// Decodes a BOLT11 invoice and checks it is for this node's network and not expired,
    /// without paying it (a wallet service checks a budget against its amount first).
    fn decode_invoice(&self, invoice: &str) -> Result<Invoice>;

    /// The payment history, oldest update first.
    async fn payments(&self) -> Result<Vec<PaymentRecord>>;

    /// The Lightning payment (either way) with this hash, if the node knows one.
    async fn payment_by_hash(&self, payment_hash: PaymentHash) -> Result<Option<PaymentRecord>>;

    /// Who the node is.
    fn node_info(&self) -> NodeInfo;

    /// A new subscription to the node's events, starting now. A subscriber that falls more
    /// than the channel's capacity behind gets `Lagged` and should reread the history.
    fn events(&self) -> tokio::sync::broadcast::Receiver<LightningEvent>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_preimages_refuse_signs() {
        // Found by review after fuzzing found the same sign in three other hex parsers: "+a"
        // read as 0x0a, so 64 characters that are not hex named a payment.
        let signed = "+a".repeat(32);
        assert!(matches!(
            signed.parse::<PaymentHash>(),
            Err(LightningError::Malformed { .. })
        ));
        assert!(signed.parse::<Preimage>().is_err());
        let hash: PaymentHash = "0a".repeat(32).parse().expect("hex");
        assert_eq!(hash.to_string(), "0a".repeat(32));
    }
}
