//! Every protocol method through real clients: the `electrum-client` crate (which never sends
//! `server.version`, so it is served as 1.4) and a raw line client for 1.6 and bad input.

mod common;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::Hash;
use common::{out, scripthash, spend, wait_until, Env, Key, Kind, Raw, WAIT};
use electrum_client::{Client, ElectrumApi};
use moip_chain::ChainSource;
use serde_json::{json, Value};

fn client(env: &Env) -> Client {
    Client::new(&format!("tcp://{}", env.tcp())).expect("electrum-client connects")
}

#[test]
fn electrum_client_calls_every_method_it_has() {
    let env = Env::new();
    let a = Key::new(1, Kind::P2wpkh);
    let b = Key::new(2, Kind::P2tr);
    let hashes = env.mine(101, &a);
    let c = client(&env);

    c.ping().expect("ping");
    let features = c.server_features().expect("features");
    let genesis = env
        .node
        .block_hash(0)
        .expect("q")
        .expect("genesis")
        .to_string();
    assert_eq!(
        bitcoin::hex::DisplayHex::to_lower_hex_string(&features.genesis_hash[..]),
        genesis
    );
    assert_eq!(
        (
            features.protocol_min.as_str(),
            features.protocol_max.as_str()
        ),
        ("1.4", "1.6")
    );
    assert_eq!(features.hash_function.as_deref(), Some("sha256"));

    let tip = c.block_headers_subscribe().expect("headers.subscribe");
    assert_eq!((tip.height, tip.header.block_hash()), (101, hashes[100]));
    assert_eq!(c.block_header(50).expect("header").block_hash(), hashes[49]);
    let headers = c.block_headers(90, 20).expect("headers");
    assert_eq!(
        (headers.count, headers.headers.len(), headers.max),
        (12, 12, 2016),
        "up to the tip"
    );
    assert_eq!(headers.headers[0].block_hash(), hashes[89]);
    assert!(c.estimate_fee(2).expect("estimatefee") > 0.0);
    assert_eq!(c.relay_fee().expect("relayfee"), 0.00001);

    // A's coinbases.
    let history = c.script_get_history(&a.script()).expect("history");
    assert_eq!(history.len(), 101);
    assert_eq!(history[0].height, 1);
    let balance = c.script_get_balance(&a.script()).expect("balance");
    assert_eq!(balance.confirmed, 101 * 5_000_000_000);
    let unspent = c.script_list_unspent(&a.script()).expect("listunspent");
    assert_eq!(unspent.len(), 101);
    assert_eq!((unspent[0].height, unspent[0].value), (1, 5_000_000_000));

    // Subscribe, pay B from A through the server, see both statuses change.
    let status_a = c
        .script_subscribe(&a.script())
        .expect("subscribe")
        .expect("A has history");
    assert!(
        c.script_subscribe(&b.script())
            .expect("subscribe")
            .is_none(),
        "no history: null status"
    );
    let tx = spend(env.coinbase(1), &a, b.script(), 1_000);
    let txid = c.transaction_broadcast(&tx).expect("broadcast");
    assert_eq!(txid, tx.compute_txid());
    assert_eq!(env.node.mempool_txids(), vec![txid]);
    // electrum-client reads notifications only while it waits for a reply: ping to pump.
    let notified = wait_until(WAIT, "B's status notification", || {
        c.ping().ok()?;
        c.script_pop(&b.script()).ok().flatten()
    });
    let b_history = c.script_get_history(&b.script()).expect("history");
    assert_eq!(b_history.len(), 1);
    assert_eq!((b_history[0].height, b_history[0].fee), (0, Some(1_000)));
    assert_eq!(
        notified,
        status_of(&b_history),
        "the notified status matches the history"
    );
    assert_eq!(
        c.script_get_balance(&b.script())
            .expect("balance")
            .unconfirmed,
        5_000_000_000 - 1_000
    );
    assert_eq!(
        c.script_get_balance(&a.script())
            .expect("balance")
            .unconfirmed,
        -5_000_000_000
    );
    assert_eq!(
        c.script_list_unspent(&a.script())
            .expect("listunspent")
            .len(),
        100,
        "the mempool spend hides the coin"
    );
    let new_a = wait_until(WAIT, "A's status notification", || {
        c.ping().ok()?;
        c.script_pop(&a.script()).ok().flatten()
    });
    assert_ne!(new_a, status_a);
    assert_eq!(c.transaction_get(&txid).expect("tx.get"), tx);

    // Confirm it: headers notification, history with height, Merkle proof, id_from_pos.
    let mined = env.mine(1, &a);
    let header = wait_until(WAIT, "header notification", || {
        c.ping().ok()?;
        c.block_headers_pop().ok().flatten()
    });
    assert_eq!((header.height, header.header.block_hash()), (102, mined[0]));
    let b_history = c.script_get_history(&b.script()).expect("history");
    assert_eq!((b_history[0].height, b_history[0].fee), (102, None));
    let merkle = c.transaction_get_merkle(&txid, 102).expect("merkle");
    assert_eq!((merkle.block_height, merkle.pos), (102, 1));
    let block = env.node.block(&mined[0]).expect("q").expect("block");
    // electrum-client keeps the hashes as sent (display order); the tree works in internal order.
    let branch: Vec<[u8; 32]> = merkle
        .merkle
        .iter()
        .map(|h| {
            let mut b = *h;
            b.reverse();
            b
        })
        .collect();
    let root = moip_electrum::merkle::root_from_branch(txid.to_byte_array(), &branch, 1);
    assert_eq!(
        root,
        block.header.merkle_root.to_byte_array(),
        "the branch proves the tx in the block"
    );
    assert_eq!(c.txid_from_pos(102, 1).expect("id_from_pos"), txid);
    let with_merkle = c
        .txid_from_pos_with_merkle(102, 1)
        .expect("id_from_pos merkle");
    assert_eq!(with_merkle.merkle, merkle.merkle);

    // Batches, as wallets send them.
    let batched = c
        .batch_script_get_history([a.script().as_script(), b.script().as_script()])
        .expect("batch");
    assert_eq!(
        (batched[0].len(), batched[1].len()),
        (103, 1),
        "101 coinbases, the spend and block 102's coinbase"
    );
    assert!(
        c.script_unsubscribe(&b.script()).is_err()
            || !c.script_unsubscribe(&b.script()).unwrap_or(true),
        "unsubscribe is 1.4.2+; electrum-client talks 1.4"
    );
}

fn status_of(history: &[electrum_client::GetHistoryRes]) -> electrum_client::ScriptStatus {
    let text: String = history
        .iter()
        .map(|h| format!("{}:{}:", h.tx_hash, h.height))
        .collect();
    electrum_client::ScriptStatus::from(
        bitcoin::hashes::sha256::Hash::hash(text.as_bytes()).to_byte_array(),
    )
}

#[test]
fn protocol_1_6_over_a_raw_client() {
    let env = Env::new();
    let a = Key::new(1, Kind::P2wpkh);
    let b = Key::new(2, Kind::P2wpkh);
    env.mine(110, &a);
    let mut c = Raw::connect(env.tcp());
    let version = c.ok("server.version", json!(["moip-test", ["1.4", "1.6"]]));
    assert_eq!(version[1], json!("1.6"));
    assert!(version[0]
        .as_str()
        .expect("name")
        .starts_with("moip-electrum"));
    assert_eq!(
        c.err("server.version", json!(["again", "1.6"])),
        1,
        "only one server.version"
    );

    // 1.6 shapes: headers list, no relayfee, mempool.get_info.
    let headers = c.ok("blockchain.block.headers", json!([0, 3]));
    assert_eq!(headers["headers"].as_array().expect("list").len(), 3);
    assert!(headers.get("hex").is_none());
    assert_eq!(c.err("blockchain.relayfee", json!([])), -32601);
    let info = c.ok("mempool.get_info", json!([]));
    assert_eq!(
        info,
        json!({"mempoolminfee": 0.00001, "minrelaytxfee": 0.00001, "incrementalrelayfee": 0.00001})
    );
    assert!(
        c.ok("blockchain.estimatefee", json!([3, "conservative"]))
            .as_f64()
            .expect("rate")
            > 0.0
    );
    assert_eq!(c.ok("server.ping", json!([])), Value::Null);
    assert!(c
        .ok("server.banner", json!([]))
        .as_str()
        .expect("banner")
        .contains("moip"));
    assert_eq!(c.ok("server.donation_address", json!([])), json!(""));
    assert_eq!(c.ok("server.peers.subscribe", json!([])), json!([]));
    assert_eq!(
        c.ok("server.add_peer", json!([{"hosts": {}}])),
        json!(false)
    );

    // Checkpoint proofs: header(s) with cp_height verify against the returned root.
    let proof = c.ok("blockchain.block.header", json!([5, 100]));
    let root = hash(&proof["root"]);
    let branch: Vec<[u8; 32]> = proof["branch"]
        .as_array()
        .expect("branch")
        .iter()
        .map(hash)
        .collect();
    let leaf = env
        .node
        .block_hash(5)
        .expect("q")
        .expect("h")
        .to_byte_array();
    assert_eq!(
        moip_electrum::merkle::root_from_branch(leaf, &branch, 5),
        root
    );
    let ranged = c.ok("blockchain.block.headers", json!([10, 5, 100]));
    assert_eq!(ranged["root"], proof["root"], "same checkpoint, same root");
    assert_eq!(
        c.err("blockchain.block.header", json!([5, 1000])),
        1,
        "cp_height above the tip"
    );
    let many = c.ok("blockchain.block.headers", json!([0, 5000]));
    assert_eq!(
        (many["count"].clone(), many["max"].clone()),
        (json!(111), json!(2016))
    );

    // A mempool chain: the child has height -1, ordered after height-0 transactions.
    let sh_b = scripthash(&b.script());
    let parent = spend(env.coinbase(1), &a, b.script(), 1_000);
    let child = spend(out(&parent, 0), &b, b.script(), 1_000);
    let other = spend(env.coinbase(2), &a, b.script(), 2_000);
    assert_eq!(
        c.ok("blockchain.scripthash.subscribe", json!([sh_b])),
        Value::Null
    );
    for tx in [&parent, &child, &other] {
        c.ok(
            "blockchain.transaction.broadcast",
            json!([serialize_hex(tx)]),
        );
    }
    wait_until(WAIT, "mempool view", || {
        let m = c.ok("blockchain.scripthash.get_mempool", json!([sh_b]));
        (m.as_array().map(Vec::len) == Some(3)).then_some(())
    });
    let mempool = c.ok("blockchain.scripthash.get_mempool", json!([sh_b]));
    let mut zero: Vec<String> = [&parent, &other]
        .iter()
        .map(|t| t.compute_txid().to_string())
        .collect();
    zero.sort();
    let expected = json!([
        {"tx_hash": zero[0], "height": 0, "fee": if zero[0] == parent.compute_txid().to_string() { 1000 } else { 2000 }},
        {"tx_hash": zero[1], "height": 0, "fee": if zero[1] == parent.compute_txid().to_string() { 1000 } else { 2000 }},
        {"tx_hash": child.compute_txid().to_string(), "height": -1, "fee": 1000},
    ]);
    assert_eq!(mempool, expected, "canonical 1.6 order");
    let history = c.ok("blockchain.scripthash.get_history", json!([sh_b]));
    assert_eq!(history, expected);
    let status = c.ok("blockchain.scripthash.subscribe", json!([sh_b]));
    let text: String = expected
        .as_array()
        .expect("list")
        .iter()
        .map(|e| format!("{}:{}:", e["tx_hash"].as_str().expect("s"), e["height"]))
        .collect();
    assert_eq!(
        status,
        json!(bitcoin::hashes::sha256::Hash::hash(text.as_bytes()).to_string())
    );
    assert_eq!(
        c.ok("blockchain.scripthash.unsubscribe", json!([sh_b])),
        json!(true)
    );
    assert_eq!(
        c.ok("blockchain.scripthash.unsubscribe", json!([sh_b])),
        json!(false)
    );
    let hist = c.ok("mempool.get_fee_histogram", json!([]));
    assert!(hist.is_array());

    // Paged history (Fulcrum's extension): heights [from, to), to=-1 for the tip and mempool.
    let sh_a = scripthash(&a.script());
    let page = c.ok("blockchain.scripthash.get_history", json!([sh_a, 10, 20]));
    assert_eq!(page.as_array().expect("page").len(), 10);
    assert_eq!(page[0]["height"], json!(10));
    let rest = c.ok("blockchain.scripthash.get_history", json!([sh_a, 100, -1]));
    assert_eq!(
        rest.as_array().expect("page").len(),
        11 + 2,
        "heights 100..=110 plus A's two mempool spends"
    );

    // Package broadcast (1.6).
    let p2 = spend(env.coinbase(3), &a, a.script(), 0);
    let c2 = spend(out(&p2, 0), &a, a.script(), 3_000);
    let pkg = c.ok(
        "blockchain.transaction.broadcast_package",
        json!([[serialize_hex(&p2), serialize_hex(&c2)]]),
    );
    assert_eq!(pkg, json!({"success": true}));
    let verbose = c.ok(
        "blockchain.transaction.get",
        json!([c2.compute_txid().to_string(), true]),
    );
    assert_eq!(verbose["txid"], json!(c2.compute_txid().to_string()));
    assert_eq!(verbose["hex"], json!(serialize_hex(&c2)));
}

fn hash(v: &Value) -> [u8; 32] {
    let s = v.as_str().expect("hex hash");
    let mut b = [0u8; 32];
    for i in 0..32 {
        b[31 - i] = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
    }
    b
}

#[test]
fn bad_input_gets_errors_and_never_kills_the_server() {
    let env = Env::new();
    env.mine(1, &Key::new(1, Kind::P2wpkh));
    let mut c = Raw::connect(env.tcp());

    // Not JSON, not an object, unknown method, wrong params: errors, connection kept.
    c.send_line("{nope");
    assert_eq!(c.read().expect("reply")["error"]["code"], json!(-32700));
    c.send_line("42");
    assert_eq!(c.read().expect("reply")["error"]["code"], json!(-32600));
    assert_eq!(c.err("no.such.method", json!([])), -32601);
    assert_eq!(c.err("blockchain.block.header", json!([])), -32602);
    assert_eq!(c.err("blockchain.block.header", json!(["x"])), 1);
    assert_eq!(
        c.err("blockchain.block.header", json!([999])),
        1,
        "height out of range"
    );
    assert_eq!(
        c.err(
            "blockchain.scripthash.get_history",
            json!(["not-a-scripthash"])
        ),
        1
    );
    assert_eq!(c.err("blockchain.transaction.get", json!(["ab"])), 1);
    assert_eq!(c.err("blockchain.transaction.broadcast", json!(["00"])), 1);
    assert_eq!(
        c.err(
            "blockchain.transaction.get_merkle",
            json!(["00".repeat(32), 1])
        ),
        1
    );
    let unknown = "11".repeat(32);
    assert_eq!(
        c.err("blockchain.transaction.get", json!([unknown])),
        2,
        "the node does not know it"
    );
    // A rejected transaction comes back as ElectrumX words it.
    let bad = spend(
        env.coinbase(1),
        &Key::new(1, Kind::P2wpkh),
        Key::new(1, Kind::P2wpkh).script(),
        1_000,
    );
    let reply = c.request(
        "blockchain.transaction.broadcast",
        json!([serialize_hex(&bad)]),
    );
    assert!(
        reply["error"]["message"]
            .as_str()
            .expect("msg")
            .starts_with("the transaction was rejected by network rules"),
        "{reply}"
    );

    // Batches: mixed good and bad; an oversized batch is refused as a whole.
    c.send_line(r#"[{"jsonrpc":"2.0","id":1,"method":"server.ping"},{"jsonrpc":"2.0","id":2,"method":"nope"}]"#);
    let batch = c.read().expect("batch reply");
    assert_eq!(
        (
            batch[0]["result"].clone(),
            batch[1]["error"]["code"].clone()
        ),
        (Value::Null, json!(-32601))
    );
    let big: Vec<Value> = (0..2_001)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "server.ping"}))
        .collect();
    c.send_line(&Value::Array(big).to_string());
    assert_eq!(c.read().expect("reply")["error"]["code"], json!(-32600));
    assert_eq!(
        c.ok("server.ping", json!([])),
        Value::Null,
        "still connected"
    );

    // A line over the limit closes the connection; the server serves others.
    let mut flood = Raw::connect(env.tcp());
    let sent = flood.try_send_line(&format!(
        "{{\"method\":\"server.ping\",\"params\":[\"{}\"]}}",
        "a".repeat(1_100_000)
    ));
    // The server may hang up mid-line (a broken pipe here) or answer with an error first.
    if sent.is_ok() {
        let reply = flood.read();
        assert!(reply.is_none() || reply.expect("reply")["error"]["code"] == json!(-32600));
    }
    let mut fresh = Raw::connect(env.tcp());
    assert_eq!(fresh.ok("server.ping", json!([])), Value::Null);
    // A failed negotiation closes the session.
    let mut old = Raw::connect(env.tcp());
    assert_eq!(old.err("server.version", json!(["old", "1.2"])), 1);
    assert!(old.read().is_none(), "closed after a failed negotiation");
}
