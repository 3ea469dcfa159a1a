//! Relay throughput and latency on loopback: N concurrent pairs, each bouncing one encrypted
//! Moneysocket frame back and forth (closed loop, one frame in flight per pair).
//!
//! Every round trip is two forwards through the relay (A → B, B → A); the figures are
//! forwarded frames per second and round-trip latency percentiles (one-way ≈ half). Relay
//! and clients share the same process and cores, so the clients' own WebSocket work is
//! included: this is a lower bound for the relay alone.
//!
//! `cargo bench -p moip-moneysocket --bench relay` — knobs: `RELAY_BENCH_PAIRS` (1000),
//! `RELAY_BENCH_SECS` (10), `RELAY_BENCH_WARMUP_SECS` (2).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moip_moneysocket::client::{ClientConfig, OutgoingSocket};
use moip_moneysocket::relay::{Relay, RelayConfig};
use moip_moneysocket::v0::frame::encode_frame;
use moip_moneysocket::v0::message::{Message, RequestKind};
use moip_moneysocket::v0::seed::derive_aes_key;
use moip_moneysocket::SharedSeed;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (e.g. `cargo test --benches`) runs a
    // smoke-sized version so the target stays cheap to check.
    let full = std::env::args().any(|a| a == "--bench");
    let pairs = if full {
        env_u64("RELAY_BENCH_PAIRS", 1000)
    } else {
        10
    };
    let secs = if full {
        env_u64("RELAY_BENCH_SECS", 10)
    } else {
        1
    };
    let warmup = if full {
        env_u64("RELAY_BENCH_WARMUP_SECS", 2)
    } else {
        0
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(
        pairs as usize,
        Duration::from_secs(warmup),
        Duration::from_secs(secs),
    ));
}

async fn run(pairs: usize, warmup: Duration, measure: Duration) {
    let relay = Relay::bind(RelayConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        max_connections: 4 * pairs + 16,
        max_connections_per_ip: 4 * pairs + 16,
        rate_limit: None, // one closed-loop pair sends thousands of frames per second
        ..RelayConfig::default()
    })
    .await
    .expect("bind relay");
    let url = format!("ws://{}", relay.local_addr());

    // Pair up, 100 at a time so the listen backlog never overflows.
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(pairs);
    for chunk in (0..pairs).collect::<Vec<_>>().chunks(100) {
        let mut set = tokio::task::JoinSet::new();
        for &i in chunk {
            let url = url.clone();
            set.spawn(async move {
                let seed = seed(i);
                let config = ClientConfig::default();
                let (a, b) = tokio::join!(
                    moip_moneysocket::client::connect(&url, seed, &config),
                    moip_moneysocket::client::connect(&url, seed, &config)
                );
                (seed, a.expect("side a"), b.expect("side b"))
            });
        }
        while let Some(joined) = set.join_next().await {
            sockets.push(joined.expect("pairing task"));
        }
    }
    println!(
        "relay bench: {pairs} pairs rendezvoused in {:.2?}",
        started.elapsed()
    );

    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut set = tokio::task::JoinSet::new();
    for (seed, a, b) in sockets {
        set.spawn(bounce(
            seed,
            a,
            b,
            Arc::clone(&recording),
            Arc::clone(&stop),
        ));
    }
    tokio::time::sleep(warmup).await;
    let before = relay.metrics();
    recording.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(measure).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed();
    let after = relay.metrics();

    let mut rtts: Vec<u32> = Vec::new();
    while let Some(joined) = set.join_next().await {
        rtts.extend(joined.expect("bounce task"));
    }
    rtts.sort_unstable();
    let frames = after.frames_forwarded - before.frames_forwarded;
    let bytes = after.bytes_forwarded - before.bytes_forwarded;
    let pct = |p: f64| {
        let i = ((rtts.len() as f64 * p).ceil() as usize).clamp(1, rtts.len().max(1)) - 1;
        rtts.get(i).copied().unwrap_or(0)
    };
    println!(
        "relay bench: {:.0} forwarded frames/s ({:.1} MB/s) over {:.1?}, {} round trips recorded",
        frames as f64 / elapsed.as_secs_f64(),
        bytes as f64 / elapsed.as_secs_f64() / 1e6,
        elapsed,
        rtts.len()
    );
    println!(
        "relay bench: round trip (2 forwards) p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        f64::from(pct(0.50)) / 1000.0,
        f64::from(pct(0.99)) / 1000.0,
        f64::from(pct(0.999)) / 1000.0,
        f64::from(pct(1.0)) / 1000.0,
    );
    println!("relay bench: metrics {after:?}");
    relay.shutdown().await;
}

fn seed(i: usize) -> SharedSeed {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(i as u64).to_be_bytes());
    bytes[8] = 0xb5;
    SharedSeed::from_bytes(bytes)
}

/// A sends one encrypted ping, B echoes it verbatim, A times the round trip; repeated until
/// `stop`. Returns the round trips recorded (µs).
async fn bounce(
    seed: SharedSeed,
    mut a: OutgoingSocket,
    mut b: OutgoingSocket,
    recording: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Vec<u32> {
    let frame = encode_frame(&Message::request(RequestKind::Ping), &derive_aes_key(&seed))
        .expect("encode ping");
    let frame = tokio_tungstenite::tungstenite::Bytes::from(frame);
    let echo = async move {
        while let Ok(bytes) = b.recv_frame().await {
            if b.send_frame(bytes).await.is_err() {
                break;
            }
        }
    };
    let echo = tokio::spawn(echo);
    let mut rtts = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        a.send_frame(frame.clone()).await.expect("send");
        let back = a.recv_frame().await.expect("echo");
        debug_assert_eq!(back, frame);
        if recording.load(Ordering::Relaxed) {
            rtts.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
    }
    let _ = a.close().await;
    let _ = echo.await;
    rtts
}
