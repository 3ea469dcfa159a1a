//! `moip up` under load, as its own process: 10,000 Electrum connections held at once, each
//! subscribed to headers and to an address, all notified of a new block; a client flooding
//! batches beside an honest wallet; then 1,000 Moneysocket pairs through the node's relay,
//! each forwarding a frame both ways.
//!
//! The connections come from many loopback addresses (127.x.y.1, each in a /24 of its own):
//! the Electrum server limits loopback clients as it limits any other (only the node's own
//! services, on a listener of their own, are exempt), so its per-address and per-subnet limits
//! and its cost model stay as in production, and this test is what many users look like to
//! them.
//!
//! Asserted:
//! - everything honest is served: every connection, subscription, notification, pair and
//!   honest request; a connection that cannot be opened fails the test (an open-file limit
//!   too low for them fails it at the start, naming the limit), and so does a Moneysocket pair
//!   that does not complete within its deadline;
//! - the flooder, one address, is throttled by the cost model: once past the soft limit its
//!   requests are delayed, so it is answered at under a fifth of the rate it got before;
//! - the honest wallet's p99 beside the flood stays within max(2 × quiet p99, quiet p99 +
//!   20 ms) (the floor keeps a 2-core machine's scheduling noise on sub-10 ms figures from
//!   failing the test).
//!
//! The other figures (time to connect, the server's memory per connection, the honest
//! client's latency beside 10,000 idle connections) are printed for `docs/reliability.md`.

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

/// Electrum connections held at once.
const CONNECTIONS: usize = 10_000;
/// Open files this process needs beyond the held connections: the honest client, the flood,
/// the node's pipes, the runtime, the Moneysocket pairs after the held connections are closed.
const SPARE_FILES: u64 = 2_000;
/// Moneysocket pairs (two connections each).
const PAIRS: usize = 1_000;
/// Connections per source address: under the Electrum server's 32 and the relay's 64 per IP.
const PER_ADDRESS: usize = 25;
/// The flooder's address (by [`source`]'s numbering), apart from everyone else's.
const FLOODER: usize = 999;
const WAIT: Duration = Duration::from_secs(120);
/// How long one Moneysocket pair may take to rendezvous and forward its frames (they all run at
/// once; 1,000 took under a second).
const PAIR_DEADLINE: Duration = Duration::from_secs(60);
/// How long the flood lasts at least, so its throttled phase is measured.
const FLOOD: Duration = Duration::from_secs(4);
/// Requests the flooder sends in each batch.
const FLOOD_BATCH: u64 = 50;
/// Requests of the flood measured as its unthrottled rate: well under the cost model's soft
/// limit (1,000 at about 1 each).
const FLOOD_FREE: u64 = 500;
/// Requests after which the flood is measured as throttled: the soft limit's worth (from about
/// the 970th, each request is delayed, the more the further past the limit).
const FLOOD_LIMITED: u64 = 1_000;

/// The `n`th loopback source address, 127.x.y.1: each in a /24 of its own, so the Electrum
/// server's per-subnet accounting sees as many subnets as addresses, as with real users.
fn source(n: usize) -> IpAddr {
    let n = n + 256; // from 127.1.0.1: clear of 127.0.0.0/24, where the node's own clients are
    IpAddr::V4(Ipv4Addr::new(127, (n / 256) as u8, (n % 256) as u8, 1))
}

/// Raises this process's open-file limit to its hard limit (the server, a child, inherits
/// it); fails when that is too low for the connections this test holds.
fn raise_file_limit(needed: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= needed,
        "the hard open-file limit (RLIMIT_NOFILE, `ulimit -Hn`) is {hard}: this test holds \
         {CONNECTIONS} Electrum connections and needs {needed} open files; raise the limit"
    );
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit)
        .unwrap_or_else(|e| panic!("raising the open-file limit to {hard}: {e}"));
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        now >= needed,
        "the open-file limit (RLIMIT_NOFILE) is {now} after raising it, below {needed}"
    );
    now
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

/// p50 and p99 of `n` honest `get_history` calls through a real Electrum client (from its own
/// address `from`, as a wallet would come), ms.
fn honest(
    runtime: &tokio::runtime::Runtime,
    server: SocketAddr,
    from: IpAddr,
    n: usize,
) -> (f64, f64) {
    let stream = runtime
        .block_on(async {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(from, 0))?;
            socket.connect(server).await?.into_std()
        })
        .expect("the honest client connects");
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let client = electrum_client::raw_client::RawClient::from(stream);
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

/// What the flooder got.
#[derive(Default)]
struct Flooded {
    /// Requests answered.
    served: AtomicU64,
    /// Microseconds from the start to the answer that passed [`FLOOD_FREE`] requests, and to
    /// the one that passed [`FLOOD_LIMITED`].
    free_us: AtomicU64,
    limited_us: AtomicU64,
    /// Longest wait for one batch's answer, microseconds.
    slowest_us: AtomicU64,
    /// Calls answered with an error (the cost limit's is `excessive resource usage`).
    refused: AtomicU64,
}

/// A client from its own address sending batches of [`FLOOD_BATCH`] `get_history` as fast as
/// the server answers, until `stop`, counting the requests answered.
async fn flood(server: SocketAddr, from: IpAddr, stop: Arc<AtomicBool>, got: Arc<Flooded>) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind");
    let stream = socket.connect(server).await.expect("the flood connects");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let batch: Vec<serde_json::Value> = (0..FLOOD_BATCH)
        .map(|i| {
            json!({"jsonrpc": "2.0", "id": i, "method": "blockchain.scripthash.get_history",
                   "params": [format!("{:064x}", i)]})
        })
        .collect();
    let line = format!("{}\n", serde_json::Value::Array(batch));
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        if write.write_all(line.as_bytes()).await.is_err() {
            return;
        }
        let Ok(Some(answer)) = lines.next_line().await else {
            return;
        };
        let waited = sent.elapsed().as_micros() as u64;
        got.slowest_us.fetch_max(waited, Ordering::Relaxed);
        let replies: Vec<serde_json::Value> = match serde_json::from_str(&answer) {
            Ok(serde_json::Value::Array(replies)) => replies,
            Ok(one) => vec![one],
            Err(_) => return,
        };
        let errors = replies.iter().filter(|r| r.get("error").is_some()).count() as u64;
        got.refused.fetch_add(errors, Ordering::Relaxed);
        let before = got
            .served
            .fetch_add(replies.len() as u64 - errors, Ordering::Relaxed);
        let after = before + replies.len() as u64 - errors;
        let at = started.elapsed().as_micros() as u64;
        if before < FLOOD_FREE && after >= FLOOD_FREE {
            got.free_us.store(at, Ordering::Relaxed);
        }
        if before < FLOOD_LIMITED && after >= FLOOD_LIMITED {
            got.limited_us.store(at, Ordering::Relaxed);
        }
        if errors > 0 {
            return; // refused: the cost limit closes the session
        }
    }
}

#[test]
fn up_holds_ten_thousand_electrum_connections_a_flood_and_a_thousand_moneysocket_pairs() {
    // The test holds one end of each connection, the server (which inherits the limit) the other.
    let files = raise_file_limit(CONNECTIONS as u64 + SPARE_FILES);
    let connections = CONNECTIONS;
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

    // The honest wallet comes from an address of its own in each phase: 300 calls cost it
    // about 300, under the soft limit, as a wallet's sync would.
    let (quiet_p50, quiet_p99) = honest(&runtime, electrum, source(2_000), 300);
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
    let (held_p50, held_p99) = honest(&runtime, electrum, source(2_001), 300);

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
    let got = Arc::new(Flooded::default());
    let flooder = runtime.spawn(flood(
        electrum,
        source(FLOODER),
        Arc::clone(&stop),
        Arc::clone(&got),
    ));
    let flood_started = Instant::now();
    let (flood_p50, flood_p99) = honest(&runtime, electrum, source(2_002), 300);
    std::thread::sleep(FLOOD.saturating_sub(flood_started.elapsed()));
    stop.store(true, Ordering::Relaxed);
    let flood_time = flood_started.elapsed();
    // A throttled flooder may be asleep in a delayed batch: it is stopped, not waited for.
    flooder.abort();
    let _ = runtime.block_on(flooder);
    drop(held);
    let flood_us = flood_time.as_micros() as u64;
    let served = got.served.load(Ordering::Relaxed);
    let (free_us, limited_us) = (
        got.free_us.load(Ordering::Relaxed),
        got.limited_us.load(Ordering::Relaxed),
    );
    let refused = got.refused.load(Ordering::Relaxed);
    let slowest = Duration::from_micros(got.slowest_us.load(Ordering::Relaxed));
    assert!(
        free_us > 0,
        "the flooder was not even answered {FLOOD_FREE} requests"
    );
    let free_rate = FLOOD_FREE as f64 / (free_us as f64 / 1e6);
    // From its FLOOD_LIMITED-th answer (or, if it never got that far, from its FLOOD_FREE-th)
    // to the end of the flood.
    let (from_n, from_us) = if limited_us > 0 {
        (FLOOD_LIMITED, limited_us)
    } else {
        (FLOOD_FREE, free_us)
    };
    let limited_rate =
        served.saturating_sub(from_n) as f64 / (flood_us.saturating_sub(from_us) as f64 / 1e6);
    let flood_rate = served as f64 / flood_time.as_secs_f64();

    // 1,000 Moneysocket pairs, each forwarding one frame both ways.
    let paired = Instant::now();
    let forwarded = runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for n in 0..PAIRS {
            let relay = relay.clone();
            let pair = async move {
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
            };
            set.spawn(async move {
                tokio::time::timeout(PAIR_DEADLINE, pair)
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!(
                            "pair {n} did not rendezvous and forward within {PAIR_DEADLINE:?}"
                        ))
                    })
            });
        }
        let mut forwarded = 0;
        while let Some(joined) = set.join_next().await {
            let ok = joined
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
         beside a flood {flood_p50:.2}/{flood_p99:.2}; p99 ratio flood/quiet {:.2}",
        flood_p99 / quiet_p99
    );
    eprintln!(
        "load: the flooder ({}) in {flood_time:.2?}: {served} requests answered ({flood_rate:.0}/s), \
         its first {FLOOD_FREE} at {free_rate:.0}/s, from its {from_n}th on {limited_rate:.0}/s; \
         slowest batch {slowest:.2?}; {refused} refused",
        source(FLOODER)
    );
    eprintln!(
        "load: {PAIRS} Moneysocket pairs rendezvoused and forwarded both ways in {pair_time:.2?}"
    );
    node.kill();

    assert!(
        refused > 0 || limited_rate * 5.0 < free_rate,
        "the flooder is not throttled: {limited_rate:.0} requests/s past the soft limit against \
         {free_rate:.0}/s before it, and none refused"
    );
    let bound = (2.0 * quiet_p99).max(quiet_p99 + 20.0);
    assert!(
        flood_p99 <= bound,
        "the honest wallet's p99 beside the flood is {flood_p99:.2} ms, over \
         max(2 × quiet {quiet_p99:.2} ms, quiet + 20 ms) = {bound:.2} ms"
    );
}
