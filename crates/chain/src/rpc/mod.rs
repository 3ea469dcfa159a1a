//! A bitcoind-compatible JSON-RPC and REST server for the [`EmbeddedNode`].
//!
//! HTTP Basic auth (user/password or a cookie file) guards JSON-RPC; REST is read-only and open,
//! as in Core. Requests run on the blocking pool behind a bounded work queue, the body size is
//! capped, and the server listens on 127.0.0.1 unless told otherwise.

mod auth;
pub mod error;
pub mod json;
pub mod jsonrpc;
mod methods;
pub mod params;
mod rest;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::http::HttpLimits;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{Notify, Semaphore};

pub use auth::{read_cookie, RpcAuth, COOKIE_USER};
pub use methods::{decode_hex, decode_tx, descriptor_script, METHODS};
#[doc(hidden)]
pub use methods::{dispatch_to, Method};

use crate::{ChainError, EmbeddedNode};

/// Largest HTTP request body (Core's `MAX_SIZE`, 32 MiB: room for a 4 MB block as hex).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Requests executing or queued at once; beyond this the server answers 503 like Core's
/// "Work queue depth exceeded".
pub const WORK_QUEUE_DEPTH: usize = 64;
/// Delay before answering a failed login, to slow password guessing (Core waits 250 ms).
const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(250);

/// Settings of the RPC server.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    /// Address to listen on; port 0 picks a free one.
    pub bind: SocketAddr,
    /// How clients authenticate.
    pub auth: RpcAuth,
    /// Serve the unauthenticated, read-only REST interface.
    pub rest: bool,
}

impl RpcConfig {
    /// Loopback on `port`, cookie auth in the node's data directory, REST on.
    pub fn local(node: &EmbeddedNode, port: u16) -> RpcConfig {
        RpcConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], port)),
            auth: RpcAuth::Cookie {
                path: node.data_dir().join(".cookie"),
            },
            rest: true,
        }
    }
}

/// What every handler can reach.
pub struct RpcContext {
    pub(crate) node: EmbeddedNode,
    stop: AtomicBool,
    stop_notify: Notify,
}

impl RpcContext {
    /// Records a `stop` request; false if one was already made.
    fn request_stop(&self) -> bool {
        let first = !self.stop.swap(true, Ordering::SeqCst);
        if first {
            self.stop_notify.notify_waiters();
        }
        first
    }
}

#[derive(Clone)]
struct AppState {
    ctx: Arc<RpcContext>,
    creds: auth::Credentials,
    queue: Arc<Semaphore>,
}

/// A running server. Dropping it does not stop it; call [`RpcServer::shutdown`].
pub struct RpcServer {
    addr: SocketAddr,
    ctx: Arc<RpcContext>,
    creds: auth::Credentials,
    shutdown: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl RpcServer {
    /// Binds and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// Fails if the address cannot be bound or the cookie cannot be written.
    pub async fn start(node: EmbeddedNode, config: RpcConfig) -> Result<RpcServer, ChainError> {
        let creds = auth::Credentials::resolve(&config.auth)?;
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let ctx = Arc::new(RpcContext {
            node,
            stop: AtomicBool::new(false),
            stop_notify: Notify::new(),
        });
        let state = AppState {
            ctx: Arc::clone(&ctx),
            creds: creds.clone(),
            queue: Arc::new(Semaphore::new(WORK_QUEUE_DEPTH)),
        };
        let mut app = Router::new()
            .route("/", post(rpc))
            .route("/wallet/{name}", post(rpc));
        if config.rest {
            app = app.route("/rest/{*path}", get(rest::handle));
        }
        let app = app
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(state);
        let shutdown = Arc::new(Notify::new());
        let signal = Arc::clone(&shutdown);
        let task = tokio::spawn(async move {
            let served = crate::http::serve(listener, app, HttpLimits::default(), async move {
                signal.notified().await
            })
            .await;
            if let Err(e) = served {
                tracing::error!("RPC server stopped: {e}");
            }
        });
        tracing::info!(%addr, "RPC server listening");
        Ok(RpcServer {
            addr,
            ctx,
            creds,
            shutdown,
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The user and password clients must send.
    pub fn credentials(&self) -> (String, String) {
        (self.creds.user.clone(), self.creds.password.clone())
    }

    /// The cookie file, when cookie auth is used.
    pub fn cookie_path(&self) -> Option<&std::path::Path> {
        self.creds.cookie.as_deref()
    }

    /// Resolves once a client has called `stop`.
    pub async fn stop_requested(&self) {
        let notified = self.ctx.stop_notify.notified();
        if self.ctx.stop.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }

    /// Stops accepting, finishes requests in flight and removes the cookie.
    pub async fn shutdown(self) {
        self.shutdown.notify_one();
        let _ = self.task.await;
        self.creds.remove_cookie();
    }
}

fn json_response(status: u16, body: Option<serde_json::Value>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match body {
        None => status.into_response(),
        Some(value) => {
            let mut text = value.to_string();
            text.push('\n');
            (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
        }
    }
}

async fn rpc(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !state.creds.check(auth) {
        tokio::time::sleep(AUTH_FAILURE_DELAY).await;
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"jsonrpc\""),
        );
        return response;
    }
    let Ok(permit) = Arc::clone(&state.queue).try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "Work queue depth exceeded").into_response();
    };
    let ctx = Arc::clone(&state.ctx);
    let reply = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        jsonrpc::handle(&body, |call| methods::dispatch(&ctx, call))
    })
    .await;
    match reply {
        Ok(reply) => json_response(reply.status, reply.body),
        Err(e) => {
            tracing::error!("RPC handler failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Body::from("internal error"),
            )
                .into_response()
        }
    }
}
