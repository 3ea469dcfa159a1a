//! `moip ln` across processes: while `moip ln run` holds a node's directory, the other commands
//! are carried out by that running node over its control socket (no password needed, the node
//! is not started twice); once it stops, they start the node themselves again. With
//! `--nwc-relay`, `run` also serves Nostr Wallet Connect, and the `nwc-*` commands manage it.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bitcoin::{Address, Network};
use common::{free_port, spawn_relay};
use moip_testenv::{wait_until, Regtest};

const PASSWORD: &str = "lightning password";
const WAIT: Duration = Duration::from_secs(90);

fn moip_ln(dir: &Path, args: &[&str], password: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moip"));
    cmd.arg("ln")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("MOIP_LN_PASSWORD")
        .env("MOIP_LOG", "warn")
        .stdin(Stdio::null());
    if password {
        cmd.env("MOIP_LN_PASSWORD", PASSWORD);
    }
    cmd.output().expect("run moip ln")
}

fn ok(dir: &Path, args: &[&str], password: bool) -> String {
    let out = moip_ln(dir, args, password);
    assert!(
        out.status.success(),
        "moip ln {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// `moip ln run` with its stdout lines delivered to a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(dir: &Path, chain: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_moip"))
            .arg("ln")
            .arg("--data-dir")
            .arg(dir)
            .args(chain)
            .arg("run")
            .env("MOIP_LN_PASSWORD", PASSWORD)
            .env("MOIP_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn moip ln run");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The rest of the first line that starts with `prefix`.
    fn line_after(&self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|e| panic!("no {prefix:?} line from moip ln run: {e}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
    }

    /// Ctrl-C, as a user would stop it; waits for the process to end.
    fn interrupt(mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        wait_until(WAIT, "moip ln run to exit", || {
            self.child.try_wait().expect("wait").map(|_| ())
        });
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn commands_go_to_the_running_node_then_start_it_themselves() {
    let env = Regtest::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    ok(&dir, &["init"], true);

    let electrum = env.electrum_url();
    let listen = format!("127.0.0.1:{}", free_port());
    let chain = ["--electrum", electrum.as_str(), "--listen", listen.as_str()];
    let running = Running::start(&dir, &chain);
    let node_id = running.line_after("node id:");
    let socket = running.line_after("control socket:");
    assert!(Path::new(&socket).exists());

    // No password and no chain options: the running node answers.
    let info = ok(&dir, &["info"], false);
    assert!(info.contains(&node_id), "{info}");
    // A second `run` on the same directory is refused.
    let second = moip_ln(&dir, &[&chain[..], &["run"]].concat(), true);
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // Fund the running node's wallet and watch the balance through the socket.
    let address: Address = ok(&dir, &["address"], false)
        .trim()
        .parse::<Address<_>>()
        .expect("address")
        .require_network(Network::Regtest)
        .expect("regtest address");
    env.mine_to(1, &address.script_pubkey());
    env.mine_burn(100);
    wait_until(WAIT, "the coinbase in the running node's balance", || {
        ok(&dir, &["balance"], false)
            .starts_with("on-chain: 5000000000 sat")
            .then_some(())
    });

    let invoice = ok(&dir, &["invoice", "5000", "--description", "cli"], false);
    assert!(invoice.trim().starts_with("lnbcrt"), "{invoice}");
    // The node's errors come back typed and the exit status says so.
    let bad = moip_ln(&dir, &["pay", "lnbcrt1garbage"], false);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("malformed invoice"), "{stderr}");

    // After Ctrl-C the socket is gone and a command starts the node from its directory.
    running.interrupt();
    assert!(!Path::new(&socket).exists());
    let info = ok(&dir, &[&chain[..], &["info"]].concat(), true);
    assert!(info.contains(&node_id), "{info}");
    assert!(info.contains("on-chain: 5000000000 sat"), "{info}");
}

#[test]
fn run_serves_nwc_and_the_commands_manage_its_connections() {
    let env = Regtest::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    ok(&dir, &["init"], true);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let relay = nostr_relay_builder::LocalRelay::new(
        nostr_relay_builder::RelayBuilder::default().addr(std::net::Ipv4Addr::LOCALHOST.into()),
    );
    rt.block_on(relay.run()).expect("relay");
    let relay_url = rt.block_on(relay.url()).to_string();

    let electrum = env.electrum_url();
    let listen = format!("127.0.0.1:{}", free_port());
    let chain = [
        "--electrum",
        electrum.as_str(),
        "--listen",
        listen.as_str(),
        "--nwc-relay",
        relay_url.as_str(),
    ];
    let running = Running::start(&dir, &chain);
    let node_id = running.line_after("node id:");
    let service = running.line_after("nwc service:");
    running.line_after("control socket:");

    let out = ok(
        &dir,
        &["nwc-connect", "till", "--budget-sat", "1000"],
        false,
    );
    let uri: nwc::prelude::NostrWalletConnectURI = out
        .lines()
        .next()
        .expect("a URI line")
        .parse()
        .expect("URI");
    assert_eq!(uri.public_key.to_string(), service);
    let app = nwc::NWC::new(uri.clone());
    let info = rt
        .block_on(app.get_info())
        .expect("get_info over the relay");
    assert_eq!(info.pubkey.as_deref(), Some(node_id.as_str()));

    let client = nwc::prelude::Keys::new(uri.secret.clone()).public_key();
    let list = ok(&dir, &["nwc-list"], false);
    assert!(
        list.contains(&client.to_string()) && list.contains("till"),
        "{list}"
    );
    assert!(list.contains("budget 1000 sat"), "{list}");
    ok(&dir, &["nwc-revoke", &client.to_string()], false);
    assert!(rt.block_on(app.get_balance()).is_err(), "revoked");
    assert!(ok(&dir, &["nwc-list"], false).contains("revoked"));

    // Without `run`, the NWC commands say where NWC lives.
    running.interrupt();
    let out = moip_ln(&dir, &[&chain[..4], &["nwc-list"]].concat(), true);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--nwc-relay"));

    // The service key is kept: a restarted node serves NWC under the same key.
    let running = Running::start(&dir, &chain);
    assert_eq!(running.line_after("nwc service:"), service);
    running.interrupt();
    relay.shutdown();
}

/// `moip socket <args>` as its own process.
fn moip_socket(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moip"))
        .arg("socket")
        .args(args)
        .env("MOIP_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run moip socket")
}

#[test]
fn beacons_from_the_running_node_serve_moip_socket_through_moip_relay() {
    let env = Regtest::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    ok(&dir, &["init"], true);

    let (mut relay, relay_url) = spawn_relay();

    let electrum = env.electrum_url();
    let listen = format!("127.0.0.1:{}", free_port());
    let chain = [
        "--electrum",
        electrum.as_str(),
        "--listen",
        listen.as_str(),
        "--moneysocket-relay",
        relay_url.as_str(),
        "--fiat-rate",
        "EUR:50000",
    ];
    let running = Running::start(&dir, &chain);
    running.line_after("moneysocket relay:");
    running.line_after("control socket:");

    let out = ok(&dir, &["beacon", "--limit-sat", "1000"], false);
    let beacon = out.lines().next().expect("a beacon line").to_string();
    assert!(beacon.starts_with("moneysocket1"), "{beacon}");

    // Each `moip socket` is one consumer session; the provider takes the next one after it.
    for _ in 0..2 {
        let out = moip_socket(&["--beacon", &beacon, "info"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("balance 0 msat"), "{stdout}");
        assert!(stdout.contains("EUR"), "{stdout}");
        assert!(stdout.contains("encryption authenticated"), "{stdout}");
    }
    // A v0-only app on the same beacon: served, without the authenticated layer.
    let out = moip_socket(&["--beacon", &beacon, "--security", "legacy", "connect"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("encryption v0"));
    let out = moip_socket(&[
        "--beacon",
        &beacon,
        "invoice",
        "5000",
        "--description",
        "tea",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("lnbcrt"));
    // Nothing to pay with: the provider's error comes back, typed.
    let invoice = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = moip_socket(&["--beacon", &beacon, "pay", &invoice]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the provider refused"), "{stderr}");
    assert!(
        stderr.contains("insufficient balance")
            || stderr.contains("spending limit")
            || stderr.contains("payment failed"),
        "{stderr}"
    );
    // A rate that is not a rate is refused before anything starts.
    let out = moip_ln(&dir, &["--fiat-rate", "EUR:lots", "info"], false);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a number"));

    let bad = moip_socket(&["--beacon", "moneysocket1garbage", "info"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("reading the beacon"));

    running.interrupt();
    let _ = relay.kill();
    let _ = relay.wait();
}
