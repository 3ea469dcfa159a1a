//! An embedded node with an Electrum server in front, on loopback ports, for the tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{OutPoint, TxOut};
use moip_chain::{ChainSource, EmbeddedNode, NodeConfig};
use moip_electrum::{ElectrumServer, ServerConfig};
#[allow(unused_imports)]
pub use moip_testkit::{out, sign, spend, wait_until, Key, Kind};
use serde_json::{json, Value};

pub const WAIT: Duration = Duration::from_secs(30);

/// A regtest node and an Electrum server over it, stopped on drop.
pub struct Env {
    pub node: EmbeddedNode,
    pub server: Option<ElectrumServer>,
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env::with(|_| {})
    }

    pub fn with(configure: impl FnOnce(&mut ServerConfig)) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut node_config = NodeConfig::new(dir.path().join("chain"));
        node_config.background_checkpoints = false;
        let node = EmbeddedNode::open(node_config).expect("node");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut config = ServerConfig::ephemeral(dir.path().join("electrum"));
        configure(&mut config);
        let source: Arc<dyn ChainSource> = Arc::new(node.clone());
        let server = rt
            .block_on(ElectrumServer::start(source, config))
            .expect("server");
        let env = Env {
            node,
            server: Some(server),
            rt,
            dir,
        };
        env.wait_synced();
        env
    }

    pub fn server(&self) -> &ElectrumServer {
        self.server.as_ref().expect("running")
    }

    pub fn tcp(&self) -> SocketAddr {
        self.server().addresses().tcp.expect("tcp")
    }

    /// Waits until the server has indexed the node's tip.
    pub fn wait_synced(&self) {
        let tip = self.node.tip().expect("tip").height;
        wait_until(WAIT, "the index to reach the tip", || {
            (self.server().is_synced() && self.server().indexed_height() == Some(tip)).then_some(())
        });
    }

    /// Mines `n` blocks to `key` and waits for the index.
    pub fn mine(&self, n: u32, key: &Key) -> Vec<bitcoin::BlockHash> {
        let hashes = self.node.generate(n, &key.script()).expect("mine");
        self.wait_synced();
        hashes
    }

    pub fn coinbase(&self, height: u32) -> (OutPoint, TxOut) {
        let hash = self.node.block_hash(height).expect("q").expect("height");
        let cb = self.node.block(&hash).expect("q").expect("block").txdata[0].clone();
        (
            OutPoint {
                txid: cb.compute_txid(),
                vout: 0,
            },
            cb.output[0].clone(),
        )
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.shutdown());
        }
    }
}

/// A raw line client speaking JSON-RPC 2.0, for methods and inputs the client crates lack.
pub struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next: u64,
    /// Notifications received while waiting for replies.
    pub notifications: Vec<Value>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        Raw {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
            next: 0,
            notifications: Vec::new(),
        }
    }

    pub fn send_line(&mut self, line: &str) {
        self.try_send_line(line).expect("write");
    }

    /// Writes a line; the server may close the connection before the line is all written
    /// (when it is over the size limit), so the caller decides what an error means.
    pub fn try_send_line(&mut self, line: &str) -> std::io::Result<()> {
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\n")
    }

    /// The next message from the server; `None` when it closed the connection.
    pub fn read(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).expect("server sent JSON")),
        }
    }

    /// Sends a request and returns its reply, keeping notifications aside.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.send_line(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        );
        loop {
            let msg = self.read().expect("reply");
            if msg.get("id") == Some(&json!(id)) {
                return msg;
            }
            self.notifications.push(msg);
        }
    }

    pub fn ok(&mut self, method: &str, params: Value) -> Value {
        let reply = self.request(method, params.clone());
        assert!(reply.get("error").is_none(), "{method} {params}: {reply}");
        reply["result"].clone()
    }

    pub fn err(&mut self, method: &str, params: Value) -> i64 {
        let reply = self.request(method, params.clone());
        reply["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("{method} {params} should fail: {reply}"))
    }

    /// Waits for a notification of `method` matching `pred`.
    pub fn wait_notification(&mut self, method: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self
            .notifications
            .iter()
            .position(|n| n["method"] == method && pred(&n["params"]))
        {
            return self.notifications.remove(i)["params"].clone();
        }
        loop {
            let msg = self.read().expect("notification before the timeout");
            if msg["method"] == method && pred(&msg["params"]) {
                return msg["params"].clone();
            }
        }
    }
}

/// The script hash of a script, as clients send it.
pub fn scripthash(script: &bitcoin::Script) -> String {
    moip_electrum::ScriptHash::of(script).to_string()
}
