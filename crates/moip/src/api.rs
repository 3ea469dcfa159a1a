//! The REST API of a community node: everything the dashboard shows and does, for any HTTP
//! client, described by the OpenAPI document at `/api/openapi.json` (generated from this code
//! by utoipa).
//!
//! Reading is open: the community's figures, the pool, the collateral history, tasks,
//! identities and their neighbourhoods, the node's status. Acting is signed by the actor's own
//! key — a NIP-07 signer in the browser, or any Nostr library: `POST /api/prepare` turns a
//! form's fields into the unsigned event to sign, `POST /api/events` takes a signed Work event
//! and answers with the Work service's receipt, `POST /api/redemptions` takes a signed
//! redemption request. A deposit invoice is asked for by a logged-in member, for their own
//! account (the dashboard's session cookie; an API client logs in as a NIP-07 signer does:
//! `POST /login/challenge`, then `POST /login/nip07` with the signed challenge), or by the
//! operator for any account. Pairing an app with the node's wallet needs the operator's token
//! (`Authorization: Bearer …`, the file `api.token` in the data directory).
//!
//! Balances are private: a member sees their own, the operator sees all, anyone else sees none
//! — unless the community publishes them (`publish_balances` in `[community]`).
//!
//! Errors are JSON `{"error": "..."}` with the status an API client expects: 400 for a body or
//! field that does not parse, 401 for a signature that does not verify or a missing operator
//! token, 403 for a wrong one, 404 for an unknown task or redemption, 409 for a request already
//! taken, 413 for a body over the limit, 422 for what the rules refuse, 502/504 when the relay
//! or the node fails or is slow.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::StringRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use moip_assets::ledger::AccountId;
use moip_assets::pool::PoolError;
use moip_nwc::{Budget, Renewal};
use moip_work::events::unsigned;
use moip_work::receipt::Verdict;
use nostr_sdk::{Event, JsonUtil, Kind, PublicKey};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::actions::{self, decode_redeem, redeem_builder, Fields, Prepared, RedeemRequest};
use crate::beacons::BeaconView;
use crate::commitments::CommitmentRecord;
use crate::deposits::{DepositError, Depositor};
use crate::history::Point;
use crate::hub::Hub;
use crate::views::{
    self, ChannelView, CommunityView, IdentityView, Neighbour, NodeView, PoolView, RedemptionView,
    TaskView, Viewer,
};

/// Largest request body accepted, in bytes (a Nostr event with its content and tags).
pub const MAX_BODY: usize = 64 * 1024;

/// How long `POST /api/events` waits for the receipt.
pub const RECEIPT_WAIT: Duration = Duration::from_secs(10);

/// Most tasks or identities one listing returns.
pub const MAX_LISTED: usize = 500;

/// An error, as every endpoint reports it.
#[derive(Serialize, ToSchema)]
pub struct ApiError {
    /// What went wrong, for a person.
    pub error: String,
}

/// A refusal: its status and its reason.
#[derive(Debug)]
pub struct Failure {
    /// The HTTP status.
    pub status: StatusCode,
    /// The reason, for a person.
    pub message: String,
}

impl Failure {
    /// A refusal with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ApiError {
                error: self.message,
            }),
        )
            .into_response()
    }
}

/// The service's decision on a submitted event.
#[derive(Serialize, ToSchema)]
pub struct ReceiptView {
    /// Position in the community's log.
    pub seq: u64,
    /// When applied (Unix seconds).
    pub at: u64,
    /// `accepted`, `quorum_reached`, `resolved` or `rejected`, with details.
    #[schema(value_type = Object)]
    pub verdict: Verdict,
}

/// `POST /api/prepare`: a form's fields, for the member `pubkey`.
#[derive(Deserialize, ToSchema)]
pub struct PrepareRequest {
    /// The member (hex or npub).
    pub pubkey: String,
    /// The form's fields: `action` (post, claim, withdraw, submit, attest, dispute, vote,
    /// certify, vouch, redeem) and the action's own.
    #[schema(value_type = Object)]
    pub fields: Fields,
}

/// The unsigned event to sign, and where to send it signed.
#[derive(Serialize, ToSchema)]
pub struct Unsigned {
    /// The event (NIP-01 JSON without `id` and `sig`).
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    /// `/api/events` or `/api/redemptions`.
    pub submit: String,
}

/// `POST /api/deposits`.
#[derive(Deserialize, ToSchema)]
pub struct DepositRequest {
    /// Who gets the tokens (hex or npub): for a member, their own key (may be left out); for
    /// the operator, anyone.
    #[serde(default)]
    pub pubkey: Option<String>,
    /// Satoshis, minted 1:1.
    pub sats: u64,
}

/// A deposit invoice.
#[derive(Serialize, ToSchema)]
pub struct DepositView {
    /// Its payment hash (hex): `GET /api/deposits/{hash}`.
    pub payment_hash: String,
    /// The BOLT11 invoice to pay.
    pub invoice: String,
    /// Satoshis asked.
    pub sats: u64,
    /// Tokens minted for it so far (0 until paid).
    pub minted: u64,
}

/// `POST /api/pairing/nwc`.
#[derive(Default, Deserialize, ToSchema)]
pub struct NwcPairingRequest {
    /// The app's name, for the list of connections.
    pub name: String,
    /// Most the app may spend per period, in sat (omit: no budget).
    pub budget_sat: Option<u64>,
    /// When the budget renews, at the start of the UTC calendar period: `daily` (the default),
    /// `weekly` (Monday), `monthly`, `yearly` or `never` — Alby Hub's names.
    pub budget_renewal: Option<String>,
    /// When the connection stops working, Unix seconds (omit: until revoked).
    pub expires_at: Option<u64>,
    /// What the app may do: any of `pay` (pay_invoice, pay_keysend, multi_pay_*), `receive`
    /// (make_invoice, the hold invoice methods), `read` (get_info, get_balance, get_budget,
    /// lookup_invoice, list_transactions) and `sign` (sign_message, as the node: never
    /// granted unless named). Omit: `pay`, `receive`, `read`. Other methods get `RESTRICTED`.
    pub permissions: Option<Vec<String>>,
}

/// One NWC connection as the operator sees it (`GET /api/pairing/nwc`): never its secret.
#[derive(Serialize, ToSchema)]
pub struct NwcConnectionView {
    /// The name given when pairing.
    pub name: String,
    /// Its client key, hex: what `fund` and revocation name it by.
    pub client: String,
    /// Most it may spend per period, msat (`null`: no budget).
    pub budget_msat: Option<u64>,
    /// When the budget renews (`daily`, `weekly`, `monthly`, `yearly`, `never`; `null`: no
    /// budget).
    pub budget_renewal: Option<String>,
    /// What the budget leaves in the current period, msat (`null`: no budget, or revoked or
    /// expired).
    pub left_msat: Option<u64>,
    /// When it stops working, Unix seconds (`null`: until revoked).
    pub expires_at: Option<u64>,
    /// What it may do (`pay`, `receive`, `read`, `sign`).
    pub permissions: Vec<String>,
    /// It has expired: every request gets `UNAUTHORIZED`.
    pub expired: bool,
    /// It was revoked: every request gets `UNAUTHORIZED`.
    pub revoked: bool,
    /// What its own account in the ledger holds, msat: all it may spend.
    pub balance_msat: u64,
    /// Paired, Unix seconds.
    pub created_at: u64,
}

/// `POST /api/pairing/nwc/{client}/fund`, `POST /api/pairing/beacons/{id}/fund`.
#[derive(Deserialize, ToSchema)]
pub struct AppFundRequest {
    /// Satoshis of free collateral to move to the app's (or beacon's) own account.
    pub sats: u64,
}

/// An app's own account in the ledger.
#[derive(Serialize, ToSchema)]
pub struct AppAccountView {
    /// The app: its NWC connection's client key, hex.
    pub app: String,
    /// What it holds, msat.
    pub balance_msat: u64,
    /// The community's collateral after the move, sat.
    pub collateral: u64,
}

/// `POST /api/pairing/beacon`.
#[derive(Deserialize, ToSchema)]
pub struct BeaconPairingRequest {
    /// Most apps on this beacon may spend per period, in sat (omit: no limit).
    pub limit_sat: Option<u64>,
    /// When the limit renews, at the start of the UTC calendar period: `daily`, `weekly`
    /// (Monday), `monthly`, `yearly` or `never` (the default: a lifetime limit, as before
    /// limits renewed) — NWC's names.
    pub budget_renewal: Option<String>,
    /// When the beacon stops being served, Unix seconds (omit: until revoked).
    pub expires_at: Option<u64>,
}

/// A pairing string: a bearer secret, shown once.
#[derive(Serialize, ToSchema)]
pub struct PairingView {
    /// What the app scans or pastes.
    pub uri: String,
}

/// A new beacon: the bearer secret, shown once, and the id it is listed and revoked by.
#[derive(Serialize, ToSchema)]
pub struct BeaconPairingView {
    /// What the app scans or pastes.
    pub uri: String,
    /// Its id in `GET /api/pairing/beacons`.
    pub id: String,
}

fn bad_request(text: impl Into<String>) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, text)
}

/// The body as text, or the reason it was refused (over the limit: 413), as JSON like every
/// other error.
fn text_of(body: Result<String, StringRejection>) -> Result<String, Failure> {
    body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Failure::new(status, format!("the body is over {MAX_BODY} bytes"))
        } else {
            Failure::new(status, e.body_text())
        }
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, Failure> {
    serde_json::from_str(body).map_err(|e| bad_request(format!("the body: {e}")))
}

fn parse_event(body: &str) -> Result<Event, Failure> {
    let event =
        Event::from_json(body).map_err(|e| bad_request(format!("not a Nostr event: {e}")))?;
    if event.verify().is_err() {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "the event's signature does not verify: sign it with your own key",
        ));
    }
    Ok(event)
}

/// Publishes a signed Work event and waits for its receipt.
///
/// # Errors
/// 502 when the relays fail, 504 when no receipt comes in time, 422 (with the receipt) is not
/// an error: the receipt says `rejected`.
pub async fn submit_event(hub: &Hub, event: &Event) -> Result<ReceiptView, Failure> {
    hub.work
        .publish(event)
        .await
        .map_err(|e| Failure::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    let receipt = hub
        .work
        .wait_receipt(&event.id, RECEIPT_WAIT)
        .await
        .ok_or_else(|| {
            Failure::new(
                StatusCode::GATEWAY_TIMEOUT,
                "published, but no decision came in time; look for its receipt on the relay",
            )
        })?;
    Ok(ReceiptView {
        seq: receipt.seq,
        at: receipt.at,
        verdict: receipt.verdict,
    })
}

/// Takes a signed redemption request: checks it, and hands it to the pool with the member's
/// trust.
///
/// # Errors
/// 401 for a bad signature, 409 for a request taken before, 422 for what the pool or the
/// ledger refuses.
pub async fn redeem_event(hub: &Hub, event: &Event) -> Result<RedemptionView, Failure> {
    let now = views::now();
    let community = hub.work.with_community(|c| c.id().to_owned());
    let (account, request) = decode_redeem(event, &community, now)
        .map_err(|e| Failure::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    // Written down before the pool sees it: a request replayed after a restart is refused too.
    let first = hub
        .redemptions_seen
        .take(
            &event.id.to_hex(),
            event.created_at.as_secs(),
            now,
            actions::REDEEM_FRESHNESS_SECS,
        )
        .map_err(|e| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the request cannot be recorded, so it is not taken: {e}"),
            )
        })?;
    if !first {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            "this redemption request was taken already",
        ));
    }
    // The last computed scores (at most the service's `scores_every` old): a request never
    // makes the node score the trust graph under the Work state's lock.
    let trust = hub.work.trust(&account);
    let ticket = hub
        .pool
        .redeem(&account, request.amount, &request.invoice, trust)
        .await
        .map_err(|e| {
            let text = match &e {
                PoolError::AmountMismatch { sats_out, .. } => format!(
                    "{e}: make an invoice for {sats_out} sat ({} tokens less the fee)",
                    request.amount
                ),
                _ => e.to_string(),
            };
            Failure::new(StatusCode::UNPROCESSABLE_ENTITY, text)
        })?;
    Ok(RedemptionView::of(
        ticket.id,
        &ticket.status,
        Some(ticket.sats_out),
        Some(ticket.fee),
    ))
}

/// The unsigned event for `fields`, by `author`.
///
/// # Errors
/// 400 for fields that do not make an action, 404 for an unknown task.
pub fn prepare(hub: &Hub, author: PublicKey, fields: &Fields) -> Result<Unsigned, Failure> {
    let now = views::now();
    let (prepared, community) = hub
        .work
        .with_community(|c| (actions::prepare(fields, c, now), c.id().to_owned()));
    let prepared = prepared.map_err(action_failure)?;
    let (event, submit) = match prepared {
        Prepared::Work(message) => (
            unsigned(author, &community, &message, now).map_err(|e| bad_request(e.to_string()))?,
            "/api/events",
        ),
        Prepared::Redeem { amount, invoice } => (
            redeem_builder(&community, &RedeemRequest { amount, invoice }, now).build(author),
            "/api/redemptions",
        ),
    };
    let mut value: serde_json::Value =
        serde_json::from_str(&event.as_json()).map_err(|e| bad_request(e.to_string()))?;
    if let Some(object) = value.as_object_mut() {
        // NIP-07 signers compute the id themselves.
        object.remove("id");
    }
    Ok(Unsigned {
        event: value,
        submit: submit.into(),
    })
}

/// The status an action's refusal gets.
pub fn action_failure(e: actions::ActionError) -> Failure {
    match e {
        actions::ActionError::UnknownTask(_) => Failure::new(StatusCode::NOT_FOUND, e.to_string()),
        _ => bad_request(e.to_string()),
    }
}

fn operator(hub: &Hub, headers: &HeaderMap) -> Result<(), Failure> {
    let Some(value) = headers.get("authorization") else {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "pairing needs the operator's token: Authorization: Bearer <api.token>",
        ));
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same(given.as_bytes(), hub.admin_token.as_bytes()) {
        return Err(Failure::new(StatusCode::FORBIDDEN, "wrong operator token"));
    }
    Ok(())
}

/// Compares in time independent of where the inputs differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A member's key as the API takes it (hex or npub).
fn account(text: &str) -> Result<AccountId, Failure> {
    actions::parse_key(text.trim())
        .ok_or_else(|| bad_request("a public key is 64 hex digits or npub1…"))
}

/// The same, as a Nostr public key.
fn public_key(text: &str) -> Result<PublicKey, Failure> {
    PublicKey::from_slice(account(text)?.as_bytes())
        .map_err(|_| bad_request("a public key is 64 hex digits or npub1…"))
}

#[utoipa::path(get, path = "/api/community", responses((status = 200, body = CommunityView)))]
async fn community(State(hub): State<Arc<Hub>>) -> Json<CommunityView> {
    Json(views::community(&hub))
}

#[utoipa::path(get, path = "/api/pool", responses((status = 200, body = PoolView)))]
async fn pool(State(hub): State<Arc<Hub>>) -> Json<PoolView> {
    Json(views::pool(&hub))
}

#[utoipa::path(get, path = "/api/history",
    responses((status = 200, description = "collateral and supply over time", body = [Point])))]
async fn history(State(hub): State<Arc<Hub>>) -> Result<Json<Vec<Point>>, Failure> {
    hub.history
        .points(&hub.ledger)
        .map(Json)
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[utoipa::path(get, path = "/api/tasks", responses((status = 200, body = [TaskView])))]
async fn tasks(State(hub): State<Arc<Hub>>) -> Json<Vec<TaskView>> {
    Json(views::tasks(&hub, MAX_LISTED))
}

#[utoipa::path(get, path = "/api/tasks/{id}",
    params(("id" = String, Path, description = "the task id")),
    responses((status = 200, body = TaskView), (status = 404, body = ApiError)))]
async fn task(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, Failure> {
    views::task(&hub, &id)
        .map(Json)
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("there is no task {id:?}")))
}

/// Who asks, for what they may see: the operator with the token (a wrong one is refused) or
/// the operator's session, a member with a session, or anyone.
fn viewer(hub: &Hub, headers: &HeaderMap) -> Result<Viewer, Failure> {
    if headers.contains_key("authorization") {
        operator(hub, headers)?;
        return Ok(Viewer::Operator);
    }
    Ok(crate::web::viewer(hub, headers))
}

#[utoipa::path(get, path = "/api/identities",
    security((), ("operator" = []), ("session" = [])),
    responses((status = 200, description = "best trust first; balances only where the caller \
        may see them", body = [IdentityView]), (status = 403, body = ApiError)))]
async fn identities(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
) -> Result<Json<Vec<IdentityView>>, Failure> {
    let viewer = viewer(&hub, &headers)?;
    Ok(Json(views::identities(&hub, MAX_LISTED, viewer)))
}

/// An identity with its neighbourhood.
#[derive(Serialize, ToSchema)]
pub struct IdentityDetail {
    /// The identity.
    #[serde(flatten)]
    pub identity: IdentityView,
    /// Signals it gives and receives (at most 50 each way).
    pub neighbours: Vec<Neighbour>,
}

#[utoipa::path(get, path = "/api/identities/{pubkey}",
    params(("pubkey" = String, Path, description = "a Nostr public key: 64 hex digits or npub")),
    security((), ("operator" = []), ("session" = [])),
    responses((status = 200, body = IdentityDetail), (status = 400, body = ApiError),
              (status = 403, body = ApiError)))]
async fn identity(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Path(pubkey): Path<String>,
) -> Result<Json<IdentityDetail>, Failure> {
    let account = account(&pubkey)?;
    let viewer = viewer(&hub, &headers)?;
    Ok(Json(IdentityDetail {
        identity: views::identity(&hub, &account, viewer),
        neighbours: views::neighbours(&hub, &account, 50),
    }))
}

/// The supply and its commitments on chain.
#[derive(Serialize, ToSchema)]
pub struct SupplyView {
    /// The supply tree's root now (hex).
    pub root: String,
    /// The supply now.
    pub sum: u64,
    /// The last commitments, newest last (at most 20).
    pub commitments: Vec<CommitmentRecord>,
    /// The guardians' collateral descriptor the commitments are checked against, if published.
    pub collateral: Option<String>,
    /// How anyone checks the last commitment from the chain alone.
    pub verify_with: Option<String>,
}

#[utoipa::path(get, path = "/api/supply", responses((status = 200, body = SupplyView)))]
async fn supply(State(hub): State<Arc<Hub>>) -> Json<SupplyView> {
    Json(views::supply(&hub))
}

/// A member's balance proven against the supply root.
#[derive(Serialize, ToSchema)]
pub struct BalanceProof {
    /// The member (hex).
    pub pubkey: String,
    /// The supply root the proof leads to (hex).
    pub root: String,
    /// The supply (the root's sum).
    pub supply: u64,
    /// The member's leaf: its value (hex) and its sum (the balance).
    pub leaf_value: String,
    /// The balance committed in the leaf.
    pub leaf_sum: u64,
    /// The Merkle-sum proof, compressed in Taproot Assets' encoding (hex).
    pub proof: String,
}

#[utoipa::path(get, path = "/api/proof/{pubkey}",
    params(("pubkey" = String, Path, description = "a Nostr public key: 64 hex digits or npub")),
    security((), ("operator" = []), ("session" = [])),
    responses((status = 200, body = BalanceProof), (status = 400, body = ApiError),
              (status = 403, body = ApiError)))]
async fn proof(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Path(pubkey): Path<String>,
) -> Result<Json<BalanceProof>, Failure> {
    let account = account(&pubkey)?;
    // The proof's leaf is the balance: shown to whom the balance is.
    if !viewer(&hub, &headers)?.sees_balance_of(&hub, &account) {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "a balance proof shows the balance: log in as that member (or give the operator's token)",
        ));
    }
    Ok(Json(views::balance_proof(&hub, &account)))
}

#[utoipa::path(get, path = "/api/node", responses((status = 200, body = NodeView)))]
async fn node(State(hub): State<Arc<Hub>>) -> Json<NodeView> {
    Json(views::node(&hub))
}

#[utoipa::path(post, path = "/api/events",
    request_body(content = Object, description = "a Nostr event signed by the actor"),
    responses((status = 202, body = ReceiptView), (status = 400, body = ApiError),
              (status = 401, body = ApiError), (status = 422, body = ReceiptView),
              (status = 502, body = ApiError), (status = 504, body = ApiError)))]
async fn events(
    State(hub): State<Arc<Hub>>,
    body: Result<String, StringRejection>,
) -> Result<Response, Failure> {
    let body = text_of(body)?;
    let event = parse_event(&body)?;
    let receipt = submit_event(&hub, &event).await?;
    let status = if receipt.verdict.applies() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(receipt)).into_response())
}

#[utoipa::path(post, path = "/api/prepare", request_body = PrepareRequest,
    responses((status = 200, body = Unsigned), (status = 400, body = ApiError),
              (status = 404, body = ApiError)))]
async fn prepare_handler(
    State(hub): State<Arc<Hub>>,
    body: Result<String, StringRejection>,
) -> Result<Json<Unsigned>, Failure> {
    let body = text_of(body)?;
    let request: PrepareRequest = parse_json(&body)?;
    let author = public_key(&request.pubkey)?;
    prepare(&hub, author, &request.fields).map(Json)
}

#[utoipa::path(post, path = "/api/redemptions",
    request_body(content = Object, description = "a redemption request (kind 3920) signed by the holder"),
    responses((status = 200, body = RedemptionView), (status = 400, body = ApiError),
              (status = 401, body = ApiError), (status = 409, body = ApiError),
              (status = 422, body = ApiError)))]
async fn redemptions(
    State(hub): State<Arc<Hub>>,
    body: Result<String, StringRejection>,
) -> Result<Json<RedemptionView>, Failure> {
    let body = text_of(body)?;
    let event = parse_event(&body)?;
    if event.kind != Kind::from(actions::KIND_REDEEM) {
        return Err(bad_request("a redemption request is an event of kind 3920"));
    }
    redeem_event(&hub, &event).await.map(Json)
}

#[utoipa::path(get, path = "/api/redemptions/{id}",
    params(("id" = u64, Path, description = "the redemption's number")),
    responses((status = 200, body = RedemptionView), (status = 404, body = ApiError)))]
async fn redemption(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
) -> Result<Json<RedemptionView>, Failure> {
    let not_found = || {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!("there is no redemption {id}"),
        )
    };
    let number: u64 = id.parse().map_err(|_| not_found())?;
    let status = hub.pool.status(number).ok_or_else(not_found)?;
    Ok(Json(RedemptionView::of(number, &status, None, None)))
}

/// A deposit's view.
fn deposit_view(hash: String, d: crate::deposits::Deposit) -> DepositView {
    DepositView {
        payment_hash: hash,
        invoice: d.invoice,
        sats: d.sats,
        minted: d.minted,
    }
}

/// Asks for a deposit invoice for `account`, within the bounds of `depositor`.
///
/// # Errors
/// 422 for an amount outside the limits, 429 when the member holds too many unpaid, 503 when
/// too many wait, 502 when the node fails.
pub async fn deposit(
    hub: &Hub,
    depositor: Depositor,
    account: AccountId,
    sats: u64,
) -> Result<DepositView, Failure> {
    let (hash, deposit) = hub
        .deposits
        .invoice_for(depositor, account, sats)
        .await
        .map_err(|e| match e {
            DepositError::Amount(_) => {
                Failure::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            DepositError::TooManyUnpaid => {
                Failure::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            }
            DepositError::Busy => Failure::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            _ => Failure::new(StatusCode::BAD_GATEWAY, e.to_string()),
        })?;
    Ok(deposit_view(hash.to_string(), deposit))
}

/// Who may ask for a deposit invoice, and for which account: the operator (the token, or
/// the operator's dashboard session) for `pubkey`, or a logged-in member for their own key.
/// Nobody else: an unpaid invoice takes a place in the book (and in the Lightning node's
/// store) for an hour, so a stranger who could ask freely would fill the book and lock real
/// depositors out; a member is bounded per account, and newcomers together (see
/// [`crate::deposits::MAX_PENDING_NEWCOMERS`]).
fn depositor(
    hub: &Hub,
    headers: &HeaderMap,
    pubkey: Option<&str>,
) -> Result<(Depositor, AccountId), Failure> {
    let named = pubkey.map(account).transpose()?;
    if headers.contains_key("authorization") {
        operator(hub, headers)?;
        let account = named.ok_or_else(|| bad_request("pubkey: who gets the tokens"))?;
        return Ok((Depositor::Operator, account));
    }
    let Some((_, session)) = crate::web::session(hub, headers) else {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "a deposit invoice is asked for by a logged-in member (log in on the dashboard, or \
             over POST /login/challenge and /login/nip07) or by the operator (Authorization: \
             Bearer <api.token>)",
        ));
    };
    if crate::web::session::cross_site(headers) {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "a deposit is asked for from this node's own pages, not from another site",
        ));
    }
    match (session.account, session.operator) {
        (_, true) => {
            let account = named.ok_or_else(|| bad_request("pubkey: who gets the tokens"))?;
            Ok((Depositor::Operator, account))
        }
        (Some(own), false) => match named {
            Some(other) if other != own => Err(Failure::new(
                StatusCode::FORBIDDEN,
                "a member asks for deposits to their own key only",
            )),
            _ => Ok((Depositor::Member, own)),
        },
        (None, false) => Err(Failure::new(StatusCode::FORBIDDEN, "log in as a member")),
    }
}

#[utoipa::path(post, path = "/api/deposits", request_body = DepositRequest,
    security(("operator" = []), ("session" = [])),
    responses((status = 201, body = DepositView), (status = 400, body = ApiError),
              (status = 401, body = ApiError), (status = 403, body = ApiError),
              (status = 422, body = ApiError), (status = 429, body = ApiError),
              (status = 503, body = ApiError)))]
async fn deposits(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    body: Result<String, StringRejection>,
) -> Result<Response, Failure> {
    let body = text_of(body)?;
    let request: DepositRequest = parse_json(&body)?;
    let (depositor, account) = depositor(&hub, &headers, request.pubkey.as_deref())?;
    let view = deposit(&hub, depositor, account, request.sats).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[utoipa::path(get, path = "/api/deposits/{hash}",
    params(("hash" = String, Path, description = "the invoice's payment hash (hex)")),
    responses((status = 200, body = DepositView), (status = 404, body = ApiError)))]
async fn deposit_status(
    State(hub): State<Arc<Hub>>,
    Path(hash): Path<String>,
) -> Result<Json<DepositView>, Failure> {
    hub.deposits
        .get(&hash)
        .map(|d| Json(deposit_view(hash.clone(), d)))
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, "there is no such deposit"))
}

#[utoipa::path(get, path = "/api/pairing/electrum",
    responses((status = 200, description = "the Electrum server's address", body = PairingView)))]
async fn pairing_electrum(State(hub): State<Arc<Hub>>) -> Json<PairingView> {
    Json(PairingView {
        uri: hub.node.electrum_url.clone(),
    })
}

/// A new NWC connection, its budget renewing as `request.budget_renewal` says (daily when not
/// given) and working until `request.expires_at`.
///
/// # Errors
/// 400 for an empty name, an unknown renewal, an expiry already past, or permissions empty or
/// unknown; 500 when the store cannot be written.
pub fn pair_nwc(hub: &Hub, request: &NwcPairingRequest) -> Result<PairingView, Failure> {
    let name = request.name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(bad_request("name: 1 to 64 characters"));
    }
    let renewal = match request.budget_renewal.as_deref().map(str::trim) {
        None | Some("") => Renewal::Daily,
        Some(name) => name
            .parse::<Renewal>()
            .map_err(|e| bad_request(e.to_string()))?,
    };
    if let Some(at) = request.expires_at {
        if at <= crate::util::now() {
            return Err(bad_request(
                "expires_at: a time in the future, Unix seconds",
            ));
        }
    }
    let permissions = match &request.permissions {
        None => moip_nwc::default_permissions(),
        Some(names) => names
            .iter()
            .map(|n| n.parse::<moip_nwc::Permission>())
            .collect::<Result<std::collections::BTreeSet<_>, _>>()
            .map_err(|e| bad_request(e.to_string()))?,
    };
    if permissions.is_empty() {
        return Err(bad_request(
            "permissions: at least one of pay, receive, read, sign",
        ));
    }
    let budget = request.budget_sat.map(|sat| Budget {
        limit_msat: sat.saturating_mul(1_000),
        renewal,
    });
    let uri = hub
        .nwc
        .connect_app_with(name, budget, request.expires_at, permissions)
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(PairingView {
        uri: uri.to_string(),
    })
}

/// Every NWC connection, revoked and expired ones included, with what its budget leaves and
/// what its own account holds.
pub fn nwc_connections(hub: &Hub) -> Vec<NwcConnectionView> {
    let now = crate::util::now();
    let connections = hub.nwc.connections();
    let ledger = hub.ledger.lock().unwrap_or_else(|e| e.into_inner());
    connections
        .into_iter()
        .map(|c| NwcConnectionView {
            budget_msat: c.budget.map(|b| b.limit_msat),
            budget_renewal: c.budget.map(|b| b.renewal.to_string()),
            left_msat: c.is_active(now).then(|| c.left_msat(now)).flatten(),
            expires_at: c.expires_at,
            permissions: c.permitted().iter().map(ToString::to_string).collect(),
            expired: c.expired(now),
            revoked: c.revoked,
            balance_msat: ledger.state().app_balance_msat(&c.client.to_hex()),
            created_at: c.created_at,
            client: c.client.to_hex(),
            name: c.name,
        })
        .collect()
}

/// Moves `sats` of free collateral to the account the NWC app `client` pays from.
///
/// # Errors
/// 400 for a key that does not parse, 404 for a key no connection has, 422 when the ledger
/// refuses (not that much free collateral: what backs the tokens is never an app's).
pub fn fund_app(hub: &Hub, client: &str, sats: u64) -> Result<AppAccountView, Failure> {
    let key = moip_nwc::PublicKey::parse(client).map_err(|e| bad_request(e.to_string()))?;
    if !hub.nwc.connections().iter().any(|c| c.client == key) {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "no NWC connection has this key",
        ));
    }
    let app = key.to_hex();
    let mut ledger = hub.ledger.lock().unwrap_or_else(|e| e.into_inner());
    ledger
        .commit(moip_assets::ledger::Op::AppFund {
            app: app.clone(),
            sats,
        })
        .map_err(|e| Failure::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    Ok(AppAccountView {
        balance_msat: ledger.state().app_balance_msat(&app),
        collateral: ledger.state().collateral(),
        app,
    })
}

/// A new Moneysocket beacon, written down with its budget (renewing as
/// `request.budget_renewal` says, never when not given) and served from now on (after a
/// restart too) until revoked or `request.expires_at`.
///
/// # Errors
/// 400 for an unknown renewal or an expiry already past, 500 when the relay URL cannot go in a
/// beacon or the beacon book cannot be written.
pub fn pair_beacon(
    hub: &Hub,
    request: &BeaconPairingRequest,
) -> Result<BeaconPairingView, Failure> {
    let renewal = match request.budget_renewal.as_deref().map(str::trim) {
        None | Some("") => Renewal::Never,
        Some(name) => name
            .parse::<Renewal>()
            .map_err(|e| bad_request(e.to_string()))?,
    };
    let node = &hub.node;
    let (id, uri) = hub
        .beacons
        .create(
            &node.moneysocket_url,
            crate::pairing::ProviderPath::InProcess(node.moneysocket_relay.clone()),
            &hub.moneysocket,
            request.limit_sat.map(|sat| sat.saturating_mul(1_000)),
            renewal,
            request.expires_at,
        )
        .map_err(|e| match e {
            crate::beacons::BeaconError::ExpiryPast(_) => bad_request(e.to_string()),
            e => Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        })?;
    Ok(BeaconPairingView { uri, id })
}

/// Revokes beacon `id` (see [`crate::beacons::Beacons::revoke`]).
///
/// # Errors
/// 404 for an unknown id, 500 when the beacon book cannot be written.
pub fn revoke_beacon(hub: &Hub, id: &str) -> Result<BeaconView, Failure> {
    hub.beacons.revoke(id).map_err(|e| match e {
        crate::beacons::BeaconError::Unknown(_) => {
            Failure::new(StatusCode::NOT_FOUND, e.to_string())
        }
        e => Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })
}

/// Funds beacon `id`'s account with `sats` of free collateral (see
/// [`crate::beacons::Beacons::fund`]).
///
/// # Errors
/// 404 for an unknown id, 409 for a revoked or expired beacon, 422 when the ledger refuses
/// (0 sat, or not that much free collateral: what backs the tokens is never a beacon's).
pub fn fund_beacon(hub: &Hub, id: &str, sats: u64) -> Result<BeaconView, Failure> {
    use crate::beacons::BeaconError;
    hub.beacons.fund(id, sats).map_err(|e| {
        let status = match e {
            BeaconError::Unknown(_) => StatusCode::NOT_FOUND,
            BeaconError::Revoked(_) | BeaconError::Expired(_) => StatusCode::CONFLICT,
            BeaconError::Ledger(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure::new(status, e.to_string())
    })
}

#[utoipa::path(get, path = "/api/pairing/beacons", security(("operator" = [])),
    responses((status = 200, description = "every beacon made, its budget and whether it was \
                revoked (never its seed)", body = [BeaconView]),
              (status = 401, body = ApiError), (status = 403, body = ApiError)))]
async fn pairing_beacons(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
) -> Result<Json<Vec<BeaconView>>, Failure> {
    operator(&hub, &headers)?;
    Ok(Json(hub.beacons.list()))
}

#[utoipa::path(delete, path = "/api/pairing/beacons/{id}", security(("operator" = [])),
    params(("id" = String, Path, description = "the beacon's id, as the list gives it")),
    responses((status = 200, description = "revoked: no longer served, spends nothing more",
                body = BeaconView),
              (status = 401, body = ApiError), (status = 403, body = ApiError),
              (status = 404, body = ApiError)))]
async fn pairing_beacon_revoke(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<BeaconView>, Failure> {
    operator(&hub, &headers)?;
    revoke_beacon(&hub, &id).map(Json)
}

#[utoipa::path(post, path = "/api/pairing/beacons/{id}/fund", request_body = AppFundRequest,
    security(("operator" = [])),
    params(("id" = String, Path, description = "the beacon's id, as the list gives it")),
    responses((status = 200, description = "funded: the beacon with its account's new balance",
                body = BeaconView),
              (status = 401, body = ApiError), (status = 403, body = ApiError),
              (status = 404, body = ApiError), (status = 409, body = ApiError),
              (status = 422, body = ApiError)))]
async fn pairing_beacon_fund(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<String, StringRejection>,
) -> Result<Json<BeaconView>, Failure> {
    let body = text_of(body)?;
    operator(&hub, &headers)?;
    let request: AppFundRequest = parse_json(&body)?;
    fund_beacon(&hub, &id, request.sats).map(Json)
}

#[utoipa::path(post, path = "/api/pairing/nwc", request_body = NwcPairingRequest,
    security(("operator" = [])),
    responses((status = 200, body = PairingView), (status = 401, body = ApiError),
              (status = 403, body = ApiError)))]
async fn pairing_nwc(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    body: Result<String, StringRejection>,
) -> Result<Json<PairingView>, Failure> {
    let body = text_of(body)?;
    operator(&hub, &headers)?;
    let request: NwcPairingRequest = parse_json(&body)?;
    pair_nwc(&hub, &request).map(Json)
}

#[utoipa::path(get, path = "/api/pairing/nwc", security(("operator" = [])),
    responses((status = 200, description = "every NWC connection (never its secret): budget, \
                renewal, what is left this period, expiry, revocation, its account's balance",
                body = [NwcConnectionView]),
              (status = 401, body = ApiError), (status = 403, body = ApiError)))]
async fn pairing_nwc_list(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
) -> Result<Json<Vec<NwcConnectionView>>, Failure> {
    operator(&hub, &headers)?;
    Ok(Json(nwc_connections(&hub)))
}

#[utoipa::path(post, path = "/api/pairing/nwc/{client}/fund", request_body = AppFundRequest,
    security(("operator" = [])),
    params(("client" = String, Path, description = "the app's NWC client key, hex")),
    responses((status = 200, body = AppAccountView), (status = 401, body = ApiError),
              (status = 403, body = ApiError), (status = 404, body = ApiError),
              (status = 422, body = ApiError)))]
async fn pairing_nwc_fund(
    State(hub): State<Arc<Hub>>,
    Path(client): Path<String>,
    headers: HeaderMap,
    body: Result<String, StringRejection>,
) -> Result<Json<AppAccountView>, Failure> {
    let body = text_of(body)?;
    operator(&hub, &headers)?;
    let request: AppFundRequest = parse_json(&body)?;
    fund_app(&hub, &client, request.sats).map(Json)
}

#[utoipa::path(post, path = "/api/pairing/beacon", request_body = BeaconPairingRequest,
    security(("operator" = [])),
    responses((status = 200, body = BeaconPairingView), (status = 400, body = ApiError),
              (status = 401, body = ApiError),
              (status = 403, body = ApiError)))]
async fn pairing_beacon(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    body: Result<String, StringRejection>,
) -> Result<Json<BeaconPairingView>, Failure> {
    let body = text_of(body)?;
    operator(&hub, &headers)?;
    let request: BeaconPairingRequest = parse_json(&body)?;
    pair_beacon(&hub, &request).map(Json)
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "moip community node",
        description = "The community's figures, tasks, identities and node; actions signed as Nostr events."
    ),
    paths(community, pool, history, tasks, task, identities, identity, node, supply, proof, events,
          prepare_handler, redemptions, redemption, deposits, deposit_status, pairing_electrum,
          pairing_nwc, pairing_nwc_list, pairing_nwc_fund, pairing_beacon, pairing_beacons, pairing_beacon_revoke,
          pairing_beacon_fund),
    components(schemas(ApiError, CommunityView, PoolView, Point, TaskView, IdentityView,
                       SupplyView, BalanceProof, CommitmentRecord,
                       IdentityDetail, Neighbour, NodeView, ChannelView, ReceiptView,
                       PrepareRequest, Unsigned, RedemptionView, DepositRequest, DepositView,
                       NwcPairingRequest, NwcConnectionView, AppFundRequest, AppAccountView,
                       BeaconPairingRequest, PairingView,
                       BeaconPairingView, BeaconView)),
    modifiers(&OperatorAuth)
)]
pub struct ApiDoc;

struct OperatorAuth;

impl utoipa::Modify for OperatorAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::new(crate::web::session::COOKIE),
            )),
        );
    }
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; see /api/openapi.json",
    )
}

/// The API's routes (under `/api`).
pub fn router(hub: Arc<Hub>) -> Router {
    let api = Router::new()
        .route("/community", get(community))
        .route("/pool", get(pool))
        .route("/history", get(history))
        .route("/tasks", get(tasks))
        .route("/tasks/{id}", get(task))
        .route("/identities", get(identities))
        .route("/identities/{pubkey}", get(identity))
        .route("/node", get(node))
        .route("/supply", get(supply))
        .route("/proof/{pubkey}", get(proof))
        .route("/events", post(events))
        .route("/prepare", post(prepare_handler))
        .route("/redemptions", post(redemptions))
        .route("/redemptions/{id}", get(redemption))
        .route("/deposits", post(deposits))
        .route("/deposits/{hash}", get(deposit_status))
        .route("/pairing/electrum", get(pairing_electrum))
        .route("/pairing/nwc", get(pairing_nwc_list).post(pairing_nwc))
        .route("/pairing/nwc/{client}/fund", post(pairing_nwc_fund))
        .route("/pairing/beacon", post(pairing_beacon))
        .route("/pairing/beacons", get(pairing_beacons))
        .route("/pairing/beacons/{id}", delete(pairing_beacon_revoke))
        .route("/pairing/beacons/{id}/fund", post(pairing_beacon_fund))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(hub);
    Router::new().nest("/api", api)
}

/// Serves `router` on `listener` until `stop` resolves, with the limits every moip HTTP
/// listener has: headers (and the TLS handshake) within 10 s, at most 1 024 connections (see
/// [`moip_chain::http`]); over HTTPS with `tls`.
///
/// # Errors
/// When the listener fails for good.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = moip_chain::http::HttpLimits::default();
    match tls {
        Some(tls) => moip_chain::http::serve_tls(listener, router, limits, tls, stop).await,
        None => moip_chain::http::serve(listener, router, limits, stop).await,
    }
}
