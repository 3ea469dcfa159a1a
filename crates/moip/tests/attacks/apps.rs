//! Attack 4 of issue 21: apps see the community's treasury. Two apps connected over NWC to the
//! real `moip up` (its ldk-node, its Nostr relay, its NWC service), each driven by rust-nostr's
//! own NWC client. App B holds a connection of its own and tries to learn what app A does:
//!
//! - look up A's unpaid invoice by its hash or by the invoice itself — on the old code the
//!   node's record came back with its preimage, so B could claim a payment meant for A;
//! - list every transaction of the node, unpaid ones included;
//! - pay A's invoice through its own connection, so that the node's record of it becomes B's;
//! - read the node's balance — the community's collateral — through `get_balance`;
//! - spend, with a budget but nothing of its own, the node's money: the collateral behind the
//!   members' tokens, or what another app received; or spend more than it has, fees included.

use std::time::Duration;

use moip_lightning::{PaymentState, RouteLimits};
use nwc::prelude::{
    ErrorCode, ListTransactionsRequest, LookupInvoiceRequest, MakeInvoiceRequest,
    NostrWalletConnectURI, PayInvoiceRequest,
};
use serde_json::{json, Value};

use crate::common::payer::payer_with_channel;
use crate::common::{spawn_up, wait_until};

pub(crate) const WAIT: Duration = Duration::from_secs(60);
/// Each app's daily budget.
const BUDGET_SAT: u64 = 1_000;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into()
}

/// `POST path` (or `GET` without a body) on the API as the operator: status and JSON body.
pub(crate) fn call(base: &str, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let url = format!("{base}{path}");
    let response = match body {
        Some(body) => agent()
            .post(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body.to_string()),
        None => agent().get(&url).header("Authorization", &auth).call(),
    };
    let mut response = response.expect("the API answers");
    let text = response.body_mut().read_to_string().expect("body");
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (response.status().as_u16(), body)
}

/// A new NWC connection from the operator's API, with a budget of `budget_sat` a day.
fn pair_with(base: &str, token: &str, name: &str, budget_sat: u64) -> NostrWalletConnectURI {
    let body = json!({ "name": name, "budget_sat": budget_sat });
    let (status, body) = call(base, token, "/api/pairing/nwc", Some(body));
    assert_eq!(status, 200, "{body}");
    body["uri"]
        .as_str()
        .expect("a URI")
        .parse()
        .expect("an NWC URI")
}

/// A new NWC connection with the tests' budget.
fn pair(base: &str, token: &str, name: &str) -> NostrWalletConnectURI {
    pair_with(base, token, name, BUDGET_SAT)
}

pub(crate) fn code(e: &nwc::Error) -> Option<ErrorCode> {
    match e {
        nwc::Error::NIP47(nwc::prelude::nip47::Error::ErrorCode(e)) => Some(e.code),
        _ => None,
    }
}

/// B cannot look up, list, pay into its own history, or learn the preimage of A's invoice, and
/// neither app is told the node's balance: each hears its own account's.
#[test]
fn an_app_sees_only_its_own_invoices_and_never_the_node_s_balance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, lines, data) = spawn_up(dir.path(), "", &["  dashboard: "]);
    let base = lines[0].trim_end_matches('/').to_owned();
    let token = std::fs::read_to_string(data.join("api.token")).expect("the operator's token");
    let token = token.trim();
    let rt = runtime();
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

    // Each app's balance is its own (nothing yet), whatever the node holds.
    for app in [&a, &b] {
        let balance = rt.block_on(app.get_balance()).expect("get_balance");
        assert_eq!(balance, 0, "not the app's own balance");
    }

    node.stop();
}

/// The community's collateral, sat.
fn collateral(base: &str, token: &str) -> u64 {
    let (status, community) = call(base, token, "/api/community", None);
    assert_eq!(status, 200, "{community}");
    community["collateral_sats"]
        .as_u64()
        .expect("collateral_sats")
}

/// An app with a budget but no money of its own cannot spend the node's — neither the
/// collateral behind the members' tokens nor what another app received; an app spends at most
/// what it has, routing fees included; the operator cannot hand an app collateral that backs
/// tokens; and the collateral never moves with an app's payments.
#[test]
fn an_app_spends_its_own_account_and_never_the_collateral() {
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

    // A member deposits 50,000 sat: collateral, all of it backing their tokens.
    let member = nwc::prelude::Keys::generate().public_key().to_hex();
    let (status, deposit) = call(
        &base,
        token,
        "/api/deposits",
        Some(json!({ "pubkey": member, "sats": 50_000 })),
    );
    assert_eq!(status, 201, "{deposit}");
    payee
        .pay(
            deposit["invoice"].as_str().expect("an invoice"),
            None,
            RouteLimits::default(),
            WAIT,
        )
        .expect("the deposit is paid");
    wait_until(WAIT, "the deposit credited", || {
        (collateral(&base, token) == 50_000).then_some(())
    });

    // App A is paid 20,000 sat for an invoice it made: that is its own money.
    let a_uri = pair_with(&base, token, "till", 100_000);
    let a = nwc::NWC::new(a_uri.clone());
    let made = rt
        .block_on(a.make_invoice(MakeInvoiceRequest {
            amount: 20_000_000,
            description: Some("sale".into()),
            description_hash: None,
            expiry: None,
        }))
        .expect("make_invoice");
    payee
        .pay(&made.invoice, None, RouteLimits::default(), WAIT)
        .expect("the customer pays the till");
    wait_until(WAIT, "the till credited", || {
        (rt.block_on(a.get_balance()).ok()? == 20_000_000).then_some(())
    });

    // App B has a 1,000-sat budget and nothing of its own: it spends nothing.
    let b_uri = pair(&base, token, "intruder");
    let b = nwc::NWC::new(b_uri.clone());
    let bill = payee
        .create_invoice(Some(500_000), "b", 3600)
        .expect("invoice");
    let refused = rt
        .block_on(b.pay_invoice(PayInvoiceRequest::new(bill.bolt11.clone())))
        .expect_err("B has nothing");
    assert_eq!(
        code(&refused),
        Some(ErrorCode::InsufficientBalance),
        "{refused}"
    );
    assert_ne!(
        payee.payment_by_hash(bill.payment_hash).map(|p| p.state),
        Some(PaymentState::Succeeded),
        "B spent money that is not its own"
    );

    // The operator cannot fund B from collateral that backs tokens, nor a key never paired.
    let b_key = nwc::prelude::Keys::new(b_uri.secret.clone())
        .public_key()
        .to_hex();
    let (status, body) = call(
        &base,
        token,
        &format!("/api/pairing/nwc/{b_key}/fund"),
        Some(json!({ "sats": 1 })),
    );
    assert_eq!(status, 422, "{body}");
    let stranger = nwc::prelude::Keys::generate().public_key().to_hex();
    let (status, _) = call(
        &base,
        token,
        &format!("/api/pairing/nwc/{stranger}/fund"),
        Some(json!({ "sats": 1 })),
    );
    assert_eq!(status, 404);
    // The same through `moip apps fund`: refused, with the ledger's reason.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_moip"))
        .args(["apps", "--api", &base, "--data-dir"])
        .arg(&data)
        .args(["fund", &b_key, "1"])
        .output()
        .expect("moip apps fund");
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(!cli.status.success(), "funded from the tokens' collateral");
    assert!(
        stderr.contains("422") && stderr.contains("collateral"),
        "{stderr}"
    );

    // A spends at most its 20,000 sat, fees included: 19,990 sat with its fee cap is too much.
    let too_much = payee
        .create_invoice(Some(19_990_000), "too much", 3600)
        .expect("invoice");
    let refused = rt
        .block_on(a.pay_invoice(PayInvoiceRequest::new(too_much.bolt11.clone())))
        .expect_err("over A's balance with the fee cap");
    assert_eq!(
        code(&refused),
        Some(ErrorCode::InsufficientBalance),
        "{refused}"
    );
    let coffee = payee
        .create_invoice(Some(15_000_000), "coffee", 3600)
        .expect("invoice");
    let paid = rt
        .block_on(a.pay_invoice(PayInvoiceRequest::new(coffee.bolt11.clone())))
        .expect("within A's balance");
    let left = rt.block_on(a.get_balance()).expect("get_balance");
    assert_eq!(left, 5_000_000 - paid.fees_paid.unwrap_or(0));
    assert_eq!(
        collateral(&base, token),
        50_000,
        "the collateral moved with an app's payment"
    );

    let _ = payee.stop();
    node.stop();
}

/// A running `moip up` as the apps' tests meet it: the node, its dashboard's base URL (no
/// trailing slash), its Electrum and Lightning lines, its data directory and the operator's
/// API token.
pub(crate) struct Shop {
    pub node: crate::common::NodeProcess,
    pub lines: Vec<String>,
    pub base: String,
    pub data: std::path::PathBuf,
    pub token: String,
}

impl Shop {
    /// `moip up` in `dir` on ports it picks itself.
    pub(crate) fn up(dir: &std::path::Path) -> Shop {
        let (node, lines, data) = spawn_up(dir, "", &UP_LINES);
        Shop::new(node, lines, data)
    }

    /// `moip up` in `dir/node` on fixed free ports, the same on every start in `dir` (a restart
    /// keeps the relay's address, which the apps' URIs name).
    pub(crate) fn up_on_fixed_ports(dir: &std::path::Path) -> Shop {
        let (node, lines) = up_on_fixed_ports(dir);
        Shop::new(node, lines, dir.join("node"))
    }

    fn new(node: crate::common::NodeProcess, lines: Vec<String>, data: std::path::PathBuf) -> Shop {
        let base = lines[0].trim_end_matches('/').to_owned();
        let token = std::fs::read_to_string(data.join("api.token")).expect("the operator's token");
        Shop {
            node,
            lines,
            base,
            data,
            token: token.trim().to_owned(),
        }
    }
}

/// A payee's ldk-node in `dir/payee`, with a 1,000,000-sat channel to the node of `lines`.
pub(crate) fn payee_of(
    node: &crate::common::NodeProcess,
    lines: &[String],
    dir: &std::path::Path,
) -> moip_lightning::LightningNode {
    payer_with_channel(node, &dir.join("payee"), &lines[1], &lines[2], 1_000_000)
}

/// What the tests read of `moip up`'s start: the dashboard, Electrum and Lightning lines.
const UP_LINES: [&str; 3] = ["  dashboard: ", "  electrum tcp: ", "  lightning: "];

/// A runtime for the NWC clients, beside the blocking test.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// `moip up` in `dir/node` on fixed free ports (a restart keeps the relay's address, which the
/// apps' URIs name): the node, the dashboard's address, the Electrum and Lightning lines.
pub(crate) fn up_on_fixed_ports(
    dir: &std::path::Path,
) -> (crate::common::NodeProcess, Vec<String>) {
    let config = dir.join("moip.toml");
    if !config.exists() {
        let port = crate::common::free_port;
        std::fs::write(
            &config,
            format!(
                "mine_every_secs = 0\n[ports]\nrpc = {}\nelectrum_tcp = {}\nelectrum_ws = {}\n\
                 electrum_ssl = 0\nelectrum_wss = 0\nlightning = {}\nmoneysocket = {}\n\
                 nostr = {}\napi = {}\n",
                port(),
                port(),
                port(),
                port(),
                port(),
                port(),
                port()
            ),
        )
        .expect("settings");
    }
    let args = [
        "up".to_owned(),
        "--config".into(),
        config.display().to_string(),
        "--data-dir".into(),
        dir.join("node").display().to_string(),
    ];
    crate::common::NodeProcess::spawn_with_env(
        &args,
        &[("MOIP_PASSWORD", "correct horse")],
        &dir.join("node"),
        &UP_LINES,
    )
}

/// An invoice an app made before the node restarted stays that app's: after the restart no
/// other app can read it, and when it is paid the money goes to the app that made it.
#[test]
fn an_app_s_invoices_stay_its_own_across_a_restart() {
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
    let a_uri = pair(&base, &token, "till");
    let b_uri = pair(&base, &token, "intruder");
    let made = rt
        .block_on(
            nwc::NWC::new(a_uri.clone()).make_invoice(MakeInvoiceRequest {
                amount: 7_000_000,
                description: Some("before".into()),
                description_hash: None,
                expiry: None,
            }),
        )
        .expect("make_invoice");
    let hash = made.payment_hash.clone().expect("a payment hash");

    node.stop();
    let (node, lines) = up_on_fixed_ports(dir.path());
    let community = lines[2].parse().expect("the node's Lightning address");
    let _ = payee.connect(&community);
    let (a, b) = (nwc::NWC::new(a_uri), nwc::NWC::new(b_uri));

    let looked_up = rt.block_on(b.lookup_invoice(LookupInvoiceRequest {
        payment_hash: Some(hash.clone()),
        invoice: None,
    }));
    assert!(
        looked_up.as_ref().err().and_then(code) == Some(ErrorCode::NotFound),
        "B reads A's invoice after a restart: {looked_up:?}"
    );
    wait_until(WAIT, "the payee to pay A's invoice", || {
        payee
            .pay(
                &made.invoice,
                None,
                RouteLimits::default(),
                Duration::from_secs(10),
            )
            .ok()
    });
    wait_until(WAIT, "the till credited", || {
        (rt.block_on(a.get_balance()).ok()? == 7_000_000).then_some(())
    });
    assert_eq!(rt.block_on(b.get_balance()).expect("balance"), 0);

    let _ = payee.stop();
    node.stop();
}

/// A payment the NWC service stopped waiting for (60 s) and that failed later is refunded in
/// full, also when `moip up` restarted in between: the payee holds the app's payment past the
/// wait, the node restarts with the app charged the amount and fee cap, then the payee cancels.
/// On the old code the charge stayed forever — the app lost its money — since only the wait's
/// own answer ever refunded it.
#[test]
fn a_late_failure_is_refunded_across_a_restart() {
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
    // Longer than the service's own wait, so the app hears its answer.
    let options = nwc::NostrWalletConnectOptions::new().timeout(Duration::from_secs(150));
    let a_uri = pair_with(&base, &token, "till", 100_000);
    let a = nwc::NWC::with_opts(a_uri.clone(), options.clone());

    // The till is paid 20,000 sat: its own money, and the node's outbound liquidity.
    let made = rt
        .block_on(a.make_invoice(MakeInvoiceRequest {
            amount: 20_000_000,
            description: Some("sale".into()),
            description_hash: None,
            expiry: None,
        }))
        .expect("make_invoice");
    payee
        .pay(&made.invoice, None, RouteLimits::default(), WAIT)
        .expect("the customer pays the till");
    wait_until(WAIT, "the till credited", || {
        (rt.block_on(a.get_balance()).ok()? == 20_000_000).then_some(())
    });

    // The till pays 5,000 sat to a hold invoice the payee holds past the service's wait (the
    // node can send 10,000 sat: the rest of its 20,000 is the channel's reserve).
    let preimage = moip_lightning::Preimage::random();
    let held = payee
        .create_hold_invoice(preimage.payment_hash(), 5_000_000, "held", 3600)
        .expect("a hold invoice");
    let unknown = rt
        .block_on(a.pay_invoice(PayInvoiceRequest::new(held.bolt11.clone())))
        .expect_err("held past the wait: no outcome yet");
    assert_ne!(
        payee.payment_by_hash(held.payment_hash).map(|p| p.state),
        Some(PaymentState::Succeeded),
        "{unknown}"
    );
    // Charged the amount and the fee cap (1 % + 10 sat) while the outcome is unknown.
    let charged_msat = 5_000_000 + 50_000 + 10_000;
    assert_eq!(
        rt.block_on(a.get_balance()).expect("get_balance"),
        20_000_000 - charged_msat
    );

    node.stop();
    let (node, lines) = up_on_fixed_ports(dir.path());
    let community = lines[2].parse().expect("the node's Lightning address");
    let a = nwc::NWC::with_opts(a_uri, options);
    // The payee fails the held payment once the node is back.
    wait_until(WAIT, "the payee to reach the node again", || {
        payee.connect(&community).ok()?;
        payee.channels().iter().any(|c| c.is_usable).then_some(())
    });
    payee
        .cancel_hold_invoice(held.payment_hash)
        .expect("the payee cancels");
    wait_until(WAIT, "the till refunded in full", || {
        (rt.block_on(a.get_balance()).ok()? == 20_000_000).then_some(())
    });
    assert_eq!(collateral(&base, &token), 0, "the collateral moved");

    let _ = payee.stop();
    node.stop();
}

/// The community's `/api/community` view.
fn community(base: &str, token: &str) -> Value {
    let (status, community) = call(base, token, "/api/community", None);
    assert_eq!(status, 200, "{community}");
    community
}

/// Funding an app succeeds from free collateral, and only from it. Deposits mint one token per
/// sat, so collateral equals supply until a redemption's fee (0.5 % of the tokens, the payout's
/// network fee paid from it) stays behind as collateral no token claims: a member redeems
/// 20,000 tokens for 19,900 sat over a direct channel, leaving 100 sat free. The operator's
/// 101 sat is refused with the ledger's reason and nothing changes; 100 sat is funded, and
/// the app pays from it, charged the amount and the routing fee only.
#[test]
fn the_operator_funds_an_app_from_free_collateral_and_it_pays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Shop {
        node,
        lines,
        base,
        token,
        ..
    } = Shop::up(dir.path());
    let token = token.as_str();
    let payee = payee_of(&node, &lines, dir.path());
    let rt = runtime();

    // A member deposits 50,000 sat: all of it backs their tokens.
    let member = nwc::prelude::Keys::generate();
    let (status, deposit) = call(
        &base,
        token,
        "/api/deposits",
        Some(json!({ "pubkey": member.public_key().to_hex(), "sats": 50_000 })),
    );
    assert_eq!(status, 201, "{deposit}");
    payee
        .pay(
            deposit["invoice"].as_str().expect("an invoice"),
            None,
            RouteLimits::default(),
            WAIT,
        )
        .expect("the deposit is paid");
    wait_until(WAIT, "the deposit minted", || {
        (community(&base, token)["supply"] == 50_000).then_some(())
    });

    // The member redeems 20,000 tokens; the pool's 100-token fee stays as collateral.
    let payout = payee
        .create_invoice(Some(19_900_000), "redeemed", 3600)
        .expect("invoice");
    let request = moip::actions::RedeemRequest {
        amount: 20_000,
        invoice: payout.bolt11.clone(),
    };
    let id = community(&base, token)["id"]
        .as_str()
        .expect("the community's id")
        .to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let event = moip::actions::redeem_builder(&id, &request, now)
        .sign_with_keys(&member)
        .expect("sign");
    let (status, redemption) = call(
        &base,
        token,
        "/api/redemptions",
        Some(serde_json::from_str(&nwc::prelude::JsonUtil::as_json(&event)).expect("json")),
    );
    assert_eq!(status, 200, "{redemption}");
    let number = redemption["id"].as_u64().expect("its number");
    wait_until(WAIT, "the redemption paid", || {
        let (_, r) = call(&base, token, &format!("/api/redemptions/{number}"), None);
        (r["status"] == "paid").then_some(())
    });
    let before = community(&base, token);
    assert_eq!(
        (
            before["collateral_sats"].as_u64(),
            before["supply"].as_u64()
        ),
        (Some(30_100), Some(30_000)),
        "the redemption's fee is the only free collateral"
    );

    // One sat more than is free: refused with the ledger's reason, nothing changed.
    let a_uri = pair_with(&base, token, "till", 100_000);
    let a = nwc::NWC::new(a_uri.clone());
    let a_key = nwc::prelude::Keys::new(a_uri.secret.clone())
        .public_key()
        .to_hex();
    let fund = format!("/api/pairing/nwc/{a_key}/fund");
    let (status, body) = call(&base, token, &fund, Some(json!({ "sats": 101 })));
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("collateral"), "{body}");
    assert_eq!(community(&base, token)["collateral_sats"], 30_100);
    assert_eq!(rt.block_on(a.get_balance()).expect("get_balance"), 0);

    // All that is free: funded; the collateral now equals the supply.
    let (status, body) = call(&base, token, &fund, Some(json!({ "sats": 100 })));
    assert_eq!(status, 200, "{body}");
    assert_eq!(community(&base, token)["collateral_sats"], 30_000);
    assert_eq!(rt.block_on(a.get_balance()).expect("get_balance"), 100_000);

    // The app pays 80 sat (charged 80 sat and a 10.8-sat fee cap, then refunded what the
    // direct channel did not cost).
    let bill = payee
        .create_invoice(Some(80_000), "coffee", 3600)
        .expect("invoice");
    let paid = rt
        .block_on(a.pay_invoice(PayInvoiceRequest::new(bill.bolt11.clone())))
        .expect("paid from the app's own account");
    assert_eq!(
        rt.block_on(a.get_balance()).expect("get_balance"),
        100_000 - 80_000 - paid.fees_paid.unwrap_or(0)
    );
    assert_eq!(
        payee.payment_by_hash(bill.payment_hash).map(|p| p.state),
        Some(PaymentState::Succeeded)
    );
    let after = community(&base, token);
    assert_eq!(
        (after["collateral_sats"].as_u64(), after["supply"].as_u64()),
        (Some(30_000), Some(30_000)),
        "the app's payment moved the collateral"
    );

    let _ = payee.stop();
    node.stop();
}
