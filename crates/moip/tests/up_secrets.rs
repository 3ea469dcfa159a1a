//! Secrets never reach a log. `moip up` runs with every log at `trace`; a local user logs in and
//! acts, a deposit invoice is made, the operator pairs an NWC app and a Moneysocket app and the
//! operator's login is tried with a wrong token. Then every secret the node holds — the node's
//! and the user's passwords, each sealed seed (as words, as entropy, and as the Nostr key made
//! from it), the operator's token, the NWC secret and the beacon — is looked for in everything
//! the process wrote: its output, its error stream and the Lightning node's own log.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash as _};
use common::wait_until;
use moip_wallet::keystore::SeedFile;
use nostr_sdk::ToBech32;

const WAIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "correct horse battery staple";
const USER_PASSWORD: &str = "ana's own passphrase";

/// The ways a sealed seed could leak: its words, its entropy, the Nostr key made from it.
fn seed_secrets(path: &Path, password: &str) -> Vec<String> {
    let mnemonic =
        SeedFile::open(path, password).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let entropy = mnemonic.to_entropy();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let nostr = sha256::Hash::hash(&entropy).to_string();
    let nsec = nostr_sdk::Keys::parse(&nostr)
        .expect("key")
        .secret_key()
        .to_bech32()
        .expect("nsec");
    vec![mnemonic.to_string(), hex(&entropy), nostr, nsec]
}

#[test]
fn no_secret_reaches_a_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("node");
    let config = dir.path().join("moip.toml");
    std::fs::write(
        &config,
        "mine_every_secs = 1\n[ports]\nrpc = 0\nelectrum_tcp = 0\nelectrum_ws = 0\n\
         lightning = 0\nmoneysocket = 0\nnostr = 0\napi = 0\n",
    )
    .expect("settings");
    let out_path = dir.path().join("stdout.log");
    let err_path = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_moip"))
        .arg("up")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .env("MOIP_PASSWORD", PASSWORD)
        .env("MOIP_LOG", "trace")
        .stdout(Stdio::from(
            std::fs::File::create(&out_path).expect("stdout"),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(&err_path).expect("stderr"),
        ))
        .spawn()
        .expect("spawn moip up");
    let base = wait_until(WAIT, "moip up ready", || {
        let out = std::fs::read_to_string(&out_path).ok()?;
        if !out.contains("moip up: ready in") {
            return None;
        }
        out.lines()
            .find_map(|l| l.strip_prefix("  dashboard: "))
            .map(|b| b.trim_end_matches('/').to_owned())
    });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let token = std::fs::read_to_string(data.join("api.token")).expect("token");
    let token = token.trim();

    // A local user logs in (the key is made and sealed) and asks for a deposit invoice.
    let login = agent
        .post(format!("{base}/login"))
        .content_type("application/x-www-form-urlencoded")
        .send(format!(
            "name=ana&password={}",
            USER_PASSWORD.replace(' ', "+").replace('\'', "%27")
        ))
        .expect("login");
    assert_eq!(login.status().as_u16(), 303);
    // Guessing ana's password: the free wrong guesses are refused (403), then further guesses
    // must wait, longer each time (429 with Retry-After); after the wait the right password
    // gets in.
    let try_login = |password: &str| {
        agent
            .post(format!("{base}/login"))
            .content_type("application/x-www-form-urlencoded")
            .send(format!(
                "name=ana&password={}",
                password.replace(' ', "+").replace('\'', "%27")
            ))
            .expect("login")
    };
    for _ in 0..moip::web::throttle::FREE_FAILURES {
        assert_eq!(try_login("not the password").status().as_u16(), 403);
    }
    // The waits double (1 s, 2 s, …): one of the next guesses comes within one.
    let held = (0..3)
        .map(|_| try_login("not the password"))
        .find(|r| r.status().as_u16() == 429)
        .expect("a guess held back");
    assert!(held.headers().get("retry-after").is_some());
    wait_until(WAIT, "the wait after wrong passwords to end", || {
        (try_login(USER_PASSWORD).status().as_u16() == 303).then_some(())
    });
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("cookie")
        .to_owned();
    let mut wallet = agent
        .get(format!("{base}/wallet"))
        .header("Cookie", &cookie)
        .call()
        .expect("wallet");
    let page = wallet.body_mut().read_to_string().expect("page");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's CSRF token")
        .to_owned();
    let deposit = agent
        .post(format!("{base}/deposit"))
        .header("Cookie", &cookie)
        .content_type("application/x-www-form-urlencoded")
        .send(format!("csrf={csrf}&sats=5000"))
        .expect("deposit");
    assert_eq!(deposit.status().as_u16(), 200);

    // The operator pairs two apps; a wrong token is refused.
    let pair = |path: &str, body: &str| -> String {
        let text = agent
            .post(format!("{base}{path}"))
            .header("Authorization", &format!("Bearer {token}"))
            .send(body.to_owned())
            .expect("pair")
            .body_mut()
            .read_to_string()
            .expect("body");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v["uri"].as_str().expect("uri").to_owned()
    };
    let nwc = pair("/api/pairing/nwc", r#"{"name":"phone","budget_sat":1000}"#);
    let nwc_secret = nwc
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("the NWC secret")
        .to_owned();
    let beacon = pair("/api/pairing/beacon", "{}");
    let wrong = agent
        .post(format!("{base}/login/operator"))
        .content_type("application/x-www-form-urlencoded")
        .send("token=not-the-token")
        .expect("operator login");
    assert_eq!(wrong.status().as_u16(), 403);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = wait_until(WAIT, "moip up to exit", || child.try_wait().expect("wait"));
    assert!(exit.success(), "{exit:?}");

    let mut secrets = vec![
        PASSWORD.to_owned(),
        USER_PASSWORD.to_owned(),
        token.to_owned(),
        nwc_secret,
        beacon.clone(),
        beacon.to_uppercase(),
    ];
    for (file, password) in [
        ("ln/seed", PASSWORD),
        ("work.seed", PASSWORD),
        ("nwc.seed", PASSWORD),
        ("operations/seed", PASSWORD),
        ("users/ana.seed", USER_PASSWORD),
    ] {
        secrets.extend(seed_secrets(&data.join(file), password));
    }
    let mut logs = vec![
        std::fs::read_to_string(&out_path).expect("stdout"),
        std::fs::read_to_string(&err_path).expect("stderr"),
    ];
    if let Ok(ldk) = std::fs::read_to_string(data.join("ln/ldk/ldk_node.log")) {
        logs.push(ldk);
    }
    assert!(
        logs[1].lines().count() > 100,
        "the trace log is written (else this test proves nothing)"
    );
    for log in &logs {
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "a secret in a log: {secret:.8}…"
            );
        }
    }
}
