//! `moip node` survives `kill -9` at any point of mining: after a restart the chain is valid,
//! the index agrees with it, and mining goes on. A clean `stop` loses nothing.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{wait_until, NodeProcess, BURN_ADDRESS};
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

#[test]
fn kill_9_during_mining_keeps_a_valid_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeProcess::start(dir.path());
    node.call("generatetoaddress", json!([101, BURN_ADDRESS]));
    node.stop();

    let node = NodeProcess::start(dir.path());
    assert_eq!(node.height(), 101, "a clean stop keeps every block");
    let mut node = node;
    for round in 0..4 {
        let start = node.height();
        let mining = Arc::new(AtomicBool::new(true));
        let miner = {
            let (url, user, password) =
                (node.url.clone(), node.user.clone(), node.password.clone());
            let mining = Arc::clone(&mining);
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let auth = format!("{user}:{password}");
                let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, auth);
                while mining.load(Ordering::SeqCst) {
                    let body = json!({"method": "generatetoaddress", "params": [3, BURN_ADDRESS], "id": 1}).to_string();
                    // Fails once the node is killed; that is the point.
                    if agent
                        .post(&url)
                        .header("Authorization", &format!("Basic {auth}"))
                        .send(body)
                        .is_err()
                    {
                        break;
                    }
                }
            })
        };
        // Let it mine for a while. The last round mines long enough to cross several background
        // checkpoints (one every 2 s while the tip moves): what was mined in its first second must
        // survive the kill.
        let target = start + 10 + 10 * round;
        wait_until(Duration::from_secs(60), "blocks to be mined", || {
            (node.height() >= target).then_some(())
        });
        let mut durable = 101;
        if round == 3 {
            let began = std::time::Instant::now();
            wait_until(Duration::from_secs(60), "a second of mining", || {
                (began.elapsed() >= Duration::from_secs(1)).then_some(())
            });
            durable = node.height();
            wait_until(
                Duration::from_secs(60),
                "several checkpoint intervals",
                || (began.elapsed() >= Duration::from_secs(9)).then_some(()),
            );
        }
        node.kill();
        mining.store(false, Ordering::SeqCst);
        miner.join().expect("miner thread");

        node = NodeProcess::start(dir.path());
        let height = assert_valid_chain(&node);
        eprintln!("round {round}: killed after height {target}, restarted at height {height}");
        assert!(
            height >= durable,
            "round {round}: blocks older than a checkpoint survive (height {height} < {durable})"
        );
        let mined = node.call("generatetoaddress", json!([1, BURN_ADDRESS]));
        assert_eq!(
            node.height(),
            height + 1,
            "round {round}: mining continues after the crash"
        );
        assert_eq!(node.call("getbestblockhash", json!([])), mined[0]);
    }
    node.stop();
}
