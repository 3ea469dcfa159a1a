//! A regtest world for the integration tests of the upper layers (a dev-dependency only): an
//! embedded node whose blocks are validated by libbitcoinkernel, and moip's Electrum server in
//! front of it on a loopback port. Wallets and Lightning nodes under test sync through that
//! server exactly as they would in production.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Address, Amount, BlockHash, Network, ScriptBuf, Sequence, Transaction, TxOut, Txid};
use moip_chain::{ChainSource, EmbeddedNode, NodeConfig};
use moip_electrum::{ElectrumServer, ServerConfig};
pub mod electrumx;

pub use moip_testkit::{out, sign, spend, wait_until, Key, Kind};

/// How long the helpers wait for the index to follow the node.
pub const WAIT: Duration = Duration::from_secs(60);

/// An address nobody can spend from, for blocks whose reward must not land in any wallet.
pub const BURN_SEED: u8 = 0xb0;

/// The embedded node and an Electrum server over it; both stop when this is dropped.
pub struct Regtest {
    pub node: EmbeddedNode,
    server: Option<ElectrumServer>,
    rt: tokio::runtime::Runtime,
    /// Holds the chain and the index; removed on drop.
    pub dir: tempfile::TempDir,
    burn: Key,
}

impl Regtest {
    /// A fresh chain with 101 blocks mined to a burn key, so coinbases mined later by tests
    /// mature after the usual 100 blocks.
    pub fn new() -> Regtest {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut node_config = NodeConfig::new(dir.path().join("chain"));
        node_config.background_checkpoints = false;
        let node = EmbeddedNode::open(node_config).expect("embedded node");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let config = ServerConfig::ephemeral(dir.path().join("electrum"));
        let source: Arc<dyn ChainSource> = Arc::new(node.clone());
        let server = rt
            .block_on(ElectrumServer::start(source, config))
            .expect("electrum server");
        let env = Regtest {
            node,
            server: Some(server),
            rt,
            dir,
            burn: Key::new(BURN_SEED, Kind::P2wpkh),
        };
        env.mine_burn(101);
        env
    }

    fn server(&self) -> &ElectrumServer {
        self.server.as_ref().expect("server running")
    }

    /// The Electrum server's TCP address.
    pub fn electrum_addr(&self) -> SocketAddr {
        self.server().addresses().tcp.expect("tcp listener")
    }

    /// `tcp://127.0.0.1:port`, the URL form bdk_electrum and ldk-node take.
    pub fn electrum_url(&self) -> String {
        format!("tcp://{}", self.electrum_addr())
    }

    /// `ssl://127.0.0.1:port`: the server's TLS listener (a self-signed certificate).
    pub fn electrum_tls_url(&self) -> String {
        let addr = self.server().addresses().tls.expect("tls listener");
        format!("ssl://{addr}")
    }

    pub fn height(&self) -> u32 {
        self.node.tip().expect("tip").height
    }

    /// Waits until the server has indexed the node's tip.
    pub fn wait_synced(&self) {
        let tip = self.height();
        wait_until(WAIT, "the Electrum index to reach the tip", || {
            (self.server().is_synced() && self.server().indexed_height() == Some(tip)).then_some(())
        });
    }

    /// Mines `n` blocks paying `script` and waits for the index.
    pub fn mine_to(&self, n: u32, script: &ScriptBuf) -> Vec<BlockHash> {
        let hashes = self.node.generate(n, script).expect("mine");
        self.wait_synced();
        hashes
    }

    /// Mines `n` blocks to the burn key.
    pub fn mine_burn(&self, n: u32) -> Vec<BlockHash> {
        let script = self.burn.script();
        self.mine_to(n, &script)
    }

    /// Mines one block to `address` and 100 more on top, so its coinbase (50 BTC at low heights)
    /// is spendable.
    pub fn fund_mature(&self, address: &Address) {
        self.mine_to(1, &address.script_pubkey());
        self.mine_burn(100);
    }

    /// Pays `amount` to `address` from a fresh coinbase of a faucet key only this helper uses,
    /// and returns the unconfirmed transaction's id.
    pub fn send_to(&self, address: &Address, amount: Amount) -> Txid {
        self.send_many(&[(address.clone(), amount)])
    }

    /// Pays several addresses in one unconfirmed transaction (so they confirm together).
    pub fn send_many(&self, payments: &[(Address, Amount)]) -> Txid {
        let faucet = Key::new(0xfa, Kind::P2wpkh);
        let height = self.height() + 1;
        self.mine_to(1, &faucet.script());
        self.mine_burn(100);
        let hash = self
            .node
            .block_hash(height)
            .expect("query")
            .expect("height");
        let coinbase = self
            .node
            .block(&hash)
            .expect("query")
            .expect("block")
            .txdata[0]
            .clone();
        let (outpoint, prevout) = out(&coinbase, 0);
        let total: Amount = payments.iter().map(|(_, a)| *a).sum();
        let change = prevout.value - total - Amount::from_sat(1_000 + 50 * payments.len() as u64);
        let mut outputs: Vec<TxOut> = payments
            .iter()
            .map(|(address, amount)| TxOut {
                value: *amount,
                script_pubkey: address.script_pubkey(),
            })
            .collect();
        outputs.push(TxOut {
            value: change,
            script_pubkey: faucet.script(),
        });
        let tx = sign(
            &[(outpoint, prevout, &faucet)],
            outputs,
            Sequence::ENABLE_RBF_NO_LOCKTIME,
        );
        self.broadcast(&tx)
    }

    pub fn broadcast(&self, tx: &Transaction) -> Txid {
        self.node.broadcast(tx).expect("broadcast")
    }

    /// A fresh regtest address of a throwaway key.
    pub fn burn_address(&self) -> Address {
        Address::from_script(&self.burn.script(), Network::Regtest).expect("standard")
    }
}

impl Default for Regtest {
    fn default() -> Regtest {
        Regtest::new()
    }
}

impl Drop for Regtest {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.shutdown());
        }
    }
}
