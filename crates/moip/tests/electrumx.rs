//! ElectrumX 2.0 indexes the embedded node through its bitcoind RPC, unchanged: headers,
//! histories, mempool, broadcast and a reorganisation all come out the same on both sides.
//! ElectrumX comes from the venv `make test` creates (or `MOIP_ELECTRUMX`).

mod common;

use std::time::Duration;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, OutPoint, TxOut};
use common::{scripthash, wait_until, ElectrumClient, ElectrumX, NodeProcess};
use moip_testkit::{spend, Key, Kind};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(120);

fn wait_height(client: &mut ElectrumClient, height: u64, tip: &Value) {
    wait_until(WAIT, "ElectrumX to reach the tip", || {
        let h = client.ok("blockchain.headers.subscribe", json!([]));
        let raw = client.call("blockchain.block.header", json!([height])).ok();
        (h["height"] == json!(height)
            && raw
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|r| header_hash(r) == *tip))
        .then_some(())
    });
}

fn header_hash(raw: &str) -> Value {
    let bytes: Vec<u8> = (0..raw.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&raw[i..i + 2], 16).expect("hex"))
        .collect();
    let header: bitcoin::block::Header = bitcoin::consensus::deserialize(&bytes).expect("header");
    json!(header.block_hash().to_string())
}

#[test]
fn electrumx_indexes_the_embedded_node_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeProcess::start(dir.path());
    let a = Key::new(1, Kind::P2wpkh);
    let script_a = a.script();
    let address_a = a.address().to_string();
    let script_b = Key::new(2, Kind::P2wpkh).script();
    let hashes = node.call("generatetoaddress", json!([101, address_a]));

    let ex = ElectrumX::start(&node);
    let mut client = ex.connect();
    wait_height(&mut client, 101, &hashes[100]);

    // Headers agree byte for byte.
    for h in [0u64, 1, 50, 101] {
        let ours = node.call(
            "getblockheader",
            json!([node.call("getblockhash", json!([h])), false]),
        );
        assert_eq!(
            client.ok("blockchain.block.header", json!([h])),
            ours,
            "header {h}"
        );
    }
    // The coinbases paying A are A's history.
    let history = client.ok(
        "blockchain.scripthash.get_history",
        json!([scripthash(&script_a)]),
    );
    let history = history.as_array().expect("array");
    assert_eq!(history.len(), 101);
    let block1 = node.call("getblock", json!([hashes[0], 1]));
    assert_eq!(history[0], json!({"tx_hash": block1["tx"][0], "height": 1}));
    let balance = client.ok(
        "blockchain.scripthash.get_balance",
        json!([scripthash(&script_a)]),
    );
    assert_eq!(balance["confirmed"], json!(101u64 * 50 * 100_000_000));

    // A transaction broadcast through ElectrumX reaches the node's mempool and ElectrumX's.
    let coinbase_txid: bitcoin::Txid = block1["tx"][0]
        .as_str()
        .expect("txid")
        .parse()
        .expect("txid");
    let coinbase = TxOut {
        value: Amount::from_btc(50.0).expect("amount"),
        script_pubkey: script_a.clone(),
    };
    let tx = spend(
        (
            OutPoint {
                txid: coinbase_txid,
                vout: 0,
            },
            coinbase,
        ),
        &a,
        script_b.clone(),
        1_000,
    );
    let txid = tx.compute_txid().to_string();
    assert_eq!(
        client.ok(
            "blockchain.transaction.broadcast",
            json!([serialize_hex(&tx)])
        ),
        json!(txid)
    );
    assert_eq!(node.call("getrawmempool", json!([])), json!([txid]));
    wait_until(WAIT, "ElectrumX mempool", || {
        let m = client.ok(
            "blockchain.scripthash.get_mempool",
            json!([scripthash(&script_b)]),
        );
        (m.as_array().map(Vec::len) == Some(1)).then_some(m)
    });
    let mempool = client.ok(
        "blockchain.scripthash.get_mempool",
        json!([scripthash(&script_b)]),
    );
    assert_eq!(mempool[0]["fee"], json!(1000));
    assert_eq!(
        client.ok("blockchain.transaction.get", json!([txid])),
        json!(serialize_hex(&tx))
    );

    // Confirmed: history and Merkle proof match the node's block.
    let mined = node.call("generatetoaddress", json!([1, address_a]));
    wait_height(&mut client, 102, &mined[0]);
    let history = client.ok(
        "blockchain.scripthash.get_history",
        json!([scripthash(&script_b)]),
    );
    assert_eq!(history, json!([{"tx_hash": txid, "height": 102}]));
    let proof = client.ok("blockchain.transaction.get_merkle", json!([txid, 102]));
    assert_eq!(
        (proof["block_height"].clone(), proof["pos"].clone()),
        (json!(102), json!(1))
    );
    assert_eq!(
        client.ok("blockchain.transaction.id_from_pos", json!([102, 1])),
        json!(txid)
    );

    // A reorganisation through invalidateblock: ElectrumX follows the node onto the new branch.
    node.call("invalidateblock", json!([mined[0]]));
    let branch = node.call("generatetoaddress", json!([2, address_a]));
    wait_height(&mut client, 103, &branch[1]);
    assert_eq!(
        header_hash(
            client
                .ok("blockchain.block.header", json!([102]))
                .as_str()
                .expect("hex")
        ),
        branch[0]
    );
    let confirmed = node.call("getrawtransaction", json!([txid, true]));
    let height = node.call("getblockheader", json!([confirmed["blockhash"]]))["height"].clone();
    let history = client.ok(
        "blockchain.scripthash.get_history",
        json!([scripthash(&script_b)]),
    );
    assert_eq!(
        history,
        json!([{"tx_hash": txid, "height": height}]),
        "the spend is re-confirmed on the new branch"
    );

    // Fee RPCs pass through.
    assert!(client
        .ok("blockchain.estimatefee", json!([2]))
        .as_f64()
        .is_some());
}
