//! NIP-47 on the wire as the spec and its clients expect it (issue 23), through a real
//! in-process relay and real ldk-nodes: every request answered under the method it named,
//! the spec's error codes, notifications in both encryptions, a payment answered before it
//! ended that is still notified and settled in the budget, pages of `list_transactions`, and
//! `get_budget`, `sign_message`, `make_invoice` with a description hash, `pay_keysend` and the
//! `multi_` methods.
//! Requests the rust-nostr client has no method for are built by hand with nostr-sdk.

mod common;

use common::{relay, runtime};
use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use moip_lightning::ldk_node::bitcoin::hashes::{sha256, Hash};
use moip_lightning::ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescriptionRef};
use moip_lightning::testing::start_node;
use moip_lightning::{PaymentState, Preimage, RouteLimits};
use moip_nwc::{Budget, NwcConfig, NwcService, Permission, Renewal};
use moip_testenv::Regtest;
use nostr_sdk::nips::nip47::{
    KeysendTLVRecord, ListTransactionsRequest, LookupInvoiceRequest, MakeInvoiceRequest,
    NostrWalletConnectURI, Notification, NotificationResult, PayInvoiceRequest, PayKeysendRequest,
    TransactionType,
};
use nostr_sdk::nips::{nip04, nip44};
use nostr_sdk::{
    Client, Event, EventBuilder, Filter, JsonUtil, Keys, Kind, RelayPoolNotification, Tag, TagKind,
    Timestamp,
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

    /// Sends `body` in NIP-44 and collects `n` replies to it, by their `d` tag.
    async fn ask_many(&self, body: Value, n: usize) -> Vec<(String, Value)> {
        let content = nip44::encrypt(
            self.keys.secret_key(),
            &self.service,
            body.to_string(),
            nip44::Version::V2,
        )
        .expect("nip44");
        let event = EventBuilder::new(Kind::WalletConnectRequest, content)
            .tags([
                Tag::public_key(self.service),
                Tag::custom(TagKind::custom("encryption"), ["nip44_v2"]),
            ])
            .sign_with_keys(&self.keys)
            .expect("sign");
        let mut notifications = self.client.notifications();
        self.client.send_event(&event).await.expect("send");
        let mut replies = Vec::new();
        tokio::time::timeout(WAIT, async {
            while replies.len() < n {
                if let Ok(RelayPoolNotification::Event { event: reply, .. }) =
                    notifications.recv().await
                {
                    let answers = reply.tags.event_ids().any(|id| *id == event.id);
                    if reply.kind == Kind::WalletConnectResponse && answers {
                        let d = reply.tags.identifier().unwrap_or_default().to_owned();
                        replies.push((d, self.open(&reply)));
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{} of {n} replies to {body}", replies.len()));
        replies.sort_by(|a, b| a.0.cmp(&b.0));
        replies
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
    assert_eq!(methods, moip_nwc::get_info_methods(&moip_nwc::METHODS));
    for offered in ["pay_keysend", "multi_pay_invoice", "multi_pay_keysend"] {
        assert!(methods.contains(&offered), "{offered} in {methods:?}");
    }

    // sign_message is not permitted to a connection paired by default (without `sign`).
    let refused = rt.block_on(app.ask(
        json!({"method": "sign_message", "params": {"message": "hi"}}),
        None,
    ));
    assert_eq!(refused["result_type"], "sign_message", "{refused}");
    assert_eq!(error_code(&refused), "RESTRICTED", "{refused}");

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
    let (_env, _root, wallet, shop) = common::wallet_and_shop();
    let rt = runtime();
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
        .connect_app_with("till", Some(budget), None, Permission::ALL.into())
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

    // make_invoice's reply is NIP-47's transaction: with its type and state, which
    // rust-nostr's MakeInvoiceResponse does not read, so asked raw.
    let raw_made = rt.block_on(raw.ask(
        json!({"method": "make_invoice", "params": {"amount": 1_000, "description": "raw"}}),
        Some("nip44_v2"),
    ));
    assert!(raw_made["error"].is_null(), "{raw_made}");
    assert_eq!(raw_made["result"]["type"], "incoming", "{raw_made}");
    assert_eq!(raw_made["result"]["state"], "pending", "{raw_made}");
    assert_eq!(raw_made["result"]["amount"], 1_000, "{raw_made}");
    assert!(raw_made["result"]["invoice"].is_string(), "{raw_made}");

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
    // An outgoing entry shows the invoice the app paid, and so does its lookup.
    assert_eq!(first[0].invoice, Some(held.bolt11.clone()));
    let looked_up = rt
        .block_on(nwc.lookup_invoice(LookupInvoiceRequest {
            payment_hash: Some(held.payment_hash.to_string()),
            invoice: None,
        }))
        .expect("lookup_invoice of a payment made");
    assert_eq!(looked_up.transaction_type, Some(TransactionType::Outgoing));
    assert_eq!(looked_up.invoice, Some(held.bolt11.clone()));
    assert_eq!(second.len(), 1);
    assert_eq!(Some(second[0].payment_hash.clone()), made.payment_hash);
    assert!(past.is_empty(), "{past:?}");

    // sign_message, allowed here: the node's signature, which LND/CLN-style verification
    // checks against the node id.
    let signed = rt.block_on(raw.ask(
        json!({"method": "sign_message", "params": {"message": "moip"}}),
        Some("nip44_v2"),
    ));
    assert!(signed["error"].is_null(), "{signed}");
    assert_eq!(signed["result"]["message"], "moip");
    let signature = signed["result"]["signature"].as_str().expect("signature");
    assert!(shop.verify_signature(b"moip", signature, &wallet.node_id()));
    assert!(!shop.verify_signature(b"other", signature, &wallet.node_id()));

    let no_message = rt.block_on(raw.ask(
        json!({"method": "sign_message", "params": {}}),
        Some("nip44_v2"),
    ));
    assert_eq!(error_code(&no_message), "OTHER", "{no_message}");

    // make_invoice with a description hash alone (LNURL-pay, zaps): the invoice commits to
    // it, and it is payable.
    let zap_request = r#"{"kind":9734,"content":"great post"}"#;
    let hash = sha256::Hash::hash(zap_request.as_bytes());
    let zap = rt
        .block_on(nwc.make_invoice(MakeInvoiceRequest {
            amount: 1_000_000,
            description: None,
            description_hash: Some(hash.to_string()),
            expiry: None,
        }))
        .expect("make_invoice with a description hash");
    let decoded = Bolt11Invoice::from_str(&zap.invoice).expect("bolt11");
    match decoded.description() {
        Bolt11InvoiceDescriptionRef::Hash(h) => assert_eq!(h.0, hash),
        other => panic!("not a description hash: {other:?}"),
    }
    assert_eq!(zap.description_hash, Some(hash.to_string()));
    shop.pay(&zap.invoice, None, RouteLimits::default(), WAIT)
        .expect("the zap is paid");
    let looked_up = rt
        .block_on(nwc.lookup_invoice(LookupInvoiceRequest {
            payment_hash: zap.payment_hash.clone(),
            invoice: None,
        }))
        .expect("lookup_invoice");
    assert_eq!(looked_up.description_hash, Some(hash.to_string()));
    // A description that is not what the hash commits to is refused.
    let mismatch = rt.block_on(nwc.make_invoice(MakeInvoiceRequest {
        amount: 1_000_000,
        description: Some("something else".into()),
        description_hash: Some(hash.to_string()),
        expiry: None,
    }));
    assert!(mismatch.is_err(), "{mismatch:?}");

    // pay_keysend, with a TLV record: the shop receives it, the preimage proves it, and the
    // budget is charged what it cost.
    let left = service.left_msat(&app_key).expect("a budget");
    let keysend = rt
        .block_on(nwc.pay_keysend(PayKeysendRequest {
            id: None,
            amount: 3_000_000,
            pubkey: shop.node_id().to_string(),
            preimage: None,
            tlv_records: vec![KeysendTLVRecord {
                tlv_type: 696_969,
                value: "77616c".into(),
            }],
        }))
        .expect("pay_keysend");
    let preimage: Preimage = keysend.preimage.parse().expect("hex");
    shop.wait_for(WAIT, "the keysend to arrive", |n| {
        n.payment_by_hash(preimage.payment_hash())
            .filter(|p| p.inbound && p.state == PaymentState::Succeeded)
    })
    .expect("the shop received the keysend");
    let fees = keysend.fees_paid.unwrap_or(0);
    assert_eq!(
        service.left_msat(&app_key),
        Some(left - 3_000_000 - fees),
        "charged amount and fees"
    );
    // A keysend has no invoice to show.
    let looked_up = rt
        .block_on(nwc.lookup_invoice(LookupInvoiceRequest {
            payment_hash: Some(preimage.payment_hash().to_string()),
            invoice: None,
        }))
        .expect("lookup_invoice of a keysend");
    assert_eq!(looked_up.transaction_type, Some(TransactionType::Outgoing));
    assert_eq!(looked_up.invoice, None);

    // multi_pay_invoice: one reply per invoice under its id, or its payment hash; a bad
    // invoice gets its own error and the others are paid.
    let left = service.left_msat(&app_key).expect("a budget");
    let a = shop
        .create_invoice(Some(1_000_000), "a", 3600)
        .expect("invoice");
    let b = shop
        .create_invoice(Some(2_000_000), "b", 3600)
        .expect("invoice");
    let replies = rt.block_on(raw.ask_many(
        json!({"method": "multi_pay_invoice", "params": {"invoices": [
            {"id": "a", "invoice": a.bolt11},
            {"invoice": b.bolt11},
            {"id": "bad", "invoice": "lnbcrt1nonsense"},
        ]}}),
        3,
    ));
    let by_d: std::collections::HashMap<_, _> = replies.into_iter().collect();
    let mut fees = 0;
    for (d, invoice) in [("a".to_string(), &a), (b.payment_hash.to_string(), &b)] {
        let reply = by_d
            .get(&d)
            .unwrap_or_else(|| panic!("no reply for {d}: {by_d:?}"));
        assert_eq!(reply["result_type"], "multi_pay_invoice", "{reply}");
        assert!(reply["error"].is_null(), "{reply}");
        let preimage: Preimage = reply["result"]["preimage"]
            .as_str()
            .expect("preimage")
            .parse()
            .expect("hex");
        assert_eq!(preimage.payment_hash(), invoice.payment_hash);
        fees += reply["result"]["fees_paid"].as_u64().unwrap_or(0);
    }
    assert_eq!(error_code(&by_d["bad"]), "OTHER", "{:?}", by_d["bad"]);
    assert_eq!(
        service.left_msat(&app_key),
        Some(left - 3_000_000 - fees),
        "charged both payments and their fees"
    );

    // multi_pay_keysend: one reply per keysend under its id, or its pubkey.
    let shop_id = shop.node_id().to_string();
    let replies = rt.block_on(raw.ask_many(
        json!({"method": "multi_pay_keysend", "params": {"keysends": [
            {"id": "k1", "pubkey": shop_id, "amount": 500_000},
            {"pubkey": shop_id, "amount": 600_000},
        ]}}),
        2,
    ));
    let ds: Vec<&str> = replies.iter().map(|(d, _)| d.as_str()).collect();
    let mut expected = vec!["k1", shop_id.as_str()];
    expected.sort();
    assert_eq!(ds, expected);
    for (_, reply) in &replies {
        assert_eq!(reply["result_type"], "multi_pay_keysend", "{reply}");
        assert!(reply["error"].is_null(), "{reply}");
    }

    permissions_are_kept_per_connection(&rt, &service, &wallet, &shop);

    rt.block_on(service.shutdown());
    relay.shutdown();
    shop.stop().expect("stop");
    wallet.stop().expect("stop");
}

/// Issue 23: a payment answered `PAYMENT_FAILED` when the wait ran out, which the payee takes
/// while the service is stopped: the restarted service reads the node's record, replaces the
/// budget reservation by what the payment cost and sends the `payment_sent` the app never got.
/// Before, the in-flight note was in memory only: the reservation stayed for the period and
/// no notification came.
#[test]
fn a_payment_that_ends_while_the_service_is_stopped_is_settled_after_the_restart() {
    let (_env, root, wallet, shop) = common::wallet_and_shop();
    let rt = runtime();
    let (relay, url) = relay(&rt);
    let mut config = NwcConfig::new(vec![url.to_string()]);
    config.pay_timeout = Duration::from_secs(3);
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
    let budget = Budget {
        limit_msat: 50_000_000,
        renewal: Renewal::Monthly,
    };
    let uri = service
        .connect_app("till", Some(budget), None)
        .expect("connect");
    let app_key = Keys::new(uri.secret.clone()).public_key();
    let raw = rt.block_on(RawApp::connect(&uri));
    let nwc = nwc::NWC::new(uri.clone());

    let secret = Preimage::random();
    let held = shop
        .create_hold_invoice(secret.payment_hash(), 7_000_000, "late", 3600)
        .expect("hold invoice");
    let answered = rt.block_on(nwc.pay_invoice(PayInvoiceRequest::new(held.bolt11.clone())));
    assert!(answered.is_err(), "answered before the shop took it");
    assert!(service.left_msat(&app_key).expect("budget") < budget.limit_msat - 7_000_000);

    rt.block_on(service.shutdown());
    shop.wait_for(WAIT, "the held payment to arrive and be taken", |n| {
        n.settle_hold_invoice(secret).ok()
    })
    .expect("the shop takes it");
    let paid = wallet
        .wait_for(WAIT, "the wallet to see its payment succeed", |n| {
            n.payment_by_hash(held.payment_hash)
                .filter(|p| p.state == PaymentState::Succeeded)
        })
        .expect("paid");

    let mut notifications = raw.client.notifications();
    let service = start(config);
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
    let fees = paid.fee_paid_msat.unwrap_or(0);
    assert_eq!(
        service.left_msat(&app_key),
        Some(budget.limit_msat - 7_000_000 - fees),
        "the reservation became what the payment cost"
    );

    rt.block_on(service.shutdown());
    relay.shutdown();
    shop.stop().expect("stop");
    wallet.stop().expect("stop");
}

/// Issue 23: each connection may call only the methods its permissions name. A read-only app
/// cannot pay or make invoices, a receive-only app cannot pay, and an app without `sign`
/// cannot sign: each is refused `RESTRICTED` and nothing happens (no payment is attempted, no
/// invoice made); `get_info` lists only what the connection may call and the notifications
/// it gets. Without the check, these payments and invoices went through.
fn permissions_are_kept_per_connection(
    rt: &tokio::runtime::Runtime,
    service: &NwcService,
    wallet: &moip_lightning::LightningNode,
    shop: &moip_lightning::LightningNode,
) {
    let read: BTreeSet<Permission> = [Permission::Read].into();
    let receive: BTreeSet<Permission> = [Permission::Receive, Permission::Read].into();
    let reader = service
        .connect_app_with("dashboard", None, None, read)
        .expect("connect");
    let receiver = service
        .connect_app_with("till", None, None, receive)
        .expect("connect");
    let reader = rt.block_on(RawApp::connect(&reader));
    let receiver = rt.block_on(RawApp::connect(&receiver));
    let made_before = service
        .connections()
        .iter()
        .map(|c| c.paid.len())
        .sum::<usize>();

    for app in [&reader, &receiver] {
        let invoice = shop
            .create_invoice(Some(1_000_000), "not yours to pay", 3600)
            .expect("invoice");
        for body in [
            json!({"method": "pay_invoice", "params": {"invoice": invoice.bolt11}}),
            json!({"method": "pay_keysend", "params": {"pubkey": shop.node_id().to_string(), "amount": 1_000}}),
            json!({"method": "sign_message", "params": {"message": "I am the operator"}}),
        ] {
            let reply = rt.block_on(app.ask(body.clone(), Some("nip44_v2")));
            assert_eq!(reply["result_type"], body["method"], "{reply}");
            assert_eq!(error_code(&reply), "RESTRICTED", "{body} -> {reply}");
            assert!(reply["result"].is_null(), "{reply}");
        }
        let multi = rt.block_on(app.ask(
            json!({"method": "multi_pay_invoice", "params": {"invoices": [{"invoice": invoice.bolt11}]}}),
            Some("nip44_v2"),
        ));
        assert_eq!(error_code(&multi), "RESTRICTED", "{multi}");
        assert!(
            wallet.payment_by_hash(invoice.payment_hash).is_none(),
            "no payment was attempted"
        );
    }
    assert_eq!(
        service
            .connections()
            .iter()
            .map(|c| c.paid.len())
            .sum::<usize>(),
        made_before
    );

    // The read-only app cannot make invoices; it reads.
    for method in ["make_invoice", "make_hold_invoice"] {
        let reply = rt.block_on(reader.ask(
            json!({"method": method, "params": {"amount": 1_000, "payment_hash": "00".repeat(32)}}),
            Some("nip44_v2"),
        ));
        assert_eq!(error_code(&reply), "RESTRICTED", "{method} -> {reply}");
    }
    let balance = rt.block_on(reader.ask(json!({"method": "get_balance", "params": {}}), None));
    assert!(balance["error"].is_null(), "{balance}");
    let info = rt.block_on(reader.ask(json!({"method": "get_info", "params": {}}), None));
    assert_eq!(
        info["result"]["methods"],
        json!([
            "lookup_invoice",
            "list_transactions",
            "get_balance",
            "get_info"
        ]),
        "{info}"
    );
    assert_eq!(info["result"]["notifications"], json!([]), "{info}");

    // The receive-only app makes invoices, and is told it may.
    let made = rt.block_on(receiver.ask(
        json!({"method": "make_invoice", "params": {"amount": 1_000}}),
        None,
    ));
    assert!(made["error"].is_null(), "{made}");
    let info = rt.block_on(receiver.ask(json!({"method": "get_info", "params": {}}), None));
    let methods = info["result"]["methods"].as_array().expect("methods");
    assert!(methods.contains(&json!("make_invoice")), "{info}");
    assert!(!methods.contains(&json!("pay_invoice")), "{info}");
    assert_eq!(
        info["result"]["notifications"],
        json!(["payment_received", "hold_invoice_accepted"]),
        "{info}"
    );
}
