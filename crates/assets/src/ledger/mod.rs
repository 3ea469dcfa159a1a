//! The work-token ledger: a community's token, kept as an append-only journal whose supply is
//! committed in a Merkle-sum tree.
//!
//! This is a ledger, not a Taproot Assets implementation: tokens live in the community's
//! database, not in Bitcoin outputs. What makes it checkable from outside is the supply tree —
//! every balance and every escrow is a leaf whose sum is the supply, the root (hash and sum) is
//! committed on chain each epoch, and every holder can get a proof of their balance against it
//! — and the rule that supply never exceeds the collateral held.
//!
//! - [`TokenLedger`]: what the rest of moip uses — deposit collateral, mint (only against free
//!   collateral), transfer, lock a task's reward in escrow and release or refund it, burn on
//!   redemption, and the supply root with per-account proofs.
//! - [`Ledger`]: the implementation over any [`JournalStore`] — SQLite ([`SqliteJournal`]) by
//!   default, PostgreSQL ([`PostgresJournal`]) for larger communities, [`MemoryJournal`] in
//!   tests. Each change is checked against the state, appended to the journal, then applied; a
//!   change the rules refuse is never written.
//!
//! ```
//! use moip_assets::ledger::{AccountId, CollateralSource, Ledger, MemoryJournal, TokenInfo, TokenLedger};
//!
//! let token = TokenInfo { id: "bakery".into(), name: "Bakery hours".into(), symbol: "BKH".into() };
//! let mut ledger = Ledger::create(MemoryJournal::default(), token).unwrap();
//! let alice = AccountId::from_bytes([1; 32]);
//! ledger.deposit(10_000, CollateralSource::Lightning { payment_hash: "ab".repeat(32) }).unwrap();
//! ledger.mint(&alice, 6_000).unwrap();
//! assert!(ledger.mint(&alice, 5_000).is_err()); // only 4 000 sat of collateral is free
//! assert_eq!(ledger.supply_root().sum, 6_000);
//! ```

mod apps;
mod error;
mod journal;
mod postgres;
mod sqlite;
mod state;
mod store;
mod types;

pub use apps::{app_refund_msat, AppChargeError, AppPaymentOutcome};
pub use error::{LedgerError, StoreError};
pub use journal::{entry_hash, Entry, Op, GENESIS_PREV};
pub use postgres::{postgres_call, PgClient, PostgresJournal};
pub use sqlite::SqliteJournal;
pub use state::{
    fee_sats, AppCharge, Escrow, PendingRedemption, PendingSwap, Settled, Settlement, State,
    MAX_COMMUNITY, MAX_PAYOUT,
};
pub use store::{AnyJournal, JournalStore, MemoryJournal};
pub use types::{
    AccountId, BadId, CollateralSource, TaskId, TokenInfo, MAX_TASK_ID, MAX_TOKEN_TEXT,
};

use crate::mssmt::{ComputedNode, LeafNode, Proof};
use crate::util::{hex, lock, unix_now};

/// A committed change: where it sits in the journal and its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// Its position.
    pub seq: u64,
    /// Its hash (the next entry's `prev`).
    pub hash: [u8; 32],
}

/// What moip needs from a token ledger.
pub trait TokenLedger {
    /// The token; `None` only for a ledger opened on an empty store.
    fn token(&self) -> Option<TokenInfo>;
    /// An account's spendable balance (escrowed tokens not included).
    fn balance(&self, account: &AccountId) -> u64;
    /// Tokens in existence, escrows included.
    fn supply(&self) -> u64;
    /// Satoshis of collateral held.
    fn collateral(&self) -> u64;
    /// A task's escrow.
    fn escrow(&self, task: &TaskId) -> Option<Escrow>;
    /// How a task's escrow ended, if it did.
    fn settled(&self, task: &TaskId) -> Option<Settled>;
    /// Collateral arrived; each `source` counts once.
    ///
    /// # Errors
    /// [`LedgerError::DuplicateDeposit`], [`LedgerError::ZeroAmount`], a store error.
    fn deposit(&mut self, sats: u64, source: CollateralSource) -> Result<Receipt, LedgerError>;
    /// New tokens for `to`, against free collateral.
    ///
    /// # Errors
    /// [`LedgerError::InsufficientCollateral`] beyond the free collateral.
    fn mint(&mut self, to: &AccountId, amount: u64) -> Result<Receipt, LedgerError>;
    /// Moves tokens.
    ///
    /// # Errors
    /// [`LedgerError::InsufficientBalance`] beyond the payer's balance.
    fn transfer(
        &mut self,
        from: &AccountId,
        to: &AccountId,
        amount: u64,
    ) -> Result<Receipt, LedgerError>;
    /// Locks `amount` of `from`'s tokens for `task`. (Named so, not `lock`, because a ledger
    /// shared behind a mutex is a ledger too, and `lock` would shadow `Mutex::lock`.)
    ///
    /// # Errors
    /// [`LedgerError::EscrowExists`], [`LedgerError::InsufficientBalance`].
    fn lock_escrow(
        &mut self,
        task: &TaskId,
        from: &AccountId,
        amount: u64,
    ) -> Result<Receipt, LedgerError>;
    /// Pays a task's escrow to `to`.
    ///
    /// # Errors
    /// [`LedgerError::UnknownEscrow`].
    fn release(&mut self, task: &TaskId, to: &AccountId) -> Result<Receipt, LedgerError>;
    /// Returns a task's escrow to whoever locked it.
    ///
    /// # Errors
    /// [`LedgerError::UnknownEscrow`].
    fn refund(&mut self, task: &TaskId) -> Result<Receipt, LedgerError>;
    /// Burns `amount` of `from`'s tokens for a redemption paying out `sats_out` (≤ `amount`).
    ///
    /// # Errors
    /// [`LedgerError::InsufficientBalance`], [`LedgerError::Invalid`] when `sats_out > amount`.
    fn burn(
        &mut self,
        from: &AccountId,
        amount: u64,
        sats_out: u64,
    ) -> Result<Receipt, LedgerError>;
    /// Free collateral leaves.
    ///
    /// # Errors
    /// [`LedgerError::InsufficientCollateral`] beyond the free collateral.
    fn withdraw(&mut self, sats: u64) -> Result<Receipt, LedgerError>;
    /// The supply tree's root: the sum is the supply.
    fn supply_root(&self) -> ComputedNode;
    /// `account`'s leaf and its proof against [`TokenLedger::supply_root`].
    fn supply_proof(&self, account: &AccountId) -> (LeafNode, Proof);
}

/// A ledger over a journal store.
pub struct Ledger<S> {
    store: S,
    state: State,
    next: u64,
    head: [u8; 32],
}

impl<S: JournalStore> Ledger<S> {
    /// Opens the ledger in `store`, replaying and verifying its journal.
    ///
    /// # Errors
    /// [`LedgerError::Corrupt`] when the journal does not verify or replay (a gap, a broken
    /// hash chain, an entry the rules refuse); a store error.
    pub fn open(mut store: S) -> Result<Ledger<S>, LedgerError> {
        let mut state = State::default();
        let mut head = GENESIS_PREV;
        let mut next = 0;
        for (seq, body) in store.load()? {
            let corrupt = |reason: String| LedgerError::Corrupt { seq, reason };
            if seq != next {
                return Err(corrupt(format!("entry {next} is missing")));
            }
            let entry = Entry::from_body(&body).map_err(corrupt)?;
            if entry.seq != seq || entry.prev != hex(&head) {
                return Err(corrupt("does not link to the entry before it".into()));
            }
            state
                .apply(&entry.op)
                .map_err(|e| corrupt(format!("breaks a rule: {e}")))?;
            head = entry_hash(&body);
            next += 1;
        }
        Ok(Ledger {
            store,
            state,
            next,
            head,
        })
    }

    /// Opens the ledger in `store`, starting it with `token` if it is empty.
    ///
    /// # Errors
    /// As [`Ledger::open`]; [`LedgerError::AlreadyCreated`] when the store keeps another token.
    pub fn create(store: S, token: TokenInfo) -> Result<Ledger<S>, LedgerError> {
        let mut ledger = Ledger::open(store)?;
        match ledger.state.token() {
            None => {
                ledger.commit(Op::Genesis { token })?;
            }
            Some(existing) if *existing == token => {}
            Some(_) => return Err(LedgerError::AlreadyCreated),
        }
        Ok(ledger)
    }

    /// The state as of the journal's end.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// How many entries the journal holds.
    pub fn len(&self) -> u64 {
        self.next
    }

    /// True before the genesis entry.
    pub fn is_empty(&self) -> bool {
        self.next == 0
    }

    /// The last entry's hash.
    pub fn head(&self) -> [u8; 32] {
        self.head
    }

    /// The store, e.g. to read the journal.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Checks `op`, appends it to the journal, applies it.
    ///
    /// # Errors
    /// The rule it breaks; a store error (then nothing changed).
    pub fn commit(&mut self, op: Op) -> Result<Receipt, LedgerError> {
        self.state.check(&op)?;
        let entry = Entry {
            seq: self.next,
            prev: hex(&self.head),
            time: unix_now(),
            op,
        };
        self.append(entry)
    }

    /// Appends an entry made elsewhere (a replica, an import): it must be the next one and
    /// link to the journal's end.
    ///
    /// # Errors
    /// [`LedgerError::Replayed`], [`LedgerError::OutOfOrder`], [`LedgerError::BrokenChain`],
    /// or the rule the change breaks.
    pub fn apply_entry(&mut self, entry: Entry) -> Result<Receipt, LedgerError> {
        if entry.seq < self.next {
            return Err(LedgerError::Replayed { seq: entry.seq });
        }
        if entry.seq > self.next {
            return Err(LedgerError::OutOfOrder {
                expected: self.next,
                got: entry.seq,
            });
        }
        if entry.prev != hex(&self.head) {
            return Err(LedgerError::BrokenChain { seq: entry.seq });
        }
        self.state.check(&entry.op)?;
        self.append(entry)
    }

    fn append(&mut self, entry: Entry) -> Result<Receipt, LedgerError> {
        let body = entry.body();
        let hash = entry_hash(&body);
        self.store.append(entry.seq, &body, &hash)?;
        // Checked above against this same state: applying cannot fail now.
        self.state.apply(&entry.op)?;
        self.next += 1;
        self.head = hash;
        Ok(Receipt {
            seq: entry.seq,
            hash,
        })
    }

    /// The journal's entries from `from` on, as stored.
    ///
    /// # Errors
    /// A store error, or [`LedgerError::Corrupt`] for an entry that does not parse.
    pub fn entries(&mut self, from: u64) -> Result<Vec<Entry>, LedgerError> {
        self.store
            .load()?
            .into_iter()
            .filter(|(seq, _)| *seq >= from)
            .map(|(seq, body)| {
                Entry::from_body(&body).map_err(|reason| LedgerError::Corrupt { seq, reason })
            })
            .collect()
    }
}

impl<S: JournalStore> TokenLedger for Ledger<S> {
    fn token(&self) -> Option<TokenInfo> {
        self.state.token().cloned()
    }

    fn balance(&self, account: &AccountId) -> u64 {
        self.state.balance(account)
    }

    fn supply(&self) -> u64 {
        self.state.supply()
    }

    fn collateral(&self) -> u64 {
        self.state.collateral()
    }

    fn escrow(&self, task: &TaskId) -> Option<Escrow> {
        self.state.escrow(task).cloned()
    }

    fn settled(&self, task: &TaskId) -> Option<Settled> {
        self.state.settled(task).cloned()
    }

    fn deposit(&mut self, sats: u64, source: CollateralSource) -> Result<Receipt, LedgerError> {
        self.commit(Op::Deposit { sats, source })
    }

    fn mint(&mut self, to: &AccountId, amount: u64) -> Result<Receipt, LedgerError> {
        self.commit(Op::Mint { to: *to, amount })
    }

    fn transfer(
        &mut self,
        from: &AccountId,
        to: &AccountId,
        amount: u64,
    ) -> Result<Receipt, LedgerError> {
        self.commit(Op::Transfer {
            from: *from,
            to: *to,
            amount,
        })
    }

    fn lock_escrow(
        &mut self,
        task: &TaskId,
        from: &AccountId,
        amount: u64,
    ) -> Result<Receipt, LedgerError> {
        self.commit(Op::Lock {
            task: task.clone(),
            from: *from,
            amount,
        })
    }

    fn release(&mut self, task: &TaskId, to: &AccountId) -> Result<Receipt, LedgerError> {
        self.commit(Op::Release {
            task: task.clone(),
            to: *to,
        })
    }

    fn refund(&mut self, task: &TaskId) -> Result<Receipt, LedgerError> {
        self.commit(Op::Refund { task: task.clone() })
    }

    fn burn(
        &mut self,
        from: &AccountId,
        amount: u64,
        sats_out: u64,
    ) -> Result<Receipt, LedgerError> {
        self.commit(Op::Burn {
            from: *from,
            amount,
            sats_out,
        })
    }

    fn withdraw(&mut self, sats: u64) -> Result<Receipt, LedgerError> {
        self.commit(Op::Withdraw { sats })
    }

    fn supply_root(&self) -> ComputedNode {
        self.state.root()
    }

    fn supply_proof(&self, account: &AccountId) -> (LeafNode, Proof) {
        self.state.proof(account)
    }
}

/// A ledger shared behind a mutex — the redemption pool, the Work service and the API hold one
/// ledger this way — is a ledger too; each call takes the lock for its own duration.
impl<L: TokenLedger> TokenLedger for std::sync::Arc<std::sync::Mutex<L>> {
    fn token(&self) -> Option<TokenInfo> {
        lock(self).token()
    }

    fn balance(&self, account: &AccountId) -> u64 {
        lock(self).balance(account)
    }

    fn supply(&self) -> u64 {
        lock(self).supply()
    }

    fn collateral(&self) -> u64 {
        lock(self).collateral()
    }

    fn escrow(&self, task: &TaskId) -> Option<Escrow> {
        lock(self).escrow(task)
    }

    fn settled(&self, task: &TaskId) -> Option<Settled> {
        lock(self).settled(task)
    }

    fn deposit(&mut self, sats: u64, source: CollateralSource) -> Result<Receipt, LedgerError> {
        lock(self).deposit(sats, source)
    }

    fn mint(&mut self, to: &AccountId, amount: u64) -> Result<Receipt, LedgerError> {
        lock(self).mint(to, amount)
    }

    fn transfer(
        &mut self,
        from: &AccountId,
        to: &AccountId,
        amount: u64,
    ) -> Result<Receipt, LedgerError> {
        lock(self).transfer(from, to, amount)
    }

    fn lock_escrow(
        &mut self,
        task: &TaskId,
        from: &AccountId,
        amount: u64,
    ) -> Result<Receipt, LedgerError> {
        lock(self).lock_escrow(task, from, amount)
    }

    fn release(&mut self, task: &TaskId, to: &AccountId) -> Result<Receipt, LedgerError> {
        lock(self).release(task, to)
    }

    fn refund(&mut self, task: &TaskId) -> Result<Receipt, LedgerError> {
        lock(self).refund(task)
    }

    fn burn(
        &mut self,
        from: &AccountId,
        amount: u64,
        sats_out: u64,
    ) -> Result<Receipt, LedgerError> {
        lock(self).burn(from, amount, sats_out)
    }

    fn withdraw(&mut self, sats: u64) -> Result<Receipt, LedgerError> {
        lock(self).withdraw(sats)
    }

    fn supply_root(&self) -> ComputedNode {
        lock(self).supply_root()
    }

    fn supply_proof(&self, account: &AccountId) -> (LeafNode, Proof) {
        lock(self).supply_proof(account)
    }
}
