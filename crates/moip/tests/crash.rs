//! `moip node` keeps every block it has acknowledged through `kill -9` at any moment. Killed
//! right after `generatetoaddress` answered, or at a random moment while it mines, the node
//! restarts with every acknowledged block on its active chain at the height it was given, the
//! transaction mined in them indexed in its block, the chain and the index valid, and mining
//! goes on. A clean `stop` loses nothing.
//!
//! The kill moments are drawn from a seed printed at the start: `MOIP_CRASH_SEED=<n>` replays a
//! run, `MOIP_CRASH_ROUNDS=<n>` runs more rounds.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::{Amount, OutPoint, TxOut, Txid};
use common::{wait_until, NodeProcess, BURN_ADDRESS};
use moip_testkit::{spend, Key, Kind};
use rand::Rng;
use serde_json::json;

/// Walks the whole chain: every block links to its parent and every coinbase is found by the
/// transaction index in the block that holds it.
fn assert_valid_chain(node: &NodeProcess) -> u64 {
    let height = node.height();
    let mut prev: Option<String> = None;
    for h in 0..=height {
        let hash = node.call("getblockhash", json!([h]));
        let block = node.call("getblock", json!([hash, 1]));
        assert_eq!(block["height"], json!(h));
        if let Some(p) = &prev {
            assert_eq!(
                block["previousblockhash"].as_str(),
                Some(p.as_str()),
                "block {h} links to its parent"
            );
        }
        if h > 0 {
            let coinbase = &block["tx"][0];
            let tx = node.call("getrawtransaction", json!([coinbase, true]));
            assert_eq!(
                tx["blockhash"], hash,
                "txindex agrees with the chain at {h}"
            );
        }
        prev = hash.as_str().map(str::to_owned);
    }
    let info = node.call("getblockchaininfo", json!([]));
    assert_eq!(info["blocks"], json!(height));
    height
}

/// How a round ends.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// The miner kills the node the moment its `acks`-th `generatetoaddress` is answered.
    RightAfterAck { acks: usize },
    /// The test kills the node `after` the first answer, while the miner goes on.
    AtRandom { after: Duration },
}

#[test]
fn kill_9_never_loses_an_acknowledged_block() {
    let (mut rng, seed) = common::crash_rng("crash test");
    let rounds: usize = std::env::var("MOIP_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);

    let key = Key::new(7, Kind::P2wpkh);
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeProcess::start(dir.path());
    // One mature coinbase per round, so each round can put a transaction in a block.
    let coinbases = node.call(
        "generatetoaddress",
        json!([rounds, key.address().to_string()]),
    );
    node.call("generatetoaddress", json!([100, BURN_ADDRESS]));
    node.stop();

    let mut node = NodeProcess::start(dir.path());
    assert_eq!(
        node.height(),
        100 + rounds as u64,
        "a clean stop keeps every block"
    );
    // Every block acknowledged so far, with the height it was acknowledged at.
    let mut acknowledged: Vec<(u64, String)> = Vec::new();
    for round in 0..rounds {
        let kill = if round % 2 == 0 {
            Kill::RightAfterAck {
                acks: rng.random_range(1..=5),
            }
        } else {
            Kill::AtRandom {
                after: Duration::from_millis(rng.random_range(0..5_000)),
            }
        };

        // A transaction for the next block: the round's coinbase, spent.
        let coinbase_block = node.call("getblock", json!([coinbases[round], 1]));
        let coinbase_txid: Txid = coinbase_block["tx"][0]
            .as_str()
            .expect("coinbase txid")
            .parse()
            .expect("txid");
        let input = (
            OutPoint::new(coinbase_txid, 0),
            TxOut {
                value: Amount::from_int_btc(50),
                script_pubkey: key.script(),
            },
        );
        let burn = BURN_ADDRESS
            .parse::<bitcoin::Address<_>>()
            .expect("address")
            .assume_checked()
            .script_pubkey();
        let tx = spend(input, &key, burn, 1_000);
        let txid = node.call(
            "sendrawtransaction",
            json!([bitcoin::consensus::encode::serialize_hex(&tx)]),
        );
        assert_eq!(txid, json!(tx.compute_txid().to_string()));

        let start = node.height();
        let answered: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
        let miner = {
            let (url, user, password) =
                (node.url.clone(), node.user.clone(), node.password.clone());
            let pid = node.child.id();
            let answered = Arc::clone(&answered);
            std::thread::spawn(move || {
                // A node that stops answering ends the round instead of hanging the test.
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .into();
                let auth = format!("{user}:{password}");
                let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, auth);
                let mut next_height = start + 1;
                let mut acks = 0;
                loop {
                    let body = json!({"method": "generatetoaddress", "params": [3, BURN_ADDRESS], "id": 1}).to_string();
                    // Fails once the node is killed; that ends the round. When the miner is the
                    // one to kill, a failure before then means the node died or hung.
                    let text = agent
                        .post(&url)
                        .header("Authorization", &format!("Basic {auth}"))
                        .send(body)
                        .and_then(|mut resp| resp.body_mut().read_to_string());
                    let text = match (text, kill) {
                        (Ok(text), _) => text,
                        (Err(_), Kill::AtRandom { .. }) => return,
                        (Err(e), Kill::RightAfterAck { .. }) => {
                            panic!("the node failed before the kill: {e}")
                        }
                    };
                    let reply: serde_json::Value =
                        serde_json::from_str(&text).expect("a JSON-RPC reply");
                    let hashes = reply["result"].as_array().expect("block hashes").clone();
                    {
                        let mut answered = answered.lock().expect("lock");
                        for hash in hashes {
                            answered.push((next_height, hash.as_str().expect("hash").to_owned()));
                            next_height += 1;
                        }
                    }
                    acks += 1;
                    if let Kill::RightAfterAck { acks: wanted } = kill {
                        if acks == wanted {
                            let status = Command::new("kill")
                                .args(["-KILL", &pid.to_string()])
                                .status()
                                .expect("run kill");
                            assert!(status.success(), "kill -KILL {pid}");
                            return;
                        }
                    }
                }
            })
        };
        wait_until(Duration::from_secs(60), "a first answer", || {
            (!answered.lock().expect("lock").is_empty()).then_some(())
        });
        if let Kill::AtRandom { after } = kill {
            // The kill moment itself is what is drawn at random: this waits on purpose.
            std::thread::sleep(after);
        }
        if matches!(kill, Kill::RightAfterAck { .. }) {
            miner.join().expect("miner thread");
            node.kill();
        } else {
            node.kill();
            miner.join().expect("miner thread");
        }
        let answered = std::mem::take(&mut *answered.lock().expect("lock"));
        let round_hashes: Vec<String> = answered.iter().map(|(_, h)| h.clone()).collect();
        acknowledged.extend(answered);

        node = NodeProcess::start(dir.path());
        let height = assert_valid_chain(&node);
        let last = acknowledged.last().map_or(0, |(h, _)| *h);
        eprintln!(
            "round {round}: {kill:?}, acknowledged up to height {last}, restarted at height {height}"
        );
        for (h, hash) in &acknowledged {
            assert_eq!(
                node.try_call("getblockhash", json!([h])).ok(),
                Some(json!(hash)),
                "round {round} ({kill:?}, seed {seed}): the block acknowledged at height {h} \
                 is on the chain after the restart (restarted at height {height})"
            );
        }
        let mined = node.call("getrawtransaction", json!([txid, true]));
        assert!(
            round_hashes.iter().any(|h| mined["blockhash"] == json!(h)),
            "round {round} (seed {seed}): the transaction {txid} is in an acknowledged block \
             after the restart: {mined}"
        );

        let next = node.call("generatetoaddress", json!([1, BURN_ADDRESS]));
        assert_eq!(
            node.height(),
            height + 1,
            "round {round}: mining continues after the crash"
        );
        assert_eq!(node.call("getbestblockhash", json!([])), next[0]);
        acknowledged.push((height + 1, next[0].as_str().expect("hash").to_owned()));
    }
    node.stop();
}
