//! Cross-community swaps with real ldk-nodes on the embedded chain: community A's pool node pays
//! community B's hold invoice out of a user's redeemed A-tokens; B settles and mints only once
//! the payment is locked in its node. A swap B refuses when the payment arrives (its exposure
//! limit for A was lowered meanwhile) fails back, and both ledgers are as before it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moip_assets::ledger::{
    AccountId, CollateralSource, Ledger, MemoryJournal, TokenInfo, TokenLedger,
};
use moip_assets::pool::{PoolConfig, RedemptionPool, Status};
use moip_assets::swap::{SwapDesk, SwapError, SwapLimits};
use moip_lightning::testing::{fund, open_usable, start_node};
use moip_lightning::PaymentRail;
use moip_testenv::Regtest;
use moip_testkit::wait_until;

const WAIT: Duration = Duration::from_secs(60);

fn ledger(id: &str) -> Arc<Mutex<Ledger<MemoryJournal>>> {
    Arc::new(Mutex::new(
        Ledger::create(
            MemoryJournal::default(),
            TokenInfo {
                id: id.into(),
                name: id.into(),
                symbol: id.to_uppercase(),
            },
        )
        .expect("ledger"),
    ))
}

fn invariants(ledger: &Mutex<Ledger<MemoryJournal>>) {
    let l = ledger.lock().expect("ledger");
    assert!(l.collateral() >= l.supply());
    assert_eq!(l.supply_root().sum, l.supply());
}

#[test]
fn swaps_settle_atomically_and_a_refused_one_leaves_both_sides_whole() {
    let env = Regtest::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let node_a = start_node(&env, dir.path(), "community-a");
    let node_b = start_node(&env, dir.path(), "community-b");
    fund(&env, &node_a, &[&node_b]);
    // ldk-node lets at most 10 % of a channel be in flight: 5 M sat leaves room for both swaps.
    open_usable(&env, &node_a, &node_b, 5_000_000, None);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();

    // Community A: 500 000 sat of collateral, 300 000 tokens with the user.
    let (a, b) = (ledger("bakery"), ledger("farm"));
    let (user_a, user_b) = (
        AccountId::from_bytes([7; 32]),
        AccountId::from_bytes([8; 32]),
    );
    {
        let mut l = a.lock().expect("ledger");
        l.deposit(
            500_000,
            CollateralSource::Lightning {
                payment_hash: "aa".repeat(32),
            },
        )
        .expect("deposit");
        l.mint(&user_a, 300_000).expect("mint");
    }
    let rail_a: Arc<dyn PaymentRail> = Arc::new(node_a.clone());
    let rail_b: Arc<dyn PaymentRail> = Arc::new(node_b.clone());
    let pool = RedemptionPool::new(
        Arc::clone(&a),
        Arc::clone(&rail_a),
        PoolConfig {
            fee_ppm: 10_000,
            ..PoolConfig::default()
        },
    )
    .expect("pool");
    let secret = [42; 32];
    let desk = Arc::new(
        SwapDesk::new(
            Arc::clone(&b),
            Arc::clone(&rail_b),
            secret,
            SwapLimits {
                max_per_swap: 200_000,
                max_per_community: 1_000_000,
                epoch_secs: 86_400,
            },
        )
        .expect("desk"),
    );
    let running = rt.spawn(Arc::clone(&desk).run());

    // 100 000 A-tokens → 99 000 sat after A's 1 % fee → 99 000 B-tokens.
    let offer = rt
        .block_on(desk.offer("bakery", &user_b, 99_000, 600))
        .expect("offer");
    assert!(matches!(
        rt.block_on(desk.offer("bakery", &user_b, 300_000, 600)),
        Err(SwapError::TooLarge(200_000))
    ));
    let ticket = rt
        .block_on(pool.redeem(&user_a, 100_000, &offer.invoice, 1.0))
        .expect("redeem");
    assert_eq!(rt.block_on(pool.process()), vec![(ticket.id, Status::Paid)]);
    wait_until(WAIT, "B's mint", || {
        (b.lock().expect("ledger").balance(&user_b) == 99_000).then_some(())
    });
    {
        let (la, lb) = (a.lock().expect("a"), b.lock().expect("b"));
        assert_eq!(la.balance(&user_a), 200_000);
        assert_eq!(la.supply(), 200_000);
        assert_eq!(lb.supply(), 99_000);
        assert_eq!(
            lb.collateral(),
            99_000,
            "the swap's satoshis back B's tokens"
        );
        assert!(lb.state().swaps().is_empty());
    }
    invariants(&a);
    invariants(&b);

    // B offers again, then lowers its exposure limit for A before the payment arrives: the
    // held payment is cancelled, A's pool gets a failed payment and gives the tokens back.
    let offer = rt
        .block_on(desk.offer("bakery", &user_b, 49_500, 600))
        .expect("offer");
    running.abort();
    let stricter = Arc::new(
        SwapDesk::new(
            Arc::clone(&b),
            Arc::clone(&rail_b),
            secret,
            SwapLimits {
                max_per_swap: 200_000,
                max_per_community: 100_000,
                epoch_secs: 86_400,
            },
        )
        .expect("desk"),
    );
    assert!(matches!(
        rt.block_on(stricter.offer("bakery", &user_b, 10_000, 600)),
        Err(SwapError::Exposure { left: 0, .. })
    ));
    let _running = rt.spawn(Arc::clone(&stricter).run());
    let (a_before, b_before) = {
        let (la, lb) = (a.lock().expect("a"), b.lock().expect("b"));
        (
            (la.balance(&user_a), la.supply(), la.collateral()),
            (lb.balance(&user_b), lb.supply(), lb.collateral()),
        )
    };
    let ticket = rt
        .block_on(pool.redeem(&user_a, 50_000, &offer.invoice, 1.0))
        .expect("taken");
    let outcomes = rt.block_on(pool.process());
    assert!(
        matches!(outcomes.as_slice(), [(id, Status::Cancelled { .. })] if *id == ticket.id),
        "{outcomes:?}"
    );
    wait_until(WAIT, "B to close the offer", || {
        b.lock()
            .expect("b")
            .state()
            .swaps()
            .is_empty()
            .then_some(())
    });
    {
        let (la, lb) = (a.lock().expect("a"), b.lock().expect("b"));
        assert_eq!(
            (la.balance(&user_a), la.supply(), la.collateral()),
            a_before
        );
        assert_eq!(
            (lb.balance(&user_b), lb.supply(), lb.collateral()),
            b_before
        );
        assert!(la.state().redemptions().is_empty());
    }
    invariants(&a);
    invariants(&b);

    drop(_guard);
    node_a.stop().expect("stop");
    node_b.stop().expect("stop");
}
