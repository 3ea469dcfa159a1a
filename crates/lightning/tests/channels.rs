//! Two real ldk-nodes on the embedded regtest chain: the node's on-chain wallet, a channel
//! opened with a push amount and closed cooperatively, and a force close whose funds come back
//! only after the CSV delay, swept by the node.

mod common;

use common::{fund, mine, open, sync_all, wait_event, wait_usable, TestNode, WAIT};
use moip_lightning::{LightningError, LightningEvent};
use moip_testenv::Regtest;

#[test]
fn onchain_wallet_push_cooperative_close_and_force_close_with_sweep() {
    let env = Regtest::new();
    let root = tempfile::tempdir().expect("tempdir");
    let a = TestNode::start(&env, root.path(), "alice");
    let b = TestNode::start(&env, root.path(), "bob");
    fund(&env, &[&a]);

    // --- The on-chain wallet: address, balance, send; typed errors for bad input.
    let b_address = b.new_address().expect("address");
    a.send_onchain(&b_address.to_string(), 100_000)
        .expect("send on chain");
    let err = a
        .send_onchain("not-an-address", 1_000)
        .expect_err("malformed");
    assert!(matches!(err, LightningError::Malformed { .. }), "{err:?}");
    let err = a
        .send_onchain(&b_address.to_string(), 100 * 100_000_000)
        .expect_err("more than the wallet holds");
    assert!(
        matches!(err, LightningError::InsufficientBalance { .. }),
        "{err:?}"
    );
    // ldk-node broadcasts from a queue: mine once the transaction is in the node's mempool.
    a.wait_for(WAIT, "the payment in the mempool", |_| {
        (!env.node.mempool_txids().is_empty()).then_some(())
    })
    .expect("broadcast");
    mine(&env, 1, &[&a, &b]);
    b.wait_for(WAIT, "B's on-chain balance", |n| {
        n.sync().ok()?;
        (n.balance().onchain_sats == 100_000).then_some(())
    })
    .expect("B received");

    // --- Two channels A–B: one with 100k sat pushed to B, one plain.
    let mut a_events = a.subscribe();
    let mut b_events = b.subscribe();
    // Back to back, from a wallet holding a single coin: the second funding must spend the
    // first one's change, not the same coin again (a double spend the mempool refuses, so
    // `open` would never see it there and the channel would never confirm).
    let pushed = open(&env, &a, &b, 500_000, Some(100_000_000));
    let plain = open(&env, &a, &b, 300_000, None);
    let fundings: Vec<_> = a.channels().iter().filter_map(|c| c.funding_txid).collect();
    assert_eq!(fundings.len(), 2);
    assert_ne!(fundings[0], fundings[1]);
    mine(&env, 6, &[&a, &b]);
    wait_usable(&a, 2);
    wait_usable(&b, 2);
    for (node, events) in [(&a, &mut a_events), (&b, &mut b_events)] {
        wait_event(node, events, "channel ready", |e| {
            matches!(e, LightningEvent::ChannelReady { .. }).then_some(())
        });
    }
    // B's side of the pushed channel is the push; the funder pays all the fees.
    assert_eq!(b.balance().lightning_sats, 100_000);
    let b_channel = b
        .channels()
        .into_iter()
        .find(|c| c.capacity_sats == 500_000)
        .expect("B sees the pushed channel");
    assert!(!b_channel.is_outbound);
    assert!(b_channel.outbound_msat > 0, "B can spend the push");

    // --- Cooperative close: B gets its 100k on chain at once.
    a.close_channel(pushed).expect("close");
    wait_event(&b, &mut b_events, "the cooperative close", |e| match e {
        LightningEvent::ChannelClosed { .. } => Some(()),
        _ => None,
    });
    a.wait_for(WAIT, "the closing transaction in the mempool", |_| {
        (!env.node.mempool_txids().is_empty()).then_some(())
    })
    .expect("closing tx broadcast");
    mine(&env, 1, &[&a, &b]);
    b.wait_for(WAIT, "B's closing output", |n| {
        n.sync().ok()?;
        (n.balance().onchain_sats == 200_000).then_some(())
    })
    .expect("B got its channel balance on chain");
    assert_eq!(a.channels().len(), 1);

    // --- Force close: A's balance is locked for the CSV delay, then swept.
    let delay = a
        .ldk()
        .list_channels()
        .iter()
        .find(|c| c.user_channel_id.0 == plain)
        .and_then(|c| c.force_close_spend_delay)
        .expect("our to_self_delay") as u32;
    let onchain_before = a.balance().onchain_sats;
    a.force_close_channel(plain, Some("test".into()))
        .expect("force close");
    wait_event(&a, &mut a_events, "the force close", |e| match e {
        LightningEvent::ChannelClosed { .. } => Some(()),
        _ => None,
    });
    a.wait_for(WAIT, "the commitment in the mempool", |_| {
        (!env.node.mempool_txids().is_empty()).then_some(())
    })
    .expect("commitment broadcast");
    mine(&env, 1, &[&a, &b]);
    // The channel is gone, but our output of the commitment is still ours, timelocked.
    a.wait_for(WAIT, "the locked balance to show", |n| {
        n.sync().ok()?;
        (n.channels().is_empty() && n.balance().lightning_sats > 250_000).then_some(())
    })
    .expect("timelocked balance");
    // One block short of the delay the output cannot be spent: nothing has come back.
    mine(&env, delay - 2, &[&a, &b]);
    assert!(
        a.balance().onchain_sats < onchain_before + 250_000,
        "funds must not return before the CSV delay"
    );
    // After the delay the node sweeps on its own; confirm the sweep. The node may sweep as soon
    // as it sees the first of these two blocks (its background sync runs on its own), and then
    // the second block confirms the sweep: in the mempool or already in the wallet both count.
    mine(&env, 2, &[&a, &b]);
    a.wait_for(WAIT, "the sweep in the mempool or a block", |n| {
        n.sync().ok()?;
        let broadcast = !env.node.mempool_txids().is_empty();
        let confirmed = n.balance().onchain_sats >= onchain_before + 250_000;
        (broadcast || confirmed).then_some(())
    })
    .expect("sweep broadcast");
    mine(&env, 6, &[&a, &b]);
    a.wait_for(WAIT, "the swept funds in A's wallet", |n| {
        n.sync().ok()?;
        let onchain = n.balance().onchain_sats;
        (onchain > onchain_before + 290_000).then_some(onchain)
    })
    .expect("swept");
    assert!(a.balance().onchain_sats <= onchain_before + 300_000);
    sync_all(&env, &[&a, &b]);
    assert!(a.channels().is_empty());
}
