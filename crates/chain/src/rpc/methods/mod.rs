//! The method table: each RPC with its argument names, how many are required, and its handler.

mod blockchain;
mod control;
mod mempool;
mod mining;
mod rawtx;

use serde_json::Value;

pub(crate) use blockchain::{block_json, chain_info_json, header_context};
pub(crate) use mempool::{mempool_info_json, mempool_txids_json, verbose_mempool};
pub use mining::descriptor_script;
pub use rawtx::{decode_hex, decode_tx};

use super::error::{RpcError, METHOD_NOT_FOUND};
use super::jsonrpc::Call;
use super::params::Params;
use super::RpcContext;

type Handler = fn(&RpcContext, &Params) -> Result<Value, RpcError>;

/// One RPC method.
pub struct Method {
    /// Its name.
    pub name: &'static str,
    /// Argument names in order (`a|b` accepts either name).
    pub args: &'static [&'static str],
    /// How many leading arguments are required.
    pub required: usize,
    handler: Handler,
}

const fn m(
    name: &'static str,
    args: &'static [&'static str],
    required: usize,
    handler: Handler,
) -> Method {
    Method {
        name,
        args,
        required,
        handler,
    }
}

/// Every method the embedded node serves, as documented in `docs/embedded-node.md`.
pub static METHODS: &[Method] = &[
    m("getblockchaininfo", &[], 0, blockchain::getblockchaininfo),
    m("getblockcount", &[], 0, blockchain::getblockcount),
    m("getbestblockhash", &[], 0, blockchain::getbestblockhash),
    m("getblockhash", &["height"], 1, blockchain::getblockhash),
    m(
        "getblockheader",
        &["blockhash", "verbose"],
        1,
        blockchain::getblockheader,
    ),
    m(
        "getblock",
        &["blockhash", "verbosity|verbose"],
        1,
        blockchain::getblock,
    ),
    m(
        "getdeploymentinfo",
        &["blockhash"],
        0,
        blockchain::getdeploymentinfo,
    ),
    m("getindexinfo", &["index_name"], 0, blockchain::getindexinfo),
    m(
        "getrawtransaction",
        &["txid", "verbosity|verbose", "blockhash"],
        1,
        rawtx::getrawtransaction,
    ),
    m(
        "sendrawtransaction",
        &["hexstring", "maxfeerate", "maxburnamount"],
        1,
        rawtx::sendrawtransaction,
    ),
    m(
        "testmempoolaccept",
        &["rawtxs", "maxfeerate"],
        1,
        rawtx::testmempoolaccept,
    ),
    m(
        "submitpackage",
        &["package", "maxfeerate", "maxburnamount"],
        1,
        rawtx::submitpackage,
    ),
    m(
        "getrawmempool",
        &["verbose", "mempool_sequence"],
        0,
        mempool::getrawmempool,
    ),
    m("getmempoolentry", &["txid"], 1, mempool::getmempoolentry),
    m("getmempoolinfo", &[], 0, mempool::getmempoolinfo),
    m(
        "gettxout",
        &["txid", "n", "include_mempool"],
        2,
        mempool::gettxout,
    ),
    m(
        "gettxspendingprevout",
        &["outputs", "options"],
        1,
        mempool::gettxspendingprevout,
    ),
    m(
        "estimatesmartfee",
        &["conf_target", "estimate_mode"],
        1,
        mining::estimatesmartfee,
    ),
    m("submitblock", &["hexdata", "dummy"], 1, mining::submitblock),
    m(
        "generatetoaddress",
        &["nblocks", "address", "maxtries"],
        2,
        mining::generatetoaddress,
    ),
    m(
        "generatetodescriptor",
        &["num_blocks", "descriptor", "maxtries"],
        2,
        mining::generatetodescriptor,
    ),
    m(
        "generateblock",
        &["output", "transactions", "submit"],
        2,
        mining::generateblock,
    ),
    m(
        "invalidateblock",
        &["blockhash"],
        1,
        control::invalidateblock,
    ),
    m(
        "reconsiderblock",
        &["blockhash"],
        1,
        control::reconsiderblock,
    ),
    m("getnetworkinfo", &[], 0, control::getnetworkinfo),
    m("uptime", &[], 0, control::uptime),
    m("stop", &["wait"], 0, control::stop),
];

/// Runs one call against the node. Blocking: call it off the async runtime.
pub fn dispatch(ctx: &RpcContext, call: &Call) -> Result<Value, RpcError> {
    dispatch_to(call, |method, params| (method.handler)(ctx, params))
}

/// [`dispatch`] with `run` in place of the method's handler: the method looked up in
/// [`METHODS`], its parameters read by name or position and counted, then `run`. For the fuzz
/// targets (`fuzz/`), which have no node for the handlers.
#[doc(hidden)]
pub fn dispatch_to(
    call: &Call,
    run: impl FnOnce(&Method, &Params) -> Result<Value, RpcError>,
) -> Result<Value, RpcError> {
    let method = METHODS
        .iter()
        .find(|m| m.name == call.method)
        .ok_or_else(|| RpcError::new(METHOD_NOT_FOUND, "Method not found"))?;
    let params = match &call.params {
        Value::Object(map) => Params::named(map.clone(), method.args)?,
        Value::Array(list) => Params::positional(list.clone()),
        _ => Params::default(),
    };
    params.expect_count(method.name, method.required, method.args)?;
    run(method, &params)
}
