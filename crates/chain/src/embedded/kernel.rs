//! A thin, typed wrapper over libbitcoinkernel's chainstate manager.
//!
//! Everything that crosses the FFI boundary does so here, as consensus-encoded bytes converted to
//! and from rust-bitcoin types, so the rest of the node never sees a kernel handle.

use std::path::Path;
use std::sync::{Arc, Mutex, Once};

use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{Amount, Block, BlockHash, ScriptBuf, Transaction, TxOut};
use bitcoinkernel::prelude::*;
use bitcoinkernel::{
    BlockValidationResult, BlockValidationStateRef, ChainType, ChainstateManager, ContextBuilder,
    Log, Logger, PrecomputedTransactionData, ProcessBlockResult, TxCheckResult, ValidationMode,
};

use crate::{ChainError, HeaderEntry, SpentOutput};

/// Forwards the kernel's log lines to `tracing`. Without a connected logger Core buffers its log
/// in memory, so one is installed for the life of the process.
struct TracingLog;

impl Log for TracingLog {
    fn log(&self, message: &str) {
        tracing::debug!(target: "bitcoinkernel", "{}", message.trim_end());
    }
}

fn install_logger() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| match Logger::new(TracingLog) {
        // The connection must outlive every chainstate; the process owns it until exit.
        Ok(logger) => std::mem::forget(logger),
        Err(e) => tracing::warn!("could not connect the kernel logger: {e}"),
    });
}

/// The outcome of handing a block to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Processed {
    /// Newly validated and stored; it may or may not have become the tip.
    New,
    /// Already known and valid.
    Duplicate,
    /// Refused; the string is the closest Core reject reason the kernel lets us know.
    Rejected(String),
}

/// The kernel's chainstate for one data directory.
pub(crate) struct Kernel {
    // Field order is drop order: the chainstate manager must go before its context.
    chainman: ChainstateManager,
    _context: bitcoinkernel::Context,
    last_rejection: Arc<Mutex<Option<BlockValidationResult>>>,
}

fn reject_reason(result: BlockValidationResult) -> &'static str {
    match result {
        BlockValidationResult::Unset | BlockValidationResult::Consensus => "consensus-invalid",
        BlockValidationResult::CachedInvalid => "duplicate-invalid",
        BlockValidationResult::InvalidHeader => "bad-header",
        BlockValidationResult::Mutated => "bad-txnmrklroot",
        BlockValidationResult::MissingPrev => "prev-blk-not-found",
        BlockValidationResult::InvalidPrev => "bad-prevblk",
        BlockValidationResult::TimeFuture => "time-too-new",
        BlockValidationResult::HeaderLowWork => "too-little-chainwork",
    }
}

fn kernel_hash(hash: &BlockHash) -> bitcoinkernel::BlockHash {
    bitcoinkernel::BlockHash::from(hash.to_byte_array())
}

impl Kernel {
    /// Opens (or creates) the regtest chainstate under `dir` and activates its best chain.
    pub(crate) fn open(dir: &Path, script_threads: i32) -> Result<Kernel, ChainError> {
        install_logger();
        std::fs::create_dir_all(dir)?;
        let last_rejection = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&last_rejection);
        let context = ContextBuilder::new()
            .chain_type(ChainType::Regtest)
            .with_block_checked_validation(move |_block, state: BlockValidationStateRef<'_>| {
                if state.mode() != ValidationMode::Valid {
                    *sink.lock().expect("rejection lock") = Some(state.result());
                }
            })
            .with_fatal_error_notification(|message: String| {
                tracing::error!(target: "bitcoinkernel", "fatal: {message}");
            })
            .with_flush_error_notification(|message: String| {
                tracing::error!(target: "bitcoinkernel", "flush error: {message}");
            })
            .build()?;
        let data_dir = path_str(dir)?;
        let blocks_dir = path_str(&dir.join("blocks"))?;
        let chainman = ChainstateManager::builder(&context, &data_dir, &blocks_dir)?
            .worker_threads(script_threads)
            .build()?;
        chainman.import_blocks()?;
        Ok(Kernel {
            chainman,
            _context: context,
            last_rejection,
        })
    }

    /// Height of the active tip.
    pub(crate) fn height(&self) -> u32 {
        self.chainman.active_chain().height().max(0) as u32
    }

    /// Hash of the active tip.
    pub(crate) fn tip_hash(&self) -> BlockHash {
        let tip = self.chainman.active_chain().tip();
        BlockHash::from_byte_array(tip.block_hash().to_bytes())
    }

    /// Hash of the active-chain block at `height`.
    pub(crate) fn hash_at(&self, height: u32) -> Option<BlockHash> {
        let entry = self.chainman.active_chain().at_height(height as usize)?;
        Some(BlockHash::from_byte_array(entry.block_hash().to_bytes()))
    }

    /// Header, height and activeness of any known block.
    pub(crate) fn entry(&self, hash: &BlockHash) -> Option<HeaderEntry> {
        let entry = self.chainman.get_block_tree_entry(&kernel_hash(hash))?;
        let header = decode_header(&entry.header().consensus_encode().ok()?)?;
        let in_active_chain = self.chainman.active_chain().contains(&entry);
        Some(HeaderEntry {
            height: entry.height().max(0) as u32,
            header,
            in_active_chain,
        })
    }

    /// Header of the active-chain block at `height`.
    pub(crate) fn header_at(&self, height: u32) -> Option<Header> {
        let entry = self.chainman.active_chain().at_height(height as usize)?;
        decode_header(&entry.header().consensus_encode().ok()?)
    }

    /// Raw serialized block, active chain or not.
    pub(crate) fn block_bytes(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, ChainError> {
        let Some(entry) = self.chainman.get_block_tree_entry(&kernel_hash(hash)) else {
            return Ok(None);
        };
        match self.chainman.read_block_data(&entry) {
            Ok(block) => Ok(Some(block.consensus_encode()?)),
            // A header-only entry (block data never received) reads as an error.
            Err(_) => Ok(None),
        }
    }

    /// A full block, active chain or not.
    pub(crate) fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
        match self.block_bytes(hash)? {
            Some(bytes) => Ok(Some(deserialize(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The block's undo data: the outputs spent by each non-coinbase transaction.
    pub(crate) fn spent_outputs(
        &self,
        hash: &BlockHash,
    ) -> Result<Option<Vec<Vec<SpentOutput>>>, ChainError> {
        let Some(entry) = self.chainman.get_block_tree_entry(&kernel_hash(hash)) else {
            return Ok(None);
        };
        if entry.height() == 0 {
            return Ok(Some(Vec::new()));
        }
        let undo = match self.chainman.read_spent_outputs(&entry) {
            Ok(undo) => undo,
            // Undo data only exists for blocks that were connected at least once.
            Err(_) => return Ok(None),
        };
        let mut out = Vec::with_capacity(undo.count());
        for t in 0..undo.count() {
            let tx_undo = undo.transaction_spent_outputs(t)?;
            let mut spent = Vec::with_capacity(tx_undo.count());
            for c in 0..tx_undo.count() {
                let coin = tx_undo.coin(c)?;
                let output = coin.output();
                spent.push(SpentOutput {
                    txout: TxOut {
                        value: Amount::from_sat(output.value().max(0) as u64),
                        script_pubkey: ScriptBuf::from_bytes(output.script_pubkey().to_bytes()),
                    },
                    height: coin.confirmation_height(),
                    coinbase: coin.is_coinbase(),
                });
            }
            out.push(spent);
        }
        Ok(Some(out))
    }

    /// Validates a block with Bitcoin Core's rules and, if it has the most work, connects it.
    pub(crate) fn process_block(&self, block: &Block) -> Result<Processed, ChainError> {
        let kblock = bitcoinkernel::Block::new(&serialize(block))?;
        *self.last_rejection.lock().expect("rejection lock") = None;
        Ok(match self.chainman.process_block(&kblock) {
            ProcessBlockResult::NewBlock => Processed::New,
            ProcessBlockResult::Duplicate => Processed::Duplicate,
            ProcessBlockResult::Rejected => {
                let result = self.last_rejection.lock().expect("rejection lock").take();
                Processed::Rejected(
                    result
                        .map(reject_reason)
                        .unwrap_or("consensus-invalid")
                        .to_owned(),
                )
            }
        })
    }
}

fn decode_header(bytes: &[u8]) -> Option<Header> {
    deserialize(bytes).ok()
}

fn path_str(path: &Path) -> Result<String, ChainError> {
    path.to_str().map(str::to_owned).ok_or_else(|| {
        ChainError::Invalid(format!("data directory is not UTF-8: {}", path.display()))
    })
}

/// Context-free consensus checks of a transaction (Core's `CheckTransaction`).
pub(crate) fn check_transaction(tx: &Transaction) -> Result<(), String> {
    let ktx = bitcoinkernel::Transaction::new(&serialize(tx)).map_err(|e| e.to_string())?;
    match ktx.check() {
        TxCheckResult::Valid => Ok(()),
        TxCheckResult::Invalid(result) => Err(format!("{result:?}")),
    }
}

/// Verifies every input script of `tx` against the outputs it spends with the kernel's script
/// interpreter. On failure, returns the index of the first failing input.
pub(crate) fn verify_scripts(
    tx: &Transaction,
    prevouts: &[TxOut],
    flags: u32,
) -> Result<(), ScriptFailure> {
    let ktx = bitcoinkernel::Transaction::new(&serialize(tx)).map_err(|e| ScriptFailure {
        input: 0,
        message: e.to_string(),
    })?;
    let mut spent = Vec::with_capacity(prevouts.len());
    for prevout in prevouts {
        let script =
            bitcoinkernel::ScriptPubkey::new(prevout.script_pubkey.as_bytes()).map_err(|e| {
                ScriptFailure {
                    input: 0,
                    message: e.to_string(),
                }
            })?;
        spent.push(bitcoinkernel::TxOut::new(
            &script,
            prevout.value.to_sat() as i64,
        ));
    }
    let txdata = PrecomputedTransactionData::new(&ktx, &spent).map_err(|e| ScriptFailure {
        input: 0,
        message: e.to_string(),
    })?;
    for (input, prevout) in spent.iter().enumerate() {
        bitcoinkernel::verify(
            &prevout.script_pubkey(),
            Some(prevout.value()),
            &ktx,
            input,
            Some(flags),
            &txdata,
        )
        .map_err(|e| ScriptFailure {
            input,
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// A script that failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScriptFailure {
    /// Index of the failing input.
    pub input: usize,
    /// The kernel's description.
    pub message: String,
}

/// All consensus script flags the kernel knows (P2SH, DERSIG, NULLDUMMY, CLTV, CSV, WITNESS,
/// TAPROOT): the rules every block of a modern regtest chain is held to.
pub(crate) const CONSENSUS_FLAGS: u32 = bitcoinkernel::VERIFY_ALL;
