//! What the NWC service's end-to-end tests stand on: real ldk-nodes on the embedded chain, an
//! in-process Nostr relay, and a runtime for the clients.

#![allow(dead_code)] // Each test binary uses its own part.

use std::net::Ipv4Addr;

use moip_lightning::testing::{fund, open_usable, start_node};
use moip_lightning::LightningNode;
use moip_testenv::Regtest;
use nostr_relay_builder::builder::RateLimit;
use nostr_relay_builder::{LocalRelay, RelayBuilder};
use nostr_sdk::RelayUrl;

/// The chain, the nodes' directory, the wallet's node the service runs on, and a shop's node;
/// the wallet has a 1,000,000-sat channel to the shop and 400,000 sat pushed to the shop's side,
/// so each can pay the other.
pub fn wallet_and_shop() -> (Regtest, tempfile::TempDir, LightningNode, LightningNode) {
    let env = Regtest::new();
    let root = tempfile::tempdir().expect("tempdir");
    let wallet = start_node(&env, root.path(), "wallet");
    let shop = start_node(&env, root.path(), "shop");
    fund(&env, &wallet, &[&shop]);
    open_usable(&env, &wallet, &shop, 1_000_000, Some(400_000_000));
    (env, root, wallet, shop)
}

/// An in-process relay on loopback, port 0, that takes a test's bursts of requests.
pub fn relay(rt: &tokio::runtime::Runtime) -> (LocalRelay, RelayUrl) {
    let relay = LocalRelay::new(
        RelayBuilder::default()
            .addr(Ipv4Addr::LOCALHOST.into())
            .rate_limit(RateLimit {
                max_reqs: 500,
                notes_per_minute: 10_000,
            }),
    );
    rt.block_on(relay.run()).expect("relay");
    let url = rt.block_on(relay.url());
    (relay, url)
}

/// A runtime for the service and the clients, beside the blocking test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
