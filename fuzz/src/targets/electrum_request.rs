//! The Electrum server's request path: one received message (a call, a notification or a
//! batch; a line over TCP, a text message over WebSocket) through a client session of the server itself (`FuzzSession`, the session a connection gets:
//! authentication, version negotiation, cost accounting, dispatch, subscriptions) over a small
//! indexed chain; once as sent, and once after negotiating each supported protocol version.
//! Each call's method and parameters are also parsed for every version, as the session parses
//! them once negotiated.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use moip_electrum::protocol::{parse_request, ProtocolVersion};
use moip_electrum::query::Query;
use moip_electrum::server::fuzzing::FuzzSession;
use moip_electrum::{Limits, ScriptHash, ServerConfig};
use serde_json::Value;

fn query() -> &'static Arc<Query> {
    static QUERY: OnceLock<Arc<Query>> = OnceLock::new();
    QUERY.get_or_init(|| Arc::new(crate::electrum::indexed_query()))
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// A public server's settings, with limits low enough for one input to reach them and no
/// delay, so a delayed request costs no fuzzing time.
fn config() -> ServerConfig {
    let mut config = ServerConfig::new(std::env::temp_dir());
    config.limits = Limits {
        cost_soft_limit: 100.0,
        cost_hard_limit: 200.0,
        max_request_delay: Duration::ZERO,
        max_subscriptions_per_ip: 8,
        ..Limits::default()
    };
    config
}

/// Runs the lines through a new session: every reply is one JSON value, and a call with an
/// id, or a line that is not JSON, is answered with exactly one.
fn session(lines: &[&str]) {
    let client = IpAddr::from([192, 0, 2, 1]);
    let mut session = FuzzSession::new(Arc::clone(query()), config(), client)
        .expect("a first connection is admitted");
    runtime().block_on(async {
        for line in lines {
            let (replies, close) = session.handle(line).await;
            for reply in &replies {
                assert!(
                    serde_json::from_str::<Value>(reply).is_ok(),
                    "reply {reply:?}"
                );
            }
            let answered = match serde_json::from_str::<Value>(line) {
                Err(_) => true,
                Ok(Value::Object(call)) => call.contains_key("id"),
                Ok(_) => false,
            };
            if answered {
                assert_eq!(replies.len(), 1, "replies to {line:?}");
            }
            if close {
                break;
            }
        }
    });
}

fn parse(call: &Value) {
    let Some(obj) = call.as_object() else { return };
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        return;
    };
    let params = obj.get("params").cloned().unwrap_or(Value::Null);
    for version in ProtocolVersion::SUPPORTED {
        let Ok(request) = parse_request(method, &params, version) else {
            continue;
        };
        let cost = request.base_cost();
        assert!(
            cost.is_finite() && cost >= 0.0,
            "cost {cost} of {request:?}"
        );
    }
}

/// One input of the `electrum_request` target.
pub fn electrum_request(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Every string the server reads as a script hash reads back as the same 64 hex digits.
    if let Ok(sh) = ScriptHash::from_str(text) {
        assert_eq!(
            sh.to_string(),
            text.to_ascii_lowercase(),
            "script hash {text:?}"
        );
    }
    if let Some(v) = ProtocolVersion::parse(text) {
        let _ = v.to_string();
    }
    if let Ok(parsed) = serde_json::from_str::<Value>(text) {
        match &parsed {
            Value::Array(calls) => calls.iter().take(2_000).for_each(parse),
            other => parse(other),
        }
    }
    session(&[text]);
    for version in ProtocolVersion::SUPPORTED {
        let hello = serde_json::json!({
            "id": 0,
            "method": "server.version",
            "params": ["moip-fuzz", version.to_string()],
        })
        .to_string();
        session(&[&hello, text]);
    }
}
