//! The relay end to end: a real relay on 127.0.0.1 port 0, real WebSocket clients.
//!
//! Every wait is on an event (a frame, a close, a counter reaching a value) bounded by
//! [`WAIT`]; nothing sleeps and hopes, and no assertion is about timing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use moip_moneysocket::client::{connect, ClientConfig, ClientError, OutgoingSocket};
use moip_moneysocket::relay::{
    server_tls_config_from_pem, RateLimit, Relay, RelayConfig, RelayHandle, RelayMetrics,
};
use moip_moneysocket::v0::frame::{decode_frame, encode_clear_frame, encode_frame, FrameError};
use moip_moneysocket::v0::message::{
    Body, Message, MessageError, Notification, NotificationKind, Request, RequestKind,
};
use moip_moneysocket::v0::seed::{derive_aes_key, derive_rendezvous_id};
use moip_moneysocket::SharedSeed;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Upper bound on any single wait; generous so a loaded CI machine never flakes.
const WAIT: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls the relay's counters until `ready` holds, with backoff, bounded by [`WAIT`].
async fn wait_metrics(relay: &RelayHandle, what: &str, ready: impl Fn(&RelayMetrics) -> bool) {
    within(what, async {
        let mut delay = Duration::from_millis(2);
        loop {
            if ready(&relay.metrics()) {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    })
    .await
}

fn test_config() -> RelayConfig {
    RelayConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        ..RelayConfig::default()
    }
}

async fn start(config: RelayConfig) -> (RelayHandle, String) {
    let relay = Relay::bind(config).await.expect("bind relay");
    let url = format!("ws://{}", relay.local_addr());
    (relay, url)
}

fn seed(n: u8) -> SharedSeed {
    SharedSeed::from_bytes([n; 16])
}

/// Two sockets on one seed, rendezvoused.
async fn pair(url: &str, seed: SharedSeed) -> (OutgoingSocket, OutgoingSocket) {
    let config = ClientConfig::default();
    let (a, b) = within(
        "rendezvous",
        futures_util::future::join(connect(url, seed, &config), connect(url, seed, &config)),
    )
    .await;
    (a.expect("first side"), b.expect("second side"))
}

fn ping() -> Message {
    Message::request(RequestKind::Ping)
}

fn assert_closed(result: Result<impl std::fmt::Debug, ClientError>, want: u16) -> String {
    match result {
        Err(ClientError::Closed {
            code: Some(code),
            reason,
        }) if code == want => reason,
        other => panic!("expected close code {want}, got {other:?}"),
    }
}

/// Reads until the relay reports the other side gone, skipping forwarded messages.
async fn until_rendezvous_end(socket: &mut OutgoingSocket) {
    within("NOTIFY_RENDEZVOUS_END", async {
        loop {
            match socket.recv().await {
                Ok(_) => continue,
                Err(ClientError::RendezvousEnded) => return,
                Err(e) => panic!("expected NOTIFY_RENDEZVOUS_END, got {e}"),
            }
        }
    })
    .await
}

fn notification(frame: &[u8]) -> Notification {
    match decode_frame(frame, None)
        .expect("clear relay notification")
        .body
    {
        Body::Notification(n) => n,
        Body::Request(r) => panic!("expected a notification, got {r:?}"),
    }
}

#[tokio::test]
async fn two_peers_pair_and_exchange_encrypted_frames_verbatim() {
    let (relay, url) = start(test_config()).await;
    let seed = seed(1);
    let rid = derive_rendezvous_id(&seed);
    let config = ClientConfig::default();

    // Drive the rendezvous by hand to check what the relay answers and to whom.
    let mut a = within("connect", OutgoingSocket::connect(&url, seed, &config))
        .await
        .expect("connect a");
    let request_a = Message::request(RequestKind::Rendezvous { rendezvous_id: rid });
    let uuid_a = request_uuid(&request_a);
    a.send(&request_a).await.expect("send");
    let not_ready = notification(&within("NOT_READY", a.recv_frame()).await.expect("frame"));
    assert_eq!(
        not_ready.kind,
        NotificationKind::RendezvousNotReady { rendezvous_id: rid }
    );
    assert_eq!(not_ready.request_reference_uuid, Some(uuid_a));

    let mut b = within("connect", OutgoingSocket::connect(&url, seed, &config))
        .await
        .expect("connect b");
    let request_b = Message::request(RequestKind::Rendezvous { rendezvous_id: rid });
    b.send(&request_b).await.expect("send");
    // Each side is told with a reference to its own request.
    for (socket, uuid) in [(&mut a, uuid_a), (&mut b, request_uuid(&request_b))] {
        let ready = notification(
            &within("NOTIFY_RENDEZVOUS", socket.recv_frame())
                .await
                .expect("frame"),
        );
        assert_eq!(
            ready.kind,
            NotificationKind::Rendezvous { rendezvous_id: rid }
        );
        assert_eq!(ready.request_reference_uuid, Some(uuid));
    }

    // Encrypted frames cross both ways byte for byte, and decrypt at the other end only.
    let key = derive_aes_key(&seed);
    cross_verbatim(&mut a, &mut b, &key).await;
    cross_verbatim(&mut b, &mut a, &key).await;
    // And through the message API.
    let message = Message::request(RequestKind::Invoice {
        msats: 1000.try_into().expect("non-zero"),
        description: None,
    });
    a.send(&message).await.expect("send");
    assert_eq!(within("message", b.recv()).await.expect("recv"), message);

    // The forwarder counts after handing a frame over, so the count may trail the delivery.
    wait_metrics(&relay, "3 frames forwarded", |m| m.frames_forwarded == 3).await;
    let m = relay.metrics();
    assert_eq!(m.pairs_total, 1);
    assert_eq!(m.pairs_active, 1);
    assert!(m.bytes_forwarded > 0);
    relay.shutdown().await;
}

async fn cross_verbatim(
    from: &mut OutgoingSocket,
    to: &mut OutgoingSocket,
    key: &moip_moneysocket::AesKey,
) {
    let message = ping();
    let frame = encode_frame(&message, key).expect("encode");
    from.send_frame(frame.clone()).await.expect("send");
    let received = within("forwarded frame", to.recv_frame())
        .await
        .expect("frame");
    assert_eq!(&received[..], &frame[..]);
    assert_eq!(decode_frame(&received, None), Err(FrameError::NoKey));
    assert_eq!(decode_frame(&received, Some(key)), Ok(message));
}

fn request_uuid(message: &Message) -> moip_moneysocket::Uuid {
    match &message.body {
        Body::Request(Request { request_uuid, .. }) => *request_uuid,
        Body::Notification(_) => panic!("not a request"),
    }
}

#[tokio::test]
async fn third_socket_for_a_paired_id_is_refused() {
    let (relay, url) = start(test_config()).await;
    let (mut a, mut b) = pair(&url, seed(2)).await;

    let mut c = within(
        "connect",
        OutgoingSocket::connect(&url, seed(2), &ClientConfig::default()),
    )
    .await
    .expect("connect c");
    let refused = within("refusal", c.rendezvous()).await;
    assert!(
        matches!(refused, Err(ClientError::RendezvousEnded)),
        "{refused:?}"
    );
    let reason = assert_closed(within("close", c.recv_frame()).await, 1008);
    assert!(reason.contains("already paired"), "{reason}");
    assert_eq!(relay.metrics().rejected.rendezvous_full, 1);

    // The pair is untouched.
    a.send(&ping()).await.expect("send");
    assert_eq!(
        within("message", b.recv()).await.expect("recv").name(),
        "REQUEST_PING"
    );
}

#[tokio::test]
async fn peer_close_ends_the_rendezvous_and_frees_the_id() {
    let (relay, url) = start(test_config()).await;
    let (a, mut b) = pair(&url, seed(3)).await;
    a.close().await.expect("close");
    until_rendezvous_end(&mut b).await;
    assert_closed(within("close", b.recv_frame()).await, 1000);
    wait_metrics(&relay, "pair gone", |m| m.pairs_active == 0).await;

    // Both ends may meet again under the same id.
    let (mut a, mut b) = pair(&url, seed(3)).await;
    b.send(&ping()).await.expect("send");
    assert_eq!(
        within("message", a.recv()).await.expect("recv").name(),
        "REQUEST_PING"
    );
    assert_eq!(relay.metrics().pairs_total, 2);
}

#[tokio::test]
async fn oversize_frame_closes_the_sender() {
    let (relay, url) = start(RelayConfig {
        max_frame_len: 1024,
        ..test_config()
    })
    .await;
    let (mut a, mut b) = pair(&url, seed(4)).await;
    a.send_frame(vec![0x42; 4096]).await.expect("send");
    assert_closed(within("close", a.recv_frame()).await, 1009);
    until_rendezvous_end(&mut b).await;
    assert_eq!(relay.metrics().rejected.oversize, 1);
    assert_eq!(relay.metrics().frames_forwarded, 0);
}

#[tokio::test]
async fn message_flood_is_cut_by_the_rate_limit() {
    let (relay, url) = start(RelayConfig {
        rate_limit: Some(RateLimit {
            per_second: 5.0,
            burst: 10,
        }),
        ..test_config()
    })
    .await;
    let (mut a, mut b) = pair(&url, seed(5)).await;
    let key = derive_aes_key(&seed(5));
    let frame = encode_frame(&ping(), &key).expect("encode");
    // Far more than the burst; sending may start failing once the relay cuts us off.
    for _ in 0..500 {
        if a.send_frame(frame.clone()).await.is_err() {
            break;
        }
    }
    let reason = assert_closed(
        within("close", async {
            loop {
                match a.recv_frame().await {
                    Ok(_) => continue,
                    other => return other,
                }
            }
        })
        .await,
        1008,
    );
    assert!(reason.contains("rate"), "{reason}");
    until_rendezvous_end(&mut b).await;
    let m = relay.metrics();
    assert_eq!(m.rejected.rate_limited, 1);
    assert!(m.frames_forwarded < 500, "{m:?}");
}

#[tokio::test]
async fn unpaired_socket_times_out() {
    let (relay, url) = start(RelayConfig {
        unpaired_timeout: Duration::from_millis(200),
        ..test_config()
    })
    .await;
    let config = ClientConfig::default();
    // One waits for a partner who never comes...
    let mut waiting = within("connect", OutgoingSocket::connect(&url, seed(6), &config))
        .await
        .expect("connect");
    let ended = within("timeout", waiting.rendezvous()).await;
    assert!(
        matches!(ended, Err(ClientError::RendezvousEnded)),
        "{ended:?}"
    );
    assert_closed(within("close", waiting.recv_frame()).await, 1008);
    // ...and one never even asks.
    let mut silent = within("connect", OutgoingSocket::connect(&url, seed(7), &config))
        .await
        .expect("connect");
    assert_closed(within("close", silent.recv_frame()).await, 1008);
    assert_eq!(relay.metrics().rejected.unpaired_timeout, 2);
}

#[tokio::test]
async fn connections_per_ip_are_limited() {
    let (relay, url) = start(RelayConfig {
        max_connections_per_ip: 2,
        ..test_config()
    })
    .await;
    let config = ClientConfig::default();
    let first = within("connect", OutgoingSocket::connect(&url, seed(8), &config))
        .await
        .expect("first");
    let _second = within("connect", OutgoingSocket::connect(&url, seed(9), &config))
        .await
        .expect("second");
    let third = within("connect", OutgoingSocket::connect(&url, seed(10), &config)).await;
    assert!(
        third.is_err(),
        "third connection from one address was admitted"
    );
    assert_eq!(relay.metrics().rejected.per_ip_limit, 1);

    // A place frees up when a connection ends.
    first.close().await.expect("close");
    wait_metrics(&relay, "connection gone", |m| m.connections_open == 1).await;
    within("connect", OutgoingSocket::connect(&url, seed(10), &config))
        .await
        .expect("admitted again");
}

#[tokio::test]
async fn tls_with_a_self_signed_certificate() {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let server_tls = server_tls_config_from_pem(
        generated.cert.pem().as_bytes(),
        generated.key_pair.serialize_pem().as_bytes(),
    )
    .expect("server tls");
    let relay = Relay::bind(RelayConfig {
        tls: Some(server_tls),
        ..test_config()
    })
    .await
    .expect("bind");
    let port = relay.local_addr().port();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(generated.cert.der().clone()).expect("root");
    let client_tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let config = ClientConfig {
        tls: Some(Arc::new(client_tls)),
        ..ClientConfig::default()
    };
    let url = format!("wss://localhost:{port}");
    let (a, b) = within(
        "rendezvous over tls",
        futures_util::future::join(
            connect(&url, seed(11), &config),
            connect(&url, seed(11), &config),
        ),
    )
    .await;
    let (mut a, mut b) = (a.expect("a"), b.expect("b"));
    a.send(&ping()).await.expect("send");
    assert_eq!(
        within("message", b.recv()).await.expect("recv").name(),
        "REQUEST_PING"
    );

    // Without TLS the handshake fails and is counted; so does TLS with unknown roots.
    let plain = format!("ws://127.0.0.1:{port}");
    assert!(within(
        "plain",
        OutgoingSocket::connect(&plain, seed(12), &ClientConfig::default())
    )
    .await
    .is_err());
    let untrusted = within(
        "untrusted",
        OutgoingSocket::connect(&url, seed(12), &ClientConfig::default()),
    )
    .await;
    assert!(
        matches!(untrusted, Err(ClientError::Tls(_))),
        "{untrusted:?}"
    );
    wait_metrics(&relay, "handshake failures", |m| m.rejected.handshake == 2).await;

    // A peer inside the process (a node's provider) needs no certificate to meet one over TLS.
    let connector = relay.local_connector();
    let mut inside = connector.connect(seed(13));
    let (rendezvoused, outside) = within(
        "rendezvous across TLS and the process",
        futures_util::future::join(inside.rendezvous(), connect(&url, seed(13), &config)),
    )
    .await;
    rendezvoused.expect("inside");
    let mut outside = outside.expect("over tls");
    inside.send(&ping()).await.expect("send");
    assert_eq!(
        within("message", outside.recv())
            .await
            .expect("recv")
            .name(),
        "REQUEST_PING"
    );
}

#[tokio::test]
async fn malformed_frames_get_typed_errors_and_the_relay_lives_on() {
    let (relay, url) = start(test_config()).await;
    let config = ClientConfig::default();
    struct Case {
        name: &'static str,
        frame: &'static [u8],
        reason: &'static str,
    }
    let cases = [
        Case {
            name: "not json, not ciphertext",
            frame: b"{not json",
            reason: "neither json nor iv plus whole aes blocks",
        },
        Case {
            name: "json, not a message",
            frame: br#"{"foo": 1}"#,
            reason: "clear frame is not a valid message",
        },
        Case {
            name: "clear message that must be encrypted",
            frame: br#"{"timestamp": 1, "protocol": "Moneysocket", "protocol_version": "0.0.0", "message_class": "REQUEST", "request_uuid": "a5b32936-3143-4856-bdea-7b3dda7aa5e8", "request_name": "REQUEST_PING"}"#,
            reason: "REQUEST_PING must be encrypted",
        },
        Case {
            name: "rendezvous request with a bad id",
            frame: br#"{"timestamp": 1, "protocol": "Moneysocket", "protocol_version": "0.0.0", "message_class": "REQUEST", "request_uuid": "a5b32936-3143-4856-bdea-7b3dda7aa5e8", "request_name": "REQUEST_RENDEZVOUS", "rendezvous_id": "zz"}"#,
            reason: "invalid hex",
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut socket = within("connect", OutgoingSocket::connect(&url, seed(13), &config))
            .await
            .expect("connect");
        socket.send_frame(case.frame).await.expect("send");
        let reason = assert_closed(within(case.name, socket.recv_frame()).await, 1007);
        assert!(reason.contains(case.reason), "{}: {reason}", case.name);
        wait_metrics(&relay, "malformed counted", |m| {
            m.rejected.malformed == i as u64 + 1
        })
        .await;
    }
    // The same typed errors a client gets decoding such frames itself.
    assert!(matches!(
        decode_frame(br#"{"foo": 1}"#, None),
        Err(FrameError::Clear(MessageError::Missing(_)))
    ));

    // Ciphertext before pairing and text frames are dropped, not fatal.
    let mut raw = raw_client(&url).await;
    raw.send(WsMessage::Binary(vec![0x11; 48].into()))
        .await
        .expect("send");
    raw.send(WsMessage::text("hello")).await.expect("send");
    let rid = derive_rendezvous_id(&seed(14));
    let request = Message::request(RequestKind::Rendezvous { rendezvous_id: rid });
    let frame = encode_clear_frame(&request).expect("clear");
    raw.send(WsMessage::Binary(frame.into()))
        .await
        .expect("send");
    let reply = within("NOT_READY", async {
        loop {
            match raw.next().await {
                Some(Ok(WsMessage::Binary(bytes))) => return bytes,
                Some(Ok(_)) => continue,
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(
        notification(&reply).kind,
        NotificationKind::RendezvousNotReady { rendezvous_id: rid }
    );
    let m = relay.metrics();
    assert_eq!(m.unpaired_frames_dropped, 1);
    assert_eq!(m.text_frames_dropped, 1);

    // And the relay still pairs and forwards.
    let (mut a, mut b) = pair(&url, seed(15)).await;
    a.send(&ping()).await.expect("send");
    assert_eq!(
        within("message", b.recv()).await.expect("recv").name(),
        "REQUEST_PING"
    );
}

/// A bare tokio-tungstenite client, for frames the library client never sends (text).
async fn raw_client(url: &str) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let addr = url.trim_start_matches("ws://");
    let tcp = within("tcp", tokio::net::TcpStream::connect(addr))
        .await
        .expect("tcp");
    let (ws, _) = within("ws", tokio_tungstenite::client_async(url, tcp))
        .await
        .expect("ws handshake");
    ws
}

#[tokio::test]
async fn shutdown_closes_every_connection() {
    let (relay, url) = start(test_config()).await;
    let (mut a, mut b) = pair(&url, seed(16)).await;
    within("shutdown", relay.shutdown()).await;
    for socket in [&mut a, &mut b] {
        // Either side may first see the other's END (both are torn down together).
        let closed = within("close", async {
            loop {
                match socket.recv_frame().await {
                    Ok(_) => continue,
                    other => return other,
                }
            }
        })
        .await;
        match closed {
            Err(ClientError::Closed {
                code: Some(1001 | 1000),
                ..
            }) => {}
            other => panic!("expected a close, got {other:?}"),
        }
    }
    let refused = OutgoingSocket::connect(&url, seed(17), &ClientConfig::default()).await;
    assert!(refused.is_err(), "relay still accepting after shutdown");
}

/// The in-process (local) connection: it rendezvouses with a WebSocket peer, frames cross
/// both ways unchanged, the same limits hold, and leaving ends the peer's rendezvous.
#[tokio::test]
async fn a_local_connection_meets_a_websocket_peer() {
    let (relay, url) = start(RelayConfig {
        max_frame_len: 1024,
        ..test_config()
    })
    .await;
    let s = seed(40);
    let (mut local, mut remote) = local_pair(&relay, &url, s).await;
    assert_ne!(local.uuid(), remote.uuid());

    let key = derive_aes_key(&s);
    cross_verbatim(&mut local, &mut remote, &key).await;
    cross_verbatim(&mut remote, &mut local, &key).await;
    local.send(&ping()).await.expect("send");
    assert_eq!(
        within("ping", remote.recv()).await.expect("recv").name(),
        "REQUEST_PING"
    );

    // A local peer is held to the frame limit like any other.
    local.send_frame(vec![0x42; 4096]).await.expect("send");
    assert_closed(within("close", local.recv_frame()).await, 1009);
    until_rendezvous_end(&mut remote).await;
    assert_eq!(relay.metrics().rejected.oversize, 1);

    // The id is free again; a local side that leaves ends its peer's rendezvous.
    let (local, mut remote) = local_pair(&relay, &url, seed(41)).await;
    local.close().await.expect("close");
    until_rendezvous_end(&mut remote).await;
}

/// A local connection and a WebSocket one on `seed`, rendezvoused with each other.
async fn local_pair(
    relay: &RelayHandle,
    url: &str,
    seed: SharedSeed,
) -> (OutgoingSocket, OutgoingSocket) {
    let mut local = relay.local_connect(seed);
    let (local_done, remote) = within(
        "rendezvous",
        futures_util::future::join(
            local.rendezvous(),
            connect(url, seed, &ClientConfig::default()),
        ),
    )
    .await;
    local_done.expect("the local side rendezvouses");
    (local, remote.expect("the websocket side rendezvouses"))
}
