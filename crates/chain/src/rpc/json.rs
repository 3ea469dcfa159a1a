//! Bitcoin Core's JSON renderings of scripts, transactions, headers and blocks
//! (`core_write.cpp`, `rpc/blockchain.cpp`), field for field.

use bitcoin::blockdata::opcodes::Class;
use bitcoin::hashes::Hash;
use bitcoin::script::Instruction;
use bitcoin::{Address, Amount, Block, Network, Script, Transaction};
use serde_json::{json, Value};

use super::jsonrpc::object;
use crate::SpentOutput;

/// An amount as Core's `ValueFromAmount`: a number of BTC.
pub fn btc(amount: Amount) -> Value {
    json!(amount.to_btc())
}

/// A fee rate as BTC per kvB, the unit of Core's fee RPCs.
pub fn btc_per_kvb(rate: bitcoin::FeeRate) -> Value {
    json!((rate.to_sat_per_kwu() * 4) as f64 / 1e8)
}

fn script_num(bytes: &[u8]) -> i64 {
    let Some((&last, _)) = bytes.split_last() else {
        return 0;
    };
    let mut value: i64 = 0;
    for (i, b) in bytes.iter().enumerate() {
        value |= i64::from(*b) << (8 * i);
    }
    if last & 0x80 != 0 {
        -(value & !(0x80i64 << (8 * (bytes.len() - 1))))
    } else {
        value
    }
}

fn sighash_suffix(bytes: &[u8]) -> Option<String> {
    let sig = bitcoin::ecdsa::Signature::from_slice(bytes).ok()?;
    let name = match sig.sighash_type.to_u32() {
        0x01 => "ALL",
        0x81 => "ALL|ANYONECANPAY",
        0x02 => "NONE",
        0x82 => "NONE|ANYONECANPAY",
        0x03 => "SINGLE",
        0x83 => "SINGLE|ANYONECANPAY",
        _ => return None,
    };
    Some(format!("{}[{name}]", hex(&bytes[..bytes.len() - 1])))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Core's `ScriptToAsmStr`: small pushes as numbers, opcodes by name, optionally signatures
/// with their sighash type.
pub fn script_asm(script: &Script, decode_sighash: bool) -> String {
    let mut parts = Vec::new();
    for ins in script.instructions() {
        match ins {
            Ok(Instruction::PushBytes(push)) => {
                let b = push.as_bytes();
                if b.len() <= 4 {
                    parts.push(script_num(b).to_string());
                } else if decode_sighash && !script.is_op_return() {
                    parts.push(sighash_suffix(b).unwrap_or_else(|| hex(b)));
                } else {
                    parts.push(hex(b));
                }
            }
            Ok(Instruction::Op(op)) => parts.push(
                match op.classify(bitcoin::blockdata::opcodes::ClassifyContext::Legacy) {
                    Class::PushNum(n) => n.to_string(),
                    _ => op.to_string(),
                },
            ),
            Err(_) => {
                parts.push("[error]".into());
                break;
            }
        }
    }
    parts.join(" ")
}

/// Core's output type names (`GetTxnOutputType`).
pub fn script_type(script: &Script) -> &'static str {
    if script.is_p2pkh() {
        "pubkeyhash"
    } else if script.is_p2sh() {
        "scripthash"
    } else if script.is_p2wpkh() {
        "witness_v0_keyhash"
    } else if script.is_p2wsh() {
        "witness_v0_scripthash"
    } else if script.is_p2tr() {
        "witness_v1_taproot"
    } else if script.as_bytes() == [0x51, 0x02, 0x4e, 0x73] {
        "anchor"
    } else if script.is_witness_program() {
        "witness_unknown"
    } else if script.is_p2pk() {
        "pubkey"
    } else if script.is_op_return() {
        "nulldata"
    } else if crate::embedded::is_bare_multisig(script) {
        "multisig"
    } else {
        "nonstandard"
    }
}

fn with_checksum(desc: String) -> String {
    match miniscript::descriptor::checksum::desc_checksum(&desc) {
        Ok(sum) => format!("{desc}#{sum}"),
        Err(_) => desc,
    }
}

/// Core's `InferDescriptor` without key information: `addr()`, `pk()`, `multi()` or `raw()`.
pub fn script_descriptor(script: &Script, network: Network) -> String {
    let desc = if let Ok(address) = Address::from_script(script, network) {
        format!("addr({address})")
    } else if let Some(pk) = script.p2pk_public_key() {
        format!("pk({pk})")
    } else if script_type(script) == "multisig" {
        let ins: Vec<_> = script.instructions().flatten().collect();
        let k = match ins.first() {
            Some(Instruction::Op(op)) => {
                match op.classify(bitcoin::blockdata::opcodes::ClassifyContext::Legacy) {
                    Class::PushNum(n) => n,
                    _ => 0,
                }
            }
            _ => 0,
        };
        let keys: Vec<String> = ins
            .iter()
            .filter_map(|i| match i {
                Instruction::PushBytes(b) => Some(hex(b.as_bytes())),
                _ => None,
            })
            .collect();
        format!("multi({k},{})", keys.join(","))
    } else {
        format!("raw({})", hex(script.as_bytes()))
    };
    with_checksum(desc)
}

/// Core's `ScriptToUniv` with hex and address: asm, desc, hex, address (when there is one), type.
pub fn script_pubkey(script: &Script, network: Network) -> Value {
    let mut pairs = vec![
        ("asm", json!(script_asm(script, false))),
        ("desc", json!(script_descriptor(script, network))),
        ("hex", json!(hex(script.as_bytes()))),
    ];
    if let Ok(address) = Address::from_script(script, network) {
        pairs.push(("address", json!(address.to_string())));
    }
    pairs.push(("type", json!(script_type(script))));
    object(pairs)
}

/// How much of a transaction's context to print.
pub struct TxContext<'a> {
    /// Outputs spent, in input order (enables `fee` and, with `prevouts`, `prevout`).
    pub spent: Option<&'a [SpentOutput]>,
    /// Print each input's `prevout` (verbosity 3 of `getblock`, 2 of `getrawtransaction`).
    pub prevouts: bool,
    /// Print the raw `hex` at the end.
    pub hex: bool,
}

/// Core's `TxToUniv`.
pub fn transaction(tx: &Transaction, network: Network, ctx: &TxContext<'_>) -> Value {
    let vin: Vec<Value> = tx
        .input
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let mut pairs = Vec::new();
            if tx.is_coinbase() {
                pairs.push(("coinbase", json!(hex(input.script_sig.as_bytes()))));
            } else {
                pairs.push(("txid", json!(input.previous_output.txid.to_string())));
                pairs.push(("vout", json!(input.previous_output.vout)));
                pairs.push((
                    "scriptSig",
                    object(vec![
                        ("asm", json!(script_asm(&input.script_sig, true))),
                        ("hex", json!(hex(input.script_sig.as_bytes()))),
                    ]),
                ));
            }
            if !input.witness.is_empty() {
                pairs.push((
                    "txinwitness",
                    json!(input.witness.iter().map(hex).collect::<Vec<_>>()),
                ));
            }
            if ctx.prevouts && !tx.is_coinbase() {
                if let Some(spent) = ctx.spent.and_then(|s| s.get(i)) {
                    pairs.push(("prevout", prevout(spent, network)));
                }
            }
            pairs.push(("sequence", json!(input.sequence.to_consensus_u32())));
            object(pairs)
        })
        .collect();
    let vout: Vec<Value> = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, out)| {
            object(vec![
                ("value", btc(out.value)),
                ("n", json!(n)),
                ("scriptPubKey", script_pubkey(&out.script_pubkey, network)),
            ])
        })
        .collect();
    let mut pairs = vec![
        ("txid", json!(tx.compute_txid().to_string())),
        ("hash", json!(tx.compute_wtxid().to_string())),
        ("version", json!(tx.version.0)),
        ("size", json!(tx.total_size())),
        ("vsize", json!(tx.vsize())),
        ("weight", json!(tx.weight().to_wu())),
        ("locktime", json!(tx.lock_time.to_consensus_u32())),
        ("vin", Value::Array(vin)),
        ("vout", Value::Array(vout)),
    ];
    if let Some(spent) = ctx.spent {
        if !tx.is_coinbase() && spent.len() == tx.input.len() {
            let value_in: Amount = spent.iter().map(|s| s.txout.value).sum();
            let value_out: Amount = tx.output.iter().map(|o| o.value).sum();
            if let Some(fee) = value_in.checked_sub(value_out) {
                pairs.push(("fee", btc(fee)));
            }
        }
    }
    if ctx.hex {
        pairs.push(("hex", json!(hex(&bitcoin::consensus::serialize(tx)))));
    }
    object(pairs)
}

fn prevout(spent: &SpentOutput, network: Network) -> Value {
    object(vec![
        ("generated", json!(spent.coinbase)),
        ("height", json!(spent.height)),
        ("value", btc(spent.txout.value)),
        (
            "scriptPubKey",
            script_pubkey(&spent.txout.script_pubkey, network),
        ),
    ])
}

/// What a header needs from the chain to be printed.
pub struct HeaderContext {
    /// Height of the block.
    pub height: u32,
    /// Confirmations (-1 for a block off the active chain).
    pub confirmations: i64,
    /// Median-time-past at the block.
    pub median_time: u32,
    /// Chain work up to the block, 64 hex digits.
    pub chainwork: String,
    /// Number of transactions.
    pub n_tx: usize,
    /// Active-chain successor.
    pub next: Option<bitcoin::BlockHash>,
    /// Core's difficulty figure.
    pub difficulty: f64,
}

/// Core's `blockheaderToJSON`.
pub fn header(h: &bitcoin::block::Header, ctx: &HeaderContext) -> Vec<(&'static str, Value)> {
    let mut pairs = vec![
        ("hash", json!(h.block_hash().to_string())),
        ("confirmations", json!(ctx.confirmations)),
        ("height", json!(ctx.height)),
        ("version", json!(h.version.to_consensus())),
        (
            "versionHex",
            json!(format!("{:08x}", h.version.to_consensus())),
        ),
        ("merkleroot", json!(h.merkle_root.to_string())),
        ("time", json!(h.time)),
        ("mediantime", json!(ctx.median_time)),
        ("nonce", json!(h.nonce)),
        ("bits", json!(format!("{:08x}", h.bits.to_consensus()))),
        ("target", json!(hex(&h.target().to_be_bytes()))),
        ("difficulty", json!(ctx.difficulty)),
        ("chainwork", json!(ctx.chainwork)),
        ("nTx", json!(ctx.n_tx)),
    ];
    if h.prev_blockhash != bitcoin::BlockHash::all_zeros() {
        pairs.push(("previousblockhash", json!(h.prev_blockhash.to_string())));
    }
    if let Some(next) = ctx.next {
        pairs.push(("nextblockhash", json!(next.to_string())));
    }
    pairs
}

/// Core's `blockToJSON` for verbosity 1 (txids), 2 (transactions with fees) and 3 (with prevouts).
pub fn block(
    block: &Block,
    ctx: &HeaderContext,
    verbosity: u8,
    spent: Option<&[Vec<SpentOutput>]>,
    network: Network,
) -> Value {
    let mut pairs = header(&block.header, ctx);
    let stripped = block.txdata.iter().map(|t| t.base_size()).sum::<usize>()
        + 80
        + bitcoin::VarInt(block.txdata.len() as u64).size();
    pairs.push(("strippedsize", json!(stripped)));
    pairs.push(("size", json!(block.total_size())));
    pairs.push(("weight", json!(block.weight().to_wu())));
    let txs: Vec<Value> = block
        .txdata
        .iter()
        .enumerate()
        .map(|(i, tx)| {
            if verbosity <= 1 {
                json!(tx.compute_txid().to_string())
            } else {
                let tx_spent = if i == 0 {
                    None
                } else {
                    spent.and_then(|s| s.get(i - 1)).map(Vec::as_slice)
                };
                transaction(
                    tx,
                    network,
                    &TxContext {
                        spent: tx_spent,
                        prevouts: verbosity >= 3,
                        hex: true,
                    },
                )
            }
        })
        .collect();
    pairs.push(("tx", Value::Array(txs)));
    object(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::ScriptBuf;

    #[test]
    fn asm_matches_core() {
        let p2wpkh =
            ScriptBuf::from_hex("0014751e76e8199196d454941c45d1b3a323f1433bd6").expect("hex");
        assert_eq!(
            script_asm(&p2wpkh, false),
            "0 751e76e8199196d454941c45d1b3a323f1433bd6"
        );
        let p2pkh =
            ScriptBuf::from_hex("76a914751e76e8199196d454941c45d1b3a323f1433bd688ac").expect("hex");
        assert_eq!(
            script_asm(&p2pkh, false),
            "OP_DUP OP_HASH160 751e76e8199196d454941c45d1b3a323f1433bd6 OP_EQUALVERIFY OP_CHECKSIG"
        );
        // A BIP34 height push of 3 bytes reads as a number, as in Core.
        let coinbase_sig = ScriptBuf::from_hex("03c8000000").expect("hex");
        assert_eq!(script_asm(&coinbase_sig, false), "200 0");
        assert_eq!(script_num(&[0x81]), -1);
    }

    #[test]
    fn descriptors_carry_checksums() {
        let p2wpkh =
            ScriptBuf::from_hex("0014751e76e8199196d454941c45d1b3a323f1433bd6").expect("hex");
        let desc = script_descriptor(&p2wpkh, Network::Bitcoin);
        assert_eq!(
            desc,
            "addr(bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4)#uyjndxcw"
        );
        let op_return = ScriptBuf::from_hex("6a0401020304").expect("hex");
        assert!(script_descriptor(&op_return, Network::Regtest).starts_with("raw(6a0401020304)#"));
        assert_eq!(script_type(&op_return), "nulldata");
    }
}
