//! Moneysocket round trips through the relay (issue 6), on the embedded regtest chain with two
//! real ldk-nodes: the provider's wallet and a shop.
//!
//! - **pay**: the consumer sends REQUEST_PAY for a shop invoice and waits for NOTIFY_PREIMAGE
//!   (consumer → relay → provider → Lightning → provider → relay → consumer), on the
//!   authenticated layer (moip peers) and, interleaved, on plain v0 (a legacy consumer on a
//!   second beacon);
//! - **receive**: the consumer sends REQUEST_INVOICE, the shop pays the invoice, and the
//!   consumer waits for the NOTIFY_PREIMAGE of its invoice;
//! - **peer**: the same payment made directly on the wallet node, no Moneysocket at all — the
//!   ratio says what the protocol and the relay add.
//!
//! Run: `cargo bench -p moip --bench moneysocket` (release). Prints p50/p99 per figure.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moip::wiring::RailProvider;
use moip_lightning::testing::{fund, open_usable, start_node, WAIT};
use moip_lightning::RouteLimits;
use moip_moneysocket::client::{ClientConfig, Security};
use moip_moneysocket::consumer::Consumer;
use moip_moneysocket::provider::{self, Account, Denomination, SpendingLimit};
use moip_moneysocket::relay::{Relay, RelayConfig};
use moip_moneysocket::v0::message::NotificationKind;
use moip_moneysocket::SharedSeed;
use moip_testenv::Regtest;

const ROUNDS: usize = 200;
const AMOUNT_MSAT: u64 = 10_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "{name}: {} rounds, p50 {:.1} ms, p99 {:.1} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    p50
}

fn main() {
    let env = Regtest::new();
    let root = tempfile::tempdir().expect("tempdir");
    let wallet = start_node(&env, root.path(), "wallet");
    let shop = start_node(&env, root.path(), "shop");
    fund(&env, &wallet, &[&shop]);
    open_usable(&env, &wallet, &shop, 2_000_000, Some(800_000_000));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let guard = rt.enter();
    let relay = rt
        .block_on(Relay::bind(RelayConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            rate_limit: None,
            ..RelayConfig::default()
        }))
        .expect("relay");
    let url = format!("ws://{}", relay.local_addr());
    let account = Account::new(
        RailProvider::new(Arc::new(wallet.clone())),
        Denomination::Bitcoin,
    );
    let (seed, legacy_seed) = (
        SharedSeed::from_bytes([9; 16]),
        SharedSeed::from_bytes([10; 16]),
    );
    let config = ClientConfig::default();
    for seed in [seed, legacy_seed] {
        let (url, account, config) = (url.clone(), Arc::clone(&account), config.clone());
        rt.spawn(async move {
            provider::serve(&url, seed, account, SpendingLimit::default(), &config).await
        });
    }
    let consumer = rt
        .block_on(Consumer::connect(&url, seed, &config, WAIT))
        .expect("consumer");
    let legacy_config = ClientConfig {
        security: Security::Legacy,
        ..ClientConfig::default()
    };
    let legacy = rt
        .block_on(Consumer::connect(&url, legacy_seed, &legacy_config, WAIT))
        .expect("legacy consumer");
    assert!(consumer.is_secure() && !legacy.is_secure());
    rt.block_on(consumer.ping()).expect("ping");

    // pay: REQUEST_PAY → NOTIFY_PREIMAGE, the two layers interleaved so drift hits both.
    let mut pay = Vec::with_capacity(ROUNDS);
    let mut pay_v0 = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        for (who, samples) in [(&consumer, &mut pay), (&legacy, &mut pay_v0)] {
            let invoice = shop
                .create_invoice(Some(AMOUNT_MSAT), "bench", 3600)
                .expect("invoice");
            let started = Instant::now();
            rt.block_on(who.pay(&invoice.bolt11, None)).expect("pay");
            samples.push(started.elapsed());
        }
    }

    // receive: REQUEST_INVOICE, the shop pays, NOTIFY_PREIMAGE of our invoice.
    let mut events = consumer.events();
    let mut receive = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let invoice = rt
            .block_on(consumer.invoice(NonZeroU64::new(AMOUNT_MSAT).expect("non-zero"), None))
            .expect("invoice");
        shop.pay(&invoice, None, RouteLimits::default(), WAIT)
            .expect("shop pays");
        rt.block_on(async {
            tokio::time::timeout(WAIT, async {
                loop {
                    if let Ok(n) = events.recv().await {
                        if matches!(n.kind, NotificationKind::Preimage { .. }) {
                            return;
                        }
                    }
                }
            })
            .await
            .expect("preimage")
        });
        receive.push(started.elapsed());
    }

    // peer: the same payment straight on the node.
    let mut direct = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let invoice = shop
            .create_invoice(Some(AMOUNT_MSAT), "bench", 3600)
            .expect("invoice");
        let started = Instant::now();
        wallet
            .pay(&invoice.bolt11, None, RouteLimits::default(), WAIT)
            .expect("direct pay");
        direct.push(started.elapsed());
    }

    let pay50 = report(
        "moneysocket pay, authenticated layer (REQUEST_PAY → NOTIFY_PREIMAGE)",
        pay,
    );
    let v0_50 = report("moneysocket pay, plain v0", pay_v0);
    report(
        "moneysocket receive (REQUEST_INVOICE → paid → NOTIFY_PREIMAGE)",
        receive,
    );
    let direct50 = report("peer: the same payment on the node directly", direct);
    println!(
        "ratio pay p50 / direct p50: {:.2}",
        pay50.as_secs_f64() / direct50.as_secs_f64()
    );
    println!(
        "ratio authenticated p50 / v0 p50: {:.2}",
        pay50.as_secs_f64() / v0_50.as_secs_f64()
    );
    drop(guard);
    rt.block_on(relay.shutdown());
    wallet.stop().expect("stop");
    shop.stop().expect("stop");
}
