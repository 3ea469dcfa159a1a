//! TLS (self-signed and reloaded), WebSocket and WSS, private servers with a token, per-IP
//! limits, idle timeouts, slow request lines and metrics.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::{wait_until, Env, Key, Kind, Raw, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Accepts any certificate and remembers the one it saw (the tests pin by comparison).
#[derive(Debug)]
struct Capture(std::sync::Mutex<Vec<u8>>);

impl rustls::client::danger::ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.0.lock().expect("lock") = end_entity.to_vec();
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// One request over TLS; returns the reply and the certificate the server presented.
fn tls_request(addr: std::net::SocketAddr, line: &str) -> (Value, Vec<u8>) {
    let capture = Arc::new(Capture(Default::default()));
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .dangerous()
    .with_custom_certificate_verifier(capture.clone())
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().expect("name"))
            .expect("conn");
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(format!("{line}\n").as_bytes())
        .expect("write");
    let mut reply = String::new();
    BufReader::new(&mut tls)
        .read_line(&mut reply)
        .expect("read");
    let cert = capture.0.lock().expect("lock").clone();
    (serde_json::from_str(&reply).expect("json"), cert)
}

#[test]
fn tls_serves_and_reloads_its_certificate() {
    let env = Env::new();
    env.mine(1, &Key::new(1, Kind::P2wpkh));
    let addr = env.server().addresses().tls.expect("tls");
    let (reply, first) = tls_request(
        addr,
        r#"{"jsonrpc":"2.0","id":1,"method":"blockchain.headers.subscribe"}"#,
    );
    assert_eq!(reply["result"]["height"], json!(1));
    let cert_path = env.server().tls_certificate().expect("cert").to_path_buf();
    assert_eq!(
        pem_der(&cert_path),
        first,
        "the self-signed certificate written at first start is the one served"
    );

    // Replace the files: new connections get the new certificate, without a restart.
    let key_path = cert_path.with_file_name("key.pem");
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    std::fs::write(&key_path, generated.key_pair.serialize_pem()).expect("key");
    std::fs::write(&cert_path, generated.cert.pem()).expect("cert");
    let second = wait_until(Duration::from_secs(30), "the reloaded certificate", || {
        let (_, cert) = tls_request(addr, r#"{"jsonrpc":"2.0","id":1,"method":"server.ping"}"#);
        (cert != first).then_some(cert)
    });
    assert_eq!(second, generated.cert.der().to_vec());
}

fn pem_der(path: &std::path::Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(path)
        .expect("pem")
        .to_vec()
}

#[test]
fn websocket_and_secure_websocket_carry_one_message_per_frame() {
    let env = Env::new();
    env.mine(2, &Key::new(1, Kind::P2wpkh));
    let ws = env.server().addresses().ws.expect("ws");
    let wss = env.server().addresses().wss.expect("wss");
    env.rt.block_on(async {
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{ws}"))
            .await
            .expect("ws connect");
        socket
            .send(Message::text(
                r#"{"jsonrpc":"2.0","id":1,"method":"server.version","params":["ws","1.6"]}"#,
            ))
            .await
            .expect("send");
        let reply: Value = serde_json::from_str(
            socket
                .next()
                .await
                .expect("reply")
                .expect("frame")
                .to_text()
                .expect("text"),
        )
        .expect("json");
        assert_eq!(reply["result"][1], json!("1.6"));
        socket
            .send(Message::text(
                r#"{"jsonrpc":"2.0","id":2,"method":"blockchain.headers.subscribe"}"#,
            ))
            .await
            .expect("send");
        let reply: Value = serde_json::from_str(
            socket
                .next()
                .await
                .expect("reply")
                .expect("frame")
                .to_text()
                .expect("text"),
        )
        .expect("json");
        assert_eq!(reply["result"]["height"], json!(2));
        assert!(!reply.to_string().ends_with('\n'));

        // WSS with the server's self-signed certificate.
        let capture = Arc::new(Capture(Default::default()));
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(capture)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(wss).await.expect("tcp");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect("localhost".try_into().expect("name"), tcp)
            .await
            .expect("tls");
        let (mut socket, _) =
            tokio_tungstenite::client_async(format!("wss://localhost:{}/", wss.port()), tls)
                .await
                .expect("wss");
        socket
            .send(Message::text(
                r#"{"jsonrpc":"2.0","id":1,"method":"server.ping"}"#,
            ))
            .await
            .expect("send");
        let reply: Value = serde_json::from_str(
            socket
                .next()
                .await
                .expect("reply")
                .expect("frame")
                .to_text()
                .expect("text"),
        )
        .expect("json");
        assert_eq!(reply, json!({"jsonrpc": "2.0", "result": null, "id": 1}));
    });
}

#[test]
fn private_servers_require_the_token() {
    let env = Env::with(|c| c.auth_token = Some("sesame".into()));
    env.mine(1, &Key::new(1, Kind::P2wpkh));
    let mut anonymous = Raw::connect(env.tcp());
    assert_eq!(anonymous.err("server.ping", json!([])), 1);
    assert!(anonymous.read().is_none(), "closed");
    let mut wrong = Raw::connect(env.tcp());
    assert_eq!(wrong.err("server.version", json!(["c", "1.4", "open"])), 1);
    let mut good = Raw::connect(env.tcp());
    good.ok("server.version", json!(["c", "1.4", "sesame"]));
    assert_eq!(
        good.ok("blockchain.headers.subscribe", json!([]))["height"],
        json!(1)
    );
    // As a bearer member of any request (rust-electrum-client's style).
    let mut bearer = Raw::connect(env.tcp());
    bearer.send_line(
        r#"{"jsonrpc":"2.0","id":1,"method":"server.ping","authorization":"Bearer sesame"}"#,
    );
    assert_eq!(bearer.read().expect("reply")["result"], Value::Null);
    // And as a URL parameter on WebSocket.
    let ws = env.server().addresses().ws.expect("ws");
    env.rt.block_on(async {
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{ws}/?token=sesame"))
            .await
            .expect("ws");
        socket
            .send(Message::text(
                r#"{"jsonrpc":"2.0","id":1,"method":"server.ping"}"#,
            ))
            .await
            .expect("send");
        let reply: Value = serde_json::from_str(
            socket
                .next()
                .await
                .expect("reply")
                .expect("frame")
                .to_text()
                .expect("text"),
        )
        .expect("json");
        assert_eq!(reply["result"], Value::Null);
    });
}

#[test]
fn limits_per_ip_and_idle_sessions() {
    let env = Env::with(|c| {
        c.limits.exempt.clear();
        c.limits.max_connections_per_ip = 3;
        c.limits.max_subscriptions_per_ip = 2;
        c.limits.idle_timeout = Duration::from_secs(2);
        c.limits.cost_soft_limit = 50.0;
        c.limits.cost_hard_limit = 100.0;
        c.limits.cost_decay_per_sec = 0.0;
        c.limits.max_request_delay = Duration::from_millis(20);
    });
    let key = Key::new(1, Kind::P2wpkh);
    env.mine(1, &key);
    let mut sessions: Vec<Raw> = (0..3).map(|_| Raw::connect(env.tcp())).collect();
    for s in &mut sessions {
        s.ok("server.ping", json!([]));
    }
    let mut fourth = Raw::connect(env.tcp());
    // Closed at once: the write may already meet the closed socket, or the read finds it.
    let sent = fourth.try_send_line(r#"{"jsonrpc":"2.0","id":1,"method":"server.ping"}"#);
    assert!(
        sent.is_err() || fourth.read().is_none(),
        "a fourth connection from one IP is closed at once"
    );
    drop(sessions.pop());

    // Subscriptions per IP.
    let s = &mut sessions[0];
    s.ok("server.ping", json!([])); // still within its idle timeout
    let shs: Vec<String> = (1..=3)
        .map(|i| common::scripthash(&Key::new(i, Kind::P2tr).script()))
        .collect();
    s.ok("blockchain.scripthash.subscribe", json!([shs[0]]));
    s.ok("blockchain.scripthash.subscribe", json!([shs[1]]));
    assert_eq!(
        s.err("blockchain.scripthash.subscribe", json!([shs[2]])),
        -101
    );

    // A flood past the hard cost limit is disconnected.
    let mut flood = Raw::connect(env.tcp());
    let mut closed = false;
    for _ in 0..200 {
        let reply = flood.request("blockchain.scripthash.get_balance", json!([shs[0]]));
        if reply["error"]["code"] == json!(-101) {
            closed = flood.read().is_none();
            break;
        }
    }
    assert!(closed, "the flooding session was cut off at the hard limit");

    // An idle session is closed by the server.
    let mut idle = Raw::connect(env.tcp());
    wait_until(WAIT, "the idle session to be closed", || {
        idle.read().is_none().then_some(())
    });
    let metrics = env.server().metrics();
    assert!(
        metrics.contains("electrum_cost_disconnects_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("electrum_requests_total{method=\"blockchain.scripthash.subscribe\"}"));
}

#[test]
fn a_request_line_trickled_too_slowly_is_cut_off() {
    let env = Env::with(|c| c.limits.line_timeout = Duration::from_secs(1));
    let mut quiet = Raw::connect(env.tcp());
    let mut slow = TcpStream::connect(env.tcp()).expect("connect");
    slow.write_all(br#"{"jsonrpc":"2.0","id":1,"#)
        .expect("a partial line");
    slow.set_read_timeout(Some(Duration::from_millis(250)))
        .expect("timeout");
    // Bytes keep coming, a space every quarter second, but the line never ends.
    let closed = (0..(WAIT.as_millis() / 250)).any(|_| {
        let _ = slow.write_all(b" ");
        let mut buf = [0u8; 64];
        match std::io::Read::read(&mut slow, &mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    });
    assert!(closed, "a line that never ends keeps its connection");
    // Silence is not a slow line: the quiet session, as old as the slow one, is served.
    quiet.ok("server.ping", json!([]));
}

#[test]
fn metrics_are_served_over_http() {
    let env = Env::new();
    env.mine(3, &Key::new(1, Kind::P2wpkh));
    let mut c = Raw::connect(env.tcp());
    c.ok("server.ping", json!([]));
    let addr = env.server().addresses().metrics.expect("metrics");
    let text = wait_until(WAIT, "metrics to show the tip", || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stream, &mut text).expect("read");
        text.contains("electrum_index_height 3").then_some(text)
    });
    assert!(
        text.contains("electrum_requests_total{method=\"server.ping\"} 1"),
        "{text}"
    );
}

#[test]
fn onion_host_is_advertised_for_tor_discovery() {
    let onion = "moipexampleexampleexampleexampleexampleexampleexamplead.onion";
    let env = Env::with(|c| {
        c.onion_host = Some(onion.into());
        c.public_host = Some("electrum.example.org".into());
    });
    let mut c = Raw::connect(env.tcp());
    let features = c.ok("server.features", json!([]));
    let tcp_port = env.tcp().port();
    assert_eq!(features["hosts"][onion]["tcp_port"], json!(tcp_port));
    assert_eq!(
        features["hosts"]["electrum.example.org"]["tcp_port"],
        json!(tcp_port)
    );
    assert_eq!(
        features["hosts"][onion]["ssl_port"],
        json!(env.server().addresses().tls.expect("tls").port())
    );
    let peers = c.ok("server.peers.subscribe", json!([]));
    assert_eq!(peers[0][1], json!(onion));
    assert!(peers[0][2]
        .as_array()
        .expect("features")
        .contains(&json!(format!("t{tcp_port}"))));
}
