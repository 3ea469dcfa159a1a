//! Mempool policy: Bitcoin Core's standardness rules and limits, as pure functions.
//!
//! Only rules Core applies by default are here, with Core's reject reasons, so a transaction
//! refused by moip is refused by Core with the same words. Consensus script rules are not: the
//! kernel checks those.

use bitcoin::blockdata::opcodes::all::{OP_CHECKMULTISIG, OP_PUSHNUM_1, OP_PUSHNUM_3};
use bitcoin::script::Instruction;
use bitcoin::{Amount, FeeRate, Script, Transaction};

use crate::TxRejection;

/// Largest standard transaction, in weight units.
pub(crate) const MAX_STANDARD_TX_WEIGHT: u64 = 400_000;
/// Smallest standard non-witness serialization (shorter ones look like 64-byte Merkle nodes).
pub(crate) const MIN_STANDARD_TX_NONWITNESS_SIZE: usize = 65;
/// Largest standard scriptSig.
pub(crate) const MAX_STANDARD_SCRIPTSIG_SIZE: usize = 1650;
/// Largest standard signature-operation cost of one transaction.
pub(crate) const MAX_STANDARD_TX_SIGOPS_COST: u64 = 16_000;
/// Total OP_RETURN payload allowed per transaction (Core 30's `-datacarriersize` default).
pub(crate) const MAX_DATACARRIER_BYTES: usize = 100_000;
/// Lowest fee rate relayed: 1 sat/vB (Core's `-minrelaytxfee`).
pub(crate) const MIN_RELAY_FEE: FeeRate = FeeRate::from_sat_per_kwu(250);
/// Extra fee rate a replacement must pay for its own size (Core's `-incrementalrelayfee`).
pub(crate) const INCREMENTAL_RELAY_FEE: FeeRate = FeeRate::from_sat_per_kwu(250);
/// Default `maxfeerate` of `sendrawtransaction`: 0.10 BTC/kvB.
pub(crate) const DEFAULT_MAX_FEE_RATE: FeeRate = FeeRate::from_sat_per_kwu(2_500_000);
/// At most this many in-mempool ancestors, the transaction included.
pub(crate) const ANCESTOR_LIMIT: u64 = 25;
/// At most this many in-mempool descendants of any ancestor, the transaction included.
pub(crate) const DESCENDANT_LIMIT: u64 = 25;
/// Virtual-size limit of an ancestor or descendant set: 101 kvB.
pub(crate) const PACKAGE_SIZE_LIMIT: u64 = 101_000;
/// BIP125 rule 5: most transactions one replacement may evict.
pub(crate) const MAX_REPLACEMENT_CANDIDATES: usize = 100;
/// Blocks before a coinbase output may be spent.
pub(crate) const COINBASE_MATURITY: u32 = 100;
/// Consensus block weight limit.
pub(crate) const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// Consensus block sigop-cost limit.
pub(crate) const MAX_BLOCK_SIGOPS_COST: u64 = 80_000;

/// The fee `rate` charges for `vsize` vbytes, rounding up like Core's `CFeeRate::GetFee`.
pub(crate) fn fee_for(rate: FeeRate, vsize: u64) -> Amount {
    let sat_per_kvb = rate.to_sat_per_kwu() * 4;
    Amount::from_sat((sat_per_kvb * vsize).div_ceil(1000))
}

/// Whether a script is bare `k-of-n` multisig with n at most 3 (standard as an output).
pub fn is_bare_multisig(script: &Script) -> bool {
    let ops: Vec<_> = script.instructions().collect();
    let Some(Ok(Instruction::Op(last))) = ops.last() else {
        return false;
    };
    if *last != OP_CHECKMULTISIG || ops.len() < 4 {
        return false;
    }
    let small = |i: &Result<Instruction, _>| match i {
        Ok(Instruction::Op(op))
            if (OP_PUSHNUM_1.to_u8()..=OP_PUSHNUM_3.to_u8()).contains(&op.to_u8()) =>
        {
            Some(op.to_u8() - OP_PUSHNUM_1.to_u8() + 1)
        }
        _ => None,
    };
    let (Some(m), Some(n)) = (small(&ops[0]), small(&ops[ops.len() - 2])) else {
        return false;
    };
    let keys = &ops[1..ops.len() - 2];
    m <= n
        && keys.len() == n as usize
        && keys
            .iter()
            .all(|k| matches!(k, Ok(Instruction::PushBytes(b)) if b.len() == 33 || b.len() == 65))
}

/// Whether an output script is one of the standard templates.
pub(crate) fn is_standard_script(script: &Script) -> bool {
    script.is_p2pkh()
        || script.is_p2sh()
        || script.is_witness_program()
        || script.is_p2pk()
        || script.is_op_return()
        || is_bare_multisig(script)
}

/// Core's `IsStandardTx`: version, size, scriptSig shape, output templates, dust, data carrier.
pub(crate) fn check_standard(tx: &Transaction) -> Result<(), TxRejection> {
    if !(1..=3).contains(&tx.version.0) {
        return Err(TxRejection::rejected("version"));
    }
    if tx.weight().to_wu() > MAX_STANDARD_TX_WEIGHT {
        return Err(TxRejection::rejected("tx-size"));
    }
    for input in &tx.input {
        if input.script_sig.len() > MAX_STANDARD_SCRIPTSIG_SIZE {
            return Err(TxRejection::rejected("scriptsig-size"));
        }
        if !input.script_sig.is_push_only() {
            return Err(TxRejection::rejected("scriptsig-not-pushonly"));
        }
    }
    let mut data_bytes = 0usize;
    for output in &tx.output {
        let script = &output.script_pubkey;
        if !is_standard_script(script) {
            return Err(TxRejection::rejected("scriptpubkey"));
        }
        if script.is_op_return() {
            data_bytes += script.len();
        } else if output.value < script.minimal_non_dust() {
            return Err(TxRejection::rejected("dust"));
        }
    }
    if data_bytes > MAX_DATACARRIER_BYTES {
        return Err(TxRejection::rejected("datacarrier"));
    }
    if bitcoin::consensus::serialize(&strip_witness(tx)).len() < MIN_STANDARD_TX_NONWITNESS_SIZE {
        return Err(TxRejection::rejected("tx-size-small"));
    }
    Ok(())
}

fn strip_witness(tx: &Transaction) -> Transaction {
    let mut stripped = tx.clone();
    for input in &mut stripped.input {
        input.witness.clear();
    }
    stripped
}

/// Core's `IsFinalTx` for a block at `height` whose median-time-past is `mtp`.
pub(crate) fn is_final(tx: &Transaction, height: u32, mtp: u32) -> bool {
    let lock = tx.lock_time.to_consensus_u32();
    if lock == 0 {
        return true;
    }
    let threshold = if lock < bitcoin::absolute::LOCK_TIME_THRESHOLD {
        height
    } else {
        mtp
    };
    if lock < threshold {
        return true;
    }
    tx.input
        .iter()
        .all(|i| i.sequence == bitcoin::Sequence::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::hashes::Hash;
    use bitcoin::transaction::Version;
    use bitcoin::{OutPoint, ScriptBuf, Sequence, TxIn, TxOut, WPubkeyHash, Witness};

    fn spend(outputs: Vec<TxOut>) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&[vec![0u8; 72], vec![2u8; 33]]),
            }],
            output: outputs,
        }
    }

    fn p2wpkh(value: u64) -> TxOut {
        TxOut {
            value: Amount::from_sat(value),
            script_pubkey: ScriptBuf::new_p2wpkh(&WPubkeyHash::all_zeros()),
        }
    }

    #[test]
    fn standard_rules_name_core_reasons() {
        let cases: Vec<(&str, Transaction, Option<&str>)> = vec![
            ("plain p2wpkh", spend(vec![p2wpkh(10_000)]), None),
            ("dust p2wpkh", spend(vec![p2wpkh(293)]), Some("dust")),
            ("threshold p2wpkh", spend(vec![p2wpkh(294)]), None),
            (
                "version 4",
                {
                    let mut t = spend(vec![p2wpkh(10_000)]);
                    t.version = Version(4);
                    t
                },
                Some("version"),
            ),
            (
                "nonstandard script",
                spend(vec![TxOut {
                    value: Amount::from_sat(10_000),
                    script_pubkey: ScriptBuf::from_bytes(vec![0x51, 0x51, 0x93]),
                }]),
                Some("scriptpubkey"),
            ),
            (
                "op_return data",
                spend(vec![
                    p2wpkh(10_000),
                    TxOut {
                        value: Amount::ZERO,
                        script_pubkey: ScriptBuf::new_op_return([7u8; 40]),
                    },
                ]),
                None,
            ),
        ];
        for (name, tx, want) in cases {
            let got = check_standard(&tx).err().map(|r| r.reason);
            assert_eq!(got.as_deref(), want, "{name}");
        }
    }

    #[test]
    fn small_transactions_are_refused() {
        let mut tx = spend(vec![TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::new_op_return([]),
        }]);
        tx.input[0].witness.clear();
        assert_eq!(
            check_standard(&tx).err().map(|r| r.reason).as_deref(),
            Some("tx-size-small")
        );
    }

    #[test]
    fn finality_follows_height_and_time() {
        let mut tx = spend(vec![p2wpkh(10_000)]);
        tx.lock_time = LockTime::from_consensus(100);
        tx.input[0].sequence = Sequence::ENABLE_LOCKTIME_NO_RBF;
        assert!(!is_final(&tx, 100, 0));
        assert!(is_final(&tx, 101, 0));
        tx.input[0].sequence = Sequence::MAX;
        assert!(is_final(&tx, 1, 0), "all-final sequences disable the lock");
    }

    #[test]
    fn fees_round_up() {
        assert_eq!(fee_for(MIN_RELAY_FEE, 141), Amount::from_sat(141));
        assert_eq!(
            fee_for(FeeRate::from_sat_per_kwu(251), 1),
            Amount::from_sat(2)
        );
    }
}
