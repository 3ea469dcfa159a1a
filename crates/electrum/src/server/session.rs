//! One client connection: version negotiation, authentication, cost accounting, request
//! dispatch and subscription notifications. Requests of a session run one at a time, so a flood
//! from one client queues behind itself.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::limits::{Client, Decaying, Verdict};
use super::{Shared, Update};
use crate::protocol::{
    self, negotiate, parse_request, ProtocolVersion, Request, RpcError, BAD_REQUEST, DAEMON_ERROR,
    EXCESSIVE_RESOURCE_USAGE, INVALID_REQUEST, PARSE_ERROR,
};
use crate::types::ScriptHash;

/// What the connection loop should do after a message.
pub(crate) struct Outcome {
    pub replies: Vec<String>,
    pub close: bool,
}

pub(crate) struct Session {
    shared: Arc<Shared>,
    /// Who it is accounted as.
    client: Client,
    /// Negotiated version; `None` until the first request. Clients that never send
    /// `server.version` are served as 1.4, as electrs and Fulcrum do.
    version: Option<ProtocolVersion>,
    negotiated: bool,
    authenticated: bool,
    headers: bool,
    subs: HashMap<ScriptHash, Option<String>>,
    cost: Decaying,
}

enum Call {
    Reply(Value),
    Silent,
}

impl Session {
    pub fn new(shared: Arc<Shared>, client: Client, pre_authenticated: bool) -> Session {
        let authenticated = pre_authenticated || shared.config.auth_token.is_none();
        Session {
            shared,
            client,
            version: None,
            negotiated: false,
            authenticated,
            headers: false,
            subs: HashMap::new(),
            cost: Decaying::new(Instant::now()),
        }
    }

    pub fn subscriptions(&self) -> usize {
        self.subs.len()
    }

    /// Handles one received message (a request, a notification or a batch).
    pub async fn handle(&mut self, text: &str) -> Outcome {
        self.shared
            .metrics
            .bytes_received
            .fetch_add(text.len() as u64 + 1, Ordering::Relaxed);
        let mut close = false;
        let parsed: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                let reply =
                    protocol::reply(&Value::Null, Err(RpcError::new(PARSE_ERROR, "parse error")));
                return Outcome {
                    replies: vec![reply.to_string()],
                    close: false,
                };
            }
        };
        let reply = match parsed {
            Value::Array(calls) => {
                let limit = self.shared.accountant.limits().max_batch;
                if calls.is_empty() || calls.len() > limit {
                    let msg = if calls.is_empty() {
                        "empty batch".to_owned()
                    } else {
                        format!("batch of {} exceeds the limit of {limit}", calls.len())
                    };
                    Some(protocol::reply(
                        &Value::Null,
                        Err(RpcError::new(INVALID_REQUEST, msg)),
                    ))
                } else {
                    let mut replies = Vec::with_capacity(calls.len());
                    for call in &calls {
                        match self.call(call, &mut close).await {
                            Call::Reply(r) => replies.push(r),
                            Call::Silent => {}
                        }
                        if close {
                            break;
                        }
                    }
                    (!replies.is_empty()).then_some(Value::Array(replies))
                }
            }
            other => match self.call(&other, &mut close).await {
                Call::Reply(r) => Some(r),
                Call::Silent => None,
            },
        };
        let replies = reply.map(|r| vec![r.to_string()]).unwrap_or_default();
        for r in &replies {
            self.shared
                .metrics
                .bytes_sent
                .fetch_add(r.len() as u64 + 1, Ordering::Relaxed);
        }
        Outcome { replies, close }
    }

    async fn call(&mut self, call: &Value, close: &mut bool) -> Call {
        let Some(obj) = call.as_object() else {
            return Call::Reply(protocol::reply(
                &Value::Null,
                Err(RpcError::new(INVALID_REQUEST, "request must be an object")),
            ));
        };
        let id = obj.get("id").cloned();
        let respond = |outcome: Result<Value, RpcError>| match &id {
            Some(id) => Call::Reply(protocol::reply(id, outcome)),
            None => Call::Silent,
        };
        let Some(method) = obj.get("method").and_then(Value::as_str) else {
            return respond(Err(RpcError::new(INVALID_REQUEST, "missing method")));
        };
        let params = obj.get("params").cloned().unwrap_or(Value::Null);
        let token = self.shared.config.auth_token.clone();
        if !self.authenticated {
            let bearer = obj
                .get("authorization")
                .and_then(Value::as_str)
                .and_then(|a| a.strip_prefix("Bearer "));
            let in_version = (method == "server.version")
                .then(|| params.get(2).or_else(|| params.get("token")))
                .flatten()
                .and_then(Value::as_str);
            match (&token, bearer.or(in_version)) {
                (Some(expected), Some(given))
                    if constant_time_eq(expected.as_bytes(), given.as_bytes()) =>
                {
                    self.authenticated = true
                }
                _ => {
                    *close = true;
                    self.shared.metrics.request(method, true);
                    return respond(Err(RpcError::new(BAD_REQUEST, "authentication required: send the token in server.version or as 'authorization: Bearer <token>'")));
                }
            }
        }

        let version = *self.version.get_or_insert(ProtocolVersion::V1_4);
        let request = match parse_request(method, &params, version) {
            Ok(r) => r,
            Err(e) => {
                self.shared.metrics.request(method, true);
                return respond(Err(e));
            }
        };
        let cost = request.base_cost() + call.to_string().len() as f64 / 5000.0;
        match self
            .shared
            .accountant
            .charge(self.client, &mut self.cost, cost)
        {
            Verdict::Serve => {}
            Verdict::Delay(d) => tokio::time::sleep(d).await,
            Verdict::Disconnect => {
                *close = true;
                self.shared
                    .metrics
                    .disconnects_for_cost
                    .fetch_add(1, Ordering::Relaxed);
                return respond(Err(RpcError::new(
                    EXCESSIVE_RESOURCE_USAGE,
                    "excessive resource usage: disconnecting",
                )));
            }
        }
        let negotiating = matches!(request, Request::ServerVersion { .. }) && !self.negotiated;
        let outcome = self.execute(request).await;
        if negotiating && outcome.is_err() {
            *close = true; // no common version: the session cannot go on
        }
        self.shared.metrics.request(method, outcome.is_err());
        respond(outcome)
    }

    async fn execute(&mut self, request: Request) -> Result<Value, RpcError> {
        let shared = Arc::clone(&self.shared);
        match request {
            Request::ServerVersion {
                client, protocol, ..
            } => {
                if self.negotiated {
                    return Err(RpcError::bad_request("server.version already sent"));
                }
                let v = negotiate(protocol.as_ref())
                    .map_err(|e| RpcError::bad_request(e.to_string()))?;
                tracing::debug!(client = %client, version = %v, "version negotiated");
                self.version = Some(v);
                self.negotiated = true;
                Ok(json!([shared.config.server_version(), v.to_string()]))
            }
            Request::Ping => Ok(Value::Null),
            Request::ServerFeatures => Ok(shared.config.features(&shared.query.genesis_hash())),
            Request::ServerBanner => Ok(json!(shared.config.banner)),
            Request::DonationAddress => Ok(json!(shared.config.donation_address)),
            Request::PeersSubscribe => Ok(shared.config.peers_json()),
            Request::AddPeer(_) => Ok(json!(false)), // peer discovery is off (docs/electrum-server.md)
            Request::HeadersSubscribe => {
                self.headers = true;
                shared
                    .query
                    .tip()
                    .ok_or_else(|| RpcError::new(DAEMON_ERROR, "no blocks indexed yet"))
            }
            Request::BlockHeader { height, cp_height } => {
                blocking(move || shared.query.block_header(height, cp_height)).await
            }
            Request::BlockHeaders {
                start,
                count,
                cp_height,
            } => {
                let list = self.version.is_some_and(|v| v >= ProtocolVersion::V1_6);
                blocking(move || shared.query.block_headers(start, count, cp_height, list)).await
            }
            Request::EstimateFee { blocks, mode } => {
                blocking(move || shared.query.estimate_fee(blocks, mode)).await
            }
            Request::RelayFee => blocking(move || shared.query.relay_fee()).await,
            Request::FeeHistogram => Ok(shared.query.fee_histogram()),
            Request::MempoolInfo => blocking(move || shared.query.mempool_info()).await,
            Request::Broadcast(hex) => blocking(move || shared.query.broadcast(&hex)).await,
            Request::BroadcastPackage { txs, verbose } => {
                blocking(move || shared.query.broadcast_package(&txs, verbose)).await
            }
            Request::TxGet { txid, verbose } => {
                blocking(move || shared.query.transaction_get(&txid, verbose)).await
            }
            Request::TxMerkle { txid, height } => {
                self.require_synced()?;
                blocking(move || shared.query.merkle(&txid, height)).await
            }
            Request::IdFromPos {
                height,
                pos,
                merkle,
            } => blocking(move || shared.query.id_from_pos(height, pos, merkle)).await,
            Request::Balance(sh) => {
                self.require_synced()?;
                blocking(move || shared.query.balance(&sh)).await
            }
            Request::History {
                scripthash,
                from,
                to,
            } => {
                self.require_synced()?;
                blocking(move || shared.query.history(&scripthash, from, to)).await
            }
            Request::Mempool(sh) => {
                self.require_synced()?;
                Ok(shared.query.mempool_history(&sh))
            }
            Request::ListUnspent(sh) => {
                self.require_synced()?;
                blocking(move || shared.query.listunspent(&sh)).await
            }
            Request::Subscribe(sh) => {
                self.require_synced()?;
                if !self.subs.contains_key(&sh) {
                    if !shared.accountant.subscribe(self.client, 1) {
                        return Err(RpcError::new(
                            EXCESSIVE_RESOURCE_USAGE,
                            "too many subscriptions from this address",
                        ));
                    }
                    shared.metrics.subscriptions.fetch_add(1, Ordering::Relaxed);
                }
                let status = {
                    let shared = Arc::clone(&shared);
                    tokio::task::spawn_blocking(move || shared.query.status(&sh))
                        .await
                        .unwrap_or_else(|_| {
                            Err(RpcError::new(protocol::INTERNAL_ERROR, "internal error"))
                        })?
                };
                self.subs.insert(sh, status.clone());
                Ok(json!(status))
            }
            Request::Unsubscribe(sh) => {
                let had = self.subs.remove(&sh).is_some();
                if had {
                    shared.accountant.unsubscribe(self.client, 1);
                    shared.metrics.subscriptions.fetch_sub(1, Ordering::Relaxed);
                }
                Ok(json!(had))
            }
        }
    }

    fn require_synced(&self) -> Result<(), RpcError> {
        if self.shared.synced.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(RpcError::new(
            DAEMON_ERROR,
            "the server is still indexing the chain; retry shortly",
        ))
    }

    /// Notifications for a chain or mempool change.
    pub async fn on_update(&mut self, update: Option<&Update>) -> Vec<String> {
        let mut out = Vec::new();
        if self.headers {
            let tip = match update {
                Some(u) => u.tip.clone(),
                None => self.shared.query.tip(),
            };
            if let Some(tip) = tip {
                out.push(
                    protocol::notification("blockchain.headers.subscribe", json!([tip]))
                        .to_string(),
                );
            }
        }
        let wanted: Vec<ScriptHash> = match update.and_then(|u| u.scripts.as_ref()) {
            Some(changed) if changed.len() < self.subs.len() => changed
                .iter()
                .filter(|sh| self.subs.contains_key(sh))
                .copied()
                .collect(),
            Some(changed) => self
                .subs
                .keys()
                .filter(|sh| changed.contains(sh))
                .copied()
                .collect(),
            None => self.subs.keys().copied().collect(),
        };
        if !wanted.is_empty() {
            let shared = Arc::clone(&self.shared);
            let statuses = tokio::task::spawn_blocking(move || {
                wanted
                    .into_iter()
                    .map(|sh| (sh, shared.query.status(&sh)))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            for (sh, status) in statuses {
                let Ok(status) = status else { continue };
                if self.subs.get(&sh) != Some(&status) {
                    self.subs.insert(sh, status.clone());
                    out.push(
                        protocol::notification(
                            "blockchain.scripthash.subscribe",
                            json!([sh.to_string(), status]),
                        )
                        .to_string(),
                    );
                }
            }
        }
        let sent: usize = out.iter().map(|n| n.len() + 1).sum();
        self.shared
            .metrics
            .notifications
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        self.shared
            .metrics
            .bytes_sent
            .fetch_add(sent as u64, Ordering::Relaxed);
        out
    }
}

/// Runs a query on the blocking pool.
async fn blocking(
    f: impl FnOnce() -> Result<Value, RpcError> + Send + 'static,
) -> Result<Value, RpcError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        tracing::error!("request handler panicked: {e}");
        Err(RpcError::new(protocol::INTERNAL_ERROR, "internal error"))
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff));
    }
    diff == 0
}

/// The receive side of the update stream, tolerant of lag.
pub(crate) async fn next_update(
    rx: &mut broadcast::Receiver<Arc<Update>>,
) -> Option<Option<Arc<Update>>> {
    match rx.recv().await {
        Ok(u) => Some(Some(u)),
        // Missed some: treat as "everything may have changed".
        Err(broadcast::error::RecvError::Lagged(_)) => Some(None),
        Err(broadcast::error::RecvError::Closed) => None,
    }
}
