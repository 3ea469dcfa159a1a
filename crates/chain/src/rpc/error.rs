//! JSON-RPC errors with Bitcoin Core's codes (`src/rpc/protocol.h`).

use serde_json::{json, Value};

use crate::{ChainError, TxRejection};

/// Core's `RPC_MISC_ERROR`: wrong number of arguments (with the method's usage), misc failures.
pub const MISC_ERROR: i64 = -1;
/// Core's `RPC_TYPE_ERROR`: a parameter has the wrong JSON type.
pub const TYPE_ERROR: i64 = -3;
/// Core's `RPC_INVALID_ADDRESS_OR_KEY`: unknown block, transaction or bad address.
pub const INVALID_ADDRESS_OR_KEY: i64 = -5;
/// Core's `RPC_INVALID_PARAMETER`: a parameter has a bad value.
pub const INVALID_PARAMETER: i64 = -8;
/// Core's `RPC_DESERIALIZATION_ERROR`: hex that is not a transaction or block.
pub const DESERIALIZATION_ERROR: i64 = -22;
/// Core's `RPC_VERIFY_ERROR`: missing inputs, fee above the limit.
pub const VERIFY_ERROR: i64 = -25;
/// Core's `RPC_VERIFY_REJECTED`: refused by policy or consensus.
pub const VERIFY_REJECTED: i64 = -26;
/// Core's `RPC_VERIFY_ALREADY_IN_UTXO_SET`.
pub const VERIFY_ALREADY_IN_UTXO_SET: i64 = -27;
/// JSON-RPC `Invalid Request` (HTTP 400 in legacy mode).
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC `Method not found` (HTTP 404 in legacy mode).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC `Invalid params`: used for a `params` member that is neither array nor object.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC `Internal error`.
pub const INTERNAL_ERROR: i64 = -32603;
/// JSON-RPC `Parse error`.
pub const PARSE_ERROR: i64 = -32700;

/// An error answer: code and message, as Core sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// The numeric code.
    pub code: i64,
    /// The human-readable message.
    pub message: String,
}

impl RpcError {
    /// An error with a code and a message.
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({ "code": self.code, "message": self.message })
    }
}

impl From<TxRejection> for RpcError {
    fn from(r: TxRejection) -> Self {
        let message = match r.kind {
            crate::RejectKind::MissingInputs => r.reason.clone(),
            crate::RejectKind::MaxFeeExceeded => {
                r.debug.clone().unwrap_or_else(|| r.reason.clone())
            }
            _ => r.to_string(),
        };
        RpcError::new(r.kind.rpc_code(), message)
    }
}

impl From<ChainError> for RpcError {
    fn from(e: ChainError) -> Self {
        match e {
            ChainError::Rejected(r) => r.into(),
            ChainError::Invalid(m) => RpcError::new(INVALID_ADDRESS_OR_KEY, m),
            ChainError::InvalidBlock(m) => RpcError::new(VERIFY_ERROR, m),
            ChainError::Decode(m) => RpcError::new(DESERIALIZATION_ERROR, m),
            ChainError::ShuttingDown => RpcError::new(-28, "Shutting down"),
            other => RpcError::new(INTERNAL_ERROR, other.to_string()),
        }
    }
}
