//! A Lightning node of the test's own beside a `moip up` process: on the same chain through the
//! node's Electrum server, funded by a coinbase mined over the node's RPC, with a channel to
//! the community's Lightning node — the customer, employer or worker on the other side.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use moip_lightning::{LightningConfig, LightningNode, Network, PeerAddress, SeedSource};
use serde_json::json;

use super::{NodeProcess, BURN_ADDRESS};

const WAIT: Duration = Duration::from_secs(120);

/// Starts the node in `dir`, syncing through `electrum_url`, funds it and opens a channel of
/// `sats` to `community` (the `lightning:` line `moip up` prints); returns once it is usable.
pub fn payer_with_channel(
    node: &NodeProcess,
    dir: &Path,
    electrum_url: &str,
    community: &str,
    sats: u64,
) -> LightningNode {
    let mut config = LightningConfig::new(
        Network::Regtest,
        dir.to_owned(),
        electrum_url.to_owned(),
        SeedSource::Mnemonic(moip_lightning::ldk_node::generate_entropy_mnemonic(None)),
    );
    config.listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, super::free_port()))];
    config.sync_interval = Some(moip_lightning::MIN_SYNC_INTERVAL);
    // Announced channels need an alias.
    config.alias = Some("payer".into());
    let payer = LightningNode::start(config).expect("the test's Lightning node");
    let address = payer.new_address().expect("address").to_string();
    node.call("generatetoaddress", json!([1, address]));
    node.call("generatetoaddress", json!([100, BURN_ADDRESS]));
    payer
        .wait_for(WAIT, "the coinbase to mature", |n| {
            n.sync().ok()?;
            (n.balance().onchain_spendable_sats > 0).then_some(())
        })
        .expect("funded");
    let community: PeerAddress = community.parse().expect("the node's Lightning address");
    payer
        .open_channel(&community, sats, None, true)
        .expect("open a channel");
    node.call("generatetoaddress", json!([6, BURN_ADDRESS]));
    payer
        .wait_for(WAIT, "the channel to be usable", |n| {
            n.sync().ok()?;
            n.channels().iter().any(|c| c.is_usable).then_some(())
        })
        .expect("usable");
    payer
}
