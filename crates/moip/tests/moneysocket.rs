//! Moneysocket end to end: consumers ↔ relay ↔ provider, the provider's wallet being a real
//! ldk-node on the embedded regtest chain (through moip's wiring), paying and receiving real
//! invoices against a second node. Two consumers on one account (two beacons) both see every
//! balance change; a beacon's spending limit holds; bad invoices get the provider's error.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use moip::wiring::RailProvider;
use moip_lightning::testing::{fund, open_usable, start_node};
use moip_lightning::{PaymentState, RouteLimits};
use moip_moneysocket::client::ClientConfig;
use moip_moneysocket::consumer::{Consumer, ConsumerError};
use moip_moneysocket::provider::{self, Account, Denomination, SpendingLimit};
use moip_moneysocket::relay::{Relay, RelayConfig};
use moip_moneysocket::v0::message::{Notification, NotificationKind};
use moip_moneysocket::SharedSeed;
use moip_testenv::Regtest;
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(90);

/// The next unsolicited notification that `pick` accepts.
async fn next<T>(
    events: &mut broadcast::Receiver<Notification>,
    what: &str,
    pick: impl Fn(&NotificationKind) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(n) = events.recv().await {
                if let Some(value) = pick(&n.kind) {
                    return value;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what}"))
}

fn balance_update(kind: &NotificationKind) -> Option<u64> {
    match kind {
        NotificationKind::Provider(info) => info.wad.as_ref().map(|w| w.msats()),
        _ => None,
    }
}

#[test]
fn consumers_pay_and_receive_through_the_relay_on_a_real_node() {
    let env = Regtest::new();
    let root = tempfile::tempdir().expect("tempdir");
    let wallet = start_node(&env, root.path(), "wallet");
    let shop = start_node(&env, root.path(), "shop");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    fund(&env, &wallet, &[&shop]);
    open_usable(&env, &wallet, &shop, 1_000_000, Some(400_000_000));

    let relay = rt
        .block_on(Relay::bind(RelayConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            ..RelayConfig::default()
        }))
        .expect("relay");
    let url = format!("ws://{}", relay.local_addr());

    // One account (the wallet node, shown in USD too) on two beacons; the first one limited.
    let _guard = rt.enter();
    let backend = RailProvider::new(Arc::new(wallet.clone()));
    let account = Account::new(
        backend,
        Denomination::Fiat {
            code: "USD".into(),
            iso_num: 840,
            units_per_btc: 60_000.0,
            decimals: 2,
            symbol: "$".into(),
        },
    );
    let (beacon1, beacon2) = (
        SharedSeed::from_bytes([1; 16]),
        SharedSeed::from_bytes([2; 16]),
    );
    let config = ClientConfig::default();
    let limit = SpendingLimit {
        max_msat: Some(50_000_000),
    };
    for (seed, limit) in [(beacon1, limit), (beacon2, SpendingLimit::default())] {
        let (url, account, config) = (url.clone(), Arc::clone(&account), config.clone());
        rt.spawn(async move { provider::serve(&url, seed, account, limit, &config).await });
    }
    let (c1, c2) = rt.block_on(async {
        let c1 = Consumer::connect(&url, beacon1, &config, WAIT).await;
        let c2 = Consumer::connect(&url, beacon2, &config, WAIT).await;
        (c1.expect("consumer 1"), c2.expect("consumer 2"))
    });
    let (mut e1, mut e2) = (c1.events(), c2.events());

    // Both see the same account and its balance, in msat and in dollars.
    let (p1, p2) = rt.block_on(async { (c1.provider().await, c2.provider().await) });
    let (p1, p2) = (p1.expect("provider 1"), p2.expect("provider 2"));
    assert_eq!(p1.account_uuid, p2.account_uuid);
    let wad = p1.wad.expect("wad");
    assert_eq!(wad.msats(), wallet.balance().lightning_sats * 1000);
    assert_eq!(wad.code(), "USD");
    rt.block_on(c1.ping()).expect("pong");

    // Consumer 1 pays the shop: the preimage proves it, and both consumers see the new balance.
    let before = wad.msats();
    let tea = shop
        .create_invoice(Some(20_000_000), "tea", 3600)
        .expect("invoice");
    let preimage = rt.block_on(c1.pay(&tea.bolt11)).expect("pay");
    assert_eq!(
        sha256::Hash::hash(&preimage).to_byte_array(),
        tea.payment_hash.0
    );
    for events in [&mut e1, &mut e2] {
        let balance = rt.block_on(next(events, "balance update", balance_update));
        assert!(balance <= before - 20_000_000, "{balance}");
    }

    // Consumer 2 asks for an invoice, the shop pays it: consumer 2 gets the preimage, both
    // get the balance.
    let invoice = rt
        .block_on(c2.invoice(NonZeroU64::new(10_000_000).expect("non-zero")))
        .expect("invoice");
    let paid = shop
        .pay(&invoice, None, RouteLimits::default(), WAIT)
        .expect("the shop pays");
    let got = rt.block_on(next(&mut e2, "the preimage", |k| match k {
        NotificationKind::Preimage { preimage, .. } => Some(*preimage.as_bytes()),
        _ => None,
    }));
    assert_eq!(Some(got), paid.preimage.map(|p| p.0));
    for events in [&mut e1, &mut e2] {
        let balance = rt.block_on(next(events, "balance update", balance_update));
        assert_eq!(balance, wallet.balance().lightning_sats * 1000);
    }

    // Beacon 1's limit: 50k sat, 20k spent; 40k more is refused and nothing is paid.
    let cake = shop
        .create_invoice(Some(40_000_000), "cake", 3600)
        .expect("invoice");
    match rt.block_on(c1.pay(&cake.bolt11)) {
        Err(ConsumerError::Provider(msg)) => assert!(msg.contains("spending limit"), "{msg}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_ne!(
        shop.payment_by_hash(cake.payment_hash).map(|p| p.state),
        Some(PaymentState::Succeeded)
    );
    // Beacon 2 has no limit: the same invoice is paid through it.
    rt.block_on(c2.pay(&cake.bolt11)).expect("paid on beacon 2");

    // A malformed invoice: the provider's error, and the session goes on.
    match rt.block_on(c2.pay("lnbcrt1garbage")) {
        Err(ConsumerError::Provider(msg)) => assert!(msg.contains("malformed"), "{msg}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    rt.block_on(c2.ping()).expect("still connected");

    drop(_guard);
    rt.block_on(relay.shutdown());
    wallet.stop().expect("stop");
    shop.stop().expect("stop");
}
