//! `moip relay` as its own process: it prints the address it bound, pairs two holders of a
//! shared seed, forwards their encrypted messages, and stops on Ctrl-C; beyond loopback it
//! wants TLS (as `moip node` wants its RPC kept home).

mod common;

use std::process::Command;
use std::time::Duration;

use common::spawn_relay;

use moip_moneysocket::client::{connect, ClientConfig};
use moip_moneysocket::v0::message::{Message, RequestKind};
use moip_moneysocket::SharedSeed;
use moip_testenv::wait_until;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn the_relay_binary_pairs_and_forwards() {
    let (mut child, url) = spawn_relay();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let seed = SharedSeed::from_bytes([7; 16]);
    let config = ClientConfig::default();
    let message = Message::request(RequestKind::Ping);
    let received = rt.block_on(async {
        tokio::time::timeout(WAIT, async {
            let (a, b) = tokio::join!(connect(&url, seed, &config), connect(&url, seed, &config));
            let (mut a, mut b) = (a.expect("first side"), b.expect("second side"));
            a.send(&message).await.expect("send");
            b.recv().await.expect("recv")
        })
        .await
        .expect("paired and forwarded in time")
    });
    assert_eq!(received, message);

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_until(WAIT, "moip relay to exit", || {
        child.try_wait().expect("wait").map(|_| ())
    });
}

/// Listeners that cannot speak TLS are refused beyond loopback unless the operator says
/// otherwise; the refusal comes before anything is bound, and says what to do.
#[test]
fn plain_listeners_beyond_loopback_are_refused_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().display().to_string();
    for (args, hint) in [
        (vec!["relay", "--bind", "0.0.0.0:0"], "--tls-cert"),
        (
            vec!["node", "--data-dir", &data, "--rpc-bind", "0.0.0.0"],
            "--allow-plain",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_moip"))
            .args(&args)
            .output()
            .expect("run moip");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(stderr.contains(hint), "{args:?}: {stderr}");
    }
}
