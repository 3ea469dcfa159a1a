//! One conformance suite for every `ChainSource`: the embedded node directly, and `BitcoindRpc`
//! talking to the embedded node's bitcoind-compatible RPC (which makes the RPC server and the
//! bitcoind client check each other).

mod common;

use std::time::Duration;

use common::{coinbase_output, out, spend, wait_event, Key, Kind, TestNode};
use moip_chain::{
    BitcoindAuth, BitcoindRpc, ChainError, ChainEvent, ChainSource, FeeMode, RejectKind,
};

const WAIT: Duration = Duration::from_secs(20);

/// Runs every check of the suite against `source`, using `node` to mine.
fn conformance(source: &dyn ChainSource, t: &TestNode) {
    let w = Key::new(1, Kind::P2wpkh);
    let k = Key::new(2, Kind::P2tr);
    let mut events = source.subscribe();
    let mined = t.node.generate(101, &w.script()).expect("mine");
    wait_event(
        &mut events,
        WAIT,
        "block 101",
        |e| matches!(e, ChainEvent::BlockConnected(b) if b.height == 101),
    );

    assert_eq!(source.network(), bitcoin::Network::Regtest);
    let tip = source.tip().expect("tip");
    assert_eq!((tip.height, tip.hash), (101, mined[100]));
    assert_eq!(source.block_hash(50).expect("q"), Some(mined[49]));
    assert_eq!(source.block_hash(102).expect("q"), None);
    let entry = source.header(&mined[9]).expect("q").expect("known");
    assert_eq!((entry.height, entry.in_active_chain), (10, true));
    assert_eq!(entry.header.block_hash(), mined[9]);
    assert_eq!(
        source
            .header(&bitcoin::BlockHash::from_raw_hash(
                bitcoin::hashes::Hash::all_zeros()
            ))
            .expect("q"),
        None
    );
    let headers = source.headers(1, 200).expect("headers");
    assert_eq!(headers.len(), 101);
    assert!(headers
        .iter()
        .zip(&mined)
        .all(|(h, m)| h.block_hash() == *m));
    assert_eq!(
        source
            .block(&mined[5])
            .expect("q")
            .expect("block")
            .block_hash(),
        mined[5]
    );

    // A spend: mempool view, then the block's undo data.
    let tx = spend(coinbase_output(&t.node, 1), &w, k.script(), 1_500);
    let txid = source.broadcast(&tx).expect("broadcast");
    assert_eq!(txid, tx.compute_txid());
    wait_event(
        &mut events,
        WAIT,
        "TxAdded",
        |e| matches!(e, ChainEvent::TxAdded { txid: t } if *t == txid),
    );
    let pool = source.mempool().expect("mempool");
    assert_eq!(pool.len(), 1);
    assert_eq!(
        (pool[0].txid, pool[0].fee.to_sat(), pool[0].vsize),
        (txid, 1_500, tx.vsize() as u64)
    );
    assert_eq!(
        pool[0].prevouts,
        vec![coinbase_output(&t.node, 1).1],
        "prevouts resolved from the UTXO set"
    );
    let child = spend(out(&tx, 0), &k, w.script(), 1_000);
    source.broadcast(&child).expect("child");
    wait_event(
        &mut events,
        WAIT,
        "child TxAdded",
        |e| matches!(e, ChainEvent::TxAdded { txid: t } if *t == child.compute_txid()),
    );
    let pool = source.mempool().expect("mempool");
    let c = pool
        .iter()
        .find(|e| e.txid == child.compute_txid())
        .expect("child listed");
    assert_eq!((c.ancestor_count, c.depends.clone()), (2, vec![txid]));
    assert_eq!(
        c.prevouts,
        vec![tx.output[0].clone()],
        "prevouts resolved from the mempool parent"
    );
    let found = source
        .transaction(&txid, None)
        .expect("q")
        .expect("in mempool");
    assert!(found.location.is_none());

    match source.broadcast(&spend(coinbase_output(&t.node, 2), &w, w.script(), 10)) {
        Err(ChainError::Rejected(r)) => assert_eq!(r.kind, RejectKind::Rejected),
        other => panic!("expected a rejection, got {other:?}"),
    }

    let block = t.node.generate(1, &w.script()).expect("mine")[0];
    wait_event(
        &mut events,
        WAIT,
        "confirmed",
        |e| matches!(e, ChainEvent::TxRemoved { txid: t, reason: moip_chain::RemovalReason::Block } if *t == txid),
    );
    let found = source
        .transaction(&txid, None)
        .expect("q")
        .expect("confirmed");
    let loc = found.location.expect("located");
    assert_eq!((loc.block_hash, loc.height, loc.position), (block, 102, 1));
    let by_block = source
        .transaction(&txid, Some(&block))
        .expect("q")
        .expect("in that block");
    assert_eq!(by_block.tx, tx);
    let undo = source.spent_outputs(&block).expect("q").expect("undo");
    assert_eq!(undo.len(), 2);
    assert_eq!((undo[0][0].height, undo[0][0].coinbase), (1, true));
    assert_eq!(undo[1][0].txout, tx.output[0]);

    // Packages and fees.
    let parent = spend(coinbase_output(&t.node, 3), &w, w.script(), 0);
    let kid = spend(out(&parent, 0), &w, w.script(), 2_000);
    let outcome = source.broadcast_package(&[parent, kid]).expect("package");
    assert_eq!(outcome.message, "success");
    assert!(outcome
        .tx_results
        .iter()
        .all(|r| r.error.is_none() && r.vsize.is_some()));
    let estimate = source
        .estimate_fee(6, FeeMode::Economical)
        .expect("q")
        .expect("estimate");
    assert_eq!(estimate.blocks, 6);
    assert!(estimate.fee_rate >= source.relay_fee().expect("relay fee"));

    // A reorganisation shows as a disconnect.
    t.node.invalidate_block(&block).expect("invalidate");
    wait_event(
        &mut events,
        WAIT,
        "disconnect",
        |e| matches!(e, ChainEvent::BlockDisconnected(b) if b.hash == block),
    );
    assert_eq!(source.tip().expect("tip").height, 101);
    assert_eq!(
        source.header(&block).expect("q").map(|h| h.in_active_chain),
        Some(false)
    );
}

#[test]
fn embedded_node_conforms() {
    let t = TestNode::new();
    let node = t.node.clone();
    conformance(&node, &t);
}

#[test]
fn bitcoind_client_conforms_over_the_embedded_rpc() {
    let t = TestNode::new();
    let (rt, server) = common::start_rpc(&t.node);
    let cookie = server.cookie_path().expect("cookie").to_path_buf();
    let client = BitcoindRpc::connect_with(
        &server.url(),
        BitcoindAuth::Cookie(cookie),
        Duration::from_millis(50),
    )
    .expect("connect");
    conformance(&client, &t);

    // Raw calls reach bitcoind-style methods the trait does not cover.
    let info = client
        .call("getblockchaininfo", serde_json::json!([]))
        .expect("call");
    assert_eq!(info["chain"], "regtest");
    // Lookups of more transactions than one batch may carry (the node takes 1,000 calls per
    // batch) are split: a mempool after a reorganisation can hold thousands.
    let unknown: Vec<bitcoin::Txid> = (0..2_500u32)
        .map(|i| {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            bitcoin::Txid::from_raw_hash(bitcoin::hashes::Hash::from_byte_array(bytes))
        })
        .collect();
    assert!(client
        .mempool_entries(&unknown)
        .expect("looked up in several batches")
        .is_empty());
    // Wrong credentials are a clear error, not a hang.
    let bad = BitcoindRpc::connect(
        &server.url(),
        BitcoindAuth::UserPass("__cookie__".into(), "wrong".into()),
    );
    assert!(matches!(bad, Err(ChainError::Transport(m)) if m.contains("401")));
    rt.block_on(server.shutdown());
}
