//! Why the ledger refused a change.

use super::types::{AccountId, TaskId};

/// A change the ledger refused, or a store that failed. A refused change leaves the journal,
/// the store and the balances as they were.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The ledger has no token yet (no genesis entry).
    #[error("the ledger has no token yet")]
    NoToken,
    /// A second genesis, or a different token for an existing ledger.
    #[error("the ledger already keeps a token")]
    AlreadyCreated,
    /// Amounts must be positive.
    #[error("the amount must be positive")]
    ZeroAmount,
    /// Minting or withdrawing more than the collateral not backing tokens.
    #[error("only {free} sat of collateral is free, {wanted} asked")]
    InsufficientCollateral {
        /// Free collateral.
        free: u64,
        /// What was asked.
        wanted: u64,
    },
    /// Spending more than a balance.
    #[error("account {account} holds {balance}, {wanted} asked")]
    InsufficientBalance {
        /// The account.
        account: AccountId,
        /// Its balance.
        balance: u64,
        /// What was asked.
        wanted: u64,
    },
    /// This collateral source was already deposited.
    #[error("collateral from {0} was already deposited")]
    DuplicateDeposit(String),
    /// The task already has an escrow.
    #[error("task {0} already has an escrow")]
    EscrowExists(TaskId),
    /// The task has no escrow.
    #[error("task {0} has no escrow")]
    UnknownEscrow(TaskId),
    /// No pending redemption has this number.
    #[error("no pending redemption {0}")]
    UnknownRedemption(u64),
    /// No pending swap offer has this hash.
    #[error("no pending swap {0}")]
    UnknownSwap(String),
    /// A sum would exceed `u64`.
    #[error("amount overflow")]
    Overflow,
    /// Malformed input (bad lengths, a transfer to oneself, …).
    #[error("invalid: {0}")]
    Invalid(String),
    /// An entry whose position is already taken: a replay.
    #[error("entry {seq} is already in the journal (replayed)")]
    Replayed {
        /// Its position.
        seq: u64,
    },
    /// An entry ahead of the journal's end: reordered or with a gap.
    #[error("entry {got} arrived where entry {expected} is due")]
    OutOfOrder {
        /// The next position.
        expected: u64,
        /// The entry's position.
        got: u64,
    },
    /// An entry that does not link to the journal's last one.
    #[error("entry {seq} does not link to the entry before it")]
    BrokenChain {
        /// Its position.
        seq: u64,
    },
    /// The stored journal does not replay: edited, truncated in the middle, or not a journal.
    #[error("the stored journal is corrupt at entry {seq}: {reason}")]
    Corrupt {
        /// Where.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// The store failed.
    #[error("ledger store: {0}")]
    Store(#[from] StoreError),
}

/// What a journal store reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The position is taken: another writer appended first.
    #[error("journal position {0} is taken")]
    Conflict(u64),
    /// The database failed.
    #[error("{0}")]
    Backend(String),
}
