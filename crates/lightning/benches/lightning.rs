//! Lightning baseline figures (issue 5), on the embedded regtest chain through moip's Electrum
//! server, with three real ldk-nodes in this process:
//!
//! - payments per second A→B over one channel, and A→C routed through B (BOLT11, each payment
//!   created by the recipient and awaited by the payer before the next: latency-bound, the way
//!   a wallet pays);
//! - blocks and seconds from a channel's opening to its first payment (announced channel, each
//!   block mined only after the nodes synced the previous one);
//! - resident memory per node: the process's VmRSS growth while three nodes start and run,
//!   divided by three.
//!
//! Run: `cargo bench -p moip-lightning` (release). Prints one line per figure.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use moip_lightning::{
    LightningConfig, LightningNode, Network, PeerAddress, RouteLimits, SeedSource,
};
use moip_testenv::Regtest;

const WAIT: Duration = Duration::from_secs(120);
const PAYMENTS_DIRECT: u32 = 100;
const PAYMENTS_ROUTED: u32 = 50;

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn start(env: &Regtest, root: &std::path::Path, name: &str) -> LightningNode {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mnemonic = moip_lightning::ldk_node::generate_entropy_mnemonic(None);
    let mut config = LightningConfig::new(
        Network::Regtest,
        root.join(name),
        env.electrum_url(),
        SeedSource::Mnemonic(mnemonic),
    );
    config.listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))];
    config.alias = Some(name.into());
    config.sync_interval = Some(moip_lightning::MIN_SYNC_INTERVAL);
    LightningNode::start(config).expect("start")
}

fn peer(node: &LightningNode) -> PeerAddress {
    node.peer_addresses().into_iter().next().expect("listening")
}

fn sync(env: &Regtest, nodes: &[&LightningNode]) {
    let tip = env.height();
    for n in nodes {
        n.wait_for(WAIT, "sync", |n| {
            n.sync().ok()?;
            (n.best_block_height() >= tip).then_some(())
        })
        .expect("synced");
    }
}

fn open(env: &Regtest, from: &LightningNode, to: &LightningNode, sats: u64) -> u128 {
    let id = from
        .open_channel(&peer(to), sats, None, true)
        .expect("open");
    from.wait_for(WAIT, "funding in mempool", |n| {
        let txid = n
            .channels()
            .into_iter()
            .find(|c| c.user_channel_id == id)?
            .funding_txid?;
        env.node.mempool_txids().contains(&txid).then_some(())
    })
    .expect("funding");
    id
}

fn pay_many(from: &LightningNode, to: &LightningNode, n: u32, amount_msat: u64) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        let invoice = to
            .create_invoice(Some(amount_msat), &format!("bench {i}"), 600)
            .expect("invoice");
        from.pay(&invoice.bolt11, None, RouteLimits::max_fee(100_000), WAIT)
            .expect("payment");
    }
    f64::from(n) / started.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, so keep it one pass.
    let env = Regtest::new();
    let root = tempfile::tempdir().expect("tempdir");

    let rss_before = vm_rss_kib();
    let a = start(&env, root.path(), "a");
    let b = start(&env, root.path(), "b");
    let c = start(&env, root.path(), "c");
    let all = [&a, &b, &c];

    for n in all {
        let address = n.new_address().expect("address");
        env.mine_to(1, &address.script_pubkey());
    }
    env.mine_burn(100);
    sync(&env, &all);
    for n in all {
        n.wait_for(WAIT, "funds", |n| {
            n.sync().ok()?;
            (n.balance().onchain_spendable_sats > 0).then_some(())
        })
        .expect("funded");
    }

    // Channel open → first payment: blocks mined one at a time until the channel is usable.
    let opened = Instant::now();
    open(&env, &a, &b, 2_000_000);
    let _bc = open(&env, &b, &c, 2_000_000);
    let mut blocks = 0u32;
    while !(a.channels().iter().any(|ch| ch.is_usable)
        && b.channels().iter().filter(|ch| ch.is_usable).count() == 2)
    {
        env.mine_burn(1);
        blocks += 1;
        sync(&env, &all);
        // Give the peers one exchange of channel_ready after each block.
        let _ = a.wait_for(Duration::from_secs(2), "usable", |n| {
            n.channels().iter().any(|ch| ch.is_usable).then_some(())
        });
        assert!(blocks < 20, "channels never became usable");
    }
    let invoice = b
        .create_invoice(Some(1_000_000), "first", 600)
        .expect("invoice");
    a.pay(&invoice.bolt11, None, RouteLimits::default(), WAIT)
        .expect("first payment");
    let open_to_pay = opened.elapsed();
    println!(
        "channel open to first payment: {blocks} blocks, {:.2} s",
        open_to_pay.as_secs_f64()
    );

    let direct = pay_many(&a, &b, PAYMENTS_DIRECT, 10_000);
    println!("payments A->B, one channel: {direct:.1} payments/s ({PAYMENTS_DIRECT} sequential)");

    a.wait_for(WAIT, "gossip of B-C", |n| {
        (n.graph_channel_count() >= 2).then_some(())
    })
    .expect("gossip");
    let routed = pay_many(&a, &c, PAYMENTS_ROUTED, 10_000);
    println!("payments A->C routed via B: {routed:.1} payments/s ({PAYMENTS_ROUTED} sequential)");

    let rss_after = vm_rss_kib();
    println!(
        "resident memory per node: {:.1} MiB (VmRSS {} -> {} KiB for 3 nodes, after the payments)",
        (rss_after.saturating_sub(rss_before)) as f64 / 3.0 / 1024.0,
        rss_before,
        rss_after
    );
    for n in all {
        n.stop().expect("stop");
    }
}
