//! One relay connection, from handshake to close.
//!
//! Each connection is two halves joined in one task: a reader that applies the limits,
//! answers rendezvous requests and forwards frames into the partner's outbox, and a writer
//! that drains this connection's own outbox to the socket. Outboxes are bounded, so a slow
//! reader on one side slows the sender on the other (TCP backpressure end to end) instead of
//! growing a queue in the relay; and since each side's writer drains independently of its
//! reader, two sides forwarding to each other cannot deadlock.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Bytes, Message as WsMessage};
use uuid::Uuid;

use super::directory::{ConnId, Directory, Join, Left};
use super::limits::{Admission, Admissions, TokenBucket};
use super::metrics::{dec, inc, Metrics};
use super::RelayConfig;
use crate::liveness::{Beat, Heartbeat};
use crate::seed::RendezvousId;
use crate::v0::frame::{decode_frame, encode_clear_frame, FrameError};
use crate::v0::message::{Body, Message, NotificationKind, Request, RequestKind};

/// Frames queued for one connection's writer. Small: it only absorbs scheduling jitter,
/// backpressure does the rest.
const OUTBOX_LEN: usize = 32;

/// Per-connection read buffer, allocated up front by tungstenite. Its default (128 KiB) would
/// cost a relay with 10,000 sockets over a gigabyte; v0 messages are a few hundred bytes, and
/// a larger frame still arrives, in more reads.
const READ_BUFFER_LEN: usize = 8 * 1024;

/// Longest close reason a WebSocket close frame may carry (125-byte control payload minus
/// the 2-byte code).
const MAX_CLOSE_REASON: usize = 123;

/// State shared by the accept loop and every connection.
pub(crate) struct Shared {
    pub(crate) config: RelayConfig,
    pub(crate) admissions: Admissions,
    pub(crate) directory: Mutex<Directory<Link>>,
    pub(crate) metrics: Metrics,
    pub(crate) stop: watch::Receiver<bool>,
}

/// What a partner needs to reach a connection.
#[derive(Clone)]
pub(crate) struct Link {
    outbox: mpsc::Sender<Outbound>,
    control: mpsc::UnboundedSender<Control>,
    request_uuid: Uuid,
}

enum Outbound {
    Frame(WsMessage),
    /// Send this close frame and stop writing.
    Close(CloseFrame),
}

/// Told to a connection's reader by its partner.
enum Control {
    /// A partner arrived: forward to its outbox from now on.
    Paired(mpsc::Sender<Outbound>),
    /// The partner left; its END notification and close are already in our outbox.
    PeerLeft,
}

enum State {
    /// Has not asked to rendezvous yet.
    Fresh,
    Waiting(RendezvousId),
    Paired(RendezvousId, mpsc::Sender<Outbound>),
}

impl State {
    fn rid(&self) -> Option<RendezvousId> {
        match self {
            State::Fresh => None,
            State::Waiting(rid) | State::Paired(rid, _) => Some(*rid),
        }
    }
}

/// Why a reader stopped.
enum Exit {
    /// The peer closed or the socket failed; nothing more to say to it.
    Gone,
    /// The partner left; END is already on its way.
    PeerLeft,
    Shutdown,
    UnpairedTimeout,
    RateLimited,
    Oversize,
    Malformed(String),
    RendezvousFull,
    /// The peer did not answer a ping in time.
    Unresponsive,
}

/// Serves one admitted TCP connection to its end.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
    shared: Arc<Shared>,
) {
    inc(&shared.metrics.connections_open);
    // One deadline covers the TLS and the WebSocket handshakes together.
    let deadline = Instant::now() + shared.config.handshake_timeout;
    match &shared.config.tls {
        None => accept(stream, deadline, peer, &shared).await,
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(tls));
            match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => accept(tls_stream, deadline, peer, &shared).await,
                Ok(Err(e)) => handshake_failed(&shared, peer, &e),
                Err(_) => handshake_failed(&shared, peer, &"timed out"),
            }
        }
    }
    dec(&shared.metrics.connections_open);
    drop(admission);
}

/// Upgrades to WebSocket by `deadline`, then runs the session.
async fn accept<S>(stream: S, deadline: Instant, peer: SocketAddr, shared: &Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let max = shared.config.max_frame_len;
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_LEN)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let upgrade = tokio_tungstenite::accept_async_with_config(stream, Some(ws_config));
    match tokio::time::timeout_at(deadline, upgrade).await {
        Ok(Ok(ws)) => {
            let (sink, stream) = ws.split();
            run(sink, stream, Peer::Tcp(peer), Arc::clone(shared)).await;
        }
        Ok(Err(e)) => handshake_failed(shared, peer, &e),
        Err(_) => handshake_failed(shared, peer, &"timed out"),
    }
}

fn handshake_failed(shared: &Shared, peer: SocketAddr, why: &dyn std::fmt::Display) {
    inc(&shared.metrics.handshake);
    tracing::debug!(%peer, "relay handshake failed: {why}");
}

/// Where a connection comes from, for logs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Peer {
    /// A WebSocket over TCP (the *IncomingWebsocket* layer).
    Tcp(SocketAddr),
    /// An in-process channel pair (the *IncomingLocal* layer).
    Local,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(addr) => addr.fmt(f),
            Peer::Local => f.write_str("local"),
        }
    }
}

/// Serves an in-process connection: `inbound` carries what the local client sends, `outbound`
/// what the relay sends it. The same rendezvous and forwarding as a WebSocket, without the
/// per-address admission (the caller is this process).
pub(crate) async fn serve_local(
    inbound: mpsc::Receiver<WsMessage>,
    outbound: mpsc::Sender<WsMessage>,
    shared: Arc<Shared>,
) {
    inc(&shared.metrics.connections_open);
    let stream = Box::pin(futures_util::stream::unfold(inbound, |mut rx| async move {
        rx.recv()
            .await
            .map(|m| (Ok::<_, tungstenite::Error>(m), rx))
    }));
    let sink = Box::pin(futures_util::sink::unfold(
        outbound,
        |tx, message: WsMessage| async move {
            tx.send(message)
                .await
                .map_err(|_| tungstenite::Error::ConnectionClosed)?;
            Ok::<_, tungstenite::Error>(tx)
        },
    ));
    run(sink, stream, Peer::Local, Arc::clone(&shared)).await;
    dec(&shared.metrics.connections_open);
}

async fn run<Si, St>(sink: Si, stream: St, peer: Peer, shared: Arc<Shared>)
where
    Si: Sink<WsMessage, Error = tungstenite::Error> + Unpin,
    St: Stream<Item = Result<WsMessage, tungstenite::Error>> + Unpin,
{
    let id = next_conn_id();
    let (outbox, outbox_rx) = mpsc::channel(OUTBOX_LEN);
    let (control, control_rx) = mpsc::unbounded_channel();
    let reader = Reader {
        id,
        peer,
        shared: Arc::clone(&shared),
        outbox: outbox.clone(),
        control,
        state: State::Fresh,
    };
    drop(outbox); // the reader holds the last own sender, so the writer ends with it
    tokio::join!(
        reader.run(stream, control_rx),
        write(sink, outbox_rx, shared.config.write_timeout)
    );
}

fn next_conn_id() -> ConnId {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

async fn write<Si>(mut sink: Si, mut outbox: mpsc::Receiver<Outbound>, write_timeout: Duration)
where
    Si: Sink<WsMessage, Error = tungstenite::Error> + Unpin,
{
    let mut batch = Vec::with_capacity(OUTBOX_LEN);
    // Everything queued goes out in one flush: one write syscall for a burst, not one each.
    while outbox.recv_many(&mut batch, OUTBOX_LEN).await > 0 {
        let written = tokio::time::timeout(write_timeout, async {
            let mut last = false;
            for item in batch.drain(..) {
                let message = match item {
                    Outbound::Frame(m) => m,
                    Outbound::Close(frame) => {
                        last = true;
                        WsMessage::Close(Some(frame))
                    }
                };
                sink.feed(message).await?;
                if last {
                    break;
                }
            }
            sink.flush().await.map(|()| last)
        })
        .await;
        match written {
            Ok(Ok(false)) => {}
            _ => break, // closed, failed, or too slow
        }
    }
    // Anyone still holding our outbox sees it closed and stops sending.
    outbox.close();
}

struct Reader {
    id: ConnId,
    peer: Peer,
    shared: Arc<Shared>,
    outbox: mpsc::Sender<Outbound>,
    control: mpsc::UnboundedSender<Control>,
    state: State,
}

impl Reader {
    async fn run<St>(mut self, mut stream: St, mut control_rx: mpsc::UnboundedReceiver<Control>)
    where
        St: Stream<Item = Result<WsMessage, tungstenite::Error>> + Unpin,
    {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        let mut stop = shared.stop.clone();
        let unpaired_deadline = tokio::time::sleep_until(Instant::now() + config.unpaired_timeout);
        tokio::pin!(unpaired_deadline);
        let mut bucket = config
            .rate_limit
            .map(|limit| TokenBucket::new(limit, std::time::Instant::now()));
        // An in-process peer cannot be half-open (and its channel carries no pongs).
        let mut heartbeat = match self.peer {
            Peer::Tcp(_) => config.liveness.map(|l| Heartbeat::new(l, Instant::now())),
            Peer::Local => None,
        };
        let exit = loop {
            let paired = matches!(self.state, State::Paired(..));
            tokio::select! {
                biased;
                _ = stopped(&mut stop) => break Exit::Shutdown,
                control = control_rx.recv() => match control {
                    Some(Control::Paired(partner)) => {
                        if let State::Waiting(rid) = self.state {
                            self.state = State::Paired(rid, partner);
                        }
                    }
                    Some(Control::PeerLeft) => break Exit::PeerLeft,
                    None => {} // unreachable: `self.control` keeps the channel open
                },
                _ = &mut unpaired_deadline, if !paired => {
                    break Exit::UnpairedTimeout
                }
                _ = sleep_until_opt(heartbeat.as_ref().map(Heartbeat::wake_at)) => {
                    let Some(hb) = heartbeat.as_mut() else { continue };
                    match hb.beat(Instant::now()) {
                        Beat::Dead => break Exit::Unresponsive,
                        // A full outbox means the writer is stuck on this peer already (its
                        // write timeout will end it); the deadline runs either way.
                        Beat::Ping => {
                            let _ = self
                                .outbox
                                .try_send(Outbound::Frame(WsMessage::Ping(Bytes::new())));
                        }
                        Beat::Idle => {}
                    }
                }
                received = stream.next() => {
                    let message = match received {
                        None => break Exit::Gone,
                        Some(Ok(message)) => message,
                        Some(Err(tungstenite::Error::Capacity(_))) => break Exit::Oversize,
                        Some(Err(e)) => {
                            tracing::debug!(peer = %self.peer, "relay read failed: {e}");
                            break Exit::Gone;
                        }
                    };
                    if let Some(hb) = heartbeat.as_mut() {
                        hb.heard();
                    }
                    if let Some(bucket) = bucket.as_mut() {
                        if !bucket.take(std::time::Instant::now()) {
                            break Exit::RateLimited;
                        }
                    }
                    match message {
                        // tungstenite enforces this for WebSockets; a local peer has no framing.
                        WsMessage::Binary(bytes) if bytes.len() > config.max_frame_len => {
                            break Exit::Oversize
                        }
                        WsMessage::Binary(bytes) => {
                            if let Some(exit) = self.on_binary(bytes).await {
                                break exit;
                            }
                        }
                        WsMessage::Text(_) => inc(&shared.metrics.text_frames_dropped),
                        // Read on: tungstenite queues the close reply and flushes it on the
                        // next read, which then reports the end of the stream.
                        WsMessage::Close(_) => {}
                        // Pings are answered by tungstenite itself.
                        WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {}
                    }
                }
            }
        };
        self.finish(exit).await;
    }

    /// Handles one binary frame; `Some` ends the connection.
    async fn on_binary(&mut self, bytes: Bytes) -> Option<Exit> {
        let metrics = &self.shared.metrics;
        if let State::Paired(_, partner) = &self.state {
            let len = bytes.len();
            // A closed partner outbox means it is leaving and will tell us; drop the frame.
            if partner
                .send(Outbound::Frame(WsMessage::Binary(bytes)))
                .await
                .is_ok()
            {
                metrics.forwarded(len);
            }
            return None;
        }
        match decode_frame(&bytes, None) {
            Ok(Message {
                body:
                    Body::Request(Request {
                        request_uuid,
                        kind: RequestKind::Rendezvous { rendezvous_id },
                    }),
                ..
            }) => self.on_rendezvous(rendezvous_id, request_uuid).await,
            // Valid but not for the relay (a client echoing notifications), or ciphertext sent
            // before pairing: the reference drops these too.
            Ok(_) | Err(FrameError::NoKey) => {
                inc(&metrics.unpaired_frames_dropped);
                None
            }
            Err(e) => Some(Exit::Malformed(e.to_string())),
        }
    }

    async fn on_rendezvous(&mut self, rid: RendezvousId, request_uuid: Uuid) -> Option<Exit> {
        if !matches!(self.state, State::Fresh) {
            return Some(Exit::Malformed(
                "rendezvous already requested on this connection".to_owned(),
            ));
        }
        let link = Link {
            outbox: self.outbox.clone(),
            control: self.control.clone(),
            request_uuid,
        };
        // NOT_READY must reach our outbox before a partner that joins right after us can put
        // its NOTIFY_RENDEZVOUS there (from its own task): reserve the slot first, fill it
        // while the directory is still locked.
        let Ok(slot) = self.outbox.reserve().await else {
            return Some(Exit::Gone);
        };
        let joined = {
            let mut directory = self
                .shared
                .directory
                .lock()
                .expect("directory lock poisoned");
            let joined = directory.join(rid, self.id, link);
            if let Join::Waiting = joined {
                let not_ready = NotificationKind::RendezvousNotReady { rendezvous_id: rid };
                if let Some(frame) = notification_frame(Some(request_uuid), not_ready) {
                    slot.send(Outbound::Frame(frame));
                }
            }
            joined
        };
        match joined {
            Join::Waiting => {
                self.state = State::Waiting(rid);
                None
            }
            Join::Paired(waiter) => {
                inc(&self.shared.metrics.pairs_total);
                inc(&self.shared.metrics.pairs_active);
                self.state = State::Paired(rid, waiter.outbox.clone());
                let ready = |uuid| {
                    notification_frame(
                        Some(uuid),
                        NotificationKind::Rendezvous { rendezvous_id: rid },
                    )
                };
                // Ordering, so no frame is forwarded before its receiver was told of the pair:
                // our NOTIFY is queued before we read on; the waiter learns where to forward
                // (its reader takes control messages before frames) before its client can
                // hear of the pair and start sending.
                self.send_own(ready(request_uuid)).await;
                let _ = waiter.control.send(Control::Paired(self.outbox.clone()));
                if let Some(frame) = ready(waiter.request_uuid) {
                    let _ = waiter.outbox.send(Outbound::Frame(frame)).await;
                }
                None
            }
            Join::Full => {
                self.notify(None, NotificationKind::RendezvousEnd { rendezvous_id: rid })
                    .await;
                Some(Exit::RendezvousFull)
            }
        }
    }

    async fn notify(&self, rrid: Option<Uuid>, kind: NotificationKind) {
        self.send_own(notification_frame(rrid, kind)).await;
    }

    async fn send_own(&self, frame: Option<WsMessage>) {
        if let Some(frame) = frame {
            let _ = self.outbox.send(Outbound::Frame(frame)).await;
        }
    }

    /// Leaves the directory, tells the partner, counts the reason and closes.
    async fn finish(self, exit: Exit) {
        let metrics = &self.shared.metrics;
        if let Some(rid) = self.state.rid() {
            let left = self
                .shared
                .directory
                .lock()
                .expect("directory lock poisoned")
                .leave(&rid, self.id);
            if let Left::WasPaired(partner) = left {
                dec(&metrics.pairs_active);
                let end = NotificationKind::RendezvousEnd { rendezvous_id: rid };
                if let Some(frame) = notification_frame(None, end) {
                    let _ = partner.outbox.send(Outbound::Frame(frame)).await;
                }
                let _ = partner
                    .outbox
                    .send(Outbound::Close(close(
                        CloseCode::Normal,
                        "rendezvous ended",
                    )))
                    .await;
                let _ = partner.control.send(Control::PeerLeft);
            }
        }
        let goodbye = match exit {
            Exit::Gone | Exit::PeerLeft => None,
            Exit::Shutdown => Some(close(CloseCode::Away, "relay shutting down")),
            Exit::UnpairedTimeout => {
                inc(&metrics.unpaired_timeout);
                if let Some(rid) = self.state.rid() {
                    let end = NotificationKind::RendezvousEnd { rendezvous_id: rid };
                    self.notify(None, end).await;
                }
                Some(close(CloseCode::Policy, "not paired in time"))
            }
            Exit::RateLimited => {
                inc(&metrics.rate_limited);
                Some(close(CloseCode::Policy, "message rate limit exceeded"))
            }
            Exit::Oversize => {
                inc(&metrics.oversize);
                Some(close(CloseCode::Size, "frame too large"))
            }
            Exit::Malformed(why) => {
                inc(&metrics.malformed);
                tracing::debug!(peer = %self.peer, "relay closing on malformed frame: {why}");
                Some(close(CloseCode::Invalid, &why))
            }
            Exit::RendezvousFull => {
                inc(&metrics.rendezvous_full);
                Some(close(CloseCode::Policy, "rendezvous id already paired"))
            }
            Exit::Unresponsive => {
                inc(&metrics.unresponsive);
                tracing::debug!(peer = %self.peer, "relay dropping a peer that stopped answering pings");
                // Sent for form: a peer that answers nothing will not read it either.
                Some(close(CloseCode::Error, "no answer to ping"))
            }
        };
        if let Some(frame) = goodbye {
            let _ = self.outbox.send(Outbound::Close(frame)).await;
        }
        // Dropping `self` drops the last own outbox sender: the writer flushes and ends.
    }
}

/// Resolves once the relay is stopping (or its handle is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` yields is not `Send`; drop it here, not in the caller's future.
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps until `at`, or for ever when there is nothing to wake for.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A clear rendezvous notification as a binary frame.
fn notification_frame(rrid: Option<Uuid>, kind: NotificationKind) -> Option<WsMessage> {
    match encode_clear_frame(&Message::notification(rrid, kind)) {
        Ok(bytes) => Some(WsMessage::Binary(Bytes::from(bytes))),
        Err(e) => {
            // Rendezvous notifications are clear and small; this cannot happen.
            tracing::error!("relay could not encode a rendezvous notification: {e}");
            None
        }
    }
}

fn close(code: CloseCode, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code,
        reason: reason[..end].to_owned().into(),
    }
}
