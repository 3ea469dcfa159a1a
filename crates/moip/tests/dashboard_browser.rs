//! Flow 2 and Flow 1 walked through the web dashboard in headless Chromium, against `moip up`
//! as its own process and a real Lightning node of the test's on the same embedded chain.
//!
//! Members log in with keys held by the node (local users). The employer asks for a deposit
//! invoice on the wallet page; the test's node pays it; the tokens appear; the employer posts a
//! task on the board. The worker claims it and submits the proof; three attesters (certified by
//! the founders, whose keys the test holds) attest; the challenge window passes and the reward
//! is released; the worker redeems it to an invoice of the test's node and is paid. A
//! screenshot is taken at each step (in the test target's temporary directory).

mod common;

use std::process::Command;
use std::time::Duration;

use common::payer::payer_with_channel;
use common::webdriver::Browser;
use common::{wait_until, NodeProcess};
use nostr_sdk::{JsonUtil, Keys};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

/// The operator's token: balances are read over the API as the operator (a member's balance
/// is shown to that member and the operator only).
static OPERATOR: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

fn api(agent: &ureq::Agent, base: &str, path: &str) -> Value {
    let bearer = format!("Bearer {}", OPERATOR.lock().expect("token"));
    let text = agent
        .get(format!("{base}{path}"))
        .header("Authorization", &bearer)
        .call()
        .expect("api")
        .body_mut()
        .read_to_string()
        .expect("body");
    serde_json::from_str(&text).expect("json")
}

/// Logs in as local user `name` (made on first login) and returns the member's key (hex).
fn log_in(browser: &Browser, base: &str, name: &str) -> String {
    if browser.has("form[action='/logout'] button") {
        browser.click("form[action='/logout'] button");
        browser.wait_text("#who", "Log in", WAIT);
    }
    browser.goto(&format!("{base}/login"));
    browser.fill("form[action='/login'] input[name=name]", name);
    browser.fill(
        "form[action='/login'] input[name=password]",
        &format!("{name}-password"),
    );
    browser.click("form[action='/login'] button");
    browser.wait_text("#who", name, WAIT);
    browser
        .attribute("main a.key", "title")
        .expect("the member's key on the wallet page")
}

/// Clicks the action button `action` and waits for the outcome's message.
fn act(browser: &Browser, action: &str, wanted: &str) -> String {
    browser.click(&format!("button[name=do][value={action}]"));
    browser.wait_text("#flash", wanted, WAIT)
}

#[test]
fn flow_one_through_the_dashboard_in_chromium() {
    let dir = tempfile::tempdir().expect("tempdir");
    let founders = [Keys::generate(), Keys::generate()];
    let config = dir.path().join("moip.toml");
    std::fs::write(
        &config,
        format!(
            r#"
mine_every_secs = 2
[ports]
rpc = 0
electrum_tcp = 0
electrum_ws = 0
lightning = 0
moneysocket = 0
nostr = 0
api = 0
[community]
id = "bakery"
name = "Bakery hours"
symbol = "BKH"
challenge_window_secs = 2
founders = ["{}", "{}"]
"#,
            founders[0].public_key().to_hex(),
            founders[1].public_key().to_hex()
        ),
    )
    .expect("settings");
    let data_dir = dir.path().join("node");
    let args = [
        "up".to_owned(),
        "--config".into(),
        config.display().to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ];
    let (node, lines) = NodeProcess::spawn_with_env(
        &args,
        &[("MOIP_PASSWORD", "correct horse")],
        &data_dir,
        &["  electrum tcp: ", "  lightning: ", "  dashboard: "],
    );
    let base = lines[2].trim_end_matches('/').to_owned();
    let token = std::fs::read_to_string(data_dir.join("api.token")).expect("the operator token");
    *OPERATOR.lock().expect("token") = token.trim().to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into();

    // The test's own Lightning node, with a channel to the community's node.
    let payer = payer_with_channel(
        &node,
        &dir.path().join("payer"),
        &lines[0],
        &lines[1],
        1_000_000,
    );

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let browser = Browser::start(&shots);
    browser.goto(&format!("{base}/"));
    browser.wait_text("h1", "Bakery hours", WAIT);
    browser.screenshot("01-overview-empty");

    // Flow 2: the employer deposits over Lightning and gets tokens one for one.
    let employer = log_in(&browser, &base, "employer");
    browser.fill("form[action='/deposit'] input[name=sats]", "90000");
    browser.click("form[action='/deposit'] button");
    let invoice = browser.text("#invoice");
    assert!(invoice.starts_with("lnbcrt900u"), "{invoice}");
    browser.screenshot("02-deposit-invoice");
    payer
        .pay(&invoice, None, Default::default(), WAIT)
        .expect("the test's node pays the deposit");
    wait_until(WAIT, "the deposit minted", || {
        let me = api(&agent, &base, &format!("/api/identities/{employer}"));
        (me["balance"] == 90_000).then_some(())
    });
    browser.goto(&format!("{base}/wallet"));
    browser.wait_text("#balance", "90", WAIT);
    browser.screenshot("03-employer-wallet");

    // A bad amount is refused with a sentence, and nothing is posted.
    browser.goto(&format!("{base}/tasks"));
    for (field, value) in [
        ("task", "fence"),
        ("category", "repair"),
        ("geohash", "u33dc0"),
        ("evidence", "photo"),
        ("reward", "fifty"),
        ("hours", "2"),
    ] {
        browser.fill(&format!("form input[name={field}]"), value);
    }
    act(&browser, "post", "reward must be a whole number");
    browser.fill("form input[name=task]", "fence");
    browser.fill("form input[name=category]", "repair");
    browser.fill("form input[name=geohash]", "u33dc0");
    browser.fill("form input[name=evidence]", "photo");
    browser.fill("form input[name=reward]", "50000");
    act(&browser, "post", "Done");
    browser.wait_text("#tasks", "fence", WAIT);
    browser.screenshot("04-task-posted");

    // Flow 1: the worker claims the task and proves the work.
    let worker = log_in(&browser, &base, "worker");
    // Claiming needs trust: a founder (a key the test holds) vouches for the worker.
    let vouch = moip_work::events::encode(
        &founders[0],
        "bakery",
        &moip_work::events::Message::Vouch {
            subject: moip::actions::parse_key(&worker).expect("key"),
        },
        moip::views::now(),
    )
    .expect("sign");
    let mut response = agent
        .post(format!("{base}/api/events"))
        .send(vouch.as_json())
        .expect("post");
    assert_eq!(
        response.status().as_u16(),
        202,
        "{:?}",
        response.body_mut().read_to_string()
    );
    browser.goto(&format!("{base}/tasks/fence"));
    act(&browser, "claim", "Done");
    browser.wait_text("#task-state", "claimed", WAIT);
    browser.fill(
        "input[name='evidence.photo']",
        "a photo of the painted fence",
    );
    act(&browser, "submit", "Done");
    browser.wait_text("#task-state", "submitted", WAIT);
    browser.screenshot("05-proof-submitted");

    // Three attesters; the founders (keys held by the test) certify them as verifiers.
    let attesters: Vec<String> = ["ana", "ben", "cleo"]
        .iter()
        .map(|name| log_in(&browser, &base, name))
        .collect();
    let now = moip::views::now();
    for subject in &attesters {
        let subject = moip::actions::parse_key(subject).expect("key");
        for founder in &founders {
            let event = moip_work::events::encode(
                founder,
                "bakery",
                &moip_work::events::Message::Certify { subject },
                now,
            )
            .expect("sign");
            let mut response = agent
                .post(format!("{base}/api/events"))
                .send(event.as_json())
                .expect("post");
            assert_eq!(
                response.status().as_u16(),
                202,
                "{:?}",
                response.body_mut().read_to_string()
            );
        }
    }
    for (i, name) in ["ana", "ben", "cleo"].iter().enumerate() {
        log_in(&browser, &base, name);
        browser.goto(&format!("{base}/tasks/fence"));
        let outcome = if i == 2 { "quorum is reached" } else { "Done" };
        act(&browser, "attest", outcome);
    }
    browser.screenshot("06-quorum-reached");
    wait_until(WAIT, "the reward released", || {
        let task = api(&agent, &base, "/api/tasks/fence");
        (task["state"] == "paid").then_some(())
    });
    let me = api(&agent, &base, &format!("/api/identities/{worker}"));
    assert_eq!(me["balance"], 50_000);
    // Scores are shown as last published (every few seconds).
    wait_until(WAIT, "the worker's trust published", || {
        let me = api(&agent, &base, &format!("/api/identities/{worker}"));
        (me["score"].as_f64()? > 0.0).then_some(())
    });

    // The worker redeems the reward to an invoice of the test's node.
    log_in(&browser, &base, "worker");
    browser.wait_text("#balance", "50", WAIT);
    let pool = api(&agent, &base, "/api/pool");
    let ppm = pool["fee_ppm"].as_u64().expect("fee");
    let fee = (50_000 * ppm).div_ceil(1_000_000);
    let payout = payer
        .create_invoice(Some((50_000 - fee) * 1_000), "my reward", 3_600)
        .expect("invoice");
    let before = payer.balance().lightning_sats;
    browser.fill("input[name=amount]", "50000");
    browser.fill("input[name=invoice]", &payout.bolt11);
    // The request only queues the redemption; the pool pays it in the background.
    act(&browser, "redeem", "Your redemption is queued");
    browser.screenshot("07-redeemed");
    payer
        .wait_for(WAIT, "the payout", |n| {
            (n.balance().lightning_sats >= before + 50_000 - fee).then_some(())
        })
        .expect("the worker's invoice is paid");
    let community = api(&agent, &base, "/api/community");
    assert_eq!(community["supply"], 40_000);
    assert!(
        community["collateral_sats"].as_u64().expect("collateral")
            >= community["supply"].as_u64().expect("supply")
    );

    // The overview's chart and the trust graph around the worker.
    browser.goto(&format!("{base}/"));
    assert!(browser.has("#collateral-chart"));
    browser.screenshot("08-overview-after");
    browser.goto(&format!("{base}/identities/{worker}"));
    assert!(browser.has("#trust-graph line"));
    browser.screenshot("09-worker-trust");
    for shot in std::fs::read_dir(&shots).expect("screenshots") {
        let len = shot.expect("entry").metadata().expect("meta").len();
        assert!(len > 5_000, "a screenshot with something on it");
    }

    drop(browser);
    payer.stop().expect("stop the test's node");
    let mut node = node;
    let status = Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = wait_until(WAIT, "moip up to exit", || {
        node.child.try_wait().expect("wait")
    });
    assert!(exit.success(), "{exit:?}");
}
