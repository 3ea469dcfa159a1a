//! Electrum server benchmarks, moip against ElectrumX 2.0 on the same chain in the same run
//! (`cargo bench -p moip-electrum --bench electrum`; `make bench-electrum`).
//!
//! Generates (and caches under `target/bench-data/`) a regtest chain of about two million
//! transactions with realistic address reuse: payments go to a Zipf-like popular set of
//! addresses, change to fresh ones, and 100 "busy" addresses receive exactly 100 payments
//! each. Then, for both servers: initial index time and bytes per transaction, `get_history`
//! latency for a 100-transaction address, requests per second for `scripthash.subscribe` and
//! `get_history`, the load of a 1,000-address wallet as Sparrow does it (batched subscribe then
//! get_history), tip-to-notification latency with 10,000 subscriptions, and honest clients'
//! p99 latency with and without a flooding client. Prints a Markdown table with ratios.
//!
//! Environment: `MOIP_BENCH_TXS` (default 2,000,000), `MOIP_ELECTRUMX` (default
//! `.venv/bin/electrumx_server`), `MOIP_BENCH_DIR` (default `target/bench-data`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, TxOut};
use moip_chain::rpc::{RpcConfig, RpcServer};
use moip_chain::{BitcoindAuth, BitcoindRpc, ChainSource, EmbeddedNode, NodeConfig};
use moip_electrum::{ElectrumServer, ServerConfig};
use moip_testkit::{sign, Key, Kind};
use serde_json::{json, Value};

const TXS_PER_BLOCK: usize = 1_000;
const BUSY_ADDRESSES: usize = 100;
const BUSY_TXS: usize = 100;
const POPULAR: u64 = 20_000;

fn key(i: u64) -> Key {
    let mut bytes = sha256::Hash::hash(&i.to_le_bytes()).to_byte_array();
    bytes[0] &= 0x7f; // below the curve order
    Key::from_bytes(bytes, if i % 4 == 0 { Kind::P2tr } else { Kind::P2wpkh })
}

fn scripthash(script: &ScriptBuf) -> String {
    moip_electrum::ScriptHash::of(script).to_string()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Zipf-like: small indexes far more likely.
    fn popular(&mut self) -> u64 {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((POPULAR as f64).powf(u) as u64).saturating_sub(1)
    }
}

/// Builds (or reuses) the benchmark chain; returns the node and the busy addresses' keys.
fn chain(dir: &Path, target_txs: usize) -> (EmbeddedNode, Vec<u64>) {
    let busy: Vec<u64> = (0..BUSY_ADDRESSES as u64)
        .map(|i| 1_000_000_000 + i)
        .collect();
    let marker = dir.join("COMPLETE");
    let mut config = NodeConfig::new(dir.join("chain"));
    config.background_checkpoints = false;
    config.persist_mempool = false;
    if marker.exists() {
        eprintln!("reusing the chain in {}", dir.display());
        return (EmbeddedNode::open(config).expect("node"), busy);
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("dir");
    let node = EmbeddedNode::open(config).expect("node");
    let started = Instant::now();
    let mut rng = Rng(0xb1a5_e5eed);
    let miner = key(u64::MAX);
    // 150 coinbases of 50 BTC, matured.
    let funding: Vec<u64> = (0..150).collect();
    let mut coins: Vec<(OutPoint, TxOut, u64)> = Vec::new();
    for k in &funding {
        let hash = node.generate(1, &key(*k).script()).expect("mine")[0];
        let cb = node.block(&hash).expect("q").expect("b").txdata[0].clone();
        coins.push((
            OutPoint {
                txid: cb.compute_txid(),
                vout: 0,
            },
            cb.output[0].clone(),
            *k,
        ));
    }
    node.generate(100, &miner.script()).expect("mine");
    let mut next_fresh: u64 = 100_000_000;
    let blocks = target_txs.div_ceil(TXS_PER_BLOCK);
    // Which (block, slot) pays each busy address: spread evenly.
    let total_slots = blocks * TXS_PER_BLOCK;
    let mut busy_slots: BTreeMap<usize, u64> = BTreeMap::new();
    for (i, b) in busy.iter().enumerate() {
        for j in 0..BUSY_TXS {
            // From block 1 on (block 0 only fans out the coinbases).
            let stride = (total_slots - TXS_PER_BLOCK) / (BUSY_ADDRESSES * BUSY_TXS);
            let slot = TXS_PER_BLOCK + (i * BUSY_TXS + j) * stride + 7 % stride.max(1);
            busy_slots.insert(slot.min(total_slots - 1), *b);
        }
    }
    let mut scripts: std::collections::HashMap<u64, ScriptBuf> = std::collections::HashMap::new();
    let mut script_of = |k: u64| scripts.entry(k).or_insert_with(|| key(k).script()).clone();
    let mut made = 0usize;
    for b in 0..blocks {
        let mut next_coins = Vec::with_capacity(TXS_PER_BLOCK * 2);
        let take = TXS_PER_BLOCK.min(coins.len());
        let spend: Vec<(OutPoint, TxOut, u64)> = coins.drain(..take).collect();
        for (slot_in_block, (op, txout, k)) in spend.into_iter().enumerate() {
            let slot = b * TXS_PER_BLOCK + slot_in_block;
            if txout.value.to_sat() < 20_000 {
                continue; // worn down by fees: retire it
            }
            let fanning = coins.len() + next_coins.len() < TXS_PER_BLOCK * 2
                && txout.value.to_sat() > 200_000_000;
            // About 2 to 7 sat/vB for a two-output spend; a 50-output fan-out pays for its size.
            let fee = if fanning {
                10_000
            } else {
                300 + rng.next() % 700
            };
            let value = txout.value.to_sat() - fee;
            let to = busy_slots
                .get(&slot)
                .copied()
                .unwrap_or_else(|| rng.popular());
            let fresh = next_fresh;
            next_fresh += 1;
            // Fan out while coins are few, then pay-and-change.
            let outputs: Vec<(u64, u64)> = if fanning {
                let n = 50u64;
                (0..n)
                    .map(|i| (if i == 0 { to } else { next_fresh + i }, value / n))
                    .collect()
            } else if value >= 200_000 {
                let pay = value / 3;
                vec![(to, pay), (fresh, value - pay)]
            } else {
                // Small coins move whole, so no lineage shrinks to dust.
                vec![(to, value)]
            };
            next_fresh += outputs.len() as u64;
            let outs: Vec<TxOut> = outputs
                .iter()
                .map(|(k, v)| TxOut {
                    value: Amount::from_sat(*v),
                    script_pubkey: script_of(*k),
                })
                .collect();
            let signer = key(k);
            let tx = sign(&[(op, txout, &signer)], outs, Sequence::MAX);
            let txid = tx.compute_txid();
            for (vout, (k, _)) in outputs.iter().enumerate() {
                next_coins.push((
                    OutPoint {
                        txid,
                        vout: vout as u32,
                    },
                    tx.output[vout].clone(),
                    *k,
                ));
            }
            node.broadcast(&tx).expect("accept");
            made += 1;
        }
        node.generate(1, &miner.script()).expect("mine");
        // Coins created this block are spendable from the next; shuffle a little for variety.
        coins.extend(next_coins);
        let rot = (rng.next() as usize) % coins.len().max(1);
        coins.rotate_left(rot);
        if b % 100 == 0 {
            eprintln!(
                "block {b}/{blocks}: {made} transactions, {:?}",
                started.elapsed()
            );
        }
    }
    node.checkpoint().expect("checkpoint");
    std::fs::write(&marker, format!("{made}\n")).expect("marker");
    eprintln!(
        "chain of {made} transactions built in {:?}",
        started.elapsed()
    );
    (node, busy)
}

/// A line-delimited JSON-RPC client that can pipeline.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    id: u64,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let start = Instant::now();
        loop {
            if let Ok(s) = TcpStream::connect(addr) {
                s.set_nodelay(true).expect("nodelay");
                // A server that stops answering fails the run instead of hanging it.
                s.set_read_timeout(Some(Duration::from_secs(120)))
                    .expect("timeout");
                let mut c = Client {
                    reader: BufReader::new(s.try_clone().expect("clone")),
                    writer: s,
                    id: 0,
                };
                c.call("server.version", json!(["bench", "1.6"]));
                return c;
            }
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "server never listened on {addr}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn send(&mut self, method: &str, params: &Value) -> u64 {
        self.id += 1;
        let line = json!({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params})
            .to_string()
            + "\n";
        self.writer.write_all(line.as_bytes()).expect("write");
        self.id
    }

    fn recv(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        serde_json::from_str(&line).expect("json")
    }

    /// Reads until the reply to `id`, counting notifications passed.
    fn reply(&mut self, id: u64) -> Value {
        loop {
            let v = self.recv();
            if v.get("id") == Some(&json!(id)) {
                return v;
            }
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, &params);
        let v = self.reply(id);
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }

    fn batch(&mut self, method: &str, params: &[Value]) -> Vec<Value> {
        let calls: Vec<Value> = params
            .iter()
            .map(|p| {
                self.id += 1;
                json!({"jsonrpc": "2.0", "id": self.id, "method": method, "params": p})
            })
            .collect();
        self.writer
            .write_all((Value::Array(calls).to_string() + "\n").as_bytes())
            .expect("write");
        loop {
            let v = self.recv();
            if let Value::Array(items) = v {
                return items;
            }
        }
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        dir_size(&e.path())
                    } else {
                        e.metadata().map_or(0, |m| m.len())
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn wait_tip(addr: SocketAddr, height: u32) -> Client {
    let mut c = Client::connect(addr);
    let probe = json!([scripthash(&key(0).script())]);
    loop {
        // Errors ("no blocks indexed yet", "still indexing") are expected until it is done.
        let id = c.send("blockchain.headers.subscribe", &json!([]));
        if c.reply(id)["result"]["height"] == json!(height) {
            let id = c.send("blockchain.scripthash.get_balance", &probe);
            if c.reply(id).get("error").is_none() {
                return c;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Figures {
    index_secs: f64,
    bytes: u64,
    history_p50: Duration,
    history_p99: Duration,
    subscribe_rps: f64,
    history_rps: f64,
    wallet_load: Duration,
    notify_first: Duration,
    honest_p99_quiet: Duration,
    honest_p99_flood: Duration,
}

/// Requests per second over `clients` connections, each sending batches of `depth` requests
/// back to back (as wallets do). Batches rather than pipelined single requests: ElectrumX 2.0's
/// padded TCP transport can hold pipelined replies indefinitely (seen in this benchmark).
fn throughput(
    addr: SocketAddr,
    method: &str,
    scripts: &[String],
    clients: usize,
    depth: usize,
    secs: u64,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (done, stop, scripts, method) = (
                Arc::clone(&done),
                Arc::clone(&stop),
                scripts.to_vec(),
                method.to_owned(),
            );
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut i = c * 997;
                while !stop.load(Ordering::Relaxed) {
                    let params: Vec<Value> = (0..depth)
                        .map(|_| {
                            i += 1;
                            json!([scripts[i % scripts.len()]])
                        })
                        .collect();
                    let replies = client.batch(&method, &params);
                    assert_eq!(replies.len(), depth, "{method}: batch reply");
                    done.fetch_add(depth as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1)); // warm-up
    let before = done.load(Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let count = done.load(Ordering::Relaxed) - before;
    let rate = count as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    rate
}

/// p99 of honest get_history calls, optionally while another connection floods.
fn honest_p99(addr: SocketAddr, busy: &[String], popular: &[String], flood: bool) -> Duration {
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood.then(|| {
        let (stop, scripts) = (Arc::clone(&stop), popular.to_vec());
        std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                // Full speed: batches of 50 requests, never pausing.
                let params: Vec<Value> = (0..50)
                    .map(|_| {
                        i += 1;
                        json!([scripts[i % scripts.len()]])
                    })
                    .collect();
                c.batch("blockchain.scripthash.get_history", &params);
            }
        })
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut samples = Vec::new();
    let mut c = Client::connect(addr);
    for i in 0..400 {
        let t = Instant::now();
        c.call(
            "blockchain.scripthash.get_history",
            json!([busy[i % busy.len()]]),
        );
        samples.push(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(f) = flooder {
        let _ = f.join();
    }
    percentile(&mut samples, 0.99)
}

fn measure(
    name: &str,
    addr: SocketAddr,
    node: &EmbeddedNode,
    busy: &[String],
    index_secs: f64,
    bytes: u64,
) -> Figures {
    eprintln!("measuring {name}");
    let mut c = Client::connect(addr);
    // get_history latency for 100-transaction addresses.
    let mut samples = Vec::new();
    for round in 0..5 {
        for sh in busy {
            let t = Instant::now();
            let h = c.call("blockchain.scripthash.get_history", json!([sh]));
            samples.push(t.elapsed());
            if round == 0 {
                assert!(
                    h.as_array().expect("history").len() >= BUSY_TXS,
                    "{name}: busy address history"
                );
            }
        }
    }
    let (p50, p99) = (
        percentile(&mut samples.clone(), 0.5),
        percentile(&mut samples, 0.99),
    );
    let popular: Vec<String> = (0..1_000).map(|k| scripthash(&key(k).script())).collect();
    // Requests per second over ordinary addresses (tens of transactions each, like a
    // wallet's): the popular ones hold up to a hundred thousand and would measure bandwidth.
    let ordinary: Vec<String> = (10_000..11_000)
        .map(|k| scripthash(&key(k).script()))
        .collect();
    let subscribe_rps = throughput(addr, "blockchain.scripthash.subscribe", &ordinary, 4, 16, 5);
    let history_rps = throughput(
        addr,
        "blockchain.scripthash.get_history",
        &ordinary,
        4,
        16,
        5,
    );

    // A 1,000-address wallet, loaded as Sparrow does: pages of 100 batched subscriptions, then
    // batched histories of the addresses that have any.
    let wallet: Vec<Value> = (5_000..6_000)
        .map(|k| json!([scripthash(&key(k).script())]))
        .collect();
    let t = Instant::now();
    let mut w = Client::connect(addr);
    for page in wallet.chunks(100) {
        let statuses = w.batch("blockchain.scripthash.subscribe", page);
        let used: Vec<Value> = page
            .iter()
            .zip(&statuses)
            .filter(|(_, s)| !s["result"].is_null())
            .map(|(p, _)| p.clone())
            .collect();
        if !used.is_empty() {
            w.batch("blockchain.scripthash.get_history", &used);
        }
    }
    let wallet_load = t.elapsed();
    drop(w);

    // 10,000 subscriptions over 10 connections; one block paying 100 of them.
    let subscribed: Vec<u64> = (20_000..30_000).collect();
    let mut subscribers: Vec<Client> = subscribed
        .chunks(1_000)
        .map(|chunk| {
            let mut s = Client::connect(addr);
            let params: Vec<Value> = chunk
                .iter()
                .map(|k| json!([scripthash(&key(*k).script())]))
                .collect();
            for page in params.chunks(250) {
                s.batch("blockchain.scripthash.subscribe", page);
            }
            s.writer
                .set_read_timeout(Some(Duration::from_secs(120)))
                .expect("timeout");
            s
        })
        .collect();
    let tip = node.tip().expect("tip");
    let coin = {
        let block = node.block(&tip.hash).expect("q").expect("b");
        let cb = &block.txdata[0];
        (
            OutPoint {
                txid: cb.compute_txid(),
                vout: 0,
            },
            cb.output[0].clone(),
        )
    };
    let _ = coin;
    let payees: Vec<ScriptBuf> = subscribed
        .iter()
        .step_by(100)
        .map(|k| key(*k).script())
        .collect();
    let t = Instant::now();
    // A coinbase paying the first payee is enough to touch a subscribed script; one block.
    node.generate(1, &payees[0]).expect("mine");
    // The connection holding the paid script is the first one.
    let mut first = None;
    while first.is_none() {
        let v = subscribers[0].recv();
        if v["method"] == json!("blockchain.scripthash.subscribe") {
            first = Some(t.elapsed());
        }
    }
    Figures {
        index_secs,
        bytes,
        history_p50: p50,
        history_p99: p99,
        subscribe_rps,
        history_rps,
        wallet_load,
        notify_first: first.unwrap_or_default(),
        honest_p99_quiet: honest_p99(addr, busy, &popular, false),
        honest_p99_flood: honest_p99(addr, busy, &popular, true),
    }
}

fn main() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target_txs: usize = std::env::var("MOIP_BENCH_TXS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let base = std::env::var_os("MOIP_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/bench-data"));
    let data = base.join(format!("electrum-{target_txs}"));
    let electrumx = std::env::var_os("MOIP_ELECTRUMX")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join(".venv/bin/electrumx_server"));
    assert!(
        electrumx.exists(),
        "ElectrumX not found at {}: run `make test` once, or set MOIP_ELECTRUMX",
        electrumx.display()
    );

    let (node, busy_keys) = chain(&data, target_txs);
    if std::env::var_os("MOIP_BENCH_BUILD_ONLY").is_some() {
        eprintln!("chain ready in {}", data.display());
        return;
    }
    let tip = node.tip().expect("tip");
    let made: usize = std::fs::read_to_string(data.join("COMPLETE"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(target_txs);
    let busy: Vec<String> = busy_keys
        .iter()
        .map(|k| scripthash(&key(*k).script()))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let rpc = rt
        .block_on(RpcServer::start(node.clone(), RpcConfig::local(&node, 0)))
        .expect("rpc");
    let (user, password) = rpc.credentials();

    // moip, indexing straight from the embedded node.
    let ours_dir = base.join("run-moip");
    let _ = std::fs::remove_dir_all(&ours_dir);
    let mut config = ServerConfig::ephemeral(&ours_dir);
    config.tls = None;
    config.ws = None;
    config.wss = None;
    config.metrics = None;
    config.limits.max_history = 10_000_000;
    let t = Instant::now();
    let source: Arc<dyn ChainSource> = Arc::new(node.clone());
    let ours = rt
        .block_on(ElectrumServer::start(source, config))
        .expect("moip server");
    let ours_addr = ours.addresses().tcp.expect("tcp");
    drop(wait_tip(ours_addr, tip.height));
    let ours_index = t.elapsed().as_secs_f64();
    let ours_bytes = dir_size(&ours_dir.join("index"));
    eprintln!("moip indexed {made} transactions in {ours_index:.1} s");

    // moip again, over the node's bitcoind RPC (the path ElectrumX has to take).
    let rpc_dir = base.join("run-moip-rpc");
    let _ = std::fs::remove_dir_all(&rpc_dir);
    let mut config = ServerConfig::ephemeral(&rpc_dir);
    (config.tls, config.ws, config.wss, config.metrics) = (None, None, None, None);
    let t = Instant::now();
    let bitcoind: Arc<dyn ChainSource> = Arc::new(
        BitcoindRpc::connect(
            &rpc.url(),
            BitcoindAuth::UserPass(user.clone(), password.clone()),
        )
        .expect("rpc source"),
    );
    let over_rpc = rt
        .block_on(ElectrumServer::start(bitcoind, config))
        .expect("moip rpc server");
    drop(wait_tip(over_rpc.addresses().tcp.expect("tcp"), tip.height));
    let rpc_index = t.elapsed().as_secs_f64();
    rt.block_on(over_rpc.shutdown());
    eprintln!("moip over RPC indexed in {rpc_index:.1} s");

    // ElectrumX on the same node, through the same RPC.
    let ex_dir = base.join("run-electrumx");
    let _ = std::fs::remove_dir_all(&ex_dir);
    std::fs::create_dir_all(&ex_dir).expect("dir");
    let ex_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = rpc
        .url()
        .replace("http://", &format!("http://{user}:{password}@"));
    let t = Instant::now();
    let mut ex: Child = Command::new(&electrumx)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("COIN", "Bitcoin")
        .env("NET", "regtest")
        .env("DB_ENGINE", "leveldb")
        .env("DB_DIRECTORY", &ex_dir)
        .env("DAEMON_URL", format!("{url}/"))
        .env("SERVICES", format!("tcp://127.0.0.1:{ex_port}"))
        .env("PEER_DISCOVERY", "off")
        .env("PEER_ANNOUNCE", "")
        .env("ALLOW_ROOT", "1")
        .env("LOG_LEVEL", "warning")
        .env("DAEMON_POLL_INTERVAL_BLOCKS", "100")
        .env("DAEMON_POLL_INTERVAL_MEMPOOL", "100")
        .env("COST_SOFT_LIMIT", "0")
        .env("COST_HARD_LIMIT", "0")
        .env("MAX_SEND", "100000000")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("electrumx");
    let ex_addr = SocketAddr::from(([127, 0, 0, 1], ex_port));
    drop(wait_tip(ex_addr, tip.height));
    let ex_index = t.elapsed().as_secs_f64();
    let ex_bytes = dir_size(&ex_dir);
    eprintln!("ElectrumX indexed in {ex_index:.1} s");

    let m = measure("moip", ours_addr, &node, &busy, ours_index, ours_bytes);
    let x = measure("ElectrumX", ex_addr, &node, &busy, ex_index, ex_bytes);
    let _ = ex.kill();
    let _ = ex.wait();
    rt.block_on(ours.shutdown());

    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    let ratio = |a: f64, b: f64| {
        if a > 0.0 && b > 0.0 && (b / a).is_finite() {
            format!("{:.1}×", b / a)
        } else {
            "—".to_owned()
        }
    };
    println!("Chain: {made} transactions in {} blocks.\n", tip.height);
    println!("| benchmark | moip | ElectrumX 2.0 | moip advantage |\n|---|---|---|---|");
    println!(
        "| initial index (from the node) | {:.1} s | {:.1} s | {} |",
        m.index_secs,
        x.index_secs,
        ratio(m.index_secs, x.index_secs)
    );
    println!("| initial index, moip over bitcoind RPC like ElectrumX | {rpc_index:.1} s | {:.1} s | {} |", x.index_secs, ratio(rpc_index, x.index_secs));
    println!(
        "| index bytes per transaction | {:.0} | {:.0} | {} |",
        m.bytes as f64 / made as f64,
        x.bytes as f64 / made as f64,
        ratio(m.bytes as f64, x.bytes as f64)
    );
    println!(
        "| get_history p50, 100-tx address | {} | {} | {} |",
        ms(m.history_p50),
        ms(x.history_p50),
        ratio(m.history_p50.as_secs_f64(), x.history_p50.as_secs_f64())
    );
    println!(
        "| get_history p99, 100-tx address | {} | {} | {} |",
        ms(m.history_p99),
        ms(x.history_p99),
        ratio(m.history_p99.as_secs_f64(), x.history_p99.as_secs_f64())
    );
    println!(
        "| scripthash.subscribe per second (ordinary addresses, 4 clients × batches of 16) | {:.0} | {:.0} | {} |",
        m.subscribe_rps,
        x.subscribe_rps,
        ratio(1.0 / m.subscribe_rps, 1.0 / x.subscribe_rps)
    );
    println!(
        "| get_history per second (ordinary addresses, 4 clients × batches of 16) | {:.0} | {:.0} | {} |",
        m.history_rps,
        x.history_rps,
        ratio(1.0 / m.history_rps, 1.0 / x.history_rps)
    );
    println!(
        "| 1,000-address wallet load (batched, Sparrow-style) | {} | {} | {} |",
        ms(m.wallet_load),
        ms(x.wallet_load),
        ratio(m.wallet_load.as_secs_f64(), x.wallet_load.as_secs_f64())
    );
    println!(
        "| tip to notification, 10,000 subscriptions | {} | {} | {} |",
        ms(m.notify_first),
        ms(x.notify_first),
        ratio(m.notify_first.as_secs_f64(), x.notify_first.as_secs_f64())
    );
    println!(
        "| honest get_history p99, quiet | {} | {} | {} |",
        ms(m.honest_p99_quiet),
        ms(x.honest_p99_quiet),
        ratio(
            m.honest_p99_quiet.as_secs_f64(),
            x.honest_p99_quiet.as_secs_f64()
        )
    );
    println!(
        "| honest get_history p99, beside a flooding client | {} | {} | {} |",
        ms(m.honest_p99_flood),
        ms(x.honest_p99_flood),
        ratio(
            m.honest_p99_flood.as_secs_f64(),
            x.honest_p99_flood.as_secs_f64()
        )
    );
    rt.block_on(rpc.shutdown());
    node.shutdown().expect("shutdown");
}
