//! Attack 1: **redemption fees drain the collateral.**
//!
//! A member redeems to an invoice of their own node that can only be reached through another
//! node of theirs, which charges a 49-sat base fee to forward. The community's node pays that
//! routing fee on top of the payout. Before the defence the pool paid with LDK's default fee
//! limit (1 % + 50 sat) while the ledger lowered collateral by the payout alone: redeeming 2
//! tokens at a time took ~49 sat of collateral backing other members' tokens per redemption.
//!
//! The defence: a redemption's own fee is its payout's network-fee limit; the routing fee
//! really paid is recorded in the ledger (collateral falls by exactly what left the node,
//! never by more than the tokens burned); a minimum redemption; caps counted in sats that
//! leave, fees included.

use std::sync::Arc;

use moip_assets::ledger::{Op, TokenLedger};
use moip_assets::pool::{PoolConfig, PoolError, RedemptionPool, Status};
use moip_lightning::testing::{fund, open_usable, open_usable_charging, start_node};
use moip_lightning::{ForwardingFee, PaymentRail};
use moip_testenv::Regtest;

use crate::{account, ledger, really_sent_msat, runtime};

#[test]
fn a_member_cannot_make_the_community_pay_their_routing_fees() {
    let env = Regtest::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let community = start_node(&env, dir.path(), "community");
    let router = start_node(&env, dir.path(), "attackers-router");
    let payee = start_node(&env, dir.path(), "attackers-payee");
    fund(&env, &community, &[&router, &payee]);
    fund(&env, &router, &[&community, &payee]);
    open_usable(&env, &community, &router, 1_000_000, None);
    // The attacker's payee is reachable only through the router, which charges 49 sat per
    // payment it forwards to it: every route to the payee pays the router that much.
    open_usable_charging(
        &env,
        &router,
        &payee,
        500_000,
        ForwardingFee {
            base_msat: 49_000,
            proportional_millionths: 0,
        },
        &[&community],
    );
    let (attacker, honest) = (account(1), account(2));
    let ledger = ledger(200_000, &[(attacker, 50_000), (honest, 50_000)]);
    let rail: Arc<dyn PaymentRail> = Arc::new(community.clone());
    let pool = RedemptionPool::new(Arc::clone(&ledger), rail, PoolConfig::default()).expect("pool");
    let books = || {
        let l = ledger.lock().expect("ledger");
        (l.collateral(), l.supply())
    };
    let (collateral_before, supply_before) = books();

    // The attack: many tiny redemptions, each paid through the 49-sat hop. Refused ones change
    // nothing; taken ones are processed as `moip up` would.
    for round in 0..3 {
        let amount = 2;
        let sats_out = amount - pool.fee(amount);
        let invoice = payee
            .create_invoice(Some(sats_out * 1000), &format!("tiny {round}"), 3_600)
            .expect("invoice");
        match rt.block_on(pool.redeem(&attacker, amount, &invoice.bolt11, 1.0)) {
            Ok(_) => {
                rt.block_on(pool.process());
            }
            Err(e) => {
                assert!(
                    matches!(e, PoolError::BelowMinimum { min: 1_000, .. }),
                    "{e}"
                );
                assert_eq!(ledger.lock().expect("ledger").balance(&attacker), 50_000);
            }
        }
    }
    // The smallest redemption taken: its fee (5 sat) cannot pay the 49-sat hop, so the payout
    // finds no route within its limit and the tokens come back.
    let invoice = payee
        .create_invoice(Some((1_000 - pool.fee(1_000)) * 1000), "minimum", 3_600)
        .expect("invoice");
    let ticket = rt
        .block_on(pool.redeem(&attacker, 1_000, &invoice.bolt11, 1.0))
        .expect("taken");
    let outcomes = rt.block_on(pool.process());
    assert!(
        matches!(outcomes.as_slice(), [(id, Status::Cancelled { .. })] if *id == ticket.id),
        "{outcomes:?}"
    );
    assert_eq!(ledger.lock().expect("ledger").balance(&attacker), 50_000);

    // The books after the attack: whatever left the community's node left through the
    // ledger, fees included, and never more than the tokens burned.
    let sent = really_sent_msat(&rt, &community);
    let (collateral, supply) = books();
    let burned = supply_before - supply;
    let collateral_out = collateral_before - collateral;
    assert!(
        collateral_out * 1000 >= sent,
        "{sent} msat left the node; the ledger's collateral fell by {collateral_out} sat"
    );
    assert!(
        sent <= burned * 1000,
        "{sent} msat left the node for {burned} tokens burned: the community paid the difference"
    );

    // A redemption whose fee covers the hop (20 000 tokens: 100 sat) is paid through it, and
    // the routing fee it really cost is recorded and taken from collateral — and counted
    // against the caps with the payout.
    let amount = 20_000;
    let fee = pool.fee(amount);
    let invoice = payee
        .create_invoice(Some((amount - fee) * 1000), "large enough", 3_600)
        .expect("invoice");
    let ticket = rt
        .block_on(pool.redeem(&honest, amount, &invoice.bolt11, 1.0))
        .expect("taken");
    let (collateral_before, supply_before) = books();
    let outcomes = rt.block_on(pool.process());
    assert_eq!(outcomes, vec![(ticket.id, Status::Paid)]);
    let record = rt
        .block_on((&community as &dyn PaymentRail).payment_by_hash(invoice.payment_hash))
        .expect("record")
        .expect("paid");
    let routing = record.fee_paid_msat.expect("a routing fee");
    assert!(routing >= 49_000, "{routing} msat through the 49-sat hop");
    let (collateral, supply) = books();
    assert_eq!(supply_before - supply, amount);
    assert_eq!(
        collateral_before - collateral,
        ticket.sats_out + routing.div_ceil(1000),
        "collateral falls by the payout and the routing fee"
    );
    let journal = ledger.lock().expect("ledger").entries(0).expect("entries");
    assert!(journal.iter().any(|e| e.op
        == Op::Redeemed {
            id: ticket.id,
            fee_msat: routing
        }));
    assert_eq!(pool.epoch_out(), ticket.sats_out + routing.div_ceil(1000));
    let sent = really_sent_msat(&rt, &community);
    let (collateral, _) = books();
    assert!(
        (200_000 - collateral) * 1000 >= sent,
        "the books cover what left"
    );
    assert!(collateral >= supply);

    for node in [community, router, payee] {
        node.stop().expect("stop");
    }
}
