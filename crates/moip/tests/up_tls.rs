//! `moip up` with TLS on (as it is whenever the node listens beyond loopback): every public
//! listener — Electrum SSL and WSS, the dashboard and API, the Moneysocket and Nostr relays —
//! speaks TLS with the node's certificate and gives nothing to a client speaking in clear; the
//! addresses it hands out (the Electrum URL, NWC URIs, beacons) name the TLS endpoints; and a
//! wallet reaching those meets the node's own services, which connect over plain listeners on
//! loopback or, for Moneysocket providers, from inside the relay. The session cookie is `Secure`, and a client that never starts its TLS handshake
//! is cut off as a slow HTTP client is.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{addr, closed_by, spawn_up};
use moip_moneysocket::client::ClientConfig;
use moip_moneysocket::consumer::Consumer;
use moip_moneysocket::v0::beacon::Beacon;
use moip_moneysocket::v0::location::Location;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio_tungstenite::tungstenite;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A client that trusts the node's certificate, and nothing else.
fn trusting(cert: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(cert).expect("the certificate") {
        roots.add(der.expect("a PEM certificate")).expect("a root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS connection to `at`, the certificate checked for its IP address.
fn tls(at: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(at).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let name = ServerName::from(at.ip());
    let connection = rustls::ClientConnection::new(Arc::clone(config), name).expect("a client");
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .unwrap_or_else(|e| panic!("TLS handshake with {at}: {e}"));
    }
    stream
}

/// Everything until the server closes (a missing close_notify after the answer is fine).
fn read_all(stream: &mut impl Read) -> String {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("reading: {e}"),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One HTTPS request (`Connection: close`); the whole answer.
fn https(at: SocketAddr, config: &Arc<rustls::ClientConfig>, request: &str) -> String {
    let mut stream = tls(at, config);
    stream.write_all(request.as_bytes()).expect("request");
    read_all(&mut stream)
}

/// What a listener answers `bytes` sent in clear, within a few seconds (empty when it closes).
fn in_clear(at: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(at).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    tcp.write_all(bytes).expect("write");
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    answer
}

#[test]
fn public_listeners_speak_tls_and_hand_out_tls_addresses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, lines, data) = spawn_up(
        dir.path(),
        "tls = \"on\"\n",
        &[
            "  electrum ssl: ",
            "  electrum wss: ",
            "  moneysocket relay: ",
            "  nostr relay: ",
            "  dashboard: ",
            "  tls certificate: ",
            "  nwc service: ",
        ],
    );
    let [ssl, wss, moneysocket, nostr, dashboard, certificate, nwc_key] =
        <[String; 7]>::try_from(lines).expect("seven lines");
    for url in [&ssl, &wss, &moneysocket, &nostr, &dashboard] {
        assert!(
            ["ssl://", "wss://", "https://"]
                .iter()
                .any(|s| url.starts_with(s)),
            "{url} is not a TLS address"
        );
    }
    let cert_path = certificate.split(" (SHA-256 ").next().expect("a path");
    assert_eq!(Path::new(cert_path), data.join("tls/cert.pem"));
    let client = trusting(Path::new(cert_path));
    // Connections that never start their handshake, to be cut off meanwhile.
    let silent_since = Instant::now();
    let mut silent: Vec<(String, TcpStream)> = [&ssl, &wss, &moneysocket, &nostr, &dashboard]
        .into_iter()
        .map(|url| (url.clone(), TcpStream::connect(addr(url)).expect("connect")))
        .collect();
    let token = std::fs::read_to_string(data.join("api.token")).expect("the operator token");
    let token = token.trim();

    // Electrum over SSL answers; the same port gives nothing to a client in clear.
    let version = "{\"id\":1,\"method\":\"server.version\",\"params\":[\"t\",\"1.4\"]}\n";
    let mut electrum = tls(addr(&ssl), &client);
    electrum.write_all(version.as_bytes()).expect("request");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut electrum), &mut line)
        .expect("an answer");
    let answer: Value = serde_json::from_str(&line).expect("JSON");
    assert!(answer["result"].is_array(), "{answer}");
    let clear = in_clear(addr(&ssl), version.as_bytes());
    assert!(!clear.starts_with(b"{"), "SSL port answered in clear");

    // Electrum over WSS.
    let (mut socket, _) =
        tungstenite::client(wss.as_str(), tls(addr(&wss), &client)).expect("a WebSocket over TLS");
    socket
        .send(tungstenite::Message::text(version.trim()))
        .expect("request");
    let answer: Value =
        serde_json::from_str(socket.read().expect("answer").to_text().expect("text"))
            .expect("JSON");
    assert!(answer["result"].is_array(), "{answer}");

    // The dashboard and API over HTTPS; nothing in clear.
    let api = addr(&dashboard);
    let get = "GET /api/node HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = https(api, &client, get);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body: Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).expect("a body")).expect("JSON");
    assert_eq!(
        body["electrum_url"].as_str(),
        Some(ssl.as_str()),
        "wallets are given the SSL port"
    );
    let clear = in_clear(api, get.as_bytes());
    assert!(
        !clear.starts_with(b"HTTP/"),
        "the dashboard answered in clear"
    );

    // The operator's session cookie never travels in clear.
    let form = format!("token={token}");
    let login = https(
        api,
        &client,
        &format!(
            "POST /login/operator HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    );
    let cookie = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie in {login}"));
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Pairing hands out the TLS endpoints.
    let post = |path: &str, body: &str| -> Value {
        let answer = https(
            api,
            &client,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).expect("a body")).expect("JSON")
    };
    let nwc_uri = post("/api/pairing/nwc", r#"{"name":"phone"}"#)["uri"]
        .as_str()
        .expect("an NWC URI")
        .to_owned();
    let encoded = nostr.replace(':', "%3A").replace('/', "%2F");
    assert!(
        nwc_uri.contains(&format!("relay={encoded}"))
            || nwc_uri.contains(&format!("relay={nostr}")),
        "{nwc_uri} does not name {nostr}"
    );
    // More beacons than the relay lets one address hold connections (64): the node's
    // providers sit inside the relay, so the last one is served as well as the first.
    let beacons: Vec<String> = (0..70)
        .map(|_| {
            post("/api/pairing/beacon", "{}")["uri"]
                .as_str()
                .expect("a beacon")
                .to_owned()
        })
        .collect();
    let beacon = beacons.last().expect("a beacon").clone();
    let beacon = Beacon::from_bech32(&beacon).expect("a beacon");
    let Some(Location::WebSocket(location)) = beacon.locations.first() else {
        panic!("the beacon has no WebSocket location");
    };
    assert!(location.use_tls, "the beacon names wss://");
    assert_eq!(location.port.get(), addr(&moneysocket).port());

    // A wallet over the public wss:// relay meets the node's provider, inside the node.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let consumer_config = ClientConfig {
        tls: Some(Arc::clone(&client)),
        ..ClientConfig::default()
    };
    let url = format!("wss://{}:{}", location.host, location.port);
    let consumer = runtime
        .block_on(Consumer::connect(
            &url,
            beacon.shared_seed,
            &consumer_config,
            Duration::from_secs(30),
        ))
        .expect("a consumer pairs with the node over wss://");
    assert!(
        consumer.provider_info().payee,
        "the node's provider makes invoices"
    );
    runtime
        .block_on(consumer.ping())
        .expect("the provider answers over the relay");
    drop(consumer);
    let clear = in_clear(
        addr(&moneysocket),
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert!(!clear.starts_with(b"HTTP/"), "the relay upgraded in clear");

    // The Nostr relay over wss:// holds what the NWC service published over loopback.
    let (mut socket, _) = tungstenite::client(nostr.as_str(), tls(addr(&nostr), &client))
        .expect("a WebSocket over TLS");
    socket
        .send(tungstenite::Message::text(format!(
            r#"["REQ","info",{{"kinds":[13194],"authors":["{nwc_key}"]}}]"#
        )))
        .expect("a subscription");
    let first = socket.read().expect("an answer");
    let first: Value = serde_json::from_str(first.to_text().expect("text")).expect("JSON");
    assert_eq!(first[0], "EVENT", "{first}");
    assert_eq!(first[2]["pubkey"], nwc_key.as_str());
    let clear = in_clear(
        addr(&nostr),
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert!(
        !clear.starts_with(b"HTTP/"),
        "the Nostr relay upgraded in clear"
    );

    // Each listener's handshake limit is at most 20 s (Electrum's).
    let deadline = silent_since + Duration::from_secs(45);
    for (url, stream) in &mut silent {
        assert!(
            closed_by(stream, deadline),
            "{url} kept a connection that never started TLS"
        );
    }

    node.stop();
}
