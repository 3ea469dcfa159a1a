//! The provider role: a wallet serving consumers through a relay, one socket per beacon.
//!
//! The crate holds no wallet: a [`ProviderBackend`] supplies balances, invoices and payments
//! (moip implements it on its Lightning node). An [`Account`] is one wallet as consumers see it:
//! its uuid, its balance as a wad, and every beacon (nexus) connected to it. Whatever changes
//! the balance — a payment made for one consumer, an invoice of another paid — is announced with
//! `NOTIFY_PROVIDER` to every announced nexus of the account, so two apps on one account stay in
//! step. [`Account::events`] reports each nexus being created, announced, revoked and destroyed.
//!
//! Requests are answered in the v0 way: `REQUEST_PROVIDER` → `NOTIFY_PROVIDER`,
//! `REQUEST_PING` → `NOTIFY_PONG`, `REQUEST_INVOICE` → `NOTIFY_INVOICE`, `REQUEST_PAY` →
//! `NOTIFY_PREIMAGE` once paid (with the routing fee); failures → `NOTIFY_ERROR` referencing the
//! request, with a numeric [`ErrorCode`]. When an invoice a consumer asked for is paid, that
//! consumer gets `NOTIFY_PREIMAGE` referencing its invoice request.
//!
//! A consumer that offers the authenticated layer in `REQUEST_PROVIDER` gets the provider's
//! hello in `NOTIFY_PROVIDER`, and both switch to it (unless the provider is configured
//! [`Security::Legacy`]); with [`Security::Require`] a consumer that does not offer it is
//! refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::client::{ClientConfig, ClientError, OutgoingSocket, Security};
use crate::nexus::{NexusEvent, NexusEventKind};
use crate::secure::{Handshake, Role, Session};
use crate::v0::message::{Body, ErrorCode, Message, NotificationKind, Preimage, RequestKind};
use crate::v0::provider_info::ProviderInfo;
use crate::v0::wad::Wad;
use crate::SharedSeed;

/// Why the wallet could not do what a consumer asked; the code goes on the wire.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// For the person using the app.
    pub message: String,
    /// The payment may still complete (the wait for its outcome ran out while its HTLCs are in
    /// flight): the beacon's budget keeps the amount reserved instead of giving it back.
    pub outcome_unknown: bool,
}

impl BackendError {
    /// An error with `code`: the request failed for good.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> BackendError {
        BackendError {
            code,
            message: message.into(),
            outcome_unknown: false,
        }
    }

    /// A payment whose outcome is not known yet (it may still settle).
    pub fn outcome_unknown(code: ErrorCode, message: impl Into<String>) -> BackendError {
        BackendError {
            outcome_unknown: true,
            ..BackendError::new(code, message)
        }
    }
}

/// Amounts set aside in a beacon's budget for one payment, from before it is sent until its
/// final outcome is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reservation {
    /// The budget's id for it.
    pub id: u64,
    /// The payment's amount, in msat.
    pub amount_msat: u64,
    /// The most routing fee it may cost, in msat, reserved with the amount (the fee really
    /// paid replaces it when the payment settles).
    pub max_fee_msat: u64,
}

/// Why a beacon's budget refused a payment. Nothing was paid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The payment would take the beacon over its limit (what is spent plus what is reserved
    /// for payments still in flight).
    #[error("over this beacon's spending limit: {left_msat} msat left")]
    Exhausted {
        /// What the beacon may still spend.
        left_msat: u64,
    },
    /// The operator revoked the beacon.
    #[error("this beacon was revoked")]
    Revoked,
    /// The beacon's `expires_at` has passed: refused like a revoked one.
    #[error("this beacon has expired")]
    Expired,
    /// The reservation could not be recorded, so the payment is not made.
    #[error("the beacon's budget could not be recorded: {0}")]
    Store(String),
    /// The beacon's own account cannot cover the amount and the most its routing may cost
    /// (a beacon with an account never spends the wallet's other money).
    #[error("the beacon's balance is {available_msat} msat, {wanted_msat} msat needed with fees")]
    Insufficient {
        /// What the beacon's account holds now.
        available_msat: u64,
        /// The amount plus the most the routing may cost.
        wanted_msat: u64,
    },
    /// The invoice cannot be read, so the payment cannot be charged to the beacon's account.
    #[error("the invoice cannot be charged to this beacon: {0}")]
    InvalidInvoice(String),
}

impl BudgetError {
    /// The code the consumer is told.
    pub fn code(&self) -> ErrorCode {
        match self {
            BudgetError::Exhausted { .. } | BudgetError::Revoked | BudgetError::Expired => {
                ErrorCode::SPENDING_LIMIT
            }
            BudgetError::Store(_) => ErrorCode::NOT_READY,
            BudgetError::Insufficient { .. } => ErrorCode::INSUFFICIENT_BALANCE,
            BudgetError::InvalidInvoice(_) => ErrorCode::INVALID_INVOICE,
        }
    }
}

/// What one beacon may spend, across all its sessions. The provider reserves each payment's
/// amount before sending it, settles the reservation (adding the routing fee) when it is paid,
/// and releases it only when the payment failed for good; a payment whose outcome is unknown
/// stays reserved ([`BeaconBudget::unresolved`]) until whoever implements the budget learns
/// its final outcome. moip keeps it durably per beacon, so neither a reconnect nor a restart
/// resets what was spent.
pub trait BeaconBudget: Send + Sync + 'static {
    /// Sets `amount_msat` and at most `max_fee_msat` of routing fee aside for paying `bolt11`.
    ///
    /// # Errors
    /// [`BudgetError`] when the beacon may not spend both; nothing is then reserved.
    fn reserve(
        &self,
        amount_msat: u64,
        max_fee_msat: u64,
        bolt11: &str,
    ) -> Result<Reservation, BudgetError>;
    /// The payment was made, with `fee_msat` of routing fees: both count as spent. Returns what
    /// the beacon has spent in all, fees included.
    fn settle(&self, reservation: Reservation, fee_msat: u64) -> u64;
    /// The payment failed for good: the amount may be spent again.
    fn release(&self, reservation: Reservation);
    /// The payment's outcome is not known yet: the amount stays reserved.
    fn unresolved(&self, reservation: Reservation);
    /// What the beacon's consumers may spend now, in msat, when the beacon has an account of
    /// its own: they are told it instead of the wallet's balance, which is not theirs. The
    /// default, `None`, shows the wallet's balance (a budget that is only a limit).
    fn balance_msat(&self) -> Option<u64> {
        None
    }
    /// A consumer on this beacon made the invoice with `payment_hash`: once paid, it is the
    /// beacon's money. Called before the consumer is given the invoice, so that no payment to
    /// it can arrive unrecorded.
    ///
    /// # Errors
    /// [`BudgetError`] when it cannot be recorded: the consumer is refused the invoice.
    fn invoiced(&self, payment_hash: [u8; 32]) -> Result<(), BudgetError> {
        let _ = payment_hash;
        Ok(())
    }
    /// Whether [`BeaconBudget::reserve`] could admit any payment now: false once the beacon is
    /// revoked or expired or its limit is used up. The consumer is told it as `payer`, so an
    /// app does not offer to pay through a beacon that will refuse. The default, `true`, is for
    /// a budget with no such state.
    fn may_pay(&self) -> bool {
        true
    }
    /// Whether invoices made for this beacon's consumers are taken ([`BeaconBudget::invoiced`]
    /// succeeds): false once the beacon is revoked or expired. The consumer is told it as
    /// `payee`. The default is `true`.
    fn may_receive(&self) -> bool {
        true
    }
}

/// A budget held in memory: it spans every session of the beacons that share it, not a
/// restart. [`serve`] and [`serve_socket`] give each call one of their own.
#[derive(Debug, Default)]
pub struct MemoryBudget {
    limit: SpendingLimit,
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    spent_msat: u64,
    reserved: HashMap<u64, u64>,
    next: u64,
    revoked: bool,
}

impl MemoryBudget {
    /// A budget of `limit`, nothing spent.
    pub fn new(limit: SpendingLimit) -> MemoryBudget {
        MemoryBudget {
            limit,
            state: Mutex::default(),
        }
    }

    /// What was spent, fees included, in msat.
    pub fn spent_msat(&self) -> u64 {
        lock(&self.state).spent_msat
    }

    /// What is reserved for payments not yet settled, in msat.
    pub fn reserved_msat(&self) -> u64 {
        lock(&self.state).reserved.values().sum()
    }

    /// Refuses every payment from now on.
    pub fn revoke(&self) {
        lock(&self.state).revoked = true;
    }
}

impl BeaconBudget for MemoryBudget {
    fn reserve(
        &self,
        amount_msat: u64,
        max_fee_msat: u64,
        _bolt11: &str,
    ) -> Result<Reservation, BudgetError> {
        let mut state = lock(&self.state);
        if state.revoked {
            return Err(BudgetError::Revoked);
        }
        let committed = state
            .spent_msat
            .saturating_add(state.reserved.values().sum());
        if let Some(max) = self.limit.max_msat {
            if committed
                .saturating_add(amount_msat)
                .saturating_add(max_fee_msat)
                > max
            {
                return Err(BudgetError::Exhausted {
                    left_msat: max.saturating_sub(committed),
                });
            }
        }
        state.next += 1;
        let id = state.next;
        state
            .reserved
            .insert(id, amount_msat.saturating_add(max_fee_msat));
        Ok(Reservation {
            id,
            amount_msat,
            max_fee_msat,
        })
    }

    fn settle(&self, reservation: Reservation, fee_msat: u64) -> u64 {
        let mut state = lock(&self.state);
        if state.reserved.remove(&reservation.id).is_some() {
            state.spent_msat = state
                .spent_msat
                .saturating_add(reservation.amount_msat)
                .saturating_add(fee_msat);
        }
        state.spent_msat
    }

    fn release(&self, reservation: Reservation) {
        lock(&self.state).reserved.remove(&reservation.id);
    }

    fn unresolved(&self, _reservation: Reservation) {}

    /// Not revoked, and the limit (if any) leaves something.
    fn may_pay(&self) -> bool {
        let state = lock(&self.state);
        let committed = state
            .spent_msat
            .saturating_add(state.reserved.values().sum());
        !state.revoked && self.limit.max_msat.is_none_or(|max| committed < max)
    }
}

/// A payment the wallet made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paid {
    /// Proof of payment.
    pub preimage: [u8; 32],
    /// The routing fee, in msat.
    pub fee_msat: u64,
}

/// What a provider needs from a wallet.
#[async_trait::async_trait]
pub trait ProviderBackend: Send + Sync + 'static {
    /// What the consumers may spend, in msat.
    async fn balance_msat(&self) -> Result<u64, BackendError>;
    /// A BOLT11 invoice for `msats` with an optional description, and its payment hash.
    async fn invoice(
        &self,
        msats: u64,
        description: Option<&str>,
    ) -> Result<(String, [u8; 32]), BackendError>;
    /// Pays `bolt11`; `amount_msat` is given for an amountless invoice. Spends at most
    /// [`ProviderBackend::max_fee_msat`] of routing fee.
    async fn pay(&self, bolt11: &str, amount_msat: Option<u64>) -> Result<Paid, BackendError>;
    /// The most routing fee [`ProviderBackend::pay`] spends on a payment of `amount_msat`. The
    /// provider reserves it with the amount in the beacon's budget, so a limit holds fees
    /// included. The default, 0, is for a wallet that pays no routing fee.
    fn max_fee_msat(&self, amount_msat: u64) -> u64 {
        let _ = amount_msat;
        0
    }
    /// Payments received: (payment hash, preimage). A subscription starting now.
    fn received(&self) -> broadcast::Receiver<([u8; 32], [u8; 32])>;
}

/// How balances are shown: in bitcoin only, or also in a fiat denomination at a configured rate.
#[derive(Clone, Debug)]
pub enum Denomination {
    /// Millisatoshis, as the references do.
    Bitcoin,
    /// A fiat currency at `units_per_btc` (e.g. 60 000 for USD), shown with `decimals`.
    Fiat {
        /// ISO 4217 code, e.g. "USD".
        code: String,
        /// ISO 4217 number, e.g. 840.
        iso_num: u16,
        /// Currency units for one bitcoin.
        units_per_btc: f64,
        /// Decimals to display.
        decimals: u8,
        /// The currency's symbol.
        symbol: String,
    },
}

impl Denomination {
    /// A fiat denomination for the ISO 4217 `code` at `units_per_btc`, with the currency's
    /// usual decimals and symbol (the code itself for currencies without a well-known one).
    ///
    /// # Errors
    /// A text for the user when the code is not an ISO 4217 currency or the rate is not a
    /// positive finite number.
    pub fn fiat(code: &str, units_per_btc: f64) -> Result<Denomination, String> {
        let code = code.to_ascii_uppercase();
        let iso_num = crate::v1::iso4217::number_for_code(&code)
            .ok_or_else(|| format!("{code} is not an ISO 4217 currency code"))?;
        if !(units_per_btc.is_finite() && units_per_btc > 0.0) {
            return Err(format!(
                "the rate must be a positive number, not {units_per_btc}"
            ));
        }
        let (symbol, decimals) = match code.as_str() {
            "USD" | "CAD" | "AUD" | "MXN" | "ARS" => ("$", 2),
            "EUR" => ("€", 2),
            "GBP" => ("£", 2),
            "JPY" => ("¥", 0),
            "KRW" => ("₩", 0),
            "INR" => ("₹", 2),
            _ => (code.as_str(), 2),
        };
        Ok(Denomination::Fiat {
            symbol: symbol.to_owned(),
            code: code.clone(),
            iso_num,
            units_per_btc,
            decimals,
        })
    }

    /// The balance as a wad.
    pub fn wad(&self, msats: u64) -> Wad {
        match self {
            Denomination::Bitcoin => Wad::bitcoin(msats),
            Denomination::Fiat {
                code,
                iso_num,
                units_per_btc,
                decimals,
                symbol,
            } => {
                let units = msats as f64 / 1e11 * units_per_btc;
                let fields = crate::v0::wad::WadFields {
                    msats,
                    // The balance is bitcoin shown at a rate: nothing hedges it, so its fiat
                    // value moves with the price. A wad claiming stability would tell an app
                    // the fiat amount is held, which it is not.
                    asset_stable: false,
                    asset_units: serde_json::Number::from_f64(units)
                        .unwrap_or_else(|| serde_json::Number::from(0)),
                    code: code.clone(),
                    countries: None,
                    decimals: Some(*decimals),
                    iso_num: Some(*iso_num),
                    name: None,
                    symbol: Some(symbol.clone()),
                };
                // A rate that makes no valid wad (negative, absurd) falls back to bitcoin.
                Wad::new(fields).unwrap_or_else(|_| Wad::bitcoin(msats))
            }
        }
    }
}

/// A wallet as its consumers see it.
pub struct Account {
    uuid: Uuid,
    backend: Arc<dyn ProviderBackend>,
    denomination: Denomination,
    /// Balance changes, to every nexus of the account.
    updates: broadcast::Sender<()>,
    events: broadcast::Sender<NexusEvent>,
    nexuses: Mutex<HashMap<Uuid, NexusStatus>>,
}

/// An announced nexus of an account, as [`Account::nexuses`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NexusStatus {
    /// The nexus.
    pub nexus: Uuid,
    /// The beacon's rendezvous id.
    pub rendezvous_id: crate::RendezvousId,
    /// Whether the authenticated layer is in use.
    pub secure: bool,
    /// What consumers on this beacon have spent, fees included, in msat.
    pub spent_msat: u64,
}

impl Account {
    /// An account with a fresh uuid.
    pub fn new(backend: Arc<dyn ProviderBackend>, denomination: Denomination) -> Arc<Account> {
        Arc::new(Account {
            uuid: crate::ids::random_v4(),
            backend,
            denomination,
            updates: broadcast::channel(64).0,
            events: broadcast::channel(256).0,
            nexuses: Mutex::new(HashMap::new()),
        })
    }

    /// The account's uuid (the same to every consumer).
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The wallet has become ready (the reference's `provider_now_ready_from_app`): every nexus
    /// that answered `NOTIFY_PROVIDER_NOT_READY` asks again at once, instead of at its next
    /// retry, and announced ones are sent the balance.
    pub fn now_ready(&self) {
        let _ = self.updates.send(());
    }

    /// Every nexus of this account being created, announced, revoked and destroyed, from now on.
    pub fn events(&self) -> broadcast::Receiver<NexusEvent> {
        self.events.subscribe()
    }

    /// The nexuses announced now.
    pub fn nexuses(&self) -> Vec<NexusStatus> {
        lock(&self.nexuses).values().cloned().collect()
    }

    fn emit(&self, socket: &OutgoingSocket, kind: NexusEventKind) {
        let _ = self.events.send(NexusEvent {
            nexus: socket.uuid(),
            rendezvous_id: socket.rendezvous_id(),
            kind,
        });
    }

    /// The provider info a consumer on a beacon with `budget` is told: the beacon's own
    /// balance when it has one, else the wallet's. `payer` and `payee` say what this provider
    /// will actually do on this beacon now — pay only with something to spend and a budget that
    /// admits a payment, make invoices only for a beacon that takes them — since apps (the
    /// references' consumers) grey out what the provider says it will not do.
    async fn info(&self, budget: &dyn BeaconBudget) -> Result<ProviderInfo, BackendError> {
        let msats = match budget.balance_msat() {
            Some(msats) => msats,
            None => self.backend.balance_msat().await?,
        };
        Ok(ProviderInfo {
            account_uuid: self.uuid,
            payer: msats > 0 && budget.may_pay(),
            payee: budget.may_receive(),
            wad: Some(self.denomination.wad(msats)),
        })
    }
}

/// A beacon's limit: what consumers on it may spend in total, routing fees included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpendingLimit {
    /// `None`: no limit.
    pub max_msat: Option<u64>,
}

/// Why serving a beacon stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The relay connection failed or closed, or the authenticated layer refused a frame.
    #[error(transparent)]
    Client(#[from] ClientError),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One nexus: the account served on one beacon.
struct Nexus {
    account: Arc<Account>,
    uuid: Uuid,
    budget: Arc<dyn BeaconBudget>,
    /// Invoices asked for on this nexus: payment hash → the invoice request's uuid.
    invoices: Mutex<HashMap<[u8; 32], Uuid>>,
}

/// Serves `account` on the beacon `seed` at the relay `url` until the connection ends, with a
/// budget of `limit` for this session only (see [`serve_with_budget`] for one that lasts).
///
/// # Errors
/// [`ProviderError::Client`] when the relay cannot be reached or the connection breaks.
pub async fn serve(
    url: &str,
    seed: SharedSeed,
    account: Arc<Account>,
    limit: SpendingLimit,
    config: &ClientConfig,
) -> Result<(), ProviderError> {
    let budget = Arc::new(MemoryBudget::new(limit));
    serve_with_budget(url, seed, account, budget, config).await
}

/// [`serve`], spending from `budget` (shared by every session of the beacon).
///
/// # Errors
/// [`ProviderError::Client`] when the relay cannot be reached or the connection breaks.
pub async fn serve_with_budget(
    url: &str,
    seed: SharedSeed,
    account: Arc<Account>,
    budget: Arc<dyn BeaconBudget>,
    config: &ClientConfig,
) -> Result<(), ProviderError> {
    let socket = OutgoingSocket::connect(url, seed, config).await?;
    serve_socket_with_budget(socket, account, budget, config.security).await
}

/// [`serve`] on a socket already connected to a relay (over the network, or in process with
/// [`crate::relay::RelayHandle::local_connect`]): rendezvouses, then serves until the consumer
/// leaves (`Ok`) or the connection fails.
///
/// # Errors
/// [`ProviderError::Client`] when the connection breaks or a frame on the authenticated layer
/// is refused.
pub async fn serve_socket(
    socket: OutgoingSocket,
    account: Arc<Account>,
    limit: SpendingLimit,
    security: Security,
) -> Result<(), ProviderError> {
    let budget = Arc::new(MemoryBudget::new(limit));
    serve_socket_with_budget(socket, account, budget, security).await
}

/// [`serve_socket`], spending from `budget` (shared by every session of the beacon).
///
/// # Errors
/// [`ProviderError::Client`] when the connection breaks or a frame on the authenticated layer
/// is refused.
pub async fn serve_socket_with_budget(
    mut socket: OutgoingSocket,
    account: Arc<Account>,
    budget: Arc<dyn BeaconBudget>,
    security: Security,
) -> Result<(), ProviderError> {
    account.emit(&socket, NexusEventKind::Created);
    // Whatever ends the session — even its task being aborted (a beacon revoked) — the nexus
    // leaves the account's list.
    let _listed = Listed {
        account: &account,
        nexus: socket.uuid(),
    };
    let nexus = Arc::new(Nexus {
        account: Arc::clone(&account),
        uuid: socket.uuid(),
        budget,
        invoices: Mutex::new(HashMap::new()),
    });
    let mut announced = false;
    let result = match socket.rendezvous().await {
        Ok(()) => run(&mut socket, &nexus, security, &mut announced).await,
        Err(e) => Err(e),
    };
    if announced {
        lock(&account.nexuses).remove(&nexus.uuid);
        let reason = match &result {
            Ok(()) => "the consumer left".to_owned(),
            Err(e) => e.to_string(),
        };
        account.emit(&socket, NexusEventKind::Revoked { reason });
    }
    account.emit(&socket, NexusEventKind::Destroyed);
    let _ = socket.close().await;
    result.map_err(ProviderError::from)
}

/// Takes a nexus off its account's list when dropped.
struct Listed<'a> {
    account: &'a Account,
    nexus: Uuid,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        lock(&self.account.nexuses).remove(&self.nexus);
    }
}

async fn run(
    socket: &mut OutgoingSocket,
    nexus: &Arc<Nexus>,
    security: Security,
    announced: &mut bool,
) -> Result<(), ClientError> {
    let account = &nexus.account;
    let mut updates = account.updates.subscribe();
    let mut received = account.backend.received();
    // Answers are produced by tasks (a payment takes a while) and sent from this loop, which
    // owns the socket.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Message>(64);
    // A REQUEST_PROVIDER answered NOT_READY, waiting for the wallet (see [`Parked`]).
    let mut parked: Option<Parked> = None;
    let mut retry = tokio::time::interval(NOT_READY_RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = socket.recv() => {
                let message = match message {
                    Ok(message) => message,
                    Err(ClientError::RendezvousEnded) => return Ok(()),
                    Err(e) if e.is_recoverable() => continue,
                    Err(e) => return Err(e),
                };
                let auth_hello = message.auth_hello;
                let Body::Request(request) = message.body else { continue };
                let uuid = request.request_uuid;
                if socket.is_secure() || security == Security::Legacy {
                    if let RequestKind::Provider = request.kind {
                        // Answered here, not in a task: it announces the nexus.
                        let reply = nexus.provider_info(uuid).await;
                        socket.send(&reply).await?;
                        if is_ready(&reply) {
                            parked = None;
                            announce(socket, nexus, socket.is_secure(), announced);
                        } else if !*announced {
                            parked = Some(Parked { uuid, handshake: None });
                        }
                        continue;
                    }
                } else {
                    match request.kind {
                        RequestKind::Provider => {
                            // The handshake: our hello goes out under v0, then both switch.
                            let handshake = match auth_hello {
                                Some(hello) => {
                                    let (handshake, ours) =
                                        Handshake::start(*socket.shared_seed(), Role::Provider);
                                    match handshake.finish(&hello) {
                                        Ok(session) => Some((session, ours)),
                                        Err(e) => {
                                            let refusal = refuse(uuid, ErrorCode::INVALID_REQUEST,
                                                format!("authenticated-layer hello refused: {e}"));
                                            socket.send(&refusal).await?;
                                            continue;
                                        }
                                    }
                                }
                                None if security == Security::Require => {
                                    socket.send(&required(uuid)).await?;
                                    continue;
                                }
                                None => None,
                            };
                            let mut reply = nexus.provider_info(uuid).await;
                            let ready = is_ready(&reply);
                            match handshake {
                                Some((session, ours)) if ready => {
                                    reply.auth_hello = Some(ours);
                                    socket.send(&reply).await?;
                                    socket.upgrade(session);
                                }
                                handshake => {
                                    socket.send(&reply).await?;
                                    // Not ready: the handshake completes with the NOTIFY_PROVIDER
                                    // that follows once the wallet is.
                                    if !ready {
                                        parked = Some(Parked { uuid, handshake });
                                    }
                                }
                            }
                            if ready {
                                parked = None;
                                announce(socket, nexus, socket.is_secure(), announced);
                            }
                            continue;
                        }
                        _ if security == Security::Require => {
                            socket.send(&required(uuid)).await?;
                            continue;
                        }
                        _ => {}
                    }
                }
                let (nexus, out) = (Arc::clone(nexus), out_tx.clone());
                tokio::spawn(async move {
                    let reply = nexus.answer(uuid, request.kind).await;
                    let _ = out.send(reply).await;
                });
            }
            Some(reply) = out_rx.recv() => socket.send(&reply).await?,
            _ = retry.tick(), if parked.is_some() => {
                if let Some(waiting) = parked.take() {
                    parked = unpark(socket, nexus, waiting, announced).await?;
                }
            }
            update = updates.recv() => {
                if let Some(waiting) = parked.take() {
                    parked = unpark(socket, nexus, waiting, announced).await?;
                    continue;
                }
                if !*announced {
                    continue;
                }
                if let Err(broadcast::error::RecvError::Closed) = update {
                    continue;
                }
                if let Ok(info) = account.info(&*nexus.budget).await {
                    socket.send(&Message::notification(None, NotificationKind::Provider(info))).await?;
                }
            }
            paid = received.recv() => {
                let Ok((hash, preimage)) = paid else { continue };
                let reference = lock(&nexus.invoices).remove(&hash);
                if let Some(reference) = reference {
                    let kind = NotificationKind::Preimage {
                        preimage: Preimage::from_bytes(preimage),
                        ext: None,
                        fee_msats: None,
                    };
                    socket.send(&Message::notification(Some(reference), kind)).await?;
                    let _ = account.updates.send(());
                }
            }
        }
    }
}

/// How often a parked `REQUEST_PROVIDER` asks the wallet again, besides every
/// [`Account::now_ready`].
const NOT_READY_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// A `REQUEST_PROVIDER` answered `NOTIFY_PROVIDER_NOT_READY`. The reference provider parks the
/// nexus and sends `NOTIFY_PROVIDER` once its app says it is ready (`provider_now_ready_from_app`),
/// and the reference consumer waits for it rather than asking again: so the provider keeps the
/// request and answers it a second time, referencing the same uuid, when the wallet is ready.
struct Parked {
    uuid: Uuid,
    /// The authenticated layer's session and our hello, when the consumer offered it: they go
    /// with the NOTIFY_PROVIDER that finally answers.
    handshake: Option<(Session, Vec<u8>)>,
}

/// Asks the wallet again for a parked request: once ready, sends `NOTIFY_PROVIDER` referencing
/// it (switching to the authenticated layer if negotiated) and announces the nexus; otherwise
/// hands the request back to wait on.
async fn unpark(
    socket: &mut OutgoingSocket,
    nexus: &Nexus,
    parked: Parked,
    announced: &mut bool,
) -> Result<Option<Parked>, ClientError> {
    let mut reply = nexus.provider_info(parked.uuid).await;
    if !is_ready(&reply) {
        return Ok(Some(parked));
    }
    match parked.handshake {
        Some((session, ours)) => {
            reply.auth_hello = Some(ours);
            socket.send(&reply).await?;
            socket.upgrade(session);
        }
        None => socket.send(&reply).await?,
    }
    announce(socket, nexus, socket.is_secure(), announced);
    Ok(None)
}

/// True for a `NOTIFY_PROVIDER` (not `NOTIFY_PROVIDER_NOT_READY`).
fn is_ready(reply: &Message) -> bool {
    matches!(&reply.body, Body::Notification(n) if matches!(n.kind, NotificationKind::Provider(_)))
}

/// Records the nexus as announced (the first time) and tells the account's listeners.
fn announce(socket: &OutgoingSocket, nexus: &Nexus, secure: bool, announced: &mut bool) {
    if *announced {
        return;
    }
    *announced = true;
    lock(&nexus.account.nexuses).insert(
        nexus.uuid,
        NexusStatus {
            nexus: nexus.uuid,
            rendezvous_id: socket.rendezvous_id(),
            secure,
            spent_msat: 0,
        },
    );
    nexus
        .account
        .emit(socket, NexusEventKind::Announced { secure });
}

/// The one-message answer to request `uuid`.
fn reply(uuid: Uuid, kind: NotificationKind) -> Message {
    Message::notification(Some(uuid), kind)
}

/// `NOTIFY_ERROR` for request `uuid`.
fn refuse(uuid: Uuid, code: ErrorCode, error_msg: String) -> Message {
    reply(
        uuid,
        NotificationKind::Error {
            error_msg,
            error_code: Some(code),
        },
    )
}

fn required(uuid: Uuid) -> Message {
    refuse(
        uuid,
        ErrorCode::SECURE_LAYER_REQUIRED,
        "this provider requires the authenticated-encryption layer".into(),
    )
}

fn backend_refusal(uuid: Uuid, e: BackendError) -> Message {
    refuse(uuid, e.code, e.message)
}

impl Nexus {
    async fn provider_info(&self, uuid: Uuid) -> Message {
        match self.account.info(&*self.budget).await {
            Ok(info) => reply(uuid, NotificationKind::Provider(info)),
            Err(_) => reply(uuid, NotificationKind::ProviderNotReady),
        }
    }

    async fn answer(&self, uuid: Uuid, kind: RequestKind) -> Message {
        match kind {
            RequestKind::Ping => reply(uuid, NotificationKind::Pong),
            RequestKind::Provider => self.provider_info(uuid).await,
            RequestKind::Invoice { msats, description } => {
                let made = self
                    .account
                    .backend
                    .invoice(msats.get(), description.as_deref())
                    .await;
                match made {
                    Ok((bolt11, hash)) => match bolt11.parse() {
                        Ok(bolt11) => {
                            // Recorded as the beacon's before the consumer can hand it out.
                            if let Err(e) = self.budget.invoiced(hash) {
                                return refuse(uuid, e.code(), e.to_string());
                            }
                            lock(&self.invoices).insert(hash, uuid);
                            reply(uuid, NotificationKind::Invoice { bolt11 })
                        }
                        Err(_) => refuse(
                            uuid,
                            ErrorCode::INVOICE_FAILED,
                            "the wallet made an invoice the protocol cannot carry".into(),
                        ),
                    },
                    Err(e) => backend_refusal(uuid, e),
                }
            }
            RequestKind::Pay { bolt11, msats } => {
                self.pay(uuid, bolt11.as_str(), msats.map(|m| m.get()))
                    .await
            }
            RequestKind::Rendezvous { .. } => refuse(
                uuid,
                ErrorCode::INVALID_REQUEST,
                "already rendezvoused".into(),
            ),
        }
    }

    async fn pay(&self, uuid: Uuid, bolt11: &str, msats: Option<u64>) -> Message {
        // An invoice is bech32 with an `ln…` prefix; anything else is refused before the amount
        // rules, so the consumer hears what is actually wrong.
        if !bolt11_shaped(bolt11) {
            return refuse(
                uuid,
                ErrorCode::INVALID_INVOICE,
                "malformed invoice: not a bech32 BOLT11 string".into(),
            );
        }
        // The amount comes from the invoice's human-readable part, or from the request for an
        // amountless invoice; never both, so a consumer cannot overpay by mistake.
        let amount = match (bolt11_amount_msat(bolt11), msats) {
            (Some(amount), None) => amount,
            (None, Some(amount)) => amount,
            (Some(_), Some(_)) => {
                return refuse(
                    uuid,
                    ErrorCode::AMOUNT_MISMATCH,
                    "the invoice has an amount; do not give another".into(),
                )
            }
            (None, None) => {
                return refuse(
                    uuid,
                    ErrorCode::AMOUNT_MISMATCH,
                    "the invoice has no amount: say how much to pay".into(),
                )
            }
        };
        // The amount is reserved in the beacon's budget (across sessions) before paying; it
        // counts as spent once paid, the fee added, and is given back only when the payment
        // failed for good. A payment whose outcome is unknown keeps its reservation.
        let max_fee = self.account.backend.max_fee_msat(amount);
        let reservation = match self.budget.reserve(amount, max_fee, bolt11) {
            Ok(reservation) => reservation,
            Err(e) => return refuse(uuid, e.code(), e.to_string()),
        };
        match self.account.backend.pay(bolt11, msats).await {
            Ok(paid) => {
                let spent = self.budget.settle(reservation, paid.fee_msat);
                if let Some(status) = lock(&self.account.nexuses).get_mut(&self.uuid) {
                    status.spent_msat = spent;
                }
                let _ = self.account.updates.send(());
                reply(
                    uuid,
                    NotificationKind::Preimage {
                        preimage: Preimage::from_bytes(paid.preimage),
                        ext: None,
                        fee_msats: Some(paid.fee_msat),
                    },
                )
            }
            Err(e) => {
                if e.outcome_unknown {
                    self.budget.unresolved(reservation);
                } else {
                    self.budget.release(reservation);
                }
                backend_refusal(uuid, e)
            }
        }
    }
}

/// Whether `bolt11` has the shape of a BOLT11 invoice: an `ln…` prefix, then bech32 data long
/// enough for a timestamp, a signature and a checksum. The wallet checks the rest (checksum,
/// signature, network); this only lets the provider say "malformed" before anything else.
pub fn bolt11_shaped(bolt11: &str) -> bool {
    const CHARSET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    // timestamp (7) + signature (104) + checksum (6), in 5-bit characters.
    const MIN_DATA: usize = 7 + 104 + 6;
    let mixed_case = bolt11.chars().any(|c| c.is_ascii_uppercase())
        && bolt11.chars().any(|c| c.is_ascii_lowercase());
    let lower = bolt11.to_ascii_lowercase();
    let Some((hrp, data)) = lower.rsplit_once('1') else {
        return false;
    };
    !mixed_case
        && hrp.starts_with("ln")
        && data.len() >= MIN_DATA
        && data.chars().all(|c| CHARSET.contains(c))
}

/// The amount of a BOLT11 invoice from its human-readable part (`lnbcrt25u1…` → 2 500 000
/// msat); `None` for an amountless or unreadable one.
pub fn bolt11_amount_msat(bolt11: &str) -> Option<u64> {
    let lower = bolt11.to_ascii_lowercase();
    let hrp = &lower[..lower.rfind('1')?];
    let rest = hrp.strip_prefix("ln")?;
    // The network prefix is letters; the amount starts at the first digit.
    let start = rest.find(|c: char| c.is_ascii_digit())?;
    let amount = &rest[start..];
    let (digits, multiplier) = match amount.chars().last()? {
        c @ ('m' | 'u' | 'n' | 'p') => (&amount[..amount.len() - 1], Some(c)),
        _ => (amount, None),
    };
    let value: u64 = digits.parse().ok()?;
    // msat per unit of the multiplier: 1 BTC = 10^11 msat.
    match multiplier {
        None => value.checked_mul(100_000_000_000),
        Some('m') => value.checked_mul(100_000_000),
        Some('u') => value.checked_mul(100_000),
        Some('n') => value.checked_mul(100),
        Some('p') => (value % 10 == 0).then_some(value / 10),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bolt11_amounts_from_the_human_readable_part() {
        assert_eq!(bolt11_amount_msat("lnbcrt25u1pabc"), Some(2_500_000));
        assert_eq!(bolt11_amount_msat("lnbc1m1pxyz"), Some(100_000_000));
        assert_eq!(bolt11_amount_msat("lnbc2500n1p"), Some(250_000));
        assert_eq!(bolt11_amount_msat("lnbc10p1p"), Some(1));
        assert_eq!(bolt11_amount_msat("lnbc15p1p"), None);
        assert_eq!(bolt11_amount_msat("lnbcrt1pamountless"), None);
        assert_eq!(bolt11_amount_msat("garbage"), None);
        assert_eq!(bolt11_amount_msat("lnbc99999999999999999999m1p"), None);
        let real = format!("lnbcrt10u1p{}", "q".repeat(120));
        assert!(bolt11_shaped(&real));
        assert!(bolt11_shaped(&real.to_uppercase()));
        assert!(!bolt11_shaped("lnbcrt1garbage"));
        assert!(!bolt11_shaped(&format!("lnbcrt10u1p{}", "b".repeat(120))));
        assert!(!bolt11_shaped(&format!("bc1{}", "q".repeat(120))));
        assert!(!bolt11_shaped(&format!("lnBCrt10u1p{}", "q".repeat(120))));
    }

    #[test]
    fn a_budget_holds_reservations_until_their_final_outcome() {
        let budget = MemoryBudget::new(SpendingLimit {
            max_msat: Some(30_000),
        });
        let first = budget
            .reserve(20_000, 0, "lnbcrt…")
            .expect("within the limit");
        // Its outcome is unknown (the wait timed out): still reserved, so 20 000 more is over.
        budget.unresolved(first);
        assert_eq!(
            budget.reserve(20_000, 0, "lnbcrt…"),
            Err(BudgetError::Exhausted { left_msat: 10_000 })
        );
        assert_eq!(budget.reserved_msat(), 20_000);
        // It settled after all: spent with its fee.
        assert_eq!(budget.settle(first, 7), 20_007);
        assert_eq!(budget.reserved_msat(), 0);
        // A payment that failed for good gives its amount back.
        // The fee allowance is reserved too: 9 000 with up to 994 of fee fits, 995 does not.
        assert_eq!(
            budget.reserve(9_000, 994, "lnbcrt…"),
            Err(BudgetError::Exhausted { left_msat: 9_993 })
        );
        let second = budget.reserve(9_000, 993, "lnbcrt…").expect("9 993 left");
        budget.release(second);
        assert_eq!(budget.spent_msat(), 20_007);
        budget
            .reserve(9_993, 0, "lnbcrt…")
            .expect("all that is left");
        budget.revoke();
        assert_eq!(budget.reserve(1, 0, "lnbcrt…"), Err(BudgetError::Revoked));
        assert_eq!(BudgetError::Revoked.code(), ErrorCode::SPENDING_LIMIT);
    }

    /// A wallet with a fixed balance that makes no invoices and pays nothing: enough for the
    /// provider info, which asks only the balance.
    struct Balance(u64);

    #[async_trait::async_trait]
    impl ProviderBackend for Balance {
        async fn balance_msat(&self) -> Result<u64, BackendError> {
            Ok(self.0)
        }
        async fn invoice(
            &self,
            _: u64,
            _: Option<&str>,
        ) -> Result<(String, [u8; 32]), BackendError> {
            Err(BackendError::new(ErrorCode::INVOICE_FAILED, "unit test"))
        }
        async fn pay(&self, _: &str, _: Option<u64>) -> Result<Paid, BackendError> {
            Err(BackendError::new(ErrorCode::PAYMENT_FAILED, "unit test"))
        }
        fn received(&self) -> broadcast::Receiver<([u8; 32], [u8; 32])> {
            broadcast::channel(1).1
        }
    }

    /// `payer` is true only when a payment could be made: something to spend and a budget that
    /// admits one. Before, both flags were always true.
    #[tokio::test]
    async fn provider_info_says_what_the_provider_will_do() {
        let limited = |max| {
            MemoryBudget::new(SpendingLimit {
                max_msat: Some(max),
            })
        };
        let flags = |info: ProviderInfo| (info.payer, info.payee);
        let funded = Account::new(Arc::new(Balance(50_000)), Denomination::Bitcoin);
        let empty = Account::new(Arc::new(Balance(0)), Denomination::Bitcoin);

        let open = MemoryBudget::default();
        assert_eq!(flags(funded.info(&open).await.expect("info")), (true, true));
        assert_eq!(flags(empty.info(&open).await.expect("info")), (false, true));
        assert_eq!(
            flags(funded.info(&limited(0)).await.expect("info")),
            (false, true)
        );

        let budget = limited(10_000);
        assert_eq!(
            flags(funded.info(&budget).await.expect("info")),
            (true, true)
        );
        let all = budget
            .reserve(10_000, 0, "lnbcrt…")
            .expect("within the limit");
        assert_eq!(
            flags(funded.info(&budget).await.expect("info")),
            (false, true)
        );
        budget.release(all);
        assert_eq!(
            flags(funded.info(&budget).await.expect("info")),
            (true, true)
        );
        budget.revoke();
        assert_eq!(
            flags(funded.info(&budget).await.expect("info")),
            (false, true)
        );

        let usd = Account::new(
            Arc::new(Balance(50_000)),
            Denomination::fiat("USD", 60_000.0).expect("usd"),
        );
        let wad = usd.info(&open).await.expect("info").wad.expect("wad");
        assert!(
            !wad.asset_stable(),
            "a fiat wad nothing hedges is not stable"
        );
    }

    /// A wallet that is not ready (its node still starting) for its first `not_ready` balance
    /// queries, then has 50 000 msat.
    struct Warming {
        not_ready: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl ProviderBackend for Warming {
        async fn balance_msat(&self) -> Result<u64, BackendError> {
            use std::sync::atomic::Ordering;
            let left = self.not_ready.load(Ordering::SeqCst);
            if left > 0 {
                self.not_ready.store(left - 1, Ordering::SeqCst);
                return Err(BackendError::new(ErrorCode::NOT_READY, "starting"));
            }
            Ok(50_000)
        }
        async fn invoice(
            &self,
            _: u64,
            _: Option<&str>,
        ) -> Result<(String, [u8; 32]), BackendError> {
            Err(BackendError::new(ErrorCode::INVOICE_FAILED, "unit test"))
        }
        async fn pay(&self, _: &str, _: Option<u64>) -> Result<Paid, BackendError> {
            Err(BackendError::new(ErrorCode::PAYMENT_FAILED, "unit test"))
        }
        fn received(&self) -> broadcast::Receiver<([u8; 32], [u8; 32])> {
            broadcast::channel(1).1
        }
    }

    /// An account on a [`Warming`] wallet, and the wallet (to make it ready).
    fn warming(not_ready: usize) -> (Arc<Account>, Arc<Warming>) {
        let backend = Arc::new(Warming {
            not_ready: std::sync::atomic::AtomicUsize::new(not_ready),
        });
        let account = Account::new(
            Arc::clone(&backend) as Arc<dyn ProviderBackend>,
            Denomination::Bitcoin,
        );
        (account, backend)
    }

    /// On the wire through a real relay: a REQUEST_PROVIDER that finds the wallet not ready is
    /// answered NOTIFY_PROVIDER_NOT_READY, then — when the wallet says it is ready — a
    /// NOTIFY_PROVIDER referencing the same request, as the reference consumer waits for.
    /// Before, nothing followed the NOT_READY.
    #[tokio::test]
    async fn not_ready_is_followed_by_notify_provider_once_ready() {
        use crate::relay::{Relay, RelayConfig};
        const WAIT: std::time::Duration = std::time::Duration::from_secs(20);
        let relay = Relay::bind(RelayConfig {
            bind: "127.0.0.1:0".parse().expect("address"),
            ..RelayConfig::default()
        })
        .await
        .expect("relay");
        let url = format!("ws://{}", relay.local_addr());
        let legacy = ClientConfig {
            security: Security::Legacy,
            ..ClientConfig::default()
        };

        // A reference-like consumer, frame by frame: the provider stays not ready until told.
        let seed = SharedSeed::from_bytes([9; 16]);
        let (account, wallet) = warming(usize::MAX);
        let provider = tokio::spawn({
            let (url, account, config) = (url.clone(), Arc::clone(&account), legacy.clone());
            async move { serve(&url, seed, account, SpendingLimit::default(), &config).await }
        });
        let mut consumer = tokio::time::timeout(WAIT, crate::client::connect(&url, seed, &legacy))
            .await
            .expect("in time")
            .expect("rendezvous");
        let request = Message::request(RequestKind::Provider);
        let Body::Request(sent) = &request.body else {
            unreachable!()
        };
        let uuid = sent.request_uuid;
        consumer.send(&request).await.expect("send");
        let answer = |m: Message| match m.body {
            Body::Notification(n) => (n.request_reference_uuid, n.kind),
            Body::Request(r) => panic!("a request: {r:?}"),
        };
        let first = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .expect("in time");
        assert_eq!(
            answer(first.expect("NOT_READY")),
            (Some(uuid), NotificationKind::ProviderNotReady)
        );
        // The wallet becomes ready and says so.
        wallet
            .not_ready
            .store(0, std::sync::atomic::Ordering::SeqCst);
        account.now_ready();
        let second = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .expect("NOTIFY_PROVIDER follows the NOT_READY");
        match answer(second.expect("NOTIFY_PROVIDER")) {
            (Some(reference), NotificationKind::Provider(info)) => {
                assert_eq!(reference, uuid);
                assert_eq!(info.wad.expect("wad").msats(), 50_000);
                assert!(info.payer && info.payee);
            }
            other => panic!("expected NOTIFY_PROVIDER, got {other:?}"),
        }
        assert_eq!(account.nexuses().len(), 1, "announced once ready");
        drop(consumer);
        provider.abort();

        // This crate's consumer, offering the authenticated layer: it waits past NOT_READY
        // and the layer is negotiated with the late NOTIFY_PROVIDER (the wallet is ready from
        // its second query: the provider's own retry finds it).
        let seed = SharedSeed::from_bytes([10; 16]);
        let (account, _wallet) = warming(1);
        let prefer = ClientConfig::default();
        let provider = tokio::spawn({
            let (url, account, config) = (url.clone(), Arc::clone(&account), prefer.clone());
            async move { serve(&url, seed, account, SpendingLimit::default(), &config).await }
        });
        let consumer = crate::consumer::Consumer::connect(&url, seed, &prefer, WAIT)
            .await
            .expect("connected once the provider is ready");
        assert!(
            consumer.is_secure(),
            "the layer came with the late NOTIFY_PROVIDER"
        );
        assert_eq!(
            consumer.provider_info().wad.as_ref().expect("wad").msats(),
            50_000
        );
        consumer.ping().await.expect("served");
        provider.abort();
    }

    #[test]
    fn fiat_wads_carry_both_amounts() {
        let usd = Denomination::Fiat {
            code: "USD".into(),
            iso_num: 840,
            units_per_btc: 60_000.0,
            decimals: 2,
            symbol: "$".into(),
        };
        let wad = usd.wad(100_000_000); // 1 mBTC = 100 000 000 msat = $60
        assert_eq!(wad.msats(), 100_000_000);
        assert_eq!(wad.code(), "USD");
        // Shown in dollars, held in bitcoin: nothing hedges it.
        assert!(!wad.asset_stable());
        assert_eq!(wad.asset_units().as_f64(), Some(60.0));
        assert_eq!(Denomination::Bitcoin.wad(5).code(), "BTC");
        match Denomination::fiat("eur", 50_000.0) {
            Ok(Denomination::Fiat {
                code,
                iso_num,
                symbol,
                ..
            }) => assert_eq!((code.as_str(), iso_num, symbol.as_str()), ("EUR", 978, "€")),
            other => panic!("{other:?}"),
        }
        assert!(Denomination::fiat("XYZ", 1.0).is_err());
        assert!(Denomination::fiat("USD", -1.0).is_err());
        assert!(Denomination::fiat("USD", f64::NAN).is_err());
    }
}
