//! The append-only journal: every change to the ledger is one entry, chained by hash.
//!
//! Entry `n` carries `seq = n` and the hash of entry `n − 1`; its own hash is
//! `sha256("moip/journal" ‖ prev ‖ body)` over the entry's canonical JSON body. A store keeps the
//! entries in order and refuses a second entry with a sequence number it already holds, so a
//! replayed, reordered or forged entry cannot be appended, and a journal whose chain does not
//! verify is refused at open.

use bitcoin::hashes::{sha256, Hash, HashEngine};
use serde::{Deserialize, Serialize};

use super::types::{AccountId, CollateralSource, TaskId, TokenInfo};

/// One change to the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The first entry: which token this ledger keeps.
    Genesis {
        /// The token.
        token: TokenInfo,
    },
    /// Collateral arrived (an on-chain deposit confirmed, a Lightning deposit settled).
    Deposit {
        /// Its value.
        sats: u64,
        /// Where it came from; each source counts once.
        source: CollateralSource,
    },
    /// New tokens against free collateral.
    Mint {
        /// Who receives them.
        to: AccountId,
        /// How many.
        amount: u64,
    },
    /// Tokens change hands.
    Transfer {
        /// Payer.
        from: AccountId,
        /// Payee.
        to: AccountId,
        /// How many.
        amount: u64,
    },
    /// Tokens are locked for a task.
    Lock {
        /// The task.
        task: TaskId,
        /// Whose tokens (the employer).
        from: AccountId,
        /// How many.
        amount: u64,
    },
    /// A task's escrow goes to a worker.
    Release {
        /// The task.
        task: TaskId,
        /// Who is paid.
        to: AccountId,
    },
    /// A task's escrow goes back to whoever locked it.
    Refund {
        /// The task.
        task: TaskId,
    },
    /// Tokens are redeemed: burned, and `sats_out` of collateral leaves (the rest of `amount`
    /// is the fee, which stays as free collateral).
    Burn {
        /// Whose tokens.
        from: AccountId,
        /// Tokens burned.
        amount: u64,
        /// Satoshis paid out for them.
        sats_out: u64,
    },
    /// Free collateral (not backing any token) leaves the community wallet.
    Withdraw {
        /// How much.
        sats: u64,
    },
    /// A redemption is requested: `amount` of `from`'s tokens are locked until it is paid
    /// (then burned) or cancelled (then returned).
    Redeem {
        /// The redemption's number: the ledger's next one.
        id: u64,
        /// Whose tokens.
        from: AccountId,
        /// Tokens locked.
        amount: u64,
        /// Satoshis to pay out for them (the rest is the pool's fee).
        sats_out: u64,
        /// Where to pay: a BOLT11 invoice, or `bitcoin:<address>` for an on-chain payout.
        payout: String,
    },
    /// The redemption was paid: its tokens are burned; `sats_out` of collateral has left, and
    /// with it the network fee the payout cost (Lightning routing fees, or the on-chain
    /// transaction's fee), which the redemption's own fee must cover.
    Redeemed {
        /// The redemption.
        id: u64,
        /// The network fee paid, in msat; collateral falls by it rounded up to whole sats.
        /// Absent in entries written before fees were recorded (read as zero).
        #[serde(default, skip_serializing_if = "is_zero")]
        fee_msat: u64,
    },
    /// The redemption failed for good: its tokens go back.
    RedeemCancelled {
        /// The redemption.
        id: u64,
    },
    /// A cross-community swap is offered: a hold invoice for `sats` whose payment, once
    /// settled, mints `sats` tokens to `to`.
    SwapOffer {
        /// The hold invoice's payment hash, hex.
        hash: String,
        /// Where the preimage comes from (the desk derives it from its secret and this).
        nonce: u64,
        /// Who receives the tokens here.
        to: AccountId,
        /// Satoshis to receive, tokens to mint.
        sats: u64,
        /// The community the payment comes from.
        from_community: String,
    },
    /// The swap's payment was settled: its satoshis are collateral and its tokens are minted,
    /// in one entry.
    SwapIn {
        /// The offer's hash.
        hash: String,
    },
    /// The offer ended without a payment (refused, expired, cancelled): nothing minted.
    SwapClosed {
        /// The offer's hash.
        hash: String,
    },
    /// The operator moves free collateral (not backing any token) to an app's sub-account:
    /// collateral falls by `sats`, the app's balance rises by as much. An app spends only
    /// from its sub-account, never from the collateral.
    AppFund {
        /// The app (an NWC connection's client key, hex).
        app: String,
        /// Satoshis moved.
        sats: u64,
    },
    /// An invoice the app made was paid: its balance rises; each payment hash counts once.
    AppReceived {
        /// The app.
        app: String,
        /// Received, msat.
        msat: u64,
        /// The payment's hash, hex.
        hash: String,
    },
    /// The app pays: its balance falls by `msat` — the amount plus the most the routing may
    /// cost, charged before the payment leaves so a crash cannot leave it unpaid for. A hash
    /// is charged again only once its earlier charge was wholly refunded (a failed payment
    /// retried).
    AppSpent {
        /// The app.
        app: String,
        /// Charged, msat.
        msat: u64,
        /// The payment's hash, hex.
        hash: String,
    },
    /// A charge's payment is concluded and what it did not cost comes back: the fee cap not
    /// used, all of it when the payment failed, 0 when it used the whole charge; at most what
    /// the charge for `hash` has left, and once per charge, so an outcome learnt twice (from
    /// the wait and from the node's record) is counted once.
    AppRefunded {
        /// The app.
        app: String,
        /// Returned, msat.
        msat: u64,
        /// The payment's hash, hex.
        hash: String,
    },
}

/// An entry as stored: position, link to the previous entry, time, and the change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the journal, from 0.
    pub seq: u64,
    /// Hash of the previous entry (zeros for the first), hex.
    pub prev: String,
    /// When it was written, Unix seconds.
    pub time: u64,
    /// The change.
    #[serde(flatten)]
    pub op: Op,
}

/// The hash that links to an empty journal.
pub const GENESIS_PREV: [u8; 32] = [0; 32];

impl Entry {
    /// The canonical body: compact JSON with the fields in declaration order.
    pub fn body(&self) -> String {
        // Serialising plain data to a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// This entry's hash, which the next entry names as `prev`.
    pub fn hash(&self) -> [u8; 32] {
        entry_hash(&self.body())
    }

    /// Parses a stored body.
    ///
    /// # Errors
    /// A message when the body is not an entry.
    pub fn from_body(body: &str) -> Result<Entry, String> {
        serde_json::from_str(body).map_err(|e| e.to_string())
    }
}

/// The hash of a stored body.
pub fn entry_hash(body: &str) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(b"moip/journal");
    engine.input(body.as_bytes());
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// Serde's test for a field left out when zero, so entries written before it existed read
/// back, and write, byte for byte as they did.
fn is_zero(n: &u64) -> bool {
    *n == 0
}
