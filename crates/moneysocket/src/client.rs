//! The outgoing side of a v0 connection: a WebSocket to a relay, the rendezvous handshake,
//! then messages through the v0 framing.
//!
//! In the layer model of the references (digest §4) this is the *OutgoingWebsocket* layer,
//! which holds the shared seed and encrypts and decrypts, topped by the *OutgoingRendezvous*
//! layer, which sends `REQUEST_RENDEZVOUS` and announces the connection upward once the relay
//! answers `NOTIFY_RENDEZVOUS`. A consumer or provider layer runs on an [`OutgoingSocket`]
//! returned by [`connect`]: everything it sends and receives from then on is end-to-end
//! between the two holders of the seed.
//!
//! The same socket is also the *OutgoingLocal* layer: [`crate::relay::RelayHandle::local_connect`]
//! joins a relay in the same process through a pair of channels instead of TCP, which is how a
//! provider sits inside its own relay.
//!
//! Frames are sealed with v0's AES-256-CBC until [`OutgoingSocket::upgrade`] switches the socket
//! to the authenticated layer of [`crate::secure`]; from then on a v0-encrypted or tampered
//! frame ends the connection (a session cannot skip a frame and stay in step).
//!
//! ```no_run
//! # async fn run(seed: moip_moneysocket::SharedSeed) -> Result<(), moip_moneysocket::client::ClientError> {
//! use moip_moneysocket::client::{connect, ClientConfig};
//! use moip_moneysocket::v0::message::{Message, RequestKind};
//!
//! let mut socket = connect("wss://relay.socket.money", seed, &ClientConfig::default()).await?;
//! socket.send(&Message::request(RequestKind::Provider)).await?;
//! let reply = socket.recv().await?;
//! # Ok(()) }
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Bytes, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::liveness::{Beat, Heartbeat, Liveness};
use crate::secure::{SecureError, Session};
use crate::seed::{AesKey, RendezvousId, SharedSeed};
use crate::v0::frame::{decode_frame, encode_frame, FrameError, MAX_FRAME_LEN};
use crate::v0::message::{Body, Message, Notification, NotificationKind, RequestKind};
use crate::v0::seed::{derive_aes_key, derive_rendezvous_id};

/// How the outgoing socket connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Largest WebSocket message accepted from the relay, in bytes.
    pub max_frame_len: usize,
    /// Time allowed for TCP connect plus TLS and WebSocket handshakes (the references
    /// allow 30 s for the TLS handshake).
    pub connect_timeout: Duration,
    /// TLS for `wss://` URLs; `None` uses the Mozilla roots (webpki-roots) on the ring
    /// provider.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether the consumer and provider layers negotiate the authenticated layer.
    pub security: Security,
    /// The local address to connect from (a host with several, or a load test spreading its
    /// connections over loopback addresses to stay under a relay's per-IP limit); `None` lets
    /// the system choose.
    pub local_address: Option<IpAddr>,
    /// Ping the relay on this schedule and give up on a connection it does not answer
    /// ([`ClientError::Unresponsive`]), so that a relay gone silent — a network that dropped
    /// without a reset — is noticed and the caller can reconnect, as the reference outgoing
    /// socket's auto-ping does. `None` disables it. In-process connections are not pinged.
    pub liveness: Option<Liveness>,
}

/// Whether to use the authenticated-encryption layer ([`crate::secure`]) with the peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Security {
    /// Offer it, and fall back to v0 AES-CBC for a peer that does not answer the offer
    /// (every deployed app).
    #[default]
    Prefer,
    /// Refuse a peer that does not negotiate it: nothing but the handshake goes over v0.
    Require,
    /// Speak plain v0, as the references do.
    Legacy,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_frame_len: MAX_FRAME_LEN,
            connect_timeout: Duration::from_secs(30),
            tls: None,
            security: Security::default(),
            local_address: None,
            liveness: Some(Liveness::default()),
        }
    }
}

/// Why the outgoing socket failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not a `ws://` or `wss://` URL with a host.
    #[error("invalid relay url {url:?}: {reason}")]
    Url {
        /// The offered URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TCP connection failed.
    #[error("could not connect to the relay: {0}")]
    Connect(#[source] io::Error),
    /// The TLS configuration or handshake failed.
    #[error("tls: {0}")]
    Tls(String),
    /// Connecting or the handshakes took longer than [`ClientConfig::connect_timeout`].
    #[error("timed out connecting to the relay")]
    Timeout,
    /// The WebSocket failed (handshake refused, protocol error, connection reset).
    #[error("websocket: {0}")]
    WebSocket(#[source] Box<tungstenite::Error>),
    /// The relay or the peer closed the connection, with the close code and reason if any.
    #[error("connection closed ({code:?}): {reason}")]
    Closed {
        /// The WebSocket close code, if the closer sent one.
        code: Option<u16>,
        /// The close reason, possibly empty.
        reason: String,
    },
    /// The relay ended the rendezvous: the other side left (or, while rendezvousing, the id
    /// was already paired).
    #[error("rendezvous ended by the relay")]
    RendezvousEnded,
    /// A frame could not be encoded or decoded. On receive the connection is still usable:
    /// the bad frame was skipped.
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    /// A message arrived that has no place at this point (e.g. a peer message before the
    /// rendezvous completed).
    #[error("unexpected {0} during rendezvous")]
    Unexpected(&'static str),
    /// The authenticated layer refused a frame (tampered, replayed, reordered, or a v0 frame
    /// after the upgrade); the connection cannot go on.
    #[error("authenticated layer: {0}")]
    Secure(#[from] SecureError),
    /// The peer did not negotiate the authenticated layer, which this side requires.
    #[error("the peer does not speak the authenticated layer, which is required")]
    InsecurePeer,
    /// The relay did not answer a WebSocket ping in time ([`ClientConfig::liveness`]): the
    /// connection is taken for dead.
    #[error("the relay stopped answering pings")]
    Unresponsive,
}

impl ClientError {
    /// True when the error lost only one frame and the socket can be read again: a v0 frame
    /// that did not decode. Every other error ends the connection.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, ClientError::Frame(_))
    }
}

impl From<tungstenite::Error> for ClientError {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                ClientError::Closed {
                    code: None,
                    reason: String::new(),
                }
            }
            other => ClientError::WebSocket(Box::new(other)),
        }
    }
}

/// A connection to a relay — a WebSocket, or a channel pair to a relay in this process —
/// holding the seed that encrypts what goes through it.
pub struct OutgoingSocket {
    link: Link,
    seed: SharedSeed,
    key: AesKey,
    session: Option<Session>,
    uuid: Uuid,
    /// The ping schedule of a WebSocket link, when [`ClientConfig::liveness`] asks for one.
    heartbeat: Option<Heartbeat>,
}

/// What carries the frames.
enum Link {
    Ws(Box<WebSocketStream<ClientStream>>),
    Local {
        tx: mpsc::Sender<WsMessage>,
        rx: mpsc::Receiver<WsMessage>,
    },
}

impl std::fmt::Debug for OutgoingSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingSocket")
            .field("uuid", &self.uuid)
            .field("rendezvous_id", &self.rendezvous_id())
            .field("secure", &self.is_secure())
            .finish_non_exhaustive()
    }
}

/// Connects to the relay at `url` and completes the rendezvous for `seed`: the returned
/// socket talks to the other holder of the seed.
///
/// Waits as long as the other side takes to arrive (the relay decides how long that may
/// be); wrap in a timeout to bound it.
///
/// # Errors
///
/// See [`OutgoingSocket::connect`] and [`OutgoingSocket::rendezvous`].
pub async fn connect(
    url: &str,
    seed: SharedSeed,
    config: &ClientConfig,
) -> Result<OutgoingSocket, ClientError> {
    let mut socket = OutgoingSocket::connect(url, seed, config).await?;
    socket.rendezvous().await?;
    Ok(socket)
}

/// Connects to `host:port` from `local` (the first of the host's addresses in its family).
async fn connect_from(local: IpAddr, host: &str, port: u16) -> io::Result<TcpStream> {
    let remote = tokio::net::lookup_host((host, port))
        .await?
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{host} has no address of the family of {local}"),
            )
        })?;
    let socket = if local.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(remote).await
}

impl OutgoingSocket {
    /// Opens the WebSocket (TLS for `wss://`), without rendezvousing yet.
    ///
    /// # Errors
    ///
    /// [`ClientError::Url`], [`ClientError::Connect`], [`ClientError::Tls`],
    /// [`ClientError::WebSocket`] or [`ClientError::Timeout`].
    pub async fn connect(
        url: &str,
        seed: SharedSeed,
        config: &ClientConfig,
    ) -> Result<OutgoingSocket, ClientError> {
        let bad = |reason: &str| ClientError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let request = url.into_client_request().map_err(|e| bad(&e.to_string()))?;
        let uri = request.uri();
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(bad("scheme must be ws or wss")),
        };
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        // `http::Uri` keeps IPv6 brackets, which socket addresses and TLS names do not want.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        // tungstenite allocates its read buffer up front (128 KiB by default); v0 messages are
        // small and a larger one still arrives, in more reads.
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .max_message_size(Some(config.max_frame_len))
            .max_frame_size(Some(config.max_frame_len));
        let opening = async {
            let tcp = match config.local_address {
                None => TcpStream::connect((host.as_str(), port)).await,
                Some(local) => connect_from(local, &host, port).await,
            }
            .map_err(ClientError::Connect)?;
            let _ = tcp.set_nodelay(true);
            let stream = if tls {
                let tls_config = match &config.tls {
                    Some(c) => Arc::clone(c),
                    None => default_tls_config()?,
                };
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| ClientError::Tls(format!("server name {host:?}: {e}")))?;
                let tls_stream = tokio_rustls::TlsConnector::from(tls_config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                ClientStream::Tls(Box::new(tls_stream))
            } else {
                ClientStream::Plain(tcp)
            };
            let (ws, _response) =
                tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config))
                    .await?;
            Ok::<_, ClientError>(ws)
        };
        let ws = tokio::time::timeout(config.connect_timeout, opening)
            .await
            .map_err(|_| ClientError::Timeout)??;
        let mut socket = OutgoingSocket::new(Link::Ws(Box::new(ws)), seed);
        socket.heartbeat = config
            .liveness
            .map(|l| Heartbeat::new(l, tokio::time::Instant::now()));
        Ok(socket)
    }

    fn new(link: Link, seed: SharedSeed) -> OutgoingSocket {
        OutgoingSocket {
            link,
            key: derive_aes_key(&seed),
            seed,
            session: None,
            uuid: crate::ids::random_v4(),
            heartbeat: None,
        }
    }

    /// A socket over an in-process channel pair to a relay (see
    /// [`crate::relay::RelayHandle::local_connect`]), not rendezvoused yet.
    pub(crate) fn local(
        tx: mpsc::Sender<WsMessage>,
        rx: mpsc::Receiver<WsMessage>,
        seed: SharedSeed,
    ) -> OutgoingSocket {
        OutgoingSocket::new(Link::Local { tx, rx }, seed)
    }

    /// This connection's nexus uuid: names it in events and logs, unrelated to the seed.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// True once [`OutgoingSocket::upgrade`] switched to the authenticated layer.
    pub fn is_secure(&self) -> bool {
        self.session.is_some()
    }

    /// Seals every frame from now on with `session` instead of v0 AES-CBC, and accepts only
    /// frames sealed by the peer's side of it (plus the relay's clear rendezvous messages).
    pub fn upgrade(&mut self, session: Session) {
        self.session = Some(session);
    }

    /// The seed this socket encrypts with.
    pub fn shared_seed(&self) -> &SharedSeed {
        &self.seed
    }

    /// The id this socket rendezvouses under.
    pub fn rendezvous_id(&self) -> RendezvousId {
        derive_rendezvous_id(&self.seed)
    }

    /// Sends `REQUEST_RENDEZVOUS` and waits for `NOTIFY_RENDEZVOUS`, past any
    /// `NOTIFY_RENDEZVOUS_NOT_READY` (the other side is not there yet).
    ///
    /// # Errors
    ///
    /// [`ClientError::RendezvousEnded`] if the relay refuses (the id is already paired) or
    /// times the wait out; [`ClientError::Unexpected`] for a non-rendezvous message; a closed
    /// or failed connection.
    pub async fn rendezvous(&mut self) -> Result<(), ClientError> {
        let rid = self.rendezvous_id();
        self.send(&Message::request(RequestKind::Rendezvous {
            rendezvous_id: rid,
        }))
        .await?;
        loop {
            let frame = self.recv_frame().await?;
            let message = decode_frame(&frame, Some(&self.key))?;
            match &message.body {
                Body::Notification(Notification { kind, .. }) => match kind {
                    NotificationKind::Rendezvous { rendezvous_id } if *rendezvous_id == rid => {
                        return Ok(())
                    }
                    NotificationKind::RendezvousNotReady { .. } => continue,
                    NotificationKind::RendezvousEnd { .. } => {
                        return Err(ClientError::RendezvousEnded)
                    }
                    _ => return Err(ClientError::Unexpected(message.name())),
                },
                Body::Request(_) => return Err(ClientError::Unexpected(message.name())),
            }
        }
    }

    /// Sends a message: clear for rendezvous messages, otherwise encrypted with the seed (or
    /// sealed by the authenticated layer after an upgrade).
    ///
    /// # Errors
    ///
    /// [`ClientError::Frame`] or [`ClientError::Secure`] for an oversize message; a closed or
    /// failed connection.
    pub async fn send(&mut self, message: &Message) -> Result<(), ClientError> {
        let frame = match self.session.as_mut() {
            Some(session) if !message.requires_cleartext() => session.seal(&message.encode())?,
            _ => encode_frame(message, &self.key)?,
        };
        self.send_frame(frame).await
    }

    /// Sends raw frame bytes as one binary message (`send_bin` in the references).
    ///
    /// # Errors
    ///
    /// A closed or failed connection.
    pub async fn send_frame(&mut self, frame: impl Into<Bytes>) -> Result<(), ClientError> {
        let message = WsMessage::Binary(frame.into());
        match &mut self.link {
            Link::Ws(ws) => ws.send(message).await?,
            Link::Local { tx, .. } => tx.send(message).await.map_err(|_| ClientError::Closed {
                code: None,
                reason: String::new(),
            })?,
        }
        Ok(())
    }

    /// Receives the next message from the other side.
    ///
    /// # Errors
    ///
    /// [`ClientError::RendezvousEnded`] when the relay reports the other side gone;
    /// [`ClientError::Frame`] for a frame that does not decode (skipped; call again);
    /// [`ClientError::Closed`] or another connection error otherwise.
    pub async fn recv(&mut self) -> Result<Message, ClientError> {
        let frame = self.recv_frame().await?;
        let message = match self.session.as_mut() {
            Some(session) if frame.starts_with(&crate::secure::MAGIC) => {
                let plain = session.open(&frame)?;
                // The peer holds the session key: a message it sealed that does not decode is a
                // bug on its side, not an attack; skip it like a bad v0 frame.
                Message::decode(&plain).map_err(|e| ClientError::Frame(FrameError::Decrypted(e)))?
            }
            // After the upgrade only the relay's clear rendezvous messages may come unsealed.
            Some(_) => match decode_frame(&frame, None) {
                Ok(message) if message.requires_cleartext() => message,
                _ => return Err(ClientError::Secure(SecureError::NotSecure)),
            },
            None => decode_frame(&frame, Some(&self.key))?,
        };
        if let Body::Notification(Notification {
            kind: NotificationKind::RendezvousEnd { .. },
            ..
        }) = message.body
        {
            return Err(ClientError::RendezvousEnded);
        }
        Ok(message)
    }

    /// Receives the next binary frame as it arrived, undecoded. Text frames are skipped, as
    /// the references skip them.
    ///
    /// # Errors
    ///
    /// [`ClientError::Closed`] when the connection closes; [`ClientError::Unresponsive`] when
    /// the relay stops answering pings; another error if it fails.
    pub async fn recv_frame(&mut self) -> Result<Bytes, ClientError> {
        loop {
            let next = match &mut self.link {
                Link::Ws(ws) => {
                    let wake = self.heartbeat.as_ref().map(Heartbeat::wake_at);
                    tokio::select! {
                        next = ws.next() => {
                            if let Some(hb) = self.heartbeat.as_mut() {
                                hb.heard();
                            }
                            next
                        }
                        () = sleep_until_opt(wake) => {
                            let Some(hb) = self.heartbeat.as_mut() else { continue };
                            match hb.beat(tokio::time::Instant::now()) {
                                Beat::Dead => return Err(ClientError::Unresponsive),
                                Beat::Ping => {
                                    // A relay that stopped reading would block the send as well;
                                    // bound it by the deadline of the answer.
                                    let by = hb.wake_at();
                                    let ping = ws.send(WsMessage::Ping(Bytes::new()));
                                    match tokio::time::timeout_at(by, ping).await {
                                        Ok(sent) => sent?,
                                        Err(_) => return Err(ClientError::Unresponsive),
                                    }
                                }
                                Beat::Idle => {}
                            }
                            continue;
                        }
                    }
                }
                Link::Local { rx, .. } => rx.recv().await.map(Ok),
            };
            match next {
                None => {
                    return Err(ClientError::Closed {
                        code: None,
                        reason: String::new(),
                    })
                }
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(WsMessage::Binary(bytes))) => return Ok(bytes),
                Some(Ok(WsMessage::Close(frame))) => {
                    return Err(ClientError::Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    })
                }
                Some(Ok(_)) => continue, // text, ping, pong
            }
        }
    }

    /// Closes the WebSocket politely; the relay then tells the other side.
    ///
    /// # Errors
    ///
    /// A connection error while closing.
    pub async fn close(self) -> Result<(), ClientError> {
        match self.link {
            Link::Ws(mut ws) => match WebSocketStream::close(&mut ws, None).await {
                Ok(()) | Err(tungstenite::Error::ConnectionClosed) => Ok(()),
                Err(e) => Err(e.into()),
            },
            // Dropping our sender ends the relay's stream; it tells the partner.
            Link::Local { .. } => Ok(()),
        }
    }
}

/// Sleeps until `at`, or for ever when there is nothing to wake for.
async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// TLS roots for public relays: Mozilla's, on the ring provider (the workspace builds rustls
/// without aws-lc).
fn default_tls_config() -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A plain or TLS TCP stream, so one socket type serves `ws://` and `wss://`.
enum ClientStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_bad_urls_before_connecting() {
        let seed = SharedSeed::from_bytes([1; 16]);
        for url in ["http://example.com", "not a url", "ws://"] {
            let got = OutgoingSocket::connect(url, seed, &ClientConfig::default()).await;
            assert!(matches!(got, Err(ClientError::Url { .. })), "{url}");
        }
    }

    /// A relay that answers the rendezvous and then never reads again: the socket's pings go
    /// unanswered and `recv` gives up with [`ClientError::Unresponsive`] instead of waiting for
    /// ever. With liveness off the same wait runs past the deadline (the behaviour before).
    #[tokio::test]
    async fn a_relay_that_stops_answering_is_given_up() {
        async fn silent_relay() -> (String, tokio::task::JoinHandle<()>) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let url = format!("ws://{}", listener.local_addr().expect("addr"));
            let task = tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.expect("accept");
                let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
                let Some(Ok(WsMessage::Binary(frame))) = ws.next().await else {
                    panic!("expected REQUEST_RENDEZVOUS");
                };
                let request = decode_frame(&frame, None).expect("clear request");
                let Body::Request(r) = request.body else {
                    panic!("not a request")
                };
                let RequestKind::Rendezvous { rendezvous_id } = r.kind else {
                    panic!("not a rendezvous")
                };
                let ready = Message::notification(
                    Some(r.request_uuid),
                    NotificationKind::Rendezvous { rendezvous_id },
                );
                let frame = crate::v0::frame::encode_clear_frame(&ready).expect("frame");
                ws.send(WsMessage::Binary(frame.into()))
                    .await
                    .expect("send");
                // Half-open from here: the socket stays open, nothing is read or answered.
                std::future::pending::<()>().await;
                drop(ws);
            });
            (url, task)
        }
        let seed = SharedSeed::from_bytes([7; 16]);
        let fast = Liveness {
            ping_interval: Duration::from_millis(200),
            pong_timeout: Duration::from_millis(200),
        };
        let deadline = Duration::from_secs(5);

        let (url, relay) = silent_relay().await;
        let config = ClientConfig {
            liveness: Some(fast),
            ..ClientConfig::default()
        };
        let mut socket = connect(&url, seed, &config).await.expect("rendezvous");
        let got = tokio::time::timeout(deadline, socket.recv())
            .await
            .expect("gave up before the deadline");
        assert!(matches!(got, Err(ClientError::Unresponsive)), "{got:?}");
        relay.abort();

        let (url, relay) = silent_relay().await;
        let config = ClientConfig {
            liveness: None,
            ..ClientConfig::default()
        };
        let mut socket = connect(&url, seed, &config).await.expect("rendezvous");
        let waited = fast.ping_interval * 3 + fast.pong_timeout;
        let got = tokio::time::timeout(waited, socket.recv()).await;
        assert!(got.is_err(), "without liveness it still waits: {got:?}");
        relay.abort();
    }
}
