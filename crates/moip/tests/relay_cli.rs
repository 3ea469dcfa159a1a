//! `moip relay` as its own process: it prints the address it bound, pairs two holders of a
//! shared seed, forwards their encrypted messages, and stops on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use moip_moneysocket::client::{connect, ClientConfig};
use moip_moneysocket::v0::message::{Message, RequestKind};
use moip_moneysocket::SharedSeed;
use moip_testenv::wait_until;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn the_relay_binary_pairs_and_forwards() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_moip"))
        .args(["relay", "--bind", "127.0.0.1:0", "--metrics-secs", "0"])
        .env("MOIP_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn moip relay");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let url = line
        .trim()
        .strip_prefix("relay listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
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
