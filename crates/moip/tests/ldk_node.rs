//! ldk-node's bitcoind chain sources sync from the embedded node unchanged: REST (with RPC for
//! broadcasts) with a plain ldk-node, and JSON-RPC as the chain source of moip's Lightning node.
//! The wallet sees its coins, follows the tip, and its payments reach the node's mempool and
//! confirm.

mod common;

use std::time::Duration;

use common::{wait_until, NodeProcess, BURN_ADDRESS};
use moip_lightning::{ChainSourceConfig, LightningConfig, LightningNode, Network, SeedSource};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);

/// A plain ldk-node on the node's REST interface (RPC for broadcasts and fees).
fn ldk_node(node: &NodeProcess, dir: &std::path::Path, seed: u8) -> ldk_node::Node {
    let (host, port) = node.host_port();
    let mut builder = ldk_node::Builder::new();
    builder.set_network(Network::Regtest);
    builder.set_storage_dir_path(dir.to_string_lossy().into_owned());
    builder.set_entropy_seed_bytes([seed; 64]);
    builder.set_chain_source_bitcoind_rest(
        host.clone(),
        port,
        host,
        port,
        node.user.clone(),
        node.password.clone(),
    );
    let ldk = builder.build().expect("build ldk-node");
    ldk.start().expect("start ldk-node");
    ldk
}

fn synced_to(ldk: &ldk_node::Node, node: &NodeProcess, what: &str, balance: impl Fn(u64) -> bool) {
    let tip = node.height() as u32;
    wait_until(WAIT, what, || {
        ldk.sync_wallets().ok()?;
        let status = ldk.status();
        let total = ldk.list_balances().total_onchain_balance_sats;
        (status.current_best_block.height == tip && balance(total)).then_some(())
    });
}

#[test]
fn ldk_node_syncs_from_the_embedded_node_over_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeProcess::start(dir.path());
    node.call("generatetoaddress", json!([101, BURN_ADDRESS]));

    let ldk_dir = tempfile::tempdir().expect("tempdir");
    let ldk = ldk_node(&node, ldk_dir.path(), 8);
    let address = ldk.onchain_payment().new_address().expect("address");
    let reward = mine_coinbase_to(&node, &address.to_string());
    synced_to(
        &ldk,
        &node,
        "the matured coinbase in ldk-node's wallet",
        |b| b == reward,
    );

    // A payment from ldk-node goes through sendrawtransaction into the mempool.
    let txid = ldk
        .onchain_payment()
        .send_to_address(&burn(), 100_000_000, None)
        .expect("send");
    confirm_payment(&node, &txid.to_string());
    synced_to(&ldk, &node, "the payment confirmed", |b| {
        b < reward - 100_000_000 && b > reward - 100_100_000
    });
    ldk.stop().expect("stop ldk-node");
}

/// moip's own Lightning node, told to use a bitcoind's JSON-RPC as its chain source (here the
/// embedded node's), syncs and pays through it like through the Electrum server.
#[test]
fn moip_lightning_node_with_a_bitcoind_rpc_chain_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeProcess::start(dir.path());
    node.call("generatetoaddress", json!([101, BURN_ADDRESS]));

    let (host, port) = node.host_port();
    let ln_dir = tempfile::tempdir().expect("tempdir");
    let mut config = LightningConfig::new(
        Network::Regtest,
        ln_dir.path().join("ldk"),
        "unused",
        SeedSource::Mnemonic(moip_lightning::ldk_node::generate_entropy_mnemonic(None)),
    );
    config.chain = ChainSourceConfig::BitcoindRpc {
        host,
        port,
        user: node.user.clone(),
        password: node.password.clone(),
    };
    config.listen = Vec::new();
    let ln = LightningNode::start(config).expect("start the lightning node");

    let address = ln.new_address().expect("address");
    let reward = mine_coinbase_to(&node, &address.to_string());
    let tip = node.height() as u32;
    ln.wait_for(WAIT, "the matured coinbase", |n| {
        n.sync().ok()?;
        (n.best_block_height() == tip && n.balance().onchain_sats == reward).then_some(())
    })
    .expect("synced over RPC");

    let txid = ln
        .send_onchain(BURN_ADDRESS, 100_000_000)
        .expect("send on chain");
    confirm_payment(&node, &txid.to_string());
    let tip = node.height() as u32;
    ln.wait_for(WAIT, "the payment confirmed", |n| {
        n.sync().ok()?;
        let balance = n.balance().onchain_sats;
        (n.best_block_height() == tip
            && balance < reward - 100_000_000
            && balance > reward - 100_100_000)
            .then_some(())
    })
    .expect("confirmed over RPC");
    ln.stop().expect("stop");
}

/// Mines a coinbase to `address` and lets it mature; returns its value.
fn mine_coinbase_to(node: &NodeProcess, address: &str) -> u64 {
    let height = node.height() + 1;
    node.call("generatetoaddress", json!([1, address]));
    node.call("generatetoaddress", json!([100, BURN_ADDRESS]));
    if height < 150 {
        5_000_000_000
    } else {
        2_500_000_000
    }
}

/// Waits for `txid` in the node's mempool (ldk-node broadcasts from a background queue), mines
/// it and checks it confirmed.
fn confirm_payment(node: &NodeProcess, txid: &str) {
    wait_until(WAIT, "the payment in the node's mempool", || {
        (node.call("getrawmempool", json!([])) == json!([txid])).then_some(())
    });
    node.call("generatetoaddress", json!([1, BURN_ADDRESS]));
    let tx = node.call("getrawtransaction", json!([txid, true]));
    assert_eq!(tx["confirmations"], json!(1));
}

fn burn() -> ldk_node::bitcoin::Address {
    BURN_ADDRESS
        .parse::<ldk_node::bitcoin::Address<_>>()
        .expect("address")
        .assume_checked()
}
