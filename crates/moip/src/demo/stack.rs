//! The demo's stack: the embedded regtest chain, moip's Electrum server over it, and three
//! Lightning nodes — the community's, the employer's and the worker's — synced through that
//! server, as `moip up` runs them, on loopback ports picked at random.
//!
//! The nodes' mnemonics are made here and held in memory only: a kept data directory shows the
//! nodes' state and logs, but no key.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bitcoin::key::TweakedPublicKey;
use bitcoin::{ScriptBuf, XOnlyPublicKey};
use moip_chain::{ChainSource, EmbeddedNode, NodeConfig};
use moip_electrum::{ElectrumServer, ServerConfig};
use moip_lightning::{
    LightningConfig, LightningNode, Network, PeerAddress, SeedSource, MIN_SYNC_INTERVAL,
};
use tokio::runtime::Runtime;

use super::{wait_until, WAIT};

/// Channels the community opens to the employer and the worker. ldk-node lets a tenth of a
/// channel be in flight per payment, so these carry payments of up to 100 000 sat.
pub(super) const CHANNEL_SATS: u64 = 1_000_000;
/// Pushed to the employer's side of its channel, so the employer can pay the community.
pub(super) const EMPLOYER_PUSH_SATS: u64 = 400_000;

/// The chain, the Electrum server and the three Lightning nodes.
pub(super) struct Stack {
    pub(super) chain: EmbeddedNode,
    electrum: ElectrumServer,
    /// `tcp://127.0.0.1:port` of the Electrum server.
    pub(super) electrum_url: String,
    pub(super) community: LightningNode,
    pub(super) employer: LightningNode,
    pub(super) worker: LightningNode,
    /// Blocks nobody should profit from are mined here (see [`burn_script`]).
    burn: ScriptBuf,
}

impl Stack {
    /// Opens the chain in `dir/chain`, serves it over Electrum from `dir/electrum` and starts the
    /// nodes in `dir/ln/<name>`.
    pub(super) fn start(rt: &Runtime, dir: &Path) -> anyhow::Result<Stack> {
        let mut config = NodeConfig::new(dir.join("chain"));
        // One short run: the chain is made durable once, at shutdown.
        config.background_checkpoints = false;
        let chain = EmbeddedNode::open(config).context("opening the embedded node")?;
        let mut config = ServerConfig::new(dir.join("electrum"));
        config.tcp = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        (config.tls, config.ws, config.wss) = (None, None, None);
        // Every client of this server is the demo's own (its three Lightning nodes and the
        // reserve's wallets, all from 127.0.0.1): none is limited.
        config.limits.exempt = vec![IpAddr::from(Ipv4Addr::LOCALHOST)];
        let source: Arc<dyn ChainSource> = Arc::new(chain.clone());
        let electrum = rt
            .block_on(ElectrumServer::start(source, config))
            .context("starting the Electrum server")?;
        let tcp = electrum
            .addresses()
            .tcp
            .context("the Electrum server has no TCP listener")?;
        let electrum_url = format!("tcp://{tcp}");
        let start = |name: &str| start_node(dir, &electrum_url, name);
        let (community, employer, worker) =
            (start("community")?, start("employer")?, start("worker")?);
        Ok(Stack {
            chain,
            electrum,
            electrum_url,
            community,
            employer,
            worker,
            burn: burn_script()?,
        })
    }

    pub(super) fn height(&self) -> anyhow::Result<u32> {
        Ok(self.chain.tip()?.height)
    }

    /// Mines `n` blocks paying `script` and waits until the Electrum server has indexed them.
    pub(super) fn mine_to(&self, n: u32, script: &ScriptBuf) -> anyhow::Result<u32> {
        self.chain.generate(n, script).context("mining")?;
        let tip = self.height()?;
        wait_until(WAIT, "the Electrum index to reach the tip", || {
            (self.electrum.is_synced() && self.electrum.indexed_height() == Some(tip)).then_some(())
        })?;
        Ok(tip)
    }

    /// Mines `n` blocks whose rewards nobody can spend.
    pub(super) fn mine(&self, n: u32) -> anyhow::Result<u32> {
        self.mine_to(n, &self.burn)
    }

    /// Waits until every Lightning node has processed the chain up to its tip.
    pub(super) fn sync_nodes(&self) -> anyhow::Result<()> {
        let tip = self.height()?;
        for node in self.nodes() {
            node.wait_for(WAIT, "a Lightning node to reach the tip", |n| {
                n.sync().ok()?;
                (n.best_block_height() >= tip).then_some(())
            })?;
        }
        Ok(())
    }

    /// Waits until the community node's wallet can spend its matured coinbase.
    pub(super) fn wait_community_funded(&self) -> anyhow::Result<u64> {
        Ok(self
            .community
            .wait_for(WAIT, "the community node's coinbase", |n| {
                n.sync().ok()?;
                let sats = n.balance().onchain_spendable_sats;
                (sats > 0).then_some(sats)
            })?)
    }

    /// Opens the community's channels to the employer (with [`EMPLOYER_PUSH_SATS`] on the
    /// employer's side) and to the worker, confirms them and waits until all sides can use them.
    pub(super) fn open_channels(&self) -> anyhow::Result<()> {
        self.community
            .open_channel(
                &peer(&self.employer)?,
                CHANNEL_SATS,
                Some(EMPLOYER_PUSH_SATS * 1_000),
                true,
            )
            .context("opening the channel to the employer")?;
        self.community
            .open_channel(&peer(&self.worker)?, CHANNEL_SATS, None, true)
            .context("opening the channel to the worker")?;
        // Six confirmations: the depth ldk-node waits for before a channel is usable.
        self.mine(6)?;
        self.sync_nodes()?;
        for (node, channels) in [(&self.community, 2), (&self.employer, 1), (&self.worker, 1)] {
            node.wait_for(WAIT, "the channels to be usable", |n| {
                let usable = n.channels().iter().filter(|c| c.is_usable).count();
                (usable >= channels).then_some(())
            })?;
        }
        Ok(())
    }

    fn nodes(&self) -> [&LightningNode; 3] {
        [&self.community, &self.employer, &self.worker]
    }

    /// Stops everything, the top layer first.
    pub(super) fn stop(self, rt: &Runtime) -> anyhow::Result<()> {
        for node in self.nodes() {
            node.stop().context("stopping a Lightning node")?;
        }
        rt.block_on(self.electrum.shutdown());
        self.chain
            .shutdown()
            .context("stopping the embedded node")?;
        Ok(())
    }
}

/// A node called `name`, on a free loopback port, with an alias (so its channels are
/// announced) and the shortest background sync ldk-node allows.
fn start_node(dir: &Path, electrum_url: &str, name: &str) -> anyhow::Result<LightningNode> {
    let mnemonic = moip_wallet::generate_mnemonic(24)?;
    let mut config = LightningConfig::new(
        Network::Regtest,
        dir.join("ln").join(name),
        electrum_url,
        SeedSource::Mnemonic(mnemonic),
    );
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    config.listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))];
    config.alias = Some(name.into());
    config.sync_interval = Some(MIN_SYNC_INTERVAL);
    LightningNode::start(config).with_context(|| format!("starting the {name} node"))
}

fn peer(node: &LightningNode) -> anyhow::Result<PeerAddress> {
    node.peer_addresses()
        .into_iter()
        .next()
        .context("the node listens nowhere")
}

/// A taproot output whose key is BIP341's NUMS point, used as is: nobody knows its private
/// key, so the rewards of the blocks mined to it are out of everyone's reach.
fn burn_script() -> anyhow::Result<ScriptBuf> {
    let key: XOnlyPublicKey = moip_wallet::collateral::NUMS.parse()?;
    Ok(ScriptBuf::new_p2tr_tweaked(
        TweakedPublicKey::dangerous_assume_tweaked(key),
    ))
}
