//! Typed errors of the chain layer.

use std::fmt;

/// How a refused transaction was refused; maps one-to-one onto Bitcoin Core's RPC error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectKind {
    /// Policy or consensus refused it (Core's `RPC_VERIFY_REJECTED`, -26).
    Rejected,
    /// An input is missing or already spent (Core's `RPC_VERIFY_ERROR`, -25).
    MissingInputs,
    /// The fee is above the caller's `maxfeerate` (Core's `RPC_VERIFY_ERROR`, -25).
    MaxFeeExceeded,
    /// Its outputs are already in the UTXO set (Core's `RPC_VERIFY_ALREADY_IN_UTXO_SET`, -27).
    AlreadyInChain,
}

impl RejectKind {
    /// The Bitcoin Core JSON-RPC error code for this kind of refusal.
    pub fn rpc_code(self) -> i64 {
        match self {
            RejectKind::Rejected => -26,
            RejectKind::MissingInputs | RejectKind::MaxFeeExceeded => -25,
            RejectKind::AlreadyInChain => -27,
        }
    }
}

/// A transaction the mempool would not take, with Core's reject reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRejection {
    /// Which family of refusal.
    pub kind: RejectKind,
    /// Core's short reject reason, e.g. `min relay fee not met`.
    pub reason: String,
    /// Details appended after a comma, as Core's `ValidationState::ToString` does.
    pub debug: Option<String>,
}

impl TxRejection {
    pub(crate) fn new(kind: RejectKind, reason: impl Into<String>) -> Self {
        TxRejection {
            kind,
            reason: reason.into(),
            debug: None,
        }
    }

    pub(crate) fn rejected(reason: impl Into<String>) -> Self {
        Self::new(RejectKind::Rejected, reason)
    }

    pub(crate) fn with_debug(mut self, debug: impl Into<String>) -> Self {
        self.debug = Some(debug.into());
        self
    }
}

impl fmt::Display for TxRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.debug {
            Some(debug) => write!(f, "{}, {}", self.reason, debug),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for TxRejection {}

/// Everything that can go wrong in the chain layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The mempool refused a transaction.
    #[error("transaction rejected: {0}")]
    Rejected(#[from] TxRejection),
    /// A submitted block was invalid; the string is Core's reject reason.
    #[error("block rejected: {0}")]
    InvalidBlock(String),
    /// libbitcoinkernel reported a failure.
    #[error("bitcoin kernel: {0}")]
    Kernel(String),
    /// The node's index store failed.
    #[error("index store: {0}")]
    Store(String),
    /// A file operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// bitcoind answered with a JSON-RPC error.
    #[error("bitcoind RPC error {code}: {message}")]
    Rpc {
        /// The JSON-RPC error code.
        code: i64,
        /// The error message.
        message: String,
    },
    /// bitcoind could not be reached or answered something that is not HTTP JSON-RPC.
    #[error("bitcoind transport: {0}")]
    Transport(String),
    /// Data that should have been a block, transaction or header did not decode.
    #[error("decode: {0}")]
    Decode(String),
    /// The request is not valid for this chain (unknown block, bad parameter).
    #[error("{0}")]
    Invalid(String),
    /// The node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
}

impl From<rocksdb::Error> for ChainError {
    fn from(e: rocksdb::Error) -> Self {
        ChainError::Store(e.into_string())
    }
}

impl From<bitcoinkernel::KernelError> for ChainError {
    fn from(e: bitcoinkernel::KernelError) -> Self {
        ChainError::Kernel(e.to_string())
    }
}

impl From<bitcoin::consensus::encode::Error> for ChainError {
    fn from(e: bitcoin::consensus::encode::Error) -> Self {
        ChainError::Decode(e.to_string())
    }
}
