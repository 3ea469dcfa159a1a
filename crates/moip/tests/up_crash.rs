//! `moip up` killed with SIGKILL at random moments while money moves: a Lightning deposit
//! being paid (before, during and after the node receives it) and a redemption being paid out.
//! After each restart the invariants hold:
//!
//! - a deposit the payer's node saw succeed is minted exactly once, one that failed never;
//! - a redemption is paid at most once, and its tokens are burned exactly when it was paid —
//!   never both paid and returned, never lost;
//! - supply is what was minted less what was redeemed, and collateral ≥ supply;
//! - the books meet reality: the community node's real Lightning balance covers the ledger's
//!   collateral (a redemption paid twice, or paid and also returned, leaves the node holding
//!   less than the ledger says).
//!
//! These are checked after every restart, not only at the end; and at the end every
//! redemption's outcome is read again from the payer's node, so a payment that settled after
//! its tokens were returned is caught. The kill moments are drawn from a seed printed at the
//! start; `MOIP_CRASH_SEED=<n>` replays them.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::payer::payer_with_channel;
use common::{free_port, wait_until, NodeProcess};
use moip_lightning::{LightningNode, PaymentState};
use nostr_sdk::{JsonUtil, Keys};
use rand::Rng;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

/// Deposits attempted, each with a kill (`MOIP_CRASH_ROUNDS` for longer runs).
const DEPOSITS: usize = 4;
/// Redemptions attempted, each with a kill (likewise).
const REDEMPTIONS: usize = 3;

fn rounds(default: usize) -> usize {
    std::env::var("MOIP_CRASH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

struct Up {
    node: NodeProcess,
    base: String,
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
        &["  electrum tcp: ", "  lightning: ", "  dashboard: "],
    );
    let token = std::fs::read_to_string(dir.join("node/api.token")).expect("the operator token");
    *OPERATOR.lock().expect("token") = token.trim().to_owned();
    Up {
        node,
        electrum: lines[0].clone(),
        lightning: lines[1].clone(),
        base: lines[2].trim_end_matches('/').to_owned(),
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// The operator's token: the test asks for deposits and reads balances as the operator.
static OPERATOR: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

fn bearer() -> String {
    format!("Bearer {}", OPERATOR.lock().expect("token"))
}

fn get(base: &str, path: &str) -> Value {
    let text = agent()
        .get(format!("{base}{path}"))
        .header("Authorization", &bearer())
        .call()
        .expect("get")
        .body_mut()
        .read_to_string()
        .expect("body");
    serde_json::from_str(&text).expect("json")
}

fn post(base: &str, path: &str, body: String) -> Option<Value> {
    let mut response = agent()
        .post(format!("{base}{path}"))
        .header("Authorization", &bearer())
        .send(body)
        .ok()?;
    let text = response.body_mut().read_to_string().ok()?;
    serde_json::from_str(&text).ok()
}

/// How the payer's node saw the payment of `invoice` end (waiting while it is pending).
fn outcome(payer: &LightningNode, hash: moip_lightning::PaymentHash, inbound: bool) -> bool {
    wait_until(WAIT, "the payment to end on the payer's node", || {
        match payer.payment_by_hash(hash) {
            Some(r) if r.inbound == inbound && r.state == PaymentState::Succeeded => Some(true),
            Some(r) if r.inbound == inbound && r.state == PaymentState::Failed => Some(false),
            // Never sent (the node died before answering): nothing to wait for.
            None if !inbound => Some(false),
            _ => None,
        }
    })
}

/// The invariants that must hold after every restart: supply is what was minted less what was
/// redeemed, collateral covers supply, and the community node really holds the collateral
/// (read once its channel is back and the pool has nothing in flight).
fn check_books(base: &str, minted: u64, redeemed: u64, when: &str) {
    let node = wait_until(WAIT, "the channel back and the pool idle", || {
        let node = get(base, "/api/node");
        let usable = node["channels"]
            .as_array()?
            .iter()
            .any(|c| c["usable"] == serde_json::json!(true));
        let idle = get(base, "/api/pool")["queued"] == 0;
        (usable && idle).then_some(node)
    });
    let community = get(base, "/api/community");
    let supply = community["supply"].as_u64().expect("supply");
    let collateral = community["collateral_sats"].as_u64().expect("collateral");
    let lightning = node["lightning_sats"].as_u64().expect("lightning balance");
    assert_eq!(supply, minted - redeemed, "{when}: {community}");
    assert!(collateral >= supply, "{when}: {community}");
    assert!(
        lightning >= collateral,
        "{when}: the node holds {lightning} sat over Lightning, less than the ledger's collateral \
         of {collateral} sat"
    );
    eprintln!("{when}: supply {supply}, collateral {collateral}, node's Lightning {lightning}");
}

#[test]
fn kill_9_while_deposits_and_redemptions_are_in_flight_loses_and_doubles_nothing() {
    let (mut rng, _) = common::crash_rng("up crash test");
    let dir = tempfile::tempdir().expect("tempdir");
    // Fixed ports: the payer's node reconnects to the same address after each restart.
    std::fs::write(
        dir.path().join("moip.toml"),
        format!(
            "mine_every_secs = 2\n[ports]\nrpc = {}\nelectrum_tcp = {}\nelectrum_ws = {}\n\
             lightning = {}\nmoneysocket = {}\nnostr = {}\napi = {}\n[community]\nid = \"mill\"\n",
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port()
        ),
    )
    .expect("settings");
    let mut up = start(dir.path());
    let payer = payer_with_channel(
        &up.node,
        &dir.path().join("payer"),
        &up.electrum,
        &up.lightning,
        1_000_000,
    );
    let community: moip_lightning::PeerAddress = up.lightning.parse().expect("peer");
    let member = Keys::generate();
    let me = member.public_key().to_hex();
    let mut minted = 0u64;
    let mut hashes: HashMap<String, u64> = HashMap::new();

    // Deposits, each cut by a kill at a random moment.
    for round in 0..rounds(DEPOSITS) {
        let sats = 20_000 + round as u64;
        let body = serde_json::json!({"pubkey": me, "sats": sats}).to_string();
        let deposit = post(&up.base, "/api/deposits", body).expect("a deposit invoice");
        let invoice = deposit["invoice"].as_str().expect("invoice").to_owned();
        let hash = payer.decode_invoice(&invoice).expect("decode").payment_hash;
        let paying = {
            let payer = payer.clone();
            std::thread::spawn(move || {
                let _ = payer.pay(&invoice, None, Default::default(), Duration::from_secs(20));
            })
        };
        let kill_after = rng.random_range(0..1_500);
        eprintln!("deposit {round}: kill -9 after {kill_after} ms");
        std::thread::sleep(Duration::from_millis(kill_after));
        up.node.kill();
        up = start(dir.path());
        let _ = payer.connect(&community);
        let _ = paying.join();
        let paid = outcome(&payer, hash, false);
        let key = deposit["payment_hash"].as_str().expect("hash").to_owned();
        let expected = if paid { sats } else { 0 };
        let got = wait_until(WAIT, "the deposit settled after the restart", || {
            let d = get(&up.base, &format!("/api/deposits/{key}"));
            let got = d["minted"].as_u64()?;
            (got == expected).then_some(got)
        });
        minted += got;
        hashes.insert(key, got);
        let balance = get(&up.base, &format!("/api/identities/{me}"))["balance"].as_u64();
        assert_eq!(balance, Some(minted), "each paid deposit minted once");
        check_books(&up.base, minted, 0, &format!("after deposit {round}"));
    }
    assert!(
        minted > 0,
        "at least one deposit got through (the kills are random)"
    );

    // Redemptions, each cut by a kill at a random moment.
    let fee_ppm = get(&up.base, "/api/pool")["fee_ppm"].as_u64().expect("fee");
    let mut redeemed = 0u64;
    // Each redemption's payment hash and whether the pool counted it as paid.
    let mut outcomes = Vec::new();
    for round in 0..rounds(REDEMPTIONS) {
        let amount = 5_000;
        let before = get(&up.base, &format!("/api/identities/{me}"))["balance"]
            .as_u64()
            .expect("balance");
        if before < amount {
            break;
        }
        let fee = (amount * fee_ppm).div_ceil(1_000_000);
        let invoice = payer
            .create_invoice(Some((amount - fee) * 1_000), "redeemed", 3_600)
            .expect("invoice");
        let request = moip::actions::RedeemRequest {
            amount,
            invoice: invoice.bolt11.clone(),
        };
        let event = moip::actions::redeem_builder("mill", &request, moip::views::now())
            .sign_with_keys(&member)
            .expect("sign");
        let redeeming = {
            let base = up.base.clone();
            std::thread::spawn(move || post(&base, "/api/redemptions", event.as_json()))
        };
        let kill_after = rng.random_range(0..1_000);
        eprintln!("redemption {round}: kill -9 after {kill_after} ms");
        std::thread::sleep(Duration::from_millis(kill_after));
        up.node.kill();
        let _ = redeeming.join();
        up = start(dir.path());
        let _ = payer.connect(&community);
        // The pool resolves what was in flight from the node's payment record.
        wait_until(WAIT, "the pool's queue to drain", || {
            (get(&up.base, "/api/pool")["queued"] == 0).then_some(())
        });
        let paid = payer
            .payment_by_hash(invoice.payment_hash)
            .is_some_and(|r| r.inbound && r.state == PaymentState::Succeeded);
        let after = get(&up.base, &format!("/api/identities/{me}"))["balance"]
            .as_u64()
            .expect("balance");
        if paid {
            assert_eq!(after, before - amount, "paid, so burned — once");
            redeemed += amount;
        } else {
            assert_eq!(after, before, "not paid, so the tokens are back");
        }
        outcomes.push((invoice.payment_hash, paid));
        check_books(
            &up.base,
            minted,
            redeemed,
            &format!("after redemption {round}"),
        );
    }

    // Once more after a last restart: every redemption ended as the pool counted it, so none
    // settled late after its tokens came back.
    up.node.kill();
    up = start(dir.path());
    let _ = payer.connect(&community);
    check_books(&up.base, minted, redeemed, "at the end");
    for (round, (hash, counted_paid)) in outcomes.iter().enumerate() {
        let paid = payer
            .payment_by_hash(*hash)
            .is_some_and(|r| r.inbound && r.state == PaymentState::Succeeded);
        assert_eq!(
            paid, *counted_paid,
            "redemption {round}: the payer's node says paid = {paid}, the pool counted {counted_paid}"
        );
    }
    eprintln!(
        "{} deposits ({} sat minted), {} sat redeemed",
        hashes.len(),
        minted,
        redeemed
    );
    up.node.kill();
    payer.stop().expect("stop the payer");
}
