//! ElectrumX 2.0 indexes the embedded node through its bitcoind RPC, unchanged: headers,
//! histories, mempool, broadcast and a reorganisation all come out the same on both sides.
//! ElectrumX comes from the venv `make test` creates (or `MOIP_ELECTRUMX`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    Address, Amount, CompressedPublicKey, Network, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxOut, Witness,
};
use common::{free_port, wait_until, NodeProcess};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(120);

fn electrumx_server() -> PathBuf {
    let path = std::env::var_os("MOIP_ELECTRUMX")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/electrumx_server")
        });
    assert!(
        path.exists(),
        "ElectrumX not found at {}: run `make test` (it creates .venv) or set MOIP_ELECTRUMX",
        path.display()
    );
    path
}

struct ElectrumX {
    child: Child,
    port: u16,
    _db: tempfile::TempDir,
}

impl Drop for ElectrumX {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ElectrumX {
    fn start(node: &NodeProcess) -> ElectrumX {
        let db = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let (host, rpc_port) = node.host_port();
        let child = Command::new(electrumx_server())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("COIN", "Bitcoin")
            .env("NET", "regtest")
            .env("DB_ENGINE", "leveldb")
            .env("DB_DIRECTORY", db.path())
            .env(
                "DAEMON_URL",
                format!("http://{}:{}@{host}:{rpc_port}/", node.user, node.password),
            )
            .env("SERVICES", format!("tcp://127.0.0.1:{port}"))
            .env("PEER_DISCOVERY", "off")
            .env("PEER_ANNOUNCE", "")
            .env("ALLOW_ROOT", "1")
            .env("LOG_LEVEL", "warning")
            .env("DAEMON_POLL_INTERVAL_BLOCKS", "200")
            .env("DAEMON_POLL_INTERVAL_MEMPOOL", "200")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn electrumx_server");
        ElectrumX {
            child,
            port,
            _db: db,
        }
    }

    fn connect(&self) -> Client {
        wait_until(WAIT, "ElectrumX to listen", || {
            let stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .ok()?;
            let mut client = Client {
                reader: BufReader::new(stream.try_clone().ok()?),
                writer: stream,
                id: 0,
            };
            client
                .call("server.version", json!(["moip-test", "1.4"]))
                .ok()?;
            Some(client)
        })
    }
}

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    id: u64,
}

impl Client {
    fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.id += 1;
        let line = json!({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params})
            .to_string()
            + "\n";
        self.writer.write_all(line.as_bytes()).expect("write");
        loop {
            let mut reply = String::new();
            self.reader.read_line(&mut reply).expect("read");
            let v: Value = serde_json::from_str(&reply).expect("json line");
            if v.get("id") != Some(&json!(self.id)) {
                continue; // a notification
            }
            return match v.get("error") {
                Some(e) => Err(e.clone()),
                None => Ok(v["result"].clone()),
            };
        }
    }

    fn ok(&mut self, method: &str, params: Value) -> Value {
        self.call(method, params.clone())
            .unwrap_or_else(|e| panic!("{method} {params}: {e}"))
    }
}

fn scripthash(script: &ScriptBuf) -> String {
    let mut hash = sha256::Hash::hash(script.as_bytes()).to_byte_array();
    hash.reverse();
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn key(seed: u8) -> (SecretKey, CompressedPublicKey, ScriptBuf) {
    let secp = Secp256k1::new();
    let secret = SecretKey::from_slice(&[seed; 32]).expect("key");
    let public = CompressedPublicKey(secret.public_key(&secp));
    (
        secret,
        public,
        ScriptBuf::new_p2wpkh(&public.wpubkey_hash()),
    )
}

/// Signs a P2WPKH spend of one coinbase output.
fn spend(
    prev: OutPoint,
    value: Amount,
    secret: &SecretKey,
    public: &CompressedPublicKey,
    to: ScriptBuf,
    fee: u64,
) -> Transaction {
    let secp = Secp256k1::new();
    let mut tx = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: prev,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: value - Amount::from_sat(fee),
            script_pubkey: to,
        }],
    };
    let script = ScriptBuf::new_p2wpkh(&public.wpubkey_hash());
    let hash = SighashCache::new(&tx)
        .p2wpkh_signature_hash(0, &script, value, EcdsaSighashType::All)
        .expect("sighash");
    let sig = secp.sign_ecdsa(&Message::from_digest(hash.to_byte_array()), secret);
    tx.input[0].witness = Witness::p2wpkh(
        &bitcoin::ecdsa::Signature {
            signature: sig,
            sighash_type: EcdsaSighashType::All,
        },
        &public.0,
    );
    tx
}

fn wait_height(client: &mut Client, height: u64, tip: &Value) {
    wait_until(WAIT, "ElectrumX to reach the tip", || {
        let h = client.ok("blockchain.headers.subscribe", json!([]));
        let raw = client.call("blockchain.block.header", json!([height])).ok();
        (h["height"] == json!(height)
            && raw
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|r| header_hash(r) == *tip))
        .then_some(())
    });
}

fn header_hash(raw: &str) -> Value {
    let bytes: Vec<u8> = (0..raw.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&raw[i..i + 2], 16).expect("hex"))
        .collect();
    let header: bitcoin::block::Header = bitcoin::consensus::deserialize(&bytes).expect("header");
    json!(header.block_hash().to_string())
}

#[test]
fn electrumx_indexes_the_embedded_node_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeProcess::start(dir.path());
    let (secret, public, script_a) = key(1);
    let address_a = Address::from_script(&script_a, Network::Regtest)
        .expect("address")
        .to_string();
    let (_, _, script_b) = key(2);
    let hashes = node.call("generatetoaddress", json!([101, address_a]));

    let ex = ElectrumX::start(&node);
    let mut client = ex.connect();
    wait_height(&mut client, 101, &hashes[100]);

    // Headers agree byte for byte.
    for h in [0u64, 1, 50, 101] {
        let ours = node.call(
            "getblockheader",
            json!([node.call("getblockhash", json!([h])), false]),
        );
        assert_eq!(
            client.ok("blockchain.block.header", json!([h])),
            ours,
            "header {h}"
        );
    }
    // The coinbases paying A are A's history.
    let history = client.ok(
        "blockchain.scripthash.get_history",
        json!([scripthash(&script_a)]),
    );
    let history = history.as_array().expect("array");
    assert_eq!(history.len(), 101);
    let block1 = node.call("getblock", json!([hashes[0], 1]));
    assert_eq!(history[0], json!({"tx_hash": block1["tx"][0], "height": 1}));
    let balance = client.ok(
        "blockchain.scripthash.get_balance",
        json!([scripthash(&script_a)]),
    );
    assert_eq!(balance["confirmed"], json!(101u64 * 50 * 100_000_000));

    // A transaction broadcast through ElectrumX reaches the node's mempool and ElectrumX's.
    let coinbase_txid: bitcoin::Txid = block1["tx"][0]
        .as_str()
        .expect("txid")
        .parse()
        .expect("txid");
    let tx = spend(
        OutPoint {
            txid: coinbase_txid,
            vout: 0,
        },
        Amount::from_btc(50.0).expect("amount"),
        &secret,
        &public,
        script_b.clone(),
        1_000,
    );
    let txid = tx.compute_txid().to_string();
    assert_eq!(
        client.ok(
            "blockchain.transaction.broadcast",
            json!([serialize_hex(&tx)])
        ),
        json!(txid)
    );
    assert_eq!(node.call("getrawmempool", json!([])), json!([txid]));
    wait_until(WAIT, "ElectrumX mempool", || {
        let m = client.ok(
            "blockchain.scripthash.get_mempool",
            json!([scripthash(&script_b)]),
        );
        (m.as_array().map(Vec::len) == Some(1)).then_some(m)
    });
    let mempool = client.ok(
        "blockchain.scripthash.get_mempool",
        json!([scripthash(&script_b)]),
    );
    assert_eq!(mempool[0]["fee"], json!(1000));
    assert_eq!(
        client.ok("blockchain.transaction.get", json!([txid])),
        json!(serialize_hex(&tx))
    );

    // Confirmed: history and Merkle proof match the node's block.
    let mined = node.call("generatetoaddress", json!([1, address_a]));
    wait_height(&mut client, 102, &mined[0]);
    let history = client.ok(
        "blockchain.scripthash.get_history",
        json!([scripthash(&script_b)]),
    );
    assert_eq!(history, json!([{"tx_hash": txid, "height": 102}]));
    let proof = client.ok("blockchain.transaction.get_merkle", json!([txid, 102]));
    assert_eq!(
        (proof["block_height"].clone(), proof["pos"].clone()),
        (json!(102), json!(1))
    );
    assert_eq!(
        client.ok("blockchain.transaction.id_from_pos", json!([102, 1])),
        json!(txid)
    );

    // A reorganisation through invalidateblock: ElectrumX follows the node onto the new branch.
    node.call("invalidateblock", json!([mined[0]]));
    let branch = node.call("generatetoaddress", json!([2, address_a]));
    wait_height(&mut client, 103, &branch[1]);
    assert_eq!(
        header_hash(
            client
                .ok("blockchain.block.header", json!([102]))
                .as_str()
                .expect("hex")
        ),
        branch[0]
    );
    let confirmed = node.call("getrawtransaction", json!([txid, true]));
    let height = node.call("getblockheader", json!([confirmed["blockhash"]]))["height"].clone();
    let history = client.ok(
        "blockchain.scripthash.get_history",
        json!([scripthash(&script_b)]),
    );
    assert_eq!(
        history,
        json!([{"tx_hash": txid, "height": height}]),
        "the spend is re-confirmed on the new branch"
    );

    // Fee RPCs pass through.
    assert!(client
        .ok("blockchain.estimatefee", json!([2]))
        .as_f64()
        .is_some());
}
