//! Three real ldk-nodes (A, B, C) on the embedded regtest chain, syncing through moip's
//! Electrum server: routed payments with fees, keysend, BOLT12, hold invoices, multi-path
//! payments, typed errors that change nothing, and a restart of every node in the middle.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{fund, mine, open, open_with, outbound_msat, wait_event, wait_usable, TestNode, WAIT};
use moip_lightning::{
    LightningError, LightningEvent, PayRequest, PaymentId, PaymentRail, PaymentState, PaymentType,
    Preimage, RouteLimits,
};
use moip_testenv::Regtest;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Runs an async trait call to completion from the sync test.
fn block_on<F: std::future::Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    rt.block_on(f)
}

#[test]
fn three_nodes_route_keysend_offer_hold_mpp_errors_and_restart() {
    let env = Regtest::new();
    let root = tempfile::tempdir().expect("tempdir");
    let mut a = TestNode::start(&env, root.path(), "alice");
    let mut b = TestNode::start(&env, root.path(), "bob");
    let mut c = TestNode::start(&env, root.path(), "carol");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");

    // Fund from mined coins; open A–B and B–C (announced) and confirm them.
    fund(&env, &[&a, &b, &c]);
    let _ab = open(&env, &a, &b, 1_000_000, None);
    let _bc = open(&env, &b, &c, 1_000_000, None);
    mine(&env, 6, &[&a, &b, &c]);
    wait_usable(&a, 1);
    wait_usable(&b, 2);
    wait_usable(&c, 1);
    // A learns the B–C channel by gossip from B: no outside service involved.
    a.wait_for(WAIT, "A to learn B–C by gossip", |n| {
        (n.graph_channel_count() >= 2).then_some(())
    })
    .expect("gossip");

    // --- A pays C through B; B's fee is what A paid on top of the amount.
    let invoice = c
        .create_invoice(Some(50_000_000), "routed", 3600)
        .expect("invoice");
    let strict = c
        .create_invoice(Some(50_000_000), "fee limit", 3600)
        .expect("invoice");
    let err = a
        .pay(&strict.bolt11, None, RouteLimits::max_fee(0), WAIT)
        .expect_err("a route through B costs a fee, and the limit is zero");
    assert!(matches!(err, LightningError::NotSent { .. }), "{err:?}");
    let mut b_events = b.subscribe();
    let a_before = outbound_msat(&a);
    let paid = a
        .pay(&invoice.bolt11, None, RouteLimits::max_fee(10_000), WAIT)
        .expect("routed payment");
    let fee = paid.fee_paid_msat.expect("fee known");
    assert!(fee > 0 && fee <= 10_000, "fee {fee}");
    assert_eq!(
        paid.preimage.map(|p| p.payment_hash()),
        Some(invoice.payment_hash)
    );
    let earned = wait_event(&b, &mut b_events, "B's forward", |e| match e {
        LightningEvent::PaymentForwarded {
            fee_earned_msat, ..
        } => Some(*fee_earned_msat),
        _ => None,
    });
    assert_eq!(earned, Some(fee), "B earned exactly what A paid in fees");
    a.wait_for(WAIT, "A's channel to settle", |n| {
        (outbound_msat(n) == a_before - 50_000_000 - fee).then_some(())
    })
    .expect("A paid amount plus fee");
    let received = c
        .payment(PaymentId(invoice.payment_hash.0))
        .expect("C's record");
    assert!(received.inbound);
    assert_eq!(received.state, PaymentState::Succeeded);
    assert_eq!(received.amount_msat, Some(50_000_000));

    // --- Keysend A → B.
    let id = a
        .send_keysend(b.node_id(), 10_000_000, RouteLimits::default())
        .expect("keysend");
    a.wait_payment(id, WAIT).expect("keysend succeeded");
    b.wait_for(WAIT, "B's keysend record", |n| {
        n.payment(id)
            .filter(|r| r.state == PaymentState::Succeeded)
            .map(|r| {
                assert_eq!(r.kind, PaymentType::Keysend);
                assert_eq!(r.amount_msat, Some(10_000_000));
            })
    })
    .expect("B received the keysend");

    // --- Hold invoices through the PaymentRail trait: one settled, one cancelled.
    let rail: &dyn PaymentRail = &c.node;
    let early = Preimage::random();
    block_on(
        &rt,
        rail.create_hold_invoice(early.payment_hash(), 1_000_000, "early", 3600),
    )
    .expect("hold invoice");
    let err = block_on(&rt, rail.settle_hold_invoice(early)).expect_err("nothing arrived yet");
    assert!(
        matches!(err, LightningError::HoldInvoiceNotAccepted(_)),
        "{err:?}"
    );

    let mut c_events = rail.events();
    let preimage = Preimage::random();
    let hold = block_on(
        &rt,
        rail.create_hold_invoice(preimage.payment_hash(), 30_000_000, "escrow", 3600),
    )
    .expect("hold invoice");
    let id = a
        .send_bolt11(&hold.bolt11, None, RouteLimits::max_fee(10_000))
        .expect("pay hold invoice");
    let held = wait_event(&c, &mut c_events, "the held payment", |e| match e {
        LightningEvent::HoldInvoiceAccepted {
            payment_hash,
            amount_msat,
            ..
        } if *payment_hash == hold.payment_hash => Some(*amount_msat),
        _ => None,
    });
    assert_eq!(held, 30_000_000);
    assert_eq!(
        a.payment(id).expect("A's record").state,
        PaymentState::Pending,
        "held, not settled"
    );
    block_on(&rt, rail.settle_hold_invoice(preimage)).expect("settle");
    let outcome = a.wait_payment(id, WAIT).expect("settled");
    assert_eq!(outcome.preimage, Some(preimage));

    let a_before = outbound_msat(&a);
    let refused = Preimage::random();
    let hold = block_on(
        &rt,
        rail.create_hold_invoice(refused.payment_hash(), 25_000_000, "refund", 3600),
    )
    .expect("hold invoice");
    let id = a
        .send_bolt11(&hold.bolt11, None, RouteLimits::max_fee(10_000))
        .expect("pay hold invoice");
    wait_event(&c, &mut c_events, "the second held payment", |e| match e {
        LightningEvent::HoldInvoiceAccepted { payment_hash, .. }
            if *payment_hash == hold.payment_hash =>
        {
            Some(())
        }
        _ => None,
    });
    assert!(
        outbound_msat(&a) < a_before,
        "the HTLC is out of A's balance"
    );
    block_on(&rt, rail.cancel_hold_invoice(hold.payment_hash)).expect("cancel");
    let err = a.wait_payment(id, WAIT).expect_err("cancelled");
    assert!(
        matches!(err, LightningError::PaymentFailed { .. }),
        "{err:?}"
    );
    a.wait_for(WAIT, "A's funds to return", |n| {
        (outbound_msat(n) == a_before).then_some(())
    })
    .expect("funds returned");

    // --- A BOLT12 offer of C's, paid by A through B.
    // Onion messages (the offer's invoice request and its reply) travel over announced nodes:
    // wait until A and C have every node's announcement (sent within 30 s of a channel's
    // announcement).
    for node in [&a, &c] {
        node.wait_for(WAIT, "node announcements", |n| {
            (n.graph_announced_node_count() >= 3).then_some(())
        })
        .expect("node announcements");
    }
    let offer = c.create_offer(Some(20_000_000), "offer").expect("offer");
    let id = a
        .send_offer(
            &offer,
            None,
            Some("thanks".into()),
            RouteLimits::max_fee(10_000),
        )
        .expect("pay offer");
    let outcome = a.wait_payment(id, WAIT).expect("offer paid");
    let hash = outcome.payment_hash.expect("hash");
    c.wait_for(WAIT, "C's offer record", |n| {
        n.payments()
            .into_iter()
            .find(|r| r.inbound && r.payment_hash == Some(hash))
            .filter(|r| r.state == PaymentState::Succeeded)
            .map(|r| {
                assert_eq!(r.kind, PaymentType::Bolt12);
                assert_eq!(r.amount_msat, Some(20_000_000));
            })
    })
    .expect("C received the offer payment");

    // --- Errors that change nothing: malformed, expired, above balance.
    let payments_before = a.payments();
    let outbound_before = outbound_msat(&a);
    let err = a
        .pay("lnbcrt1notaninvoice", None, RouteLimits::default(), WAIT)
        .expect_err("malformed");
    assert!(matches!(err, LightningError::Malformed { .. }), "{err:?}");
    let err = block_on(
        &rt,
        (&a.node as &dyn PaymentRail).pay(PayRequest::new("garbage")),
    )
    .expect_err("malformed through the rail");
    assert!(matches!(err, LightningError::Malformed { .. }), "{err:?}");
    let short = c
        .create_invoice(Some(1_000_000), "short-lived", 1)
        .expect("invoice");
    a.wait_for(Duration::from_secs(10), "the invoice to expire", |_| {
        (now_secs() > short.expires_at + 1).then_some(())
    })
    .expect("time passes");
    let err = a
        .pay(&short.bolt11, None, RouteLimits::default(), WAIT)
        .expect_err("expired");
    assert!(
        matches!(err, LightningError::InvoiceExpired { .. }),
        "{err:?}"
    );
    let sendable = a.balance().sendable_msat;
    let big = c
        .create_invoice(Some(sendable + 1_000), "too much", 3600)
        .expect("invoice");
    let err = a
        .pay(&big.bolt11, None, RouteLimits::default(), WAIT)
        .expect_err("above balance");
    assert!(
        matches!(err, LightningError::InsufficientBalance { .. }),
        "{err:?}"
    );
    assert_eq!(a.payments(), payments_before, "no payment recorded");
    assert_eq!(outbound_msat(&a), outbound_before, "no balance moved");

    // --- Restart every node: channels and balances survive.
    let snapshot = |n: &TestNode| {
        let mut channels: Vec<(u128, u64)> = n
            .channels()
            .iter()
            .map(|c| (c.user_channel_id, c.outbound_msat))
            .collect();
        channels.sort();
        (
            channels,
            n.balance().lightning_sats,
            n.balance().onchain_sats,
        )
    };
    let before = [snapshot(&a), snapshot(&b), snapshot(&c)];
    a.restart();
    b.restart();
    c.restart();
    wait_usable(&a, 1);
    wait_usable(&b, 2);
    wait_usable(&c, 1);
    assert_eq!([snapshot(&a), snapshot(&b), snapshot(&c)], before);

    // --- A second path A–C, then a payment larger than any one channel: MPP over both paths.
    // ldk-node lets at most 10% of a channel be in flight towards the peer that accepted it, or
    // towards an announced channel's opener; only the opener of a private channel allows 100%.
    // So C opens a private channel to A and pushes nearly all of it to A's side: A can send
    // almost the whole channel back to C directly, and the rest of the payment goes via B.
    const CHANNEL_SATS: u64 = 1_000_000;
    let _ca = open_with(&env, &c, &a, CHANNEL_SATS, Some(980_000_000), false);
    mine(&env, 6, &[&a, &b, &c]);
    wait_usable(&a, 2);
    wait_usable(&c, 2);
    let amount = 1_020_000_000;
    let largest_channel_msat = [&a, &b, &c]
        .iter()
        .flat_map(|n| n.channels())
        .map(|ch| ch.capacity_sats * 1000)
        .max()
        .expect("channels");
    assert!(amount > largest_channel_msat, "larger than any channel");
    let single_max = a
        .channels()
        .iter()
        .filter(|ch| ch.is_usable)
        .map(|ch| ch.outbound_msat)
        .max()
        .expect("channels");
    assert!(amount > single_max, "no one path of A's can carry it");
    let c_inbound_before: Vec<(u128, u64)> = c
        .channels()
        .iter()
        .map(|ch| (ch.user_channel_id, ch.inbound_msat))
        .collect();
    let invoice = c
        .create_invoice(Some(amount), "mpp", 3600)
        .expect("invoice");
    let outcome = block_on(
        &rt,
        (&a.node as &dyn PaymentRail).pay(PayRequest {
            // Each path via B carries under a tenth of the amount: allow more than LDK's 10 parts.
            limits: RouteLimits {
                max_fee_msat: Some(20_000),
                max_parts: Some(32),
                ..RouteLimits::default()
            },
            timeout: WAIT,
            ..PayRequest::new(invoice.bolt11.clone())
        }),
    )
    .expect("multi-path payment");
    assert_eq!(outcome.amount_msat, Some(amount));
    c.wait_for(WAIT, "both of C's channels to receive", |n| {
        let used = n
            .channels()
            .iter()
            .filter(|ch| {
                c_inbound_before
                    .iter()
                    .any(|(id, before)| *id == ch.user_channel_id && ch.inbound_msat < *before)
            })
            .count();
        (used >= 2).then_some(())
    })
    .expect("the payment took two paths");
}
