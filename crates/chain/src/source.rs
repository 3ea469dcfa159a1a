//! The interface between L1 and everything above it.

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, FeeRate, Network, Transaction, Txid};
use tokio::sync::broadcast;

use crate::{
    BlockId, ChainError, ChainEvent, FeeEstimate, FeeMode, HeaderEntry, LocatedTx, MempoolEntry,
    MempoolFeeInfo, PackageOutcome, SpentOutput,
};

/// A view of a Bitcoin chain and its mempool, with the means to broadcast to it.
///
/// Implemented by [`crate::EmbeddedNode`] and [`crate::BitcoindRpc`]; upper layers (the Electrum
/// index, wallets, Lightning) take a `dyn ChainSource` and never learn which one they have.
/// Calls block; async code runs them in `spawn_blocking`.
pub trait ChainSource: Send + Sync {
    /// The network this chain belongs to.
    fn network(&self) -> Network;

    /// The tip of the active chain.
    fn tip(&self) -> Result<BlockId, ChainError>;

    /// Hash of the active-chain block at `height`, or `None` above the tip.
    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, ChainError>;

    /// A header by hash, active chain or not; `None` if the block is unknown.
    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderEntry>, ChainError>;

    /// Up to `count` consecutive active-chain headers starting at `start_height`.
    fn headers(&self, start_height: u32, count: u32) -> Result<Vec<Header>, ChainError>;

    /// A full block by hash, or `None` if unknown.
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError>;

    /// The outputs a block spent (its undo data): one list per non-coinbase transaction, one entry
    /// per input, in order. Lets an indexer resolve input scripts without a transaction index.
    fn spent_outputs(&self, hash: &BlockHash) -> Result<Option<Vec<Vec<SpentOutput>>>, ChainError>;

    /// A transaction by txid, from the mempool or the chain. `block` narrows the search to one
    /// block, which lets a node without a transaction index answer too.
    fn transaction(
        &self,
        txid: &Txid,
        block: Option<&BlockHash>,
    ) -> Result<Option<LocatedTx>, ChainError>;

    /// Every mempool transaction with fees, sizes and the outputs it spends.
    fn mempool(&self) -> Result<Vec<MempoolEntry>, ChainError>;

    /// Txids in the mempool, cheaper than [`Self::mempool`] when only changes are wanted.
    fn mempool_txids(&self) -> Result<Vec<Txid>, ChainError> {
        Ok(self.mempool()?.into_iter().map(|e| e.txid).collect())
    }

    /// Entries for the given txids; those that left the mempool meanwhile are skipped.
    fn mempool_entries(&self, txids: &[Txid]) -> Result<Vec<MempoolEntry>, ChainError> {
        let wanted: std::collections::HashSet<&Txid> = txids.iter().collect();
        Ok(self
            .mempool()?
            .into_iter()
            .filter(|e| wanted.contains(&e.txid))
            .collect())
    }

    /// Events from now on: blocks connected and disconnected, mempool additions and removals.
    /// A receiver that falls behind gets `Lagged` and should re-read the state it follows.
    fn subscribe(&self) -> broadcast::Receiver<ChainEvent>;

    /// Submits one transaction to the mempool and relays it.
    fn broadcast(&self, tx: &Transaction) -> Result<Txid, ChainError>;

    /// Submits a package: parents first, the child last; judged by package feerate (CPFP).
    fn broadcast_package(&self, txs: &[Transaction]) -> Result<PackageOutcome, ChainError>;

    /// A fee rate likely to confirm within `target_blocks`; `None` when there is no estimate.
    fn estimate_fee(
        &self,
        target_blocks: u16,
        mode: FeeMode,
    ) -> Result<Option<FeeEstimate>, ChainError>;

    /// The lowest fee rate the node relays.
    fn relay_fee(&self) -> Result<FeeRate, ChainError>;

    /// The mempool's fee floors (Electrum's `mempool.get_info`). By default all three are the
    /// relay fee, which is what a mempool that is not full enforces.
    fn mempool_fee_info(&self) -> Result<MempoolFeeInfo, ChainError> {
        let relay = self.relay_fee()?;
        Ok(MempoolFeeInfo {
            mempool_min_fee: relay,
            min_relay_fee: relay,
            incremental_relay_fee: relay,
        })
    }
}
