//! The Electrum protocol: versions, typed requests parsed at the edge, and errors.

mod request;
mod version;

pub use request::{parse_request, Request};
pub use version::{negotiate, NegotiationError, ProtocolVersion};

use serde_json::{json, Value};

/// JSON-RPC parse error.
pub const PARSE_ERROR: i64 = -32700;
/// Not a request object.
pub const INVALID_REQUEST: i64 = -32600;
/// Unknown method (or not in the negotiated version).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Wrong number or type of parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// The server failed.
pub const INTERNAL_ERROR: i64 = -32603;
/// A well-formed request the server refuses (ElectrumX's `BAD_REQUEST`).
pub const BAD_REQUEST: i64 = 1;
/// The node behind the server failed or refused (ElectrumX's `DAEMON_ERROR`).
pub const DAEMON_ERROR: i64 = 2;
/// A history too long to send at once; page it with `from_height`/`to_height` (ElectrumX's code).
pub const HISTORY_TOO_LARGE: i64 = 10001;
/// Over the session's cost limit.
pub const EXCESSIVE_RESOURCE_USAGE: i64 = -101;

/// An error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> RpcError {
        RpcError::new(BAD_REQUEST, message)
    }

    pub fn invalid_params(message: impl Into<String>) -> RpcError {
        RpcError::new(INVALID_PARAMS, message)
    }

    pub fn to_json(&self) -> Value {
        json!({ "code": self.code, "message": self.message })
    }
}

impl From<crate::IndexError> for RpcError {
    fn from(e: crate::IndexError) -> Self {
        tracing::warn!("request failed: {e}");
        RpcError::new(INTERNAL_ERROR, "internal error")
    }
}

impl From<moip_chain::ChainError> for RpcError {
    fn from(e: moip_chain::ChainError) -> Self {
        RpcError::new(DAEMON_ERROR, format!("daemon error: {e}"))
    }
}

/// A JSON-RPC 2.0 reply to request `id`.
pub fn reply(id: &Value, outcome: Result<Value, RpcError>) -> Value {
    match outcome {
        Ok(result) => json!({ "jsonrpc": "2.0", "result": result, "id": id }),
        Err(e) => json!({ "jsonrpc": "2.0", "error": e.to_json(), "id": id }),
    }
}

/// A notification (no id).
pub fn notification(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "method": method, "params": params })
}
