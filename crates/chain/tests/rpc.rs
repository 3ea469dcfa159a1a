//! The bitcoind-compatible RPC and REST interface over HTTP: result shapes field by field against
//! Bitcoin Core's documented output, error codes, auth, batches and bad input.

mod common;

use std::collections::BTreeSet;

use base64::Engine as _;
use bitcoin::consensus::encode::serialize_hex;
use common::{coinbase_output, out, spend, Key, Kind, TestNode};
use moip_chain::rpc::RpcServer;
use serde_json::{json, Value};

struct Rpc {
    url: String,
    auth: String,
    agent: ureq::Agent,
    _server: RpcServer,
    _rt: tokio::runtime::Runtime,
}

impl Rpc {
    fn start(t: &TestNode) -> Rpc {
        let (rt, server) = common::start_rpc(&t.node);
        let cookie =
            std::fs::read_to_string(server.cookie_path().expect("cookie auth")).expect("cookie");
        assert!(cookie.starts_with("__cookie__:"));
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(cookie.trim())
        );
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Rpc {
            url: server.url(),
            auth,
            agent,
            _server: server,
            _rt: rt,
        }
    }

    fn post(&self, body: &str, auth: Option<&str>) -> (u16, String) {
        let mut req = self.agent.post(&self.url).content_type("application/json");
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let mut resp = req.send(body.to_owned()).expect("http");
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap_or_default())
    }

    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let mut resp = self
            .agent
            .get(&format!("{}{path}", self.url))
            .call()
            .expect("http");
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_vec().expect("body"),
        )
    }

    fn try_call(&self, method: &str, params: Value) -> Result<Value, (i64, String)> {
        let body =
            json!({"jsonrpc": "1.0", "id": "t", "method": method, "params": params}).to_string();
        let (_, text) = self.post(&body, Some(&self.auth));
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method}: not JSON: {text}"));
        match v.get("error") {
            Some(e) if !e.is_null() => Err((
                e["code"].as_i64().expect("code"),
                e["message"].as_str().expect("message").to_owned(),
            )),
            _ => Ok(v["result"].clone()),
        }
    }

    fn call(&self, method: &str, params: Value) -> Value {
        self.try_call(method, params.clone())
            .unwrap_or_else(|e| panic!("{method} {params}: {e:?}"))
    }

    fn code(&self, method: &str, params: Value) -> i64 {
        match self.try_call(method, params.clone()) {
            Err((code, _)) => code,
            Ok(v) => panic!("{method} {params} should fail, got {v}"),
        }
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn assert_shape(what: &str, v: &Value, names: &[&str]) {
    assert_eq!(
        keys(v),
        set(names),
        "{what}: fields differ from Bitcoin Core's"
    );
}

const HEADER: &[&str] = &[
    "hash",
    "confirmations",
    "height",
    "version",
    "versionHex",
    "merkleroot",
    "time",
    "mediantime",
    "nonce",
    "bits",
    "target",
    "difficulty",
    "chainwork",
    "nTx",
    "previousblockhash",
];

#[test]
fn every_method_answers_in_core_shapes() {
    let t = TestNode::new();
    let rpc = Rpc::start(&t);
    let w = Key::new(1, Kind::P2wpkh);
    let address = w.address().to_string();

    // Mining.
    let hashes = rpc.call("generatetoaddress", json!([101, address]));
    assert_eq!(hashes.as_array().expect("array").len(), 101);
    let desc = format!("addr({address})");
    let by_desc = rpc.call("generatetodescriptor", json!([1, desc]));
    assert_eq!(by_desc.as_array().expect("array").len(), 1);
    assert_eq!(rpc.call("getblockcount", json!([])), json!(102));
    let best = rpc.call("getbestblockhash", json!([]));
    assert_eq!(best, by_desc[0]);
    assert_eq!(rpc.call("getblockhash", json!([102])), best);

    // getblockchaininfo.
    let info = rpc.call("getblockchaininfo", json!([]));
    assert_shape(
        "getblockchaininfo",
        &info,
        &[
            "chain",
            "blocks",
            "headers",
            "bestblockhash",
            "bits",
            "target",
            "difficulty",
            "time",
            "mediantime",
            "verificationprogress",
            "initialblockdownload",
            "chainwork",
            "size_on_disk",
            "pruned",
            "warnings",
        ],
    );
    assert_eq!(
        (
            info["chain"].clone(),
            info["blocks"].clone(),
            info["bits"].clone()
        ),
        (json!("regtest"), json!(102), json!("207fffff"))
    );
    assert_eq!(info["chainwork"], json!(format!("{:064x}", 2 * 103)));
    assert_eq!(info["warnings"], json!([]));
    assert!(info["difficulty"].as_f64().expect("number") > 0.0);

    // getblockheader: verbose, raw, and the tip has no nextblockhash.
    let h = rpc.call("getblockheader", json!([hashes[99]]));
    let mut with_next = HEADER.to_vec();
    with_next.push("nextblockhash");
    assert_shape("getblockheader", &h, &with_next);
    assert_eq!(
        (h["height"].clone(), h["confirmations"].clone()),
        (json!(100), json!(3))
    );
    assert_eq!(h["nextblockhash"], hashes[100]);
    assert_eq!(h["previousblockhash"], hashes[98]);
    assert_eq!(h["versionHex"], json!("20000000"));
    let tip_header = rpc.call("getblockheader", json!([best, true]));
    assert_shape("getblockheader (tip)", &tip_header, HEADER);
    let raw = rpc.call("getblockheader", json!([best, false]));
    assert_eq!(raw.as_str().expect("hex").len(), 160);

    // getblock at every verbosity.
    let b0 = rpc.call("getblock", json!([best, 0]));
    let b1 = rpc.call("getblock", json!([best, 1]));
    let mut block_fields = HEADER.to_vec();
    block_fields.extend(["strippedsize", "size", "weight", "tx"]);
    assert_shape("getblock 1", &b1, &block_fields);
    assert_eq!(
        b1["size"].as_u64().expect("size") * 2,
        b0.as_str().expect("hex").len() as u64
    );
    let b2 = rpc.call("getblock", json!([best, 2]));
    let cb = &b2["tx"][0];
    assert_shape(
        "coinbase tx",
        cb,
        &[
            "txid", "hash", "version", "size", "vsize", "weight", "locktime", "vin", "vout", "hex",
        ],
    );
    assert_shape(
        "coinbase vin",
        &cb["vin"][0],
        &["coinbase", "txinwitness", "sequence"],
    );
    assert_shape("vout", &cb["vout"][0], &["value", "n", "scriptPubKey"]);
    assert_shape(
        "scriptPubKey",
        &cb["vout"][0]["scriptPubKey"],
        &["asm", "desc", "hex", "address", "type"],
    );
    assert_eq!(cb["vout"][0]["scriptPubKey"]["address"], json!(address));
    assert_eq!(
        cb["vout"][0]["scriptPubKey"]["type"],
        json!("witness_v0_keyhash")
    );
    assert_eq!(cb["vout"][0]["value"], json!(50.0));
    assert_shape(
        "commitment",
        &cb["vout"][1]["scriptPubKey"],
        &["asm", "desc", "hex", "type"],
    );
    assert_eq!(cb["vout"][1]["scriptPubKey"]["type"], json!("nulldata"));

    // A real spend: sendrawtransaction, the mempool RPCs, then confirmed lookups.
    let tx = spend(
        coinbase_output(&t.node, 1),
        &w,
        Key::new(2, Kind::P2tr).script(),
        1_000,
    );
    let txid = tx.compute_txid().to_string();
    let accepted = rpc.call("testmempoolaccept", json!([[serialize_hex(&tx)]]));
    assert_shape(
        "testmempoolaccept",
        &accepted[0],
        &["txid", "wtxid", "allowed", "vsize", "fees"],
    );
    assert_shape(
        "testmempoolaccept fees",
        &accepted[0]["fees"],
        &["base", "effective-feerate", "effective-includes"],
    );
    assert_eq!(accepted[0]["fees"]["base"], json!(0.00001));
    assert_eq!(
        rpc.call("sendrawtransaction", json!([serialize_hex(&tx)])),
        json!(txid)
    );
    let refused = rpc.call("testmempoolaccept", json!([[serialize_hex(&tx)]]));
    assert_shape(
        "testmempoolaccept refused",
        &refused[0],
        &[
            "txid",
            "wtxid",
            "allowed",
            "reject-reason",
            "reject-details",
        ],
    );
    assert_eq!(refused[0]["reject-reason"], json!("txn-already-in-mempool"));

    assert_eq!(rpc.call("getrawmempool", json!([])), json!([txid]));
    let verbose = rpc.call("getrawmempool", json!([true]));
    let entry = rpc.call("getmempoolentry", json!([txid]));
    assert_eq!(verbose[&txid], entry);
    assert_shape(
        "getmempoolentry",
        &entry,
        &[
            "vsize",
            "weight",
            "time",
            "height",
            "descendantcount",
            "descendantsize",
            "ancestorcount",
            "ancestorsize",
            "wtxid",
            "fees",
            "depends",
            "spentby",
            "bip125-replaceable",
            "unbroadcast",
        ],
    );
    assert_shape(
        "mempool fees",
        &entry["fees"],
        &["base", "modified", "ancestor", "descendant"],
    );
    let vsize = tx.vsize() as u64;
    assert_eq!(
        (
            entry["vsize"].clone(),
            entry["height"].clone(),
            entry["bip125-replaceable"].clone()
        ),
        (json!(vsize), json!(102), json!(true))
    );
    let seq = rpc.call("getrawmempool", json!([false, true]));
    assert_shape(
        "getrawmempool sequence",
        &seq,
        &["txids", "mempool_sequence"],
    );
    let mi = rpc.call("getmempoolinfo", json!([]));
    assert_shape(
        "getmempoolinfo",
        &mi,
        &[
            "loaded",
            "size",
            "bytes",
            "usage",
            "total_fee",
            "maxmempool",
            "mempoolminfee",
            "minrelaytxfee",
            "incrementalrelayfee",
            "unbroadcastcount",
            "fullrbf",
            "permitbaremultisig",
            "maxdatacarriersize",
        ],
    );
    assert_eq!(
        (
            mi["size"].clone(),
            mi["bytes"].clone(),
            mi["total_fee"].clone()
        ),
        (json!(1), json!(vsize), json!(0.00001))
    );
    let spending = rpc.call("gettxspendingprevout", json!([[{"txid": tx.input[0].previous_output.txid.to_string(), "vout": 0}, {"txid": txid, "vout": 0}]]));
    assert_shape(
        "gettxspendingprevout",
        &spending[0],
        &["txid", "vout", "spendingtxid"],
    );
    assert_eq!(spending[0]["spendingtxid"], json!(txid));
    assert_shape(
        "gettxspendingprevout unspent",
        &spending[1],
        &["txid", "vout"],
    );
    let pending = rpc.call("getrawtransaction", json!([txid, 1]));
    assert_shape(
        "getrawtransaction (mempool)",
        &pending,
        &[
            "txid", "hash", "version", "size", "vsize", "weight", "locktime", "vin", "vout", "hex",
        ],
    );
    assert_shape(
        "vin",
        &pending["vin"][0],
        &["txid", "vout", "scriptSig", "txinwitness", "sequence"],
    );
    assert_shape(
        "scriptSig",
        &pending["vin"][0]["scriptSig"],
        &["asm", "hex"],
    );

    let est = rpc.call("estimatesmartfee", json!([6]));
    assert_shape("estimatesmartfee", &est, &["feerate", "blocks"]);
    assert_eq!(
        (est["feerate"].clone(), est["blocks"].clone()),
        (json!(0.00001), json!(6))
    );

    let mined = rpc.call("generateblock", json!([address, [txid]]));
    assert_shape("generateblock", &mined, &["hash"]);
    let confirmed = rpc.call("getrawtransaction", json!([txid, true]));
    assert_shape(
        "getrawtransaction (confirmed)",
        &confirmed,
        &[
            "txid",
            "hash",
            "version",
            "size",
            "vsize",
            "weight",
            "locktime",
            "vin",
            "vout",
            "hex",
            "blockhash",
            "confirmations",
            "time",
            "blocktime",
        ],
    );
    assert_eq!(
        (
            confirmed["blockhash"].clone(),
            confirmed["confirmations"].clone()
        ),
        (mined["hash"].clone(), json!(1))
    );
    let v2 = rpc.call("getrawtransaction", json!([txid, 2, mined["hash"]]));
    assert_eq!(v2["in_active_chain"], json!(true));
    assert_eq!(v2["fee"], json!(0.00001));
    assert_shape(
        "prevout",
        &v2["vin"][0]["prevout"],
        &["generated", "height", "value", "scriptPubKey"],
    );
    assert_eq!(v2["vin"][0]["prevout"]["height"], json!(1));
    let b3 = rpc.call("getblock", json!([mined["hash"], 3]));
    assert_eq!(b3["tx"][1]["vin"][0]["prevout"]["generated"], json!(true));
    assert_eq!(b3["tx"][1]["fee"], json!(0.00001));
    let unsubmitted = rpc.call("generateblock", json!([address, [], false]));
    assert_shape("generateblock submit=false", &unsubmitted, &["hash", "hex"]);
    assert_eq!(
        rpc.call("getblockcount", json!([])),
        json!(103),
        "not submitted"
    );
    assert_eq!(
        rpc.call("submitblock", json!([unsubmitted["hex"]])),
        Value::Null
    );
    assert_eq!(
        rpc.call("submitblock", json!([unsubmitted["hex"]])),
        json!("duplicate")
    );

    // A package through submitpackage.
    let parent = spend(coinbase_output(&t.node, 2), &w, w.script(), 0);
    let child = spend(out(&parent, 0), &w, w.script(), 2_000);
    let pkg = rpc.call(
        "submitpackage",
        json!([[serialize_hex(&parent), serialize_hex(&child)]]),
    );
    assert_shape(
        "submitpackage",
        &pkg,
        &["package_msg", "tx-results", "replaced-transactions"],
    );
    assert_eq!(pkg["package_msg"], json!("success"));
    let child_result = &pkg["tx-results"][child.compute_wtxid().to_string()];
    assert_shape("submitpackage tx", child_result, &["txid", "vsize", "fees"]);
    assert_eq!(
        child_result["fees"]["effective-includes"]
            .as_array()
            .expect("array")
            .len(),
        2
    );

    // Node information.
    let net = rpc.call("getnetworkinfo", json!([]));
    assert_shape(
        "getnetworkinfo",
        &net,
        &[
            "version",
            "subversion",
            "protocolversion",
            "localservices",
            "localservicesnames",
            "localrelay",
            "timeoffset",
            "networkactive",
            "connections",
            "connections_in",
            "connections_out",
            "networks",
            "relayfee",
            "incrementalfee",
            "localaddresses",
            "warnings",
        ],
    );
    assert_shape(
        "network",
        &net["networks"][0],
        &[
            "name",
            "limited",
            "reachable",
            "proxy",
            "proxy_randomize_credentials",
        ],
    );
    assert_eq!(net["relayfee"], json!(0.00001));
    let idx = rpc.call("getindexinfo", json!([]));
    let synced = json!({"synced": true, "best_block_height": 104});
    assert_eq!(idx, json!({"txindex": synced, "txospenderindex": synced}));
    assert_eq!(
        rpc.call("getindexinfo", json!(["txospenderindex"])),
        json!({"txospenderindex": synced})
    );
    // The spender index answers for confirmed spends, with the block (Core 31).
    let coinbase_txid = tx.input[0].previous_output.txid.to_string();
    let confirmed_spend = rpc.call(
        "gettxspendingprevout",
        json!([[{"txid": coinbase_txid, "vout": 0}]]),
    );
    assert_eq!(
        confirmed_spend,
        json!([{"txid": coinbase_txid, "vout": 0, "spendingtxid": txid, "blockhash": mined["hash"]}])
    );
    let mempool_only = rpc.call(
        "gettxspendingprevout",
        json!([[{"txid": coinbase_txid, "vout": 0}], {"mempool_only": true}]),
    );
    assert_eq!(mempool_only, json!([{"txid": coinbase_txid, "vout": 0}]));
    let with_tx = rpc.call(
        "gettxspendingprevout",
        json!([[{"txid": coinbase_txid, "vout": 0}], {"return_spending_tx": true}]),
    );
    assert_eq!(with_tx[0]["spendingtx"], json!(serialize_hex(&tx)));
    assert_eq!(
        rpc.call("getindexinfo", json!(["coinstatsindex"])),
        json!({})
    );
    let dep = rpc.call("getdeploymentinfo", json!([]));
    assert_shape(
        "getdeploymentinfo",
        &dep,
        &["hash", "height", "deployments"],
    );
    assert_eq!(dep["deployments"]["taproot"]["active"], json!(true));
    assert_eq!(
        dep["deployments"]["segwit"],
        json!({"type": "buried", "active": true, "height": 0})
    );
    assert!(rpc.call("uptime", json!([])).as_u64().is_some());

    // invalidateblock / reconsiderblock.
    let tip = rpc.call("getbestblockhash", json!([]));
    assert_eq!(rpc.call("invalidateblock", json!([tip])), Value::Null);
    assert_eq!(rpc.call("getblockcount", json!([])), json!(103));
    assert_eq!(
        rpc.call("getblockheader", json!([tip]))["confirmations"],
        json!(-1)
    );
    assert_eq!(rpc.call("reconsiderblock", json!([tip])), Value::Null);
    assert_eq!(rpc.call("getbestblockhash", json!([])), tip);
}

#[test]
fn errors_use_core_codes() {
    let t = TestNode::new();
    let rpc = Rpc::start(&t);
    let w = Key::new(1, Kind::P2wpkh);
    rpc.call("generatetoaddress", json!([101, w.address().to_string()]));
    let zero = "0".repeat(64);

    assert_eq!(rpc.code("getblockhash", json!([102])), -8);
    assert_eq!(rpc.code("getblockhash", json!([-1])), -8);
    assert_eq!(rpc.code("getblockhash", json!(["1"])), -3);
    assert_eq!(rpc.code("getblockhash", json!([])), -1, "arity: usage text");
    assert_eq!(rpc.code("getblockcount", json!([1])), -1);
    assert_eq!(rpc.code("getblock", json!([zero])), -5);
    assert_eq!(rpc.code("getblock", json!(["xyz"])), -8);
    assert_eq!(rpc.code("getblockheader", json!([zero])), -5);
    assert_eq!(rpc.code("getrawtransaction", json!([zero])), -5);
    assert_eq!(rpc.code("getmempoolentry", json!([zero])), -5);
    assert_eq!(rpc.code("invalidateblock", json!([zero])), -5);
    assert_eq!(
        rpc.code(
            "generatetoaddress",
            json!([1, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"])
        ),
        -5,
        "mainnet address"
    );
    assert_eq!(rpc.code("generatetodescriptor", json!([1, "wpkh(xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL/*)"])), -8, "ranged");
    assert_eq!(rpc.code("sendrawtransaction", json!(["zz"])), -22);
    assert_eq!(rpc.code("sendrawtransaction", json!(["00"])), -22);
    assert_eq!(rpc.code("submitblock", json!(["0011"])), -22);
    assert_eq!(rpc.code("estimatesmartfee", json!([0])), -8);
    assert_eq!(rpc.code("estimatesmartfee", json!([2, "fast"])), -8);
    assert_eq!(
        rpc.code("getblockheader", json!({"blockhash": zero, "bogus": 1})),
        -8,
        "unknown named parameter"
    );
    assert_eq!(rpc.code("testmempoolaccept", json!([[]])), -8);

    // Transaction refusals: -26 policy, -25 missing inputs, -27 already confirmed.
    let coin = coinbase_output(&t.node, 1);
    let cheap = spend(coin.clone(), &w, w.script(), 10);
    let (code, message) = rpc
        .try_call("sendrawtransaction", json!([serialize_hex(&cheap)]))
        .expect_err("refused");
    assert_eq!(
        (code, message.as_str()),
        (-26, "min relay fee not met, 10 < 110")
    );
    let orphan = spend(
        (
            bitcoin::OutPoint {
                txid: cheap.compute_txid(),
                vout: 0,
            },
            coin.1.clone(),
        ),
        &w,
        w.script(),
        1_000,
    );
    let (code, message) = rpc
        .try_call("sendrawtransaction", json!([serialize_hex(&orphan)]))
        .expect_err("refused");
    assert_eq!(
        (code, message.as_str()),
        (-25, "bad-txns-inputs-missingorspent")
    );
    let good = spend(coin, &w, w.script(), 1_000);
    rpc.call("sendrawtransaction", json!([serialize_hex(&good)]));
    rpc.call("generatetoaddress", json!([1, w.address().to_string()]));
    assert_eq!(
        rpc.code("sendrawtransaction", json!([serialize_hex(&good)])),
        -27
    );
    let huge_fee = spend(coinbase_output(&t.node, 2), &w, w.script(), 100_000_000);
    let (code, message) = rpc
        .try_call("sendrawtransaction", json!([serialize_hex(&huge_fee)]))
        .expect_err("refused");
    assert_eq!(
        (code, message.as_str()),
        (
            -25,
            "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)"
        )
    );
    assert!(
        rpc.try_call("sendrawtransaction", json!([serialize_hex(&huge_fee), 0]))
            .is_ok(),
        "maxfeerate 0 lifts the limit"
    );
}

#[test]
fn envelope_auth_and_limits() {
    let t = TestNode::new();
    let rpc = Rpc::start(&t);

    // No or wrong credentials: 401 with a Basic challenge, nothing executed.
    let body = r#"{"method":"getblockcount","id":1}"#;
    assert_eq!(rpc.post(body, None).0, 401);
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("__cookie__:nope")
    );
    assert_eq!(rpc.post(body, Some(&wrong)).0, 401);

    let auth = Some(rpc.auth.as_str());
    let (status, text) = rpc.post(r#"{"method":"nosuchmethod","id":1}"#, auth);
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json")["error"]["code"],
        json!(-32601)
    );
    let (status, text) = rpc.post(r#"{"id":1}"#, auth);
    assert_eq!(
        (
            status,
            serde_json::from_str::<Value>(&text).expect("json")["error"]["code"].clone()
        ),
        (400, json!(-32600))
    );
    let (status, text) = rpc.post("{nope", auth);
    assert_eq!(
        (
            status,
            serde_json::from_str::<Value>(&text).expect("json")["error"]["code"].clone()
        ),
        (500, json!(-32700))
    );
    let (status, _) = rpc.post(r#"{"method":"getblockhash","params":[99],"id":1}"#, auth);
    assert_eq!(
        status, 500,
        "application errors are HTTP 500 in legacy mode"
    );

    // JSON-RPC 2.0: one member, HTTP 200, notifications get 204.
    let (status, text) = rpc.post(
        r#"{"jsonrpc":"2.0","method":"getblockhash","params":[99],"id":2}"#,
        auth,
    );
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!((status, keys(&v)), (200, set(&["jsonrpc", "error", "id"])));
    let (status, text) = rpc.post(r#"{"jsonrpc":"2.0","method":"getblockcount"}"#, auth);
    assert_eq!((status, text.as_str()), (204, ""));

    // Batches, with named parameters.
    let (status, text) = rpc.post(
        r#"[{"method":"getblockcount","id":1},{"method":"getblockhash","params":{"height":0},"id":2},{"method":"x","id":3}]"#,
        auth,
    );
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(status, 200);
    assert_eq!(v[0]["result"], json!(0));
    assert_eq!(
        v[1]["result"],
        json!("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206")
    );
    assert_eq!(v[2]["error"]["code"], json!(-32601));

    // Oversize bodies are refused before parsing.
    let huge = format!(
        r#"{{"method":"getblockcount","params":["{}"],"id":1}}"#,
        "a".repeat(33 * 1024 * 1024)
    );
    let mut req = rpc
        .agent
        .post(&rpc.url)
        .content_type("application/json")
        .header("Authorization", &rpc.auth);
    req = req.header("Connection", "close");
    match req.send(huge) {
        Ok(resp) => assert_eq!(resp.status().as_u16(), 413),
        // The server may close the connection before the client finished uploading: refused too.
        Err(e) => eprintln!("upload cut short by the server: {e}"),
    }
    // And the server still serves.
    assert_eq!(rpc.call("getblockcount", json!([])), json!(0));
}

#[test]
fn rest_serves_blocks_headers_and_chain_info() {
    let t = TestNode::new();
    let rpc = Rpc::start(&t);
    let w = Key::new(1, Kind::P2wpkh);
    let hashes = rpc.call("generatetoaddress", json!([5, w.address().to_string()]));
    let h1 = hashes[0].as_str().expect("hash");
    let raw = rpc.call("getblock", json!([h1, 0]));

    let (status, bin) = rpc.get(&format!("/rest/block/{h1}.bin"));
    assert_eq!(status, 200);
    assert_eq!(
        bitcoin::hex::DisplayHex::to_lower_hex_string(&bin[..]),
        raw.as_str().expect("hex")
    );
    let (_, hex) = rpc.get(&format!("/rest/block/{h1}.hex"));
    assert_eq!(
        String::from_utf8(hex).expect("utf8").trim(),
        raw.as_str().expect("hex")
    );
    let (_, json_body) = rpc.get(&format!("/rest/block/{h1}.json"));
    let v: Value = serde_json::from_slice(&json_body).expect("json");
    assert_eq!(v["hash"], json!(h1));
    assert!(v["tx"][0].is_object(), "full transactions");
    let (_, json_body) = rpc.get(&format!("/rest/block/notxdetails/{h1}.json"));
    assert!(serde_json::from_slice::<Value>(&json_body).expect("json")["tx"][0].is_string());

    let (status, headers) = rpc.get(&format!("/rest/headers/{h1}.bin?count=3"));
    assert_eq!((status, headers.len()), (200, 240));
    let (_, old_form) = rpc.get(&format!("/rest/headers/3/{h1}.bin"));
    assert_eq!(old_form, headers);
    let (_, json_headers) = rpc.get(&format!("/rest/headers/{h1}.json?count=10"));
    assert_eq!(
        serde_json::from_slice::<Value>(&json_headers)
            .expect("json")
            .as_array()
            .expect("array")
            .len(),
        5
    );

    let (_, by_height) = rpc.get("/rest/blockhashbyheight/1.json");
    assert_eq!(
        serde_json::from_slice::<Value>(&by_height).expect("json"),
        json!({"blockhash": h1})
    );
    let (status, _) = rpc.get("/rest/blockhashbyheight/99.json");
    assert_eq!(status, 404);
    let (status, _) = rpc.get("/rest/blockhashbyheight/x.json");
    assert_eq!(status, 400);
    let (_, info) = rpc.get("/rest/chaininfo.json");
    assert_eq!(
        serde_json::from_slice::<Value>(&info).expect("json")["blocks"],
        json!(5)
    );
    let (status, _) = rpc.get(&format!("/rest/block/{}.bin", "0".repeat(64)));
    assert_eq!(status, 404);
    let (status, _) = rpc.get("/rest/block/abc.bin");
    assert_eq!(status, 400);
    let (status, _) = rpc.get(&format!("/rest/block/{h1}.xml"));
    assert_eq!(status, 404);
    let (status, contents) = rpc.get("/rest/mempool/contents.json");
    assert_eq!(
        (
            status,
            serde_json::from_slice::<Value>(&contents).expect("json")
        ),
        (200, json!({}))
    );
}
