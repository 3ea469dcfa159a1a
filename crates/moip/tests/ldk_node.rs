//! ldk-node's bitcoind chain sources (JSON-RPC, and REST with RPC for broadcasts) sync from the
//! embedded node unchanged: the wallet sees its coins, follows the tip, and its payments reach
//! the node's mempool and confirm.

mod common;

use std::time::Duration;

use common::{wait_until, NodeProcess, BURN_ADDRESS};
use ldk_node::bitcoin::Network;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);

fn ldk_node(node: &NodeProcess, dir: &std::path::Path, seed: u8, rest: bool) -> ldk_node::Node {
    let (host, port) = node.host_port();
    let mut builder = ldk_node::Builder::new();
    builder.set_network(Network::Regtest);
    builder.set_storage_dir_path(dir.to_string_lossy().into_owned());
    builder.set_entropy_seed_bytes([seed; 64]);
    if rest {
        builder.set_chain_source_bitcoind_rest(
            host.clone(),
            port,
            host,
            port,
            node.user.clone(),
            node.password.clone(),
        );
    } else {
        builder.set_chain_source_bitcoind_rpc(host, port, node.user.clone(), node.password.clone());
    }
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
fn ldk_node_syncs_from_the_embedded_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeProcess::start(dir.path());
    node.call("generatetoaddress", json!([101, BURN_ADDRESS]));

    for (seed, rest) in [(7u8, false), (8u8, true)] {
        let ldk_dir = tempfile::tempdir().expect("tempdir");
        let ldk = ldk_node(&node, ldk_dir.path(), seed, rest);
        let address = ldk.onchain_payment().new_address().expect("address");
        let height = node.height() + 1;
        node.call("generatetoaddress", json!([1, address.to_string()]));
        node.call("generatetoaddress", json!([100, BURN_ADDRESS]));
        let reward = if height < 150 {
            5_000_000_000
        } else {
            2_500_000_000
        };
        synced_to(
            &ldk,
            &node,
            "the matured coinbase in ldk-node's wallet",
            |b| b == reward,
        );

        // A payment from ldk-node goes through sendrawtransaction into the mempool.
        let dest: ldk_node::bitcoin::Address = BURN_ADDRESS
            .parse::<ldk_node::bitcoin::Address<_>>()
            .expect("address")
            .assume_checked();
        let txid = ldk
            .onchain_payment()
            .send_to_address(&dest, 100_000_000, None)
            .expect("send");
        // ldk-node broadcasts from a background queue: wait for the node's mempool to have it.
        wait_until(WAIT, "the payment in the node's mempool", || {
            (node.call("getrawmempool", json!([])) == json!([txid.to_string()])).then_some(())
        });
        node.call("generatetoaddress", json!([1, BURN_ADDRESS]));
        synced_to(&ldk, &node, "the payment confirmed", |b| {
            b < reward - 100_000_000 && b > reward - 100_100_000
        });
        let tx = node.call("getrawtransaction", json!([txid.to_string(), true]));
        assert_eq!(tx["confirmations"], json!(1));
        ldk.stop().expect("stop ldk-node");
    }
}
