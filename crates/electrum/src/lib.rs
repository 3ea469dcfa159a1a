//! moip's Bitcoin Server: an Electrum-protocol server (1.4 to 1.6) over any
//! [`moip_chain::ChainSource`] — the embedded regtest node or a user's bitcoind.
//!
//! * [`index`]: RocksDB index of script histories, unspent outputs and transaction positions,
//!   fed block by block (in parallel during catch-up), crash-safe and reorg-aware.
//! * [`mempool`]: the mempool seen per script, with the fee histogram.
//! * [`query`]: the protocol's questions answered from both.
//! * [`protocol`]: versions, typed requests, errors.
//! * [`server`]: TCP, TLS, WebSocket and WSS listeners, sessions with cost accounting and
//!   subscriptions, Prometheus metrics.

pub mod index;
pub mod mempool;
pub mod merkle;
pub mod protocol;
pub mod query;
pub mod server;
pub mod status;
pub mod types;

use std::net::SocketAddr;

pub use server::{Addresses, ElectrumServer, Limits, Peer, ServerConfig, ServerStatus};
pub use types::{ScriptHash, TxNum};

/// Failures of the index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// RocksDB failed.
    #[error("index store: {0}")]
    Store(String),
    /// A row did not decode: the index is damaged.
    #[error("index is corrupt: {0}")]
    Corrupt(String),
    /// The chain source failed or sent something inconsistent.
    #[error("chain source: {0}")]
    Source(String),
    /// A reorganisation went below the blocks whose undo data is kept.
    #[error("reorganisation below height {height} is deeper than the {limit} blocks of undo data kept; re-index")]
    ReorgTooDeep { height: u32, limit: u32 },
    /// A file operation failed.
    #[error("i/o: {0}")]
    Io(String),
}

impl From<rocksdb::Error> for IndexError {
    fn from(e: rocksdb::Error) -> Self {
        IndexError::Store(e.into_string())
    }
}

impl From<moip_chain::ChainError> for IndexError {
    fn from(e: moip_chain::ChainError) -> Self {
        IndexError::Source(e.to_string())
    }
}

/// Failures starting or running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("i/o: {0}")]
    Io(String),
}
