//! A beacon's spending limit, attacked by whoever holds the beacon (an app, or anyone it
//! leaked to), against the real `moip up` (its ldk-node, its Moneysocket relay and provider,
//! its API) with a real Moneysocket consumer and a real payee: the test's own ldk-node with a
//! channel to the community's node.
//!
//! - spending up to the limit, then reconnecting — or waiting for a restart — to spend again;
//! - paying a hold invoice the payee holds past the provider's wait, then spending the
//!   "refunded" amount while the held payment can still settle;
//! - spending through a beacon the operator revoked, or one past its `expires_at`;
//! - spending past a daily limit again the same day (issue 21, attack 4);
//! - spending, through a beacon with nothing of its own, the node's balance (the collateral
//!   behind the members' tokens, or what another beacon received), or more than the beacon's
//!   own account holds (issue 21, attack 4).

use std::num::NonZeroU64;
use std::path::Path;
use std::time::Duration;

use moip_lightning::{LightningNode, PaymentHash, PaymentState, Preimage, RouteLimits};
use moip_moneysocket::client::ClientConfig;
use moip_moneysocket::consumer::{Consumer, ConsumerError};
use moip_moneysocket::v0::beacon::Beacon;
use moip_moneysocket::v0::location::Location;
use moip_moneysocket::v0::message::ErrorCode;
use serde_json::{json, Value};

use crate::common::payer::payer_with_channel;
use crate::common::{free_port, wait_until, NodeProcess};

/// Longer than the provider's 60 s wait for a payment's outcome.
const WAIT: Duration = Duration::from_secs(150);

/// The beacon's limit in the tests, and what each payment tries to spend.
const LIMIT_SAT: u64 = 30_000;
const SPEND_MSAT: u64 = 20_000_000;
/// The routing fee reserved with it: moip's provider allows LDK's default, 1 % plus 50 sat.
const FEE_ALLOWANCE_MSAT: u64 = SPEND_MSAT / 100 + 50_000;
/// What the world's beacon received through its own invoice: its account's balance.
const RECEIVED_MSAT: u64 = 90_000_000;

/// A running `moip up` with fixed ports (a restart keeps the beacon's relay address).
struct Up {
    node: NodeProcess,
    base: String,
    token: String,
    electrum: String,
    lightning: String,
}

fn start(dir: &Path) -> Up {
    let args = [
        "up".to_owned(),
        "--config".into(),
        dir.join("moip.toml").display().to_string(),
        "--data-dir".into(),
        dir.join("node").display().to_string(),
    ];
    let (node, lines) = NodeProcess::spawn_with_env(
        &args,
        &[("MOIP_PASSWORD", "correct horse")],
        &dir.join("node"),
        &[
            "  electrum tcp: ",
            "  lightning: ",
            "  dashboard: ",
            "  operator token: ",
        ],
    );
    let token = std::fs::read_to_string(&lines[3]).expect("the operator token");
    Up {
        node,
        electrum: lines[0].clone(),
        lightning: lines[1].clone(),
        base: lines[2].trim_end_matches('/').to_owned(),
        token: token.trim().to_owned(),
    }
}

fn configure(dir: &Path) {
    let port = free_port;
    std::fs::write(
        dir.join("moip.toml"),
        format!(
            "mine_every_secs = 0\n[ports]\nrpc = {}\nelectrum_tcp = {}\nelectrum_ws = {}\n\
             electrum_ssl = 0\nelectrum_wss = 0\nlightning = {}\nmoneysocket = {}\nnostr = {}\n\
             api = {}\n[community]\nid = \"beacons\"\n",
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

/// `method path` on the API as the operator: the status and the JSON body.
fn api(up: &Up, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let url = format!("{}{path}", up.base);
    let auth = format!("Bearer {}", up.token);
    let response = match (method, body) {
        ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
        ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
        (_, body) => agent
            .post(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body.unwrap_or(json!({})).to_string()),
    };
    let mut response = response.expect("the API answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A new beacon with a limit of `limit_sat` (`None`: no limit): (the beacon, its id if the API
/// gives one).
fn new_beacon_with(up: &Up, limit_sat: Option<u64>) -> (String, Option<String>) {
    new_beacon_as(up, json!({ "limit_sat": limit_sat }))
}

/// A new beacon on the terms of `request` (`POST /api/pairing/beacon`'s body).
fn new_beacon_as(up: &Up, request: Value) -> (String, Option<String>) {
    let (status, body) = api(up, "POST", "/api/pairing/beacon", Some(request));
    assert_eq!(status, 200, "{body}");
    let uri = body["uri"].as_str().expect("a beacon").to_owned();
    (uri, body["id"].as_str().map(str::to_owned))
}

/// The beacon's entry in the API's list.
fn listed(up: &Up, id: &str) -> Value {
    let (status, list) = api(up, "GET", "/api/pairing/beacons", None);
    assert_eq!(status, 200, "the beacons are listed: {list}");
    list.as_array()
        .expect("a list")
        .iter()
        .find(|b| b["id"] == json!(id))
        .unwrap_or_else(|| panic!("beacon {id} in {list}"))
        .clone()
}

async fn connect(beacon: &str, wait: Duration) -> Result<Consumer, ConsumerError> {
    let beacon = Beacon::from_bech32(beacon).expect("a beacon");
    let Some(Location::WebSocket(ws)) = beacon.locations.first() else {
        panic!("a WebSocket beacon");
    };
    // The rendezvous itself waits for a provider for ever: bounded here.
    let config = ClientConfig::default();
    let url = ws.url();
    let connecting = Consumer::connect(&url, beacon.shared_seed, &config, wait);
    tokio::time::timeout(wait, connecting)
        .await
        .unwrap_or(Err(ConsumerError::Timeout(wait)))
}

fn code_of<T: std::fmt::Debug>(result: Result<T, ConsumerError>) -> ErrorCode {
    match result {
        Err(ConsumerError::Provider {
            code: Some(code),
            message,
        }) => {
            eprintln!("refused [{code}]: {message}");
            code
        }
        other => panic!("expected a coded refusal, got {other:?}"),
    }
}

/// Whether the community's node can send 50 000 sat over its channel.
fn sendable(up: &Up) -> bool {
    let (_, node) = api(up, "GET", "/api/node", None);
    node["channels"].as_array().is_some_and(|channels| {
        channels
            .iter()
            .any(|c| c["usable"] == json!(true) && c["outbound_sats"].as_u64() >= Some(50_000))
    })
}

/// Waits until the community's node can send 50 000 sat over its channel.
fn wait_sendable(up: &Up) {
    wait_until(WAIT, "the community's node able to send", || {
        sendable(up).then_some(())
    });
}

/// `moip up`, the payee's node with a channel to it, and a consumer on a fresh beacon that has
/// given the community's node something to spend (an invoice made through the beacon, paid by
/// the payee).
struct World {
    up: Up,
    payee: LightningNode,
    rt: tokio::runtime::Runtime,
    beacon: String,
    id: Option<String>,
    /// Last: removed once the nodes are gone.
    dir: tempfile::TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        // Stopped before its directory goes, even when a check failed.
        let _ = self.payee.stop();
    }
}

fn world() -> (World, Consumer) {
    world_with(Some(LIMIT_SAT))
}

/// [`world`] with a beacon limited to `limit_sat` (`None`: no limit).
fn world_with(limit_sat: Option<u64>) -> (World, Consumer) {
    world_as(json!({ "limit_sat": limit_sat }))
}

/// [`world`] with a beacon made on the terms of `request`.
fn world_as(request: Value) -> (World, Consumer) {
    let dir = tempfile::tempdir().expect("tempdir");
    configure(dir.path());
    let up = start(dir.path());
    let payee = payer_with_channel(
        &up.node,
        &dir.path().join("payee"),
        &up.electrum,
        &up.lightning,
        1_000_000,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (beacon, id) = new_beacon_as(&up, request);
    let consumer = rt
        .block_on(connect(&beacon, WAIT))
        .expect("the consumer connects");
    // Receiving through a beacon is not spending: the community's node gets 90 000 sat of
    // outbound liquidity.
    let invoice = rt
        .block_on(consumer.invoice(NonZeroU64::new(RECEIVED_MSAT).expect("non-zero"), None))
        .expect("an invoice through the beacon");
    payee
        .pay(&invoice, None, RouteLimits::default(), WAIT)
        .expect("the payee funds the community's node");
    // The payee hears of success before the channel's last update reaches the community's side.
    wait_sendable(&up);
    (
        World {
            up,
            payee,
            rt,
            beacon,
            id,
            dir,
        },
        consumer,
    )
}

impl World {
    fn invoice(&self, what: &str) -> moip_lightning::Invoice {
        self.payee
            .create_invoice(Some(SPEND_MSAT), what, 3600)
            .expect("the payee's invoice")
    }

    /// SIGKILL, then `moip up` again on the same data and ports.
    fn restart(&mut self) {
        let _ = self.up.node.child.kill();
        let _ = self.up.node.child.wait();
        self.up = start(self.dir.path());
        // The channel back, so that a payment the budget let through would really go out. The
        // payee dials again while waiting: a dial that reached the node before its Lightning
        // listener was up would otherwise leave the channel down until LDK's own reconnection.
        let community = self
            .up
            .lightning
            .parse()
            .expect("the node's Lightning address");
        wait_until(WAIT, "the community's node able to send again", || {
            if sendable(&self.up) {
                return Some(());
            }
            let _ = self.payee.connect(&community);
            None
        });
    }

    fn received(&self, hash: PaymentHash) -> bool {
        self.payee
            .payment_by_hash(hash)
            .is_some_and(|p| p.inbound && p.state == PaymentState::Succeeded)
    }
}

#[test]
fn a_reconnect_or_a_restart_does_not_reset_a_beacons_spending() {
    let (mut w, consumer) = world();
    let first = w.invoice("first");
    w.rt.block_on(consumer.pay(&first.bolt11, None))
        .expect("20 000 of 30 000 sat");
    assert!(w.received(first.payment_hash));
    let second = w.invoice("second");
    assert_eq!(
        code_of(w.rt.block_on(consumer.pay(&second.bolt11, None))),
        ErrorCode::SPENDING_LIMIT,
        "in one session the limit holds"
    );

    // The consumer leaves and comes back on the same beacon: a new session, the same budget.
    drop(consumer);
    let again =
        w.rt.block_on(connect(&w.beacon, WAIT))
            .expect("the beacon is served again");
    assert_eq!(
        code_of(w.rt.block_on(again.pay(&second.bolt11, None))),
        ErrorCode::SPENDING_LIMIT,
        "a reconnect must not reset what the beacon spent"
    );
    assert!(!w.received(second.payment_hash), "nothing was paid");
    drop(again);

    // The node is killed and started again: the beacon is served, its budget where it was.
    w.restart();
    let restarted =
        w.rt.block_on(connect(&w.beacon, WAIT))
            .expect("the beacon is served after the restart");
    assert_eq!(
        code_of(w.rt.block_on(restarted.pay(&second.bolt11, None))),
        ErrorCode::SPENDING_LIMIT,
        "a restart must not reset what the beacon spent"
    );
    assert!(!w.received(second.payment_hash), "nothing was paid");
    let id = w.id.clone().expect("the beacon's id");
    let entry = listed(&w.up, &id);
    assert_eq!(entry["spent_msat"], json!(SPEND_MSAT), "{entry}");
    assert_eq!(entry["limit_msat"], json!(LIMIT_SAT * 1_000), "{entry}");
}

#[test]
fn a_payment_that_timed_out_stays_reserved_until_its_outcome_is_known() {
    let (mut w, consumer) = world();
    // The payee takes the HTLC and holds it past the provider's 60 s wait.
    let preimage = Preimage::random();
    let held = w
        .payee
        .create_hold_invoice(preimage.payment_hash(), SPEND_MSAT, "held", 3600)
        .expect("a hold invoice");
    let started = std::time::Instant::now();
    let timed_out = w.rt.block_on(consumer.pay(&held.bolt11, None));
    eprintln!(
        "the held payment, after {:?}: {timed_out:?}",
        started.elapsed()
    );
    assert_eq!(
        code_of(timed_out),
        ErrorCode::NOT_READY,
        "the provider stops waiting and says so"
    );
    let at_payee = w.payee.payment_by_hash(held.payment_hash);
    assert!(
        at_payee
            .as_ref()
            .is_some_and(|p| p.inbound && p.state == PaymentState::Pending),
        "the payee holds the HTLC: {at_payee:?}"
    );
    // The held payment may still settle: its 20 000 sat stay reserved, so 20 000 more would
    // take the beacon over its 30 000.
    let more = w.invoice("more");
    assert_eq!(
        code_of(w.rt.block_on(consumer.pay(&more.bolt11, None))),
        ErrorCode::SPENDING_LIMIT,
        "a payment of unknown outcome must not be refunded"
    );
    assert!(!w.received(more.payment_hash), "nothing was paid");
    let id = w.id.clone().expect("the beacon's id");
    let entry = listed(&w.up, &id);
    assert_eq!(
        entry["reserved_msat"],
        json!(SPEND_MSAT + FEE_ALLOWANCE_MSAT),
        "{entry}"
    );
    // Its account (credited the 90 000 sat its invoice received) stays charged in full.
    let held_balance = json!(RECEIVED_MSAT - SPEND_MSAT - FEE_ALLOWANCE_MSAT);
    assert_eq!(entry["balance_msat"], held_balance, "{entry}");

    // The node is killed and started again while the HTLC is held: the reservation is still
    // there, and still refuses the second payment.
    drop(consumer);
    w.restart();
    let entry = listed(&w.up, &id);
    assert_eq!(
        entry["reserved_msat"],
        json!(SPEND_MSAT + FEE_ALLOWANCE_MSAT),
        "{entry}"
    );
    assert_eq!(entry["balance_msat"], held_balance, "{entry}");
    let consumer =
        w.rt.block_on(connect(&w.beacon, WAIT))
            .expect("the beacon is served after the restart");
    assert_eq!(
        code_of(w.rt.block_on(consumer.pay(&more.bolt11, None))),
        ErrorCode::SPENDING_LIMIT,
        "a restart must not refund a payment of unknown outcome"
    );
    assert!(!w.received(more.payment_hash), "nothing was paid");

    // The payee settles after all: the node learns the outcome and the beacon has spent it.
    w.payee.settle_hold_invoice(preimage).expect("settle");
    let entry = wait_until(WAIT, "the settled payment counted as spent", || {
        let entry = listed(&w.up, &id);
        (entry["reserved_msat"] == json!(0)).then_some(entry)
    });
    let spent = entry["spent_msat"].as_u64().expect("spent");
    assert!(spent >= SPEND_MSAT, "{entry}");
    // The fee cap it did not use is back in the beacon's account: it is charged what it cost.
    assert_eq!(
        entry["balance_msat"],
        json!(RECEIVED_MSAT - spent),
        "{entry}"
    );
    assert_eq!(
        code_of(w.rt.block_on(consumer.pay(&more.bolt11, None))),
        ErrorCode::SPENDING_LIMIT
    );
}

#[test]
fn a_revoked_beacon_cannot_spend() {
    let (w, consumer) = world();
    let id = w.id.clone().expect("the API names the beacon");
    let entry = listed(&w.up, &id);
    assert_eq!(entry["revoked_at"], Value::Null, "{entry}");
    assert!(
        !entry.to_string().contains(&w.beacon[10..]),
        "the list never shows the beacon"
    );

    let (status, revoked) = api(&w.up, "DELETE", &format!("/api/pairing/beacons/{id}"), None);
    assert_eq!(status, 200, "the operator revokes the beacon: {revoked}");
    assert!(revoked["revoked_at"].as_u64().is_some(), "{revoked}");
    assert!(listed(&w.up, &id)["revoked_at"].as_u64().is_some());
    let (status, _) = api(&w.up, "DELETE", "/api/pairing/beacons/0000", None);
    assert_eq!(status, 404, "an unknown beacon");
    // The operator's command line says the same.
    let cli = |args: &[&str]| {
        let data = w.dir.path().join("node");
        std::process::Command::new(env!("CARGO_BIN_EXE_moip"))
            .args(["beacons", "--api", &w.up.base, "--data-dir"])
            .arg(&data)
            .args(args)
            .output()
            .expect("moip beacons")
    };
    let listing = cli(&["list"]);
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.status.success(), "{listing:?}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&id) && l.ends_with("revoked")),
        "{text}"
    );
    assert!(!cli(&["revoke", "0000"]).status.success());

    // Nothing more is paid through it, and its live session ends.
    let bill = w.invoice("after the revocation");
    let refused = w.rt.block_on(consumer.pay(&bill.bolt11, None));
    assert!(refused.is_err(), "a revoked beacon paid: {refused:?}");
    assert!(!w.received(bill.payment_hash), "nothing was paid");
    w.rt.block_on(async { tokio::time::timeout(WAIT, consumer.revoked()).await })
        .expect("the consumer's session ends with the revocation");
    // Nobody serves it any more: a new connection finds no provider.
    let reconnect = w.rt.block_on(connect(&w.beacon, Duration::from_secs(10)));
    assert!(reconnect.is_err(), "a revoked beacon is not served");
    assert!(!w.received(bill.payment_hash), "nothing was paid");
}

/// The community's collateral, sat.
fn collateral(up: &Up) -> u64 {
    let (status, community) = api(up, "GET", "/api/community", None);
    assert_eq!(status, 200, "{community}");
    community["collateral_sats"]
        .as_u64()
        .expect("collateral_sats")
}

/// What the community's node holds over Lightning, sat.
fn node_sats(up: &Up) -> u64 {
    let (status, node) = api(up, "GET", "/api/node", None);
    assert_eq!(status, 200, "{node}");
    node["lightning_sats"].as_u64().expect("lightning_sats")
}

/// Issue 21, attack 4: a beacon is an account of its own in the community's ledger. Beacon A
/// received 90 000 sat through an invoice its consumer made; beacon B, with no limit but nothing
/// of its own, cannot spend the node's balance (A's money, or the collateral); B is told its own
/// balance, not the node's; the operator cannot fund B from collateral that backs tokens (none
/// is free here); A spends at most what it holds, fees included, and the collateral never moves.
#[test]
fn a_beacon_spends_its_own_account_and_never_the_nodes_balance() {
    let (w, a) = world_with(None);
    let a_id = w.id.clone().expect("the API names the beacon");
    // A's paid invoice is A's: credited to its account, once.
    let entry = wait_until(WAIT, "beacon A credited with what it received", || {
        let entry = listed(&w.up, &a_id);
        (entry["balance_msat"] == json!(90_000_000)).then_some(entry)
    });
    assert_eq!(entry["spent_msat"], json!(0), "{entry}");
    assert_eq!(collateral(&w.up), 0, "a beacon's receipt is not collateral");
    let node_before = node_sats(&w.up);
    assert!(
        node_before >= 89_000,
        "the node holds A's money: {node_before}"
    );

    // B: another beacon, no limit, nothing of its own. Its consumer is told B's balance.
    let (b_beacon, b_id) = new_beacon_with(&w.up, None);
    let b_id = b_id.expect("the API names the beacon");
    let b =
        w.rt.block_on(connect(&b_beacon, WAIT))
            .expect("B's consumer connects");
    let b_info = w.rt.block_on(b.provider()).expect("B's provider info");
    assert_eq!(
        b_info.wad.as_ref().map(|wad| wad.msats()),
        Some(0),
        "B is told the node's balance: {b_info:?}"
    );
    let a_info = w.rt.block_on(a.provider()).expect("A's provider info");
    assert_eq!(a_info.wad.as_ref().map(|wad| wad.msats()), Some(90_000_000));

    // B pays a bill: refused, nothing leaves the node.
    let bill = w.invoice("B's bill");
    assert_eq!(
        code_of(w.rt.block_on(b.pay(&bill.bolt11, None))),
        ErrorCode::INSUFFICIENT_BALANCE,
        "B spent money that is not its own"
    );
    assert!(!w.received(bill.payment_hash), "nothing was paid");
    assert_eq!(listed(&w.up, &b_id)["balance_msat"], json!(0));
    assert_eq!(listed(&w.up, &a_id)["balance_msat"], json!(90_000_000));

    // The operator cannot fund B from collateral that backs tokens (here: none is free), nor
    // a beacon that does not exist.
    let (status, body) = api(
        &w.up,
        "POST",
        &format!("/api/pairing/beacons/{b_id}/fund"),
        Some(json!({ "sats": 1 })),
    );
    assert_eq!(status, 422, "{body}");
    let (status, _) = api(
        &w.up,
        "POST",
        "/api/pairing/beacons/0000000000000000/fund",
        Some(json!({ "sats": 1 })),
    );
    assert_eq!(status, 404);
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_moip"))
        .args(["beacons", "--api", &w.up.base, "--data-dir"])
        .arg(w.dir.path().join("node"))
        .args(["fund", &b_id, "1"])
        .output()
        .expect("moip beacons fund");
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(!cli.status.success(), "funded from the tokens' collateral");
    assert!(
        stderr.contains("422") && stderr.contains("collateral"),
        "{stderr}"
    );
    assert_eq!(listed(&w.up, &b_id)["balance_msat"], json!(0));

    // A spends at most its 90 000 sat, fees included: 89 500 with its fee cap is too much.
    let too_much = w
        .payee
        .create_invoice(Some(89_500_000), "too much", 3600)
        .expect("the payee's invoice");
    assert_eq!(
        code_of(w.rt.block_on(a.pay(&too_much.bolt11, None))),
        ErrorCode::INSUFFICIENT_BALANCE,
        "A spent more than it holds"
    );
    assert!(!w.received(too_much.payment_hash), "nothing was paid");
    // Within it: paid, and A's account falls by what it cost.
    let coffee = w
        .payee
        .create_invoice(Some(60_000_000), "coffee", 3600)
        .expect("the payee's invoice");
    let paid =
        w.rt.block_on(a.pay(&coffee.bolt11, None))
            .expect("within A's account");
    assert!(w.received(coffee.payment_hash));
    let fee_msat = paid.fee_msat.unwrap_or(0);
    let entry = listed(&w.up, &a_id);
    assert_eq!(
        entry["balance_msat"],
        json!(30_000_000 - fee_msat),
        "{entry}"
    );
    assert_eq!(entry["reserved_msat"], json!(0), "{entry}");
    assert_eq!(listed(&w.up, &b_id)["balance_msat"], json!(0));
    assert_eq!(
        collateral(&w.up),
        0,
        "the collateral moved with a beacon's payment"
    );
    // The operator's list shows each beacon's balance.
    let listing = std::process::Command::new(env!("CARGO_BIN_EXE_moip"))
        .args(["beacons", "--api", &w.up.base, "--data-dir"])
        .arg(w.dir.path().join("node"))
        .arg("list")
        .output()
        .expect("moip beacons list");
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&b_id) && l.contains("balance 0 ")),
        "{text}"
    );

    // A member deposits 50 000 sat: collateral, all of it backing their tokens, so B still
    // cannot be funded.
    let member = nostr_sdk::Keys::generate();
    let (status, deposit) = api(
        &w.up,
        "POST",
        "/api/deposits",
        Some(json!({ "pubkey": member.public_key().to_hex(), "sats": 50_000 })),
    );
    assert_eq!(status, 201, "{deposit}");
    w.payee
        .pay(
            deposit["invoice"].as_str().expect("an invoice"),
            None,
            RouteLimits::default(),
            WAIT,
        )
        .expect("the deposit is paid");
    wait_until(WAIT, "the deposit credited", || {
        (collateral(&w.up) == 50_000).then_some(())
    });
    let (status, body) = api(
        &w.up,
        "POST",
        &format!("/api/pairing/beacons/{b_id}/fund"),
        Some(json!({ "sats": 1 })),
    );
    assert_eq!(status, 422, "funded from the tokens' collateral: {body}");
    // The member redeems 40 000 tokens: the pool's fee (0.5 %, 200 sat) stays as free
    // collateral.
    let (_, community) = api(&w.up, "GET", "/api/community", None);
    let payout = w
        .payee
        .create_invoice(Some(39_800_000), "the member's tokens", 3600)
        .expect("the payout invoice");
    let request = moip::actions::RedeemRequest {
        amount: 40_000,
        invoice: payout.bolt11.clone(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let signed =
        moip::actions::redeem_builder(community["id"].as_str().expect("id"), &request, now)
            .sign_with_keys(&member)
            .expect("sign");
    let (status, ticket) = api(
        &w.up,
        "POST",
        "/api/redemptions",
        Some(serde_json::from_str(&nostr_sdk::JsonUtil::as_json(&signed)).expect("json")),
    );
    assert_eq!(status, 200, "{ticket}");
    let redemption = format!("/api/redemptions/{}", ticket["id"]);
    wait_until(WAIT, "the redemption paid", || {
        (api(&w.up, "GET", &redemption, None).1["status"] == "paid").then_some(())
    });
    let (_, community) = api(&w.up, "GET", "/api/community", None);
    let free_sats = community["collateral_sats"].as_u64().expect("collateral")
        - community["supply"].as_u64().expect("supply");
    assert!(free_sats >= 150, "free collateral: {community}");

    // The operator funds B with 150 sat of it, from the command line.
    let funded = std::process::Command::new(env!("CARGO_BIN_EXE_moip"))
        .args(["beacons", "--api", &w.up.base, "--data-dir"])
        .arg(w.dir.path().join("node"))
        .args(["fund", &b_id, "150"])
        .output()
        .expect("moip beacons fund");
    assert!(funded.status.success(), "{funded:?}");
    let collateral_funded = collateral(&w.up);
    assert_eq!(listed(&w.up, &b_id)["balance_msat"], json!(150_000));
    let b_info = w.rt.block_on(b.provider()).expect("B's provider info");
    assert_eq!(b_info.wad.as_ref().map(|wad| wad.msats()), Some(150_000));
    // B pays up to its balance, fee cap included (1 % + 50 sat): 100 sat is over, 90 fits.
    let over = w
        .payee
        .create_invoice(Some(100_000), "over B's balance", 3600)
        .expect("the payee's invoice");
    assert_eq!(
        code_of(w.rt.block_on(b.pay(&over.bolt11, None))),
        ErrorCode::INSUFFICIENT_BALANCE,
        "B spent more than it was given"
    );
    assert!(!w.received(over.payment_hash), "nothing was paid");
    let fits = w
        .payee
        .create_invoice(Some(90_000), "within B's balance", 3600)
        .expect("the payee's invoice");
    let paid =
        w.rt.block_on(b.pay(&fits.bolt11, None))
            .expect("within B's balance");
    assert!(w.received(fits.payment_hash));
    assert_eq!(
        listed(&w.up, &b_id)["balance_msat"],
        json!(60_000 - paid.fee_msat.unwrap_or(0))
    );
    assert_eq!(
        collateral(&w.up),
        collateral_funded,
        "the collateral moved with a beacon's payment"
    );
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// How long the expiring beacon lives: long enough for the world to be set up and one payment
/// made.
const LIFETIME_SECS: u64 = 90;

/// Issue 21, attack 4: a beacon made with `expires_at` pays until then; after it, it pays
/// nothing, its live session ends, nobody serves it, the operator cannot fund it, and the API
/// and `moip beacons list` say it expired.
#[test]
fn an_expired_beacon_cannot_pay_and_is_not_served() {
    let expires_at = unix_now() + LIFETIME_SECS;
    let (w, consumer) = world_as(json!({ "limit_sat": null, "expires_at": expires_at }));
    let id = w.id.clone().expect("the API names the beacon");
    let entry = listed(&w.up, &id);
    assert_eq!(entry["expires_at"], json!(expires_at), "{entry}");
    assert_eq!(entry["expired"], json!(false), "{entry}");
    // An expiry already past is refused, and makes no beacon.
    let (status, body) = api(
        &w.up,
        "POST",
        "/api/pairing/beacon",
        Some(json!({ "expires_at": unix_now() - 1 })),
    );
    assert_eq!(status, 400, "{body}");
    let (_, list) = api(&w.up, "GET", "/api/pairing/beacons", None);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");

    // While it lives, it pays (what it received is its own).
    assert!(
        unix_now() + 10 < expires_at,
        "setting the world up took longer than the beacon's {LIFETIME_SECS} s"
    );
    let before = w.invoice("before the expiry");
    w.rt.block_on(consumer.pay(&before.bolt11, None))
        .expect("paid before the expiry");
    assert!(w.received(before.payment_hash));

    wait_until(WAIT, "the beacon listed as expired", || {
        (listed(&w.up, &id)["expired"] == json!(true)).then_some(())
    });
    let bill = w.invoice("after the expiry");
    let refused = w.rt.block_on(consumer.pay(&bill.bolt11, None));
    assert!(refused.is_err(), "an expired beacon paid: {refused:?}");
    assert!(!w.received(bill.payment_hash), "nothing was paid");
    w.rt.block_on(async { tokio::time::timeout(WAIT, consumer.revoked()).await })
        .expect("the consumer's session ends with the expiry");
    let reconnect = w.rt.block_on(connect(&w.beacon, Duration::from_secs(10)));
    assert!(reconnect.is_err(), "an expired beacon is not served");
    let (status, body) = api(
        &w.up,
        "POST",
        &format!("/api/pairing/beacons/{id}/fund"),
        Some(json!({ "sats": 1 })),
    );
    assert_eq!(status, 409, "an expired beacon is not funded: {body}");
    let listing = std::process::Command::new(env!("CARGO_BIN_EXE_moip"))
        .args(["beacons", "--api", &w.up.base, "--data-dir"])
        .arg(w.dir.path().join("node"))
        .arg("list")
        .output()
        .expect("moip beacons list");
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        text.lines().any(|l| l.starts_with(&id)
            && l.contains(&format!("expires {expires_at}"))
            && l.ends_with("expired")),
        "{text}"
    );
    assert!(!w.received(bill.payment_hash), "nothing was paid");
}

/// Issue 21, attack 4: a beacon with a daily limit of 30 000 sat pays 20 000; another 20 000
/// the same UTC day is refused — in the same session, and after a restart — and the list says
/// what the day leaves. (Should the UTC day turn between the two payments, the second is paid:
/// the limit renewed, as it must.)
#[test]
fn a_beacons_daily_limit_spent_is_refused_for_the_rest_of_the_day() {
    let (mut w, consumer) = world_as(json!({ "limit_sat": LIMIT_SAT, "budget_renewal": "daily" }));
    let id = w.id.clone().expect("the API names the beacon");
    let day = unix_now() / 86_400;
    let first = w.invoice("first");
    let paid =
        w.rt.block_on(consumer.pay(&first.bolt11, None))
            .expect("20 000 of the day's 30 000 sat");
    assert!(w.received(first.payment_hash));
    let entry = listed(&w.up, &id);
    assert_eq!(entry["budget_renewal"], json!("daily"), "{entry}");
    let spent_msat = SPEND_MSAT + paid.fee_msat.unwrap_or(0);
    assert_eq!(entry["spent_msat"], json!(spent_msat), "{entry}");
    assert_eq!(
        entry["left_msat"],
        json!(LIMIT_SAT * 1_000 - spent_msat),
        "{entry}"
    );

    let second = w.invoice("second");
    let again = w.rt.block_on(consumer.pay(&second.bolt11, None));
    if unix_now() / 86_400 != day {
        again.expect("the next UTC day renews the limit");
        return;
    }
    assert_eq!(
        code_of(again),
        ErrorCode::SPENDING_LIMIT,
        "a daily limit spent was renewed the same day"
    );
    assert!(!w.received(second.payment_hash), "nothing was paid");

    // A restart the same day does not renew it either.
    w.restart();
    let consumer =
        w.rt.block_on(connect(&w.beacon, WAIT))
            .expect("the beacon is served after the restart");
    let third = w.invoice("third");
    let after = w.rt.block_on(consumer.pay(&third.bolt11, None));
    if unix_now() / 86_400 != day {
        after.expect("the next UTC day renews the limit");
        return;
    }
    assert_eq!(code_of(after), ErrorCode::SPENDING_LIMIT);
    assert!(!w.received(third.payment_hash), "nothing was paid");
    assert_eq!(listed(&w.up, &id)["spent_msat"], json!(spent_msat));
}
