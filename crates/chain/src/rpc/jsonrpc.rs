//! The JSON-RPC envelope as Bitcoin Core speaks it: legacy 1.0 replies carry both `result` and
//! `error` and map errors onto HTTP status codes; 2.0 replies carry one of them and are always
//! HTTP 200 (204 for a lone notification); batches are arrays of either.

use serde_json::{json, Map, Value};

use super::error::{RpcError, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR};

/// Largest batch served in one request.
pub const MAX_BATCH: usize = 1_000;

/// What goes back over HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// JSON body; `None` for 204.
    pub body: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Legacy,
    V2,
}

/// One parsed call, ready to execute.
#[derive(Debug, Clone)]
pub struct Call {
    /// Method name.
    pub method: String,
    /// `params`: an array or object (absent becomes an empty array).
    pub params: Value,
}

struct Envelope {
    version: Version,
    id: Value,
    notification: bool,
}

fn legacy_status(err: &RpcError) -> u16 {
    match err.code {
        INVALID_REQUEST => 400,
        METHOD_NOT_FOUND => 404,
        _ => 500,
    }
}

fn parse_call(value: &Value) -> Result<(Envelope, Call), (Envelope, RpcError)> {
    let fallback = Envelope {
        version: Version::Legacy,
        id: Value::Null,
        notification: false,
    };
    let Some(obj) = value.as_object() else {
        return Err((
            fallback,
            RpcError::new(INVALID_REQUEST, "Invalid Request object"),
        ));
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    let version = match obj.get("jsonrpc") {
        None => Version::Legacy,
        Some(Value::String(v)) if v == "1.0" || v == "1.1" => Version::Legacy,
        Some(Value::String(v)) if v == "2.0" => Version::V2,
        Some(_) => {
            let env = Envelope {
                version: Version::Legacy,
                id,
                notification: false,
            };
            return Err((
                env,
                RpcError::new(INVALID_REQUEST, "JSON-RPC version not supported"),
            ));
        }
    };
    let env = Envelope {
        version,
        id,
        notification: version == Version::V2 && !obj.contains_key("id"),
    };
    let method = match obj.get("method") {
        Some(Value::String(m)) => m.clone(),
        None => return Err((env, RpcError::new(INVALID_REQUEST, "Missing method"))),
        Some(_) => {
            return Err((
                env,
                RpcError::new(INVALID_REQUEST, "Method must be a string"),
            ))
        }
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => Value::Array(Vec::new()),
        Some(p @ (Value::Array(_) | Value::Object(_))) => p.clone(),
        Some(_) => {
            return Err((
                env,
                RpcError::new(INVALID_REQUEST, "Params must be an array or object"),
            ))
        }
    };
    Ok((env, Call { method, params }))
}

fn respond(env: &Envelope, outcome: Result<Value, RpcError>) -> Value {
    match (env.version, outcome) {
        (Version::Legacy, Ok(result)) => json!({ "result": result, "error": null, "id": env.id }),
        (Version::Legacy, Err(e)) => json!({ "result": null, "error": e.to_json(), "id": env.id }),
        (Version::V2, Ok(result)) => json!({ "jsonrpc": "2.0", "result": result, "id": env.id }),
        (Version::V2, Err(e)) => json!({ "jsonrpc": "2.0", "error": e.to_json(), "id": env.id }),
    }
}

/// Handles one HTTP body: parses, runs each call through `exec`, and builds Core's reply.
pub fn handle(body: &[u8], mut exec: impl FnMut(&Call) -> Result<Value, RpcError>) -> Reply {
    let parse_error = || Reply {
        status: 500,
        body: Some(
            json!({ "result": null, "error": RpcError::new(PARSE_ERROR, "Parse error").to_json(), "id": null }),
        ),
    };
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return parse_error();
    };
    match request {
        Value::Array(calls) => {
            if calls.len() > MAX_BATCH {
                let err = RpcError::new(
                    INVALID_REQUEST,
                    format!("Batch too large (limit {MAX_BATCH})"),
                );
                return Reply {
                    status: 400,
                    body: Some(json!({ "result": null, "error": err.to_json(), "id": null })),
                };
            }
            let mut replies = Vec::with_capacity(calls.len());
            for item in &calls {
                let (env, outcome) = match parse_call(item) {
                    Ok((env, call)) => (env, exec(&call)),
                    Err((env, e)) => (env, Err(e)),
                };
                if !env.notification {
                    replies.push(respond(&env, outcome));
                }
            }
            Reply {
                status: 200,
                body: Some(Value::Array(replies)),
            }
        }
        Value::Object(_) => {
            let (env, outcome) = match parse_call(&request) {
                Ok((env, call)) => (env, exec(&call)),
                Err((env, e)) => (env, Err(e)),
            };
            if env.notification {
                return Reply {
                    status: 204,
                    body: None,
                };
            }
            let status = match (&env.version, &outcome) {
                (Version::Legacy, Err(e)) => legacy_status(e),
                _ => 200,
            };
            Reply {
                status,
                body: Some(respond(&env, outcome)),
            }
        }
        _ => parse_error(),
    }
}

/// An object with the keys in the given order (Core prints fields in a fixed order).
pub fn object(pairs: Vec<(&str, Value)>) -> Value {
    let mut map = Map::with_capacity(pairs.len());
    for (k, v) in pairs {
        map.insert(k.to_owned(), v);
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(call: &Call) -> Result<Value, RpcError> {
        match call.method.as_str() {
            "ok" => Ok(json!(1)),
            _ => Err(RpcError::new(METHOD_NOT_FOUND, "Method not found")),
        }
    }

    #[test]
    fn legacy_errors_map_to_http_status() {
        let r = handle(br#"{"method":"nope","id":7}"#, echo);
        assert_eq!(r.status, 404);
        assert_eq!(
            r.body,
            Some(
                json!({"result": null, "error": {"code": -32601, "message": "Method not found"}, "id": 7})
            )
        );
        let r = handle(br#"{"method":"ok","id":"a"}"#, echo);
        assert_eq!(
            (r.status, r.body),
            (200, Some(json!({"result": 1, "error": null, "id": "a"})))
        );
    }

    #[test]
    fn v2_replies_carry_one_member_and_notifications_get_nothing() {
        let r = handle(br#"{"jsonrpc":"2.0","method":"nope","id":1}"#, echo);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            Some(
                json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 1})
            )
        );
        let r = handle(br#"{"jsonrpc":"2.0","method":"ok"}"#, echo);
        assert_eq!((r.status, r.body), (204, None));
    }

    #[test]
    fn batches_and_malformed_requests() {
        let r = handle(
            br#"[{"method":"ok","id":1},{"jsonrpc":"2.0","method":"ok"},5]"#,
            echo,
        );
        assert_eq!(r.status, 200);
        let body = r.body.expect("body");
        assert_eq!(
            body.as_array().expect("array").len(),
            2,
            "the notification gets no reply"
        );
        assert_eq!(body[1]["error"]["code"], json!(-32600));
        let r = handle(b"{not json", echo);
        assert_eq!(
            (r.status, r.body.expect("body")["error"]["code"].clone()),
            (500, json!(-32700))
        );
        let r = handle(br#"{"method":"ok","params":3,"id":1}"#, echo);
        assert_eq!(r.status, 400);
    }
}
