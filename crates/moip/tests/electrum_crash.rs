//! The Electrum index survives `kill -9` at any moment of its initial indexing and of a
//! reorganisation: after each restart it resumes, and at the end it answers exactly as an index
//! built in one go. The server reads the chain through `--bitcoind-rpc` here, so the bitcoind
//! client is exercised end to end too.
//!
//! The kill moments are drawn from a seed printed at the start; `MOIP_CRASH_SEED=<n>` replays
//! them.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, OutPoint, TxOut};
use common::{scripthash, wait_until, ElectrumClient, NodeProcess, BURN_ADDRESS};
use moip_testkit::{sign, Key, Kind};
use rand::Rng;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(300);

fn electrum_args(node: &NodeProcess, dir: &std::path::Path) -> Vec<String> {
    let cookie = node.data_dir.join(".cookie");
    [
        "electrum",
        "--bitcoind-rpc",
        &node.url,
        "--bitcoind-cookie",
        &cookie.display().to_string(),
        "--tcp-port",
        "0",
        "--tls-port",
        "0",
        "--ws-port",
        "0",
        "--wss-port",
        "0",
        "--metrics-port",
        "0",
        "--data-dir",
        &dir.display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Starts `moip electrum` over the node; returns the process and its TCP and metrics addresses.
fn start_electrum(
    node: &NodeProcess,
    dir: &std::path::Path,
) -> (
    std::process::Child,
    std::net::SocketAddr,
    std::net::SocketAddr,
) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_moip"))
        .args(electrum_args(node, dir))
        .env("MOIP_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn moip electrum");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (mut tcp, mut metrics) = (None, None);
    while tcp.is_none() || metrics.is_none() {
        let line = lines.next().expect("output").expect("line");
        if let Some(a) = line.strip_prefix("Electrum TCP: ") {
            tcp = Some(a.parse().expect("addr"));
        }
        if let Some(a) = line.strip_prefix("Electrum metrics: ") {
            metrics = Some(a.parse().expect("addr"));
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, tcp.expect("tcp"), metrics.expect("metrics"))
}

/// The height the index on disk reached (read after a kill, with the server gone).
fn height_on_disk(dir: &std::path::Path) -> Option<u64> {
    let path = dir.join("electrum").join("index");
    if !path.exists() {
        return None;
    }
    let index = moip_electrum::index::Index::open(&path).expect("the index opens");
    index.tip().map(|(height, _)| u64::from(height))
}

fn indexed_height(metrics: std::net::SocketAddr) -> Option<u64> {
    let mut s = std::net::TcpStream::connect(metrics).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("electrum_index_height "))
        .and_then(|v| v.trim().parse().ok())
}

/// Every answer a wallet would look at, for all the scripts.
fn snapshot(client: &mut ElectrumClient, scripts: &[String], tip: u64) -> Vec<Value> {
    let mut out = vec![
        client.ok("blockchain.block.headers", json!([0, 2016])),
        client.ok("blockchain.block.header", json!([tip / 2, tip])),
    ];
    for sh in scripts {
        out.push(client.ok("blockchain.scripthash.get_history", json!([sh])));
        out.push(client.ok("blockchain.scripthash.get_balance", json!([sh])));
        out.push(client.ok("blockchain.scripthash.listunspent", json!([sh])));
        out.push(client.ok("blockchain.scripthash.subscribe", json!([sh])));
    }
    out
}

#[test]
fn kill_9_during_indexing_and_reorgs_then_same_answers() {
    let (mut rng, seed) = common::crash_rng("electrum crash test");
    let chain_dir = tempfile::tempdir().expect("tempdir");
    let node = NodeProcess::start(chain_dir.path());
    let keys: Vec<Key> = (1..=40u8)
        .map(|i| Key::new(i, if i % 2 == 0 { Kind::P2tr } else { Kind::P2wpkh }))
        .collect();

    // A chain with many transactions: 40 coinbases fanned out, then rounds of payments.
    let mut coins: Vec<(OutPoint, TxOut, usize)> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let hash = node.call("generatetoaddress", json!([1, key.address().to_string()]))[0].clone();
        let block = node.call("getblock", json!([hash, 2]));
        let txid: bitcoin::Txid = block["tx"][0]["txid"]
            .as_str()
            .expect("txid")
            .parse()
            .expect("txid");
        coins.push((
            OutPoint { txid, vout: 0 },
            TxOut {
                value: Amount::from_btc(50.0).expect("v"),
                script_pubkey: key.script(),
            },
            i,
        ));
    }
    // Enough blocks that the initial sync writes several batches (500 blocks each), so a kill
    // can land between them.
    node.call("generatetoaddress", json!([1_400, BURN_ADDRESS]));
    for round in 0..30 {
        let mut next = Vec::new();
        let mut raw = Vec::new();
        for (n, (op, txout, k)) in coins.iter().enumerate() {
            let outputs = if round == 0 { 10 } else { 1 };
            let each = (txout.value.to_sat() - 2_000) / outputs;
            let targets: Vec<usize> = (0..outputs)
                .map(|j| (n + j as usize + round) % keys.len())
                .collect();
            let outs = targets
                .iter()
                .map(|t| TxOut {
                    value: Amount::from_sat(each),
                    script_pubkey: keys[*t].script(),
                })
                .collect();
            let tx = sign(
                &[(*op, txout.clone(), &keys[*k])],
                outs,
                bitcoin::Sequence::MAX,
            );
            for (vout, t) in targets.iter().enumerate() {
                next.push((
                    OutPoint {
                        txid: tx.compute_txid(),
                        vout: vout as u32,
                    },
                    tx.output[vout].clone(),
                    *t,
                ));
            }
            raw.push(serialize_hex(&tx));
        }
        for tx in &raw {
            node.call("sendrawtransaction", json!([tx]));
        }
        node.call("generatetoaddress", json!([1, BURN_ADDRESS]));
        coins = next;
    }
    let tip = node.height();
    let scripts: Vec<String> = keys.iter().map(|k| scripthash(&k.script())).collect();

    // Kill the indexer at random moments of its initial sync, five times.
    let crash_dir = tempfile::tempdir().expect("tempdir");
    let mut mid_index_kills = 0;
    for round in 0..5 {
        let (mut child, _, _) = start_electrum(&node, crash_dir.path());
        let delay = Duration::from_millis(rng.random_range(20..1_500));
        std::thread::sleep(delay); // the point is an arbitrary moment, not a condition
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        let height = height_on_disk(crash_dir.path());
        eprintln!("indexing round {round}: killed after {delay:?} at index height {height:?}");
        if height.is_some_and(|h| h < tip) {
            mid_index_kills += 1;
        }
    }
    assert!(
        mid_index_kills > 0,
        "seed {seed}: at least one kill landed in the middle of indexing"
    );

    // Then reorganisations under a running index: the node steps back a few blocks and mines a
    // longer branch holding other transactions; the index is killed at a random moment while
    // it follows, and resumes.
    let mut tip = tip;
    for round in 0..3 {
        let (mut child, _, metrics) = start_electrum(&node, crash_dir.path());
        wait_until(WAIT, "the index to reach the tip", || {
            (indexed_height(metrics)? == tip).then_some(())
        });
        let depth = rng.random_range(1..=6u64);
        let fork = node.call("getblockhash", json!([tip + 1 - depth]));
        node.call("invalidateblock", json!([fork]));
        // The new branch pays the first keys, so histories and balances differ from the old one.
        let branch = depth + 1;
        for i in 0..branch {
            let key = &keys[(i as usize + round) % keys.len()];
            node.call("generatetoaddress", json!([1, key.address().to_string()]));
        }
        tip = tip - depth + branch;
        let delay = Duration::from_millis(rng.random_range(0..500));
        std::thread::sleep(delay); // an arbitrary moment of following the reorganisation
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        let height = height_on_disk(crash_dir.path());
        eprintln!(
            "reorg round {round}: {depth} blocks replaced by {branch}, killed after {delay:?} \
             at index height {height:?} (tip {tip})"
        );
    }

    // Resume to the end, and compare with an index built in one go.
    let (mut resumed, tcp, _) = start_electrum(&node, crash_dir.path());
    let fresh_dir = tempfile::tempdir().expect("tempdir");
    let (mut fresh, fresh_tcp, _) = start_electrum(&node, fresh_dir.path());
    let mut a = ElectrumClient::connect(tcp, "1.6", WAIT);
    let mut b = ElectrumClient::connect(fresh_tcp, "1.6", WAIT);
    for client in [&mut a, &mut b] {
        wait_until(WAIT, "the index to reach the tip", || {
            let h = client
                .call("blockchain.headers.subscribe", json!([]))
                .ok()?;
            let synced = client
                .call("blockchain.scripthash.get_balance", json!([scripts[0]]))
                .is_ok();
            (h["height"] == json!(tip) && synced).then_some(())
        });
    }
    assert_eq!(
        snapshot(&mut a, &scripts, tip),
        snapshot(&mut b, &scripts, tip),
        "a crashed-and-resumed index answers like a fresh one"
    );
    let _ = resumed.kill();
    let _ = fresh.kill();
    let _ = resumed.wait();
    let _ = fresh.wait();
    node.stop();
}
