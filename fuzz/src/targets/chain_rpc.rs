//! The embedded node's JSON-RPC request handling without a node: the HTTP body through Core's
//! envelope (`jsonrpc::handle`: batches, versions, notifications), each call through the
//! server's dispatch (`dispatch_to`: the method table's names, parameters and arity), and every
//! argument through the typed reader its handler uses — hashes, integers, amounts, hex
//! transactions and blocks, descriptors. Decoded transactions and blocks are printed as
//! `getrawtransaction`/`getblock` print them.

use std::str::FromStr;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Block, Network};
use moip_chain::rpc::error::RpcError;
use moip_chain::rpc::json::{self, HeaderContext, TxContext};
use moip_chain::rpc::jsonrpc::{self, Call};
use moip_chain::rpc::params::{amount_from_value, parse_hash, Params};
use moip_chain::rpc::{decode_hex, decode_tx, descriptor_script, dispatch_to};
use moip_chain::FeeMode;
use serde_json::Value;

fn print_tx(tx: &bitcoin::Transaction) {
    let ctx = TxContext {
        spent: None,
        prevouts: true,
        hex: true,
    };
    let _ = json::transaction(tx, Network::Regtest, &ctx).to_string();
}

fn print_block(block: &Block) {
    let ctx = HeaderContext {
        height: 1,
        confirmations: 1,
        median_time: block.header.time,
        chainwork: String::new(),
        n_tx: block.txdata.len(),
        next: None,
        difficulty: 1.0,
    };
    for verbosity in [1, 2, 3] {
        let _ = json::block(block, &ctx, verbosity, None, Network::Regtest).to_string();
    }
}

/// Reads one argument as the handler that takes it does.
fn argument(p: &Params, index: usize, name: &str) -> Result<(), RpcError> {
    match name {
        "txid" => {
            p.txid(index, name)?;
        }
        "blockhash" => {
            p.block_hash(index, name)?;
        }
        "height" | "nblocks" | "n" | "conf_target" | "num_blocks" | "maxtries" => {
            p.opt_int(index)?;
        }
        "verbose" | "include_mempool" | "mempool_sequence" | "submit" | "wait" => {
            p.opt_bool(index)?;
        }
        "verbosity|verbose" => match p.get(index) {
            Some(Value::Bool(_)) | None => {}
            Some(_) => {
                p.int(index, "verbosity")?;
            }
        },
        "hexstring" => {
            let hex = p.str(index, name)?;
            let tx = decode_tx(hex)?;
            // Strict hex and canonical serialisation: what decodes re-encodes to the input.
            assert_eq!(serialize_hex(&tx), hex.to_ascii_lowercase(), "tx {hex:?}");
            print_tx(&tx);
        }
        "hexdata" => {
            let hex = p.str(index, name)?;
            if let Some(bytes) = decode_hex(hex) {
                if let Ok(block) = bitcoin::consensus::deserialize::<Block>(&bytes) {
                    print_block(&block);
                }
            }
        }
        "rawtxs" | "package" => {
            for raw in p.array(index, name)?.iter().take(25) {
                if let Some(tx) = raw.as_str().and_then(|h| decode_tx(h).ok()) {
                    print_tx(&tx);
                }
            }
        }
        "transactions" => {
            for raw in p.array(index, name)?.iter().take(25) {
                if let Some(s) = raw.as_str() {
                    let _ = decode_tx(s);
                }
            }
        }
        "maxfeerate" | "maxburnamount" => {
            p.opt_btc(index)?;
        }
        "address" => {
            descriptor_script(&format!("addr({})", p.str(index, name)?))?;
        }
        "descriptor" | "output" => {
            let script = descriptor_script(p.str(index, name)?)?;
            let _ = json::script_pubkey(&script, Network::Regtest);
            let _ = json::script_asm(&script, true);
        }
        "estimate_mode" => {
            if let Some(mode) = p.opt_str(index)? {
                let _ = FeeMode::from_str(mode);
            }
        }
        "outputs" => {
            for o in p.array(index, name)? {
                if let Some(txid) = o.get("txid").and_then(Value::as_str) {
                    let _ = parse_hash::<bitcoin::Txid>(txid, "txid");
                }
            }
        }
        "options" => {
            p.opt_object(index)?;
        }
        _ => {
            let _ = p.opt_str(index);
        }
    }
    Ok(())
}

/// A call through the server's own dispatch (`rpc::dispatch_to`: the method table, named or
/// positional parameters, arity), with the handler replaced by the argument readers.
fn exec(call: &Call) -> Result<Value, RpcError> {
    dispatch_to(call, |method, params| {
        for (index, name) in method.args.iter().enumerate() {
            argument(params, index, name)?;
        }
        Ok(Value::Null)
    })
}

/// One input of the `chain_rpc` target.
pub fn chain_rpc(data: &[u8]) {
    let reply = jsonrpc::handle(data, exec);
    assert!(
        matches!(reply.status, 200 | 204 | 400 | 404 | 500),
        "{reply:?}"
    );
    if let Some(body) = reply.body {
        let _ = body.to_string();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(bytes) = decode_hex(text) {
            let back: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(back, text.to_ascii_lowercase(), "hex {text:?}");
        }
        let _ = parse_hash::<bitcoin::BlockHash>(text, "blockhash");
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            if let Ok(amount) = amount_from_value(&v) {
                assert!(amount <= bitcoin::Amount::MAX_MONEY);
            }
        }
    }
    // Raw bytes as a serialised transaction and block, as `decode_tx` and `submitblock` read them.
    if let Ok(tx) = bitcoin::consensus::deserialize::<bitcoin::Transaction>(data) {
        print_tx(&tx);
    }
    if let Ok(block) = bitcoin::consensus::deserialize::<Block>(data) {
        print_block(&block);
    }
}
