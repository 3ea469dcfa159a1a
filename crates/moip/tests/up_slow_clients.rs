//! Slow clients against `moip up`'s listeners (slowloris): a connection that starts a request
//! and never finishes its headers is closed by the node's RPC, the dashboard, the Moneysocket
//! relay, Electrum's WebSocket listener and the Nostr relay within their header or handshake
//! timeouts, and honest clients are served meanwhile. Fifty slow connections are held against
//! each.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{addr, closed_by, spawn_up};

const SLOW_PER_LISTENER: usize = 50;

#[test]
fn slow_clients_are_cut_off_and_honest_ones_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, lines, _) = spawn_up(
        dir.path(),
        "",
        &[
            "  electrum ws: ",
            "  moneysocket relay: ",
            "  dashboard: ",
            "  nostr relay: ",
        ],
    );
    let listeners = [
        ("rpc", addr(&node.url)),
        ("electrum ws", addr(&lines[0])),
        ("moneysocket", addr(&lines[1])),
        ("dashboard", addr(&lines[2])),
        ("nostr relay", addr(&lines[3])),
    ];
    let partial = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let mut slow: Vec<(&str, TcpStream)> = Vec::new();
    for (name, at) in listeners {
        for _ in 0..SLOW_PER_LISTENER {
            let mut stream = TcpStream::connect(at).expect("connect");
            stream.write_all(partial).expect("a partial request");
            slow.push((name, stream));
        }
    }

    // Honest clients are served while the slow ones hang on.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let base = lines[2].trim_end_matches('/');
    let status = agent
        .get(format!("{base}/api/community"))
        .call()
        .expect("the dashboard serves honest clients")
        .status();
    assert_eq!(status.as_u16(), 200);
    assert!(node.height() > 0, "the RPC serves honest clients");
    let relay = lines[3].clone();
    let (mut socket, _) = tokio_tungstenite::tungstenite::connect(relay.as_str())
        .expect("the Nostr relay serves honest clients");
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            r#"["REQ","honest",{"limit":1}]"#,
        ))
        .expect("a subscription");
    // At most the one event asked for, then the end of stored events.
    let eose = (0..2).any(|_| {
        let reply = socket.read().expect("an answer");
        reply
            .to_text()
            .is_ok_and(|t| t.starts_with(r#"["EOSE","honest""#))
    });
    assert!(eose, "the relay answered the subscription");

    // Every slow connection is closed by the server.
    let deadline = Instant::now() + Duration::from_secs(40);
    for (name, stream) in &mut slow {
        assert!(
            closed_by(stream, deadline),
            "{name} kept a connection whose headers never came"
        );
    }
}
