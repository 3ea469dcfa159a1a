//! NIP-47 on the wire as the spec and its clients expect it (issue 23), through a real
//! in-process relay and real ldk-nodes: every request answered under the method it named,
//! the spec's error codes, notifications in both encryptions, a payment answered before it
//! ended that is still notified and settled in the budget, pages of `list_transactions`, and
//! `get_budget`.
//! Requests the rust-nostr client has no method for are built by hand with nostr-sdk.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use moip_lightning::testing::{fund, open_usable, start_node};
use moip_lightning::{PaymentState, Preimage, RouteLimits};
use moip_nwc::{Budget, NwcConfig, NwcService, Renewal};
use moip_testenv::Regtest;
use nostr_relay_builder::builder::RateLimit;
use nostr_relay_builder::{LocalRelay, RelayBuilder};
use nostr_sdk::nips::nip47::{
    ListTransactionsRequest, MakeInvoiceRequest, NostrWalletConnectURI, Notification,
    NotificationResult, PayInvoiceRequest,
};
use nostr_sdk::nips::{nip04, nip44};
use nostr_sdk::{
    Client, Event, EventBuilder, Filter, JsonUtil, Keys, Kind, RelayPoolNotification, RelayUrl,
    Tag, TagKind, Timestamp,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(90);

/// An app driving NIP-47 by hand: any method, any encryption tag, answers read as plain JSON
/// (rust-nostr's `Response` cannot hold a method its `Method` does not know).
struct RawApp {
    keys: Keys,
    service: nostr_sdk::PublicKey,
    client: Client,
}

impl RawApp {
    async fn connect(uri: &NostrWalletConnectURI) -> RawApp {
        let keys = Keys::new(uri.secret.clone());
        let client = Client::builder().signer(keys.clone()).build();
        for relay in &uri.relays {
            client.add_relay(relay.clone()).await.expect("relay");
        }
        client.connect().await;
        client.wait_for_connection(WAIT).await;
        let filter = Filter::new()
            .author(uri.public_key)
            .pubkey(keys.public_key())
            .kinds([
                Kind::WalletConnectResponse,
                Kind::WalletConnectNotification,
                Kind::Custom(23197),
            ])
            .since(Timestamp::now());
        client.subscribe(filter, None).await.expect("subscribe");
        RawApp {
            keys,
            service: uri.public_key,
            client,
        }
    }

    fn open(&self, event: &Event) -> Value {
        let nip44 = event
            .tags
            .iter()
            .any(|t| t.as_slice() == ["encryption".to_string(), "nip44_v2".to_string()])
            || event.kind == Kind::Custom(23197);
        let text = if nip44 {
            nip44::decrypt(self.keys.secret_key(), &self.service, &event.content).expect("nip44")
        } else {
            nip04::decrypt(self.keys.secret_key(), &self.service, &event.content).expect("nip04")
        };
        serde_json::from_str(&text).expect("json")
    }

    /// Sends `body` encrypted as `encryption` says (`None`: NIP-04 without a tag; a tag the
    /// service does not speak is sent over NIP-44) and waits for the one reply to it.
    async fn ask(&self, body: Value, encryption: Option<&str>) -> Value {
        let text = body.to_string();
        let content = match encryption {
            None | Some("nip04") => {
                nip04::encrypt(self.keys.secret_key(), &self.service, &text).expect("nip04")
            }
            Some(_) => nip44::encrypt(
                self.keys.secret_key(),
                &self.service,
                &text,
                nip44::Version::V2,
            )
            .expect("nip44"),
        };
        let mut tags = vec![Tag::public_key(self.service)];
        if let Some(tag) = encryption {
            tags.push(Tag::custom(TagKind::custom("encryption"), [tag]));
        }
        let event = EventBuilder::new(Kind::WalletConnectRequest, content)
            .tags(tags)
            .sign_with_keys(&self.keys)
            .expect("sign");
        let mut notifications = self.client.notifications();
        self.client.send_event(&event).await.expect("send");
        let reply = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(RelayPoolNotification::Event { event: reply, .. }) =
                    notifications.recv().await
                {
                    let answers = reply.tags.event_ids().any(|id| *id == event.id);
                    if reply.kind == Kind::WalletConnectResponse && answers {
                        return reply;
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no reply to {body}"));
        self.open(&reply)
    }

    /// The next notification of `kind` on `notifications` (taken before what causes it).
    async fn next_notification(
        &self,
        notifications: &mut tokio::sync::broadcast::Receiver<RelayPoolNotification>,
        kind: Kind,
    ) -> Notification {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(RelayPoolNotification::Event { event, .. }) = notifications.recv().await {
                    if event.kind == kind {
                        return Notification::from_json(self.open(&event).to_string())
                            .expect("notification");
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no notification of kind {kind}"))
    }
}

fn relay(rt: &tokio::runtime::Runtime) -> (LocalRelay, RelayUrl) {
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn error_code(reply: &Value) -> &str {
    reply["error"]["code"].as_str().unwrap_or("")
}

/// Issue 23: a method the wallet does not offer, a request naming none, params that do not
/// parse and an encryption it does not speak are all answered, under the method asked, with
/// the spec's code; `get_info` names the network as NIP-47 does. Before, the first three got
/// no reply at all (the app hung) and the encryption error came as `OTHER` under `get_info`.
#[test]
fn every_request_is_answered_under_the_method_it_named() {
    let env = Regtest::new();
    let root = tempfile::tempdir().expect("tempdir");
    let wallet = start_node(&env, root.path(), "wallet");
    let rt = runtime();
    let (relay, url) = relay(&rt);
    let service = rt
        .block_on(NwcService::start(
            Arc::new(wallet.clone()),
            Keys::generate(),
            NwcConfig::new(vec![url.to_string()]),
        ))
        .expect("service");
    let uri = service.connect_app("till", None, None).expect("connect");
    let app = rt.block_on(RawApp::connect(&uri));

    for (body, encryption, result_type, code) in [
        (
            json!({"method": "foo", "params": {}}),
            Some("nip44_v2"),
            "foo",
            "NOT_IMPLEMENTED",
        ),
        (
            json!({"method": "make_offer", "params": {"amount": 1}}),
            None,
            "make_offer",
            "NOT_IMPLEMENTED",
        ),
        (
            json!({"params": {}}),
            Some("nip44_v2"),
            "",
            "NOT_IMPLEMENTED",
        ),
        (
            json!({"method": "pay_invoice", "params": {"amount": 5}}),
            Some("nip44_v2"),
            "pay_invoice",
            "OTHER",
        ),
        (
            json!({"method": "make_invoice", "params": {"amount": "lots"}}),
            None,
            "make_invoice",
            "OTHER",
        ),
        (
            json!({"method": "get_balance", "params": {}}),
            Some("nip44_v3"),
            "get_balance",
            "UNSUPPORTED_ENCRYPTION",
        ),
    ] {
        let reply = rt.block_on(app.ask(body.clone(), encryption));
        assert_eq!(reply["result_type"], result_type, "{body} -> {reply}");
        assert_eq!(error_code(&reply), code, "{body} -> {reply}");
        assert!(reply["result"].is_null(), "{reply}");
    }

    let info = rt.block_on(app.ask(json!({"method": "get_info", "params": {}}), None));
    assert!(info["error"].is_null(), "{info}");
    assert_eq!(info["result"]["network"], "regtest");
    let methods: Vec<&str> = info["result"]["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(methods, moip_nwc::get_info_methods());

    // get_budget, without a budget: NIP-47's empty result.
    let budget = rt.block_on(app.ask(json!({"method": "get_budget", "params": {}}), None));
    assert_eq!(budget["result_type"], "get_budget", "{budget}");
    assert!(budget["error"].is_null(), "{budget}");
    assert_eq!(budget["result"], json!({}), "{budget}");

    // The service still serves rust-nostr's client afterwards.
    let nwc = nwc::NWC::new(uri);
    assert_eq!(rt.block_on(nwc.get_balance()).expect("balance"), 0);

    rt.block_on(service.shutdown());
    relay.shutdown();
    wallet.stop().expect("stop");
}

/// Issue 23: notifications go out in both encryptions whatever the app last spoke (before,
/// an app that had asked in NIP-04 got NIP-04 only, so its NIP-44 listener heard nothing);
/// a payment whose `pay_invoice` was answered `PAYMENT_FAILED` when the wait ran out, and
/// that succeeds later, still gets its `payment_sent` and its budget reservation replaced by
/// what it cost (before, neither: the reservation stayed for the whole period); and
/// `list_transactions` pages by `limit` and `offset`.
#[test]
fn late_payments_are_notified_and_settled_and_notifications_go_both_ways() {
    let env = Regtest::new();
    let root = tempfile::tempdir().expect("tempdir");
    let wallet = start_node(&env, root.path(), "wallet");
    let shop = start_node(&env, root.path(), "shop");
    let rt = runtime();
    fund(&env, &wallet, &[&shop]);
    open_usable(&env, &wallet, &shop, 1_000_000, Some(400_000_000));
    let (relay, url) = relay(&rt);
    let mut config = NwcConfig::new(vec![url.to_string()]);
    config.pay_timeout = Duration::from_secs(3);
    let service = rt
        .block_on(NwcService::start(
            Arc::new(wallet.clone()),
            Keys::generate(),
            config,
        ))
        .expect("service");
    let budget = Budget {
        limit_msat: 100_000_000,
        renewal: Renewal::Daily,
    };
    let uri = service
        .connect_app("till", Some(budget), None)
        .expect("connect");
    let app_key = Keys::new(uri.secret.clone()).public_key();
    let raw = rt.block_on(RawApp::connect(&uri));
    let nwc = nwc::NWC::new(uri.clone());

    // The app speaks NIP-04 (rust-nostr's client); a payment to its invoice is notified in
    // NIP-04 and in NIP-44 both.
    let made = rt
        .block_on(nwc.make_invoice(MakeInvoiceRequest {
            amount: 2_000_000,
            description: Some("tip".into()),
            description_hash: None,
            expiry: None,
        }))
        .expect("make_invoice");
    let mut as_nip44 = raw.client.notifications();
    let mut as_nip04 = raw.client.notifications();
    shop.pay(&made.invoice, None, RouteLimits::default(), WAIT)
        .expect("the shop pays");
    for (notifications, kind) in [
        (&mut as_nip44, Kind::Custom(23197)),
        (&mut as_nip04, Kind::WalletConnectNotification),
    ] {
        match rt
            .block_on(raw.next_notification(notifications, kind))
            .notification
        {
            NotificationResult::PaymentReceived(p) => {
                assert_eq!(Some(p.payment_hash), made.payment_hash.clone(), "{kind}")
            }
            other => panic!("unexpected notification {other:?}"),
        }
    }

    // The shop holds the payment past the service's wait: the app is told PAYMENT_FAILED,
    // the budget keeps the reservation; the shop then takes it, and the app is notified and
    // charged what it cost.
    let secret = Preimage::random();
    let held = shop
        .create_hold_invoice(secret.payment_hash(), 10_000_000, "late", 3600)
        .expect("hold invoice");
    let mut notifications = raw.client.notifications();
    let answered = rt.block_on(nwc.pay_invoice(PayInvoiceRequest::new(held.bolt11.clone())));
    assert!(answered.is_err(), "answered before the shop took it");
    let reserved = service.left_msat(&app_key).expect("a budget");
    assert!(
        reserved < budget.limit_msat - 10_000_000,
        "the reservation covers the fee cap: {reserved}"
    );
    // The shop takes it once its node has it (a settle before the HTLC arrives is refused).
    shop.wait_for(WAIT, "the held payment to arrive and be taken", |n| {
        n.settle_hold_invoice(secret).ok()
    })
    .expect("the shop takes it");
    let sent = rt.block_on(async {
        loop {
            let n = raw
                .next_notification(&mut notifications, Kind::Custom(23197))
                .await;
            if let NotificationResult::PaymentSent(p) = n.notification {
                return p;
            }
        }
    });
    assert_eq!(sent.payment_hash, held.payment_hash.to_string());
    assert_eq!(sent.preimage, secret.to_string());
    assert_eq!(sent.amount, 10_000_000);
    let left = service.left_msat(&app_key).expect("a budget");
    assert_eq!(
        left,
        budget.limit_msat - 10_000_000 - sent.fees_paid,
        "the reservation became what the payment cost"
    );
    // get_budget says the same, in NIP-47's fields.
    let told = rt.block_on(raw.ask(
        json!({"method": "get_budget", "params": {}}),
        Some("nip44_v2"),
    ));
    assert!(told["error"].is_null(), "{told}");
    assert_eq!(told["result"]["total_budget"], budget.limit_msat, "{told}");
    assert_eq!(
        told["result"]["used_budget"],
        budget.limit_msat - left,
        "{told}"
    );
    assert_eq!(told["result"]["renewal_period"], "daily", "{told}");
    let renews_at = told["result"]["renews_at"].as_u64().expect("renews_at");
    let now = Timestamp::now().as_secs();
    assert!(
        now < renews_at && renews_at <= now + 86_400 && renews_at % 86_400 == 0,
        "{told}"
    );
    assert_eq!(
        wallet.payment_by_hash(held.payment_hash).map(|p| p.state),
        Some(PaymentState::Succeeded)
    );

    // Pages: two entries, one a page, newest first.
    let page = |offset| {
        rt.block_on(nwc.list_transactions(ListTransactionsRequest {
            limit: Some(1),
            offset: Some(offset),
            ..ListTransactionsRequest::default()
        }))
        .expect("list_transactions")
    };
    let (first, second, past) = (page(0), page(1), page(2));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].payment_hash, held.payment_hash.to_string());
    assert_eq!(second.len(), 1);
    assert_eq!(Some(second[0].payment_hash.clone()), made.payment_hash);
    assert!(past.is_empty(), "{past:?}");

    rt.block_on(service.shutdown());
    relay.shutdown();
    shop.stop().expect("stop");
    wallet.stop().expect("stop");
}
