//! Properties of the pool's limits over random redemption streams, served the way the pool
//! serves its queue (first come, first served, stopping at the first request held): requests
//! are paid in arrival order, no epoch pays out more than its cap and no account more than its
//! trust-scaled share (unless one request alone is larger, which then goes by itself), nothing
//! is paid while the breaker holds, and every request is paid eventually — delayed, never
//! refused.

use std::collections::{HashMap, VecDeque};

use moip_assets::ledger::AccountId;
use moip_assets::pool::{Limiter, PoolConfig};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Request {
    at: u64,
    account: u8,
    amount: u64,
    trust: f64,
}

fn requests() -> impl Strategy<Value = Vec<Request>> {
    proptest::collection::vec(
        (0u64..50, 0u8..4, 1u64..3_000, 0.0f64..1.0).prop_map(|(gap, account, amount, trust)| {
            Request {
                at: gap,
                account,
                amount,
                trust,
            }
        }),
        1..60,
    )
    .prop_map(|mut rs| {
        // Gaps to arrival times.
        let mut t = 0;
        for r in &mut rs {
            t += r.at;
            r.at = t;
        }
        rs
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn limits_delay_in_order_and_never_refuse(rs in requests()) {
        let config = PoolConfig {
            fee_ppm: 0,
            epoch_secs: 100,
            epoch_cap: 5_000,
            account_cap: 2_000,
            breaker_window_secs: 20,
            breaker_max: 4_000,
            breaker_cooldown_secs: 30,
            ..PoolConfig::default()
        };
        let mut limiter = Limiter::new(config.clone());
        let mut queue: VecDeque<(usize, Request)> = VecDeque::new();
        let mut arrivals = rs.iter().cloned().enumerate().peekable();
        let mut served = Vec::new();
        let mut per_epoch: HashMap<u64, (u64, usize)> = HashMap::new();
        let mut per_account: HashMap<(u64, u8), (u64, usize)> = HashMap::new();
        let mut now = 0;
        // Long enough for everything to drain: each step serves or waits one second.
        while served.len() < rs.len() {
            prop_assert!(now < 1_000_000, "stuck with {} queued", queue.len());
            while arrivals.peek().is_some_and(|(_, r)| r.at <= now) {
                queue.extend(arrivals.next());
            }
            while let Some((i, r)) = queue.front().cloned() {
                let account = AccountId::from_bytes([r.account + 1; 32]);
                if limiter.check(now, &account, r.amount, r.trust).is_err() {
                    break;
                }
                prop_assert!(!limiter.tripped(now));
                limiter.record(now, &account, r.amount);
                queue.pop_front();
                served.push(i);
                let epoch = now / config.epoch_secs;
                let e = per_epoch.entry(epoch).or_default();
                *e = (e.0 + r.amount, e.1 + 1);
                // The account's share, at the trust this request came with; a request larger
                // than the share goes only as the account's first of the epoch.
                let a = per_account.entry((epoch, r.account)).or_default();
                let before = a.0;
                *a = (a.0 + r.amount, a.1 + 1);
                prop_assert!(before == 0 || a.0 <= limiter.account_cap(r.trust));
            }
            now += 1;
        }
        // First come, first served.
        prop_assert!(served.windows(2).all(|w| w[0] < w[1]));
        for (total, count) in per_epoch.values() {
            prop_assert!(*total <= config.epoch_cap || *count == 1);
        }
    }
}
