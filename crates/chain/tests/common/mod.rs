//! Shared helpers of the chain tests: a node in a temporary directory, keys that sign real
//! P2WPKH and P2TR spends, and event waits with timeouts.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bitcoin::{OutPoint, TxOut, Txid};
use moip_chain::{ChainEvent, ChainSource, EmbeddedNode, NodeConfig};
#[allow(unused_imports)]
pub use moip_testkit::{out, sign, spend, wait_until, Key, Kind};
use tokio::sync::broadcast;

/// A node in a temporary directory that lives as long as the value.
pub struct TestNode {
    pub node: EmbeddedNode,
    pub dir: tempfile::TempDir,
}

impl TestNode {
    pub fn new() -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = EmbeddedNode::open(config(dir.path())).expect("open node");
        TestNode { node, dir }
    }

    /// Shuts the node down cleanly and opens it again on the same directory.
    pub fn restart(self) -> TestNode {
        self.node.shutdown().expect("shutdown");
        let TestNode { node, dir } = self;
        drop(node);
        let node = EmbeddedNode::open(config(dir.path())).expect("reopen node");
        TestNode { node, dir }
    }
}

pub fn config(dir: &std::path::Path) -> NodeConfig {
    let mut config = NodeConfig::new(dir);
    // Tests checkpoint explicitly where durability matters.
    config.background_checkpoints = false;
    config
}

/// Serves the node's RPC on a free loopback port, on a runtime that lives as long as the server.
pub fn start_rpc(node: &EmbeddedNode) -> (tokio::runtime::Runtime, moip_chain::rpc::RpcServer) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = moip_chain::rpc::RpcConfig::local(node, 0);
    let server = rt
        .block_on(moip_chain::rpc::RpcServer::start(node.clone(), config))
        .expect("server");
    (rt, server)
}

/// A coinbase output of the block at `height` paid to `key`, as a spendable input.
pub fn coinbase_output(node: &EmbeddedNode, height: u32) -> (OutPoint, TxOut) {
    let hash = node
        .block_hash(height)
        .expect("query")
        .expect("height exists");
    let block = node.block(&hash).expect("query").expect("block exists");
    let cb = &block.txdata[0];
    (
        OutPoint {
            txid: cb.compute_txid(),
            vout: 0,
        },
        cb.output[0].clone(),
    )
}

/// Waits (up to `timeout`) for an event matching `pred`; panics with `what` otherwise.
pub fn wait_event(
    rx: &mut broadcast::Receiver<ChainEvent>,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&ChainEvent) -> bool,
) -> ChainEvent {
    let deadline = Instant::now() + timeout;
    loop {
        match rx.try_recv() {
            Ok(e) if pred(&e) => return e,
            Ok(_) => continue,
            Err(broadcast::error::TryRecvError::Empty) => {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("event stream broke while waiting for {what}: {e}"),
        }
    }
}

pub fn txids(node: &EmbeddedNode) -> Vec<Txid> {
    node.mempool_txids()
}
