//! The embedded node end to end: real keys, real signatures, Bitcoin Core's validation.

mod common;

use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, Sequence, TxOut};
use common::{coinbase_output, out, sign, spend, wait_event, Key, Kind, TestNode};
use moip_chain::embedded::{BlockSubmission, SubmitOptions};
use moip_chain::{ChainError, ChainEvent, ChainSource, RejectKind, RemovalReason};

const WAIT: Duration = Duration::from_secs(10);

fn rejection(result: Result<bitcoin::Txid, ChainError>) -> moip_chain::TxRejection {
    match result {
        Err(ChainError::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn mines_200_blocks_and_spends_p2wpkh_and_p2tr_coinbases() {
    let t = TestNode::new();
    let w = Key::new(1, Kind::P2wpkh);
    let k = Key::new(2, Kind::P2tr);
    let dest = Key::new(3, Kind::P2tr);
    t.node.generate(100, &w.script()).expect("mine");
    t.node.generate(100, &k.script()).expect("mine");
    assert_eq!(t.node.tip().expect("tip").height, 200);

    // Regtest halves every 150 blocks.
    assert_eq!(
        coinbase_output(&t.node, 1).1.value,
        Amount::from_btc(50.0).expect("amount")
    );
    assert_eq!(
        coinbase_output(&t.node, 150).1.value,
        Amount::from_btc(25.0).expect("amount")
    );

    let segwit = spend(coinbase_output(&t.node, 1), &w, dest.script(), 1_000);
    let taproot = spend(coinbase_output(&t.node, 101), &k, dest.script(), 2_000);
    let mut events = t.node.subscribe();
    t.node.broadcast(&segwit).expect("p2wpkh spend accepted");
    t.node.broadcast(&taproot).expect("p2tr spend accepted");
    wait_event(
        &mut events,
        WAIT,
        "TxAdded",
        |e| matches!(e, ChainEvent::TxAdded { txid } if *txid == taproot.compute_txid()),
    );
    let entry = t
        .node
        .mempool_entry(&segwit.compute_txid())
        .expect("in mempool");
    assert_eq!(entry.fee, Amount::from_sat(1_000));

    let hashes = t.node.generate(1, &w.script()).expect("mine");
    let block = t.node.block(&hashes[0]).expect("query").expect("block");
    assert_eq!(block.txdata.len(), 3, "coinbase and both spends");
    assert!(t.node.mempool_txids().is_empty());
    let fees = Amount::from_sat(3_000);
    assert_eq!(
        block.txdata[0].output[0].value,
        Amount::from_btc(25.0).expect("amount") + fees,
        "miner collects the fees"
    );
    let found = t
        .node
        .transaction(&taproot.compute_txid(), None)
        .expect("query")
        .expect("indexed");
    assert_eq!(found.location.expect("confirmed").height, 201);

    // The confirmed P2TR output spends again: the node's UTXO view followed the block.
    let again = spend(out(&taproot, 0), &dest, w.script(), 500);
    t.node.broadcast(&again).expect("spend of a fresh output");
    // And its undo data shows what the block spent.
    let spent = t
        .node
        .spent_outputs(&hashes[0])
        .expect("query")
        .expect("undo");
    assert_eq!(spent.len(), 2);
    let at = block
        .txdata
        .iter()
        .position(|tx| tx.compute_txid() == taproot.compute_txid())
        .expect("in block");
    assert_eq!(at, 1, "the higher fee rate goes first");
    assert_eq!(spent[at - 1][0].txout.script_pubkey, k.script());
    assert!(spent[at - 1][0].coinbase);
    assert_eq!(spent[at - 1][0].height, 101);
}

#[test]
fn bad_signatures_are_refused_by_the_kernel() {
    let t = TestNode::new();
    let w = Key::new(1, Kind::P2wpkh);
    let k = Key::new(2, Kind::P2tr);
    t.node.generate(1, &w.script()).expect("mine");
    t.node.generate(1, &k.script()).expect("mine");
    t.node
        .generate(100, &Key::new(9, Kind::P2wpkh).script())
        .expect("mine");

    let mut segwit = spend(coinbase_output(&t.node, 1), &w, k.script(), 1_000);
    let mut sig = segwit.input[0].witness.nth(0).expect("sig").to_vec();
    sig[10] ^= 1; // inside r: still DER, no longer a valid signature
    let pk = segwit.input[0].witness.nth(1).expect("pk").to_vec();
    segwit.input[0].witness = bitcoin::Witness::from_slice(&[sig, pk]);
    let r = rejection(t.node.broadcast(&segwit));
    assert_eq!(r.reason, "mandatory-script-verify-flag-failed");
    assert!(
        r.to_string().contains("libbitcoinkernel"),
        "names the verifier: {r}"
    );

    let mut taproot = spend(coinbase_output(&t.node, 2), &k, w.script(), 1_000);
    let mut sig = taproot.input[0].witness.nth(0).expect("sig").to_vec();
    sig[0] ^= 1;
    taproot.input[0].witness = bitcoin::Witness::from_slice(&[sig]);
    let r = rejection(t.node.broadcast(&taproot));
    assert_eq!(r.reason, "mandatory-script-verify-flag-failed");
    assert!(
        t.node.mempool_txids().is_empty(),
        "nothing entered the mempool"
    );
}

#[test]
fn consensus_and_policy_refusals_carry_core_reasons() {
    let t = TestNode::new();
    let w = Key::new(1, Kind::P2wpkh);
    t.node.generate(101, &w.script()).expect("mine");
    let dest = Key::new(2, Kind::P2wpkh).script();

    let premature = spend(coinbase_output(&t.node, 101), &w, dest.clone(), 1_000);
    let r = rejection(t.node.broadcast(&premature));
    assert_eq!(r.reason, "bad-txns-premature-spend-of-coinbase");
    assert_eq!(
        r.debug.as_deref(),
        Some("tried to spend coinbase at depth 1")
    );

    let coin = coinbase_output(&t.node, 1);
    let cheap = spend(coin.clone(), &w, dest.clone(), 50);
    let r = rejection(t.node.broadcast(&cheap));
    assert_eq!(
        (r.reason.as_str(), r.debug.as_deref()),
        ("min relay fee not met", Some("50 < 110"))
    );

    let dust = sign(
        &[(coin.0, coin.1.clone(), &w)],
        vec![
            TxOut {
                value: Amount::from_sat(293),
                script_pubkey: dest.clone(),
            },
            TxOut {
                value: coin.1.value - Amount::from_sat(10_293),
                script_pubkey: dest.clone(),
            },
        ],
        Sequence::MAX,
    );
    assert_eq!(rejection(t.node.broadcast(&dust)).reason, "dust");

    let overspend = sign(
        &[(coin.0, coin.1.clone(), &w)],
        vec![TxOut {
            value: coin.1.value + Amount::ONE_SAT,
            script_pubkey: dest.clone(),
        }],
        Sequence::MAX,
    );
    assert_eq!(
        rejection(t.node.broadcast(&overspend)).reason,
        "bad-txns-in-belowout"
    );

    let absurd = spend(coin.clone(), &w, dest.clone(), 1_000_000_000);
    let r = rejection(t.node.broadcast(&absurd));
    assert_eq!(r.kind, RejectKind::MaxFeeExceeded);

    let missing = spend(
        (
            bitcoin::OutPoint {
                txid: cheap.compute_txid(),
                vout: 0,
            },
            coin.1.clone(),
        ),
        &w,
        dest.clone(),
        1_000,
    );
    assert_eq!(
        rejection(t.node.broadcast(&missing)).kind,
        RejectKind::MissingInputs
    );

    let good = spend(coin, &w, dest, 1_000);
    t.node.broadcast(&good).expect("accepted");
    t.node
        .broadcast(&good)
        .expect("a second submission of a mempool tx is not an error");
    t.node.generate(1, &w.script()).expect("mine");
    assert_eq!(
        rejection(t.node.broadcast(&good)).kind,
        RejectKind::AlreadyInChain
    );
}

#[test]
fn replace_by_fee_follows_bip125_rules_3_to_6() {
    let t = TestNode::new();
    let w = Key::new(1, Kind::P2wpkh);
    t.node.generate(101, &w.script()).expect("mine");
    let coin = coinbase_output(&t.node, 1);
    let a = Key::new(2, Kind::P2wpkh).script();
    let b = Key::new(3, Kind::P2tr).script();

    let original = spend(coin.clone(), &w, a.clone(), 1_000);
    t.node.broadcast(&original).expect("original");
    // A child of the original is evicted with it.
    let child = spend(
        out(&original, 0),
        &Key::new(2, Kind::P2wpkh),
        a.clone(),
        1_000,
    );
    t.node.broadcast(&child).expect("child");

    // Rule 3: must pay at least the fees it evicts (1000 + 1000).
    let r = rejection(t.node.broadcast(&spend(coin.clone(), &w, b.clone(), 1_500)));
    assert_eq!(r.reason, "insufficient fee");
    assert!(
        r.debug
            .as_deref()
            .unwrap_or("")
            .contains("less fees than conflicting txs"),
        "{r}"
    );
    // Rule 4: and pay for its own relay on top.
    let r = rejection(t.node.broadcast(&spend(coin.clone(), &w, b.clone(), 2_050)));
    assert!(
        r.debug
            .as_deref()
            .unwrap_or("")
            .contains("not enough additional fees to relay"),
        "{r}"
    );
    // Rule 6: a lower fee rate than the original is refused even with a higher absolute fee.
    let r = rejection(t.node.broadcast(&spend(coin.clone(), &w, b.clone(), 900)));
    assert!(
        r.debug.as_deref().unwrap_or("").contains("new feerate"),
        "{r}"
    );

    let mut events = t.node.subscribe();
    let replacement = spend(coin, &w, b, 5_000);
    t.node
        .broadcast(&replacement)
        .expect("a well-paid replacement is accepted");
    let mut gone = std::collections::BTreeSet::new();
    while gone.len() < 2 {
        if let ChainEvent::TxRemoved { txid, .. } =
            wait_event(&mut events, WAIT, "replacement evictions", |e| {
                matches!(
                    e,
                    ChainEvent::TxRemoved {
                        reason: RemovalReason::Replaced,
                        ..
                    }
                )
            })
        {
            gone.insert(txid);
        }
    }
    assert_eq!(
        gone,
        [original.compute_txid(), child.compute_txid()]
            .into_iter()
            .collect()
    );
    assert_eq!(t.node.mempool_txids(), vec![replacement.compute_txid()]);
}

#[test]
fn invalidateblock_reorganises_and_returns_transactions_to_the_mempool() {
    let t = TestNode::new();
    let w = Key::new(1, Kind::P2wpkh);
    t.node.generate(110, &w.script()).expect("mine");
    let tx = spend(
        coinbase_output(&t.node, 1),
        &w,
        Key::new(2, Kind::P2tr).script(),
        1_000,
    );
    t.node.broadcast(&tx).expect("accepted");
    let mined = t.node.generate(1, &w.script()).expect("mine")[0];
    assert!(t.node.mempool_txids().is_empty());

    let mut events = t.node.subscribe();
    t.node.invalidate_block(&mined).expect("invalidate");
    assert_eq!(t.node.tip().expect("tip").height, 110);
    wait_event(
        &mut events,
        WAIT,
        "disconnect",
        |e| matches!(e, ChainEvent::BlockDisconnected(b) if b.hash == mined),
    );
    wait_event(
        &mut events,
        WAIT,
        "re-added tx",
        |e| matches!(e, ChainEvent::TxAdded { txid } if *txid == tx.compute_txid()),
    );
    assert_eq!(t.node.mempool_txids(), vec![tx.compute_txid()]);
    assert!(t
        .node
        .transaction(&tx.compute_txid(), None)
        .expect("query")
        .expect("in mempool")
        .location
        .is_none());
    assert_eq!(
        t.node
            .submit_block(&t.node.block(&mined).expect("q").expect("archived"))
            .expect("submit"),
        BlockSubmission::Rejected("duplicate-invalid".into())
    );

    // A new branch confirms the transaction again in a different block.
    let branch = t.node.generate(2, &w.script()).expect("mine");
    let located = t
        .node
        .transaction(&tx.compute_txid(), None)
        .expect("query")
        .expect("found");
    assert_eq!(located.location.expect("confirmed").block_hash, branch[0]);

    // Reconsidering the old block brings back a shorter branch: no reorganisation.
    t.node.reconsider_block(&mined).expect("reconsider");
    assert_eq!(t.node.tip().expect("tip").hash, branch[1]);

    // Invalidating deeper steps further back, and the chain continues from there.
    let deep = t.node.block_hash(105).expect("q").expect("exists");
    t.node.invalidate_block(&deep).expect("invalidate deep");
    assert_eq!(t.node.tip().expect("tip").height, 104);
    assert_eq!(
        t.node.mempool_txids(),
        vec![tx.compute_txid()],
        "returned again, once"
    );
    t.node
        .generate(1, &w.script())
        .expect("mine on the old chain");
    assert_eq!(t.node.tip().expect("tip").height, 105);

    // Reconsidering the deep block: its branch (up to 112) has more work and wins again.
    t.node.reconsider_block(&deep).expect("reconsider deep");
    assert_eq!(t.node.tip().expect("tip").hash, branch[1]);
    assert!(t.node.mempool_txids().is_empty());
}

#[test]
fn restart_keeps_chain_and_mempool() {
    let t = TestNode::new();
    let w = Key::new(1, Kind::P2wpkh);
    t.node.generate(105, &w.script()).expect("mine");
    let tx = spend(coinbase_output(&t.node, 2), &w, w.script(), 1_000);
    t.node.broadcast(&tx).expect("accepted");
    let tip = t.node.tip().expect("tip");
    let t = t.restart();
    assert_eq!(t.node.tip().expect("tip"), tip);
    assert_eq!(t.node.mempool_txids(), vec![tx.compute_txid()]);
    // The reloaded mempool still guards its spends: a replacement must pay more.
    let again = spend(coinbase_output(&t.node, 2), &w, w.script(), 2_000);
    t.node
        .broadcast(&again)
        .expect("RBF over the reloaded mempool");
    assert_eq!(t.node.mempool_txids(), vec![again.compute_txid()]);
    // And the index came back: a coin spent before the restart stays spent.
    let hash = t.node.generate(1, &w.script()).expect("mine after restart")[0];
    let reuse = spend(coinbase_output(&t.node, 2), &w, w.script(), 3_000);
    let err = t
        .node
        .broadcast(&reuse)
        .expect_err("already spent in a block");
    assert!(
        matches!(err, moip_chain::ChainError::Rejected(r) if r.kind == RejectKind::MissingInputs),
        "{hash}"
    );
}

#[test]
fn block_templates_order_by_ancestor_fee_rate() {
    let t = TestNode::new();
    let w = Key::new(1, Kind::P2wpkh);
    t.node.generate(103, &w.script()).expect("mine");
    let parent = spend(coinbase_output(&t.node, 1), &w, w.script(), 110);
    let child = spend(out(&parent, 0), &w, w.script(), 20_000);
    let middle = spend(coinbase_output(&t.node, 2), &w, w.script(), 5_000);
    for tx in [&parent, &middle, &child] {
        t.node.broadcast(tx).expect("accepted");
    }
    let entry = t.node.mempool_entry(&child.compute_txid()).expect("child");
    assert_eq!(
        (entry.ancestor_count, entry.ancestor_fees),
        (2, Amount::from_sat(20_110))
    );
    let hash = t.node.generate(1, &w.script()).expect("mine")[0];
    let order: Vec<_> = t
        .node
        .block(&hash)
        .expect("q")
        .expect("b")
        .txdata
        .iter()
        .skip(1)
        .map(|t| t.compute_txid())
        .collect();
    assert_eq!(
        order,
        vec![
            parent.compute_txid(),
            child.compute_txid(),
            middle.compute_txid()
        ],
        "CPFP package first"
    );
}

#[test]
fn packages_let_a_child_pay_for_its_parent() {
    let t = TestNode::new();
    let w = Key::new(1, Kind::P2wpkh);
    t.node.generate(101, &w.script()).expect("mine");
    let parent = spend(coinbase_output(&t.node, 1), &w, w.script(), 0);
    assert_eq!(
        rejection(t.node.broadcast(&parent)).reason,
        "min relay fee not met"
    );
    let child = spend(out(&parent, 0), &w, w.script(), 1_000);
    let outcome = t
        .node
        .submit_package(&[parent.clone(), child.clone()], &SubmitOptions::default())
        .expect("package");
    assert_eq!(outcome.message, "success", "{outcome:?}");
    let parent_result = &outcome.tx_results[0];
    assert_eq!(parent_result.effective_includes.len(), 2);
    assert!(t.node.mempool_entry(&parent.compute_txid()).is_some());
    assert!(t.node.mempool_entry(&child.compute_txid()).is_some());

    let orphan_child = spend(coinbase_output(&t.node, 2), &w, w.script(), 1_000);
    let err = t
        .node
        .submit_package(&[parent, orphan_child], &SubmitOptions::default())
        .expect_err("not a child of the parent");
    assert!(matches!(err, ChainError::Invalid(m) if m.contains("package topology disallowed")));
}

#[test]
fn mempool_chains_stop_at_25_ancestors() {
    let t = TestNode::new();
    let w = Key::new(1, Kind::P2wpkh);
    t.node.generate(101, &w.script()).expect("mine");
    let mut prev = coinbase_output(&t.node, 1);
    for i in 0..25 {
        let tx = spend(prev, &w, w.script(), 1_000);
        t.node
            .broadcast(&tx)
            .unwrap_or_else(|e| panic!("link {i}: {e}"));
        prev = out(&tx, 0);
    }
    let r = rejection(t.node.broadcast(&spend(prev, &w, w.script(), 1_000)));
    assert_eq!(r.reason, "too-long-mempool-chain");
    // The whole chain fits one block, in order.
    t.node.generate(1, &w.script()).expect("mine");
    assert!(t.node.mempool_txids().is_empty());
}

#[test]
fn test_accept_judges_without_changing_the_mempool() {
    let t = TestNode::new();
    let w = Key::new(1, Kind::P2wpkh);
    t.node.generate(101, &w.script()).expect("mine");
    let parent = spend(coinbase_output(&t.node, 1), &w, w.script(), 1_000);
    let child = spend(out(&parent, 0), &w, w.script(), 1_000);
    let results = t
        .node
        .test_mempool_accept(&[parent, child], &SubmitOptions::default())
        .expect("test");
    assert!(results.iter().all(|r| r.rejection.is_none()), "{results:?}");
    assert_eq!(results[0].vsize, Some(110));
    assert!(t.node.mempool_txids().is_empty());
}

#[test]
fn submitted_blocks_get_core_answers() {
    let t = TestNode::new();
    let w = Key::new(1, Kind::P2wpkh);
    let hash = t.node.generate(2, &w.script()).expect("mine")[1];
    let block = t.node.block(&hash).expect("q").expect("b");
    assert_eq!(
        t.node.submit_block(&block).expect("submit"),
        BlockSubmission::Duplicate
    );
    let mut bad = block.clone();
    bad.header.prev_blockhash = bitcoin::BlockHash::from_byte_array([7; 32]);
    grind(&mut bad);
    assert_eq!(
        t.node.submit_block(&bad).expect("submit"),
        BlockSubmission::Rejected("prev-blk-not-found".into())
    );
    let mut mutated = block;
    mutated.header.nonce = mutated.header.nonce.wrapping_add(1);
    mutated.txdata[0].output[0].value += Amount::ONE_SAT;
    let verdict = t.node.submit_block(&mutated).expect("submit");
    assert!(
        matches!(verdict, BlockSubmission::Rejected(ref r) if r == "high-hash" || r == "bad-txnmrklroot"),
        "{verdict:?}"
    );
    assert_eq!(t.node.tip().expect("tip").hash, hash);
}

fn grind(block: &mut bitcoin::Block) {
    let target = block.header.target();
    while block.header.validate_pow(target).is_err() {
        block.header.nonce = block.header.nonce.wrapping_add(1);
    }
}
