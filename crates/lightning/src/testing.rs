//! Regtest helpers for the tests and benchmarks of the layers above (feature `testing`): real
//! nodes on the embedded chain, synced through moip's Electrum server, and waits that end on
//! the nodes' state with a timeout. Not for production use — seeds are kept in memory.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use moip_testenv::Regtest;

use crate::{LightningConfig, LightningNode, Network, PeerAddress, SeedSource};

/// Generous bound for anything that waits on the chain or a peer.
pub const WAIT: Duration = Duration::from_secs(120);

/// A free loopback port (bound and released; the node binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A node named `name` in `root/name`: a fresh in-memory mnemonic, a loopback port, an alias
/// (so its channels are announced) and the shortest background sync.
pub fn start_node(env: &Regtest, root: &Path, name: &str) -> LightningNode {
    let mut config = LightningConfig::new(
        Network::Regtest,
        root.join(name),
        env.electrum_url(),
        SeedSource::Mnemonic(ldk_node::generate_entropy_mnemonic(None)),
    );
    config.listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))];
    config.alias = Some(name.into());
    config.sync_interval = Some(crate::MIN_SYNC_INTERVAL);
    LightningNode::start(config).expect("start the node")
}

/// Where `node` listens.
pub fn peer(node: &LightningNode) -> PeerAddress {
    node.peer_addresses()
        .into_iter()
        .next()
        .expect("the node listens")
}

/// Waits until every node has synced to the chain's tip.
pub fn sync(env: &Regtest, nodes: &[&LightningNode]) {
    let tip = env.height();
    for node in nodes {
        node.wait_for(WAIT, "the node to reach the tip", |n| {
            n.sync().ok()?;
            (n.best_block_height() >= tip).then_some(())
        })
        .expect("synced");
    }
}

/// Mines `n` blocks to a burn address and syncs the nodes.
pub fn mine(env: &Regtest, n: u32, nodes: &[&LightningNode]) {
    env.mine_burn(n);
    sync(env, nodes);
}

/// Gives `node` one matured coinbase; `others` are synced along.
pub fn fund(env: &Regtest, node: &LightningNode, others: &[&LightningNode]) {
    let address = node.new_address().expect("address");
    env.mine_to(1, &address.script_pubkey());
    let mut all = vec![node];
    all.extend_from_slice(others);
    mine(env, 100, &all);
    node.wait_for(WAIT, "the coinbase in the wallet", |n| {
        n.sync().ok()?;
        (n.balance().onchain_spendable_sats > 0).then_some(())
    })
    .expect("funded");
}

/// Opens an announced channel `from` → `to` (pushing `push_msat`), confirms it and waits until
/// both sides can use it.
pub fn open_usable(
    env: &Regtest,
    from: &LightningNode,
    to: &LightningNode,
    sats: u64,
    push_msat: Option<u64>,
) -> u128 {
    let before = [from, to].map(|n| n.channels().iter().filter(|c| c.is_usable).count());
    let id = from
        .open_channel(&peer(to), sats, push_msat, true)
        .expect("open the channel");
    mine(env, 6, &[from, to]);
    for (node, usable) in [from, to].into_iter().zip(before) {
        node.wait_for(WAIT, "the new channel to be usable", |n| {
            (n.channels().iter().filter(|c| c.is_usable).count() > usable).then_some(())
        })
        .expect("usable");
    }
    id
}
