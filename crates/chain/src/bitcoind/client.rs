//! A minimal blocking JSON-RPC and REST client for bitcoind.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::ChainError;

/// Largest response body read (a 4 MB block as verbose JSON can run to tens of MB).
const MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;
/// Per-request timeout; `getblock` of a large block on a slow disk stays well inside it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Calls sent in one JSON-RPC batch; larger batches are split.
pub(crate) const BATCH_CALLS: usize = 500;

/// How to authenticate to bitcoind.
#[derive(Clone)]
pub enum BitcoindAuth {
    /// Read `user:password` from bitcoind's cookie file at every (re)connection.
    Cookie(PathBuf),
    /// A fixed `rpcuser`/`rpcpassword`.
    UserPass(String, String),
}

impl std::fmt::Debug for BitcoindAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BitcoindAuth::Cookie(path) => f.debug_tuple("Cookie").field(path).finish(),
            BitcoindAuth::UserPass(user, _) => {
                f.debug_tuple("UserPass").field(user).field(&"***").finish()
            }
        }
    }
}

pub(crate) struct RpcClient {
    url: String,
    auth: BitcoindAuth,
    agent: ureq::Agent,
    next_id: AtomicU64,
}

impl RpcClient {
    pub(crate) fn new(url: &str, auth: BitcoindAuth) -> RpcClient {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        RpcClient {
            url: url.trim_end_matches('/').to_owned(),
            auth,
            agent,
            next_id: AtomicU64::new(1),
        }
    }

    fn authorization(&self) -> Result<String, ChainError> {
        let (user, password) = match &self.auth {
            BitcoindAuth::Cookie(path) => crate::rpc::read_cookie(path)?,
            BitcoindAuth::UserPass(u, p) => (u.clone(), p.clone()),
        };
        Ok(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        ))
    }

    fn post(&self, body: &Value) -> Result<Value, ChainError> {
        let mut response = self
            .agent
            .post(&self.url)
            .header("Authorization", &self.authorization()?)
            .content_type("application/json")
            .send(body.to_string())
            .map_err(|e| ChainError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        if status == 401 {
            return Err(ChainError::Transport(
                "bitcoind refused the credentials (HTTP 401)".into(),
            ));
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .map_err(|e| ChainError::Transport(e.to_string()))?;
        serde_json::from_str(&text).map_err(|_| {
            ChainError::Transport(format!(
                "HTTP {status}: not JSON-RPC: {}",
                text.chars().take(200).collect::<String>()
            ))
        })
    }

    fn unwrap_reply(reply: &Value) -> Result<Value, ChainError> {
        match reply.get("error") {
            Some(err) if !err.is_null() => Err(ChainError::Rpc {
                code: err.get("code").and_then(Value::as_i64).unwrap_or(-1),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            }),
            _ => Ok(reply.get("result").cloned().unwrap_or(Value::Null)),
        }
    }

    /// One call.
    pub(crate) fn call(&self, method: &str, params: Value) -> Result<Value, ChainError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let reply =
            self.post(&json!({ "jsonrpc": "1.0", "id": id, "method": method, "params": params }))?;
        Self::unwrap_reply(&reply)
    }

    /// Many calls of one method, in HTTP round trips of at most [`BATCH_CALLS`] calls; results
    /// in order. A server may bound its batches (moip's node answers more than 1,000 calls with
    /// one error, like a Core behind a proxy might), and a mempool after a reorganisation can
    /// hold thousands of transactions to look up.
    pub(crate) fn batch(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Vec<Result<Value, ChainError>>, ChainError> {
        let mut out = Vec::with_capacity(params.len());
        let mut params = params.into_iter().peekable();
        while params.peek().is_some() {
            let chunk: Vec<Value> = params.by_ref().take(BATCH_CALLS).collect();
            out.extend(self.batch_once(method, chunk)?);
        }
        Ok(out)
    }

    fn batch_once(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Vec<Result<Value, ChainError>>, ChainError> {
        let first = self
            .next_id
            .fetch_add(params.len() as u64, Ordering::Relaxed);
        let calls: Vec<Value> = params
            .into_iter()
            .enumerate()
            .map(|(i, p)| json!({ "jsonrpc": "1.0", "id": first + i as u64, "method": method, "params": p }))
            .collect();
        let n = calls.len();
        let reply = self.post(&Value::Array(calls))?;
        let Some(replies) = reply.as_array() else {
            // A server refuses a whole batch with one error object: say which error.
            Self::unwrap_reply(&reply)?;
            return Err(ChainError::Transport("batch reply is not an array".into()));
        };
        let mut out: Vec<Option<Result<Value, ChainError>>> = (0..n).map(|_| None).collect();
        for r in replies {
            let idx = r
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| id.checked_sub(first))
                .map(|i| i as usize);
            if let Some(slot) = idx.and_then(|i| out.get_mut(i)) {
                *slot = Some(Self::unwrap_reply(r));
            }
        }
        out.into_iter()
            .map(|r| {
                r.ok_or_else(|| ChainError::Transport("batch reply is missing an answer".into()))
            })
            .collect()
    }

    /// A REST resource; `None` when bitcoind runs without `-rest` or does not have it.
    pub(crate) fn rest(&self, path: &str) -> Result<Option<Vec<u8>>, ChainError> {
        let url = format!("{}/rest/{path}", self.url);
        let mut response = match self.agent.get(&url).call() {
            Ok(r) => r,
            Err(e) => return Err(ChainError::Transport(e.to_string())),
        };
        if response.status().as_u16() != 200 {
            return Ok(None);
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| ChainError::Transport(e.to_string()))?;
        Ok(Some(bytes))
    }
}
