//! Attack 4 of issue 21: apps see the community's treasury. Two apps connected over NWC to the
//! real `moip up` (its ldk-node, its Nostr relay, its NWC service), each driven by rust-nostr's
//! own NWC client. App B holds a connection of its own and tries to learn what app A does:
//!
//! - look up A's unpaid invoice by its hash or by the invoice itself — on the old code the
//!   node's record came back with its preimage, so B could claim a payment meant for A;
//! - list every transaction of the node, unpaid ones included;
//! - pay A's invoice through its own connection, so that the node's record of it becomes B's;
//! - read the node's balance — the community's collateral — through `get_balance`.

use std::time::Duration;

use nwc::prelude::{
    ErrorCode, ListTransactionsRequest, LookupInvoiceRequest, MakeInvoiceRequest,
    NostrWalletConnectURI, PayInvoiceRequest,
};
use serde_json::{json, Value};

use crate::common::spawn_up;

const WAIT: Duration = Duration::from_secs(60);
/// Each app's daily budget.
const BUDGET_SAT: u64 = 1_000;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into()
}

/// A new NWC connection from the operator's API.
fn pair(base: &str, token: &str, name: &str) -> NostrWalletConnectURI {
    let mut response = agent()
        .post(format!("{base}/api/pairing/nwc"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(json!({ "name": name, "budget_sat": BUDGET_SAT }).to_string())
        .expect("the API answers");
    let text = response.body_mut().read_to_string().expect("body");
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    assert_eq!(response.status().as_u16(), 200, "{body}");
    body["uri"]
        .as_str()
        .expect("a URI")
        .parse()
        .expect("an NWC URI")
}

fn code(e: &nwc::Error) -> Option<ErrorCode> {
    match e {
        nwc::Error::NIP47(nwc::prelude::nip47::Error::ErrorCode(e)) => Some(e.code),
        _ => None,
    }
}

/// B cannot look up, list, pay into its own history, or learn the preimage of A's invoice, and
/// neither app is told the node's balance: each hears what its own budget leaves it.
#[test]
fn an_app_sees_only_its_own_invoices_and_never_the_node_s_balance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, lines, data) = spawn_up(dir.path(), "", &["  dashboard: "]);
    let base = lines[0].trim_end_matches('/').to_owned();
    let token = std::fs::read_to_string(data.join("api.token")).expect("the operator's token");
    let token = token.trim();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let a = nwc::NWC::new(pair(&base, token, "till"));
    let b = nwc::NWC::new(pair(&base, token, "intruder"));

    // A makes an invoice; it sees it, unpaid, in its own history.
    let made = rt
        .block_on(a.make_invoice(MakeInvoiceRequest {
            amount: 5_000_000,
            description: Some("coffee".into()),
            description_hash: None,
            expiry: None,
        }))
        .expect("make_invoice");
    let hash = made.payment_hash.clone().expect("a payment hash");
    let own = rt
        .block_on(a.lookup_invoice(LookupInvoiceRequest {
            payment_hash: Some(hash.clone()),
            invoice: None,
        }))
        .expect("A looks up its own invoice");
    assert_eq!(own.payment_hash, hash);

    // B asks for it by hash and by invoice: the answer a hash the node never saw gets.
    for (payment_hash, invoice) in [
        (Some(hash.clone()), None),
        (None, Some(made.invoice.clone())),
    ] {
        let looked_up = rt.block_on(b.lookup_invoice(LookupInvoiceRequest {
            payment_hash,
            invoice,
        }));
        match looked_up {
            Err(e) => assert_eq!(code(&e), Some(ErrorCode::NotFound), "{e}"),
            Ok(leaked) => panic!(
                "B read A's invoice, preimage {:?}",
                leaked.preimage.as_deref()
            ),
        }
    }
    let listed = rt
        .block_on(b.list_transactions(ListTransactionsRequest {
            unpaid: Some(true),
            ..ListTransactionsRequest::default()
        }))
        .expect("list_transactions");
    assert!(
        listed.iter().all(|t| t.payment_hash != hash),
        "B lists A's invoice: {listed:?}"
    );
    assert!(listed.is_empty(), "B lists the node's history: {listed:?}");

    // B pays A's invoice through its own connection: refused, and still none of its business.
    let paid = rt.block_on(b.pay_invoice(PayInvoiceRequest::new(made.invoice.clone())));
    assert!(paid.is_err(), "B paid A's invoice: {paid:?}");
    let after = rt.block_on(b.lookup_invoice(LookupInvoiceRequest {
        payment_hash: Some(hash.clone()),
        invoice: None,
    }));
    assert!(
        after.as_ref().err().and_then(code) == Some(ErrorCode::NotFound),
        "B reads A's invoice after paying it: {after:?}"
    );

    // Each app's balance is what its budget leaves it, whatever the node holds.
    for app in [&a, &b] {
        let balance = rt.block_on(app.get_balance()).expect("get_balance");
        assert_eq!(balance, BUDGET_SAT * 1_000, "not the app's own balance");
    }

    node.stop();
}
