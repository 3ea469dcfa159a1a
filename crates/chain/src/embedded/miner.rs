//! Block assembly for regtest: coinbase with the BIP34 height, witness commitment, Merkle root
//! and proof-of-work grinding. Pure functions over rust-bitcoin types.

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::hashes::Hash;
use bitcoin::script::Builder;
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Amount, Block, BlockHash, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxMerkleNode, TxOut, Witness,
};

/// Regtest's proof-of-work limit, the `bits` of every regtest block.
pub(crate) const REGTEST_BITS_U32: u32 = 0x207f_ffff;

/// Regtest's proof-of-work limit as a compact target.
pub(crate) fn regtest_bits() -> CompactTarget {
    CompactTarget::from_consensus(REGTEST_BITS_U32)
}

/// Regtest halves the subsidy every 150 blocks.
const HALVING_INTERVAL: u32 = 150;

/// The block subsidy at `height` on regtest.
pub(crate) fn subsidy(height: u32) -> Amount {
    let halvings = height / HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat((50 * 100_000_000u64) >> halvings)
}

/// The coinbase of a block at `height` paying `value` to `script_pubkey`. It always carries the
/// witness reserved value, as Core's miner does, so the commitment can be added afterwards.
/// `extra_nonce` keeps two blocks mined on the same parent in the same second apart (a block
/// identical to an invalidated one would be refused as `duplicate-invalid`).
pub(crate) fn coinbase(
    height: u32,
    extra_nonce: u32,
    script_pubkey: ScriptBuf,
    value: Amount,
) -> Transaction {
    // BIP34 height push, then the extra nonce: the scriptSig is never shorter than two bytes.
    let script_sig = Builder::new()
        .push_int(i64::from(height))
        .push_int(i64::from(extra_nonce))
        .into_script();
    Transaction {
        version: Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[[0u8; 32]]),
        }],
        output: vec![TxOut {
            value,
            script_pubkey,
        }],
    }
}

/// Assembles a block on `prev` from a coinbase and transactions, adds the BIP141 witness
/// commitment and grinds the nonce until the header meets regtest's target.
pub(crate) fn assemble(
    prev: BlockHash,
    time: u32,
    mut coinbase: Transaction,
    txs: Vec<Transaction>,
) -> Block {
    let mut txdata = Vec::with_capacity(txs.len() + 1);
    txdata.push(coinbase.clone());
    txdata.extend(txs);
    let mut block = Block {
        header: Header {
            version: BlockVersion::from_consensus(0x2000_0000),
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::all_zeros(),
            time,
            bits: regtest_bits(),
            nonce: 0,
        },
        txdata,
    };
    let witness_root = block
        .witness_root()
        .expect("a block with a coinbase has a witness root");
    let commitment = Block::compute_witness_commitment(&witness_root, &[0u8; 32]);
    let mut script = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    script.extend_from_slice(commitment.as_byte_array());
    coinbase.output.push(TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::from_bytes(script),
    });
    block.txdata[0] = coinbase;
    block.header.merkle_root = block
        .compute_merkle_root()
        .expect("a block with a coinbase has a merkle root");
    grind(&mut block.header);
    block
}

/// Whether the coinbase starts with the BIP34 push of `height`, encoded as Core encodes it
/// (`OP_1`..`OP_16` for heights 1 to 16, which rust-bitcoin's own BIP34 reader refuses).
pub(crate) fn has_bip34_height(block: &Block, height: u32) -> bool {
    let expect = Builder::new().push_int(i64::from(height)).into_script();
    block
        .txdata
        .first()
        .and_then(|cb| cb.input.first())
        .is_some_and(|i| i.script_sig.as_bytes().starts_with(expect.as_bytes()))
}

/// Searches nonces (and, if they run out, timestamps) until the header's hash meets its target.
pub(crate) fn grind(header: &mut Header) {
    let target = header.target();
    loop {
        if header.validate_pow(target).is_ok() {
            return;
        }
        header.nonce = header.nonce.wrapping_add(1);
        if header.nonce == 0 {
            header.time += 1;
        }
    }
}

/// Core's `GetDifficulty` for a compact target, relative to the mainnet minimum difficulty.
pub(crate) fn difficulty(bits: CompactTarget) -> f64 {
    let bits = bits.to_consensus();
    let mut shift = (bits >> 24) & 0xff;
    let mut diff = f64::from(0x0000_ffff) / f64::from(bits & 0x00ff_ffff);
    while shift < 29 {
        diff *= 256.0;
        shift += 1;
    }
    while shift > 29 {
        diff /= 256.0;
        shift -= 1;
    }
    diff
}

/// Total work of a chain of `height + 1` regtest blocks, as Core prints `chainwork`. Regtest does
/// not retarget, so every block carries the same work.
pub(crate) fn chainwork_hex(height: u32) -> String {
    let per_block = bitcoin::Target::from_compact(regtest_bits()).to_work();
    let bytes = per_block.to_be_bytes();
    // Regtest work per block fits in the low 16 bytes; so does any realistic multiple.
    let low = u128::from_be_bytes(bytes[16..].try_into().expect("16 bytes"));
    format!("{:064x}", low * (u128::from(height) + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::constants::genesis_block;
    use bitcoin::Network;

    #[test]
    fn subsidy_halves_every_150_blocks() {
        assert_eq!(subsidy(0), Amount::from_btc(50.0).expect("valid"));
        assert_eq!(subsidy(149), Amount::from_btc(50.0).expect("valid"));
        assert_eq!(subsidy(150), Amount::from_btc(25.0).expect("valid"));
        assert_eq!(subsidy(150 * 64), Amount::ZERO);
    }

    #[test]
    fn assembled_blocks_are_well_formed() {
        let genesis = genesis_block(Network::Regtest);
        let cb = coinbase(1, 0, ScriptBuf::new_op_return([]), subsidy(1));
        let block = assemble(genesis.block_hash(), genesis.header.time + 1, cb, vec![]);
        assert!(block.check_merkle_root());
        assert!(block.check_witness_commitment());
        assert!(has_bip34_height(&block, 1));
        assert!(!has_bip34_height(&block, 2));
        assert!(block.header.validate_pow(block.header.target()).is_ok());
    }

    #[test]
    fn difficulty_and_work_match_core_on_regtest() {
        assert!((difficulty(regtest_bits()) - 4.656542373906925e-10).abs() < 1e-20);
        assert_eq!(&chainwork_hex(0)[60..], "0002");
        assert_eq!(&chainwork_hex(200)[60..], "0192");
    }
}
