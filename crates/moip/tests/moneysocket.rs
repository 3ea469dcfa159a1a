//! Moneysocket end to end: consumers ↔ relay ↔ provider, the provider's wallet being a real
//! ldk-node on the embedded regtest chain (through moip's wiring), paying and receiving real
//! invoices against a second node.
//!
//! Covered: two consumers on one account (two beacons) both see every balance change; a moip
//! consumer negotiates the authenticated layer, a legacy (v0) one talks plain v0 to the same
//! provider; the nexus events; the extensions (routing fee on pay, invoice description,
//! amountless invoices paid with an amount, numeric error codes); a beacon's spending limit; a
//! provider inside its own relay (local connection); and a relay that tampers with or replays
//! a frame on the authenticated layer, which ends the session.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use futures_util::{SinkExt, StreamExt};
use ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescriptionRef};
use moip::wiring::RailProvider;
use moip_lightning::testing::{fund, open_usable, start_node};
use moip_lightning::{PaymentState, RouteLimits};
use moip_moneysocket::client::{ClientConfig, ClientError, Security};
use moip_moneysocket::consumer::{Consumer, ConsumerError};
use moip_moneysocket::nexus::{NexusEvent, NexusEventKind};
use moip_moneysocket::provider::{self, Account, Denomination, ProviderError, SpendingLimit};
use moip_moneysocket::relay::{Relay, RelayConfig, RelayHandle};
use moip_moneysocket::secure::SecureError;
use moip_moneysocket::v0::message::{ErrorCode, Notification, NotificationKind};
use moip_moneysocket::SharedSeed;
use moip_testenv::Regtest;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(90);

/// The next broadcast item that `pick` accepts.
async fn next<E: Clone, T>(
    events: &mut broadcast::Receiver<E>,
    what: &str,
    pick: impl Fn(&E) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(event) = events.recv().await {
                if let Some(value) = pick(&event) {
                    return value;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what}"))
}

fn balance_update(n: &Notification) -> Option<u64> {
    match &n.kind {
        NotificationKind::Provider(info) => info.wad.as_ref().map(|w| w.msats()),
        _ => None,
    }
}

fn announced(event: &NexusEvent) -> Option<bool> {
    match event.kind {
        NexusEventKind::Announced { secure } => Some(secure),
        _ => None,
    }
}

fn code_of(result: Result<impl std::fmt::Debug, ConsumerError>) -> ErrorCode {
    match result {
        Err(ConsumerError::Provider {
            code: Some(code), ..
        }) => code,
        other => panic!("expected a coded refusal, got {other:?}"),
    }
}

/// A WebSocket man in the middle for one connection: forwards both ways between a client and
/// the relay, and hands every client→relay binary frame (numbered from 1) to `edit`, which
/// returns what to forward instead.
async fn meddling_proxy(
    relay: SocketAddr,
    edit: fn(usize, Vec<u8>) -> Vec<Vec<u8>>,
) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(client) = tokio_tungstenite::accept_async(client).await else {
            return;
        };
        let upstream = TcpStream::connect(relay).await.expect("relay");
        let (upstream, _) = tokio_tungstenite::client_async(format!("ws://{relay}"), upstream)
            .await
            .expect("relay handshake");
        let (mut client_tx, mut client_rx) = client.split();
        let (mut relay_tx, mut relay_rx) = upstream.split();
        let up = async {
            let mut n = 0;
            while let Some(Ok(message)) = client_rx.next().await {
                let frames = match message {
                    WsMessage::Binary(bytes) => {
                        n += 1;
                        edit(n, bytes.to_vec())
                            .into_iter()
                            .map(|b| WsMessage::Binary(b.into()))
                            .collect()
                    }
                    other => vec![other],
                };
                for frame in frames {
                    if relay_tx.send(frame).await.is_err() {
                        return;
                    }
                }
            }
            let _ = relay_tx.close().await;
        };
        let down = async {
            while let Some(Ok(message)) = relay_rx.next().await {
                if client_tx.send(message).await.is_err() {
                    return;
                }
            }
            let _ = client_tx.close().await;
        };
        tokio::join!(up, down);
    });
    (addr, task)
}

/// Serves `seed` once through a proxy that applies `edit`, connects a consumer through it and
/// pings: returns how the provider's session ended.
async fn meddled_session(
    relay: &RelayHandle,
    account: &Arc<Account>,
    seed: SharedSeed,
    edit: fn(usize, Vec<u8>) -> Vec<Vec<u8>>,
) -> Result<(), ProviderError> {
    let url = format!("ws://{}", relay.local_addr());
    let serving = tokio::spawn({
        let account = Arc::clone(account);
        async move {
            let config = ClientConfig::default();
            provider::serve(&url, seed, account, SpendingLimit::default(), &config).await
        }
    });
    let (proxy, proxy_task) = meddling_proxy(relay.local_addr(), edit).await;
    let consumer = Consumer::connect(
        &format!("ws://{proxy}"),
        seed,
        &ClientConfig::default(),
        WAIT,
    )
    .await
    .expect("the handshake passes the proxy untouched");
    assert!(consumer.is_secure());
    // Frame 3 is the first one sealed by the authenticated layer: this ping.
    let _ = consumer.ping().await;
    let ended = tokio::time::timeout(WAIT, serving)
        .await
        .expect("the provider ends the session")
        .expect("provider task");
    // The consumer learns of it: the relay ends the rendezvous.
    let reason = tokio::time::timeout(WAIT, consumer.revoked())
        .await
        .expect("the consumer's nexus is revoked");
    assert!(!reason.is_empty());
    proxy_task.abort();
    ended
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
    let account = Account::new(backend, Denomination::fiat("USD", 60_000.0).expect("USD"));
    let mut nexus_events = account.events();
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
    // Consumer 1 is a moip app; consumer 2 speaks v0 only, as deployed apps do.
    let legacy = ClientConfig {
        security: Security::Legacy,
        ..ClientConfig::default()
    };
    let (c1, c2) = rt.block_on(async {
        let c1 = Consumer::connect(&url, beacon1, &config, WAIT).await;
        let c2 = Consumer::connect(&url, beacon2, &legacy, WAIT).await;
        (c1.expect("consumer 1"), c2.expect("consumer 2"))
    });
    assert!(
        c1.is_secure(),
        "two moip peers negotiate the authenticated layer"
    );
    assert!(!c2.is_secure(), "a v0 consumer stays on v0");
    let mut secure = vec![
        rt.block_on(next(&mut nexus_events, "announce", announced)),
        rt.block_on(next(&mut nexus_events, "announce", announced)),
    ];
    secure.sort();
    assert_eq!(secure, vec![false, true]);
    assert_eq!(account.nexuses().len(), 2);
    let (mut e1, mut e2) = (c1.events(), c2.events());

    // Both see the same account and its balance, in msat and in dollars.
    assert_eq!(c1.provider_info().account_uuid, account.uuid());
    let (p1, p2) = rt.block_on(async { (c1.provider().await, c2.provider().await) });
    let (p1, p2) = (p1.expect("provider 1"), p2.expect("provider 2"));
    assert_eq!(p1.account_uuid, p2.account_uuid);
    let wad = p1.wad.expect("wad");
    assert_eq!(wad.msats(), wallet.balance().lightning_sats * 1000);
    assert_eq!(wad.code(), "USD");
    rt.block_on(c1.ping()).expect("pong");

    // Consumer 1 pays the shop: the preimage proves it, the fee is reported, and both
    // consumers see the new balance.
    let before = wad.msats();
    let tea = shop
        .create_invoice(Some(20_000_000), "tea", 3600)
        .expect("invoice");
    let paid = rt.block_on(c1.pay(&tea.bolt11, None)).expect("pay");
    assert_eq!(
        sha256::Hash::hash(&paid.preimage).to_byte_array(),
        tea.payment_hash.0
    );
    let record = wallet
        .payment_by_hash(tea.payment_hash)
        .expect("the wallet's record");
    assert_eq!(paid.fee_msat, Some(record.fee_paid_msat.unwrap_or(0)));
    for events in [&mut e1, &mut e2] {
        let balance = rt.block_on(next(events, "balance update", balance_update));
        assert!(balance <= before - 20_000_000, "{balance}");
    }

    // Consumer 2 asks for an invoice with a description, the shop pays it: consumer 2 gets the
    // preimage, both get the balance.
    let invoice = rt
        .block_on(c2.invoice(
            NonZeroU64::new(10_000_000).expect("non-zero"),
            Some("refund for the tea"),
        ))
        .expect("invoice");
    let decoded: Bolt11Invoice = invoice.parse().expect("bolt11");
    match decoded.description() {
        Bolt11InvoiceDescriptionRef::Direct(d) => assert_eq!(d.to_string(), "refund for the tea"),
        other => panic!("{other:?}"),
    }
    let paid_in = shop
        .pay(&invoice, None, RouteLimits::default(), WAIT)
        .expect("the shop pays");
    let got = rt.block_on(next(&mut e2, "the preimage", |n| match &n.kind {
        NotificationKind::Preimage { preimage, .. } => Some(*preimage.as_bytes()),
        _ => None,
    }));
    assert_eq!(Some(got), paid_in.preimage.map(|p| p.0));
    for events in [&mut e1, &mut e2] {
        let balance = rt.block_on(next(events, "balance update", balance_update));
        assert_eq!(balance, wallet.balance().lightning_sats * 1000);
    }

    // An amountless invoice: refused without an amount, paid with one.
    let tip = shop.create_invoice(None, "tip jar", 3600).expect("invoice");
    assert_eq!(
        code_of(rt.block_on(c1.pay(&tip.bolt11, None))),
        ErrorCode::AMOUNT_MISMATCH
    );
    let tip_amount = NonZeroU64::new(15_000_000).expect("non-zero");
    rt.block_on(c1.pay(&tip.bolt11, Some(tip_amount)))
        .expect("paid with an amount");
    let received = shop.payment_by_hash(tip.payment_hash).expect("received");
    assert_eq!(received.state, PaymentState::Succeeded);
    assert_eq!(received.amount_msat, Some(15_000_000));
    // An invoice with its own amount and another one given: refused, nothing paid.
    let coffee = shop
        .create_invoice(Some(1_000_000), "coffee", 3600)
        .expect("invoice");
    assert_eq!(
        code_of(rt.block_on(c1.pay(&coffee.bolt11, Some(tip_amount)))),
        ErrorCode::AMOUNT_MISMATCH
    );

    // Beacon 1's limit: 50k sat; 35k sat and fees spent, 40k more is refused and nothing is
    // paid.
    let cake = shop
        .create_invoice(Some(40_000_000), "cake", 3600)
        .expect("invoice");
    assert_eq!(
        code_of(rt.block_on(c1.pay(&cake.bolt11, None))),
        ErrorCode::SPENDING_LIMIT
    );
    assert_ne!(
        shop.payment_by_hash(cake.payment_hash).map(|p| p.state),
        Some(PaymentState::Succeeded)
    );
    // Beacon 2 has no limit: the same invoice is paid through it (on v0).
    rt.block_on(c2.pay(&cake.bolt11, None))
        .expect("paid on beacon 2");
    let spent: Vec<u64> = account.nexuses().iter().map(|n| n.spent_msat).collect();
    assert!(spent.iter().any(|s| *s >= 35_000_000), "{spent:?}");

    // A malformed invoice: the provider's coded error, and the session goes on.
    assert_eq!(
        code_of(rt.block_on(c2.pay("lnbcrt1garbage", None))),
        ErrorCode::INVALID_INVOICE
    );
    rt.block_on(c2.ping()).expect("still connected");

    // A provider inside its own relay: a local connection, met by a consumer over TCP.
    let beacon3 = SharedSeed::from_bytes([3; 16]);
    let local = relay.local_connect(beacon3);
    let served = rt.spawn(provider::serve_socket(
        local,
        Arc::clone(&account),
        SpendingLimit::default(),
        Security::Prefer,
    ));
    let c3 = rt
        .block_on(Consumer::connect(&url, beacon3, &config, WAIT))
        .expect("consumer 3");
    assert!(c3.is_secure());
    rt.block_on(c3.ping())
        .expect("pong through the local connection");
    let invoice = rt
        .block_on(c3.invoice(NonZeroU64::new(2_000_000).expect("non-zero"), None))
        .expect("invoice through the local connection");
    assert!(invoice.starts_with("lnbcrt"));
    // The consumer leaves: the provider's session ends normally, its nexus is revoked.
    drop(c3);
    rt.block_on(async { tokio::time::timeout(WAIT, served).await })
        .expect("the local session ends")
        .expect("task")
        .expect("a clean end");
    rt.block_on(next(&mut nexus_events, "revoke", |e| {
        matches!(e.kind, NexusEventKind::Revoked { .. }).then_some(())
    }));

    // Policies: a provider that requires the authenticated layer refuses a v0 consumer, and a
    // consumer that requires it refuses a v0 provider.
    let beacon4 = SharedSeed::from_bytes([4; 16]);
    rt.spawn(provider::serve_socket(
        relay.local_connect(beacon4),
        Arc::clone(&account),
        SpendingLimit::default(),
        Security::Require,
    ));
    match rt.block_on(Consumer::connect(&url, beacon4, &legacy, WAIT)) {
        Err(ConsumerError::Provider {
            code: Some(ErrorCode::SECURE_LAYER_REQUIRED),
            ..
        }) => {}
        other => panic!("expected a refusal, got {:?}", other.map(|c| c.uuid())),
    }
    let beacon5 = SharedSeed::from_bytes([5; 16]);
    rt.spawn(provider::serve_socket(
        relay.local_connect(beacon5),
        Arc::clone(&account),
        SpendingLimit::default(),
        Security::Legacy,
    ));
    let strict = ClientConfig {
        security: Security::Require,
        ..ClientConfig::default()
    };
    match rt.block_on(Consumer::connect(&url, beacon5, &strict, WAIT)) {
        Err(ConsumerError::Client(ClientError::InsecurePeer)) => {}
        other => panic!("expected InsecurePeer, got {:?}", other.map(|c| c.uuid())),
    }

    // A relay that flips one bit of a sealed frame, or replays one: the provider refuses it
    // and ends the session (a sealed stream cannot skip a frame).
    let flip = |n, mut frame: Vec<u8>| {
        if n == 3 {
            let last = frame.len() - 1;
            frame[last] ^= 0x01;
        }
        vec![frame]
    };
    let ended = rt.block_on(meddled_session(
        &relay,
        &account,
        SharedSeed::from_bytes([6; 16]),
        flip,
    ));
    assert!(
        matches!(
            ended,
            Err(ProviderError::Client(ClientError::Secure(
                SecureError::Tampered
            )))
        ),
        "{ended:?}"
    );
    let replay = |n, frame: Vec<u8>| {
        if n == 3 {
            vec![frame.clone(), frame]
        } else {
            vec![frame]
        }
    };
    let ended = rt.block_on(meddled_session(
        &relay,
        &account,
        SharedSeed::from_bytes([7; 16]),
        replay,
    ));
    assert!(
        matches!(
            ended,
            Err(ProviderError::Client(ClientError::Secure(
                SecureError::OutOfOrder {
                    expected: 1,
                    got: 0
                }
            )))
        ),
        "{ended:?}"
    );

    drop(_guard);
    rt.block_on(relay.shutdown());
    wallet.stop().expect("stop");
    shop.stop().expect("stop");
}
