//! The crate's one error type.
//!
//! Variants name what the caller can act on (a bad invoice, not enough balance, a payment that
//! the network refused) rather than which LDK call failed. Checks that can be made before
//! anything is sent (parsing, expiry, network, balance) are made first, so an error of those
//! kinds guarantees that no payment was attempted and nothing was recorded.

use std::time::Duration;

pub use ldk_node::NodeError;

/// Why a Lightning operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LightningError {
    /// The configuration is inconsistent (checked before any I/O).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The seed file could not be opened or created.
    #[error("seed: {0}")]
    Seed(#[from] moip_wallet::keystore::KeystoreError),
    /// ldk-node refused to build the node (storage, seed, network mismatch…).
    #[error("cannot build the lightning node: {0}")]
    Build(#[from] ldk_node::BuildError),
    /// The text is not a BOLT11 invoice, a BOLT12 offer, a node id or an address we can use.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed ("invoice", "offer", "node id", …).
        what: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// The invoice or offer is for another network than the node's.
    #[error("the {what} is for another network than this node's ({expected})")]
    WrongNetwork {
        /// "invoice" or "offer".
        what: &'static str,
        /// The node's network.
        expected: String,
    },
    /// The invoice's expiry time has passed; paying it would fail at the recipient.
    #[error("the invoice expired {ago_secs} s ago")]
    InvoiceExpired {
        /// How long ago it expired.
        ago_secs: u64,
    },
    /// An invoice without an amount was given no amount, or an amount below the invoice's.
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// The payment plus its fee limit is more than the node can send over its channels now.
    #[error(
        "insufficient balance: {requested_msat} msat (with fee limit) requested, \
         {available_msat} msat can be sent over the usable channels"
    )]
    InsufficientBalance {
        /// Amount plus the maximum routing fee.
        requested_msat: u64,
        /// The sum of what each usable channel can send in its next HTLC.
        available_msat: u64,
    },
    /// This invoice was already paid or is being paid.
    #[error("the invoice was already paid or is being paid")]
    DuplicatePayment,
    /// The node refused the payment before sending anything: no route within the limits, or
    /// LDK refused the parameters. It says nothing of an earlier attempt to pay the same
    /// invoice, which may still be in flight.
    #[error("the payment was not sent: {reason}")]
    NotSent {
        /// Why.
        reason: String,
    },
    /// The payment was sent and failed (no route, recipient rejected, retries exhausted…).
    #[error("payment failed: {reason}")]
    PaymentFailed {
        /// LDK's failure reason, if it gave one.
        reason: String,
    },
    /// A hold invoice was settled or cancelled before any payment to it arrived.
    #[error("no payment to the hold invoice {0} has arrived (yet)")]
    HoldInvoiceNotAccepted(String),
    /// The preimage does not hash to any hold invoice's payment hash we know.
    #[error("unknown payment hash {0}")]
    UnknownPayment(String),
    /// The channel went away while it was being opened: the peer refused it, or the funding
    /// could not be completed.
    #[error("the channel open failed: the peer refused it or funding was aborted")]
    ChannelRefused,
    /// No channel with that id and counterparty.
    #[error("no channel {0}")]
    UnknownChannel(String),
    /// Waiting for an outcome took longer than the caller allowed. The operation may still
    /// complete later; the event stream and payment history will show it.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The limit.
        after: Duration,
    },
    /// A call into the node was lost (its thread panicked or the runtime shut down).
    #[error("internal: {0}")]
    Internal(String),
    /// Any other failure reported by ldk-node.
    #[error("ldk-node: {0}")]
    Node(#[from] NodeError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = LightningError> = std::result::Result<T, E>;
