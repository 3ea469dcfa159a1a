//! Properties of the ledger over random operation sequences: whatever mix of deposits, mints,
//! transfers, escrows, burns, redemptions (requested, paid, cancelled) and withdrawals is tried — most of them refused — the
//! collateral covers the supply, the supply is the sum of balances and escrows, the tree's root
//! sum is the supply, a refused operation changes nothing, and replaying the journal gives the
//! same state.

use moip_assets::ledger::{
    AccountId, CollateralSource, Ledger, MemoryJournal, Op, TaskId, TokenInfo, TokenLedger,
};
use proptest::prelude::*;

fn account(n: u8) -> AccountId {
    AccountId::from_bytes([n % 5 + 1; 32])
}

fn task(n: u8) -> TaskId {
    TaskId(format!("task-{}", n % 4))
}

fn op() -> impl Strategy<Value = Op> {
    let amount = prop_oneof![0u64..5, 1u64..50_000, Just(u64::MAX / 2)];
    prop_oneof![
        (amount.clone(), 0u8..20).prop_map(|(sats, n)| Op::Deposit {
            sats,
            source: CollateralSource::Lightning {
                payment_hash: format!("{n:02x}").repeat(32)
            }
        }),
        (any::<u8>(), amount.clone()).prop_map(|(to, amount)| Op::Mint {
            to: account(to),
            amount
        }),
        (any::<u8>(), any::<u8>(), amount.clone()).prop_map(|(f, t, amount)| Op::Transfer {
            from: account(f),
            to: account(t),
            amount
        }),
        (any::<u8>(), any::<u8>(), amount.clone()).prop_map(|(t, f, amount)| Op::Lock {
            task: task(t),
            from: account(f),
            amount
        }),
        (any::<u8>(), any::<u8>()).prop_map(|(t, to)| Op::Release {
            task: task(t),
            to: account(to)
        }),
        any::<u8>().prop_map(|t| Op::Refund { task: task(t) }),
        (any::<u8>(), amount.clone(), 0u64..1000).prop_map(|(f, amount, fee)| Op::Burn {
            from: account(f),
            amount,
            sats_out: amount.saturating_sub(fee)
        }),
        amount.clone().prop_map(|sats| Op::Withdraw { sats }),
        (any::<u8>(), amount, 0u64..1000, any::<bool>()).prop_map(|(f, amount, fee, next)| {
            Op::Redeem {
                // Replaced by the ledger's next number when `next`; otherwise a wrong one.
                id: if next { NEXT } else { u64::from(f) },
                from: account(f),
                amount,
                sats_out: amount.saturating_sub(fee),
                payout: "lnbcrt1invoice".into(),
            }
        }),
        (0u64..8, 0u64..3_000).prop_map(|(id, fee_msat)| Op::Redeemed { id, fee_msat }),
        (0u64..8).prop_map(|id| Op::RedeemCancelled { id }),
    ]
}

/// Stands for "the ledger's next redemption number" in generated operations.
const NEXT: u64 = u64::MAX;

fn snapshot(ledger: &Ledger<MemoryJournal>) -> (u64, u64, Vec<u64>, u64) {
    let balances = (0..5).map(|n| ledger.balance(&account(n))).collect();
    (
        ledger.collateral(),
        ledger.supply(),
        balances,
        ledger.supply_root().sum,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn collateral_always_covers_supply(ops in proptest::collection::vec(op(), 1..120)) {
        let token = TokenInfo { id: "t".into(), name: "T".into(), symbol: "T".into() };
        let mut ledger = Ledger::create(MemoryJournal::default(), token).expect("create");
        for mut op in ops {
            if let Op::Redeem { id, .. } = &mut op {
                if *id == NEXT {
                    *id = ledger.state().next_redemption();
                }
            }
            let before = snapshot(&ledger);
            let len = ledger.len();
            match ledger.commit(op) {
                Ok(_) => prop_assert_eq!(ledger.len(), len + 1),
                Err(_) => {
                    prop_assert_eq!(snapshot(&ledger), before);
                    prop_assert_eq!(ledger.len(), len);
                }
            }
            let state = ledger.state();
            prop_assert!(state.collateral() >= state.supply());
            let escrowed: u64 = (0..4)
                .filter_map(|t| state.escrow(&task(t)).map(|e| e.amount))
                .sum();
            let held: u64 = state.balances().values().sum();
            let redeeming: u64 = state.redemptions().values().map(|r| r.amount).sum();
            prop_assert_eq!(held + escrowed + redeeming, state.supply());
            prop_assert_eq!(ledger.supply_root().sum, state.supply());
        }
        let root = ledger.supply_root();
        let replayed = Ledger::open(ledger.into_store()).expect("replay");
        prop_assert_eq!(replayed.supply_root(), root);
    }
}
