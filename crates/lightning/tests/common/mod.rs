//! Helpers shared by the integration tests: nodes with encrypted seed files, syncing through
//! the regtest Electrum server, and waits bounded by timeouts.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use moip_lightning::{
    LightningConfig, LightningEvent, LightningNode, Network, PeerAddress, SeedSource,
};
use moip_testenv::Regtest;
use moip_wallet::keystore::{KdfParams, SeedFile};

/// Generous bound for anything that waits on the network or the chain.
pub const WAIT: Duration = Duration::from_secs(90);

/// A node plus what it takes to start it again.
pub struct TestNode {
    pub node: LightningNode,
    pub config: LightningConfig,
}

impl std::ops::Deref for TestNode {
    type Target = LightningNode;
    fn deref(&self) -> &LightningNode {
        &self.node
    }
}

impl TestNode {
    /// A node named `name` under `root`: a fresh mnemonic sealed in a seed file (cheap KDF),
    /// a loopback port, and moip's Electrum server as chain source.
    pub fn start(env: &Regtest, root: &Path, name: &str) -> TestNode {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("node dir");
        let seed_path = dir.join("seed");
        let mnemonic = moip_lightning::ldk_node::generate_entropy_mnemonic(None);
        SeedFile::create_with(&seed_path, &mnemonic, "pw", KdfParams::INSECURE_FAST)
            .expect("seed file");
        let mut config = LightningConfig::new(
            Network::Regtest,
            dir.join("ldk"),
            env.electrum_url(),
            SeedSource::EncryptedFile {
                path: seed_path,
                password: "pw".into(),
            },
        );
        config.listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))];
        config.alias = Some(name.to_string());
        config.sync_interval = Some(moip_lightning::MIN_SYNC_INTERVAL);
        let node = LightningNode::start(config.clone()).expect("start node");
        TestNode { node, config }
    }

    /// Stops the node and starts it again from its data directory.
    pub fn restart(&mut self) {
        self.node.stop().expect("stop");
        self.node = LightningNode::start(self.config.clone()).expect("restart node");
    }

    pub fn peer(&self) -> PeerAddress {
        self.node
            .peer_addresses()
            .into_iter()
            .next()
            .expect("listening")
    }

    pub fn dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }
}

pub use moip_testkit::free_port;

/// Syncs every node and waits until each has processed the chain's tip.
pub fn sync_all(env: &Regtest, nodes: &[&TestNode]) {
    let tip = env.height();
    for node in nodes {
        node.wait_for(WAIT, "the node to reach the tip", |n| {
            n.sync().ok()?;
            (n.best_block_height() >= tip).then_some(())
        })
        .expect("synced");
    }
}

/// Mines `n` blocks (to a burn address) and syncs the nodes.
pub fn mine(env: &Regtest, n: u32, nodes: &[&TestNode]) {
    env.mine_burn(n);
    sync_all(env, nodes);
}

/// Gives each node one mature coinbase (50 BTC at these heights).
pub fn fund(env: &Regtest, nodes: &[&TestNode]) {
    for node in nodes {
        let address = node.new_address().expect("address");
        env.mine_to(1, &address.script_pubkey());
    }
    mine(env, 100, nodes);
    for node in nodes {
        node.wait_for(WAIT, "the coinbase in the wallet", |n| {
            n.sync().ok()?;
            (n.balance().onchain_spendable_sats > 0).then_some(())
        })
        .expect("funded");
    }
}

/// Opens a channel and waits until its funding transaction is in the chain's mempool (ldk-node
/// broadcasts from a queue, so a block mined at once could miss it).
pub fn open(
    env: &Regtest,
    from: &TestNode,
    to: &TestNode,
    sats: u64,
    push_msat: Option<u64>,
) -> u128 {
    open_with(env, from, to, sats, push_msat, true)
}

/// [`open`], announced or private.
pub fn open_with(
    env: &Regtest,
    from: &TestNode,
    to: &TestNode,
    sats: u64,
    push_msat: Option<u64>,
    announce: bool,
) -> u128 {
    let id = from
        .open_channel(&to.peer(), sats, push_msat, announce)
        .expect("open channel");
    from.wait_for(WAIT, "the funding transaction in the mempool", |n| {
        let txid = n
            .channels()
            .into_iter()
            .find(|c| c.user_channel_id == id)?
            .funding_txid?;
        env.node.mempool_txids().contains(&txid).then_some(())
    })
    .expect("funding broadcast");
    id
}

/// Waits until `node` has `count` usable channels.
pub fn wait_usable(node: &TestNode, count: usize) {
    node.wait_for(WAIT, "usable channels", |n| {
        (n.channels().iter().filter(|c| c.is_usable).count() >= count).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:#?}", node.channels()));
}

/// Waits for the next event on `events` that `pick` accepts.
pub fn wait_event<T>(
    node: &LightningNode,
    events: &mut tokio::sync::broadcast::Receiver<LightningEvent>,
    what: &str,
    mut pick: impl FnMut(&LightningEvent) -> Option<T>,
) -> T {
    node.wait_for(WAIT, what, |_| loop {
        match events.try_recv() {
            Ok(event) => {
                if let Some(value) = pick(&event) {
                    return Some(value);
                }
            }
            Err(_) => return None,
        }
    })
    .expect(what)
}

/// What a node can send over its channels right now, per channel outbound capacity.
pub fn outbound_msat(node: &LightningNode) -> u64 {
    node.channels().iter().map(|c| c.outbound_msat).sum()
}
