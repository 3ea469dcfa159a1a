//! The ledger's state and the rules every change must keep; pure, no I/O.
//!
//! The state is what replaying the journal from the start gives: balances, escrows, collateral
//! and supply, with balances and escrows as leaves of a Merkle-sum tree whose root sum is the
//! supply. [`State::check`] decides whether an [`Op`] may apply, [`State::apply`] applies a
//! checked one; the rule `collateral ≥ supply` holds after every change.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::error::LedgerError;
use super::journal::Op;
use super::types::{AccountId, CollateralSource, TaskId, TokenInfo, MAX_TASK_ID, MAX_TOKEN_TEXT};
use crate::mssmt::{ComputedNode, LeafKey, LeafNode, MemoryStore, MsSmt, Proof};

/// Tokens locked for one task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escrow {
    /// Who locked them.
    pub from: AccountId,
    /// How many.
    pub amount: u64,
}

/// How a task's escrow ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Paid to this account.
    Released(AccountId),
    /// Returned to whoever locked it.
    Refunded,
}

/// An escrow that ended, kept so a caller replaying its own log can tell a change it made
/// before (a node rebuilding its Work state) from one it has yet to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// What was locked.
    pub escrow: Escrow,
    /// How it ended.
    pub settlement: Settlement,
}

/// A redemption waiting to be paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRedemption {
    /// Whose tokens.
    pub from: AccountId,
    /// Tokens locked.
    pub amount: u64,
    /// Satoshis to pay.
    pub sats_out: u64,
    /// Where to pay.
    pub payout: String,
}

/// A swap offer waiting for its payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingSwap {
    /// Where its preimage comes from.
    pub nonce: u64,
    /// Who receives the tokens.
    pub to: AccountId,
    /// Satoshis in, tokens out.
    pub sats: u64,
    /// The paying community.
    pub from_community: String,
}

/// An app's payment as its account saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppCharge {
    /// The app that paid.
    pub app: String,
    /// Charged (amount and fee cap), msat.
    pub charged_msat: u64,
    /// Refunded of it, msat.
    pub refunded_msat: u64,
    /// Whether its outcome is in: a refund (possibly of 0 msat) concludes a charge, so a
    /// payment's result is counted once however many times it is learnt (from the wait, from
    /// the node's record after a timeout, after a restart).
    pub concluded: bool,
}

/// Longest community name accepted, in bytes.
pub const MAX_COMMUNITY: usize = 64;

/// Longest payout destination accepted, in bytes (a BOLT11 invoice with many route hints).
pub const MAX_PAYOUT: usize = 4096;

/// Balances, escrows, collateral and supply, as of some journal position.
pub struct State {
    token: Option<TokenInfo>,
    balances: HashMap<AccountId, u64>,
    escrows: HashMap<TaskId, Escrow>,
    settled: HashMap<TaskId, Settled>,
    deposits: HashSet<CollateralSource>,
    redemptions: BTreeMap<u64, PendingRedemption>,
    next_redemption: u64,
    swaps: BTreeMap<String, PendingSwap>,
    collateral: u64,
    supply: u64,
    tree: MsSmt<MemoryStore>,
    /// Apps' sub-accounts, msat, by app.
    apps: BTreeMap<String, u64>,
    /// Payment hashes already counted into an app's account.
    app_received: HashSet<String>,
    /// Apps' payments by hash: the app, what was charged and what came back of it.
    app_charges: HashMap<String, AppCharge>,
}

impl Default for State {
    fn default() -> Self {
        State {
            token: None,
            balances: HashMap::new(),
            escrows: HashMap::new(),
            settled: HashMap::new(),
            deposits: HashSet::new(),
            redemptions: BTreeMap::new(),
            next_redemption: 0,
            swaps: BTreeMap::new(),
            collateral: 0,
            supply: 0,
            tree: MsSmt::new(MemoryStore::new()),
            apps: BTreeMap::new(),
            app_received: HashSet::new(),
            app_charges: HashMap::new(),
        }
    }
}

fn nonzero(amount: u64) -> Result<u64, LedgerError> {
    if amount == 0 {
        Err(LedgerError::ZeroAmount)
    } else {
        Ok(amount)
    }
}

impl State {
    /// The token, once the genesis entry is in.
    pub fn token(&self) -> Option<&TokenInfo> {
        self.token.as_ref()
    }

    /// An account's spendable balance.
    pub fn balance(&self, account: &AccountId) -> u64 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    /// Every account with a balance.
    pub fn balances(&self) -> &HashMap<AccountId, u64> {
        &self.balances
    }

    /// A task's escrow.
    pub fn escrow(&self, task: &TaskId) -> Option<&Escrow> {
        self.escrows.get(task)
    }

    /// How a task's escrow ended, if it did.
    pub fn settled(&self, task: &TaskId) -> Option<&Settled> {
        self.settled.get(task)
    }

    /// Redemptions waiting to be paid, oldest first.
    pub fn redemptions(&self) -> &BTreeMap<u64, PendingRedemption> {
        &self.redemptions
    }

    /// Swap offers waiting for their payment, by payment hash.
    pub fn swaps(&self) -> &BTreeMap<String, PendingSwap> {
        &self.swaps
    }

    /// The number the next redemption gets.
    pub fn next_redemption(&self) -> u64 {
        self.next_redemption
    }

    /// An app's sub-account, msat: what it may spend (amounts and routing fees).
    pub fn app_balance_msat(&self, app: &str) -> u64 {
        self.apps.get(app).copied().unwrap_or(0)
    }

    /// Every app's sub-account, msat. The node's assets cover these besides the collateral.
    pub fn apps(&self) -> &BTreeMap<String, u64> {
        &self.apps
    }

    /// The charge for an app's payment, by its hash (hex).
    pub fn app_charge(&self, hash: &str) -> Option<&AppCharge> {
        self.app_charges.get(hash)
    }

    /// Apps' payments charged whose outcome is not in yet, by hash: what a restarted node
    /// resolves against its payment records.
    pub fn open_app_charges(&self) -> impl Iterator<Item = (&String, &AppCharge)> {
        self.app_charges.iter().filter(|(_, c)| !c.concluded)
    }

    /// Satoshis of collateral held.
    pub fn collateral(&self) -> u64 {
        self.collateral
    }

    /// Tokens in existence (balances, escrows and pending redemptions).
    pub fn supply(&self) -> u64 {
        self.supply
    }

    /// Collateral not backing any token: what may be minted or withdrawn.
    pub fn free_collateral(&self) -> u64 {
        self.collateral - self.supply
    }

    /// The supply tree's root: its sum is the supply.
    pub fn root(&self) -> ComputedNode {
        // The memory store cannot fail.
        self.tree
            .root()
            .unwrap_or_else(|_| crate::mssmt::empty_tree_root())
    }

    /// An account's leaf and its proof against [`State::root`]: inclusion when the account
    /// holds tokens, exclusion (the empty leaf) when it does not.
    pub fn proof(&self, account: &AccountId) -> (LeafNode, Proof) {
        let key = account.leaf_key();
        let leaf = self.tree.get(&key).unwrap_or_default();
        let proof = self
            .tree
            .merkle_proof(&key)
            .unwrap_or_else(|_| Proof::empty());
        (leaf, proof)
    }

    /// Whether `op` may apply now; nothing changes.
    ///
    /// # Errors
    /// The [`LedgerError`] saying which rule it breaks.
    pub fn check(&self, op: &Op) -> Result<(), LedgerError> {
        let genesis = matches!(op, Op::Genesis { .. });
        match (&self.token, genesis) {
            (None, false) => return Err(LedgerError::NoToken),
            (Some(_), true) => return Err(LedgerError::AlreadyCreated),
            _ => {}
        }
        match op {
            Op::Genesis { token } => {
                for text in [&token.id, &token.name, &token.symbol] {
                    if text.is_empty() || text.len() > MAX_TOKEN_TEXT {
                        return Err(LedgerError::Invalid(format!(
                            "token id, name and symbol must be 1 to {MAX_TOKEN_TEXT} bytes"
                        )));
                    }
                }
            }
            Op::Deposit { sats, source } => {
                nonzero(*sats)?;
                // A payment an app's account already counted is not also the community's.
                let an_apps = match source {
                    CollateralSource::Lightning { payment_hash } => {
                        self.app_received.contains(payment_hash)
                    }
                    CollateralSource::OnChain { .. } => false,
                };
                if an_apps || self.deposits.contains(source) {
                    return Err(LedgerError::DuplicateDeposit(source.to_string()));
                }
                self.collateral
                    .checked_add(*sats)
                    .ok_or(LedgerError::Overflow)?;
            }
            Op::Mint { amount, .. } => {
                nonzero(*amount)?;
                let free = self.free_collateral();
                if *amount > free {
                    return Err(LedgerError::InsufficientCollateral {
                        free,
                        wanted: *amount,
                    });
                }
            }
            Op::Transfer { from, to, amount } => {
                nonzero(*amount)?;
                if from == to {
                    return Err(LedgerError::Invalid("a transfer to oneself".into()));
                }
                self.spendable(from, *amount)?;
            }
            Op::Lock { task, from, amount } => {
                nonzero(*amount)?;
                if task.0.is_empty() || task.0.len() > MAX_TASK_ID {
                    return Err(LedgerError::Invalid(format!(
                        "a task id must be 1 to {MAX_TASK_ID} bytes"
                    )));
                }
                if self.escrows.contains_key(task) {
                    return Err(LedgerError::EscrowExists(task.clone()));
                }
                self.spendable(from, *amount)?;
            }
            Op::Release { task, .. } | Op::Refund { task } => {
                if !self.escrows.contains_key(task) {
                    return Err(LedgerError::UnknownEscrow(task.clone()));
                }
            }
            Op::Burn {
                from,
                amount,
                sats_out,
            } => {
                nonzero(*amount)?;
                if sats_out > amount {
                    return Err(LedgerError::Invalid(
                        "a redemption pays out at most one satoshi per token".into(),
                    ));
                }
                self.spendable(from, *amount)?;
            }
            Op::Withdraw { sats } => {
                nonzero(*sats)?;
                let free = self.free_collateral();
                if *sats > free {
                    return Err(LedgerError::InsufficientCollateral {
                        free,
                        wanted: *sats,
                    });
                }
            }
            Op::Redeem {
                id,
                from,
                amount,
                sats_out,
                payout,
            } => {
                nonzero(*amount)?;
                if *id != self.next_redemption {
                    return Err(LedgerError::Invalid(format!(
                        "redemption {id} where {} is next",
                        self.next_redemption
                    )));
                }
                if sats_out > amount {
                    return Err(LedgerError::Invalid(
                        "a redemption pays out at most one satoshi per token".into(),
                    ));
                }
                if payout.is_empty() || payout.len() > MAX_PAYOUT {
                    return Err(LedgerError::Invalid(format!(
                        "a payout destination must be 1 to {MAX_PAYOUT} bytes"
                    )));
                }
                self.spendable(from, *amount)?;
            }
            Op::Redeemed { id, fee_msat } => {
                let r = self
                    .redemptions
                    .get(id)
                    .ok_or(LedgerError::UnknownRedemption(*id))?;
                // The record says what really left, even a network fee above the redemption's
                // own (which the pool's fee limit prevents): a ledger that refused it would
                // claim collateral the node no longer has. Only the backing of the tokens
                // left is a hard rule.
                let out = r.sats_out.saturating_add(fee_sats(*fee_msat));
                let after = self.collateral.saturating_sub(out);
                if out > self.collateral || after < self.supply - r.amount {
                    return Err(LedgerError::Invalid(format!(
                        "redemption {id} paid {out} sat with its network fee: the collateral \
                         left would not cover the supply"
                    )));
                }
            }
            Op::RedeemCancelled { id } => {
                if !self.redemptions.contains_key(id) {
                    return Err(LedgerError::UnknownRedemption(*id));
                }
            }
            Op::SwapOffer {
                hash,
                sats,
                from_community,
                ..
            } => {
                nonzero(*sats)?;
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(LedgerError::Invalid(
                        "a payment hash is 64 hex digits".into(),
                    ));
                }
                if from_community.is_empty() || from_community.len() > MAX_COMMUNITY {
                    return Err(LedgerError::Invalid(format!(
                        "a community name must be 1 to {MAX_COMMUNITY} bytes"
                    )));
                }
                let source = CollateralSource::Lightning {
                    payment_hash: hash.clone(),
                };
                if self.swaps.contains_key(hash) || self.deposits.contains(&source) {
                    return Err(LedgerError::DuplicateDeposit(source.to_string()));
                }
            }
            Op::SwapIn { hash } => {
                let swap = self
                    .swaps
                    .get(hash)
                    .ok_or_else(|| LedgerError::UnknownSwap(hash.clone()))?;
                self.collateral
                    .checked_add(swap.sats)
                    .ok_or(LedgerError::Overflow)?;
            }
            Op::SwapClosed { hash } => {
                if !self.swaps.contains_key(hash) {
                    return Err(LedgerError::UnknownSwap(hash.clone()));
                }
            }
            Op::AppFund { app, sats } => {
                nonzero(*sats)?;
                app_id(app)?;
                let free = self.free_collateral();
                if *sats > free {
                    return Err(LedgerError::InsufficientCollateral {
                        free,
                        wanted: *sats,
                    });
                }
                self.app_balance_msat(app)
                    .checked_add(sats.checked_mul(1_000).ok_or(LedgerError::Overflow)?)
                    .ok_or(LedgerError::Overflow)?;
            }
            Op::AppReceived { app, msat, hash } => {
                nonzero(*msat)?;
                app_id(app)?;
                payment_hash(hash)?;
                let source = CollateralSource::Lightning {
                    payment_hash: hash.clone(),
                };
                if self.app_received.contains(hash) || self.deposits.contains(&source) {
                    return Err(LedgerError::DuplicateDeposit(source.to_string()));
                }
                self.app_balance_msat(app)
                    .checked_add(*msat)
                    .ok_or(LedgerError::Overflow)?;
            }
            Op::AppSpent { app, msat, hash } => {
                nonzero(*msat)?;
                app_id(app)?;
                payment_hash(hash)?;
                if self
                    .app_charges
                    .get(hash)
                    .is_some_and(|c| c.refunded_msat < c.charged_msat)
                {
                    return Err(LedgerError::Invalid(format!(
                        "the app payment {hash} is already charged"
                    )));
                }
                let balance = self.app_balance_msat(app);
                if *msat > balance {
                    return Err(LedgerError::Invalid(format!(
                        "app {app} holds {balance} msat, {msat} msat spent"
                    )));
                }
            }
            Op::AppRefunded { app, msat, hash } => {
                // 0 msat is allowed: it concludes a payment that used its whole charge.
                let charge = self
                    .app_charges
                    .get(hash)
                    .filter(|c| c.app == *app)
                    .ok_or_else(|| {
                        LedgerError::Invalid(format!("app {app} was not charged for {hash}"))
                    })?;
                if charge.concluded {
                    return Err(LedgerError::Invalid(format!(
                        "the app payment {hash} is already concluded"
                    )));
                }
                let left = charge.charged_msat - charge.refunded_msat;
                if *msat > left {
                    return Err(LedgerError::Invalid(format!(
                        "{msat} msat refunded of a charge with {left} msat left"
                    )));
                }
            }
        }
        Ok(())
    }

    fn spendable(&self, account: &AccountId, amount: u64) -> Result<(), LedgerError> {
        let balance = self.balance(account);
        if amount > balance {
            return Err(LedgerError::InsufficientBalance {
                account: *account,
                balance,
                wanted: amount,
            });
        }
        Ok(())
    }

    /// Checks `op` and applies it.
    ///
    /// # Errors
    /// As [`State::check`]; the state is unchanged on error.
    pub fn apply(&mut self, op: &Op) -> Result<(), LedgerError> {
        self.check(op)?;
        match op {
            Op::Genesis { token } => self.token = Some(token.clone()),
            Op::Deposit { sats, source } => {
                self.deposits.insert(source.clone());
                self.collateral += sats;
            }
            Op::Mint { to, amount } => {
                self.supply += amount;
                self.credit(to, *amount);
            }
            Op::Transfer { from, to, amount } => {
                self.debit(from, *amount);
                self.credit(to, *amount);
            }
            Op::Lock { task, from, amount } => {
                self.debit(from, *amount);
                self.escrows.insert(
                    task.clone(),
                    Escrow {
                        from: *from,
                        amount: *amount,
                    },
                );
                self.set_escrow_leaf(task, *amount);
            }
            Op::Release { task, to } => {
                if let Some(escrow) = self.escrows.remove(task) {
                    self.set_escrow_leaf(task, 0);
                    self.credit(to, escrow.amount);
                    self.settled.insert(
                        task.clone(),
                        Settled {
                            escrow,
                            settlement: Settlement::Released(*to),
                        },
                    );
                }
            }
            Op::Refund { task } => {
                if let Some(escrow) = self.escrows.remove(task) {
                    self.set_escrow_leaf(task, 0);
                    self.credit(&escrow.from, escrow.amount);
                    self.settled.insert(
                        task.clone(),
                        Settled {
                            escrow,
                            settlement: Settlement::Refunded,
                        },
                    );
                }
            }
            Op::Burn {
                from,
                amount,
                sats_out,
            } => {
                self.debit(from, *amount);
                self.supply -= amount;
                self.collateral -= sats_out;
            }
            Op::Withdraw { sats } => self.collateral -= sats,
            Op::Redeem {
                id,
                from,
                amount,
                sats_out,
                payout,
            } => {
                self.debit(from, *amount);
                self.redemptions.insert(
                    *id,
                    PendingRedemption {
                        from: *from,
                        amount: *amount,
                        sats_out: *sats_out,
                        payout: payout.clone(),
                    },
                );
                self.next_redemption += 1;
                self.set_redemption_leaf(*id, *amount);
            }
            Op::Redeemed { id, fee_msat } => {
                if let Some(r) = self.redemptions.remove(id) {
                    self.set_redemption_leaf(*id, 0);
                    self.supply -= r.amount;
                    self.collateral -= r.sats_out + fee_sats(*fee_msat);
                }
            }
            Op::RedeemCancelled { id } => {
                if let Some(r) = self.redemptions.remove(id) {
                    self.set_redemption_leaf(*id, 0);
                    self.credit(&r.from, r.amount);
                }
            }
            Op::SwapOffer {
                hash,
                nonce,
                to,
                sats,
                from_community,
            } => {
                self.swaps.insert(
                    hash.clone(),
                    PendingSwap {
                        nonce: *nonce,
                        to: *to,
                        sats: *sats,
                        from_community: from_community.clone(),
                    },
                );
            }
            Op::SwapIn { hash } => {
                if let Some(swap) = self.swaps.remove(hash) {
                    self.deposits.insert(CollateralSource::Lightning {
                        payment_hash: hash.clone(),
                    });
                    self.collateral += swap.sats;
                    self.supply += swap.sats;
                    self.credit(&swap.to, swap.sats);
                }
            }
            Op::SwapClosed { hash } => {
                self.swaps.remove(hash);
            }
            Op::AppFund { app, sats } => {
                self.collateral -= sats;
                *self.apps.entry(app.clone()).or_insert(0) += sats * 1_000;
            }
            Op::AppReceived { app, msat, hash } => {
                self.app_received.insert(hash.clone());
                *self.apps.entry(app.clone()).or_insert(0) += msat;
            }
            Op::AppSpent { app, msat, hash } => {
                self.app_charges.insert(
                    hash.clone(),
                    AppCharge {
                        app: app.clone(),
                        charged_msat: *msat,
                        refunded_msat: 0,
                        concluded: false,
                    },
                );
                if let Some(balance) = self.apps.get_mut(app) {
                    *balance -= msat;
                }
            }
            Op::AppRefunded { app, msat, hash } => {
                if let Some(charge) = self.app_charges.get_mut(hash) {
                    charge.refunded_msat += msat;
                    charge.concluded = true;
                }
                *self.apps.entry(app.clone()).or_insert(0) += msat;
            }
        }
        debug_assert!(self.collateral >= self.supply);
        debug_assert_eq!(self.root().sum, self.supply);
        Ok(())
    }

    fn credit(&mut self, account: &AccountId, amount: u64) {
        let balance = self.balance(account) + amount;
        self.set_balance(account, balance);
    }

    fn debit(&mut self, account: &AccountId, amount: u64) {
        let balance = self.balance(account) - amount;
        self.set_balance(account, balance);
    }

    fn set_balance(&mut self, account: &AccountId, balance: u64) {
        if balance == 0 {
            self.balances.remove(account);
        } else {
            self.balances.insert(*account, balance);
        }
        self.set_leaf(account.leaf_key(), account.as_bytes(), balance);
    }

    fn set_redemption_leaf(&mut self, id: u64, amount: u64) {
        let key = super::types::redemption_key(id);
        self.set_leaf(key, &id.to_be_bytes(), amount);
    }

    fn set_escrow_leaf(&mut self, task: &TaskId, amount: u64) {
        self.set_leaf(task.leaf_key(), task.0.as_bytes(), amount);
    }

    /// Puts `amount` under `key` in the supply tree, or removes the leaf at zero.
    fn set_leaf(&mut self, key: LeafKey, value: &[u8], amount: u64) {
        // Sums never overflow: the supply bounds every leaf and is checked against the
        // collateral, itself a checked u64; the memory store cannot fail.
        let _ = if amount == 0 {
            self.tree.delete(&key)
        } else {
            self.tree
                .insert(&key, LeafNode::new(value.to_vec(), amount))
        };
    }
}

/// A network fee in whole sats, rounded up: the ledger never counts less than what left.
pub fn fee_sats(fee_msat: u64) -> u64 {
    fee_msat.div_ceil(1000)
}

/// Longest app name accepted, in bytes (a client key in hex is 64).
pub const MAX_APP: usize = 64;

/// A Moneysocket beacon's account is named `beacon:` and the beacon's id, 16 lowercase hex
/// digits; no NWC client key (64 hex digits) has that form, so the two never share an account.
const BEACON_APP: &str = "beacon:";

fn app_id(app: &str) -> Result<(), LedgerError> {
    if app.is_empty() || app.len() > MAX_APP {
        return Err(LedgerError::Invalid(format!(
            "an app is named by 1 to {MAX_APP} bytes"
        )));
    }
    if let Some(beacon) = app.strip_prefix(BEACON_APP) {
        if beacon.len() != 16
            || !beacon
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(LedgerError::Invalid(format!(
                "a beacon's account is {BEACON_APP} and 16 lowercase hex digits, not {app}"
            )));
        }
    }
    Ok(())
}

fn payment_hash(hash: &str) -> Result<(), LedgerError> {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(LedgerError::Invalid(
            "a payment hash is 64 hex digits".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::types::TokenInfo;

    const APP: &str = "app";

    fn hash(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    /// A ledger with 10,000 sat of collateral, 6,000 of it backing tokens.
    fn state() -> State {
        let mut state = State::default();
        let to = AccountId::from_bytes([1; 32]);
        for op in [
            Op::Genesis {
                token: TokenInfo {
                    id: "t".into(),
                    name: "t".into(),
                    symbol: "t".into(),
                },
            },
            Op::Deposit {
                sats: 10_000,
                source: CollateralSource::Lightning {
                    payment_hash: hash(1),
                },
            },
            Op::Mint { to, amount: 6_000 },
        ] {
            state.apply(&op).expect("setup");
        }
        state
    }

    #[test]
    fn an_app_is_funded_from_free_collateral_only_and_spends_its_own_balance() {
        let mut state = state();
        let fund = |sats| Op::AppFund {
            app: APP.into(),
            sats,
        };
        // The collateral backing tokens is never an app's.
        assert!(matches!(
            state.apply(&fund(4_001)),
            Err(LedgerError::InsufficientCollateral { free: 4_000, .. })
        ));
        state.apply(&fund(1_000)).expect("free collateral");
        assert_eq!(
            (state.collateral(), state.app_balance_msat(APP)),
            (9_000, 1_000_000)
        );
        // Received: counted once.
        let received = Op::AppReceived {
            app: APP.into(),
            msat: 500,
            hash: hash(2),
        };
        state.apply(&received).expect("received");
        assert!(state.apply(&received).is_err(), "counted once");
        // Nor is it then also a deposit of the community's.
        assert!(matches!(
            state.apply(&Op::Deposit {
                sats: 1,
                source: CollateralSource::Lightning {
                    payment_hash: hash(2)
                },
            }),
            Err(LedgerError::DuplicateDeposit(_))
        ));
        // A deposit's hash is not an app's receipt.
        assert!(state
            .apply(&Op::AppReceived {
                app: APP.into(),
                msat: 500,
                hash: hash(1),
            })
            .is_err());
        // Spent: at most the balance, each payment once; the collateral does not move.
        let spent = |msat, n| Op::AppSpent {
            app: APP.into(),
            msat,
            hash: hash(n),
        };
        assert!(
            state.apply(&spent(1_000_501, 3)).is_err(),
            "over the balance"
        );
        state.apply(&spent(1_000_000, 3)).expect("spent");
        assert!(state.apply(&spent(1, 3)).is_err(), "recorded once");
        assert_eq!(
            (state.collateral(), state.app_balance_msat(APP)),
            (9_000, 500)
        );
        assert!(state.apply(&spent(501, 4)).is_err());
        // Refunds: at most what the charge has left, to the app charged.
        let refund = |app: &str, msat| Op::AppRefunded {
            app: app.into(),
            msat,
            hash: hash(3),
        };
        assert!(state.apply(&refund("other", 1)).is_err(), "not its charge");
        assert!(
            state.apply(&refund(APP, 1_000_001)).is_err(),
            "more than charged"
        );
        state
            .apply(&refund(APP, 999_000))
            .expect("it succeeded: the unused fee cap");
        assert!(
            state.open_app_charges().next().is_none(),
            "a refund concludes the charge"
        );
        assert!(
            state.apply(&refund(APP, 1_000)).is_err(),
            "an outcome is counted once"
        );
        assert_eq!(state.app_balance_msat(APP), 999_500);
        assert!(
            state.apply(&spent(1, 3)).is_err(),
            "a paid hash is paid once"
        );
        // A wholly refunded (failed) payment may be charged again.
        state.apply(&spent(1_000, 4)).expect("charged");
        state
            .apply(&Op::AppRefunded {
                app: APP.into(),
                msat: 1_000,
                hash: hash(4),
            })
            .expect("it failed: all of it");
        state.apply(&spent(1_000, 4)).expect("retried");
        assert_eq!(state.collateral(), 9_000);
        assert_eq!(state.supply(), 6_000);
    }

    #[test]
    fn a_beacons_account_is_named_by_its_id_in_one_form_only() {
        let mut state = state();
        let fund = |app: &str| Op::AppFund {
            app: app.into(),
            sats: 1,
        };
        state
            .apply(&fund("beacon:0123456789abcdef"))
            .expect("a beacon's id");
        for bad in [
            "beacon:",
            "beacon:0123456789ABCDEF",
            "beacon:0123456789abcde",
            "beacon:0123456789abcdef0",
            "beacon:0123456789abcdeg",
        ] {
            assert!(
                matches!(state.apply(&fund(bad)), Err(LedgerError::Invalid(_))),
                "{bad}"
            );
        }
        assert_eq!(state.apps().len(), 1, "nothing else changed");
    }
}
