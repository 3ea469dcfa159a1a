//! While the initial index catches up, the server already answers `server.*` and headers, and
//! says plainly that script queries must wait. The chain source here is the real embedded node
//! behind a wrapper that makes block reads slow, so catch-up lasts long enough to observe.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, FeeRate, Network, Transaction, Txid};
use common::{scripthash, wait_until, Key, Kind, Raw, WAIT};
use moip_chain::{
    BlockId, ChainError, ChainEvent, ChainSource, EmbeddedNode, FeeEstimate, FeeMode, HeaderEntry,
    LocatedTx, MempoolEntry, NodeConfig, PackageOutcome, SpentOutput,
};
use moip_electrum::{ElectrumServer, ServerConfig};
use serde_json::json;
use tokio::sync::broadcast;

/// The embedded node, with every block read delayed.
struct Slow(EmbeddedNode, Duration);

impl ChainSource for Slow {
    fn network(&self) -> Network {
        self.0.network()
    }
    fn tip(&self) -> Result<BlockId, ChainError> {
        self.0.tip()
    }
    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, ChainError> {
        self.0.block_hash(height)
    }
    fn header(&self, hash: &BlockHash) -> Result<Option<HeaderEntry>, ChainError> {
        self.0.header(hash)
    }
    fn headers(&self, start: u32, count: u32) -> Result<Vec<Header>, ChainError> {
        self.0.headers(start, count)
    }
    fn block(&self, hash: &BlockHash) -> Result<Option<Block>, ChainError> {
        std::thread::sleep(self.1);
        self.0.block(hash)
    }
    fn spent_outputs(&self, hash: &BlockHash) -> Result<Option<Vec<Vec<SpentOutput>>>, ChainError> {
        self.0.spent_outputs(hash)
    }
    fn transaction(
        &self,
        txid: &Txid,
        block: Option<&BlockHash>,
    ) -> Result<Option<LocatedTx>, ChainError> {
        self.0.transaction(txid, block)
    }
    fn mempool(&self) -> Result<Vec<MempoolEntry>, ChainError> {
        self.0.mempool()
    }
    fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.0.subscribe()
    }
    fn broadcast(&self, tx: &Transaction) -> Result<Txid, ChainError> {
        self.0.broadcast(tx)
    }
    fn broadcast_package(&self, txs: &[Transaction]) -> Result<PackageOutcome, ChainError> {
        self.0.broadcast_package(txs)
    }
    fn estimate_fee(&self, target: u16, mode: FeeMode) -> Result<Option<FeeEstimate>, ChainError> {
        self.0.estimate_fee(target, mode)
    }
    fn relay_fee(&self) -> Result<FeeRate, ChainError> {
        self.0.relay_fee()
    }
}

#[test]
fn server_answers_while_it_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node_config = NodeConfig::new(dir.path().join("chain"));
    node_config.background_checkpoints = false;
    let node = EmbeddedNode::open(node_config).expect("node");
    let key = Key::new(1, Kind::P2wpkh);
    node.generate(300, &key.script()).expect("mine");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = ServerConfig::ephemeral(dir.path().join("electrum"));
    config.index_threads = 1;
    let source: Arc<dyn ChainSource> = Arc::new(Slow(node.clone(), Duration::from_millis(20)));
    let server = rt
        .block_on(ElectrumServer::start(source, config))
        .expect("server");

    let mut c = Raw::connect(server.addresses().tcp.expect("tcp"));
    c.ok("server.version", json!(["catch-up", "1.6"]));
    assert!(c.ok("server.features", json!([]))["genesis_hash"].is_string());
    assert_eq!(c.ok("server.ping", json!([])), serde_json::Value::Null);
    let code = c.err(
        "blockchain.scripthash.get_history",
        json!([scripthash(&key.script())]),
    );
    assert_eq!(code, 2, "script queries wait for the index");
    assert!(!server.is_synced(), "still catching up when queried");
    // Headers indexed so far are served meanwhile.
    let partial = wait_until(WAIT, "some headers indexed", || {
        // Before the first batch lands there is no tip yet: an error, not a hang.
        let tip = c.request("blockchain.headers.subscribe", json!([]));
        tip["result"]["height"]
            .as_u64()
            .filter(|h| *h > 0 && *h < 300)
    });
    assert_eq!(
        c.ok("blockchain.block.header", json!([partial]))
            .as_str()
            .map(str::len),
        Some(160)
    );
    wait_until(Duration::from_secs(120), "catch-up to finish", || {
        server.is_synced().then_some(())
    });
    let history = c.ok(
        "blockchain.scripthash.get_history",
        json!([scripthash(&key.script())]),
    );
    assert_eq!(history.as_array().map(Vec::len), Some(300));
    rt.block_on(server.shutdown());
}
