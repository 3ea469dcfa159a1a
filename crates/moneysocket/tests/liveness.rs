//! WebSocket liveness on the relay: a real relay on 127.0.0.1 port 0, real clients, and a
//! half-open peer — a raw WebSocket client that completes the handshake, asks to rendezvous,
//! then never reads again, so it never answers a ping (what a phone that lost its network
//! looks like to the relay).
//!
//! Pings every 200 ms with 200 ms to answer keep the test fast; every wait is on an event
//! bounded by [`WAIT`].

use std::future::Future;
use std::time::Duration;

use futures_util::SinkExt;
use moip_moneysocket::client::{connect, ClientConfig, ClientError, OutgoingSocket};
use moip_moneysocket::liveness::Liveness;
use moip_moneysocket::relay::{Relay, RelayConfig, RelayHandle};
use moip_moneysocket::v0::frame::encode_clear_frame;
use moip_moneysocket::v0::message::{Message, RequestKind};
use moip_moneysocket::v0::seed::derive_rendezvous_id;
use moip_moneysocket::SharedSeed;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn fast() -> Liveness {
    Liveness {
        ping_interval: Duration::from_millis(200),
        pong_timeout: Duration::from_millis(200),
    }
}

async fn start(liveness: Option<Liveness>) -> (RelayHandle, String) {
    let relay = Relay::bind(RelayConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        liveness,
        ..RelayConfig::default()
    })
    .await
    .expect("bind relay");
    let url = format!("ws://{}", relay.local_addr());
    (relay, url)
}

fn seed(n: u8) -> SharedSeed {
    SharedSeed::from_bytes([n; 16])
}

/// A peer that rendezvouses on `seed` and then never reads: its socket stays open but it
/// answers no ping. Returned so the caller keeps it open.
async fn half_open(
    url: &str,
    seed: SharedSeed,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let addr = url.strip_prefix("ws://").expect("ws url");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let (mut ws, _) = within(
        "half-open handshake",
        tokio_tungstenite::client_async(url, tcp),
    )
    .await
    .expect("half-open handshake");
    let request = Message::request(RequestKind::Rendezvous {
        rendezvous_id: derive_rendezvous_id(&seed),
    });
    let frame = encode_clear_frame(&request).expect("clear frame");
    within(
        "half-open rendezvous",
        ws.send(WsMessage::Binary(frame.into())),
    )
    .await
    .expect("send rendezvous");
    ws
}

/// The task reading a live pair: the pair back once stopped, or what broke it.
type LivePair = tokio::task::JoinHandle<Result<(OutgoingSocket, OutgoingSocket), String>>;

/// Reads both sockets of a live pair (so tungstenite answers the relay's pings) until told
/// to stop, then hands them back; anything received meanwhile — a message, an END, a close — is
/// a failure.
fn keep_reading(
    mut a: OutgoingSocket,
    mut b: OutgoingSocket,
) -> (tokio::sync::oneshot::Sender<()>, LivePair) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        tokio::select! {
            got = a.recv() => return Err(format!("side a got {got:?}")),
            got = b.recv() => return Err(format!("side b got {got:?}")),
            _ = &mut stopped => {}
        }
        Ok((a, b))
    });
    (stop, task)
}

/// Polls the relay's counters every 10 ms until `done` holds, bounded by [`WAIT`].
async fn until(relay: &RelayHandle, what: &str, done: impl Fn(&RelayHandle) -> bool) {
    within(what, async {
        while !done(relay) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// The half-open peer holds its rendezvous "full" until the relay's ping goes unanswered; then
/// the relay drops it, tells its partner the rendezvous ended, and the seed can pair afresh.
/// Peers that do answer (both real clients here) are not dropped. Fails without the relay's
/// liveness: see `without_liveness_a_half_open_peer_holds_the_rendezvous`.
#[tokio::test]
async fn a_half_open_peer_is_dropped_and_its_rendezvous_freed() {
    let (relay, url) = start(Some(fast())).await;
    let config = ClientConfig::default();

    // A live pair on another seed, connected first: it lives through every ping below.
    let (live_a, live_b) = within(
        "live pair",
        futures_util::future::join(
            connect(&url, seed(2), &config),
            connect(&url, seed(2), &config),
        ),
    )
    .await;
    let (stop, live) = keep_reading(live_a.expect("live a"), live_b.expect("live b"));

    // The half-open peer waits; a real client pairs with it; a third is refused: "full".
    let _silent = half_open(&url, seed(1)).await;
    let mut partner = within(
        "pair with the half-open peer",
        connect(&url, seed(1), &config),
    )
    .await
    .expect("pairs with the half-open peer");
    let third = within("third", connect(&url, seed(1), &config)).await;
    assert!(
        matches!(third, Err(ClientError::RendezvousEnded)),
        "{third:?}"
    );

    // The relay drops the silent peer; its partner hears the END.
    let ended: ClientError = within("END to the partner", async {
        loop {
            match partner.recv().await {
                Ok(_) => continue,
                Err(e) => return e,
            }
        }
    })
    .await;
    assert!(matches!(ended, ClientError::RendezvousEnded), "{ended:?}");
    assert_eq!(relay.metrics().rejected.unresponsive, 1);

    // The seed pairs again.
    let (fresh_a, fresh_b) = within(
        "fresh pair",
        futures_util::future::join(
            connect(&url, seed(1), &config),
            connect(&url, seed(1), &config),
        ),
    )
    .await;
    fresh_a.expect("fresh side a");
    fresh_b.expect("fresh side b");

    // A second half-open peer, merely waiting, is dropped too; by then the live pair has been
    // pinged for several intervals and, answering, is still there.
    let _silent2 = half_open(&url, seed(3)).await;
    until(&relay, "the second half-open peer dropped", |r| {
        r.metrics().rejected.unresponsive >= 2
    })
    .await;
    let _ = stop.send(());
    let (mut live_a, mut live_b) = live.await.expect("task").expect("live pair kept");
    assert_eq!(relay.metrics().rejected.unresponsive, 2);
    live_a
        .send(&Message::request(RequestKind::Ping))
        .await
        .expect("send");
    within("forwarded", live_b.recv())
        .await
        .expect("still forwarding");
}

/// The same half-open peer with liveness off: after three ping intervals plus the timeout, its
/// rendezvous is still full — the behaviour before this change.
#[tokio::test]
async fn without_liveness_a_half_open_peer_holds_the_rendezvous() {
    let (relay, url) = start(None).await;
    let config = ClientConfig::default();
    let _silent = half_open(&url, seed(1)).await;
    let mut partner = within("pair", connect(&url, seed(1), &config))
        .await
        .expect("pairs with the half-open peer");
    let lived = fast().ping_interval * 3 + fast().pong_timeout;
    let heard = tokio::time::timeout(lived, partner.recv()).await;
    assert!(heard.is_err(), "the partner heard {heard:?}");
    let third = within("third", connect(&url, seed(1), &config)).await;
    assert!(
        matches!(third, Err(ClientError::RendezvousEnded)),
        "{third:?}"
    );
    assert_eq!(relay.metrics().rejected.unresponsive, 0);
}
