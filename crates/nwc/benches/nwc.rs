//! Nostr Wallet Connect figures (issue 23), on the embedded regtest chain with two real
//! ldk-nodes (the wallet and a shop, one announced channel), an in-process relay
//! (`nostr-relay-builder` on loopback), the NWC service on the wallet and one app connection
//! driven by rust-nostr's own `nwc` client (NIP-04, as the tests drive it):
//!
//! - **read**: `get_balance` round trips (app → relay → service → relay → app), one after
//!   another: p50/p99 and requests per second; then 4 at once on the same connection, rounds
//!   of 4 awaited together: requests per second;
//! - **pay**: `pay_invoice` of a fresh shop invoice through NWC, until the app holds the
//!   preimage, against — interleaved, in the same run — the same payment made on the wallet
//!   node directly through its `PaymentRail::pay` (what the service itself calls). The ratio is
//!   what NWC's layer costs: the relay hops, the encryption, the permission, budget and
//!   accounting checks.
//!
//! Invoices are made before each timer starts. The service's per-connection rate limit
//! (`requests_per_minute`, 120 by default) is raised so the bench measures the path, not the
//! limiter.
//!
//! Run: `cargo bench -p moip-nwc --bench nwc` (release). Prints a table.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moip_lightning::testing::{fund, open_usable, start_node, WAIT};
use moip_lightning::{PayRequest, PaymentRail, RouteLimits};
use moip_nwc::{NwcConfig, NwcService};
use moip_testenv::Regtest;
use nostr_relay_builder::builder::RateLimit;
use nostr_relay_builder::{LocalRelay, RelayBuilder};
use nostr_sdk::nips::nip47::PayInvoiceRequest;
use nostr_sdk::Keys;

const READS: usize = 300;
const CONCURRENT_ROUNDS: usize = 75;
const CONCURRENCY: usize = 4;
const PAYMENTS: usize = 30;
const AMOUNT_MSAT: u64 = 10_000;
const WARMUP: usize = 10;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// p50 and p99 of `samples`, in milliseconds.
fn p50_p99(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    (
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
    )
}

fn main() {
    let env = Regtest::new();
    let root = tempfile::tempdir().expect("tempdir");
    let wallet = start_node(&env, root.path(), "wallet");
    let shop = start_node(&env, root.path(), "shop");
    fund(&env, &wallet, &[&shop]);
    open_usable(&env, &wallet, &shop, 1_000_000, None);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let relay = LocalRelay::new(
        RelayBuilder::default()
            .addr(Ipv4Addr::LOCALHOST.into())
            .rate_limit(RateLimit {
                max_reqs: 10_000,
                notes_per_minute: 1_000_000,
            }),
    );
    rt.block_on(relay.run()).expect("relay");
    let url = rt.block_on(relay.url());
    let mut config = NwcConfig::new(vec![url.to_string()]);
    config.requests_per_minute = 1_000_000;
    let service = rt
        .block_on(NwcService::start(
            Arc::new(wallet.clone()),
            Keys::generate(),
            config,
        ))
        .expect("service");
    let uri = service.connect_app("bench", None, None).expect("connect");
    let app = nwc::NWC::with_opts(
        uri,
        nwc::NostrWalletConnectOptions::new().timeout(Duration::from_secs(20)),
    );
    eprintln!("nodes, channel, relay and service up; warming up");

    // Warm up: the client's relay connection, the service's first replies, one payment each way.
    // The first request may go out before the client's relay connection is up: retried.
    let mut first = rt.block_on(app.get_balance());
    for _ in 0..3 {
        if first.is_ok() {
            break;
        }
        eprintln!("first get_balance: {first:?}; again");
        first = rt.block_on(app.get_balance());
    }
    first.expect("get_balance");
    for _ in 0..WARMUP {
        rt.block_on(app.get_balance()).expect("get_balance");
    }
    let invoice = shop
        .create_invoice(Some(AMOUNT_MSAT), "warm-up nwc", 600)
        .expect("invoice");
    rt.block_on(app.pay_invoice(PayInvoiceRequest::new(invoice.bolt11)))
        .expect("pay_invoice");
    let invoice = shop
        .create_invoice(Some(AMOUNT_MSAT), "warm-up direct", 600)
        .expect("invoice");
    wallet
        .pay(&invoice.bolt11, None, RouteLimits::default(), WAIT)
        .expect("pay");

    eprintln!("measuring");
    // 1. Reads, one after another.
    let mut reads = Vec::with_capacity(READS);
    let started = Instant::now();
    for _ in 0..READS {
        let t = Instant::now();
        rt.block_on(app.get_balance()).expect("get_balance");
        reads.push(t.elapsed());
    }
    let sequential_rps = READS as f64 / started.elapsed().as_secs_f64();
    let (read_p50, read_p99) = p50_p99(reads);

    // Reads, 4 at once on the one connection.
    let mut rounds = Vec::with_capacity(CONCURRENT_ROUNDS);
    let started = Instant::now();
    for _ in 0..CONCURRENT_ROUNDS {
        let t = Instant::now();
        let (a, b, c, d) = rt.block_on(async {
            tokio::join!(
                app.get_balance(),
                app.get_balance(),
                app.get_balance(),
                app.get_balance()
            )
        });
        for balance in [a, b, c, d] {
            balance.expect("get_balance");
        }
        rounds.push(t.elapsed());
    }
    let concurrent_rps = (CONCURRENT_ROUNDS * CONCURRENCY) as f64 / started.elapsed().as_secs_f64();
    let (round_p50, round_p99) = p50_p99(rounds);

    // 2. Payments: through NWC and directly on the node, interleaved.
    let mut through_nwc = Vec::with_capacity(PAYMENTS);
    let mut direct = Vec::with_capacity(PAYMENTS);
    for i in 0..PAYMENTS {
        let invoice = shop
            .create_invoice(Some(AMOUNT_MSAT), &format!("nwc {i}"), 600)
            .expect("invoice");
        let t = Instant::now();
        let paid = rt
            .block_on(app.pay_invoice(PayInvoiceRequest::new(invoice.bolt11)))
            .expect("pay_invoice");
        through_nwc.push(t.elapsed());
        assert!(!paid.preimage.is_empty(), "a preimage");

        let invoice = shop
            .create_invoice(Some(AMOUNT_MSAT), &format!("direct {i}"), 600)
            .expect("invoice");
        let t = Instant::now();
        rt.block_on(PaymentRail::pay(
            &wallet,
            PayRequest {
                invoice: invoice.bolt11,
                amount_msat: None,
                limits: RouteLimits::default(),
                timeout: WAIT,
            },
        ))
        .expect("pay");
        direct.push(t.elapsed());
    }
    let (nwc_p50, nwc_p99) = p50_p99(through_nwc);
    let (direct_p50, direct_p99) = p50_p99(direct);

    println!();
    println!("| figure | p50 | p99 | rate |");
    println!("|---|---|---|---|");
    println!(
        "| `get_balance`, sequential ({READS}) | {read_p50:.2} ms | {read_p99:.2} ms | {sequential_rps:.0} req/s |"
    );
    println!(
        "| `get_balance`, {CONCURRENCY} at once on one connection ({CONCURRENT_ROUNDS} rounds; p50/p99 of a round) | {round_p50:.2} ms | {round_p99:.2} ms | {concurrent_rps:.0} req/s |"
    );
    println!(
        "| `pay_invoice` through NWC ({PAYMENTS}) | {nwc_p50:.1} ms | {nwc_p99:.1} ms | {:.1} payments/s at p50 |",
        1e3 / nwc_p50
    );
    println!(
        "| the same payment on the node, `PaymentRail::pay` ({PAYMENTS}) | {direct_p50:.1} ms | {direct_p99:.1} ms | {:.1} payments/s at p50 |",
        1e3 / direct_p50
    );
    println!();
    println!(
        "ratios: NWC pay / direct pay p50 {:.2}, p99 {:.2}; {CONCURRENCY} at once / sequential reads {:.2}",
        nwc_p50 / direct_p50,
        nwc_p99 / direct_p99,
        concurrent_rps / sequential_rps
    );

    rt.block_on(app.shutdown());
    rt.block_on(service.shutdown());
    relay.shutdown();
    shop.stop().expect("stop");
    wallet.stop().expect("stop");
}
