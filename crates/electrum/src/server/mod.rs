//! The server: listeners for TCP, TLS, WebSocket and secure WebSocket, the thread that keeps
//! the index and mempool view level with the chain, and Prometheus metrics.

#[doc(hidden)]
pub mod fuzzing;
mod limits;
mod metrics;
mod session;
pub mod tls;
mod transport;

use std::collections::HashSet;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moip_chain::ChainSource;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, Notify};

pub use limits::Limits;
pub use metrics::Metrics;

use self::limits::{Accountant, Client};
use self::session::{next_update, Session};
use self::tls::TlsState;
use self::transport::Framed;
use crate::index::{Index, SyncProgress, Syncer};
use crate::protocol::ProtocolVersion;
use crate::query::Query;
use crate::types::ScriptHash;
use crate::ServerError;

/// How often the chain is polled when no event arrives (events normally wake the syncer).
const POLL_INTERVAL: Duration = Duration::from_millis(1_000);

/// A peer listed by `server.peers.subscribe`.
#[derive(Debug, Clone)]
pub struct Peer {
    pub host: String,
    pub tcp_port: Option<u16>,
    pub ssl_port: Option<u16>,
}

/// Settings of an Electrum server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The index lives in `<data_dir>/index`, a self-signed certificate in `<data_dir>/tls`.
    pub data_dir: PathBuf,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    pub wss: Option<SocketAddr>,
    /// A plain TCP listener for the host's own services (a node's Lightning wallet and
    /// on-chain wallets): its sessions are neither limited nor accounted, however much they
    /// sync. Bind it to loopback and advertise it nowhere; off by default.
    pub own_tcp: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    /// PEM certificate chain and key; a self-signed pair is made when absent.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub banner: String,
    pub donation_address: String,
    /// Host name advertised in `server.features`.
    pub public_host: Option<String>,
    /// `.onion` host advertised alongside (Tor discoverability).
    pub onion_host: Option<String>,
    pub peers: Vec<Peer>,
    /// When set, a private server: sessions must present this token.
    pub auth_token: Option<String>,
    pub limits: Limits,
    /// Threads fetching and indexing blocks during catch-up.
    pub index_threads: usize,
}

impl ServerConfig {
    /// A server for `data_dir` on loopback with the default ports.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        let local = |port| Some(SocketAddr::from(([127, 0, 0, 1], port)));
        ServerConfig {
            data_dir: data_dir.into(),
            tcp: local(50001),
            tls: local(50002),
            ws: local(50003),
            wss: local(50004),
            own_tcp: None,
            metrics: None,
            tls_cert: None,
            tls_key: None,
            banner: format!("Welcome to moip-electrum {}", env!("CARGO_PKG_VERSION")),
            donation_address: String::new(),
            public_host: None,
            onion_host: None,
            peers: Vec::new(),
            auth_token: None,
            limits: Limits::default(),
            index_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }

    /// Every listener on loopback port 0 (for tests and benchmarks). Their clients all come
    /// from 127.0.0.1, which is therefore exempt from the limits here; a test of the limits
    /// clears `limits.exempt`.
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> ServerConfig {
        let any = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        let mut config = ServerConfig {
            tcp: any,
            tls: any,
            ws: any,
            wss: any,
            metrics: any,
            ..ServerConfig::new(data_dir)
        };
        config.limits.exempt = vec![IpAddr::from([127, 0, 0, 1])];
        config
    }

    pub(crate) fn server_version(&self) -> String {
        format!("moip-electrum {}", env!("CARGO_PKG_VERSION"))
    }

    pub(crate) fn features(&self, genesis: &str) -> Value {
        let mut hosts = serde_json::Map::new();
        let ports = json!({
            "tcp_port": self.tcp.map(|a| a.port()),
            "ssl_port": self.tls.map(|a| a.port()),
        });
        for host in self.public_host.iter().chain(self.onion_host.iter()) {
            hosts.insert(host.clone(), ports.clone());
        }
        json!({
            "genesis_hash": genesis,
            "hash_function": "sha256",
            "server_version": self.server_version(),
            "protocol_min": ProtocolVersion::MIN.to_string(),
            "protocol_max": ProtocolVersion::MAX.to_string(),
            "pruning": null,
            "hosts": hosts,
        })
    }

    pub(crate) fn peers_json(&self) -> Value {
        let mut peers: Vec<Value> = self
            .peers
            .iter()
            .map(|p| {
                let mut features = vec![format!("v{}", ProtocolVersion::MAX)];
                features.extend(p.ssl_port.map(|port| format!("s{port}")));
                features.extend(p.tcp_port.map(|port| format!("t{port}")));
                json!([p.host, p.host, features])
            })
            .collect();
        if let Some(onion) = &self.onion_host {
            let mut features = vec![format!("v{}", ProtocolVersion::MAX)];
            features.extend(self.tls.map(|a| format!("s{}", a.port())));
            features.extend(self.tcp.map(|a| format!("t{}", a.port())));
            peers.push(json!([onion, onion, features]));
        }
        Value::Array(peers)
    }
}

/// A chain change, fanned out to every session.
#[derive(Debug, Default)]
pub struct Update {
    /// The new tip `{hex, height}`, when it moved.
    pub tip: Option<Value>,
    /// Scripts whose status may have changed; `None` means any.
    pub scripts: Option<HashSet<ScriptHash>>,
}

pub(crate) struct Shared {
    pub query: Arc<Query>,
    pub config: ServerConfig,
    pub accountant: Accountant,
    pub metrics: Metrics,
    pub updates: broadcast::Sender<Arc<Update>>,
    pub synced: AtomicBool,
}

impl Shared {
    /// The state of a server with `config` over `query`, its accounting fresh, its updates
    /// broadcast with room for `updates` messages.
    pub(crate) fn new(
        query: Arc<Query>,
        config: ServerConfig,
        updates: usize,
        synced: bool,
    ) -> Shared {
        Shared {
            query,
            accountant: Accountant::new(config.limits.clone()),
            metrics: Metrics::default(),
            updates: broadcast::channel(updates).0,
            synced: AtomicBool::new(synced),
            config,
        }
    }
}

/// Reads a running server's state; see [`ElectrumServer::status`].
#[derive(Clone)]
pub struct ServerStatus(Arc<Shared>);

impl ServerStatus {
    /// Client sessions open now.
    pub fn sessions(&self) -> u64 {
        self.0.metrics.sessions.load(Ordering::Relaxed)
    }

    /// Scripthash subscriptions held now, over all sessions.
    pub fn subscriptions(&self) -> u64 {
        self.0.metrics.subscriptions.load(Ordering::Relaxed)
    }

    /// Height of the indexed tip.
    pub fn indexed_height(&self) -> Option<u32> {
        self.0.query.index.tip().map(|(h, _)| h)
    }

    /// Whether the initial indexing has reached the chain tip.
    pub fn is_synced(&self) -> bool {
        self.0.synced.load(Ordering::Acquire)
    }
}

/// Where a running server listens.
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    pub wss: Option<SocketAddr>,
    /// The host's own, unlimited listener ([`ServerConfig::own_tcp`]).
    pub own_tcp: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
}

/// A running Electrum server. [`ElectrumServer::shutdown`] stops it.
pub struct ElectrumServer {
    shared: Arc<Shared>,
    addresses: Addresses,
    stop: Arc<AtomicBool>,
    stop_notify: Arc<Notify>,
    syncer: Option<std::thread::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    tls_cert: Option<PathBuf>,
}

impl ElectrumServer {
    /// Opens the index, starts following `source` and binds every configured listener.
    /// Must be called on a tokio runtime.
    ///
    /// # Errors
    /// Fails if the index cannot be opened, a port cannot be bound or TLS cannot be set up.
    pub async fn start(
        source: Arc<dyn ChainSource>,
        mut config: ServerConfig,
    ) -> Result<ElectrumServer, ServerError> {
        let index = Arc::new(Index::open(&config.data_dir.join("index"))?);
        let query = Arc::new(Query::new(
            index,
            Arc::clone(&source),
            config.limits.max_history,
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let stop_notify = Arc::new(Notify::new());
        let mut addresses = Addresses::default();
        let mut tasks = Vec::new();

        let tls = if config.tls.is_some() || config.wss.is_some() {
            let generate = config.tls_cert.is_none();
            let cert = config
                .tls_cert
                .clone()
                .unwrap_or_else(|| config.data_dir.join("tls/cert.pem"));
            let key = config
                .tls_key
                .clone()
                .unwrap_or_else(|| config.data_dir.join("tls/key.pem"));
            let names = config.public_host.iter().cloned().collect();
            Some(Arc::new(TlsState::open(cert, key, generate, names)?))
        } else {
            None
        };
        let tls_cert = tls.as_ref().map(|_| {
            config
                .tls_cert
                .clone()
                .unwrap_or_else(|| config.data_dir.join("tls/cert.pem"))
        });

        // Bind first, so what `server.features` advertises is the ports actually bound.
        let mut listeners = Vec::new();
        for (kind, addr) in [
            (Kind::Tcp, config.tcp),
            (Kind::Tls, config.tls),
            (Kind::Ws, config.ws),
            (Kind::Wss, config.wss),
            (Kind::OwnTcp, config.own_tcp),
        ] {
            let Some(addr) = addr else { continue };
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| ServerError::Bind(addr, e.to_string()))?;
            let bound = listener
                .local_addr()
                .map_err(|e| ServerError::Bind(addr, e.to_string()))?;
            let slot = match kind {
                Kind::Tcp => &mut addresses.tcp,
                Kind::Tls => &mut addresses.tls,
                Kind::Ws => &mut addresses.ws,
                Kind::Wss => &mut addresses.wss,
                Kind::OwnTcp => &mut addresses.own_tcp,
            };
            *slot = Some(bound);
            listeners.push((kind, listener, bound));
        }
        (
            config.tcp,
            config.tls,
            config.ws,
            config.wss,
            config.own_tcp,
        ) = (
            addresses.tcp,
            addresses.tls,
            addresses.ws,
            addresses.wss,
            addresses.own_tcp,
        );
        let shared = Arc::new(Shared::new(query, config.clone(), 4_096, false));
        for (kind, listener, bound) in listeners {
            tasks.push(tokio::spawn(accept_loop(
                listener,
                kind,
                Arc::clone(&shared),
                tls.clone(),
                Arc::clone(&stop_notify),
            )));
            tracing::info!(%bound, ?kind, "Electrum listener");
        }
        if let Some(tls) = tls.clone() {
            let stop_notify = Arc::clone(&stop_notify);
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(tls::RELOAD_INTERVAL) => { tls.reload_if_changed(); }
                        _ = stop_notify.notified() => return,
                    }
                }
            }));
        }
        if let Some(addr) = config.metrics {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| ServerError::Bind(addr, e.to_string()))?;
            addresses.metrics = Some(
                listener
                    .local_addr()
                    .map_err(|e| ServerError::Bind(addr, e.to_string()))?,
            );
            let shared = Arc::clone(&shared);
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let shared = Arc::clone(&shared);
                    async move { shared.metrics.render() }
                }),
            );
            let stop_notify = Arc::clone(&stop_notify);
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop_notify.notified().await })
                    .await;
            }));
        }

        let syncer = {
            let (shared, stop, source) =
                (Arc::clone(&shared), Arc::clone(&stop), Arc::clone(&source));
            std::thread::Builder::new()
                .name("electrum-sync".into())
                .spawn(move || follow(shared, source, stop))
                .map_err(|e| ServerError::Io(e.to_string()))?
        };
        Ok(ElectrumServer {
            shared,
            addresses,
            stop,
            stop_notify,
            syncer: Some(syncer),
            tasks,
            tls_cert,
        })
    }

    /// Where it listens.
    pub fn addresses(&self) -> &Addresses {
        &self.addresses
    }

    /// Whether the initial indexing has reached the chain tip.
    pub fn is_synced(&self) -> bool {
        self.shared.synced.load(Ordering::Acquire)
    }

    /// Height of the indexed tip.
    pub fn indexed_height(&self) -> Option<u32> {
        self.shared.query.index.tip().map(|(h, _)| h)
    }

    /// Bytes of the index on disk.
    pub fn index_size(&self) -> u64 {
        self.shared.query.index.size_on_disk()
    }

    /// The TLS certificate in use (to pin it in clients).
    pub fn tls_certificate(&self) -> Option<&std::path::Path> {
        self.tls_cert.as_deref()
    }

    /// Metrics in Prometheus text form.
    pub fn metrics(&self) -> String {
        self.shared.metrics.render()
    }

    /// A handle that reads the server's state while something else owns the server (a
    /// dashboard beside it).
    pub fn status(&self) -> ServerStatus {
        ServerStatus(Arc::clone(&self.shared))
    }

    /// Stops listening, closes sessions, stops the syncer and flushes the index.
    pub async fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.stop_notify.notify_waiters();
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
        if let Some(syncer) = self.syncer.take() {
            let _ = tokio::task::spawn_blocking(move || syncer.join()).await;
        }
        if let Err(e) = self.shared.query.index.flush() {
            tracing::warn!("flushing the index at shutdown: {e}");
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tcp,
    Tls,
    Ws,
    Wss,
    /// Plain TCP for the host's own services, unlimited.
    OwnTcp,
}

async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    shared: Arc<Shared>,
    tls: Option<Arc<TlsState>>,
    stop: Arc<Notify>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.notified() => return,
        };
        shared
            .metrics
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        let client = shared
            .accountant
            .client(peer.ip(), matches!(kind, Kind::OwnTcp));
        if let Err(why) = shared.accountant.connect(client) {
            shared
                .metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, why, "connection refused");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (shared, tls) = (Arc::clone(&shared), tls.clone());
        tokio::spawn(async move {
            shared.metrics.sessions.fetch_add(1, Ordering::Relaxed);
            let subs = serve_connection(stream, client, kind, Arc::clone(&shared), tls).await;
            shared.metrics.sessions.fetch_sub(1, Ordering::Relaxed);
            shared
                .metrics
                .subscriptions
                .fetch_sub(subs as u64, Ordering::Relaxed);
            shared.accountant.disconnect(client, subs);
        });
    }
}

/// Runs one connection to its end; returns how many subscriptions it held.
async fn serve_connection(
    stream: TcpStream,
    peer: Client,
    kind: Kind,
    shared: Arc<Shared>,
    tls: Option<Arc<TlsState>>,
) -> usize {
    let max = shared.accountant.limits().max_line;
    let handshake = Duration::from_secs(20);
    let token = shared.config.auth_token.clone();
    match kind {
        Kind::Tcp | Kind::OwnTcp => run(Framed::lines(stream, max), peer, shared, false).await,
        Kind::Tls => {
            let Some(tls) = tls else { return 0 };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
            match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                Ok(Ok(s)) => run(Framed::lines(s, max), peer, shared, false).await,
                _ => 0,
            }
        }
        Kind::Ws => {
            match tokio::time::timeout(handshake, ws_accept(stream, max, token.as_deref())).await {
                Ok(Ok((ws, authed))) => run(Framed::websocket(ws, max), peer, shared, authed).await,
                _ => 0,
            }
        }
        Kind::Wss => {
            let Some(tls) = tls else { return 0 };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
            let upgraded = tokio::time::timeout(handshake, async {
                let s = acceptor.accept(stream).await.map_err(|e| e.to_string())?;
                ws_accept(s, max, token.as_deref())
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
            match upgraded {
                Ok(Ok((ws, authed))) => run(Framed::websocket(ws, max), peer, shared, authed).await,
                _ => 0,
            }
        }
    }
}

/// Upgrades to WebSocket; a `token` URL parameter matching the server's authenticates.
// The handshake callback's error type is tungstenite's HTTP response, large by design.
#[allow(clippy::result_large_err)]
async fn ws_accept<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: S,
    max: usize,
    token: Option<&str>,
) -> Result<(tokio_tungstenite::WebSocketStream<S>, bool), tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let mut authed = false;
    let callback = |req: &Request, resp: Response| {
        if let (Some(expected), Some(query)) = (token, req.uri().query()) {
            authed = query
                .split('&')
                .any(|kv| kv.strip_prefix("token=").is_some_and(|t| t == expected));
        }
        Ok(resp)
    };
    let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    config.max_message_size = Some(max);
    config.max_frame_size = Some(max);
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    Ok((ws, authed))
}

async fn run<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send>(
    mut framed: Framed<S>,
    peer: Client,
    shared: Arc<Shared>,
    authed: bool,
) -> usize {
    let mut session = Session::new(Arc::clone(&shared), peer, authed);
    let mut updates = shared.updates.subscribe();
    let idle = shared.accountant.limits().idle_timeout;
    let line_timeout = shared.accountant.limits().line_timeout;
    loop {
        // Silence may last `idle`; a line, once begun, must end within `line_timeout`.
        let wait = match framed.line_begun() {
            Some(begun) => line_timeout.min(idle).saturating_sub(begun.elapsed()),
            None => idle,
        };
        tokio::select! {
            message = tokio::time::timeout(wait, framed.recv()) => {
                let text = match message {
                    Err(_) => break, // idle, or a line too slow to come
                    Ok(None) => break,
                    Ok(Some(Ok(text))) => text,
                    Ok(Some(Err(e))) => {
                        let reply = crate::protocol::reply(&Value::Null, Err(crate::protocol::RpcError::new(crate::protocol::INVALID_REQUEST, e.to_string())));
                        let _ = framed.send(reply.to_string()).await;
                        break;
                    }
                };
                let outcome = session.handle(&text).await;
                for reply in outcome.replies {
                    if framed.send(reply).await.is_err() {
                        return session.subscriptions();
                    }
                }
                if outcome.close {
                    break;
                }
            }
            update = next_update(&mut updates) => {
                let Some(update) = update else { break };
                for n in session.on_update(update.as_deref()).await {
                    if framed.send(n).await.is_err() {
                        return session.subscriptions();
                    }
                }
            }
        }
    }
    framed.close().await;
    session.subscriptions()
}

/// Keeps the index and the mempool view level with the chain, and announces changes.
fn follow(shared: Arc<Shared>, source: Arc<dyn ChainSource>, stop: Arc<AtomicBool>) {
    let mut events = source.subscribe();
    // A clock of its own for waiting on events, so this thread does not depend on (or outlive)
    // the server's runtime.
    let clock = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("the Electrum syncer cannot start: {e}");
            return;
        }
    };
    let query = Arc::clone(&shared.query);
    let threads = shared.config.index_threads;
    let started = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "indexing {bar:40} {pos}/{len} blocks, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut last_log = Instant::now();
    let mut last_size: Option<Instant> = None;
    let mut report = |p: SyncProgress| {
        if let Some(bar) = &bar {
            bar.set_length(u64::from(p.target));
            bar.set_position(u64::from(p.height));
        } else if last_log.elapsed() >= Duration::from_secs(5) || p.height == p.target {
            last_log = Instant::now();
            let eta = p
                .eta()
                .map_or("?".to_owned(), |d| format!("{}s", d.as_secs()));
            tracing::info!(height = p.height, target = p.target, eta, "indexing");
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let synced = shared.synced.load(Ordering::Acquire);
        let result = {
            // Once live, index and mempool view move together under the update lock.
            let _guard = synced.then(|| query.update.write().expect("update lock"));
            let syncer = Syncer {
                index: &query.index,
                source: source.as_ref(),
                threads,
            };
            syncer.sync(&mut report).and_then(|outcome| {
                let changed = query
                    .mempool
                    .write()
                    .expect("mempool")
                    .sync(source.as_ref())?;
                Ok((outcome, changed))
            })
        };
        match result {
            Ok((outcome, changed)) => {
                if !synced {
                    shared.synced.store(true, Ordering::Release);
                    if let Some(bar) = &bar {
                        bar.finish_and_clear();
                    }
                    let _ = query.index.flush();
                    tracing::info!(
                        height = query.index.tip().map(|t| t.0),
                        secs = started.elapsed().as_secs(),
                        "index caught up with the chain"
                    );
                }
                if outcome.tip_changed || !changed.is_empty() {
                    let scripts = outcome.touched_complete.then(|| {
                        let mut all = outcome.touched;
                        all.extend(changed);
                        all
                    });
                    query.invalidate(scripts.as_ref(), outcome.disconnected > 0);
                    let tip = if outcome.tip_changed {
                        query.tip()
                    } else {
                        None
                    };
                    let _ = shared.updates.send(Arc::new(Update { tip, scripts }));
                }
                shared.metrics.index_height.store(
                    query.index.tip().map_or(0, |t| u64::from(t.0)),
                    Ordering::Relaxed,
                );
                shared.metrics.mempool_txs.store(
                    query.mempool.read().expect("mempool").len() as u64,
                    Ordering::Relaxed,
                );
            }
            Err(e) => {
                tracing::warn!("sync failed, retrying: {e}");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        // Wait for the next chain event (or the poll interval), then drain the burst.
        let waited =
            clock.block_on(async { tokio::time::timeout(POLL_INTERVAL, events.recv()).await });
        if let Ok(Err(broadcast::error::RecvError::Closed)) = waited {
            events = source.subscribe();
        }
        while events.try_recv().is_ok() {}
        if last_size.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            shared
                .metrics
                .index_bytes
                .store(query.index.size_on_disk(), Ordering::Relaxed);
            last_size = Some(Instant::now());
        }
    }
}
