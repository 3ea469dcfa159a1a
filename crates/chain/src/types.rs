//! Plain data exchanged through [`crate::ChainSource`].

use std::sync::Arc;

use bitcoin::{Amount, BlockHash, FeeRate, Transaction, TxOut, Txid, Wtxid};
use serde::{Deserialize, Serialize};

/// A block of the active chain, named by height and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockId {
    /// Height above genesis.
    pub height: u32,
    /// The block's hash.
    pub hash: BlockHash,
}

/// A header with the height it sits at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderEntry {
    /// Height above genesis.
    pub height: u32,
    /// The 80-byte header.
    pub header: bitcoin::block::Header,
    /// Whether the block is part of the active chain (false for stale branches).
    pub in_active_chain: bool,
}

/// An output spent by a block, as recorded in the block's undo data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentOutput {
    /// The output that was spent.
    pub txout: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether it was created by a coinbase transaction.
    pub coinbase: bool,
}

/// Where a confirmed transaction sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxLocation {
    /// The block containing it.
    pub block_hash: BlockHash,
    /// That block's height.
    pub height: u32,
    /// Index of the transaction inside the block (0 is the coinbase).
    pub position: u32,
}

/// A transaction with its place in the chain; `location` is `None` while it is in the mempool.
#[derive(Debug, Clone)]
pub struct LocatedTx {
    /// The transaction.
    pub tx: Transaction,
    /// Where it confirmed, if it did.
    pub location: Option<TxLocation>,
}

/// A mempool transaction with the figures wallets and indexers need.
#[derive(Debug, Clone)]
pub struct MempoolEntry {
    /// The transaction itself.
    pub tx: Arc<Transaction>,
    /// Its txid.
    pub txid: Txid,
    /// Its witness txid.
    pub wtxid: Wtxid,
    /// Fee paid: inputs minus outputs.
    pub fee: Amount,
    /// Virtual size in vbytes (BIP141).
    pub vsize: u64,
    /// Weight in weight units.
    pub weight: u64,
    /// Unix time at which it entered the mempool.
    pub time: u64,
    /// Chain height when it entered.
    pub height: u32,
    /// Outputs it spends, in input order (from the chain or from mempool parents).
    pub prevouts: Vec<TxOut>,
    /// In-mempool parents it spends from.
    pub depends: Vec<Txid>,
    /// In-mempool children spending it.
    pub spent_by: Vec<Txid>,
    /// Count, vsize and fees of the transaction with all its in-mempool ancestors.
    pub ancestor_count: u64,
    /// See `ancestor_count`.
    pub ancestor_vsize: u64,
    /// See `ancestor_count`.
    pub ancestor_fees: Amount,
    /// Count, vsize and fees of the transaction with all its in-mempool descendants.
    pub descendant_count: u64,
    /// See `descendant_count`.
    pub descendant_vsize: u64,
    /// See `descendant_count`.
    pub descendant_fees: Amount,
    /// Whether it signals BIP125 replaceability, itself or through an unconfirmed ancestor.
    pub bip125_replaceable: bool,
}

impl MempoolEntry {
    /// The fee rate of the transaction alone.
    pub fn fee_rate(&self) -> FeeRate {
        fee_rate_of(self.fee, self.vsize)
    }
}

/// Fee rate in sat/kwu from a fee and a virtual size, rounding down.
pub(crate) fn fee_rate_of(fee: Amount, vsize: u64) -> FeeRate {
    FeeRate::from_sat_per_kwu(fee.to_sat().saturating_mul(250) / vsize.max(1))
}

/// Why a transaction left the mempool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// It was mined in a block.
    Block,
    /// A block confirmed a conflicting transaction.
    Conflict,
    /// A replacement (RBF) evicted it.
    Replaced,
    /// It became invalid after a reorganisation.
    Reorg,
}

/// Something that happened to the chain or the mempool, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChainEvent {
    /// A block joined the active chain.
    BlockConnected(BlockId),
    /// A block left the active chain (reorganisation or `invalidateblock`).
    BlockDisconnected(BlockId),
    /// A transaction entered the mempool.
    TxAdded {
        /// The transaction's id.
        txid: Txid,
    },
    /// A transaction left the mempool.
    TxRemoved {
        /// The transaction's id.
        txid: Txid,
        /// Why it left.
        reason: RemovalReason,
    },
}

/// The fee floors of a mempool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolFeeInfo {
    /// Lowest fee rate the mempool takes now (rises when it is full).
    pub mempool_min_fee: FeeRate,
    /// The configured relay minimum.
    pub min_relay_fee: FeeRate,
    /// What a replacement pays for its own size on top.
    pub incremental_relay_fee: FeeRate,
}

/// Bitcoin Core's fee estimation modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeeMode {
    /// Let the estimator choose (Core's `unset`).
    #[default]
    Unset,
    /// Responsive to short-term drops in the fee market.
    Economical,
    /// Less likely to underpay over a longer horizon.
    Conservative,
}

impl std::str::FromStr for FeeMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "unset" => Ok(FeeMode::Unset),
            "economical" => Ok(FeeMode::Economical),
            "conservative" => Ok(FeeMode::Conservative),
            _ => Err(format!("Invalid estimate_mode parameter, must be one of: \"unset\", \"economical\", \"conservative\" (got {s:?})")),
        }
    }
}

/// A fee estimate: the rate, and the confirmation target it was found for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeEstimate {
    /// Estimated fee rate.
    pub fee_rate: FeeRate,
    /// Target (in blocks) the estimate answers, which may differ from the one asked.
    pub blocks: u16,
}

/// What happened to one transaction of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageTxOutcome {
    /// The transaction's txid.
    pub txid: Txid,
    /// The transaction's wtxid.
    pub wtxid: Wtxid,
    /// Virtual size, when it was accepted or already present.
    pub vsize: Option<u64>,
    /// Fee paid, when it was accepted or already present.
    pub fee: Option<Amount>,
    /// Feerate of the package the transaction was judged with, when accepted.
    pub effective_fee_rate: Option<FeeRate>,
    /// Wtxids of the transactions whose fees and sizes count in `effective_fee_rate`.
    pub effective_includes: Vec<Wtxid>,
    /// Set when the transaction was refused.
    pub error: Option<String>,
    /// Set when an identical-txid, different-witness transaction was already in the mempool.
    pub other_wtxid: Option<Wtxid>,
}

/// Result of submitting a package (a child with its unconfirmed parents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageOutcome {
    /// "success" when every transaction is in the mempool, otherwise a summary of the failure.
    pub message: String,
    /// One entry per submitted transaction, in submission order.
    pub tx_results: Vec<PackageTxOutcome>,
    /// Txids evicted by replacement.
    pub replaced: Vec<Txid>,
}
