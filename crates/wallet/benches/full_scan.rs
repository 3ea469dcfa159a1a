//! Full scan of a wallet with 1,000 used addresses and 10,000 transactions, through moip's
//! Electrum server and through ElectrumX 2.0 over the same chain, in the same run.
//!
//! `cargo bench -p moip-wallet --bench full_scan` (or `make bench-wallet`). The chain is built
//! once into `target/bench-data/wallet-scan` (a marker file says it is complete): 50 coinbases
//! fan out to 10,000 coins, and each coin pays one of the wallet's first 1,000 BIP84 addresses
//! (ten payments per address) with change back to the faucet.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::{Amount, Network, Sequence, TxOut};
use moip_chain::rpc::{RpcConfig, RpcServer};
use moip_chain::{ChainSource, EmbeddedNode, NodeConfig};
use moip_electrum::{ElectrumServer, ServerConfig};
use moip_testenv::electrumx::ElectrumX;
use moip_testenv::{out, sign, Key, Kind};
use moip_wallet::{KdfParams, Keys, MoipWallet, Server, Trust, WalletKind};

const ADDRESSES: u32 = 1_000;
const PAYMENTS_PER_ADDRESS: u32 = 10;
const FANOUT: u32 = 200;
const RUNS: usize = 3;

fn mnemonic() -> bip39::Mnemonic {
    bip39::Mnemonic::from_entropy(&[0x5c; 16]).expect("entropy")
}

fn new_wallet(dir: &Path, url: &str) -> MoipWallet {
    let _ = std::fs::remove_dir_all(dir);
    MoipWallet::create(
        dir,
        Network::Regtest,
        WalletKind::Bip84,
        Keys::Seed {
            mnemonic: mnemonic(),
            passphrase: String::new(),
            password: "bench".into(),
        },
        Server::new(url, Trust::MyNode),
        KdfParams::INSECURE_FAST,
    )
    .expect("wallet")
}

fn build_chain(dir: &Path) -> EmbeddedNode {
    let mut config = NodeConfig::new(dir.join("chain"));
    config.background_checkpoints = false;
    let marker = dir.join("COMPLETE");
    if marker.exists() {
        eprintln!("reusing the chain in {}", dir.display());
        return EmbeddedNode::open(config).expect("node");
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("dir");
    let node = EmbeddedNode::open(config).expect("node");
    let started = Instant::now();
    // The wallet's addresses, from a throwaway copy of it.
    let scratch = dir.join("scratch-wallet");
    let mut wallet = new_wallet(&scratch, "tcp://127.0.0.1:1");
    let addresses: Vec<_> = wallet
        .reveal(ADDRESSES)
        .expect("addresses")
        .into_iter()
        .map(|a| a.address.script_pubkey())
        .collect();
    drop(wallet);
    let _ = std::fs::remove_dir_all(&scratch);

    let faucet = Key::new(0x77, Kind::P2wpkh);
    let coinbases = ADDRESSES * PAYMENTS_PER_ADDRESS / FANOUT;
    let first = node.tip().expect("tip").height + 1;
    node.generate(coinbases, &faucet.script()).expect("mine");
    node.generate(100, &Key::new(0x78, Kind::P2wpkh).script())
        .expect("mine");
    let mut coins = Vec::new();
    for h in first..first + coinbases {
        let hash = node.block_hash(h).expect("q").expect("h");
        let cb = node.block(&hash).expect("q").expect("b").txdata[0].clone();
        let (op, prev) = out(&cb, 0);
        let each = (prev.value - Amount::from_sat(20_000)) / FANOUT as u64;
        let tx = sign(
            &[(op, prev, &faucet)],
            (0..FANOUT)
                .map(|_| TxOut {
                    value: each,
                    script_pubkey: faucet.script(),
                })
                .collect(),
            Sequence::MAX,
        );
        node.broadcast(&tx).expect("fan out");
        coins.extend((0..FANOUT).map(|v| out(&tx, v)));
    }
    node.generate(1, &faucet.script()).expect("mine");
    let mut sent = 0u32;
    for chunk in coins.chunks(2_000) {
        for (op, prev) in chunk {
            let pay = Amount::from_sat(50_000 + sent as u64);
            let to = addresses[(sent % ADDRESSES) as usize].clone();
            let change = prev.value - pay - Amount::from_sat(500);
            let tx = sign(
                &[(*op, prev.clone(), &faucet)],
                vec![
                    TxOut {
                        value: pay,
                        script_pubkey: to,
                    },
                    TxOut {
                        value: change,
                        script_pubkey: faucet.script(),
                    },
                ],
                Sequence::MAX,
            );
            node.broadcast(&tx).expect("payment");
            sent += 1;
        }
        node.generate(1, &faucet.script()).expect("mine");
    }
    node.checkpoint().expect("checkpoint");
    std::fs::write(&marker, format!("{sent}\n")).expect("marker");
    eprintln!(
        "chain with {sent} wallet payments built in {:?}",
        started.elapsed()
    );
    node
}

/// Full scans of a fresh wallet against `url`; the median of `RUNS`.
fn scan(base: &Path, name: &str, url: &str, tip: u32) -> Duration {
    let mut times = Vec::new();
    for run in 0..RUNS {
        let dir = base.join(format!("scan-{name}-{run}"));
        let mut wallet = new_wallet(&dir, url);
        let t = Instant::now();
        let report = wallet.sync().expect("full scan");
        times.push(t.elapsed());
        assert_eq!(report.tip, tip, "{name}: scanned to the tip");
        let found = wallet.history().len() as u32;
        assert_eq!(
            found,
            ADDRESSES * PAYMENTS_PER_ADDRESS,
            "{name}: every payment found"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    times.sort();
    times[RUNS / 2]
}

fn main() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let base = workspace.join("target/bench-data/wallet-scan");
    let node = build_chain(&base);
    let tip = node.tip().expect("tip").height;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let rpc = rt
        .block_on(RpcServer::start(node.clone(), RpcConfig::local(&node, 0)))
        .expect("rpc");
    let (user, password) = rpc.credentials();
    let daemon = rpc
        .url()
        .replace("http://", &format!("http://{user}:{password}@"))
        + "/";
    let ex_dir = base.join("run-electrumx");
    let _ = std::fs::remove_dir_all(&ex_dir);
    std::fs::create_dir_all(&ex_dir).expect("dir");
    let ex = ElectrumX::spawn(&daemon, &ex_dir).expect("ElectrumX");
    // Wait for ElectrumX to index the tip: a wallet scan succeeds only then.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let ready = electrum_client::Client::new(&ex.url())
            .ok()
            .and_then(|c| {
                use electrum_client::{ElectrumApi, Param};
                let hello = [Param::String("bench".into()), Param::String("1.4".into())];
                c.raw_call("server.version", hello).ok()?;
                c.block_headers_subscribe().ok()
            })
            .is_some_and(|h| h.height as u32 == tip);
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "ElectrumX never reached the tip");
        std::thread::sleep(Duration::from_millis(200));
    }

    let ours_dir = base.join("run-moip");
    let _ = std::fs::remove_dir_all(&ours_dir);
    let mut config = ServerConfig::ephemeral(&ours_dir);
    (config.tls, config.ws, config.wss, config.metrics) = (None, None, None, None);
    let source: Arc<dyn ChainSource> = Arc::new(node.clone());
    let ours = rt
        .block_on(ElectrumServer::start(source, config))
        .expect("moip server");
    let ours_url = format!("tcp://{}", ours.addresses().tcp.expect("tcp"));
    while ours.indexed_height() != Some(tip) {
        std::thread::sleep(Duration::from_millis(50));
    }

    let ours_time = scan(&base, "moip", &ours_url, tip);
    eprintln!("moip: {:.2} s", ours_time.as_secs_f64());
    // ElectrumX 2.0's padded TCP transport can stop flushing replies to pipelined requests
    // (electrum-client sends a batch as separate lines): give it a deadline, report a stall.
    let (done, result) = std::sync::mpsc::channel();
    {
        let (base, url) = (base.clone(), ex.url());
        std::thread::spawn(move || {
            let _ = done.send(scan(&base, "electrumx", &url, tip));
        });
    }
    let ex_cell = match result.recv_timeout(Duration::from_secs(300)) {
        Ok(t) => format!(
            "{:.2} s | {:.1}×",
            t.as_secs_f64(),
            t.as_secs_f64() / ours_time.as_secs_f64()
        ),
        Err(_) => "stalled: no reply in 300 s | —".to_owned(),
    };
    println!(
        "| full scan, {ADDRESSES} used addresses, {} transactions (median of {RUNS}) | {:.2} s | {ex_cell} |",
        ADDRESSES * PAYMENTS_PER_ADDRESS,
        ours_time.as_secs_f64(),
    );
    drop(ex);
    rt.block_on(ours.shutdown());
    // A stalled scan thread may still be blocked on its socket.
    std::process::exit(0);
}
