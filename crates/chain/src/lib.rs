//! L1 of moip: the chain every upper layer stands on.
//!
//! * [`ChainSource`] is the one interface the layers above use to read the chain, watch it and
//!   broadcast to it. It is synchronous: the embedded node does its work on the caller's thread,
//!   and async callers wrap calls in `spawn_blocking`.
//! * [`EmbeddedNode`] is a regtest node whose block validation is Bitcoin Core's own, through
//!   libbitcoinkernel, with its own UTXO view, transaction index, mempool and miner.
//! * [`BitcoindRpc`] implements the same trait over a user's `bitcoind`, so everything above runs
//!   unchanged on signet or mainnet.
//! * [`rpc`] serves a bitcoind-compatible JSON-RPC and REST interface for the embedded node, so that
//!   third-party software written for `bitcoind` (ElectrumX, ldk-node, BDK) runs against it.

pub mod bitcoind;
pub mod embedded;
mod error;
pub mod http;
pub mod rpc;
mod source;
mod types;

pub use bitcoind::{BitcoindAuth, BitcoindRpc};
pub use embedded::{EmbeddedNode, NodeConfig};
pub use error::{ChainError, RejectKind, TxRejection};
pub use source::ChainSource;
pub use types::{
    BlockId, ChainEvent, FeeEstimate, FeeMode, HeaderEntry, LocatedTx, MempoolEntry,
    MempoolFeeInfo, PackageOutcome, PackageTxOutcome, RemovalReason, SpentOutput, TxLocation,
};
