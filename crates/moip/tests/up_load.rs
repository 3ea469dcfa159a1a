//! `moip up` under load, as its own process: 10,000 Electrum connections held at once, each
//! subscribed to headers and to an address, all notified of a new block; a client flooding
//! batches beside an honest wallet; then 1,000 Moneysocket pairs through the node's relay,
//! each forwarding a frame both ways.
//!
//! The connections come from many loopback addresses (127.1.x.y): the servers' per-IP limits
//! stay as they are in production, and this test is what many users look like to them.
//!
//! What is asserted is that everything is served: every connection, subscription,
//! notification, pair and honest request. The figures (time to connect, the server's memory
//! per connection, the honest client's latency quiet, beside 10,000 idle connections and beside
//! a flood) are printed for `docs/reliability.md`, never asserted.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::NodeProcess;
use electrum_client::ElectrumApi;
use moip_moneysocket::client::ClientConfig;
use moip_moneysocket::SharedSeed;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// Electrum connections held at once (fewer if the system allows fewer open files).
const CONNECTIONS: usize = 10_000;
/// Moneysocket pairs (two connections each).
const PAIRS: usize = 1_000;
/// Connections per source address: under the Electrum server's 32 and the relay's 64 per IP.
const PER_ADDRESS: usize = 25;
const WAIT: Duration = Duration::from_secs(120);

/// The `n`th loopback source address, 127.1.x.y.
fn source(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 1, (n / 250) as u8, (n % 250 + 1) as u8))
}

/// Raises this process's open-file limit to its hard limit (the server, a child, inherits
/// it); returns the limit now in force.
fn raise_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The server's resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A held Electrum connection: subscribed, waiting for notifications.
struct Held {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    _writer: tokio::net::tcp::OwnedWriteHalf,
}

/// Opens a connection from `from`, negotiates and subscribes to headers and one address;
/// returns once all three answers are in.
async fn subscribe(server: SocketAddr, from: IpAddr, n: usize) -> Result<Held, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(from, 0))
        .map_err(|e| e.to_string())?;
    let stream: TcpStream = socket.connect(server).await.map_err(|e| e.to_string())?;
    let (read, mut write) = stream.into_split();
    let hash = format!("{:064x}", n as u128 * 0x9e37_79b9_7f4a_7c15);
    let requests = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "server.version", "params": ["load", "1.4"]}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "blockchain.headers.subscribe", "params": []}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "blockchain.scripthash.subscribe", "params": [hash]}),
    ];
    let text: String = requests.iter().map(|r| format!("{r}\n")).collect();
    write
        .write_all(text.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(read).lines();
    for _ in 0..3 {
        let line = lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("closed")?;
        let reply: serde_json::Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        if reply.get("result").is_none() {
            return Err(format!("refused: {line}"));
        }
    }
    Ok(Held {
        lines,
        _writer: write,
    })
}

/// Waits for the headers notification of block `height` on a held connection.
async fn notified(held: &mut Held, height: u64) -> Result<(), String> {
    while let Some(line) = held.lines.next_line().await.map_err(|e| e.to_string())? {
        let note: serde_json::Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        if note["method"] == "blockchain.headers.subscribe"
            && note["params"][0]["height"].as_u64() == Some(height)
        {
            return Ok(());
        }
    }
    Err("closed before the notification".into())
}

/// p50 and p99 of `n` honest `get_history` calls through a real Electrum client, ms.
fn honest(url: &str, n: usize) -> (f64, f64) {
    let client = electrum_client::Client::new(url).expect("the honest client connects");
    let script = bitcoin::ScriptBuf::new_op_return([7u8; 20]);
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            client
                .script_get_history(&script)
                .expect("the honest client is served");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    (at(0.50), at(0.99))
}

/// A client from its own address sending batches of 50 `get_history` as fast as the server
/// answers, until `stop`, counting the requests answered.
async fn flood(server: SocketAddr, from: IpAddr, stop: Arc<AtomicBool>, served: Arc<AtomicU64>) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind");
    let stream = socket.connect(server).await.expect("the flood connects");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let batch: Vec<serde_json::Value> = (0..50)
        .map(|i| {
            json!({"jsonrpc": "2.0", "id": i, "method": "blockchain.scripthash.get_history",
                   "params": [format!("{:064x}", i)]})
        })
        .collect();
    let line = format!("{}\n", serde_json::Value::Array(batch));
    while !stop.load(Ordering::Relaxed) {
        if write.write_all(line.as_bytes()).await.is_err() {
            return;
        }
        match lines.next_line().await {
            Ok(Some(_)) => served.fetch_add(50, Ordering::Relaxed),
            _ => return,
        };
    }
}

#[test]
fn up_holds_ten_thousand_electrum_connections_a_flood_and_a_thousand_moneysocket_pairs() {
    let files = raise_file_limit();
    // The test holds one end of each connection, the server the other; keep room for both.
    let connections = CONNECTIONS.min(files.saturating_sub(2_000) as usize);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("moip.toml"),
        "mine_every_secs = 0\n[ports]\nrpc = 0\nelectrum_tcp = 0\nelectrum_ws = 0\n\
         lightning = 0\nmoneysocket = 0\nnostr = 0\napi = 0\n[community]\nid = \"mill\"\n",
    )
    .expect("settings");
    let args = [
        "up".to_owned(),
        "--config".into(),
        dir.path().join("moip.toml").display().to_string(),
        "--data-dir".into(),
        dir.path().join("node").display().to_string(),
    ];
    let (node, lines) = NodeProcess::spawn_with_env(
        &args,
        &[("MOIP_PASSWORD", "correct horse")],
        &dir.path().join("node"),
        &["  electrum tcp: ", "  moneysocket relay: "],
    );
    let electrum_url = lines[0].clone();
    let electrum: SocketAddr = electrum_url
        .trim_start_matches("tcp://")
        .parse()
        .expect("electrum address");
    let relay = lines[1].clone();
    let pid = node.child.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let (quiet_p50, quiet_p99) = honest(&electrum_url, 300);
    let rss_before = rss_kib(pid);

    // 10,000 connections, 250 opening at a time, each subscribed twice.
    let started = Instant::now();
    let mut held: Vec<Held> = Vec::with_capacity(connections);
    runtime.block_on(async {
        for chunk in (0..connections).collect::<Vec<_>>().chunks(250) {
            let mut set = tokio::task::JoinSet::new();
            for &n in chunk {
                set.spawn(tokio::time::timeout(
                    WAIT,
                    subscribe(electrum, source(n / PER_ADDRESS), n),
                ));
            }
            while let Some(joined) = set.join_next().await {
                let held_one = joined
                    .expect("task")
                    .expect("within the wait")
                    .unwrap_or_else(|e| panic!("connection {}: {e}", held.len()));
                held.push(held_one);
            }
        }
    });
    let connect_time = started.elapsed();
    assert_eq!(held.len(), connections);
    let rss_held = rss_kib(pid);
    let (held_p50, held_p99) = honest(&electrum_url, 300);

    // A block: every connection hears of it.
    let height = node.height() + 1;
    let mined = Instant::now();
    node.call("generatetoaddress", json!([1, common::BURN_ADDRESS]));
    runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for mut one in held.drain(..) {
            set.spawn(async move {
                tokio::time::timeout(WAIT, notified(&mut one, height))
                    .await
                    .map_err(|_| "no notification within the wait".to_owned())??;
                Ok::<Held, String>(one)
            });
        }
        while let Some(joined) = set.join_next().await {
            held.push(joined.expect("task").expect("notified"));
        }
    });
    let fan_out = mined.elapsed();
    assert_eq!(held.len(), connections, "every connection was notified");

    // A flood beside the honest client (and the 10,000 held connections).
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let flooder = runtime.spawn(flood(
        electrum,
        source(999),
        Arc::clone(&stop),
        Arc::clone(&served),
    ));
    let flood_started = Instant::now();
    let (flood_p50, flood_p99) = honest(&electrum_url, 300);
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(flooder).expect("flooder");
    let flood_rate = served.load(Ordering::Relaxed) as f64 / flood_started.elapsed().as_secs_f64();
    drop(held);

    // 1,000 Moneysocket pairs, each forwarding one frame both ways.
    let paired = Instant::now();
    let forwarded = runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for n in 0..PAIRS {
            let relay = relay.clone();
            set.spawn(async move {
                let config = ClientConfig {
                    local_address: Some(source(1_000 + 2 * n / PER_ADDRESS)),
                    ..ClientConfig::default()
                };
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&(n as u64).to_be_bytes());
                let seed = SharedSeed::from_bytes(bytes);
                let (a, b) = tokio::join!(
                    moip_moneysocket::client::connect(&relay, seed, &config),
                    moip_moneysocket::client::connect(&relay, seed, &config)
                );
                let (mut a, mut b) = (a.map_err(|e| e.to_string())?, b.map_err(|e| e.to_string())?);
                let frame = tokio_tungstenite::tungstenite::Bytes::from(format!("frame {n}"));
                a.send_frame(frame.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                let there = b.recv_frame().await.map_err(|e| e.to_string())?;
                b.send_frame(there).await.map_err(|e| e.to_string())?;
                let back = a.recv_frame().await.map_err(|e| e.to_string())?;
                Ok::<bool, String>(back == frame)
            });
        }
        let mut forwarded = 0;
        while let Some(joined) = set.join_next().await {
            let ok = tokio::time::timeout(WAIT, async { joined })
                .await
                .expect("within the wait")
                .expect("task")
                .unwrap_or_else(|e| panic!("a pair failed: {e}"));
            assert!(ok, "the frame came back as sent");
            forwarded += 1;
        }
        forwarded
    });
    assert_eq!(forwarded, PAIRS);
    let pair_time = paired.elapsed();

    eprintln!("load: open-file limit {files}; {connections} Electrum connections");
    eprintln!(
        "load: connected and subscribed (2 subscriptions each) in {connect_time:.2?}; \
         server RSS {rss_before} KiB -> {rss_held} KiB ({:.1} KiB per connection)",
        (rss_held.saturating_sub(rss_before)) as f64 / connections as f64
    );
    eprintln!("load: one block notified to all {connections} in {fan_out:.2?}");
    eprintln!(
        "load: honest get_history p50/p99 ms: quiet {quiet_p50:.2}/{quiet_p99:.2}, \
         beside {connections} held {held_p50:.2}/{held_p99:.2}, \
         beside a flood {flood_p50:.2}/{flood_p99:.2} (flood served {flood_rate:.0} requests/s); \
         p99 ratio flood/quiet {:.2}",
        flood_p99 / quiet_p99
    );
    eprintln!(
        "load: {PAIRS} Moneysocket pairs rendezvoused and forwarded both ways in {pair_time:.2?}"
    );
    node.kill();
}
