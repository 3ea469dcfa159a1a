//! The REST API of a community node: what the dashboard shows and does, for any HTTP client,
//! described by the OpenAPI document at `/api/openapi.json` (generated from this code by
//! utoipa).
//!
//! Reading is open: the community's figures, its tasks, an identity's trust and balance.
//! Acting is signed: `POST /api/events` takes a Nostr event signed by the actor's own key
//! (a NIP-07 signer in the browser, or any Nostr library), publishes it to the community's
//! relays and answers with the Work service's receipt — `202` when applied, `422` with the
//! reason when refused. The node never signs on anyone's behalf here.
//!
//! Errors are JSON `{"error": "..."}` with the status an API client expects: 400 for a body or
//! key that does not parse, 401 for an event whose signature does not verify, 404 for an
//! unknown task, 413 for a body over the limit, 422 for an event the rules refuse, 504 when no
//! receipt came in time.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use moip_assets::ledger::{AccountId, TokenLedger};
use moip_work::receipt::{rank, Verdict};
use moip_work::service::WorkService;
use nostr_sdk::{Event, JsonUtil};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// Largest request body accepted, in bytes (a Nostr event with its content and tags).
pub const MAX_BODY: usize = 64 * 1024;

/// How long `POST /api/events` waits for the receipt.
pub const RECEIPT_WAIT: Duration = Duration::from_secs(10);

/// What the handlers reach.
pub struct ApiState<L> {
    /// The Work service (and through it the community state and the ledger).
    pub work: Arc<WorkService<L>>,
}

/// An error, as every endpoint reports it.
#[derive(Serialize, ToSchema)]
pub struct ApiError {
    /// What went wrong, for a person.
    pub error: String,
}

fn error(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(ApiError { error: text.into() })).into_response()
}

/// The community's figures.
#[derive(Serialize, ToSchema)]
pub struct CommunityView {
    /// The community (and token) id.
    pub id: String,
    /// Satoshis of collateral held.
    pub collateral_sats: u64,
    /// Tokens in existence, escrows included.
    pub supply: u64,
    /// The supply tree's root hash (hex); committed on chain each epoch.
    pub supply_root: String,
    /// Tasks by state.
    pub tasks: usize,
    /// The last entry of the community's log.
    pub last_seq: u64,
}

/// One identity.
#[derive(Serialize, ToSchema)]
pub struct IdentityView {
    /// The Nostr public key (hex).
    pub pubkey: String,
    /// Trust score, 0 to 1.
    pub score: f64,
    /// The NIP-85 rank published for it (0–100).
    pub rank: u8,
    /// Spendable tokens.
    pub balance: u64,
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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[utoipa::path(get, path = "/api/community", responses((status = 200, body = CommunityView)))]
async fn community<L: TokenLedger + Send + 'static>(
    State(state): State<Arc<ApiState<L>>>,
) -> Json<CommunityView> {
    let last_seq = state.work.last_seq();
    Json(state.work.with_community(|c| {
        let root = c.ledger().supply_root();
        CommunityView {
            id: c.id().to_owned(),
            collateral_sats: c.ledger().collateral(),
            supply: c.ledger().supply(),
            supply_root: root.hash.to_string(),
            tasks: c.tasks().len(),
            last_seq,
        }
    }))
}

#[utoipa::path(get, path = "/api/tasks",
    responses((status = 200, description = "every task, by id", body = Object)))]
async fn tasks<L: TokenLedger + Send + 'static>(State(state): State<Arc<ApiState<L>>>) -> Response {
    let tasks = state
        .work
        .with_community(|c| serde_json::to_value(c.tasks()));
    match tasks {
        Ok(tasks) => Json(tasks).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[utoipa::path(get, path = "/api/tasks/{id}",
    params(("id" = String, Path, description = "the task id")),
    responses((status = 200, description = "the task", body = Object),
              (status = 404, body = ApiError)))]
async fn task<L: TokenLedger + Send + 'static>(
    State(state): State<Arc<ApiState<L>>>,
    Path(id): Path<String>,
) -> Response {
    let task = state
        .work
        .with_community(|c| c.task(&id).map(serde_json::to_value));
    match task {
        Some(Ok(task)) => Json(task).into_response(),
        Some(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        None => error(StatusCode::NOT_FOUND, format!("no task {id:?}")),
    }
}

#[utoipa::path(get, path = "/api/identities/{pubkey}",
    params(("pubkey" = String, Path, description = "a Nostr public key, 64 hex digits")),
    responses((status = 200, body = IdentityView), (status = 400, body = ApiError)))]
async fn identity<L: TokenLedger + Send + 'static>(
    State(state): State<Arc<ApiState<L>>>,
    Path(pubkey): Path<String>,
) -> Response {
    let Ok(account) = pubkey.parse::<AccountId>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "a public key is 64 hex digits (x-only, as Nostr writes it)",
        );
    };
    let at = now();
    let (score, balance) = state
        .work
        .with_community(|c| (c.scores(at).get(&account), c.ledger().balance(&account)));
    Json(IdentityView {
        pubkey: account.to_string(),
        score,
        rank: rank(score),
        balance,
    })
    .into_response()
}

#[utoipa::path(post, path = "/api/events",
    request_body(content = Object, description = "a Nostr event signed by the actor"),
    responses((status = 202, body = ReceiptView), (status = 400, body = ApiError),
              (status = 401, body = ApiError), (status = 422, body = ReceiptView),
              (status = 504, body = ApiError)))]
async fn submit<L: TokenLedger + Send + 'static>(
    State(state): State<Arc<ApiState<L>>>,
    body: String,
) -> Response {
    let event = match Event::from_json(&body) {
        Ok(event) => event,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a Nostr event: {e}")),
    };
    if event.verify().is_err() {
        return error(
            StatusCode::UNAUTHORIZED,
            "the event's signature does not verify: sign it with your own key",
        );
    }
    if let Err(e) = state.work.publish(&event).await {
        return error(StatusCode::BAD_GATEWAY, e.to_string());
    }
    let Some(receipt) = state.work.wait_receipt(&event.id, RECEIPT_WAIT).await else {
        return error(
            StatusCode::GATEWAY_TIMEOUT,
            "published, but no decision came in time; look for its receipt on the relay",
        );
    };
    let status = if receipt.verdict.applies() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        status,
        Json(ReceiptView {
            seq: receipt.seq,
            at: receipt.at,
            verdict: receipt.verdict,
        }),
    )
        .into_response()
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "moip community node",
        description = "The community's figures, tasks and identities; signed actions as Nostr events."
    ),
    paths(community, tasks, task, identity, submit),
    components(schemas(ApiError, CommunityView, IdentityView, ReceiptView))
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint; see /api/openapi.json",
    )
}

/// The API's routes.
pub fn router<L: TokenLedger + Send + 'static>(state: Arc<ApiState<L>>) -> Router {
    Router::new()
        .route("/api/community", get(community::<L>))
        .route("/api/tasks", get(tasks::<L>))
        .route("/api/tasks/{id}", get(task::<L>))
        .route("/api/identities/{pubkey}", get(identity::<L>))
        .route("/api/events", post(submit::<L>))
        .route("/api/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serves `router` on `listener` until `stop` resolves.
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
}
