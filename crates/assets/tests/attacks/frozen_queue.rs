//! Attack 2: **one member freezes the redemption queue.**
//!
//! A member redeems to a hold invoice of their own node and holds the payment. Before the
//! defence the pool paid the queue's head and stopped there while the head's outcome was
//! unknown, so every later redemption waited for as long as the attacker held the HTLC (up
//! to its CLTV deadline, days); and a redemption request waited on the payment in flight.
//!
//! The defence: a redemption request only queues; a payout still unknown after
//! `payout_wait_secs` is parked off the head of the queue, its tokens locked and its amount
//! reserved under the caps until the node learns how it ended — never paid twice, never lost;
//! payout invoices have a bounded expiry, and the payout route a bounded CLTV.

use std::sync::Arc;
use std::time::Duration;

use moip_assets::ledger::TokenLedger;
use moip_assets::pool::{PoolConfig, PoolError, RedemptionPool, Status};
use moip_lightning::testing::{fund, open_usable, start_node};
use moip_lightning::{LightningNode, PaymentRail, PaymentState, Preimage};
use moip_testenv::Regtest;
use moip_testkit::wait_until;

use crate::{account, ledger, runtime, WAIT};

/// Processes the queue, as `moip up` does in the background, until `id` is settled as
/// `wanted` (or the deadline passes).
fn settle_as(
    rt: &tokio::runtime::Runtime,
    pool: &RedemptionPool<moip_assets::ledger::MemoryJournal>,
    id: u64,
    wanted: fn(&Status) -> bool,
) -> Status {
    wait_until(WAIT, "the redemption to settle", || {
        rt.block_on(pool.process())
            .into_iter()
            .find(|(i, s)| *i == id && wanted(s))
            .map(|(_, s)| s)
    })
}

fn holds(node: &LightningNode, hash: moip_lightning::PaymentHash) {
    node.wait_for(WAIT, "the held payment to arrive", |n| {
        n.payment_by_hash(hash)
            .is_some_and(|r| r.inbound && r.state == PaymentState::Pending)
            .then_some(())
    })
    .expect("held");
}

#[test]
fn a_held_payout_does_not_stop_the_queue_and_settles_once() {
    let env = Regtest::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let community = start_node(&env, dir.path(), "community");
    let attackers = start_node(&env, dir.path(), "attackers");
    let honests = start_node(&env, dir.path(), "honests");
    fund(&env, &community, &[&attackers, &honests]);
    open_usable(&env, &community, &attackers, 500_000, None);
    open_usable(&env, &community, &honests, 500_000, None);
    let (attacker, honest) = (account(1), account(2));
    let ledger = ledger(200_000, &[(attacker, 50_000), (honest, 50_000)]);
    let rail: Arc<dyn PaymentRail> = Arc::new(community.clone());
    let config = PoolConfig {
        payout_wait_secs: 5,
        ..PoolConfig::default()
    };
    let pool = Arc::new(RedemptionPool::new(Arc::clone(&ledger), rail, config).expect("pool"));
    let amount = 10_000;
    let sats_out = amount - pool.fee(amount);
    let balance = |who| ledger.lock().expect("ledger").balance(&who);

    // A hold invoice that stays payable for a month is refused outright.
    let preimage = Preimage::random();
    let month = attackers
        .create_hold_invoice(
            preimage.payment_hash(),
            sats_out * 1000,
            "a month",
            30 * 86_400,
        )
        .expect("invoice");
    let refused = rt.block_on(pool.redeem(&attacker, amount, &month.bolt11, 1.0));
    assert!(
        matches!(&refused, Err(PoolError::Invoice(e)) if e.contains("expires too late")),
        "{refused:?}"
    );
    assert_eq!(balance(attacker), 50_000);

    // The attacker queues first, to a hold invoice of an hour; the honest member right after.
    let held = attackers
        .create_hold_invoice(preimage.payment_hash(), sats_out * 1000, "held", 3_600)
        .expect("invoice");
    let first = rt
        .block_on(pool.redeem(&attacker, amount, &held.bolt11, 1.0))
        .expect("queued");
    // The queue is paid in the background; a request made while a payout is held answers at
    // once, without waiting on the payment.
    let background = {
        let pool = Arc::clone(&pool);
        rt.spawn(async move { pool.process().await })
    };
    holds(&attackers, held.payment_hash);
    let invoice = honests
        .create_invoice(Some(sats_out * 1000), "honest", 3_600)
        .expect("invoice");
    let second = rt
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(10),
                pool.redeem(&honest, amount, &invoice.bolt11, 1.0),
            )
            .await
        })
        .expect("the request answers while the attacker holds the payout")
        .expect("queued");
    assert!(matches!(second.status, Status::Queued { .. }), "{second:?}");

    // The honest member is paid while the attacker still holds theirs.
    let outcomes = rt.block_on(background).expect("processed");
    assert!(
        outcomes.contains(&(first.id, Status::InFlight)),
        "{outcomes:?}"
    );
    settle_as(&rt, &pool, second.id, |s| *s == Status::Paid);
    let received = honests.payment_by_hash(invoice.payment_hash).expect("paid");
    assert_eq!(received.state, PaymentState::Succeeded);
    assert_eq!(pool.status(first.id), Some(Status::InFlight));
    assert_eq!(
        balance(attacker),
        40_000,
        "the attacker's tokens stay locked"
    );

    // The attacker gives up and fails the payment: their tokens come back, nothing was paid.
    attackers
        .cancel_hold_invoice(held.payment_hash)
        .expect("cancel");
    settle_as(&rt, &pool, first.id, |s| {
        matches!(s, Status::Cancelled { .. })
    });
    assert_eq!(balance(attacker), 50_000);
    assert_ne!(
        attackers
            .payment_by_hash(held.payment_hash)
            .map(|r| r.state),
        Some(PaymentState::Succeeded)
    );

    // Held again, then settled at last: paid exactly once, the tokens burned once.
    let preimage = Preimage::random();
    let held = attackers
        .create_hold_invoice(
            preimage.payment_hash(),
            sats_out * 1000,
            "held again",
            3_600,
        )
        .expect("invoice");
    let third = rt
        .block_on(pool.redeem(&attacker, amount, &held.bolt11, 1.0))
        .expect("queued");
    let background = {
        let pool = Arc::clone(&pool);
        rt.spawn(async move { pool.process().await })
    };
    holds(&attackers, held.payment_hash);
    let outcomes = rt.block_on(background).expect("processed");
    assert!(
        outcomes.contains(&(third.id, Status::InFlight)),
        "{outcomes:?}"
    );
    attackers.settle_hold_invoice(preimage).expect("settle");
    settle_as(&rt, &pool, third.id, |s| *s == Status::Paid);
    assert_eq!(balance(attacker), 40_000);
    let sent: Vec<_> = rt
        .block_on((&community as &dyn PaymentRail).payments())
        .expect("payments")
        .into_iter()
        .filter(|p| p.payment_hash == Some(held.payment_hash) && p.state == PaymentState::Succeeded)
        .collect();
    assert_eq!(sent.len(), 1, "paid once");
    {
        let l = ledger.lock().expect("ledger");
        assert!(l.state().redemptions().is_empty());
        assert_eq!(l.supply(), 100_000 - 2 * amount);
        assert!(l.collateral() >= l.supply());
    }

    for node in [community, attackers, honests] {
        node.stop().expect("stop");
    }
}
