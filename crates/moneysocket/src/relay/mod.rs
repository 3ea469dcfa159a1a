//! A Moneysocket v0 relay: the WebSocket server both ends of a beacon meet at.
//!
//! Each side connects and sends `REQUEST_RENDEZVOUS` in the clear with the rendezvous id
//! derived from the shared seed. The first to arrive gets `NOTIFY_RENDEZVOUS_NOT_READY`
//! and waits; when the second arrives both get `NOTIFY_RENDEZVOUS` (each answering its own
//! request) and from then on every binary frame one sends is forwarded verbatim to the other.
//! The relay holds no key and never looks inside forwarded frames. When either side leaves,
//! the other gets `NOTIFY_RENDEZVOUS_END` and is closed, and the id is free again. A third
//! connection on a paired id gets `NOTIFY_RENDEZVOUS_END` and is closed. These are the
//! semantics of the reference relay (moneysocket/relay on py-moneysocket's
//! `IncomingRendezvousLayer` and `RelayLayer`), with two deliberate differences: clear frames
//! after pairing are forwarded byte for byte rather than re-serialised, and a
//! malformed frame closes the connection with a WebSocket close code instead of being
//! half-processed.
//!
//! In the layer model of the references this is the incoming stack — *IncomingWebsocket* (or
//! *IncomingLocal*, for a client in this process: [`RelayHandle::local_connect`]) →
//! *IncomingRendezvous* (the directory) → *Relay* (forwarding).
//!
//! The reference has no limits at all; this one bounds everything a peer controls (see
//! [`RelayConfig`]): frame size, time to pair, connections per source address and in total,
//! messages per second per connection, handshake and write time, and a WebSocket ping that
//! drops a peer gone silent ([`crate::liveness`]). Refusals are counted by
//! reason in [`RelayMetrics`]. Close codes: 1009 for an oversize frame, 1008 for a rate
//! limit, an unpaired timeout or a refused rendezvous, 1007 for a malformed frame, 1001 at
//! shutdown, 1011 for a peer that stopped answering pings; the close reason carries the
//! detail.
//!
//! ```no_run
//! # async fn run() -> Result<(), moip_moneysocket::relay::RelayError> {
//! use moip_moneysocket::relay::{Relay, RelayConfig};
//!
//! let relay = Relay::bind(RelayConfig::default()).await?;
//! println!("relay on ws://{}", relay.local_addr());
//! // ... later
//! println!("{:?}", relay.metrics());
//! relay.shutdown().await;
//! # Ok(()) }
//! ```

mod conn;
mod directory;
mod limits;
mod metrics;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

pub use limits::RateLimit;
pub use metrics::{Rejections, RelayMetrics};

use crate::client::OutgoingSocket;
use crate::liveness::Liveness;
use crate::v0::frame::MAX_FRAME_LEN;
use crate::SharedSeed;
use directory::Directory;
use limits::{Admissions, Refusal};
use metrics::{inc, Metrics};

/// moip's default relay port when none is configured (terminus, the reference provider, uses
/// 11033 for its own listener; public relays sit behind 443 with TLS).
pub const DEFAULT_PORT: u16 = 11060;

/// Everything the relay bounds, and where it listens. Every limit has a default fit for a
/// public relay; [`RelayConfig::default`] binds `127.0.0.1:11060` without TLS.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Address to listen on. Loopback by default: exposing a relay is a deliberate choice.
    pub bind: SocketAddr,
    /// Serve `wss://` with this configuration instead of `ws://`. See
    /// [`server_tls_config_from_pem`] for one built with the ring provider.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Largest WebSocket message accepted, in bytes; a larger one closes the connection
    /// (1009). The default fits the largest v0 message once encrypted
    /// ([`MAX_FRAME_LEN`], 64 KiB + 32).
    pub max_frame_len: usize,
    /// How long a connection may stay unpaired (including before it asks to rendezvous);
    /// then it gets `NOTIFY_RENDEZVOUS_END` and is closed. The reference waits forever, which
    /// lets idle sockets pile up; deployed providers reconnect on close (terminus retries
    /// every 5 s), so a bound costs them one reconnect.
    pub unpaired_timeout: Duration,
    /// Length of the kernel's queue of connections not yet accepted (capped by the OS, e.g.
    /// `net.core.somaxconn`). The standard library's 128 overflows when many peers
    /// reconnect at once, e.g. after a relay restart, and an overflow costs each dropped
    /// peer a one-second SYN retransmit.
    pub listen_backlog: u32,
    /// Time allowed for the TLS and WebSocket handshakes.
    pub handshake_timeout: Duration,
    /// Time allowed to write one frame to a peer; a peer that stops reading is dropped
    /// rather than left holding its partner's frames.
    pub write_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one source address (the reference suggests a CDN
    /// in front against abuse; this is the in-process equivalent of its per-IP limits).
    pub max_connections_per_ip: usize,
    /// Messages per second per connection (every WebSocket message counts, pings included);
    /// `None` disables the limit. Exceeding it closes the connection (1008).
    pub rate_limit: Option<RateLimit>,
    /// Ping every WebSocket peer on this schedule and drop one that is not heard from in
    /// time, as the reference relay pings every 30 s: a half-open peer (gone without closing)
    /// would otherwise hold its rendezvous id — the other holder of the seed refused as a
    /// third party — until the kernel gives up on the socket, often hours later. `None`
    /// disables it. In-process peers ([`RelayHandle::local_connect`]) are never pinged.
    pub liveness: Option<Liveness>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            tls: None,
            max_frame_len: MAX_FRAME_LEN,
            unpaired_timeout: Duration::from_secs(300),
            listen_backlog: 1024,
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_ip: 64,
            rate_limit: Some(RateLimit::default()),
            liveness: Some(Liveness::default()),
        }
    }
}

/// The relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The listening socket could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate or key could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
}

/// The relay server; see [`Relay::bind`].
pub struct Relay;

impl Relay {
    /// Binds the listening socket and starts serving in the background on the current tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// [`RelayError::Bind`] if the address cannot be bound.
    pub async fn bind(config: RelayConfig) -> Result<RelayHandle, RelayError> {
        let bind_err = |source| RelayError::Bind {
            addr: config.bind,
            source,
        };
        let socket = if config.bind.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(bind_err)?;
        // As `TcpListener::bind` does: a restarted relay can rebind at once.
        socket.set_reuseaddr(true).map_err(bind_err)?;
        socket.bind(config.bind).map_err(bind_err)?;
        let listener = socket.listen(config.listen_backlog).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(|source| RelayError::Bind {
            addr: config.bind,
            source,
        })?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(conn::Shared {
            admissions: Admissions::new(config.max_connections, config.max_connections_per_ip),
            config,
            directory: Mutex::new(Directory::new()),
            metrics: Metrics::default(),
            stop: stop_rx,
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        tracing::info!(%local_addr, tls = shared.config.tls.is_some(), "moneysocket relay listening");
        Ok(RelayHandle {
            local_addr,
            shared,
            stop: stop_tx,
            task: Some(task),
        })
    }
}

/// Reads a running relay's metrics; see [`RelayHandle::metrics_source`].
#[derive(Clone)]
pub struct MetricsSource(Arc<conn::Shared>);

impl MetricsSource {
    /// The counters now.
    pub fn metrics(&self) -> RelayMetrics {
        self.0.metrics.snapshot()
    }
}

/// Connects to a running relay from inside the process; see [`RelayHandle::local_connector`].
#[derive(Clone)]
pub struct LocalConnector(Arc<conn::Shared>);

impl LocalConnector {
    /// A socket for `seed` inside the relay, as [`RelayHandle::local_connect`] makes. Once the
    /// relay stops, the socket is closed at once.
    pub fn connect(&self, seed: SharedSeed) -> OutgoingSocket {
        local_socket(&self.0, seed)
    }
}

/// A running relay. Dropping it stops the relay too (without waiting).
pub struct RelayHandle {
    local_addr: SocketAddr,
    shared: Arc<conn::Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RelayHandle {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connects to this relay from inside the process, for `seed` (the *OutgoingLocal* layer of
    /// the references): a provider sits inside its own relay this way, and a consumer on the
    /// network meets it as if it had come over a WebSocket. The socket still has to
    /// rendezvous; everything else — limits, forwarding, the END on leaving — is as for a
    /// WebSocket peer.
    pub fn local_connect(&self, seed: SharedSeed) -> OutgoingSocket {
        local_socket(&self.shared, seed)
    }

    /// A handle that connects in process (as [`RelayHandle::local_connect`]) while something
    /// else owns the relay: a node's providers sit inside its relay this way, with no socket,
    /// no TLS and no per-IP limit to share with the network's clients.
    pub fn local_connector(&self) -> LocalConnector {
        LocalConnector(Arc::clone(&self.shared))
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> RelayMetrics {
        self.shared.metrics.snapshot()
    }

    /// A handle that reads the relay's metrics while something else owns the relay.
    pub fn metrics_source(&self) -> MetricsSource {
        MetricsSource(Arc::clone(&self.shared))
    }

    /// Stops accepting, closes every connection (close code 1001) and waits until they are
    /// gone, at most a few seconds.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::warn!("relay accept task ended abnormally: {e}");
            }
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

fn local_socket(shared: &Arc<conn::Shared>, seed: SharedSeed) -> OutgoingSocket {
    let (to_relay, from_client) = mpsc::channel(LOCAL_QUEUE);
    let (to_client, from_relay) = mpsc::channel(LOCAL_QUEUE);
    tokio::spawn(conn::serve_local(
        from_client,
        to_client,
        Arc::clone(shared),
    ));
    OutgoingSocket::local(to_relay, from_relay, seed)
}

/// Frames queued each way on a local connection; backpressure does the rest, as on a socket.
const LOCAL_QUEUE: usize = 32;

/// How long shutdown waits for connections to say goodbye before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

async fn accept_loop(listener: TcpListener, shared: Arc<conn::Shared>) {
    let mut stop = shared.stop.clone();
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // A closed channel means the handle is gone: stop as well.
            _ = conn::stopped(&mut stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually EMFILE; back off instead of spinning on the same error.
                tracing::warn!("relay accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        inc(&shared.metrics.connections_total);
        let admission = match shared.admissions.admit(peer.ip()) {
            Ok(admission) => admission,
            Err(refusal) => {
                inc(match refusal {
                    Refusal::PerIp => &shared.metrics.per_ip_limit,
                    Refusal::Total => &shared.metrics.connection_limit,
                });
                tracing::debug!(%peer, ?refusal, "relay connection refused");
                continue; // dropping the stream closes it
            }
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(conn::serve(stream, peer, admission, Arc::clone(&shared)));
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    tracing::info!("moneysocket relay stopped");
}

/// Builds a TLS server configuration on the ring provider from a PEM certificate chain and
/// a PEM private key (PKCS#8, PKCS#1 or SEC1).
///
/// # Errors
///
/// [`RelayError::Tls`] if the PEM does not parse, holds no certificate, or the key does not
/// match.
pub fn server_tls_config_from_pem(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, RelayError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| RelayError::Tls(format!("certificate: {e}")))?;
    if certs.is_empty() {
        return Err(RelayError::Tls("no certificate in the PEM".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| RelayError::Tls(format!("private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RelayError::Tls(format!("protocol versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| RelayError::Tls(format!("certificate and key: {e}")))?;
    Ok(Arc::new(config))
}

/// [`server_tls_config_from_pem`] from files.
///
/// # Errors
///
/// [`RelayError::Tls`] if a file cannot be read or its contents are refused.
pub fn server_tls_config_from_pem_files(
    cert_chain: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, RelayError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| RelayError::Tls(format!("reading {}: {e}", p.display())))
    };
    server_tls_config_from_pem(&read(cert_chain)?, &read(key)?)
}
