//! The NWC wallet service end to end: real ldk-nodes on the embedded regtest chain, an
//! in-process Nostr relay (`nostr-relay-builder`), and rust-nostr's own NWC client (NIP-04)
//! next to a hand-driven NIP-44 v2 client. Paying, invoicing, lookups, notifications, hold
//! invoices settled and cancelled, budgets, unknown and revoked keys.

mod common;

use common::{relay, runtime};
use std::sync::Arc;
use std::time::Duration;

use moip_lightning::testing::start_node;
use moip_lightning::{PaymentHash, PaymentState, Preimage, RouteLimits};
use moip_nwc::{Budget, NwcConfig, NwcService, Renewal};
use moip_testenv::Regtest;
use nostr_sdk::nips::nip44;
use nostr_sdk::nips::nip47::{
    self, CancelHoldInvoiceRequest, ErrorCode, ListTransactionsRequest, LookupInvoiceRequest,
    MakeHoldInvoiceRequest, MakeInvoiceRequest, Method, NostrWalletConnectURI, Notification,
    NotificationResult, PayInvoiceRequest, Request, RequestParams, Response, ResponseResult,
    SettleHoldInvoiceRequest, TransactionState, TransactionType,
};
use nostr_sdk::{
    Client, Event, EventBuilder, Filter, JsonUtil, Keys, Kind, RelayPoolNotification, Tag, TagKind,
    Timestamp,
};

const WAIT: Duration = Duration::from_secs(90);

/// A client speaking NIP-44 v2 by hand: what a current NWC app sends.
struct Nip44App {
    keys: Keys,
    service: nostr_sdk::PublicKey,
    client: Client,
}

impl Nip44App {
    async fn connect(keys: Keys, uri: &NostrWalletConnectURI) -> Nip44App {
        let client = Client::builder().signer(keys.clone()).build();
        for relay in &uri.relays {
            client.add_relay(relay.clone()).await.expect("relay");
        }
        client.connect().await;
        client.wait_for_connection(WAIT).await;
        // Notifications for this key, NIP-44 kind.
        let filter = Filter::new()
            .author(uri.public_key)
            .pubkey(keys.public_key())
            .kind(Kind::Custom(23197))
            .since(Timestamp::now());
        client.subscribe(filter, None).await.expect("subscribe");
        Nip44App {
            keys,
            service: uri.public_key,
            client,
        }
    }

    fn open(&self, event: &Event) -> String {
        nip44::decrypt(self.keys.secret_key(), &self.service, &event.content).expect("decrypt")
    }

    async fn send_raw(&self, content: String) -> Event {
        let event = EventBuilder::new(Kind::WalletConnectRequest, content)
            .tags([
                Tag::public_key(self.service),
                Tag::custom(TagKind::custom("encryption"), ["nip44_v2"]),
            ])
            .sign_with_keys(&self.keys)
            .expect("sign");
        self.client.send_event(&event).await.expect("send");
        event
    }

    async fn request(&self, request: Request) -> Response {
        let content = nip44::encrypt(
            self.keys.secret_key(),
            &self.service,
            request.as_json(),
            nip44::Version::V2,
        )
        .expect("encrypt");
        let filter = Filter::new()
            .author(self.service)
            .kind(Kind::WalletConnectResponse)
            .pubkey(self.keys.public_key());
        let mut notifications = self.client.notifications();
        self.client
            .subscribe(filter, None)
            .await
            .expect("subscribe");
        let sent = self.send_raw(content).await;
        let reply = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(RelayPoolNotification::Event { event, .. }) = notifications.recv().await {
                    let answers = event.tags.event_ids().any(|id| *id == sent.id);
                    if event.kind == Kind::WalletConnectResponse && answers {
                        return event;
                    }
                }
            }
        })
        .await
        .expect("a reply");
        let encrypted_with_nip44 = reply
            .tags
            .iter()
            .any(|t| t.as_slice() == ["encryption".to_string(), "nip44_v2".to_string()]);
        assert!(encrypted_with_nip44, "the reply says it is NIP-44");
        Response::from_json(self.open(&reply)).expect("response")
    }

    /// The next NIP-44 notification on `notifications` (taken before the action that causes
    /// it, so it cannot slip past).
    async fn next_notification(
        &self,
        notifications: &mut tokio::sync::broadcast::Receiver<RelayPoolNotification>,
    ) -> Notification {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(RelayPoolNotification::Event { event, .. }) = notifications.recv().await {
                    if event.kind == Kind::Custom(23197) {
                        return Notification::from_json(self.open(&event)).expect("notification");
                    }
                }
            }
        })
        .await
        .expect("a notification")
    }
}

fn error_code(e: &nwc::Error) -> Option<ErrorCode> {
    match e {
        nwc::Error::NIP47(nip47::Error::ErrorCode(e)) => Some(e.code),
        _ => None,
    }
}

fn request(method: Method, params: RequestParams) -> Request {
    Request { method, params }
}

#[test]
fn nwc_apps_pay_invoice_hold_and_stay_within_their_budgets() {
    // The wallet's node has a channel to the shop and pushed it some funds to pay with.
    let (_env, root, wallet, shop) = common::wallet_and_shop();
    let rt = runtime();

    // An in-process relay and the service on it.
    let (relay, relay_url) = relay(&rt);
    let mut config = NwcConfig::new(vec![relay_url.to_string()]);
    let store = root.path().join("connections.json");
    config.store = Some(store.clone().into());
    let service = rt
        .block_on(NwcService::start(
            Arc::new(wallet.clone()),
            Keys::generate(),
            config,
        ))
        .expect("service");
    let budget = Budget {
        limit_msat: 60_000_000,
        renewal: Renewal::Daily,
    };
    let uri = service
        .connect_app("till", Some(budget), None)
        .expect("connect");
    let app_key = Keys::new(uri.secret.clone()).public_key();
    assert_eq!(uri.public_key, service.public_key());
    let parsed: NostrWalletConnectURI = uri.to_string().parse().expect("the URI round-trips");
    assert_eq!(parsed, uri);
    assert!(moip_nwc::uri_qr(&uri).expect("qr").contains('█'));

    // --- rust-nostr's NWC client (NIP-04).
    let app = nwc::NWC::new(uri.clone());
    let info = rt.block_on(app.get_info()).expect("get_info");
    assert_eq!(info.pubkey, Some(wallet.node_id().to_string()));
    assert_eq!(info.network.as_deref(), Some("regtest"));
    assert!(info.methods.contains(&Method::PayInvoice));
    // The balance an app is told is what its budget leaves it, not what the node holds.
    let balance = rt.block_on(app.get_balance()).expect("get_balance");
    assert_eq!(balance, budget.limit_msat);

    // Receive: the app makes an invoice, the shop pays it, the app is told and can look it up.
    rt.block_on(app.subscribe_to_notifications())
        .expect("notifications");
    let made = rt
        .block_on(app.make_invoice(MakeInvoiceRequest {
            amount: 20_000_000,
            description: Some("coffee".into()),
            description_hash: None,
            expiry: None,
        }))
        .expect("make_invoice");
    let made_hash = made.payment_hash.clone().expect("hash");
    let (tx, notified) = std::sync::mpsc::channel();
    let listener = nwc::NWC::new(uri.clone());
    rt.block_on(listener.subscribe_to_notifications())
        .expect("subscribe");
    rt.spawn(async move {
        let _ = listener
            .handle_notifications(|n| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(n);
                    Ok(false)
                }
            })
            .await;
    });
    shop.pay(&made.invoice, None, RouteLimits::default(), WAIT)
        .expect("the shop pays the app's invoice");
    let notification = notified.recv_timeout(WAIT).expect("payment_received");
    match notification.notification {
        NotificationResult::PaymentReceived(p) => {
            assert_eq!(p.payment_hash, made_hash);
            assert_eq!(p.amount, 20_000_000);
            assert_eq!(p.description.as_deref(), Some("coffee"));
        }
        other => panic!("unexpected notification {other:?}"),
    }
    let looked_up = rt
        .block_on(app.lookup_invoice(LookupInvoiceRequest {
            payment_hash: Some(made_hash.clone()),
            invoice: None,
        }))
        .expect("lookup_invoice");
    assert_eq!(looked_up.state, Some(TransactionState::Settled));
    assert_eq!(looked_up.transaction_type, Some(TransactionType::Incoming));
    let preimage: Preimage = looked_up.preimage.expect("preimage").parse().expect("hex");
    assert_eq!(preimage.payment_hash().to_string(), made_hash);

    // Pay: the app pays the shop's invoice; the preimage proves it.
    let tea = shop
        .create_invoice(Some(30_000_000), "tea", 3600)
        .expect("invoice");
    let paid = rt
        .block_on(app.pay_invoice(PayInvoiceRequest::new(tea.bolt11.clone())))
        .expect("pay_invoice");
    let preimage: Preimage = paid.preimage.parse().expect("hex");
    assert_eq!(preimage.payment_hash(), tea.payment_hash);
    shop.wait_for(WAIT, "the shop to be paid", |n| {
        (n.payment_by_hash(tea.payment_hash)?.state == PaymentState::Succeeded).then_some(())
    })
    .expect("paid");

    // The budget: 60k sat a day, 30k spent; 40k more is refused and nothing moves.
    let cake = shop
        .create_invoice(Some(40_000_000), "cake", 3600)
        .expect("invoice");
    let refused = rt
        .block_on(app.pay_invoice(PayInvoiceRequest::new(cake.bolt11.clone())))
        .expect_err("over budget");
    assert_eq!(
        error_code(&refused),
        Some(ErrorCode::QuotaExceeded),
        "{refused}"
    );
    assert_ne!(
        shop.payment_by_hash(cake.payment_hash).map(|p| p.state),
        Some(PaymentState::Succeeded)
    );
    let spent = service.connections()[0].spent_msat;
    assert!((30_000_000..31_000_000).contains(&spent), "{spent}");

    let history = rt
        .block_on(app.list_transactions(ListTransactionsRequest::default()))
        .expect("list_transactions");
    let hashes: Vec<&str> = history.iter().map(|t| t.payment_hash.as_str()).collect();
    assert!(hashes.contains(&made_hash.as_str()), "{hashes:?}");
    assert!(hashes.contains(&tea.payment_hash.to_string().as_str()));

    // Another app on the same wallet sees none of it: not the invoice, not its preimage,
    // not the payment.
    let other_uri = service.connect_app("kiosk", None, None).expect("connect");
    let other = nwc::NWC::new(other_uri);
    let refused = rt
        .block_on(other.lookup_invoice(LookupInvoiceRequest {
            payment_hash: Some(made_hash.clone()),
            invoice: None,
        }))
        .expect_err("another app's invoice");
    assert_eq!(error_code(&refused), Some(ErrorCode::NotFound), "{refused}");
    let listed = rt
        .block_on(other.list_transactions(ListTransactionsRequest {
            unpaid: Some(true),
            ..ListTransactionsRequest::default()
        }))
        .expect("list_transactions");
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(rt.block_on(other.get_balance()).expect("balance"), 0);

    // --- A NIP-44 client on the same connection key: balance, then hold invoices.
    let app44 = rt.block_on(Nip44App::connect(Keys::new(uri.secret.clone()), &uri));
    let response = rt.block_on(app44.request(Request::get_balance()));
    let balance = response.to_get_balance().expect("balance").balance;
    let till = service
        .connections()
        .into_iter()
        .find(|c| c.client == app_key);
    assert_eq!(
        balance,
        budget.limit_msat - till.expect("the till").spent_msat
    );

    for settle in [true, false] {
        let secret = Preimage::random();
        let hash: PaymentHash = secret.payment_hash();
        let response = rt.block_on(app44.request(request(
            Method::MakeHoldInvoice,
            RequestParams::MakeHoldInvoice(MakeHoldInvoiceRequest {
                amount: 15_000_000,
                description: Some("escrow".into()),
                description_hash: None,
                expiry: None,
                payment_hash: hash.to_string(),
                cltv_expiry_delta: None,
            }),
        )));
        let invoice = match response.result {
            Some(ResponseResult::MakeHoldInvoice(r)) => r.invoice.expect("invoice"),
            other => panic!("no hold invoice: {other:?} {:?}", response.error),
        };
        // The shop pays; its payment is held until the app decides.
        let mut notifications = app44.client.notifications();
        let payer = shop.clone();
        let paying =
            std::thread::spawn(move || payer.pay(&invoice, None, RouteLimits::default(), WAIT));
        let notification = rt.block_on(app44.next_notification(&mut notifications));
        match notification.notification {
            NotificationResult::HoldInvoiceAccepted(n) => {
                assert_eq!(n.payment_hash, hash.to_string());
                assert_eq!(n.amount, 15_000_000);
            }
            other => panic!("unexpected notification {other:?}"),
        }
        let response = if settle {
            rt.block_on(app44.request(request(
                Method::SettleHoldInvoice,
                RequestParams::SettleHoldInvoice(SettleHoldInvoiceRequest {
                    preimage: secret.to_string(),
                }),
            )))
        } else {
            rt.block_on(app44.request(request(
                Method::CancelHoldInvoice,
                RequestParams::CancelHoldInvoice(CancelHoldInvoiceRequest {
                    payment_hash: hash.to_string(),
                }),
            )))
        };
        assert!(response.error.is_none(), "{:?}", response.error);
        let outcome = paying.join().expect("payer thread");
        if settle {
            let outcome = outcome.expect("the held payment settles");
            assert_eq!(outcome.preimage, Some(secret));
        } else {
            assert!(
                outcome.is_err(),
                "a cancelled hold invoice fails the payment"
            );
        }
    }

    // A tampered request is dropped and the service keeps answering.
    rt.block_on(app44.send_raw("AgAAAAAAAAAAtampered".into()));
    let response = rt.block_on(app44.request(Request::get_info()));
    assert!(response.error.is_none());

    // A key the wallet never connected is unauthorized.
    let stranger = rt.block_on(Nip44App::connect(Keys::generate(), &uri));
    let response = rt.block_on(stranger.request(Request::get_balance()));
    assert_eq!(
        response.error.map(|e| e.code),
        Some(ErrorCode::Unauthorized)
    );

    // Revoked: the app's key no longer works, and that survives a restart of the store.
    service.revoke(&app_key).expect("revoke");
    let err = rt.block_on(app.get_balance()).expect_err("revoked");
    assert_eq!(error_code(&err), Some(ErrorCode::Unauthorized), "{err}");
    let reopened = moip_nwc::ConnectionStore::open(&store).expect("store");
    assert!(reopened.active(&app_key, 0).is_none());

    rt.block_on(service.shutdown());
    relay.shutdown();
    wallet.stop().expect("stop");
    shop.stop().expect("stop");
}

/// Someone who saw a request on the relay (the relay itself, say) republishes it after the
/// service restarts: the restarted service, whose in-memory replay guard is empty, must not
/// carry it out a second time.
#[test]
fn a_request_replayed_after_a_restart_is_not_carried_out_again() {
    let env = Regtest::new();
    let root = tempfile::tempdir().expect("tempdir");
    let wallet = start_node(&env, root.path(), "wallet");
    let rt = runtime();
    let (relay, relay_url) = relay(&rt);
    let mut config = NwcConfig::new(vec![relay_url.to_string()]);
    config.store = Some(root.path().join("connections.json").into());
    let keys = Keys::generate();
    let start = |config: NwcConfig| {
        rt.block_on(NwcService::start(
            Arc::new(wallet.clone()),
            keys.clone(),
            config,
        ))
        .expect("service")
    };
    let service = start(config.clone());
    let uri = service.connect_app("till", None, None).expect("connect");
    let app = rt.block_on(Nip44App::connect(Keys::new(uri.secret.clone()), &uri));

    // Every answer the app's key gets, by the request it answers.
    let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut notifications = app.client.notifications();
    let filter = Filter::new()
        .author(uri.public_key)
        .kind(Kind::WalletConnectResponse)
        .pubkey(app.keys.public_key());
    rt.block_on(app.client.subscribe(filter, None))
        .expect("subscribe");
    let log = Arc::clone(&answered);
    rt.spawn(async move {
        while let Ok(n) = notifications.recv().await {
            if let RelayPoolNotification::Event { event, .. } = n {
                let ids: Vec<_> = event.tags.event_ids().copied().collect();
                log.lock().expect("log").extend(ids);
            }
        }
    });

    let make = |description: &str| {
        request(
            Method::MakeInvoice,
            RequestParams::MakeInvoice(MakeInvoiceRequest {
                amount: 1_000_000,
                description: Some(description.into()),
                description_hash: None,
                expiry: None,
            }),
        )
    };
    let content = |request: Request| {
        nip44::encrypt(
            app.keys.secret_key(),
            &uri.public_key,
            request.as_json(),
            nip44::Version::V2,
        )
        .expect("encrypt")
    };
    let first = rt.block_on(app.send_raw(content(make("first"))));
    let answers = |id| {
        answered
            .lock()
            .expect("log")
            .iter()
            .filter(|e| **e == id)
            .count()
    };
    let deadline = std::time::Instant::now() + WAIT;
    while answers(first.id) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no answer to the first request"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Restart, then the request again, then a fresh one: the fresh one is answered, the
    // replay is not.
    rt.block_on(service.shutdown());
    let service = start(config);
    rt.block_on(app.client.send_event(&first)).expect("replay");
    let response = rt.block_on(app.request(make("second")));
    assert!(response.error.is_none(), "{:?}", response.error);
    // The replay reached the service before the fresh request, so its answer, had it been
    // carried out, would be in by now.
    assert_eq!(
        answers(first.id),
        1,
        "the replayed request was carried out again"
    );

    rt.block_on(service.shutdown());
    relay.shutdown();
    wallet.stop().expect("stop");
}

/// Issue 21: a hold invoice's held payment left past its claim deadline is failed back to the
/// payer by the node (LDK, when a block reaches the deadline); an app that settles it then is
/// told `NOT_FOUND` — not success, although ldk-node's claim returns without claiming — and
/// the wallet records nothing received.
#[test]
fn settling_a_held_payment_after_its_deadline_is_refused() {
    let (env, root, wallet, shop) = common::wallet_and_shop();
    let rt = runtime();

    let (_relay, relay_url) = relay(&rt);
    let mut config = NwcConfig::new(vec![relay_url.to_string()]);
    config.store = Some(root.path().join("connections.json").into());
    let service = rt
        .block_on(NwcService::start(
            Arc::new(wallet.clone()),
            Keys::generate(),
            config,
        ))
        .expect("service");
    let uri = service.connect_app("escrow", None, None).expect("connect");
    let app = rt.block_on(Nip44App::connect(Keys::new(uri.secret.clone()), &uri));

    let secret = Preimage::random();
    let hash: PaymentHash = secret.payment_hash();
    let response = rt.block_on(app.request(request(
        Method::MakeHoldInvoice,
        RequestParams::MakeHoldInvoice(MakeHoldInvoiceRequest {
            amount: 15_000_000,
            description: Some("escrow".into()),
            description_hash: None,
            expiry: None,
            payment_hash: hash.to_string(),
            cltv_expiry_delta: None,
        }),
    )));
    let invoice = match response.result {
        Some(ResponseResult::MakeHoldInvoice(r)) => r.invoice.expect("invoice"),
        other => panic!("no hold invoice: {other:?} {:?}", response.error),
    };
    let mut notifications = app.client.notifications();
    shop.send_bolt11(&invoice, None, RouteLimits::default())
        .expect("the shop pays");
    match rt
        .block_on(app.next_notification(&mut notifications))
        .notification
    {
        NotificationResult::HoldInvoiceAccepted(n) => assert_eq!(n.payment_hash, hash.to_string()),
        other => panic!("unexpected notification {other:?}"),
    }

    // Nobody settles: blocks come until the wallet's node fails the payment back at its
    // deadline (seen as the shop's payment failing), within a bound of 400 blocks.
    let failed_back = |n: &moip_lightning::LightningNode| {
        n.payment_by_hash(hash)
            .filter(|p| p.state == PaymentState::Failed)
    };
    let mut mined = 0;
    while shop
        .wait_for(
            Duration::from_secs(2),
            "the held payment failed back",
            failed_back,
        )
        .is_err()
    {
        assert!(mined < 400, "no failure back after {mined} blocks");
        moip_lightning::testing::mine(&env, 8, &[&wallet, &shop]);
        mined += 8;
    }

    let response = rt.block_on(app.request(request(
        Method::SettleHoldInvoice,
        RequestParams::SettleHoldInvoice(SettleHoldInvoiceRequest {
            preimage: secret.to_string(),
        }),
    )));
    let error = response.error.unwrap_or_else(|| {
        panic!(
            "a settle after the deadline succeeded: {:?}",
            response.result
        )
    });
    assert_eq!(error.code, ErrorCode::NotFound, "{}", error.message);
    assert!(error.message.contains("timed out"), "{}", error.message);
    assert!(
        wallet
            .payment_by_hash(hash)
            .is_none_or(|p| p.state != PaymentState::Succeeded),
        "the wallet recorded the payment as received"
    );
    assert!(failed_back(&shop).is_some(), "the shop was not paid");
    let _ = shop.stop();
    let _ = wallet.stop();
}
