//! The wallet service: listens on Nostr relays for NIP-47 requests signed by a connected app,
//! carries them out on a [`PaymentRail`], and answers and notifies in the app's encryption.
//!
//! Every request is checked in this order, and the first failure is the answer: addressed to
//! us and not expired (otherwise dropped, as NIP-47 says), not seen before (replays dropped; a
//! connection's requests are remembered with the connections, so also across a restart),
//! from an active connection, neither revoked nor expired (`UNAUTHORIZED`), decryptable
//! (dropped: we cannot even answer in a way the sender could read reliably), within the
//! connection's rate (`RATE_LIMITED`), a known method (`NOT_IMPLEMENTED`), within the budget
//! for payments (`QUOTA_EXCEEDED`).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moip_lightning::{
    Invoice, KeysendRequest, LightningError, LightningEvent, Network, PayRequest, PaymentHash,
    PaymentRail, PaymentRecord, PaymentState, PaymentType, Preimage, RouteLimits,
};
use nostr_sdk::nips::nip47::{
    CancelHoldInvoiceResponse, ErrorCode, GetBalanceResponse, HoldInvoiceAcceptedNotification,
    ListTransactionsRequest, LookupInvoiceResponse, MakeHoldInvoiceResponse, MakeInvoiceRequest,
    MakeInvoiceResponse, NIP47Error, NostrWalletConnectURI, Notification, NotificationResult,
    NotificationType, PayInvoiceResponse, PayKeysendRequest, PayKeysendResponse,
    PaymentNotification, Request, RequestParams, ResponseResult, SettleHoldInvoiceResponse,
    TransactionState, TransactionType,
};
use nostr_sdk::{
    Client, Event, EventBuilder, EventId, Filter, JsonUtil, Keys, Kind, PublicKey,
    RelayPoolNotification, RelayUrl, Tag, TagKind, Timestamp,
};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::accounts::{AccountRefusal, AppAccounts};
use crate::connections::{
    Budget, Connection, ConnectionStore, InFlightPayment, MadeInvoice, Renewal, SpendRefusal,
    StoreLocation,
};
use crate::envelope::{self, Encryption, EnvelopeError, NOTIFICATION_NIP44_KIND};
use crate::error::NwcError;
use crate::permissions::{default_permissions, Permission};

/// The methods this service carries out, as NIP-47 names them: what the info event lists, and
/// all a request may name without being answered `NOT_IMPLEMENTED`. `get_info` lists those of
/// them rust-nostr's `Method` knows ([`get_info_methods`]).
pub const METHODS: [&str; 13] = [
    "pay_invoice",
    "make_invoice",
    "lookup_invoice",
    "list_transactions",
    "get_balance",
    "get_info",
    "make_hold_invoice",
    "cancel_hold_invoice",
    "settle_hold_invoice",
    "get_budget",
    "pay_keysend",
    "multi_pay_invoice",
    "multi_pay_keysend",
];

/// The notifications it sends.
pub const NOTIFICATIONS: [&str; 3] = ["payment_received", "payment_sent", "hold_invoice_accepted"];

/// How the service runs.
#[derive(Clone, Debug)]
pub struct NwcConfig {
    /// Relays to listen and answer on (the URIs name them to the apps).
    pub relays: Vec<String>,
    /// Relays the URIs name instead, when apps reach them at other addresses than the service
    /// does (a node's own relay: `ws://` on loopback for the service, `wss://` for the apps);
    /// empty: `relays`.
    pub uri_relays: Vec<String>,
    /// Where connections are kept; `None` keeps them in memory only.
    pub store: Option<StoreLocation>,
    /// Requests carried out at once over all connections.
    pub max_concurrent: usize,
    /// Requests one connection may make per minute.
    pub requests_per_minute: u32,
    /// How long a `pay_invoice` waits for the outcome before answering `PAYMENT_FAILED`
    /// (the payment itself goes on; its notification follows).
    pub pay_timeout: Duration,
    /// Invoice expiry when the app gives none.
    pub default_expiry_secs: u32,
    /// Each app's own money: when set, an app pays only from its account there (and is told
    /// its balance there); `None` lets apps spend from the node within their budgets.
    pub accounts: Option<Arc<dyn AppAccounts>>,
}

impl NwcConfig {
    /// Defaults for the given relays.
    pub fn new(relays: Vec<String>) -> NwcConfig {
        NwcConfig {
            relays,
            uri_relays: Vec::new(),
            store: None,
            max_concurrent: 16,
            requests_per_minute: 120,
            pay_timeout: Duration::from_secs(60),
            default_expiry_secs: 3600,
            accounts: None,
        }
    }
}

/// Event ids already handled, so a relay (or an attacker) replaying a request gets nothing.
struct Seen {
    ids: HashSet<EventId>,
    order: VecDeque<EventId>,
}

const SEEN_CAPACITY: usize = 100_000;

impl Seen {
    /// `true` the first time an id is offered.
    fn first(&mut self, id: EventId) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

/// A per-connection token bucket.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A payment an app asked for, whichever way it goes.
struct Outgoing {
    payment_hash: PaymentHash,
    /// What the payee is to receive.
    amount_msat: u64,
    /// The invoice paid, `""` for keysend (NIP-47 notifications carry it).
    bolt11: String,
    expires_at: Option<u64>,
    send: Send,
}

enum Send {
    Invoice {
        bolt11: String,
        amount_msat: Option<u64>,
    },
    Keysend {
        node_id: moip_lightning::PublicKey,
        preimage: Preimage,
        tlv_records: Vec<(u64, Vec<u8>)>,
    },
}

struct Inner {
    keys: Keys,
    client: Client,
    rail: Arc<dyn PaymentRail>,
    /// The relays connection URIs name.
    uri_relays: Vec<RelayUrl>,
    config: NwcConfig,
    /// Connections, with the invoices and payments each made: what each may see.
    store: Mutex<ConnectionStore>,
    seen: Mutex<Seen>,
    buckets: Mutex<HashMap<PublicKey, Bucket>>,
    permits: Arc<Semaphore>,
}

/// A running NIP-47 wallet service. Stops when [`shutdown`](Self::shutdown) is called or it is
/// dropped.
pub struct NwcService {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

/// A poisoned lock only means a task panicked holding it; every update here is a single
/// insert or field change, so the data stays usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn nip47_error(code: ErrorCode, message: impl Into<String>) -> NIP47Error {
    NIP47Error {
        code,
        message: message.into(),
    }
}

/// NIP-47's code for a request in an encryption the service does not speak (not in
/// rust-nostr 0.44's `ErrorCode`).
pub const UNSUPPORTED_ENCRYPTION: &str = "UNSUPPORTED_ENCRYPTION";

/// An error as it goes on the wire: any NIP-47 code, also those rust-nostr lacks.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
struct WireError {
    code: String,
    message: String,
}

impl From<NIP47Error> for WireError {
    fn from(e: NIP47Error) -> WireError {
        let code = serde_json::to_value(e.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "OTHER".to_owned());
        WireError {
            code,
            message: e.message,
        }
    }
}

/// A response as it goes on the wire. `result_type` is the method as the request named it
/// (NIP-47: it MUST be), which rust-nostr's `Response` cannot carry for a method its `Method`
/// does not know; exactly one of `error` and `result` is null.
#[derive(serde::Serialize)]
struct Reply<'a> {
    result_type: &'a str,
    error: Option<WireError>,
    result: Option<serde_json::Value>,
}

/// The methods `get_info` lists: those `offered` that rust-nostr 0.44's `Method` parses. Its
/// client reads `methods` as `Vec<Method>` and fails the whole `get_info` on a name it does not
/// know (`get_budget`, `sign_message`), so those are listed in the info event only.
pub fn get_info_methods(offered: &[&'static str]) -> Vec<&'static str> {
    offered
        .iter()
        .copied()
        .filter(|m| m.parse::<nostr_sdk::nips::nip47::Method>().is_ok())
        .collect()
}

/// One answer, or one per item of a `multi_` request, each under its `d` tag: the item's id,
/// else its invoice's payment hash or its keysend's pubkey (NIP-47).
enum Answer {
    One(Result<serde_json::Value, WireError>),
    Each(Vec<(String, Result<serde_json::Value, WireError>)>),
}

fn to_wire(result: Result<ResponseResult, NIP47Error>) -> Result<serde_json::Value, WireError> {
    let result = result?;
    serde_json::to_value(result).map_err(|e| nip47_error(ErrorCode::Internal, e.to_string()).into())
}

/// `make_invoice`'s reply: NIP-47's transaction object, which has the `type` and `state` of an
/// invoice just made ("incoming", "pending") that rust-nostr's `MakeInvoiceResponse` lacks.
fn make_invoice_reply(response: MakeInvoiceResponse) -> Result<serde_json::Value, WireError> {
    let mut reply = to_wire(Ok(ResponseResult::MakeInvoice(response)))?;
    let fields = reply.as_object_mut().ok_or_else(|| {
        WireError::from(nip47_error(
            ErrorCode::Internal,
            "make_invoice's reply is not a JSON object",
        ))
    })?;
    fields.insert("type".into(), serde_json::json!(TransactionType::Incoming));
    fields.insert("state".into(), serde_json::json!(TransactionState::Pending));
    Ok(reply)
}

/// `make_invoice`'s `description_hash`: 32 bytes of hex, and the SHA-256 of `description`
/// when one is sent with it; otherwise `OTHER`, and nothing is made.
fn description_hash(hex: &str, description: &str) -> Result<[u8; 32], NIP47Error> {
    use moip_lightning::ldk_node::bitcoin::hashes::{sha256, Hash};
    let hash: [u8; 32] = hex_bytes(hex)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| {
            nip47_error(
                ErrorCode::Other,
                "description_hash must be 32 bytes of hex (a SHA-256)",
            )
        })?;
    if !description.is_empty() && sha256::Hash::hash(description.as_bytes()).to_byte_array() != hash
    {
        return Err(nip47_error(
            ErrorCode::Other,
            "description_hash is not the SHA-256 of the description sent with it",
        ));
    }
    Ok(hash)
}

/// The description hash (hex) an invoice commits to, if it commits to one instead of a
/// description: what `lookup_invoice`, `list_transactions` and `payment_received` show for an
/// invoice made with `description_hash` (read from the invoice, which keeps it).
fn description_hash_of(bolt11: &str) -> Option<String> {
    use moip_lightning::ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescriptionRef};
    match bolt11.parse::<Bolt11Invoice>().ok()?.description() {
        Bolt11InvoiceDescriptionRef::Hash(hash) => Some(hash.0.to_string()),
        Bolt11InvoiceDescriptionRef::Direct(_) => None,
    }
}

/// The bytes of a hex string, `None` if it is not hex.
fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The `method` a request's plaintext names, or `""` when it names none (it is still answered,
/// with `NOT_IMPLEMENTED`).
fn method_name(plaintext: &str) -> String {
    serde_json::from_str::<serde_json::Value>(plaintext)
        .ok()
        .and_then(|v| v.get("method")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The network as NIP-47's `get_info` names it: `mainnet`, `testnet`, `signet` or `regtest`
/// (bitcoin's own name for mainnet is `bitcoin`, which apps do not know).
fn nip47_network(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "mainnet",
        Network::Signet => "signet",
        Network::Regtest => "regtest",
        _ => "testnet",
    }
}

/// Entries a `list_transactions` page holds when the app gives no `limit`.
pub const DEFAULT_LIST_LIMIT: u64 = 50;
/// The most entries a `list_transactions` page holds, whatever `limit` asks: an app pages on
/// with `offset`.
pub const MAX_LIST_LIMIT: u64 = 100;
/// The most a `list_transactions` reply's JSON may take: NIP-44 v2 seals at most 65 535 bytes
/// of plaintext, and a reply too large to seal never reaches the app (a thousand entries with
/// their invoices were ~ 500 KB, so an app with more than ~ 80 payments got no answer).
pub const MAX_LIST_REPLY_BYTES: usize = 60_000;

/// The first `limit` (default [`DEFAULT_LIST_LIMIT`], at most [`MAX_LIST_LIMIT`]) of
/// `entries`, fewer if their reply would be longer than [`MAX_LIST_REPLY_BYTES`]; never none
/// while there are entries (one entry is a few KB at most: a BOLT11 description is at most 639
/// bytes), so paging by the number received always moves on.
fn page(mut entries: Vec<LookupInvoiceResponse>, limit: Option<u64>) -> Vec<LookupInvoiceResponse> {
    let limit = limit.unwrap_or(DEFAULT_LIST_LIMIT).min(MAX_LIST_LIMIT) as usize;
    entries.truncate(limit);
    // The reply around the entries, with room to spare: result_type, error, the keys.
    let mut bytes: usize = 100;
    let mut fit = 0;
    for entry in &entries {
        let size = serde_json::to_string(entry).map_or(usize::MAX, |text| text.len() + 1);
        if fit > 0 && bytes.saturating_add(size) > MAX_LIST_REPLY_BYTES {
            break;
        }
        bytes = bytes.saturating_add(size);
        fit += 1;
    }
    entries.truncate(fit);
    entries
}

/// The refusal of a settle for `made` at `block_height`, once its held payment's claim
/// deadline is reached: LDK has failed the HTLCs back to the payer, and its claim then returns
/// without claiming anything, so a success would tell the app it was paid when it was not.
/// `NOT_FOUND`: the held payment is no longer there to settle.
fn held_timed_out(made: &MadeInvoice, block_height: u32) -> Option<NIP47Error> {
    made.hold_timed_out(block_height).then(|| {
        nip47_error(
            ErrorCode::NotFound,
            format!(
                "the held payment timed out at block {} and was failed back to its payer: \
                 nothing was claimed",
                made.claim_deadline.unwrap_or_default()
            ),
        )
    })
}

/// NIP-47's error for a node error.
fn rail_error(e: LightningError) -> NIP47Error {
    let code = match &e {
        LightningError::InsufficientBalance { .. } => ErrorCode::InsufficientBalance,
        LightningError::PaymentFailed { .. }
        | LightningError::NotSent { .. }
        | LightningError::Timeout { .. } => ErrorCode::PaymentFailed,
        LightningError::UnknownPayment(_) | LightningError::HoldInvoiceNotAccepted(_) => {
            ErrorCode::NotFound
        }
        LightningError::Malformed { .. }
        | LightningError::WrongNetwork { .. }
        | LightningError::InvoiceExpired { .. }
        | LightningError::InvalidAmount(_)
        | LightningError::DuplicatePayment => ErrorCode::Other,
        _ => ErrorCode::Internal,
    };
    nip47_error(code, e.to_string())
}

impl NwcService {
    /// Connects to the relays, publishes the service's info event and starts answering.
    ///
    /// # Errors
    /// [`NwcError::Relay`] for a relay URL that does not parse, [`NwcError::Store`] when the
    /// connection store cannot be opened, [`NwcError::Event`] when the info event cannot be
    /// published.
    pub async fn start(
        rail: Arc<dyn PaymentRail>,
        keys: Keys,
        config: NwcConfig,
    ) -> Result<NwcService, NwcError> {
        let parse = |urls: &[String]| {
            urls.iter()
                .map(|u| RelayUrl::parse(u).map_err(|e| NwcError::Relay(format!("{u}: {e}"))))
                .collect::<Result<Vec<_>, _>>()
        };
        let relays = parse(&config.relays)?;
        let uri_relays = if config.uri_relays.is_empty() {
            relays.clone()
        } else {
            parse(&config.uri_relays)?
        };
        let store = match &config.store {
            Some(location) => ConnectionStore::open_at(location.clone())?,
            None => ConnectionStore::in_memory(),
        };
        let client = Client::builder().signer(keys.clone()).build();
        for url in &relays {
            client
                .add_relay(url.clone())
                .await
                .map_err(|e| NwcError::Relay(e.to_string()))?;
        }
        client.connect().await;
        client.wait_for_connection(Duration::from_secs(5)).await;

        let inner = Arc::new(Inner {
            keys,
            client,
            rail,
            uri_relays,
            store: Mutex::new(store),
            seen: Mutex::new(Seen {
                ids: HashSet::new(),
                order: VecDeque::new(),
            }),
            buckets: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            config,
        });
        inner.publish_info().await?;

        // Subscribe before the loop starts reading, from a little in the past: a request sent
        // while we were connecting is still answered (replays are caught by `Seen`).
        let filter = Filter::new()
            .kind(Kind::WalletConnectRequest)
            .pubkey(inner.keys.public_key())
            .since(Timestamp::from(now_secs().saturating_sub(10)));
        let notifications = inner.client.notifications();
        inner
            .client
            .subscribe(filter, None)
            .await
            .map_err(|e| NwcError::Relay(e.to_string()))?;

        let requests = tokio::spawn(Arc::clone(&inner).serve(notifications));
        let events = tokio::spawn(Arc::clone(&inner).notify(inner.rail.events()));
        let left = tokio::spawn(Arc::clone(&inner).conclude_left_in_flight());
        Ok(NwcService {
            inner,
            tasks: vec![requests, events, left],
        })
    }

    /// The service's public key (the first part of every connection URI).
    pub fn public_key(&self) -> PublicKey {
        self.inner.keys.public_key()
    }

    /// Creates a connection for an app: a fresh client key, remembered with its budget and
    /// its expiry (seconds since the Unix epoch; `None`: until revoked), and the URI that
    /// carries the key to the app. The URI is a bearer secret: whoever holds it spends within
    /// the budget until it expires.
    ///
    /// # Errors
    /// [`NwcError::Store`] when the store cannot be saved.
    pub fn connect_app(
        &self,
        name: &str,
        budget: Option<Budget>,
        expires_at: Option<u64>,
    ) -> Result<NostrWalletConnectURI, NwcError> {
        self.connect_app_with(name, budget, expires_at, default_permissions())
    }

    /// [`NwcService::connect_app`] with the methods the app may call: a request for any other
    /// is refused `RESTRICTED`, and `get_info` lists only these.
    ///
    /// # Errors
    /// [`NwcError::Store`] when the store cannot be saved.
    pub fn connect_app_with(
        &self,
        name: &str,
        budget: Option<Budget>,
        expires_at: Option<u64>,
        permissions: BTreeSet<Permission>,
    ) -> Result<NostrWalletConnectURI, NwcError> {
        let client = Keys::generate();
        let mut store = lock(&self.inner.store);
        store.add(name, client.public_key(), budget, expires_at, now_secs());
        store.permit(&client.public_key(), permissions);
        store.save()?;
        Ok(NostrWalletConnectURI::new(
            self.public_key(),
            self.inner.uri_relays.clone(),
            client.secret_key().clone(),
            None,
        ))
    }

    /// Revokes an app's connection: from now on its requests get `UNAUTHORIZED`.
    ///
    /// # Errors
    /// [`NwcError::UnknownConnection`], or [`NwcError::Store`] when the store cannot be saved.
    pub fn revoke(&self, client: &PublicKey) -> Result<(), NwcError> {
        let mut store = lock(&self.inner.store);
        if !store.revoke(client) {
            return Err(NwcError::UnknownConnection(client.to_hex()));
        }
        store.save()
    }

    /// Every connection, revoked and expired ones included.
    pub fn connections(&self) -> Vec<Connection> {
        lock(&self.inner.store).list()
    }

    /// What each connection may still spend in the current period, by client key; `None`
    /// for one without a budget, or one revoked or expired.
    pub fn left_msat(&self, client: &PublicKey) -> Option<u64> {
        lock(&self.inner.store).left_msat(client, now_secs())
    }

    /// Disconnects from the relays and stops answering.
    pub async fn shutdown(mut self) {
        self.stop();
        self.inner.client.shutdown().await;
    }

    fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for NwcService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The URI as a QR code for a terminal, for the app's camera.
///
/// # Errors
/// When the URI is too long for a QR code.
pub fn uri_qr(uri: &NostrWalletConnectURI) -> Result<String, NwcError> {
    moip_wallet::bip21::qr(&uri.to_string()).map_err(|e| NwcError::Event(e.to_string()))
}

impl Inner {
    /// The replaceable info event (kind 13194): methods, encryptions and notifications.
    async fn publish_info(&self) -> Result<(), NwcError> {
        let content = format!("{} notifications", self.offered().join(" "));
        let event = EventBuilder::new(Kind::WalletConnectInfo, content)
            .tags([
                Tag::custom(TagKind::custom("encryption"), ["nip44_v2 nip04"]),
                Tag::custom(TagKind::custom("notifications"), [NOTIFICATIONS.join(" ")]),
            ])
            .sign_with_keys(&self.keys)
            .map_err(|e| NwcError::Event(e.to_string()))?;
        self.client
            .send_event(&event)
            .await
            .map_err(|e| NwcError::Event(e.to_string()))?;
        Ok(())
    }

    async fn serve(
        self: Arc<Self>,
        mut notifications: tokio::sync::broadcast::Receiver<RelayPoolNotification>,
    ) {
        loop {
            match notifications.recv().await {
                Ok(RelayPoolNotification::Event { event, .. }) => {
                    if event.kind != Kind::WalletConnectRequest || !lock(&self.seen).first(event.id)
                    {
                        continue;
                    }
                    let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                        return;
                    };
                    let inner = Arc::clone(&self);
                    tokio::spawn(async move {
                        inner.handle(*event).await;
                        drop(permit);
                    });
                }
                Ok(RelayPoolNotification::Shutdown) => return,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("NWC service skipped {n} relay notifications");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn handle(&self, event: Event) {
        let client = event.pubkey;
        let (encryption, plaintext) = match envelope::open_request(&self.keys, &event) {
            Ok(opened) => opened,
            Err(EnvelopeError::UnsupportedEncryption(e)) => {
                // Answered in the only encryption every client reads, naming the method when
                // the content opens with one we know (a client mislabelling NIP-44, say).
                let method = [Encryption::Nip44, Encryption::Nip04]
                    .into_iter()
                    .find_map(|enc| {
                        envelope::decrypt(&self.keys, &client, enc, &event.content).ok()
                    })
                    .map(|text| method_name(&text))
                    .unwrap_or_default();
                let error = WireError {
                    code: UNSUPPORTED_ENCRYPTION.to_owned(),
                    message: format!("encryption {e:?} is not supported; use nip44_v2 (or nip04)"),
                };
                self.reply(
                    &client,
                    Encryption::Nip04,
                    &event,
                    &method,
                    None,
                    Err(error),
                )
                .await;
                return;
            }
            Err(e) => {
                tracing::debug!("NWC request {} dropped: {e}", event.id);
                return;
            }
        };
        // The method as the app spelled it: every request is answered under the name it asked
        // for, also one rust-nostr's `Method` does not know (an app waits for that answer).
        let method = method_name(&plaintext);
        let active = lock(&self.store).active(&client, now_secs()).is_some();
        if active && !self.first_request(&event) {
            tracing::debug!("NWC request {} was carried out before a restart", event.id);
            return;
        }
        let answer = if !active {
            Answer::One(Err(nip47_error(
                ErrorCode::Unauthorized,
                "no active connection for this key (none, revoked or expired)",
            )
            .into()))
        } else if !self.within_rate(&client) {
            Answer::One(Err(nip47_error(
                ErrorCode::RateLimited,
                "too many requests",
            )
            .into()))
        } else {
            self.dispatch(&client, &method, &plaintext).await
        };
        match answer {
            Answer::One(result) => {
                self.reply(&client, encryption, &event, &method, None, result)
                    .await
            }
            Answer::Each(results) => {
                for (d, result) in results {
                    self.reply(&client, encryption, &event, &method, Some(&d), result)
                        .await;
                }
            }
        }
    }

    /// Carries out one request by the method it names: one not offered is `NOT_IMPLEMENTED`,
    /// params that do not parse are `OTHER`.
    async fn dispatch(&self, client: &PublicKey, method: &str, plaintext: &str) -> Answer {
        if !self.offered().contains(&method) {
            return Answer::One(Err(nip47_error(
                ErrorCode::NotImplemented,
                format!("{method:?} is not offered by this wallet"),
            )
            .into()));
        }
        if !self.permits(client, method) {
            return Answer::One(Err(nip47_error(
                ErrorCode::Restricted,
                format!("this connection is not permitted {method:?}"),
            )
            .into()));
        }
        let params = || {
            serde_json::from_str::<serde_json::Value>(plaintext)
                .ok()
                .and_then(|mut v| v.get_mut("params").map(serde_json::Value::take))
                .unwrap_or_default()
        };
        match method {
            "get_info" => return Answer::One(Ok(self.info(client))),
            "get_budget" => return Answer::One(Ok(self.budget(client))),
            "sign_message" => return Answer::One(self.sign_message(&params())),
            _ => {}
        }
        let request = match Request::from_json(plaintext) {
            Ok(request) => request,
            Err(e) => {
                return Answer::One(Err(WireError::from(nip47_error(
                    ErrorCode::Other,
                    format!("invalid params for {method}: {e}"),
                ))))
            }
        };
        match request.params {
            RequestParams::MultiPayInvoice(params) => {
                let mut answers = Vec::new();
                for item in params.invoices {
                    let d = match &item.id {
                        Some(id) => id.clone(),
                        None => self
                            .rail
                            .decode_invoice(&item.invoice)
                            .map(|i| i.payment_hash.to_string())
                            .unwrap_or_else(|_| item.invoice.clone()),
                    };
                    let paid = self.pay_invoice(client, item.invoice, item.amount).await;
                    answers.push((d, to_wire(paid.map(ResponseResult::MultiPayInvoice))));
                }
                Answer::Each(answers)
            }
            RequestParams::MultiPayKeysend(params) => {
                let mut answers = Vec::new();
                for item in params.keysends {
                    let d = item.id.clone().unwrap_or_else(|| item.pubkey.clone());
                    let paid = self.pay_keysend(client, item).await;
                    let paid = paid.map(|p| {
                        ResponseResult::MultiPayKeysend(PayKeysendResponse {
                            preimage: p.preimage,
                            fees_paid: p.fees_paid,
                        })
                    });
                    answers.push((d, to_wire(paid)));
                }
                Answer::Each(answers)
            }
            RequestParams::MakeInvoice(params) => {
                Answer::One(self.make_invoice(client, params).await)
            }
            _ => Answer::One(to_wire(self.carry_out(client, request).await)),
        }
    }

    /// The methods this service offers: [`METHODS`] and `sign_message` (which only a
    /// connection with the `sign` permission may call).
    fn offered(&self) -> Vec<&'static str> {
        let mut offered = METHODS.to_vec();
        offered.push("sign_message");
        offered
    }

    /// Whether `client`'s active connection may call `method`.
    fn permits(&self, client: &PublicKey, method: &str) -> bool {
        lock(&self.store)
            .active(client, now_secs())
            .is_some_and(|c| c.permits(method))
    }

    /// `sign_message`: the node's signature of `message` as LND's and CLN's `signmessage`
    /// make it (zbase32 over "Lightning Signed Message:" and the message), which anyone
    /// verifies against the node id `get_info` gives.
    fn sign_message(&self, params: &serde_json::Value) -> Result<serde_json::Value, WireError> {
        let message = params
            .get("message")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| {
                WireError::from(nip47_error(
                    ErrorCode::Other,
                    "invalid params for sign_message: give a message (a string)",
                ))
            })?;
        let signature = self
            .rail
            .sign_message(message.as_bytes())
            .map_err(|e| WireError::from(rail_error(e)))?;
        Ok(serde_json::json!({ "message": message, "signature": signature }))
    }

    /// `get_budget`'s result (NIP-47): `used_budget` and `total_budget` in msat for the
    /// current period, `renews_at` (Unix seconds; absent for a budget that never renews) and
    /// `renewal_period`; `{}` for a connection without a budget, as NIP-47 says. A budget kept
    /// from an old store with a sliding period no NIP-47 name matches has no `renewal_period`.
    fn budget(&self, client: &PublicKey) -> serde_json::Value {
        let now = now_secs();
        let store = lock(&self.store);
        let Some(connection) = store.active(client, now) else {
            return serde_json::json!({});
        };
        let (Some(budget), Some(left_msat)) = (connection.budget, connection.left_msat(now)) else {
            return serde_json::json!({});
        };
        let mut result = serde_json::json!({
            "used_budget": budget.limit_msat.saturating_sub(left_msat),
            "total_budget": budget.limit_msat,
        });
        if let Some(at) = budget.renewal.renews_at(connection.period_start, now) {
            result["renews_at"] = at.into();
        }
        if !matches!(budget.renewal, Renewal::EverySecs(_)) {
            result["renewal_period"] = budget.renewal.to_string().into();
        }
        result
    }

    /// `get_info`'s result: the methods `client` may call as NIP-47 names them (some are not
    /// in rust-nostr's `Method`) and the notifications it gets, the network as NIP-47 names it.
    fn info(&self, client: &PublicKey) -> serde_json::Value {
        let permitted = lock(&self.store)
            .active(client, now_secs())
            .map(|c| c.permitted())
            .unwrap_or_default();
        let methods: Vec<&'static str> = self
            .offered()
            .into_iter()
            .filter(|m| Permission::of_method(m).is_some_and(|p| permitted.contains(&p)))
            .collect();
        let notifications: Vec<&'static str> = NOTIFICATIONS
            .into_iter()
            .filter(|n| permitted.iter().any(|p| p.notifications().contains(n)))
            .collect();
        let info = self.rail.node_info();
        let mut result = serde_json::json!({
            "pubkey": info.node_id.to_string(),
            "network": nip47_network(info.network),
            "block_height": info.block_height,
            "methods": get_info_methods(&methods),
            "notifications": notifications,
        });
        if let Some(alias) = info.alias {
            result["alias"] = alias.into();
        }
        result
    }

    /// Whether a connection's request is new also to the service that ran before a restart
    /// (the in-memory [`Seen`] forgets on restart; this is kept with the connections).
    fn first_request(&self, event: &Event) -> bool {
        let mut store = lock(&self.store);
        let id = event.id.to_hex();
        if !store.first_request(&id, event.created_at.as_secs(), now_secs()) {
            return false;
        }
        if let Err(e) = store.save() {
            tracing::warn!("NWC connection store not saved: {e}");
        }
        true
    }

    async fn reply(
        &self,
        client: &PublicKey,
        encryption: Encryption,
        to: &Event,
        method: &str,
        d: Option<&str>,
        result: Result<serde_json::Value, WireError>,
    ) {
        let (result, error) = match result {
            Ok(result) => (Some(result), None),
            Err(error) => (None, Some(error)),
        };
        let reply = Reply {
            result_type: method,
            error,
            result,
        };
        let text = match serde_json::to_string(&reply) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!("NWC reply to {} not serialized: {e}", to.id);
                return;
            }
        };
        let sealed = envelope::seal_tagged(
            &self.keys,
            client,
            encryption,
            Kind::WalletConnectResponse,
            &text,
            Some(to.id),
            d,
        );
        match sealed {
            Ok(event) => {
                if let Err(e) = self.client.send_event(&event).await {
                    tracing::warn!("NWC reply to {} not sent: {e}", to.id);
                }
            }
            Err(e) => tracing::warn!("NWC reply to {} not sealed: {e}", to.id),
        }
    }

    fn within_rate(&self, client: &PublicKey) -> bool {
        let rate = f64::from(self.config.requests_per_minute.max(1)) / 60.0;
        let burst = f64::from(self.config.requests_per_minute.max(1));
        let mut buckets = lock(&self.buckets);
        let now = Instant::now();
        let bucket = buckets.entry(*client).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    async fn carry_out(
        &self,
        client: &PublicKey,
        request: Request,
    ) -> Result<ResponseResult, NIP47Error> {
        match request.params {
            RequestParams::PayInvoice(params) => self
                .pay_invoice(client, params.invoice, params.amount)
                .await
                .map(ResponseResult::PayInvoice),
            RequestParams::PayKeysend(params) => {
                self.pay_keysend(client, params).await.map(|paid| {
                    ResponseResult::PayKeysend(PayKeysendResponse {
                        preimage: paid.preimage,
                        fees_paid: paid.fees_paid,
                    })
                })
            }
            // Answered by `make_invoice`, whose reply has fields `MakeInvoiceResponse` lacks.
            RequestParams::MakeInvoice(_) => Err(nip47_error(
                ErrorCode::Internal,
                "make_invoice is answered before other requests are carried out",
            )),
            RequestParams::LookupInvoice(params) => {
                let hash = match (params.payment_hash, params.invoice) {
                    (Some(hash), _) => hash.parse::<PaymentHash>().map_err(rail_error)?,
                    (None, Some(invoice)) => {
                        self.rail
                            .decode_invoice(&invoice)
                            .map_err(|e| match e {
                                LightningError::InvoiceExpired { .. } => nip47_error(
                                    ErrorCode::Other,
                                    "the invoice has expired: look it up by payment_hash",
                                ),
                                other => rail_error(other),
                            })?
                            .payment_hash
                    }
                    (None, None) => {
                        return Err(nip47_error(
                            ErrorCode::Other,
                            "give a payment_hash or an invoice",
                        ))
                    }
                };
                // Another app's invoice or payment gets the answer a hash the node never saw
                // gets: its existence, and above all its preimage, are not this app's to learn.
                let record = self
                    .rail
                    .payment_by_hash(hash)
                    .await
                    .map_err(rail_error)?
                    .filter(|r| lock(&self.store).sees(client, &hash.to_string(), r.inbound))
                    .ok_or_else(|| {
                        nip47_error(ErrorCode::NotFound, "no such invoice or payment")
                    })?;
                Ok(ResponseResult::LookupInvoice(
                    self.transaction(client, &record),
                ))
            }
            RequestParams::ListTransactions(params) => {
                let records = self.rail.payments().await.map_err(rail_error)?;
                Ok(ResponseResult::ListTransactions(
                    self.list(client, records, &params),
                ))
            }
            RequestParams::GetBalance => {
                // What the connection may still spend, never the node's balance: the node
                // holds the community's collateral, which is no app's to see. With accounts,
                // its account's balance; without, what its budget leaves (0 without one).
                let balance = match &self.config.accounts {
                    Some(accounts) => accounts
                        .available_msat(client)
                        .map_err(|e| nip47_error(ErrorCode::Internal, e.to_string()))?,
                    None => lock(&self.store).left_msat(client, now_secs()).unwrap_or(0),
                };
                Ok(ResponseResult::GetBalance(GetBalanceResponse { balance }))
            }
            // Answered by `info`, which can name methods rust-nostr's `Method` does not know.
            RequestParams::GetInfo => Err(nip47_error(
                ErrorCode::Internal,
                "get_info is answered before requests are parsed",
            )),
            RequestParams::MakeHoldInvoice(params) => {
                let hash = params
                    .payment_hash
                    .parse::<PaymentHash>()
                    .map_err(rail_error)?;
                let description = params.description.unwrap_or_default();
                let expiry = self.expiry(params.expiry);
                let invoice = self
                    .rail
                    .create_hold_invoice(hash, params.amount, &description, expiry)
                    .await
                    .map_err(rail_error)?;
                let hash = invoice.payment_hash;
                let made = self.remember(client, invoice, description);
                Ok(ResponseResult::MakeHoldInvoice(MakeHoldInvoiceResponse {
                    transaction_type: TransactionType::Incoming,
                    invoice: Some(made.bolt11),
                    description: made.description,
                    description_hash: None,
                    payment_hash: hash.to_string(),
                    amount: params.amount,
                    created_at: Timestamp::from(made.created_at),
                    expires_at: Timestamp::from(made.expires_at),
                    metadata: None,
                }))
            }
            RequestParams::SettleHoldInvoice(params) => {
                let preimage = params.preimage.parse::<Preimage>().map_err(rail_error)?;
                let made = self.own_invoice(client, preimage.payment_hash())?;
                // Past its deadline the node failed the payment back, and a claim does nothing
                // but return: the app is told so, and nothing is counted as received.
                if let Some(refusal) = held_timed_out(&made, self.rail.node_info().block_height) {
                    self.hold_decided(preimage.payment_hash());
                    return Err(refusal);
                }
                // The node forgot, if it restarted, which held payments arrived: remind it.
                if let Some(amount_msat) = made.accepted_msat {
                    self.rail.restore_held(preimage.payment_hash(), amount_msat);
                }
                self.rail
                    .settle_hold_invoice(preimage)
                    .await
                    .map_err(rail_error)?;
                self.hold_decided(preimage.payment_hash());
                Ok(ResponseResult::SettleHoldInvoice(
                    SettleHoldInvoiceResponse {},
                ))
            }
            RequestParams::CancelHoldInvoice(params) => {
                let hash = params
                    .payment_hash
                    .parse::<PaymentHash>()
                    .map_err(rail_error)?;
                self.own_invoice(client, hash)?;
                self.rail
                    .cancel_hold_invoice(hash)
                    .await
                    .map_err(rail_error)?;
                self.hold_decided(hash);
                Ok(ResponseResult::CancelHoldInvoice(
                    CancelHoldInvoiceResponse {},
                ))
            }
            RequestParams::MultiPayInvoice(_) | RequestParams::MultiPayKeysend(_) => {
                Err(nip47_error(
                    ErrorCode::NotImplemented,
                    format!("{} is not offered by this wallet", request.method),
                ))
            }
        }
    }

    /// `make_invoice`: the invoice made, as the transaction NIP-47 returns for it.
    async fn make_invoice(
        &self,
        client: &PublicKey,
        params: MakeInvoiceRequest,
    ) -> Result<serde_json::Value, WireError> {
        let expiry = self.expiry(params.expiry);
        let description = params.description.unwrap_or_default();
        // With a description_hash (LNURL-pay, zaps) the invoice commits to the hash; a
        // description sent with it must be what it hashes (a zap's request), and is
        // kept to show the app, not put in the invoice.
        let description_hash = match &params.description_hash {
            Some(hex) => Some(description_hash(hex, &description)?),
            None => None,
        };
        let invoice = match description_hash {
            Some(hash) => self
                .rail
                .create_invoice_for_description_hash(Some(params.amount), hash, expiry)
                .await
                .map_err(rail_error)?,
            None => self
                .rail
                .create_invoice(Some(params.amount), &description, expiry)
                .await
                .map_err(rail_error)?,
        };
        let hash = invoice.payment_hash;
        let made = self.remember(client, invoice, description);
        let response = MakeInvoiceResponse {
            invoice: made.bolt11,
            payment_hash: Some(hash.to_string()),
            description: made.description,
            description_hash: params.description_hash.map(|h| h.to_lowercase()),
            preimage: None,
            amount: made.amount_msat,
            created_at: Some(Timestamp::from(made.created_at)),
            expires_at: Some(Timestamp::from(made.expires_at)),
        };
        make_invoice_reply(response)
    }

    fn expiry(&self, asked: Option<u64>) -> u32 {
        asked
            .map(|e| e.min(u64::from(u32::MAX)) as u32)
            .unwrap_or(self.config.default_expiry_secs)
    }

    /// Writes down that `client` made `invoice`, where the connections are kept: it alone
    /// may look it up, list it, settle or cancel it, and is notified when it is paid.
    fn remember(&self, client: &PublicKey, invoice: Invoice, description: String) -> MadeInvoice {
        let made = MadeInvoice {
            client: *client,
            bolt11: invoice.bolt11,
            amount_msat: invoice.amount_msat,
            description: (!description.is_empty()).then_some(description),
            created_at: now_secs(),
            expires_at: invoice.expires_at,
            accepted_msat: None,
            claim_deadline: None,
        };
        let mut store = lock(&self.store);
        store.remember_made(&invoice.payment_hash.to_string(), made.clone());
        if let Err(e) = store.save() {
            tracing::warn!("NWC connection store not saved: {e}");
        }
        made
    }

    /// The invoice made through the service with this hash, whoever made it.
    fn made(&self, hash: PaymentHash) -> Option<MadeInvoice> {
        lock(&self.store).made(&hash.to_string()).cloned()
    }

    /// Writes down, where the connections are kept, that a held payment arrived (`Some`: its
    /// amount and claim deadline) or was decided (`None`): kept across a restart, which the
    /// node's own note of it is not.
    fn hold_changed(&self, hash: PaymentHash, accepted: Option<(u64, Option<u32>)>) {
        let mut store = lock(&self.store);
        match accepted {
            Some((amount_msat, claim_deadline)) => {
                if !store.hold_accepted(&hash.to_string(), amount_msat, claim_deadline) {
                    return;
                }
            }
            None => store.hold_decided(&hash.to_string()),
        }
        if let Err(e) = store.save() {
            tracing::warn!("NWC connection store not saved: {e}");
        }
    }

    fn hold_decided(&self, hash: PaymentHash) {
        self.hold_changed(hash, None);
    }

    /// Only the connection that made a hold invoice may settle or cancel it.
    fn own_invoice(
        &self,
        client: &PublicKey,
        hash: PaymentHash,
    ) -> Result<MadeInvoice, NIP47Error> {
        match self.made(hash) {
            Some(made) if made.client == *client => Ok(made),
            Some(_) => Err(nip47_error(
                ErrorCode::Restricted,
                "this hold invoice belongs to another connection",
            )),
            None => Err(nip47_error(ErrorCode::NotFound, "no such hold invoice")),
        }
    }

    async fn pay_invoice(
        &self,
        client: &PublicKey,
        bolt11: String,
        amount_msat: Option<u64>,
    ) -> Result<PayInvoiceResponse, NIP47Error> {
        let invoice = self.rail.decode_invoice(&bolt11).map_err(rail_error)?;
        let amount = amount_msat
            .or(invoice.amount_msat)
            .ok_or_else(|| nip47_error(ErrorCode::Other, "the invoice has no amount; give one"))?;
        self.pay(
            client,
            Outgoing {
                payment_hash: invoice.payment_hash,
                amount_msat: amount,
                bolt11: bolt11.clone(),
                expires_at: Some(invoice.expires_at),
                send: Send::Invoice {
                    bolt11,
                    amount_msat,
                },
            },
        )
        .await
    }

    /// `pay_keysend`: the app's preimage, or a fresh one, so the payment's hash is known
    /// before it leaves and it is charged, budgeted and recorded as the app's like an invoice.
    async fn pay_keysend(
        &self,
        client: &PublicKey,
        params: PayKeysendRequest,
    ) -> Result<PayInvoiceResponse, NIP47Error> {
        let node_id = params
            .pubkey
            .parse::<moip_lightning::PublicKey>()
            .map_err(|e| nip47_error(ErrorCode::Other, format!("pubkey: {e}")))?;
        let preimage = match &params.preimage {
            Some(hex) => hex.parse::<Preimage>().map_err(rail_error)?,
            None => Preimage::random(),
        };
        let tlv_records = params
            .tlv_records
            .iter()
            .map(|r| {
                let value = hex_bytes(&r.value).ok_or_else(|| {
                    nip47_error(
                        ErrorCode::Other,
                        format!("tlv record {}: value is not hex", r.tlv_type),
                    )
                })?;
                Ok((r.tlv_type, value))
            })
            .collect::<Result<Vec<_>, NIP47Error>>()?;
        if params.amount == 0 {
            return Err(nip47_error(
                ErrorCode::Other,
                "amount must be more than 0 msat",
            ));
        }
        self.pay(
            client,
            Outgoing {
                payment_hash: preimage.payment_hash(),
                amount_msat: params.amount,
                bolt11: String::new(),
                expires_at: None,
                send: Send::Keysend {
                    node_id,
                    preimage,
                    tlv_records,
                },
            },
        )
        .await
    }

    /// Pays `outgoing` for `client`: refused if the node knows its hash, reserved in the
    /// connection's budget and charged to its account (amount plus fee cap), sent, then
    /// settled to what it cost — or, when the wait runs out, when the node says.
    async fn pay(
        &self,
        client: &PublicKey,
        outgoing: Outgoing,
    ) -> Result<PayInvoiceResponse, NIP47Error> {
        let Outgoing {
            payment_hash,
            amount_msat: amount,
            bolt11,
            expires_at,
            send,
        } = outgoing;
        // A payment the node already knows (an invoice it made — another app's, a deposit —
        // or a payment someone else made or is making) is not made through an app: the node's
        // record of it, with its preimage, would become this app's to look up. Its own failed
        // payments it may try again.
        let hash = payment_hash.to_string();
        if let Some(known) = self
            .rail
            .payment_by_hash(payment_hash)
            .await
            .map_err(rail_error)?
        {
            if known.inbound || !lock(&self.store).sees(client, &hash, false) {
                return Err(nip47_error(
                    ErrorCode::Other,
                    "this payment hash is already known to the wallet",
                ));
            }
        }
        // The budget covers the amount and the most the routing may cost.
        let max_fee = amount / 100 + 10_000;
        let reserved = amount.saturating_add(max_fee);
        lock(&self.store)
            .reserve(client, reserved, now_secs())
            .map_err(|refusal| match refusal {
                SpendRefusal::Unauthorized => {
                    nip47_error(ErrorCode::Unauthorized, "no active connection for this key")
                }
                SpendRefusal::QuotaExceeded { left_msat } => nip47_error(
                    ErrorCode::QuotaExceeded,
                    format!(
                        "{reserved} msat (with fees) asked, {left_msat} msat left in the budget"
                    ),
                ),
            })?;
        // The app's own account covers the amount and the fee cap, or nothing is sent.
        if let Some(accounts) = &self.config.accounts {
            if let Err(refusal) = accounts.reserve(client, reserved, &hash) {
                let mut store = lock(&self.store);
                store.settle(client, reserved, 0);
                let code = match refusal {
                    AccountRefusal::Insufficient { .. } => ErrorCode::InsufficientBalance,
                    AccountRefusal::Unavailable(_) => ErrorCode::Internal,
                };
                return Err(nip47_error(code, refusal.to_string()));
            }
        }
        let limits = RouteLimits::max_fee(max_fee);
        let timeout = self.config.pay_timeout;
        let outcome = match send {
            Send::Invoice {
                bolt11,
                amount_msat,
            } => {
                self.rail
                    .pay(PayRequest {
                        invoice: bolt11,
                        amount_msat,
                        limits,
                        timeout,
                    })
                    .await
            }
            Send::Keysend {
                node_id,
                preimage,
                tlv_records,
            } => {
                self.rail
                    .pay_keysend(KeysendRequest {
                        node_id,
                        amount_msat: amount,
                        preimage,
                        tlv_records,
                        limits,
                        timeout,
                    })
                    .await
            }
        };
        // Only an outcome that says what left is final; any other (a wait that timed out
        // above all) leaves the payment in flight, and it may yet succeed.
        let spent = match &outcome {
            Ok(o) => Some(
                o.amount_msat
                    .unwrap_or(amount)
                    .saturating_add(o.fee_paid_msat.unwrap_or(0)),
            ),
            Err(
                LightningError::Malformed { .. }
                | LightningError::WrongNetwork { .. }
                | LightningError::InvoiceExpired { .. }
                | LightningError::InvalidAmount(_)
                | LightningError::InsufficientBalance { .. }
                | LightningError::DuplicatePayment
                | LightningError::NotSent { .. }
                | LightningError::PaymentFailed { .. },
            ) => Some(0),
            Err(_) => None,
        };
        // The app's account is charged the whole reservation until the outcome is known, so
        // the app never spends twice what may yet leave; the application concludes it from
        // the node's record.
        if let Some(accounts) = &self.config.accounts {
            accounts.settle(client, reserved, spent, &hash);
        }
        {
            let mut store = lock(&self.store);
            // A payment whose outcome is not known keeps its reservation until the node says
            // how it ended (`settle_in_flight`; kept in the store, so also after a restart).
            match spent {
                Some(spent) => store.settle(client, reserved, spent),
                None => store.note_in_flight(
                    &hash,
                    InFlightPayment {
                        client: *client,
                        reserved_msat: reserved,
                        amount_msat: amount,
                        bolt11: bolt11.clone(),
                        expires_at,
                        period_start: 0,
                    },
                ),
            }
            // The rail refusing a duplicate means another payment holds this hash: not ours.
            if !matches!(outcome, Err(LightningError::DuplicatePayment)) {
                store.record_paid(client, &hash, &bolt11);
            }
            if let Err(e) = store.save() {
                tracing::warn!("NWC connection store not saved: {e}");
            }
        }
        if spent.is_none() {
            // The node may have ended the payment between the wait running out and the entry
            // above: its event is then already past, so read its record.
            if let Ok(Some(record)) = self.rail.payment_by_hash(payment_hash).await {
                if record.state != PaymentState::Pending {
                    self.settle_in_flight(payment_hash, record.state, record.fee_paid_msat)
                        .await;
                }
            }
        }
        let outcome = outcome.map_err(rail_error)?;
        let preimage = outcome
            .preimage
            .map(|p| p.to_string())
            .ok_or_else(|| nip47_error(ErrorCode::Internal, "paid, but no preimage recorded"))?;
        let fees = outcome.fee_paid_msat.unwrap_or(0);
        let paid = InFlightPayment {
            client: *client,
            reserved_msat: reserved,
            amount_msat: outcome.amount_msat.unwrap_or(amount),
            bolt11,
            expires_at,
            period_start: 0,
        };
        self.payment_sent(&paid, payment_hash, preimage.clone(), fees)
            .await;
        Ok(PayInvoiceResponse {
            preimage,
            fees_paid: Some(fees),
        })
    }

    /// Tells the app that paid it that a payment left: `payment_sent`.
    async fn payment_sent(
        &self,
        paid: &InFlightPayment,
        payment_hash: PaymentHash,
        preimage: String,
        fees_paid_msat: u64,
    ) {
        self.notify_one(
            &paid.client,
            NotificationType::PaymentSent,
            NotificationResult::PaymentSent(PaymentNotification {
                transaction_type: Some(TransactionType::Outgoing),
                state: Some(TransactionState::Settled),
                invoice: paid.bolt11.clone(),
                description: None,
                description_hash: None,
                preimage,
                payment_hash: payment_hash.to_string(),
                amount: paid.amount_msat,
                fees_paid: fees_paid_msat,
                created_at: Timestamp::now(),
                expires_at: paid.expires_at.map(Timestamp::from),
                settled_at: Timestamp::now(),
                metadata: None,
            }),
        )
        .await;
    }

    /// Concludes a payment that was answered before it ended (the wait ran out): its budget
    /// reservation becomes what it cost (nothing if it failed) and, if it succeeded, the app
    /// gets its `payment_sent` after all. Once per payment: the store hands it out once, so
    /// the node's event and a read of its record cannot both count it.
    async fn settle_in_flight(
        &self,
        payment_hash: PaymentHash,
        state: PaymentState,
        fee_paid_msat: Option<u64>,
    ) {
        if state == PaymentState::Pending {
            return;
        }
        let hash = payment_hash.to_string();
        if !lock(&self.store).in_flight().contains(&hash) {
            return;
        }
        let record = self.rail.payment_by_hash(payment_hash).await.ok().flatten();
        let fees = fee_paid_msat
            .or_else(|| record.as_ref().and_then(|r| r.fee_paid_msat))
            .unwrap_or(0);
        let amount = record.as_ref().and_then(|r| r.amount_msat);
        let paid = {
            let mut store = lock(&self.store);
            let spent = match state {
                PaymentState::Succeeded => {
                    let amount =
                        amount.or_else(|| store.in_flight_payment(&hash).map(|p| p.amount_msat));
                    amount.unwrap_or(0).saturating_add(fees)
                }
                _ => 0,
            };
            let Some(paid) = store.conclude_in_flight(&hash, spent) else {
                return;
            };
            if let Err(e) = store.save() {
                tracing::warn!("NWC connection store not saved: {e}");
            }
            paid
        };
        if state == PaymentState::Succeeded {
            let preimage = record
                .and_then(|r| r.preimage)
                .map(|p| p.to_string())
                .unwrap_or_default();
            let paid = InFlightPayment {
                amount_msat: amount.unwrap_or(paid.amount_msat),
                ..paid
            };
            self.payment_sent(&paid, payment_hash, preimage, fees).await;
        }
    }

    /// Concludes the payments a previous run answered before they ended and that ended while
    /// it was stopped (their events are gone): read from the node's records. Runs at start,
    /// after the event subscription, so one ending meanwhile is caught by either.
    async fn conclude_left_in_flight(self: Arc<Self>) {
        let hashes = lock(&self.store).in_flight();
        for hash in hashes {
            let Ok(payment_hash) = hash.parse::<PaymentHash>() else {
                continue;
            };
            if let Ok(Some(record)) = self.rail.payment_by_hash(payment_hash).await {
                self.settle_in_flight(payment_hash, record.state, record.fee_paid_msat)
                    .await;
            }
        }
    }

    /// A history entry as NIP-47 shows it to `client` (who may see it): an incoming payment
    /// with the invoice it made, an outgoing one with the invoice it paid.
    fn transaction(&self, client: &PublicKey, record: &PaymentRecord) -> LookupInvoiceResponse {
        let made = record.payment_hash.and_then(|h| self.made(h));
        let invoice = if record.inbound {
            made.as_ref().map(|m| m.bolt11.clone())
        } else {
            record.payment_hash.and_then(|h| {
                lock(&self.store)
                    .paid_invoice(client, &h.to_string())
                    .map(str::to_owned)
            })
        };
        let expired = made.as_ref().is_some_and(|m| m.expires_at <= now_secs());
        let state = match record.state {
            PaymentState::Succeeded => TransactionState::Settled,
            PaymentState::Failed => TransactionState::Failed,
            PaymentState::Pending if record.inbound && expired => TransactionState::Expired,
            PaymentState::Pending => TransactionState::Pending,
        };
        LookupInvoiceResponse {
            transaction_type: Some(if record.inbound {
                TransactionType::Incoming
            } else {
                TransactionType::Outgoing
            }),
            state: Some(state),
            invoice,
            description: made.as_ref().and_then(|m| m.description.clone()),
            description_hash: made.as_ref().and_then(|m| description_hash_of(&m.bolt11)),
            preimage: record.preimage.map(|p| p.to_string()),
            payment_hash: record
                .payment_hash
                .map(|h| h.to_string())
                .unwrap_or_default(),
            amount: record.amount_msat.unwrap_or(0),
            fees_paid: record.fee_paid_msat.unwrap_or(0),
            created_at: Timestamp::from(made.as_ref().map_or(record.updated_at, |m| m.created_at)),
            expires_at: made.as_ref().map(|m| Timestamp::from(m.expires_at)),
            settled_at: (state == TransactionState::Settled)
                .then(|| Timestamp::from(record.updated_at)),
            metadata: None,
        }
    }

    /// `list_transactions`: the Lightning payments `client` made or received (through
    /// invoices it made), newest first, filtered and paged.
    fn list(
        &self,
        client: &PublicKey,
        records: Vec<PaymentRecord>,
        params: &ListTransactionsRequest,
    ) -> Vec<LookupInvoiceResponse> {
        let from = params.from.map_or(0, |t| t.as_secs());
        let until = params.until.map_or(u64::MAX, |t| t.as_secs());
        let unpaid = params.unpaid.unwrap_or(false);
        let mut out: Vec<LookupInvoiceResponse> = records
            .iter()
            .rev()
            .filter(|r| r.kind != PaymentType::Onchain)
            .filter(|r| {
                r.payment_hash
                    .is_some_and(|h| lock(&self.store).sees(client, &h.to_string(), r.inbound))
            })
            .filter(|r| (from..=until).contains(&r.updated_at))
            .filter(|r| match params.transaction_type {
                Some(TransactionType::Incoming) => r.inbound,
                Some(TransactionType::Outgoing) => !r.inbound,
                None => true,
            })
            .filter(|r| unpaid || !r.inbound || r.state == PaymentState::Succeeded)
            .map(|r| self.transaction(client, r))
            .collect();
        let offset = params.offset.unwrap_or(0).min(out.len() as u64) as usize;
        out.drain(..offset);
        page(out, params.limit)
    }

    /// Turns node events into notifications for the connection concerned.
    async fn notify(self: Arc<Self>, mut events: tokio::sync::broadcast::Receiver<LightningEvent>) {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("NWC service missed {n} node events");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            match event {
                LightningEvent::PaymentReceived {
                    payment_hash,
                    amount_msat,
                    ..
                } => {
                    let Some(made) = self.made(payment_hash) else {
                        continue;
                    };
                    if let Some(accounts) = &self.config.accounts {
                        accounts.received(&made.client, amount_msat, &payment_hash.to_string());
                    }
                    let preimage = match self.rail.payment_by_hash(payment_hash).await {
                        Ok(Some(record)) => record.preimage.map(|p| p.to_string()),
                        _ => None,
                    };
                    let notification = PaymentNotification {
                        transaction_type: Some(TransactionType::Incoming),
                        state: Some(TransactionState::Settled),
                        invoice: made.bolt11.clone(),
                        description: made.description.clone(),
                        description_hash: description_hash_of(&made.bolt11),
                        preimage: preimage.unwrap_or_default(),
                        payment_hash: payment_hash.to_string(),
                        amount: amount_msat,
                        fees_paid: 0,
                        created_at: Timestamp::from(made.created_at),
                        expires_at: Some(Timestamp::from(made.expires_at)),
                        settled_at: Timestamp::now(),
                        metadata: None,
                    };
                    self.notify_one(
                        &made.client,
                        NotificationType::PaymentReceived,
                        NotificationResult::PaymentReceived(notification),
                    )
                    .await;
                }
                LightningEvent::HoldInvoiceAccepted {
                    payment_hash,
                    amount_msat,
                    claim_deadline,
                } => {
                    let Some(made) = self.made(payment_hash) else {
                        continue;
                    };
                    self.hold_changed(payment_hash, Some((amount_msat, claim_deadline)));
                    let notification = HoldInvoiceAcceptedNotification {
                        transaction_type: TransactionType::Incoming,
                        invoice: made.bolt11.clone(),
                        description: made.description.clone(),
                        description_hash: None,
                        payment_hash: payment_hash.to_string(),
                        amount: amount_msat,
                        created_at: Timestamp::from(made.created_at),
                        expires_at: Timestamp::from(made.expires_at),
                        settle_deadline: claim_deadline.unwrap_or(0),
                        metadata: None,
                    };
                    self.notify_one(
                        &made.client,
                        NotificationType::HoldInvoiceAccepted,
                        NotificationResult::HoldInvoiceAccepted(notification),
                    )
                    .await;
                }
                LightningEvent::PaymentSent {
                    payment_hash,
                    fee_paid_msat,
                    ..
                } => {
                    self.settle_in_flight(payment_hash, PaymentState::Succeeded, fee_paid_msat)
                        .await;
                }
                LightningEvent::PaymentFailed {
                    payment_hash: Some(payment_hash),
                    ..
                } => {
                    self.settle_in_flight(payment_hash, PaymentState::Failed, None)
                        .await;
                }
                _ => {}
            }
        }
    }

    /// Sends a notification to one connection in both encryptions, as NIP-47 says: NIP-44
    /// (kind 23197) and NIP-04 (kind 23196). An app subscribes to the kind it reads, whatever
    /// encryption it last made a request in (an app may listen before it ever asks anything,
    /// or listen with one library and ask with another).
    async fn notify_one(
        &self,
        client: &PublicKey,
        notification_type: NotificationType,
        notification: NotificationResult,
    ) {
        let name = match notification_type {
            NotificationType::PaymentReceived => "payment_received",
            NotificationType::PaymentSent => "payment_sent",
            NotificationType::HoldInvoiceAccepted => "hold_invoice_accepted",
        };
        let sees = lock(&self.store)
            .active(client, now_secs())
            .is_some_and(|c| {
                c.permitted()
                    .iter()
                    .any(|p| p.notifications().contains(&name))
            });
        if !sees {
            return;
        }
        let text = Notification {
            notification_type,
            notification,
        }
        .as_json();
        let kinds = [
            (Encryption::Nip44, Kind::Custom(NOTIFICATION_NIP44_KIND)),
            (Encryption::Nip04, Kind::WalletConnectNotification),
        ];
        for (encryption, kind) in kinds {
            match envelope::seal(&self.keys, client, encryption, kind, &text, None) {
                Ok(event) => {
                    if let Err(e) = self.client.send_event(&event).await {
                        tracing::warn!("NWC notification not sent: {e}");
                    }
                }
                Err(e) => tracing::warn!("NWC notification not sealed: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history entry as large as one gets: a long invoice and BOLT11's longest description.
    fn big_entry(i: usize) -> LookupInvoiceResponse {
        LookupInvoiceResponse {
            transaction_type: Some(TransactionType::Incoming),
            state: Some(TransactionState::Settled),
            invoice: Some(format!("lnbcrt{i}{}", "q".repeat(1_000))),
            description: Some("d".repeat(639)),
            description_hash: None,
            preimage: Some("11".repeat(32)),
            payment_hash: format!("{i:064x}"),
            amount: 1_000,
            fees_paid: 0,
            created_at: Timestamp::from(1_700_000_000),
            expires_at: Some(Timestamp::from(1_700_003_600)),
            settled_at: Some(Timestamp::from(1_700_000_100)),
            metadata: None,
        }
    }

    fn sealed_reply(entries: Vec<LookupInvoiceResponse>) -> Result<Event, envelope::EnvelopeError> {
        let reply = Reply {
            result_type: "list_transactions",
            error: None,
            result: Some(
                serde_json::to_value(ResponseResult::ListTransactions(entries)).expect("json"),
            ),
        };
        let text = serde_json::to_string(&reply).expect("json");
        let (service, app) = (Keys::generate(), Keys::generate());
        envelope::seal(
            &service,
            &app.public_key(),
            Encryption::Nip44,
            Kind::WalletConnectResponse,
            &text,
            None,
        )
    }

    /// Issue 23: 1 000 of the largest entries cannot be sealed in NIP-44 (what the old
    /// default of 1 000 sent, so the app got nothing); every page of them can, by default,
    /// asked for too many, and paging by offset returns each entry once, newest first.
    #[test]
    fn list_transactions_pages_always_fit_in_a_nip44_reply() {
        let all: Vec<_> = (0..1_000).map(big_entry).collect();
        assert!(
            sealed_reply(all.clone()).is_err(),
            "1 000 entries do not fit: the reason for pages"
        );
        let first = page(all.clone(), None);
        assert!(!first.is_empty() && first.len() <= DEFAULT_LIST_LIMIT as usize);
        sealed_reply(first).expect("the default page fits");
        let asked_all = page(all.clone(), Some(1_000));
        assert!(asked_all.len() <= MAX_LIST_LIMIT as usize);
        sealed_reply(asked_all).expect("the largest page fits");
        assert_eq!(
            page(all.clone(), Some(3)).len(),
            3,
            "a small limit is honoured"
        );

        let mut seen = Vec::new();
        while seen.len() < all.len() {
            let rest = all[seen.len()..].to_vec();
            let got = page(rest, Some(1_000));
            assert!(!got.is_empty(), "paging stalled at {}", seen.len());
            sealed_reply(got.clone()).expect("every page fits");
            seen.extend(got.into_iter().map(|e| e.payment_hash));
        }
        let expected: Vec<_> = all.into_iter().map(|e| e.payment_hash).collect();
        assert_eq!(seen, expected);
    }

    /// A description hash is 32 bytes of hex and, with a description, its SHA-256.
    #[test]
    fn description_hashes_are_checked() {
        // SHA-256("zap").
        let zap = "b4c5ae2ae961fe88d12821bdf945b15482ef021703e1f900ccbe1a27f22df07f";
        assert_eq!(description_hash(zap, "").map(|h| h[0]), Ok(0xb4));
        assert!(description_hash(&zap.to_uppercase(), "zap").is_ok());
        let wrong = description_hash(zap, "not a zap").expect_err("mismatch");
        assert_eq!(wrong.code, ErrorCode::Other);
        assert!(description_hash("abcd", "").is_err(), "too short");
        assert!(description_hash(&"zz".repeat(32), "").is_err(), "not hex");
    }

    #[test]
    fn networks_are_named_as_nip47_names_them() {
        assert_eq!(nip47_network(Network::Bitcoin), "mainnet");
        assert_eq!(nip47_network(Network::Testnet), "testnet");
        assert_eq!(nip47_network(Network::Signet), "signet");
        assert_eq!(nip47_network(Network::Regtest), "regtest");
    }

    #[test]
    fn a_request_names_its_method_or_none() {
        assert_eq!(method_name(r#"{"method":"foo","params":{}}"#), "foo");
        assert_eq!(method_name(r#"{"params":{}}"#), "");
        assert_eq!(method_name("not json"), "");
        let wire = WireError::from(nip47_error(ErrorCode::NotImplemented, "no"));
        assert_eq!(wire.code, "NOT_IMPLEMENTED");
    }

    /// A held payment whose claim deadline the chain has reached was failed back by the node
    /// (LDK's claim then returns without claiming): settling it is refused with `NOT_FOUND`
    /// and a message saying so; before the deadline, or without a held payment, it is not.
    #[test]
    fn a_settle_after_the_held_payments_deadline_is_refused() {
        let made = MadeInvoice {
            client: nostr_sdk::Keys::generate().public_key(),
            bolt11: "lnbcrt1".into(),
            amount_msat: Some(5_000),
            description: None,
            created_at: 0,
            expires_at: 10,
            accepted_msat: Some(5_000),
            claim_deadline: Some(300),
        };
        assert!(held_timed_out(&made, 299).is_none(), "still claimable");
        let refusal = held_timed_out(&made, 300).expect("failed back at the deadline");
        assert_eq!(refusal.code, ErrorCode::NotFound);
        assert!(refusal.message.contains("timed out"), "{}", refusal.message);
        let unknown = MadeInvoice {
            claim_deadline: None,
            ..made.clone()
        };
        assert!(
            held_timed_out(&unknown, 1_000).is_none(),
            "no deadline known"
        );
        let decided = MadeInvoice {
            accepted_msat: None,
            ..made
        };
        assert!(held_timed_out(&decided, 1_000).is_none(), "nothing held");
    }
}
