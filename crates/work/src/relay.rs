//! The in-process Nostr relay a community node runs by default (rust-nostr's
//! `nostr-relay-builder`, events in memory): on loopback unless told otherwise, with limits
//! sized for one community — a burst of events from one connection (a node publishing its
//! receipts) is normal here, so the per-connection rate is far above a public relay's.
//!
//! The relay builder's own listener waits for ever on a connection that never finishes its
//! WebSocket upgrade request, so one client could hold hundreds of sockets for nothing. This
//! module accepts the connections itself instead: the upgrade request must arrive whole within
//! [`HANDSHAKE_TIMEOUT`] and fit in [`MAX_UPGRADE_REQUEST`] bytes, at most [`MAX_PENDING`]
//! connections may be in that state at once, and only then is the socket handed to the relay.
//! The relay builder also reads WebSocket messages with tungstenite's defaults (64 MiB a
//! message), so each connection is read here, with [`MAX_MESSAGE`], and its messages passed on
//! to the relay over an in-memory stream: a client cannot make the node hold more than that.
//!
//! What a client may make the node hold is bounded too ([`RelayLimits`]): an event larger than
//! [`RelayLimits::max_event_bytes`] (a follow list: [`RelayLimits::max_follow_list_bytes`]) is
//! refused with `["OK", id, false, "invalid: event too large …"]` and the connection stays open;
//! a connection publishing more than [`RelayLimits::events_per_minute`] gets
//! `["OK", id, false, "rate-limited: slow down"]`; an event dated more than
//! [`RelayLimits::max_future_secs`] ahead is refused (`blocked: …`), as the store, which keeps at
//! most [`RelayLimits::max_stored_events`] events, drops the oldest first and would otherwise
//! fill up with them for good. So the relay holds at most `max_stored_events` events of at most
//! `max_follow_list_bytes` each, whoever writes to it (`docs/reliability.md` has the memory
//! measured under a flood).
//!
//! The store is shared, so each author (a key, over any number of connections) has a share of
//! it too, or one key could push everyone else's events out: at most
//! [`RelayLimits::author_events_per_minute`] events a minute and
//! [`RelayLimits::author_stored_events`] events kept, then `["OK", id, false, "blocked: author
//! quota: …"]`. The keys the Work service knows ([`Members`], filled by the service when given
//! [`crate::service::ServiceConfig::relay_members`]) have the larger `member_*` share: the
//! service's own key publishes a receipt per decision and a score assertion per scored key.
//!
//! The store (nostr-database's memory store) never forgets an author: dropping an author's last
//! event leaves that author's empty index entries behind, and every replaced or deleted event's
//! id stays in a set of deleted ids. Under a flood of fresh keys that grows without end after
//! the store is full, so [`Store`] rebuilds it from the events it holds after every
//! `max_stored_events` events saved.
//!
//! A relay reachable from other machines ([`Relay::start_public`]) speaks `wss://` there, the
//! TLS handshake inside the same time limit, and keeps a plain `ws://` listener on loopback for
//! the node's own services, so they need no certificate to reach it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use nostr_relay_builder::builder::RateLimit;
use nostr_relay_builder::builder::{PolicyResult, WritePolicy};
use nostr_relay_builder::prelude::{
    Backend, BoxedFuture, DatabaseError, DatabaseEventStatus, Event, EventId, Events, Filter,
    MemoryDatabase, MemoryDatabaseOptions, NostrDatabase, PublicKey, SaveEventStatus, Timestamp,
};
use nostr_relay_builder::{LocalRelay, RelayBuilder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The relay could not start.
#[derive(Debug, thiserror::Error)]
#[error("nostr relay: {0}")]
pub struct RelayError(String);

/// Most events one connection may publish per minute, by default: a node's own client
/// publishing a round of score assertions (at most 2,000) and its receipts fits.
pub const NOTES_PER_MINUTE: u32 = 6_000;

/// Largest event, by default, other than a follow list: Work events carry at most
/// [`crate::events::MAX_CONTENT`] (16 KiB) of content.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Largest follow list (kind 3), by default: about 900 keys. Longer lists add little trust
/// (GrapeRank splits a rater's confidence over everyone it follows), and a follow list takes
/// about seven times its size in the relay's memory (measured: `docs/reliability.md`).
pub const MAX_FOLLOW_LIST_BYTES: usize = 64 * 1024;

/// Most events the relay keeps in memory, by default: about 2.5 GB with every one a follow
/// list at its limit (from the memory measured per event: `docs/reliability.md`).
pub const MAX_STORED_EVENTS: usize = 5_000;

/// How far ahead of the relay's clock an event's `created_at` may be, by default. The store
/// drops its oldest events first when full, so events dated in the future would stay for ever
/// and push out every real one.
pub const MAX_FUTURE_SECS: u64 = 15 * 60;

/// Most events one author may publish per minute, by default, over all its connections: a
/// member acting by hand, an app's requests, a newcomer's first events fit many times over.
pub const AUTHOR_EVENTS_PER_MINUTE: u32 = 600;

/// Most events of one author kept, by default: a twentieth of the store, so that one key
/// cannot push out the events of others.
pub const AUTHOR_STORED_EVENTS: usize = 250;

/// Most authors whose events of the current minute are counted; when that many have
/// published this minute, a new author who is not a member waits for the next minute. Bounds
/// the count's memory (about 50 bytes an author) under a flood of fresh keys.
pub const MAX_AUTHORS_PER_MINUTE: usize = 100_000;

/// Most open subscriptions per connection.
pub const MAX_SUBSCRIPTIONS: usize = 500;

/// Most connections.
pub const MAX_CONNECTIONS: usize = 1_000;

/// Time a connection has to send its whole WebSocket upgrade request.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest upgrade request read (browsers send well under 2 KiB).
pub const MAX_UPGRADE_REQUEST: usize = 8 * 1024;

/// Connections that may be in their upgrade at once; more are closed at once.
pub const MAX_PENDING: usize = 256;

/// Largest WebSocket message (and frame) read from a client; a larger one closes the
/// connection. Events are held to the smaller [`RelayLimits`] with an answer instead.
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// What the relay takes from its clients. [`Default`] gives the constants above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// Largest event (its `["EVENT", …]` message, in bytes) other than a follow list.
    pub max_event_bytes: usize,
    /// Largest follow list (kind 3) message; at most [`MAX_MESSAGE`].
    pub max_follow_list_bytes: usize,
    /// Most events one connection may publish per minute.
    pub events_per_minute: u32,
    /// Most events kept in memory; the oldest (by `created_at`) go first.
    pub max_stored_events: usize,
    /// How far ahead of the relay's clock an event may be dated, in seconds.
    pub max_future_secs: u64,
    /// Most events one author not in [`Members`] may publish per minute (all connections).
    pub author_events_per_minute: u32,
    /// Most events of one author not in [`Members`] kept in the store.
    pub author_stored_events: usize,
    /// [`RelayLimits::author_events_per_minute`] for a member.
    pub member_events_per_minute: u32,
    /// [`RelayLimits::author_stored_events`] for a member.
    pub member_stored_events: usize,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_event_bytes: MAX_EVENT_BYTES,
            max_follow_list_bytes: MAX_FOLLOW_LIST_BYTES,
            events_per_minute: NOTES_PER_MINUTE,
            max_stored_events: MAX_STORED_EVENTS,
            max_future_secs: MAX_FUTURE_SECS,
            author_events_per_minute: AUTHOR_EVENTS_PER_MINUTE,
            author_stored_events: AUTHOR_STORED_EVENTS,
            member_events_per_minute: NOTES_PER_MINUTE,
            member_stored_events: MAX_STORED_EVENTS,
        }
    }
}

impl RelayLimits {
    /// Why an `["EVENT", …]` message of `len` bytes for an event of `kind` is refused, if it is.
    fn refuse(&self, kind: u64, len: usize) -> Option<String> {
        let most = if kind == u64::from(crate::events::KIND_FOLLOWS) {
            self.max_follow_list_bytes
        } else {
            self.max_event_bytes
        };
        (len > most).then(|| format!("invalid: event too large: {len} bytes, at most {most}"))
    }
}

/// The keys that get the relay's larger `member_*` share ([`RelayLimits`]): the Work service
/// sets them to the authors it reads trust signals from (its own key and every key with a
/// score), and the node's other services are kept ([`Members::keep`]) — the NWC service
/// answers every app's requests with its one key. Cloned handles share one set.
#[derive(Clone, Debug, Default)]
pub struct Members(Arc<RwLock<MemberKeys>>);

#[derive(Debug, Default)]
struct MemberKeys {
    /// Given by [`Members::keep`], for good.
    kept: HashSet<PublicKey>,
    /// Given by [`Members::set`], each time in place of the last.
    set: HashSet<PublicKey>,
}

impl Members {
    /// Makes `keys` the members, in place of those set before (kept ones stay).
    pub fn set(&self, keys: impl IntoIterator<Item = PublicKey>) {
        let keys: HashSet<PublicKey> = keys.into_iter().collect();
        self.0.write().unwrap_or_else(|e| e.into_inner()).set = keys;
    }

    /// Makes `key` a member for good (a service of the node's own).
    pub fn keep(&self, key: PublicKey) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .kept
            .insert(key);
    }

    /// Whether `key` is a member.
    pub fn contains(&self, key: &PublicKey) -> bool {
        let keys = self.0.read().unwrap_or_else(|e| e.into_inner());
        keys.kept.contains(key) || keys.set.contains(key)
    }
}

/// Holds each author to its share of the relay ([`RelayLimits::author_events_per_minute`],
/// [`RelayLimits::author_stored_events`], larger for [`Members`]). The store's count and the
/// save that follows are not one step, so concurrent connections of one author may each pass
/// the count once: an author holds at most its share plus its connections less one.
#[derive(Debug)]
struct AuthorQuota {
    limits: RelayLimits,
    members: Members,
    store: Store,
    /// The current minute (since the epoch) and each author's events in it.
    minute: Mutex<(u64, HashMap<PublicKey, u32>)>,
}

impl AuthorQuota {
    /// Counts `author`'s event in this minute: why it is refused, if it is.
    fn count_minute(&self, author: &PublicKey, member: bool) -> Option<String> {
        let most = if member {
            self.limits.member_events_per_minute
        } else {
            self.limits.author_events_per_minute
        };
        let now = Timestamp::now().as_secs() / 60;
        let mut minute = self.minute.lock().unwrap_or_else(|e| e.into_inner());
        if minute.0 != now {
            *minute = (now, HashMap::new());
        }
        let full = minute.1.len() >= MAX_AUTHORS_PER_MINUTE;
        let count = match minute.1.get_mut(author) {
            Some(count) => count,
            None if full && !member => {
                return Some("author quota: too many authors this minute, retry later".into())
            }
            None => minute.1.entry(*author).or_default(),
        };
        *count = count.saturating_add(1);
        (*count > most).then(|| format!("author quota: more than {most} events this minute"))
    }

    /// Why `event` would take more than its author's share of the store, if it would.
    async fn check_stored(&self, event: &Event, member: bool) -> Option<String> {
        if event.kind.is_ephemeral() {
            return None;
        }
        let most = if member {
            self.limits.member_stored_events
        } else {
            self.limits.author_stored_events
        };
        let author = Filter::new().author(event.pubkey);
        let stored = self.store.count(author.clone()).await.unwrap_or(usize::MAX);
        if stored < most {
            return None;
        }
        // A replaceable event in place of the author's one of its kind takes no more room.
        if event.kind.is_replaceable()
            && self.store.count(author.kind(event.kind)).await.unwrap_or(0) > 0
        {
            return None;
        }
        Some(format!(
            "author quota: {stored} events of this author kept, at most {most}"
        ))
    }
}

impl WritePolicy for AuthorQuota {
    fn admit_event<'a>(
        &'a self,
        event: &'a Event,
        _addr: &'a SocketAddr,
    ) -> BoxedFuture<'a, PolicyResult> {
        Box::pin(async move {
            let member = self.members.contains(&event.pubkey);
            let refused = match self.count_minute(&event.pubkey, member) {
                Some(reason) => Some(reason),
                None => self.check_stored(event, member).await,
            };
            refused.map_or(PolicyResult::Accept, PolicyResult::Reject)
        })
    }
}

/// The relay's store: nostr-database's memory store, rebuilt from the events it holds after
/// every `compact_every` events saved. That store keeps, for good, an empty index entry per
/// author and per (kind, author) once their events are gone, and the id of every event
/// replaced or deleted (nostr-database 0.44.0, `helper.rs`, `InternalDatabaseHelper`:
/// `author_index`, `kind_author_index`, `deleted_ids`): a flood of fresh keys grows them
/// without end after the store is full. A rebuild keeps what is stored; what it forgets is
/// which deleted event ids to refuse, so an event deleted (NIP-09) before a rebuild can be
/// stored again if re-published — its deletion event is still served beside it.
#[derive(Clone, Debug)]
struct Store(Arc<StoreInner>);

#[derive(Debug)]
struct StoreInner {
    current: RwLock<MemoryDatabase>,
    /// Reads share it; a save and a rebuild hold it alone, so no reader sees a rebuild half
    /// done and no save is lost to one.
    gate: tokio::sync::RwLock<()>,
    /// Saves since the last rebuild.
    saved: Mutex<usize>,
    max_events: usize,
    compact_every: usize,
}

/// Events moved at a time by a rebuild: its memory beyond the store's own.
const REBUILD_CHUNK: usize = 250;

impl Store {
    fn new(max_events: usize) -> Store {
        let max_events = max_events.max(1);
        Store(Arc::new(StoreInner {
            current: RwLock::new(Store::empty(max_events)),
            gate: tokio::sync::RwLock::new(()),
            saved: Mutex::new(0),
            max_events,
            compact_every: max_events.max(1_000),
        }))
    }

    fn empty(max_events: usize) -> MemoryDatabase {
        MemoryDatabase::with_opts(MemoryDatabaseOptions {
            events: true,
            max_events: Some(max_events),
        })
    }

    /// The current store (a handle: clones share it).
    fn current(&self) -> MemoryDatabase {
        self.0
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Moves the stored events, oldest first, into a fresh store and puts it in place; the
    /// caller holds the gate. They move [`REBUILD_CHUNK`] at a time, each chunk deleted from
    /// the old store once the fresh one has it, so a rebuild holds the store once plus a
    /// chunk, not twice.
    async fn rebuild(&self) -> Result<(), DatabaseError> {
        let old = self.current();
        let mut order = old.negentropy_items(Filter::new()).await?;
        order.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        let fresh = Store::empty(self.0.max_events);
        for chunk in order.chunks(REBUILD_CHUNK) {
            let ids = Filter::new().ids(chunk.iter().map(|(id, _)| *id));
            // Newest first: popped, oldest first.
            let mut events = old.query(ids.clone()).await?.to_vec();
            while let Some(event) = events.pop() {
                fresh.save_event(&event).await?;
            }
            old.delete(ids).await?;
        }
        *self.0.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

impl NostrDatabase for Store {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    fn save_event<'a>(
        &'a self,
        event: &'a Event,
    ) -> BoxedFuture<'a, Result<SaveEventStatus, DatabaseError>> {
        Box::pin(async move {
            let _alone = self.0.gate.write().await;
            let status = self.current().save_event(event).await?;
            let rebuild = {
                let mut saved = self.0.saved.lock().unwrap_or_else(|e| e.into_inner());
                *saved += 1;
                let due = *saved >= self.0.compact_every;
                if due {
                    *saved = 0;
                }
                due
            };
            if rebuild {
                self.rebuild().await?;
            }
            Ok(status)
        })
    }

    fn check_id<'a>(
        &'a self,
        event_id: &'a EventId,
    ) -> BoxedFuture<'a, Result<DatabaseEventStatus, DatabaseError>> {
        Box::pin(async move {
            let _shared = self.0.gate.read().await;
            self.current().check_id(event_id).await
        })
    }

    fn event_by_id<'a>(
        &'a self,
        event_id: &'a EventId,
    ) -> BoxedFuture<'a, Result<Option<Event>, DatabaseError>> {
        Box::pin(async move {
            let _shared = self.0.gate.read().await;
            self.current().event_by_id(event_id).await
        })
    }

    fn count(&self, filter: Filter) -> BoxedFuture<'_, Result<usize, DatabaseError>> {
        Box::pin(async move {
            let _shared = self.0.gate.read().await;
            self.current().count(filter).await
        })
    }

    fn query(&self, filter: Filter) -> BoxedFuture<'_, Result<Events, DatabaseError>> {
        Box::pin(async move {
            let _shared = self.0.gate.read().await;
            self.current().query(filter).await
        })
    }

    fn negentropy_items(
        &self,
        filter: Filter,
    ) -> BoxedFuture<'_, Result<Vec<(EventId, Timestamp)>, DatabaseError>> {
        Box::pin(async move {
            let _shared = self.0.gate.read().await;
            self.current().negentropy_items(filter).await
        })
    }

    fn delete(&self, filter: Filter) -> BoxedFuture<'_, Result<(), DatabaseError>> {
        Box::pin(async move {
            let _alone = self.0.gate.write().await;
            self.current().delete(filter).await
        })
    }

    fn wipe(&self) -> BoxedFuture<'_, Result<(), DatabaseError>> {
        Box::pin(async move {
            let _alone = self.0.gate.write().await;
            self.current().wipe().await
        })
    }
}

/// Bytes buffered between a connection's reader and the relay.
const BRIDGE_BUFFER: usize = 64 * 1024;

/// A running relay and its URLs.
pub struct Relay {
    relay: LocalRelay,
    members: Members,
    url: String,
    public_url: String,
    stop: watch::Sender<bool>,
}

async fn listen(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), RelayError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| RelayError(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| RelayError(e.to_string()))?;
    Ok((listener, local))
}

/// Refuses events dated more than `max_future_secs` ahead (see [`MAX_FUTURE_SECS`]); the relay
/// answers `["OK", id, false, "blocked: …"]`.
#[derive(Debug)]
struct NotFromTheFuture {
    max_future_secs: u64,
}

impl WritePolicy for NotFromTheFuture {
    fn admit_event<'a>(
        &'a self,
        event: &'a Event,
        _addr: &'a SocketAddr,
    ) -> BoxedFuture<'a, PolicyResult> {
        let latest = Timestamp::now()
            .as_secs()
            .saturating_add(self.max_future_secs);
        let result = if event.created_at.as_secs() > latest {
            PolicyResult::Reject(format!(
                "created_at is more than {} s in the future",
                self.max_future_secs
            ))
        } else {
            PolicyResult::Accept
        };
        Box::pin(async move { result })
    }
}

fn new_relay(local: SocketAddr, limits: &RelayLimits, members: &Members) -> LocalRelay {
    let store = Store::new(limits.max_stored_events);
    let builder = RelayBuilder::default()
        .addr(local.ip())
        .port(local.port())
        .database(store.clone())
        .write_policy(NotFromTheFuture {
            max_future_secs: limits.max_future_secs,
        })
        .write_policy(AuthorQuota {
            limits: limits.clone(),
            members: members.clone(),
            store,
            minute: Mutex::new((0, HashMap::new())),
        })
        .max_connections(MAX_CONNECTIONS)
        .rate_limit(RateLimit {
            max_reqs: MAX_SUBSCRIPTIONS,
            notes_per_minute: limits.events_per_minute,
        });
    // Not `run`: the connections come from the accept loops below.
    LocalRelay::new(builder)
}

impl Relay {
    /// Starts a relay on `addr` (port 0 for any free port), plain `ws://`, with the default
    /// [`RelayLimits`].
    ///
    /// # Errors
    /// [`RelayError`] when it cannot bind.
    pub async fn start(addr: SocketAddr) -> Result<Relay, RelayError> {
        Relay::start_with(addr, RelayLimits::default()).await
    }

    /// [`Relay::start`] with `limits`.
    ///
    /// # Errors
    /// [`RelayError`] when it cannot bind.
    pub async fn start_with(addr: SocketAddr, limits: RelayLimits) -> Result<Relay, RelayError> {
        let (listener, local) = listen(addr).await?;
        let members = Members::default();
        let relay = new_relay(local, &limits, &members);
        let url = relay.url().await.to_string();
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept(
            listener,
            relay.clone(),
            None,
            Arc::new(limits),
            stopped,
        ));
        Ok(Relay {
            relay,
            members,
            public_url: url.clone(),
            url,
            stop,
        })
    }

    /// Starts a relay serving `wss://` on `public` with `tls`, named `wss://host:port` to the
    /// world, and plain `ws://` on `local` (a loopback address) for the node's own services,
    /// with the default [`RelayLimits`].
    ///
    /// # Errors
    /// [`RelayError`] when it cannot bind either address.
    pub async fn start_public(
        public: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        host: &str,
        local: SocketAddr,
    ) -> Result<Relay, RelayError> {
        Relay::start_public_with(public, tls, host, local, RelayLimits::default()).await
    }

    /// [`Relay::start_public`] with `limits` (on both listeners).
    ///
    /// # Errors
    /// [`RelayError`] when it cannot bind either address.
    pub async fn start_public_with(
        public: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        host: &str,
        local: SocketAddr,
        limits: RelayLimits,
    ) -> Result<Relay, RelayError> {
        let (public_listener, public_addr) = listen(public).await?;
        let (local_listener, local_addr) = listen(local).await?;
        let members = Members::default();
        let relay = new_relay(local_addr, &limits, &members);
        let url = relay.url().await.to_string();
        let (stop, stopped) = watch::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let limits = Arc::new(limits);
        tokio::spawn(accept(
            public_listener,
            relay.clone(),
            Some(acceptor),
            Arc::clone(&limits),
            stopped.clone(),
        ));
        tokio::spawn(accept(local_listener, relay.clone(), None, limits, stopped));
        Ok(Relay {
            relay,
            members,
            url,
            public_url: format!("wss://{}", host_port(host, public_addr.port())),
            stop,
        })
    }

    /// The URL the node's own services use (`ws://` on the address bound).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL other machines use: `wss://` for a public relay, else [`Relay::url`].
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The keys with the larger share of this relay ([`RelayLimits`]'s `member_*`); give it to
    /// the Work service ([`crate::service::ServiceConfig::relay_members`]) to keep it filled.
    pub fn members(&self) -> Members {
        self.members.clone()
    }

    /// Stops it.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.relay.shutdown();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `host:port`, with an IPv6 address in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Accepts connections until `stopped`, each upgraded (after its TLS handshake, with `tls`)
/// within the limits, then handed over.
async fn accept(
    listener: TcpListener,
    relay: LocalRelay,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Arc<RelayLimits>,
    mut stopped: watch::Receiver<bool>,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, say: wait instead of spinning.
                    tracing::warn!("nostr relay: cannot accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&pending).try_acquire_owned() else {
            tracing::debug!("nostr relay: too many upgrades under way; closed {peer}");
            continue;
        };
        let (relay, tls, limits) = (relay.clone(), tls.clone(), Arc::clone(&limits));
        tokio::spawn(async move {
            // The TLS handshake and the upgrade share one time limit.
            let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
            let relay = (relay, limits);
            match tls {
                None => hand_over(stream, peer, relay, permit, deadline).await,
                Some(acceptor) => {
                    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => hand_over(stream, peer, relay, permit, deadline).await,
                        Ok(Err(e)) => tracing::debug!("nostr relay: {peer}: TLS: {e}"),
                        Err(_) => tracing::debug!("nostr relay: {peer}: TLS handshake too slow"),
                    }
                }
            }
        });
    }
}

/// Upgrades `stream` by `deadline`, then gives it to the relay (which then owns its lifetime).
async fn hand_over<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    (relay, limits): (LocalRelay, Arc<RelayLimits>),
    permit: OwnedSemaphorePermit,
    deadline: tokio::time::Instant,
) {
    let upgraded = tokio::time::timeout_at(deadline, upgrade(stream)).await;
    drop(permit);
    match upgraded {
        Ok(Ok(stream)) => {
            let (outside, inside) = tokio::io::duplex(BRIDGE_BUFFER);
            let relayed = async {
                if let Err(e) = relay.take_connection(inside, peer).await {
                    tracing::debug!("nostr relay: {peer}: {e}");
                }
            };
            tokio::join!(relayed, bridge(stream, outside, peer, &limits));
        }
        Ok(Err(e)) => tracing::debug!("nostr relay: {peer}: {e}"),
        Err(_) => tracing::debug!("nostr relay: {peer} did not finish its upgrade in time"),
    }
}

/// Why a client's message is refused before it reaches the relay, as the message to answer
/// with: an `["EVENT", …]` over `limits` gets an `OK` false (or a `NOTICE` when its id cannot
/// be read). Only a message over the smaller limit is parsed here.
fn refusal(text: &str, limits: &RelayLimits) -> Option<String> {
    if text.len() <= limits.max_event_bytes.min(limits.max_follow_list_bytes) {
        return None;
    }
    let parsed: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let event = match parsed
        .as_ref()
        .and_then(|v| v.as_array())
        .map(Vec::as_slice)
    {
        Some([verb, event, ..]) if verb == "EVENT" => event,
        // Other messages (REQ, CLOSE, AUTH) are held to MAX_MESSAGE only.
        _ => return None,
    };
    let kind = event.get("kind").and_then(serde_json::Value::as_u64);
    let id = event.get("id").and_then(serde_json::Value::as_str);
    let reason = limits.refuse(kind.unwrap_or(u64::MAX), text.len())?;
    Some(match id {
        Some(id) if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
            serde_json::json!(["OK", id, false, reason]).to_string()
        }
        _ => serde_json::json!(["NOTICE", reason]).to_string(),
    })
}

/// Passes messages between a client's WebSocket (read within [`MAX_MESSAGE`]) and the relay's
/// end of an in-memory stream, until either side closes; an event over `limits` is answered
/// here and goes no further. Pings are answered on each side by its own WebSocket, so only data
/// and the close pass.
async fn bridge<S: AsyncRead + AsyncWrite + Unpin>(
    client: S,
    relay: tokio::io::DuplexStream,
    peer: SocketAddr,
    limits: &RelayLimits,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    let frames = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut client = WebSocketStream::from_raw_socket(client, Role::Server, Some(frames)).await;
    let mut relay = WebSocketStream::from_raw_socket(relay, Role::Client, None).await;
    loop {
        tokio::select! {
            message = client.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let sent = match refusal(&text, limits) {
                        Some(answer) => {
                            tracing::debug!("nostr relay: {peer}: {answer}");
                            client.send(Message::text(answer)).await
                        }
                        None => relay.send(Message::Text(text)).await,
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                Some(Ok(m @ Message::Binary(_))) => {
                    if relay.send(m).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    // Too large a message among others: tungstenite has closed with 1009.
                    tracing::debug!("nostr relay: {peer}: {e}");
                    break;
                }
            },
            message = relay.next() => match message {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    if client.send(m).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = client.close(None).await;
    let _ = relay.close(None).await;
}

/// Reads the upgrade request (whole, bounded) and answers it; the stream is then a WebSocket.
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> Result<S, String> {
    let mut request = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed during the upgrade".into());
        }
        request.extend_from_slice(&chunk[..n]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if request.len() > MAX_UPGRADE_REQUEST {
            return Err("upgrade request too large".into());
        }
    };
    let answer = match upgrade_response(&request[..end]) {
        // A client may not send frames before it has the answer.
        Ok(_) if end != request.len() => Err("data before the upgrade was answered"),
        answer => answer,
    };
    match answer {
        Ok(response) => {
            stream
                .write_all(response.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            Ok(stream)
        }
        Err(reason) => {
            let refusal =
                "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
            let _ = stream.write_all(refusal.as_bytes()).await;
            Err(reason.into())
        }
    }
}

/// The `101 Switching Protocols` answer to a WebSocket upgrade request (RFC 6455 §4.2), or why
/// the request is not one.
fn upgrade_response(request: &[u8]) -> Result<String, &'static str> {
    let text = std::str::from_utf8(request).map_err(|_| "the request is not text")?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    if !request_line.starts_with("GET ") || !request_line.ends_with(" HTTP/1.1") {
        return Err("not a GET over HTTP/1.1");
    }
    let (mut upgrade, mut connection, mut version, mut key) = (false, false, false, None);
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or("a header without a colon")?;
        let value = value.trim();
        let has = |token: &str| {
            value
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case(token))
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade |= has("websocket"),
            "connection" => connection |= has("upgrade"),
            "sec-websocket-version" => version |= value == "13",
            "sec-websocket-key" => key = Some(value),
            _ => {}
        }
    }
    let key = key.ok_or("no Sec-WebSocket-Key")?;
    if !(upgrade && connection && version) {
        return Err("not a WebSocket upgrade (version 13)");
    }
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                           Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                           Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    #[test]
    fn answers_an_upgrade_with_the_rfc_6455_accept_key() {
        let answer = upgrade_response(UPGRADE.as_bytes()).expect("an upgrade");
        assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
        // RFC 6455 §1.3's worked example.
        assert!(answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    }

    async fn client(url: &str) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(url.trim_start_matches("ws://"))
            .await
            .expect("connect");
        tokio_tungstenite::client_async(url, tcp)
            .await
            .expect("a WebSocket")
            .0
    }

    /// The next text message, within a few seconds.
    async fn next_text(
        ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    ) -> Option<String> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("an answer in time");
            match next {
                Some(Ok(Message::Text(text))) => return Some(text.to_string()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return None,
            }
        }
    }

    #[tokio::test]
    async fn events_pass_and_a_message_over_the_limit_closes_its_connection() {
        use futures_util::SinkExt;
        use nostr_sdk::prelude::{EventBuilder, JsonUtil, Keys};
        use tokio_tungstenite::tungstenite::Message;

        let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("a relay");
        // Through the bridge both ways: an event is stored and read back.
        let event = EventBuilder::text_note("hello")
            .sign_with_keys(&Keys::generate())
            .expect("signed");
        let mut writer = client(relay.url()).await;
        writer
            .send(Message::text(format!(r#"["EVENT",{}]"#, event.as_json())))
            .await
            .expect("publish");
        let ok = next_text(&mut writer).await.expect("an OK");
        assert!(ok.starts_with(r#"["OK""#) && ok.contains("true"), "{ok}");
        let mut reader = client(relay.url()).await;
        reader
            .send(Message::text(format!(
                r#"["REQ","r",{{"ids":["{}"]}}]"#,
                event.id
            )))
            .await
            .expect("subscribe");
        let stored = next_text(&mut reader).await.expect("the event");
        assert!(stored.contains(&event.id.to_hex()), "{stored}");

        // One message over the limit ends that connection, and only it.
        let mut greedy = client(relay.url()).await;
        // A valid event, which the relay would store if it were read.
        let huge = EventBuilder::text_note("x".repeat(MAX_MESSAGE))
            .sign_with_keys(&Keys::generate())
            .expect("signed");
        let huge = format!(r#"["EVENT",{}]"#, huge.as_json());
        let _ = greedy.send(Message::text(huge)).await;
        assert_eq!(
            next_text(&mut greedy).await,
            None,
            "the connection is closed"
        );
        reader
            .send(Message::text(r#"["REQ","again",{"limit":1}]"#))
            .await
            .expect("subscribe again");
        assert!(next_text(&mut reader).await.is_some(), "others are served");
    }

    /// Rebuilds keep exactly what the store held: the newest `max_events`, oldest dropped.
    #[tokio::test]
    async fn a_rebuilt_store_holds_what_the_plain_store_holds() {
        use nostr_sdk::prelude::{EventBuilder, Keys};
        let store = Store::new(300);
        let plain = Store::empty(300);
        // The 2,000th save rebuilds (every 1,000): what is read after is the rebuilt store.
        for i in 0..2_000u64 {
            // Fresh keys, as a flood has them; dates spread so the order is the dates'.
            let event = EventBuilder::text_note(format!("{i}"))
                .custom_created_at(Timestamp::from(1_700_000_000 + i))
                .sign_with_keys(&Keys::generate())
                .expect("signed");
            store.save_event(&event).await.expect("saved");
            plain.save_event(&event).await.expect("saved");
        }
        let ids = |events: Events| -> Vec<EventId> { events.iter().map(|e| e.id).collect() };
        let kept = ids(store.query(Filter::new()).await.expect("query"));
        assert_eq!(kept.len(), 300);
        assert_eq!(kept, ids(plain.query(Filter::new()).await.expect("query")));
    }

    #[test]
    fn refuses_what_is_not_an_upgrade() {
        for bad in [
            UPGRADE.replace("GET", "POST"),
            UPGRADE.replace("Upgrade: websocket", "Upgrade: h2c"),
            UPGRADE.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
            UPGRADE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
            UPGRADE.replace("Host: 127.0.0.1", "no colon here"),
            "\u{0}\u{ff}".into(),
        ] {
            assert!(upgrade_response(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
