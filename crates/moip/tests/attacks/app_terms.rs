//! Attack 4 of issue 21, the terms an app was paired with: an NWC app keeps using its connection
//! past the expiry the operator gave it, spends more than its daily budget (the budget renewed
//! a sliding day after pairing, not with the calendar), or — after `moip up` restarts — settles
//! or cancels a hold invoice another app made, while the app that made it can no longer settle
//! it. Each app is rust-nostr's NWC client (its request events for the hold invoice methods,
//! which its client does not offer) against the real `moip up`, its relay and ldk-node.

use futures_util::StreamExt;
use moip_lightning::{PaymentState, Preimage, RouteLimits};
use nwc::prelude::{
    CancelHoldInvoiceRequest, ErrorCode, Filter, Kind, ListTransactionsRequest,
    LookupInvoiceRequest, MakeHoldInvoiceRequest, MakeInvoiceRequest, Method,
    NostrWalletConnectURI, Notification, NotificationType, PayInvoiceRequest, RelayOptions,
    RelayPool, ReqExitPolicy, Request, RequestParams, Response, SettleHoldInvoiceRequest,
    Timestamp,
};
use serde_json::{json, Value};

use crate::apps::{call, code, payee_of, runtime, up_on_fixed_ports, Shop, WAIT};
use crate::common::{spawn_up, wait_until};

/// Pairs an app through the operator's API with `body`; its URI.
fn pair(base: &str, token: &str, body: Value) -> NostrWalletConnectURI {
    let (status, body) = call(base, token, "/api/pairing/nwc", Some(body));
    assert_eq!(status, 200, "{body}");
    body["uri"]
        .as_str()
        .expect("a URI")
        .parse()
        .expect("an NWC URI")
}

/// The API's entry for the app holding `uri`.
fn listed(base: &str, token: &str, uri: &NostrWalletConnectURI) -> Value {
    let client = nwc::prelude::Keys::new(uri.secret.clone())
        .public_key()
        .to_hex();
    let (status, list) = call(base, token, "/api/pairing/nwc", None);
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .expect("a list")
        .iter()
        .find(|app| app["client"] == client)
        .cloned()
        .expect("the app is listed")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A relay pool on the URI's relays: how rust-nostr's NWC client talks to the service.
async fn pool(uri: &NostrWalletConnectURI) -> RelayPool {
    let pool = RelayPool::default();
    for relay in &uri.relays {
        pool.add_relay(relay, RelayOptions::default())
            .await
            .expect("relay");
    }
    pool.connect().await;
    pool
}

/// Sends `params` as the app holding `uri` and waits for the service's answer.
async fn request(uri: &NostrWalletConnectURI, method: Method, params: RequestParams) -> Response {
    let pool = pool(uri).await;
    let event = Request { method, params }.to_event(uri).expect("a request");
    let filter = Filter::new()
        .author(uri.public_key)
        .kind(Kind::WalletConnectResponse)
        .event(event.id);
    let mut answers = pool
        .stream_events(filter, WAIT, ReqExitPolicy::WaitForEvents(1))
        .await
        .expect("subscribe");
    pool.send_event(&event).await.expect("send");
    let answer = answers.next().await.expect("an answer");
    let response = Response::from_event(uri, &answer).expect("a response");
    pool.shutdown().await;
    response
}

/// The NIP-47 error code of an answer, `None` when it succeeded.
fn refusal(response: &Response) -> Option<ErrorCode> {
    response.error.as_ref().map(|e| e.code)
}

/// A connection the operator gave until a time works until then and not after: paying,
/// invoicing, looking up, listing and the balance all get `UNAUTHORIZED`, as if revoked. Bad
/// pairing terms (an expiry already past, a renewal Alby Hub does not name) are refused.
#[test]
fn an_expired_connection_can_neither_pay_nor_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, lines, data) = spawn_up(dir.path(), "", &["  dashboard: "]);
    let base = lines[0].trim_end_matches('/').to_owned();
    let token = std::fs::read_to_string(data.join("api.token")).expect("the operator's token");
    let token = token.trim();
    let rt = runtime();

    for (body, why) in [
        (json!({ "name": "late", "expires_at": now() - 1 }), "past"),
        (
            json!({ "name": "odd", "budget_sat": 1, "budget_renewal": "fortnightly" }),
            "fortnightly",
        ),
    ] {
        let (status, answer) = call(&base, token, "/api/pairing/nwc", Some(body));
        assert_eq!(status, 400, "{why}: {answer}");
    }

    // Paired through `moip apps pair` for 30 seconds.
    let expires_at = now() + 30;
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_moip"))
        .args(["apps", "--api", &base, "--data-dir"])
        .arg(&data)
        .args(["pair", "kiosk", "--budget-sat", "1000", "--budget-renewal"])
        .args(["weekly", "--expires-at", &expires_at.to_string()])
        .output()
        .expect("moip apps pair");
    assert!(cli.status.success(), "{cli:?}");
    let uri: NostrWalletConnectURI = String::from_utf8_lossy(&cli.stdout)
        .trim()
        .parse()
        .expect("an NWC URI");
    let app = nwc::NWC::new(uri.clone());
    assert_eq!(rt.block_on(app.get_balance()).expect("before expiry"), 0);
    let entry = listed(&base, token, &uri);
    assert_eq!(entry["expires_at"], expires_at, "{entry}");
    assert_eq!(entry["budget_renewal"], "weekly", "{entry}");
    assert_eq!(entry["expired"], false, "{entry}");

    wait_until(WAIT, "the connection to expire", || {
        let answer = rt.block_on(app.get_balance());
        answer
            .err()
            .filter(|e| code(e) == Some(ErrorCode::Unauthorized))
    });
    assert!(now() >= expires_at, "refused before its expiry");
    let invoice = rt.block_on(app.make_invoice(MakeInvoiceRequest {
        amount: 1_000,
        description: None,
        description_hash: None,
        expiry: None,
    }));
    let paid = rt.block_on(app.pay_invoice(PayInvoiceRequest::new("lnbcrt1".to_owned())));
    let looked_up = rt.block_on(app.lookup_invoice(LookupInvoiceRequest {
        payment_hash: Some("00".repeat(32)),
        invoice: None,
    }));
    let listed_txs = rt.block_on(app.list_transactions(ListTransactionsRequest::default()));
    for (what, answer) in [
        ("make_invoice", invoice.err()),
        ("pay_invoice", paid.err()),
        ("lookup_invoice", looked_up.err()),
        ("list_transactions", listed_txs.err()),
    ] {
        let e = answer.unwrap_or_else(|| panic!("{what} after expiry was carried out"));
        assert_eq!(code(&e), Some(ErrorCode::Unauthorized), "{what}: {e}");
    }
    let entry = listed(&base, token, &uri);
    assert_eq!(entry["expired"], true, "{entry}");
    assert_eq!(entry["left_msat"], Value::Null, "{entry}");

    node.stop();
}

/// An app with a daily budget of 20 sat and 20 000 sat of its own spends 5 sat, then is
/// refused the next 5 sat (with the fee cap it would take the day over 20): the budget, not
/// the account, says no — and the list and `moip apps list` say what is left today.
#[test]
fn a_daily_budget_spent_today_is_refused_until_the_next_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Shop {
        node,
        lines,
        base,
        data,
        token,
    } = Shop::up(dir.path());
    let token = token.as_str();
    let payee = payee_of(&node, &lines, dir.path());
    let rt = runtime();
    let uri = pair(
        &base,
        token,
        json!({ "name": "till", "budget_sat": 20, "budget_renewal": "daily" }),
    );
    let app = nwc::NWC::new(uri.clone());

    // The app's own money: a sale of 20 000 sat.
    let sale = rt
        .block_on(app.make_invoice(MakeInvoiceRequest {
            amount: 20_000_000,
            description: Some("sale".into()),
            description_hash: None,
            expiry: None,
        }))
        .expect("make_invoice");
    payee
        .pay(&sale.invoice, None, RouteLimits::default(), WAIT)
        .expect("the customer pays");
    wait_until(WAIT, "the till credited", || {
        (rt.block_on(app.get_balance()).ok()? == 20_000_000).then_some(())
    });

    let first = payee
        .create_invoice(Some(5_000), "first", 3600)
        .expect("invoice");
    let paid = rt
        .block_on(app.pay_invoice(PayInvoiceRequest::new(first.bolt11.clone())))
        .expect("within today's budget");
    let spent_msat = 5_000 + paid.fees_paid.unwrap_or(0);
    let entry = listed(&base, token, &uri);
    assert_eq!(entry["left_msat"], 20_000 - spent_msat, "{entry}");
    assert_eq!(entry["budget_renewal"], "daily", "{entry}");

    let second = payee
        .create_invoice(Some(5_000), "second", 3600)
        .expect("invoice");
    let refused = rt
        .block_on(app.pay_invoice(PayInvoiceRequest::new(second.bolt11.clone())))
        .expect_err("over today's budget");
    assert_eq!(code(&refused), Some(ErrorCode::QuotaExceeded), "{refused}");
    assert_ne!(
        payee.payment_by_hash(second.payment_hash).map(|p| p.state),
        Some(PaymentState::Succeeded),
        "paid past the day's budget"
    );

    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_moip"))
        .args(["apps", "--api", &base, "--data-dir"])
        .arg(&data)
        .arg("list")
        .output()
        .expect("moip apps list");
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{cli:?}");
    assert!(
        stdout.contains("till: budget 20 sat daily, left 15 sat; balance"),
        "{stdout}"
    );

    let _ = payee.stop();
    node.stop();
}

/// A customer pays an app's hold invoice; `moip up` restarts before the app decides. After the
/// restart another app can neither settle nor cancel it, and the app that made it settles it:
/// the customer's payment succeeds and the app is credited. On the old code the node forgot the
/// held payment on restart (ldk-node reports it once) and the settle was refused `NOT_FOUND`,
/// the customer's money stuck until the HTLC timed out.
#[test]
fn a_hold_invoice_made_before_a_restart_is_settled_by_its_app_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Shop {
        node,
        lines,
        base,
        token,
        ..
    } = Shop::up_on_fixed_ports(dir.path());
    let payee = payee_of(&node, &lines, dir.path());
    let rt = runtime();
    let a = pair(&base, &token, json!({ "name": "escrow" }));
    let b = pair(&base, &token, json!({ "name": "intruder" }));

    let preimage = Preimage::random();
    let hash = preimage.payment_hash().to_string();
    let made = rt.block_on(request(
        &a,
        Method::MakeHoldInvoice,
        RequestParams::MakeHoldInvoice(MakeHoldInvoiceRequest {
            amount: 3_000_000,
            description: Some("held".into()),
            description_hash: None,
            expiry: None,
            payment_hash: hash.clone(),
            cltv_expiry_delta: None,
        }),
    ));
    let invoice = match made.result {
        Some(nwc::prelude::ResponseResult::MakeHoldInvoice(r)) => r.invoice.expect("an invoice"),
        other => panic!("no hold invoice: {other:?} {:?}", made.error),
    };

    // The customer pays; A hears the payment is held.
    let accepted = rt.block_on(async {
        let pool = pool(&a).await;
        let filter = Filter::new()
            .author(a.public_key)
            .pubkey(nwc::prelude::Keys::new(a.secret.clone()).public_key())
            .kind(Kind::WalletConnectNotification)
            .since(Timestamp::now());
        let mut notifications = pool
            .stream_events(filter, WAIT, ReqExitPolicy::WaitForEvents(1))
            .await
            .expect("subscribe");
        payee
            .send_bolt11(&invoice, None, RouteLimits::default())
            .expect("the customer pays");
        let event = notifications.next().await.expect("a notification");
        pool.shutdown().await;
        Notification::from_event(&a, &event).expect("a notification")
    });
    assert_eq!(
        accepted.notification_type,
        NotificationType::HoldInvoiceAccepted
    );

    node.stop();
    let (node, lines) = up_on_fixed_ports(dir.path());
    let community = lines[2].parse().expect("the node's Lightning address");
    let _ = payee.connect(&community);

    // B, knowing the preimage (from the customer, say), cannot decide A's invoice.
    let settle = || {
        RequestParams::SettleHoldInvoice(SettleHoldInvoiceRequest {
            preimage: preimage.to_string(),
        })
    };
    let by_b = rt.block_on(request(&b, Method::SettleHoldInvoice, settle()));
    assert_eq!(refusal(&by_b), Some(ErrorCode::Restricted), "{by_b:?}");
    let cancel = RequestParams::CancelHoldInvoice(CancelHoldInvoiceRequest {
        payment_hash: hash.clone(),
    });
    let by_b = rt.block_on(request(&b, Method::CancelHoldInvoice, cancel));
    assert_eq!(refusal(&by_b), Some(ErrorCode::Restricted), "{by_b:?}");

    // A settles it after the restart.
    let by_a = rt.block_on(request(&a, Method::SettleHoldInvoice, settle()));
    assert_eq!(refusal(&by_a), None, "A cannot settle its own: {by_a:?}");
    wait_until(WAIT, "the customer's payment to succeed", || {
        let state = payee.payment_by_hash(preimage.payment_hash())?.state;
        (state == PaymentState::Succeeded).then_some(())
    });
    let a_app = nwc::NWC::new(a);
    wait_until(WAIT, "A credited", || {
        (rt.block_on(a_app.get_balance()).ok()? == 3_000_000).then_some(())
    });
    assert_eq!(
        rt.block_on(nwc::NWC::new(b).get_balance())
            .expect("balance"),
        0
    );

    let _ = payee.stop();
    node.stop();
}

/// Issue 23: what an app may do is chosen when it is paired — through the API or `moip apps
/// pair --permissions` — and kept. A read-only app is refused paying and invoicing, a
/// receive-only app paying, each with `RESTRICTED`; an app paired without permissions does
/// everything it did before. The API, `moip apps list` and the dashboard show them; unknown or
/// no permissions are refused. Without the check the read-only app's invoice was made.
#[test]
fn an_app_may_do_only_what_it_was_permitted_when_paired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, lines, data) = spawn_up(dir.path(), "", &["  dashboard: "]);
    let base = lines[0].trim_end_matches('/').to_owned();
    let token = std::fs::read_to_string(data.join("api.token")).expect("the operator's token");
    let token = token.trim();
    let rt = runtime();

    for permissions in [json!(["pay", "spend"]), json!([])] {
        let body = json!({ "name": "odd", "permissions": permissions });
        let (status, answer) = call(&base, token, "/api/pairing/nwc", Some(body));
        assert_eq!(status, 400, "{permissions}: {answer}");
    }

    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_moip"))
        .args(["apps", "--api", &base, "--data-dir"])
        .arg(&data)
        .args(["pair", "dashboard", "--permissions", "read"])
        .output()
        .expect("moip apps pair");
    assert!(cli.status.success(), "{cli:?}");
    let reader: NostrWalletConnectURI = String::from_utf8_lossy(&cli.stdout)
        .trim()
        .parse()
        .expect("an NWC URI");
    let receiver = pair(
        &base,
        token,
        json!({ "name": "till", "permissions": ["receive", "read"] }),
    );
    let default = pair(&base, token, json!({ "name": "wallet" }));
    for (uri, permissions) in [
        (&reader, json!(["read"])),
        (&receiver, json!(["receive", "read"])),
        (&default, json!(["pay", "receive", "read"])),
    ] {
        let entry = listed(&base, token, uri);
        assert_eq!(entry["permissions"], permissions, "{entry}");
    }
    let list = std::process::Command::new(env!("CARGO_BIN_EXE_moip"))
        .args(["apps", "--api", &base, "--data-dir"])
        .arg(&data)
        .arg("list")
        .output()
        .expect("moip apps list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("dashboard: no budget; balance 0 sat; may read;"),
        "{list}"
    );
    assert!(list.contains("may pay,receive,read;"), "{list}");

    let make = |uri: &NostrWalletConnectURI| {
        rt.block_on(nwc::NWC::new(uri.clone()).make_invoice(MakeInvoiceRequest {
            amount: 1_000,
            description: None,
            description_hash: None,
            expiry: None,
        }))
    };
    let pay = |uri: &NostrWalletConnectURI| {
        rt.block_on(
            nwc::NWC::new(uri.clone()).pay_invoice(PayInvoiceRequest::new("lnbcrt1".to_owned())),
        )
    };
    let restricted = |what: &str, e: Option<nwc::Error>| {
        let e = e.unwrap_or_else(|| panic!("{what} was carried out"));
        assert_eq!(code(&e), Some(ErrorCode::Restricted), "{what}: {e}");
    };
    restricted("the read-only app's make_invoice", make(&reader).err());
    restricted("the read-only app's pay_invoice", pay(&reader).err());
    restricted("the receive-only app's pay_invoice", pay(&receiver).err());
    assert_eq!(
        rt.block_on(nwc::NWC::new(reader.clone()).get_balance())
            .expect("the read-only app reads"),
        0
    );
    make(&receiver).expect("the receive-only app makes invoices");
    make(&default).expect("a default app makes invoices");
    let e = pay(&default).expect_err("not an invoice");
    assert_ne!(
        code(&e),
        Some(ErrorCode::Restricted),
        "a default app may pay: {e}"
    );

    node.stop();
}
