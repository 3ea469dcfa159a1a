//! What one block adds to the index, computed from the block and its undo data alone (pure, so
//! blocks are turned into rows on several threads and written in order by one).
//!
//! Rows, by column family:
//! - `tx`:      txnum(5) → txid(32)
//! - `txid`:    txid[..8] ‖ txnum(5) → ()            (txid → txnum, prefix verified against `tx`)
//! - `history`: scripthash(32) ‖ txnum(5) → ()       (every transaction touching a script)
//! - `utxo`:    scripthash(32) ‖ txid(32) ‖ vout(4) → value(8) ‖ height(4)
//!
//! Storing the position of each transaction (not just the block) is what lets history, balance
//! and listunspent be answered without re-reading blocks.

use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, OutPoint, Txid};
use moip_chain::SpentOutput;

use crate::types::{ScriptHash, TxNum};

/// Length of the `txid` column family's prefix key.
pub const TXID_PREFIX: usize = 8;

/// An unspent output as the `utxo` column family keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UtxoKey {
    pub scripthash: ScriptHash,
    pub outpoint: OutPoint,
}

impl UtxoKey {
    pub const LEN: usize = 68;

    pub fn to_bytes(&self) -> [u8; 68] {
        let mut k = [0u8; 68];
        k[..32].copy_from_slice(&self.scripthash.0);
        k[32..64].copy_from_slice(self.outpoint.txid.as_byte_array());
        k[64..].copy_from_slice(&self.outpoint.vout.to_be_bytes());
        k
    }

    pub fn from_bytes(k: &[u8]) -> Option<UtxoKey> {
        if k.len() != Self::LEN {
            return None;
        }
        Some(UtxoKey {
            scripthash: ScriptHash(k[..32].try_into().ok()?),
            outpoint: OutPoint {
                txid: Txid::from_slice(&k[32..64]).ok()?,
                vout: u32::from_be_bytes(k[64..].try_into().ok()?),
            },
        })
    }
}

/// Value and confirmation height of an unspent output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtxoValue {
    pub value: u64,
    pub height: u32,
}

impl UtxoValue {
    pub fn to_bytes(self) -> [u8; 12] {
        let mut v = [0u8; 12];
        v[..8].copy_from_slice(&self.value.to_le_bytes());
        v[8..].copy_from_slice(&self.height.to_le_bytes());
        v
    }

    pub fn from_bytes(v: &[u8]) -> Option<UtxoValue> {
        Some(UtxoValue {
            value: u64::from_le_bytes(v.get(..8)?.try_into().ok()?),
            height: u32::from_le_bytes(v.get(8..12)?.try_into().ok()?),
        })
    }
}

pub fn history_key(sh: &ScriptHash, txnum: TxNum) -> [u8; 37] {
    let mut k = [0u8; 37];
    k[..32].copy_from_slice(&sh.0);
    k[32..].copy_from_slice(&txnum.to_bytes());
    k
}

pub fn txid_key(txid: &Txid, txnum: TxNum) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[..TXID_PREFIX].copy_from_slice(&txid.as_byte_array()[..TXID_PREFIX]);
    k[TXID_PREFIX..].copy_from_slice(&txnum.to_bytes());
    k
}

/// Everything a block contributes, with transactions numbered from 0 within the block.
#[derive(Debug, Clone)]
pub struct BlockRows {
    pub height: u32,
    pub hash: BlockHash,
    pub header: [u8; 80],
    pub txids: Vec<Txid>,
    /// (scripthash, index of the transaction in the block), one per pair.
    pub history: Vec<(ScriptHash, u32)>,
    /// Outputs created (OP_RETURN and other unspendable ones skipped, as ElectrumX does).
    pub created: Vec<(UtxoKey, UtxoValue)>,
    /// Outputs spent: the key they had in `utxo`, and their value (for undo).
    pub spent: Vec<(UtxoKey, UtxoValue)>,
}

/// The error when the undo data does not match the block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undo data of block {0} does not match its transactions")]
pub struct UndoMismatch(pub BlockHash);

impl BlockRows {
    /// Turns a block and the outputs it spent into index rows.
    pub fn compute(
        height: u32,
        block: &Block,
        spent: &[Vec<SpentOutput>],
    ) -> Result<BlockRows, UndoMismatch> {
        let hash = block.block_hash();
        let mut rows = BlockRows {
            height,
            hash,
            header: bitcoin::consensus::serialize(&block.header)
                .try_into()
                .expect("a header is 80 bytes"),
            txids: Vec::new(),
            history: Vec::new(),
            created: Vec::new(),
            spent: Vec::new(),
        };
        // The genesis coinbase is not spendable and not indexed (as in every Electrum server).
        if height == 0 {
            return Ok(rows);
        }
        if spent.len() + 1 != block.txdata.len() {
            return Err(UndoMismatch(hash));
        }
        rows.txids.reserve(block.txdata.len());
        for (i, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            rows.txids.push(txid);
            let first = rows.history.len();
            let touch = |rows: &mut BlockRows, sh: ScriptHash| {
                if !rows.history[first..].iter().any(|(h, _)| *h == sh) {
                    rows.history.push((sh, i as u32));
                }
            };
            if i > 0 {
                let coins = &spent[i - 1];
                if coins.len() != tx.input.len() {
                    return Err(UndoMismatch(hash));
                }
                for (input, coin) in tx.input.iter().zip(coins) {
                    let sh = ScriptHash::of(&coin.txout.script_pubkey);
                    touch(&mut rows, sh);
                    let key = UtxoKey {
                        scripthash: sh,
                        outpoint: input.previous_output,
                    };
                    rows.spent.push((
                        key,
                        UtxoValue {
                            value: coin.txout.value.to_sat(),
                            height: coin.height,
                        },
                    ));
                }
            }
            for (vout, out) in tx.output.iter().enumerate() {
                if out.script_pubkey.is_op_return() {
                    continue;
                }
                let sh = ScriptHash::of(&out.script_pubkey);
                touch(&mut rows, sh);
                let key = UtxoKey {
                    scripthash: sh,
                    outpoint: OutPoint {
                        txid,
                        vout: vout as u32,
                    },
                };
                rows.created.push((
                    key,
                    UtxoValue {
                        value: out.value.to_sat(),
                        height,
                    },
                ));
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{Amount, ScriptBuf, TxOut};

    #[test]
    fn keys_round_trip() {
        let key = UtxoKey {
            scripthash: ScriptHash([3; 32]),
            outpoint: OutPoint {
                txid: Txid::from_byte_array([4; 32]),
                vout: 7,
            },
        };
        assert_eq!(UtxoKey::from_bytes(&key.to_bytes()), Some(key));
        let v = UtxoValue {
            value: 5,
            height: 9,
        };
        assert_eq!(UtxoValue::from_bytes(&v.to_bytes()), Some(v));
        assert_eq!(UtxoKey::from_bytes(&[0; 10]), None);
    }

    #[test]
    fn rows_follow_spends_and_skip_op_return() {
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        let script = ScriptBuf::from_bytes(vec![0x51]);
        let mut block = genesis.clone();
        let mut cb = block.txdata[0].clone();
        cb.output = vec![
            TxOut {
                value: Amount::from_sat(10),
                script_pubkey: script.clone(),
            },
            TxOut {
                value: Amount::ZERO,
                script_pubkey: ScriptBuf::new_op_return([1]),
            },
        ];
        let mut spend = cb.clone();
        spend.input[0].previous_output = OutPoint {
            txid: Txid::from_byte_array([9; 32]),
            vout: 1,
        };
        block.txdata = vec![cb, spend];
        let coin = SpentOutput {
            txout: TxOut {
                value: Amount::from_sat(3),
                script_pubkey: script.clone(),
            },
            height: 5,
            coinbase: false,
        };
        let rows = BlockRows::compute(7, &block, &[vec![coin]]).expect("rows");
        let sh = ScriptHash::of(&script);
        assert_eq!(
            rows.history,
            vec![(sh, 0), (sh, 1)],
            "one history row per transaction and script"
        );
        assert_eq!(rows.created.len(), 2, "OP_RETURN outputs are not indexed");
        assert_eq!(
            rows.spent[0].1,
            UtxoValue {
                value: 3,
                height: 5
            }
        );
        assert!(BlockRows::compute(7, &block, &[]).is_err());
    }
}
