//! The Work service: a community's [`Community`] state run over Nostr relays.
//!
//! It subscribes to its community's Work events (`#h` = the community) and to the follow lists
//! and reports of authors with a trust score (renewed as scores change), applies each event
//! once, and publishes a signed [`Receipt`] for every decision — so the sender of a refused
//! event reads the reason on the relay — and for every payout at the end of a challenge window.
//! The receipts are the community's log: the service keeps a local copy ([`WorkLog`]) to
//! restart from, and when that is lost it rebuilds by fetching its receipts and the events they
//! name from the relays and replaying them over the ledger, which already holds their effects
//! (see [`crate::community`]). Trust scores go out as NIP-85 assertions when they change.
//!
//! Time comes from the service's clock, never from an event: a late submission is late when the
//! service sees it, whatever the event's `created_at` says.
//!
//! Anyone who reaches a relay can publish, so what the service keeps is bounded
//! ([`IngestLimits`]): follow lists and reports count only from authors with *standing* — a
//! role in the community, tokens, or a trust score above 0 (followed by someone who counts) —
//! and the rest are dropped unrecorded, as GrapeRank gives them no weight anyway (the relays
//! are asked only for those of authors with a score, so strangers' lists do not even reach the
//! service); the refusals of authors without standing are kept only up to a budget shared by
//! all of them; and each author has a quota of decisions and bytes kept per window. Scores are
//! computed by a task on a schedule, outside the state's lock, and readers
//! ([`WorkService::trust`]) take the last computed ones: no request makes the node score the
//! graph.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moip_assets::ledger::TokenLedger;
use nostr_sdk::prelude::{Alphabet, RelayPoolNotification, RelayUrl, SingleLetterTag};
use nostr_sdk::{
    Client, Event, EventId, Filter, JsonUtil, Keys, Kind, PublicKey, SubscriptionId, Timestamp,
};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::community::{Community, Outcome, Rejection};
use crate::events::{
    decode, EventError, Message, KIND_ATTEST, KIND_CERTIFY, KIND_CLAIM, KIND_DISPUTE, KIND_FOLLOWS,
    KIND_REPORT, KIND_SUBMIT, KIND_TASK, KIND_VOTE, KIND_VOUCH, KIND_WITHDRAW,
};
use crate::identity::Role;
use crate::log::{LogError, WorkLog};
use crate::receipt::{encode_receipt, encode_score, rank, Receipt, Verdict, KIND_RECEIPT};
use crate::trust::Scores;
use crate::AccountId;

/// The community's own kinds (with an `h` tag).
const WORK_KINDS: [u16; 9] = [
    KIND_TASK,
    KIND_CLAIM,
    KIND_WITHDRAW,
    KIND_SUBMIT,
    KIND_ATTEST,
    KIND_DISPUTE,
    KIND_VOTE,
    KIND_CERTIFY,
    KIND_VOUCH,
];

/// Whether the service reads events of this kind.
fn is_ours(kind: u16) -> bool {
    WORK_KINDS.contains(&kind) || matches!(kind, KIND_FOLLOWS | KIND_REPORT)
}

/// Most events asked for per request when rebuilding; relays cap what they return.
const PAGE: usize = 500;

/// How far back a restarted service asks for events it may have missed, in seconds.
const CATCH_UP_SECS: u64 = 600;

/// Most score assertions published per round (the rest go next round).
const MAX_SCORES_PER_ROUND: usize = 2_000;

/// Why the service could not start or act.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A relay URL that does not parse, or a relay that refused a request.
    #[error("relay: {0}")]
    Relay(String),
    /// The local log.
    #[error(transparent)]
    Log(#[from] LogError),
    /// An event could not be made.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The log does not replay to a consistent state (an event missing from the relays, or a
    /// receipt the rules now refuse).
    #[error("rebuild: {0}")]
    Rebuild(String),
}

/// What the service keeps from each author. [`Default`] is sized for a community of a few
/// hundred active members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestLimits {
    /// Decide and keep every author's events alike, standing or not (a closed relay, or a test
    /// of GrapeRank on a region of strangers). Off by default.
    pub keep_strangers: bool,
    /// Most decisions kept for one author per window; the first event over it gets a refusal
    /// that says so, later ones are dropped until the window ends.
    pub decisions_per_author: u32,
    /// Most bytes of events (their JSON) kept for one author per window, likewise.
    pub bytes_per_author: usize,
    /// Most refusals kept per window for all authors without standing together; beyond it
    /// their refused events are dropped unrecorded.
    pub stranger_refusals: u32,
    /// The quota window.
    pub window: Duration,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            keep_strangers: false,
            decisions_per_author: 600,
            bytes_per_author: 8 * 1024 * 1024,
            stranger_refusals: 600,
            window: Duration::from_secs(3_600),
        }
    }
}

/// What the service did with the events it read, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Decisions kept (each a receipt in the log).
    pub kept: u64,
    /// Events dropped unrecorded: follow lists and reports of authors without standing, and
    /// their refused events beyond [`IngestLimits::stranger_refusals`].
    pub ignored: u64,
    /// Of those, follow lists and reports (the subscription asks only for those of authors
    /// with a score, so these are the ones that came all the same: a catch-up, a standing
    /// lost since).
    pub signals_ignored: u64,
    /// Events dropped unrecorded because their author's quota was spent.
    pub over_quota: u64,
    /// Times the trust graph was scored by the scoring task.
    pub scorings: u64,
}

/// What the local log holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogUsage {
    /// Entries (receipts).
    pub entries: u64,
    /// Bytes of receipts and events stored.
    pub bytes: u64,
}

/// How to run the service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Relays to read from and publish to.
    pub relays: Vec<String>,
    /// The service's key: it signs receipts and scores.
    pub keys: Keys,
    /// The local log's file; `None` keeps it in memory (every start rebuilds from relays).
    pub log: Option<PathBuf>,
    /// A PostgreSQL database for the log instead (`postgres://…`); it wins over `log`.
    pub database: Option<String>,
    /// How often challenge windows are checked.
    pub tick: Duration,
    /// How often changed scores are published.
    pub scores_every: Duration,
    /// How long a rebuild waits for each relay query.
    pub fetch_timeout: Duration,
    /// What is kept from each author.
    pub limits: IngestLimits,
    /// The in-process relay's members ([`crate::relay::Relay::members`]): after each scoring
    /// the service makes them the authors it reads trust signals from (its own key and the
    /// scored keys), so that the relay gives them the larger share. `None`: another relay.
    pub relay_members: Option<crate::relay::Members>,
}

impl ServiceConfig {
    /// Defaults for `relays`, signing with `keys`.
    pub fn new(relays: Vec<String>, keys: Keys) -> ServiceConfig {
        ServiceConfig {
            relays,
            keys,
            log: None,
            database: None,
            tick: Duration::from_secs(1),
            scores_every: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(10),
            limits: IngestLimits::default(),
            relay_members: None,
        }
    }
}

/// A running Work service over a ledger `L`.
pub struct WorkService<L> {
    inner: Arc<Inner<L>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

struct Inner<L> {
    /// The community's id (fixed for the service's life).
    community: String,
    keys: Keys,
    client: Client,
    node: Mutex<Node<L>>,
    receipts: broadcast::Sender<Receipt>,
    published: Mutex<HashMap<AccountId, u8>>,
    /// The scores of the last publishing round, for readers that must not score under the
    /// state's lock (a dashboard with a hundred users).
    latest: Mutex<Arc<Scores>>,
    /// Times the graph was scored (by [`Inner::rescore`]).
    scorings: AtomicU64,
    /// The authors whose follow lists and reports the service subscribes to (those with a
    /// score, and its own key so that the set is never empty); `None`: every author
    /// ([`IngestLimits::keep_strangers`]).
    trust_authors: Mutex<Option<BTreeSet<PublicKey>>>,
    /// See [`ServiceConfig::relay_members`].
    relay_members: Option<crate::relay::Members>,
    fetch_timeout: Duration,
}

struct Node<L> {
    community: Community<L>,
    log: WorkLog,
    seq: u64,
    last_at: u64,
    /// The rules version of the last receipt (0 before any).
    last_rules: u32,
    decided: HashMap<[u8; 32], Receipt>,
    limits: IngestLimits,
    /// Per author in the current window: decisions and bytes kept, and whether told so.
    quota: HashMap<AccountId, Usage>,
    /// Refusals kept for authors without standing in the current window.
    stranger_refusals: u32,
    /// When the current window began.
    window_start: u64,
    stats: IngestStats,
}

/// One author's use of its quota in the current window.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    decisions: u32,
    bytes: usize,
    /// The refusal saying the quota is spent was kept.
    told: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn relay_error(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Relay(e.to_string())
}

/// The subscription to follow lists and reports, renewed when who has a score changes.
const TRUST_SUBSCRIPTION: &str = "moip-work-trust";

/// Most authors named in the subscription to follow lists and reports (the highest scores);
/// a REQ naming them is about 330 KB.
const MAX_TRUST_AUTHORS: usize = 5_000;

/// The filter of a community's Work events.
fn work_filter(community: &str) -> Filter {
    Filter::new()
        .kinds(WORK_KINDS.iter().map(|k| Kind::from(*k)))
        .custom_tag(SingleLetterTag::lowercase(Alphabet::H), community)
}

/// The filter of follow lists and reports: by `authors` only, unless `None` (every author).
fn trust_filter(authors: Option<&BTreeSet<PublicKey>>) -> Filter {
    let trust = Filter::new().kinds([Kind::from(KIND_FOLLOWS), Kind::from(KIND_REPORT)]);
    match authors {
        Some(authors) => trust.authors(authors.iter().copied()),
        None => trust,
    }
}

fn since(filter: Filter, since: Option<u64>) -> Filter {
    match since {
        Some(s) => filter.since(Timestamp::from(s)),
        None => filter,
    }
}

fn verdict_of(outcome: Outcome) -> Verdict {
    match outcome {
        Outcome::Accepted => Verdict::Accepted,
        Outcome::QuorumReached => Verdict::QuorumReached,
        Outcome::Resolved { worker_won } => Verdict::Resolved { worker_won },
    }
}

impl<L: TokenLedger> Node<L> {
    /// Takes a decision into the state's bookkeeping.
    fn note(&mut self, receipt: Receipt) {
        self.seq = receipt.seq;
        self.last_rules = receipt.rules;
        self.last_at = self.last_at.max(receipt.at);
        if let Some(id) = receipt.event {
            self.decided.insert(id, receipt);
        }
    }

    /// Writes a decision to the local log and notes it. A failed write is logged, not fatal:
    /// the state has moved, the relays hold the receipt, and a restart rebuilds from them.
    fn record(&mut self, receipt: Receipt, event: Option<&str>) {
        if let Err(e) = self.log.append(&receipt, event) {
            tracing::error!("work log write failed: {e}");
        }
        self.note(receipt);
    }

    /// Replays one logged decision; `log` says whether to write it to the local log too.
    fn replay(
        &mut self,
        receipt: Receipt,
        event: Option<Event>,
        log: bool,
    ) -> Result<(), ServiceError> {
        if receipt.seq != self.seq + 1 {
            return Err(ServiceError::Rebuild(format!(
                "receipt {} follows {}",
                receipt.seq, self.seq
            )));
        }
        match (&receipt.verdict, &event) {
            (Verdict::Paid { tasks }, None) => {
                let paid = self.community.tick(receipt.at);
                if &paid != tasks {
                    return Err(ServiceError::Rebuild(format!(
                        "receipt {} paid {tasks:?}, the replay {paid:?}",
                        receipt.seq
                    )));
                }
            }
            (Verdict::RulesAdopted, None) => {
                if receipt.rules != self.community.rules().version {
                    return Err(ServiceError::Rebuild(format!(
                        "receipt {} adopts rules {}, the community's are {}",
                        receipt.seq,
                        receipt.rules,
                        self.community.rules().version
                    )));
                }
                self.community.adopt_rules(receipt.at);
            }
            (verdict, Some(event)) if verdict.applies() => {
                let signed = decode(event)?;
                // Judged by the rules it was decided by: a log of older rules still replays.
                let version = receipt.rules;
                self.community
                    .apply_as_of(&signed, receipt.at, version)
                    .map_err(|r| {
                        ServiceError::Rebuild(format!(
                            "receipt {} no longer applies: {r}",
                            receipt.seq
                        ))
                    })?;
            }
            (verdict, None) if verdict.applies() => {
                return Err(ServiceError::Rebuild(format!(
                    "the event of receipt {} is missing",
                    receipt.seq
                )))
            }
            _ => {}
        }
        if log {
            self.log
                .append(&receipt, event.as_ref().map(JsonUtil::as_json).as_deref())?;
        }
        self.note(receipt);
        Ok(())
    }

    /// Whether `author`'s follows and reports can matter: a role in the community, tokens, or
    /// a score above 0 in `scores` (the last computed).
    fn standing(&self, author: &AccountId, scores: &Scores, now: u64) -> bool {
        let registry = self.community.registry();
        // Founders and certified verifiers hold `Member` too.
        [Role::Member, Role::Employer, Role::Worker, Role::Attester]
            .into_iter()
            .any(|role| registry.has_role(author, role, now))
            || scores.get(author) > 0.0
            || self.community.ledger().balance(author) > 0
    }

    /// Starts a new quota window when the current one is over.
    fn roll_window(&mut self, now: u64) {
        if now
            >= self
                .window_start
                .saturating_add(self.limits.window.as_secs().max(1))
        {
            self.quota.clear();
            self.stranger_refusals = 0;
            self.window_start = now;
        }
    }

    /// Decides on a live event, with `scores` the last computed; `None` when it is not ours,
    /// was decided before, or is dropped unrecorded (see [`IngestLimits`]).
    fn decide(&mut self, event: &Event, now: u64, scores: &Scores) -> Option<Receipt> {
        let id = event.id.to_bytes();
        if self.decided.contains_key(&id) {
            return None;
        }
        self.roll_window(now);
        let author = AccountId::from_bytes(event.pubkey.to_bytes());
        let standing = self.limits.keep_strangers || self.standing(&author, scores, now);
        let signed = match decode(event) {
            Err(EventError::UnknownKind(_)) => return None,
            other => other,
        };
        let trust_signal = matches!(
            signed.as_ref().map(|s| &s.message),
            Ok(Message::Follows { .. } | Message::Report { .. })
        );
        if !standing && trust_signal {
            // GrapeRank gives its signals no weight: nothing to keep.
            self.stats.ignored += 1;
            self.stats.signals_ignored += 1;
            return None;
        }
        let json = event.as_json();
        let usage = self.quota.get(&author).copied().unwrap_or_default();
        let over = usage.decisions >= self.limits.decisions_per_author
            || usage.bytes.saturating_add(json.len()) > self.limits.bytes_per_author;
        if over && usage.told {
            self.stats.over_quota += 1;
            return None;
        }
        let verdict = if over {
            Verdict::Rejected {
                reason: format!(
                    "over this author's quota ({} decisions or {} bytes of events per {} s); \
                     later events are ignored until the window ends",
                    self.limits.decisions_per_author,
                    self.limits.bytes_per_author,
                    self.limits.window.as_secs()
                ),
            }
        } else {
            match signed {
                Err(EventError::UnknownKind(_)) => return None,
                Err(e) => Verdict::Rejected {
                    reason: e.to_string(),
                },
                Ok(signed) => match self.community.apply(&signed, now) {
                    Err(Rejection::Replayed) => return None,
                    Err(r) => Verdict::Rejected {
                        reason: r.to_string(),
                    },
                    Ok(outcome) => verdict_of(outcome),
                },
            }
        };
        let refused = !verdict.applies();
        if refused && !standing {
            if self.stranger_refusals >= self.limits.stranger_refusals {
                self.stats.ignored += 1;
                return None;
            }
            self.stranger_refusals += 1;
        }
        let usage = self.quota.entry(author).or_default();
        if over {
            usage.told = true;
        } else {
            usage.decisions += 1;
            usage.bytes = usage.bytes.saturating_add(json.len());
        }
        let receipt = Receipt {
            seq: self.seq + 1,
            at: now,
            event: Some(id),
            author: Some(author),
            verdict,
            rules: self.community.rules().version,
        };
        // The refusal for a spent quota keeps no event: it may be the largest.
        self.record(receipt.clone(), (!over).then_some(json.as_str()));
        self.stats.kept += 1;
        Some(receipt)
    }
}

impl<L: TokenLedger + Send + 'static> WorkService<L> {
    /// Connects to the relays, restores the state (from the local log, or from the relays when
    /// the log is empty) and starts serving.
    ///
    /// # Errors
    /// [`ServiceError`] for a bad relay URL, an unreadable log, or a log that does not replay.
    pub async fn start(
        config: ServiceConfig,
        mut community: Community<L>,
    ) -> Result<WorkService<L>, ServiceError> {
        // Panels are drawn with a key derived from ours, so a restart or a rebuild over the
        // same key redraws the same panels, and no party to a dispute can compute its draw.
        community.set_drawing_secret(&config.keys.secret_key().secret_bytes());
        let client = Client::builder().signer(config.keys.clone()).build();
        for url in &config.relays {
            let url = RelayUrl::parse(url).map_err(|e| relay_error(format!("{url}: {e}")))?;
            client.add_relay(url).await.map_err(relay_error)?;
        }
        client.connect().await;
        client.wait_for_connection(Duration::from_secs(5)).await;
        let log = match (&config.database, &config.log) {
            (Some(url), _) => WorkLog::connect(url, community.id())?,
            (None, Some(path)) => WorkLog::open(path)?,
            (None, None) => WorkLog::in_memory()?,
        };
        let (receipts, _) = broadcast::channel(4_096);
        let inner = Arc::new(Inner {
            community: community.id().to_owned(),
            keys: config.keys.clone(),
            client,
            node: Mutex::new(Node {
                community,
                log,
                seq: 0,
                last_at: 0,
                last_rules: 0,
                decided: HashMap::new(),
                limits: config.limits.clone(),
                quota: HashMap::new(),
                stranger_refusals: 0,
                window_start: unix_now(),
                stats: IngestStats::default(),
            }),
            receipts,
            published: Mutex::new(HashMap::new()),
            latest: Mutex::new(Arc::new(Scores::default())),
            scorings: AtomicU64::new(0),
            trust_authors: Mutex::new(None),
            relay_members: config.relay_members.clone(),
            fetch_timeout: config.fetch_timeout,
        });
        let logged = inner.restore().await?;
        // A log of older rules: the boundary is recorded, and what they left open gets the
        // current windows from now.
        let adopted = {
            let mut node = lock(&inner.node);
            let version = node.community.rules().version;
            (node.seq > 0 && node.last_rules < version).then(|| {
                let now = unix_now().max(node.last_at);
                node.community.adopt_rules(now);
                let receipt = Receipt {
                    seq: node.seq + 1,
                    at: now,
                    event: None,
                    author: None,
                    verdict: Verdict::RulesAdopted,
                    rules: version,
                };
                node.record(receipt.clone(), None);
                receipt
            })
        };
        if let Some(receipt) = adopted {
            inner.announce(receipt).await;
        }
        // Standing needs scores: have them before the first event is read.
        let scored_at = Arc::clone(&inner).rescore().await;

        let since = {
            let node = lock(&inner.node);
            (node.seq > 0).then(|| node.last_at.saturating_sub(CATCH_UP_SECS))
        };
        let notifications = inner.client.notifications();
        let work = self::since(work_filter(&inner.community), since);
        inner
            .client
            .subscribe(work.limit(PAGE * 10), None)
            .await
            .map_err(relay_error)?;
        if !config.limits.keep_strangers {
            *lock(&inner.trust_authors) = Some(inner.standing_authors());
        }
        inner.subscribe_trust(since).await?;
        let serve = tokio::spawn(Arc::clone(&inner).serve(notifications, since));
        let republish = tokio::spawn(Arc::clone(&inner).republish(logged));
        let tick = tokio::spawn(Arc::clone(&inner).tick(config.tick));
        let scores = tokio::spawn(Arc::clone(&inner).scores(config.scores_every, scored_at));
        Ok(WorkService {
            inner,
            tasks: Mutex::new(vec![serve, tick, scores, republish]),
        })
    }

    /// The service's public key (the signer of receipts and scores).
    pub fn public_key(&self) -> PublicKey {
        self.inner.keys.public_key()
    }

    /// Reads the community state.
    pub fn with_community<R>(&self, f: impl FnOnce(&Community<L>) -> R) -> R {
        f(&lock(&self.inner.node).community)
    }

    /// The trust scores as last computed (at most `scores_every` behind the decisions): cheap
    /// to read, where [`Community::scores`] may score the whole graph under the state's lock.
    pub fn scores(&self) -> Arc<Scores> {
        Arc::clone(&lock(&self.inner.latest))
    }

    /// `who`'s trust as last computed (see [`WorkService::scores`]): what a request that needs
    /// a member's trust (a redemption's cap) reads, so that no request scores the graph.
    pub fn trust(&self, who: &AccountId) -> f64 {
        lock(&self.inner.latest).get(who)
    }

    /// What the service did with the events it read.
    pub fn stats(&self) -> IngestStats {
        let mut stats = lock(&self.inner.node).stats;
        stats.scorings = self.inner.scorings.load(Ordering::Relaxed);
        stats
    }

    /// What the local log holds.
    ///
    /// # Errors
    /// [`ServiceError::Log`] when it cannot be read.
    pub fn log_usage(&self) -> Result<LogUsage, ServiceError> {
        let (entries, bytes) = lock(&self.inner.node).log.usage()?;
        Ok(LogUsage { entries, bytes })
    }

    /// The sequence number of the last decision (0 before the first).
    pub fn last_seq(&self) -> u64 {
        lock(&self.inner.node).seq
    }

    /// The receipt of an event, if the service decided on it.
    pub fn receipt(&self, event: &EventId) -> Option<Receipt> {
        lock(&self.inner.node)
            .decided
            .get(&event.to_bytes())
            .cloned()
    }

    /// Every receipt from now on.
    pub fn receipts(&self) -> broadcast::Receiver<Receipt> {
        self.inner.receipts.subscribe()
    }

    /// Waits up to `timeout` for the receipt of `event`.
    pub async fn wait_receipt(&self, event: &EventId, timeout: Duration) -> Option<Receipt> {
        let mut receipts = self.receipts();
        if let Some(r) = self.receipt(event) {
            return Some(r);
        }
        let want = event.to_bytes();
        tokio::time::timeout(timeout, async {
            loop {
                match receipts.recv().await {
                    Ok(r) if r.event == Some(want) => return Some(r),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(r) = self.receipt(event) {
                            return Some(r);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// Publishes an event (signed by its author) to the relays and decides on it, as on
    /// anyone's event read from a relay.
    ///
    /// # Errors
    /// [`ServiceError::Relay`] when no relay took it.
    pub async fn publish(&self, event: &Event) -> Result<EventId, ServiceError> {
        let output = self
            .inner
            .client
            .send_event(event)
            .await
            .map_err(relay_error)?;
        if output.success.is_empty() {
            return Err(relay_error(format!(
                "no relay took the event: {:?}",
                output.failed
            )));
        }
        // Our own client does not hand back an event it sent; decide on it here (a copy
        // arriving from another relay later is recognised as decided).
        if is_ours(event.kind.as_u16()) {
            self.inner.handle(event).await;
        }
        Ok(*output.id())
    }

    /// Stops serving and disconnects (by reference, so a service shared with an API can be
    /// stopped by whoever owns the process).
    pub async fn shutdown(&self) {
        stop_tasks(&self.tasks);
        self.inner.client.shutdown().await;
    }
}

fn stop_tasks(tasks: &Mutex<Vec<JoinHandle<()>>>) {
    for task in lock(tasks).drain(..) {
        task.abort();
    }
}

impl<L> Drop for WorkService<L> {
    fn drop(&mut self) {
        stop_tasks(&self.tasks);
    }
}

impl<L: TokenLedger + Send + 'static> Inner<L> {
    /// Replays the local log, or rebuilds it from the relays when it is empty. Returns what
    /// the local log held, for [`Inner::republish`].
    async fn restore(&self) -> Result<Vec<(Receipt, Option<Event>)>, ServiceError> {
        let entries = lock(&self.node).log.entries()?;
        if !entries.is_empty() {
            let mut node = lock(&self.node);
            let mut replayed = Vec::with_capacity(entries.len());
            for (receipt, event) in entries {
                let event = match event {
                    Some(json) => Some(
                        Event::from_json(json)
                            .map_err(|e| ServiceError::Rebuild(format!("a logged event: {e}")))?,
                    ),
                    None => None,
                };
                node.replay(receipt.clone(), event.clone(), false)?;
                replayed.push((receipt, event));
            }
            return Ok(replayed);
        }
        // An empty local log is a new community, or a node that lost its log. Only the relays
        // can tell which, so none reachable is an error, never a fresh start that would reuse
        // sequence numbers.
        let relays = self.client.relays().await;
        if !relays.values().any(|r| r.is_connected()) {
            return Err(ServiceError::Rebuild(
                "the local log is empty and no relay is reachable to rebuild it from".into(),
            ));
        }
        let receipts = self.fetch_receipts().await?;
        let wanted: Vec<EventId> = receipts
            .values()
            .filter(|r| r.verdict.applies())
            .filter_map(|r| r.event.map(EventId::from_byte_array))
            .collect();
        let events = self.fetch_events(&wanted).await?;
        let mut node = lock(&self.node);
        for receipt in receipts.into_values() {
            let event = receipt
                .event
                .filter(|_| receipt.verdict.applies())
                .and_then(|id| events.get(&id).cloned());
            node.replay(receipt, event, true)?;
        }
        Ok(Vec::new())
    }

    /// Publishes the local log's events and receipts again, in the background. A relay that
    /// lost them — the in-process relay keeps events in memory, so every restart — gets them
    /// back, and can serve a rebuild later; relays that still hold them drop the duplicates by
    /// id (a receipt signed again has the same id).
    async fn republish(self: Arc<Self>, logged: Vec<(Receipt, Option<Event>)>) {
        let community = &self.community;
        for (receipt, event) in logged {
            if let Some(event) = event {
                if let Err(e) = self.client.send_event(&event).await {
                    tracing::debug!("republishing event of receipt {}: {e}", receipt.seq);
                }
            }
            if let Ok(event) = encode_receipt(&self.keys, community, &receipt) {
                if let Err(e) = self.client.send_event(&event).await {
                    tracing::debug!("republishing receipt {}: {e}", receipt.seq);
                }
            }
        }
    }

    /// Every receipt this service published for its community, by sequence number.
    async fn fetch_receipts(&self) -> Result<BTreeMap<u64, Receipt>, ServiceError> {
        let community = &self.community;
        let service = self.keys.public_key();
        let mut out = BTreeMap::new();
        let mut until: Option<Timestamp> = None;
        loop {
            let mut filter = Filter::new()
                .kind(Kind::from(KIND_RECEIPT))
                .author(service)
                .custom_tag(SingleLetterTag::lowercase(Alphabet::H), community.as_str())
                .limit(PAGE);
            if let Some(u) = until {
                filter = filter.until(u);
            }
            let page = self
                .client
                .fetch_events(filter, self.fetch_timeout)
                .await
                .map_err(relay_error)?;
            let mut added = 0;
            let mut oldest = u64::MAX;
            for event in page.iter() {
                oldest = oldest.min(event.created_at.as_secs());
                let receipt = crate::receipt::decode_receipt(event, &service, community)?;
                if out.insert(receipt.seq, receipt).is_none() {
                    added += 1;
                }
            }
            if added == 0 || page.len() < PAGE {
                break;
            }
            // Inclusive, so receipts sharing the oldest second are asked for again (deduped).
            until = Some(Timestamp::from(oldest));
        }
        let expected = out.keys().last().copied().unwrap_or(0);
        if out.len() as u64 != expected {
            return Err(ServiceError::Rebuild(format!(
                "the relays hold {} of {expected} receipts",
                out.len()
            )));
        }
        Ok(out)
    }

    /// The events with these ids, fetched in pages.
    async fn fetch_events(
        &self,
        ids: &[EventId],
    ) -> Result<HashMap<[u8; 32], Event>, ServiceError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(PAGE) {
            let filter = Filter::new().ids(chunk.iter().copied()).limit(chunk.len());
            let page = self
                .client
                .fetch_events(filter, self.fetch_timeout)
                .await
                .map_err(relay_error)?;
            for event in page {
                if event.verify().is_ok() {
                    out.insert(event.id.to_bytes(), event);
                }
            }
        }
        Ok(out)
    }

    async fn serve(
        self: Arc<Self>,
        mut notifications: broadcast::Receiver<RelayPoolNotification>,
        since: Option<u64>,
    ) {
        loop {
            match notifications.recv().await {
                Ok(RelayPoolNotification::Event { event, .. }) => {
                    if is_ours(event.kind.as_u16()) {
                        self.handle(&event).await;
                    }
                }
                Ok(RelayPoolNotification::Shutdown) => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    // Too many at once: ask the relays again for what we may have dropped.
                    tracing::warn!("work service skipped {n} relay notifications; catching up");
                    let from = lock(&self.node).last_at.saturating_sub(CATCH_UP_SECS);
                    self.catch_up(since.map_or(from, |s| s.min(from))).await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn catch_up(&self, since: u64) {
        let trust = trust_filter(lock(&self.trust_authors).as_ref());
        for filter in [work_filter(&self.community), trust] {
            let filter = filter.since(Timestamp::from(since));
            match self
                .client
                .fetch_events(filter.limit(PAGE * 10), self.fetch_timeout)
                .await
            {
                Ok(events) => {
                    let mut events: Vec<Event> = events.into_iter().collect();
                    events.sort_by_key(|e| (e.created_at, e.id));
                    for event in events {
                        self.handle(&event).await;
                    }
                }
                Err(e) => tracing::warn!("work service catch-up failed: {e}"),
            }
        }
    }

    async fn handle(&self, event: &Event) {
        let scores = Arc::clone(&lock(&self.latest));
        let receipt = {
            let mut node = lock(&self.node);
            let now = unix_now().max(node.last_at);
            node.decide(event, now, &scores)
        };
        if let Some(receipt) = receipt {
            self.announce(receipt).await;
        }
    }

    async fn announce(&self, receipt: Receipt) {
        let community = &self.community;
        match encode_receipt(&self.keys, community, &receipt) {
            Ok(event) => {
                if let Err(e) = self.client.send_event(&event).await {
                    tracing::warn!("work receipt {} not published: {e}", receipt.seq);
                }
            }
            Err(e) => tracing::warn!("work receipt {} not signed: {e}", receipt.seq),
        }
        // Nobody listening is fine.
        let _ = self.receipts.send(receipt);
    }

    async fn tick(self: Arc<Self>, every: Duration) {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let receipt = {
                let mut node = lock(&self.node);
                let now = unix_now().max(node.last_at);
                let paid = node.community.tick(now);
                if paid.is_empty() {
                    continue;
                }
                let receipt = Receipt {
                    seq: node.seq + 1,
                    at: now,
                    event: None,
                    author: None,
                    verdict: Verdict::Paid { tasks: paid },
                    rules: node.community.rules().version,
                };
                node.record(receipt.clone(), None);
                receipt
            };
            self.announce(receipt).await;
        }
    }

    /// The authors to read follow lists and reports from: those with a score above 0 in the
    /// latest scores (members, who are certified or vouched for, and whoever they follow), at
    /// most [`MAX_TRUST_AUTHORS`] of the highest, and the service's own key.
    fn standing_authors(&self) -> BTreeSet<PublicKey> {
        let scores = Arc::clone(&lock(&self.latest));
        let mut scored: Vec<(&AccountId, &f64)> = scores.iter().collect();
        scored.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        let mut authors: BTreeSet<PublicKey> = scored
            .into_iter()
            .take(MAX_TRUST_AUTHORS)
            .filter_map(|(who, _)| PublicKey::from_slice(who.as_bytes()).ok())
            .collect();
        authors.insert(self.keys.public_key());
        authors
    }

    /// Subscribes (again: the same id replaces the subscription) to follow lists and reports
    /// of [`Inner::trust_authors`], from `since`.
    async fn subscribe_trust(&self, since: Option<u64>) -> Result<(), ServiceError> {
        let filter = trust_filter(lock(&self.trust_authors).as_ref());
        self.client
            .subscribe_with_id(
                SubscriptionId::new(TRUST_SUBSCRIPTION),
                self::since(filter, since).limit(PAGE * 10),
                None,
            )
            .await
            .map_err(relay_error)?;
        Ok(())
    }

    /// Renews the subscription to follow lists and reports when who has a score changed; the
    /// new authors' lists of the last [`CATCH_UP_SECS`] come with it.
    async fn renew_trust_subscription(&self) {
        let authors = {
            let current = lock(&self.trust_authors);
            let Some(current) = current.as_ref() else {
                return;
            };
            let authors = self.standing_authors();
            if &authors == current {
                return;
            }
            authors
        };
        *lock(&self.trust_authors) = Some(authors);
        let from = unix_now().saturating_sub(CATCH_UP_SECS);
        if let Err(e) = self.subscribe_trust(Some(from)).await {
            tracing::warn!("work service: renewing the trust subscription: {e}");
        }
    }

    /// Scores the graph as of the last decision and makes the result the latest; returns the
    /// sequence number scored. The state's lock is held only to copy the graph: the scoring
    /// itself runs on a blocking thread while events keep being decided.
    async fn rescore(self: Arc<Self>) -> u64 {
        let (seq, graph, params, observers) = {
            let node = lock(&self.node);
            let now = unix_now().max(node.last_at);
            let community = &node.community;
            let observers: Vec<AccountId> =
                community.registry().verifiers(now).into_iter().collect();
            (
                node.seq,
                community.graph().clone(),
                community.params().clone(),
                observers,
            )
        };
        let scored = tokio::task::spawn_blocking(move || graph.scores(&params, &observers)).await;
        match scored {
            Ok(scores) => {
                self.scorings.fetch_add(1, Ordering::Relaxed);
                *lock(&self.latest) = Arc::new(scores);
                if let Some(members) = &self.relay_members {
                    members.set(self.standing_authors());
                }
            }
            Err(e) => tracing::error!("scoring failed: {e}"),
        }
        seq
    }

    /// Scores the graph every `every` when there were decisions since `scored_at`, and
    /// publishes the ranks that changed.
    async fn scores(self: Arc<Self>, every: Duration, mut scored_at: u64) {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut published_at = None;
        loop {
            interval.tick().await;
            let seq = lock(&self.node).seq;
            if seq != scored_at {
                scored_at = Arc::clone(&self).rescore().await;
                self.renew_trust_subscription().await;
            }
            if published_at == Some(scored_at) {
                continue;
            }
            published_at = Some(scored_at);
            let ranks: HashMap<AccountId, u8> = lock(&self.latest)
                .iter()
                .map(|(a, s)| (*a, rank(*s)))
                .collect();
            let community = &self.community;
            let changed: Vec<(AccountId, u8)> = {
                let published = lock(&self.published);
                let mut changed: Vec<(AccountId, u8)> = ranks
                    .iter()
                    .filter(|(a, r)| published.get(*a).copied().unwrap_or(0) != **r)
                    .map(|(a, r)| (*a, *r))
                    .collect();
                // Whoever dropped to nothing gets a rank of 0.
                changed.extend(
                    published
                        .iter()
                        .filter(|(a, r)| **r > 0 && !ranks.contains_key(*a))
                        .map(|(a, _)| (*a, 0)),
                );
                changed.sort();
                changed.truncate(MAX_SCORES_PER_ROUND);
                changed
            };
            let now = unix_now();
            for (subject, r) in changed {
                let Ok(event) = encode_score(&self.keys, community, &subject, r, now) else {
                    continue;
                };
                if self.client.send_event(&event).await.is_ok() {
                    lock(&self.published).insert(subject, r);
                }
            }
        }
    }
}
