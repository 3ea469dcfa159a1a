//! The redemption pool's limits: per-epoch and per-account caps, and a circuit breaker on the
//! outflow rate. Pure: time is an argument.
//!
//! A peg-stability module, not an AMM: tokens are always worth one satoshi each, so the only
//! defence against a run is the pace of outflows. Every limit *delays*, none refuses — a
//! request that does not fit now waits in the pool's FIFO queue — and a request larger than a
//! cap is served alone, when nothing else has gone out in its epoch, so it waits longer but is
//! never stuck.

use std::collections::{HashMap, VecDeque};

use crate::ledger::AccountId;

/// How the pool prices and paces redemptions.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolConfig {
    /// The redemption fee in parts per million of the amount, rounded up (5 000 = 0.5 %).
    pub fee_ppm: u32,
    /// Length of an epoch, in seconds.
    pub epoch_secs: u64,
    /// Tokens all accounts together may redeem per epoch.
    pub epoch_cap: u64,
    /// Tokens one account may redeem per epoch, at full trust; scaled by the trust the caller
    /// supplies, never below [`TRUST_FLOOR`] of it.
    pub account_cap: u64,
    /// The circuit breaker's window, in seconds.
    pub breaker_window_secs: u64,
    /// Outflow within the window that trips the breaker.
    pub breaker_max: u64,
    /// How long a tripped breaker holds every payout, in seconds.
    pub breaker_cooldown_secs: u64,
    /// The fewest tokens one redemption takes. Its fee pays the payout's network fee, so a
    /// redemption too small to leave a fee could not pay any route but a direct channel.
    pub min_redemption: u64,
    /// How long one payout may keep the queue waiting, in seconds. A payout whose outcome is
    /// still unknown then (a recipient holding the payment) leaves the head of the queue: its
    /// tokens stay locked until the node learns how it ended, and the queue goes on.
    pub payout_wait_secs: u64,
    /// The latest expiry a payout invoice may have, in seconds from the request. It bounds
    /// how long a redemption can wait on an invoice that may still be paid.
    pub max_invoice_expiry_secs: u64,
    /// The most blocks a payout's HTLCs may stay locked over the whole route: how long a
    /// recipient can hold the node's money before the payment must end.
    pub max_payout_cltv: u32,
}

/// The least share of [`PoolConfig::account_cap`] any account gets, whatever its trust.
pub const TRUST_FLOOR: f64 = 0.1;

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            fee_ppm: 5_000,
            epoch_secs: 86_400,
            epoch_cap: 10_000_000,
            account_cap: 1_000_000,
            breaker_window_secs: 3_600,
            breaker_max: 5_000_000,
            breaker_cooldown_secs: 3_600,
            min_redemption: 1_000,
            payout_wait_secs: 30,
            max_invoice_expiry_secs: 86_400,
            max_payout_cltv: 288,
        }
    }
}

/// Why a redemption waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// The epoch's total is reached; the next epoch starts at `until`.
    EpochCap {
        /// When the next epoch starts (Unix seconds).
        until: u64,
    },
    /// The account's share of the epoch is reached.
    AccountCap {
        /// When the next epoch starts (Unix seconds).
        until: u64,
    },
    /// The circuit breaker tripped: outflows were too fast.
    Breaker {
        /// When it closes again (Unix seconds).
        until: u64,
    },
}

/// The limits' running state. Amounts are satoshis that leave the node, network fees
/// included; a payout whose outcome is not known yet is *reserved* at the most it may cost.
#[derive(Clone, Debug)]
pub struct Limiter {
    config: PoolConfig,
    epoch: u64,
    epoch_out: u64,
    account_out: HashMap<AccountId, u64>,
    window: VecDeque<(u64, u64)>,
    tripped_until: u64,
    reserved: HashMap<AccountId, u64>,
}

impl Limiter {
    /// Fresh limits.
    pub fn new(config: PoolConfig) -> Limiter {
        Limiter {
            config,
            epoch: 0,
            epoch_out: 0,
            account_out: HashMap::new(),
            window: VecDeque::new(),
            tripped_until: 0,
            reserved: HashMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// The fee for redeeming `amount` tokens.
    pub fn fee(&self, amount: u64) -> u64 {
        let ppm = u128::from(self.config.fee_ppm);
        let fee = (u128::from(amount) * ppm).div_ceil(1_000_000);
        u64::try_from(fee).unwrap_or(amount).min(amount)
    }

    fn epoch_of(&self, now: u64) -> u64 {
        now / self.config.epoch_secs.max(1)
    }

    fn next_epoch_start(&self, now: u64) -> u64 {
        (self.epoch_of(now) + 1) * self.config.epoch_secs.max(1)
    }

    fn roll(&mut self, now: u64) {
        let epoch = self.epoch_of(now);
        if epoch != self.epoch {
            self.epoch = epoch;
            self.epoch_out = 0;
            self.account_out.clear();
        }
        let start = now.saturating_sub(self.config.breaker_window_secs);
        while self.window.front().is_some_and(|(t, _)| *t < start) {
            self.window.pop_front();
        }
    }

    /// The account's cap at `trust` (0 to 1).
    pub fn account_cap(&self, trust: f64) -> u64 {
        let trust = if trust.is_finite() { trust } else { 0.0 };
        let scale = trust.clamp(TRUST_FLOOR, 1.0);
        (self.config.account_cap as f64 * scale) as u64
    }

    /// Whether `amount` from `account` may go out at `now`.
    ///
    /// # Errors
    /// The [`Hold`] that delays it.
    pub fn check(
        &mut self,
        now: u64,
        account: &AccountId,
        amount: u64,
        trust: f64,
    ) -> Result<(), Hold> {
        self.roll(now);
        if self.tripped_until > now {
            return Err(Hold::Breaker {
                until: self.tripped_until,
            });
        }
        let until = self.next_epoch_start(now);
        let out = self.epoch_out.saturating_add(self.reserved.values().sum());
        if out > 0 && out.saturating_add(amount) > self.config.epoch_cap {
            return Err(Hold::EpochCap { until });
        }
        let spent = self
            .account_out
            .get(account)
            .copied()
            .unwrap_or(0)
            .saturating_add(self.reserved.get(account).copied().unwrap_or(0));
        if spent > 0 && spent.saturating_add(amount) > self.account_cap(trust) {
            return Err(Hold::AccountCap { until });
        }
        Ok(())
    }

    /// Counts `amount` paid out to `account` at `now`; trips the breaker if the window's
    /// outflow reaches its maximum.
    pub fn record(&mut self, now: u64, account: &AccountId, amount: u64) {
        self.roll(now);
        self.epoch_out = self.epoch_out.saturating_add(amount);
        let spent = self.account_out.entry(*account).or_insert(0);
        *spent = spent.saturating_add(amount);
        self.window.push_back((now, amount));
        let in_window: u64 = self.window.iter().map(|(_, a)| *a).sum();
        if in_window >= self.config.breaker_max {
            self.tripped_until = now + self.config.breaker_cooldown_secs;
            self.window.clear();
        }
    }

    /// Holds `amount` of `account`'s room under the caps while a payout of at most that much
    /// is out; [`Limiter::release`] gives it back.
    pub fn reserve(&mut self, account: &AccountId, amount: u64) {
        let held = self.reserved.entry(*account).or_insert(0);
        *held = held.saturating_add(amount);
    }

    /// Gives back `amount` reserved for `account`: the payout ended (and, if it was paid, is
    /// [recorded](Limiter::record) at what it really cost).
    pub fn release(&mut self, account: &AccountId, amount: u64) {
        if let Some(held) = self.reserved.get_mut(account) {
            *held = held.saturating_sub(amount);
            if *held == 0 {
                self.reserved.remove(account);
            }
        }
    }

    /// Satoshis paid out in the current epoch, network fees included.
    pub fn epoch_out(&self) -> u64 {
        self.epoch_out
    }

    /// Whether the breaker holds payouts at `now`.
    pub fn tripped(&self, now: u64) -> bool {
        self.tripped_until > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PoolConfig {
        PoolConfig {
            fee_ppm: 10_000,
            epoch_secs: 100,
            epoch_cap: 1_000,
            account_cap: 400,
            breaker_window_secs: 10,
            breaker_max: 900,
            breaker_cooldown_secs: 50,
            ..PoolConfig::default()
        }
    }

    #[test]
    fn fees_round_up_and_never_exceed_the_amount() {
        let l = Limiter::new(config());
        assert_eq!(l.fee(1_000), 10);
        assert_eq!(l.fee(1), 1);
        assert_eq!(l.fee(0), 0);
        let free = Limiter::new(PoolConfig {
            fee_ppm: 0,
            ..config()
        });
        assert_eq!(free.fee(1_000), 0);
        let absurd = Limiter::new(PoolConfig {
            fee_ppm: u32::MAX,
            ..config()
        });
        assert_eq!(absurd.fee(u64::MAX), u64::MAX);
    }

    #[test]
    fn caps_delay_and_a_large_request_goes_alone() {
        let (a, b) = (
            AccountId::from_bytes([1; 32]),
            AccountId::from_bytes([2; 32]),
        );
        let mut l = Limiter::new(config());
        assert_eq!(l.check(0, &a, 300, 1.0), Ok(()));
        l.record(0, &a, 300);
        // The account's cap at full trust is 400; at low trust, the floor (40).
        assert_eq!(
            l.check(20, &a, 200, 1.0),
            Err(Hold::AccountCap { until: 100 })
        );
        assert_eq!(l.account_cap(0.0), 40);
        assert_eq!(l.account_cap(f64::NAN), 40);
        assert_eq!(l.check(20, &b, 200, 1.0), Ok(()));
        l.record(20, &b, 200);
        assert_eq!(
            l.check(30, &b, 600, 1.0),
            Err(Hold::EpochCap { until: 100 })
        );
        // A new epoch: a request above every cap goes, alone.
        assert_eq!(l.check(100, &b, 5_000, 1.0), Ok(()));
    }

    #[test]
    fn a_payout_out_counts_against_the_caps_until_it_ends() {
        let (a, b) = (
            AccountId::from_bytes([1; 32]),
            AccountId::from_bytes([2; 32]),
        );
        let mut l = Limiter::new(config());
        assert_eq!(l.check(0, &a, 300, 1.0), Ok(()));
        l.reserve(&a, 300);
        // Its outcome unknown, it still takes the account's and the epoch's room.
        assert_eq!(
            l.check(1, &a, 200, 1.0),
            Err(Hold::AccountCap { until: 100 })
        );
        assert_eq!(l.check(1, &b, 800, 1.0), Err(Hold::EpochCap { until: 100 }));
        // Failed: the room comes back. Paid: what really left is counted instead.
        l.release(&a, 300);
        assert_eq!(l.check(2, &a, 200, 1.0), Ok(()));
        l.reserve(&a, 300);
        l.release(&a, 300);
        l.record(3, &a, 290);
        assert_eq!(l.epoch_out(), 290);
        assert_eq!(l.check(4, &a, 110, 1.0), Ok(()));
        assert_eq!(
            l.check(4, &a, 111, 1.0),
            Err(Hold::AccountCap { until: 100 })
        );
    }

    #[test]
    fn the_breaker_trips_on_fast_outflow_and_cools_down() {
        let accounts: Vec<AccountId> = (1..=5).map(|n| AccountId::from_bytes([n; 32])).collect();
        let mut l = Limiter::new(PoolConfig {
            epoch_cap: 100_000,
            ..config()
        });
        for (i, a) in accounts.iter().enumerate().take(3) {
            assert_eq!(l.check(i as u64, a, 300, 1.0), Ok(()));
            l.record(i as u64, a, 300);
        }
        assert!(l.tripped(3));
        assert_eq!(
            l.check(3, &accounts[3], 1, 1.0),
            Err(Hold::Breaker { until: 52 })
        );
        assert_eq!(l.check(52, &accounts[3], 1, 1.0), Ok(()));
        // Slow outflow does not trip it.
        let mut slow = Limiter::new(PoolConfig {
            epoch_cap: 100_000,
            ..config()
        });
        for (i, a) in accounts.iter().enumerate() {
            let t = 20 * i as u64;
            assert_eq!(slow.check(t, a, 300, 1.0), Ok(()));
            slow.record(t, a, 300);
        }
        assert!(!slow.tripped(100));
    }
}
