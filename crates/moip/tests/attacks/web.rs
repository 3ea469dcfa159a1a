//! Attack 9 of issue 21: the web dashboard and the HTTP API of `moip up`, attacked over HTTP
//! against the real binary. The data directory and the operator's token are the owner's alone
//! whatever the umask.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::NodeProcess;

const WAIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "correct horse";

/// A running `moip up`, with its dashboard's address and its operator token.
struct Up {
    node: NodeProcess,
    base: String,
    data: PathBuf,
    token: String,
    /// Its Electrum server (`tcp://…`) and Lightning node (`id@host:port`), for a payer.
    electrum: String,
    lightning: String,
}

/// `moip up` in `dir/node` on loopback (every port free, no mining), started by a shell that
/// first sets `umask`, so files are made as the operator's shell would make them; `community`
/// goes in the settings' `[community]` table.
fn up_with(dir: &Path, umask: &str, community: &str) -> Up {
    let config = dir.join("moip.toml");
    std::fs::write(
        &config,
        format!(
            "mine_every_secs = 0\n[ports]\nrpc = 0\nelectrum_tcp = 0\nelectrum_ws = 0\n\
             electrum_ssl = 0\nelectrum_wss = 0\nlightning = 0\nmoneysocket = 0\nnostr = 0\n\
             api = 0\n[community]\n{community}\n"
        ),
    )
    .expect("settings");
    let data = dir.join("node");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_moip"))
        .args(["up", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .env("MOIP_PASSWORD", PASSWORD);
    let (node, lines) = NodeProcess::spawn_command(
        command,
        &data,
        &["  dashboard: ", "  electrum tcp: ", "  lightning: "],
    );
    let base = lines[0].trim_end_matches('/').to_owned();
    let token = std::fs::read_to_string(data.join("api.token"))
        .expect("the operator's token")
        .trim()
        .to_owned();
    Up {
        node,
        base,
        data,
        token,
        electrum: lines[1].clone(),
        lightning: lines[2].clone(),
    }
}

/// `moip up` as an operator with the usual umask starts it.
fn start(dir: &Path) -> Up {
    up_with(dir, "022", "")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(WAIT))
        .build()
        .into()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Under a umask that hides nothing (000), a fresh data directory is still 0700 and the
/// operator's token 0600 (made so, never written first and narrowed after), as are the
/// state documents and local users' directory; a directory and token left open by an older
/// node are tightened on the next start.
#[cfg(unix)]
#[test]
fn the_data_directory_and_its_secrets_are_the_owner_s_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let up = up_with(dir.path(), "000", "");
    let agent = agent();
    assert_eq!(mode(&up.data), 0o700, "the data directory");
    assert_eq!(
        mode(&up.data.join("api.token")),
        0o600,
        "the operator's token"
    );
    // A local user's key is sealed in `users/`; an app's NWC secret lands in a state document.
    let login = agent
        .post(format!("{}/login", up.base))
        .content_type("application/x-www-form-urlencoded")
        .send("name=ana&password=ana-password")
        .expect("login");
    assert_eq!(login.status().as_u16(), 303, "a local user logs in");
    assert_eq!(mode(&up.data.join("users")), 0o700, "local users' keys");
    assert_eq!(mode(&up.data.join("users/ana.seed")), 0o600);
    let paired = agent
        .post(format!("{}/api/pairing/nwc", up.base))
        .header("Authorization", &format!("Bearer {}", up.token))
        .send(r#"{"name":"phone"}"#)
        .expect("pair");
    assert_eq!(paired.status().as_u16(), 200);
    assert_eq!(mode(&up.data.join("nwc-connections.json")), 0o600);
    let data = up.data.clone();
    up.node.stop();

    // An older node left them open: the next start closes them.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let token = data.join("api.token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let up = start(dir.path());
    assert_eq!(mode(&up.data), 0o700, "the data directory, tightened");
    assert_eq!(mode(&token), 0o600, "the operator's token, tightened");
    up.node.stop();
}

/// The session cookie (`moip_session=…`) a response sets, if any.
fn session_cookie(response: &ureq::http::Response<ureq::Body>) -> Option<String> {
    response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .filter(|v| v.starts_with("moip_session=") && v.len() > "moip_session=".len())
        .map(str::to_owned)
}

/// A fresh login challenge, asked for from the node's own page.
fn challenge(agent: &ureq::Agent, base: &str) -> String {
    let text = agent
        .post(format!("{base}/login/challenge"))
        .header("Origin", base)
        .send("{}")
        .expect("challenge")
        .body_mut()
        .read_to_string()
        .expect("body");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["challenge"].as_str().expect("a challenge").to_owned()
}

/// `challenge` signed by `keys` as a NIP-07 signer signs it (kind 22242).
fn signed_login(keys: &nostr_sdk::Keys, challenge: &str) -> String {
    let event = nostr_sdk::EventBuilder::new(nostr_sdk::Kind::from(22_242), "")
        .tags([nostr_sdk::Tag::custom(
            nostr_sdk::TagKind::custom("challenge"),
            [challenge],
        )])
        .sign_with_keys(keys)
        .expect("sign");
    nostr_sdk::JsonUtil::as_json(&event)
}

/// Logs `keys` in as a NIP-07 signer (from the node's own page); the session cookie.
fn nip07_session(agent: &ureq::Agent, base: &str, keys: &nostr_sdk::Keys) -> String {
    let c = challenge(agent, base);
    let response = agent
        .post(format!("{base}/login/nip07"))
        .header("Origin", base)
        .send(signed_login(keys, &c))
        .expect("login");
    assert_eq!(response.status().as_u16(), 200, "a NIP-07 login");
    session_cookie(&response).expect("a session")
}

/// Logs local user `name` in (from the node's own page); the session cookie.
fn local_session(agent: &ureq::Agent, base: &str, name: &str) -> String {
    let response = agent
        .post(format!("{base}/login"))
        .header("Origin", base)
        .content_type("application/x-www-form-urlencoded")
        .send(format!("name={name}&password={name}-password"))
        .expect("login");
    assert_eq!(response.status().as_u16(), 303, "a local login");
    session_cookie(&response).expect("a session")
}

/// Login CSRF: a page on another site posts the login forms in a visitor's browser, to log the
/// visitor in as the attacker (whose account then receives what the visitor deposits or
/// does). Each login endpoint refuses a post whose `Origin` or `Sec-Fetch-Site` says it came
/// from another site, with a clear error, and starts no session (nor makes a local user's
/// key); the same posts from the node's own page log in.
#[test]
fn a_login_posted_from_another_site_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = start(dir.path());
    let agent = agent();
    let base = &up.base;
    let evil = "https://evil.example";
    let refused = |response: ureq::http::Response<ureq::Body>, what: &str| {
        let mut response = response;
        assert_eq!(response.status().as_u16(), 403, "{what}");
        assert_eq!(session_cookie(&response), None, "{what}: no session");
        let text = response.body_mut().read_to_string().expect("body");
        assert!(text.contains("another site"), "{what}: {text}");
    };

    // A local user's login form, posted by another site's page (Origin and Sec-Fetch-Site as
    // a browser sends them, or either alone).
    for headers in [
        vec![("Origin", evil), ("Sec-Fetch-Site", "cross-site")],
        vec![("Origin", evil)],
        vec![("Origin", "null")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Sec-Fetch-Site", "same-site")],
    ] {
        let mut request = agent
            .post(format!("{base}/login"))
            .content_type("application/x-www-form-urlencoded");
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send("name=mallory&password=mallory-password")
            .expect("login");
        refused(response, &format!("POST /login with {headers:?}"));
    }
    assert!(
        !up.data.join("users/mallory.seed").exists(),
        "no key was made for the attacker's name"
    );

    // The operator's login, with the right token.
    let response = agent
        .post(format!("{base}/login/operator"))
        .header("Origin", evil)
        .content_type("application/x-www-form-urlencoded")
        .send(format!("token={}", up.token))
        .expect("login");
    refused(response, "POST /login/operator");

    // A NIP-07 login: a challenge asked for and signed by the attacker, posted from their page.
    let mallory = nostr_sdk::Keys::generate();
    let response = agent
        .post(format!("{base}/login/challenge"))
        .header("Origin", evil)
        .send("{}")
        .expect("challenge");
    refused(response, "POST /login/challenge");
    let c = challenge(&agent, base);
    let response = agent
        .post(format!("{base}/login/nip07"))
        .header("Origin", evil)
        .header("Sec-Fetch-Site", "cross-site")
        .send(signed_login(&mallory, &c))
        .expect("login");
    refused(response, "POST /login/nip07");

    // From the node's own page, the same logins go through.
    let ana = local_session(&agent, base, "ana");
    let mut wallet = agent
        .get(format!("{base}/wallet"))
        .header("Cookie", &ana)
        .call()
        .expect("wallet");
    let page = wallet.body_mut().read_to_string().expect("page");
    assert!(page.contains("Deposit bitcoin"), "ana's own wallet");
    let response = agent
        .post(format!("{base}/login/nip07"))
        .header("Origin", base)
        .header("Sec-Fetch-Site", "same-origin")
        .send(signed_login(&mallory, &c))
        .expect("login");
    assert_eq!(
        response.status().as_u16(),
        200,
        "the challenge, untouched by the refused post, logs in from the node's page"
    );
    up.node.stop();
}

/// Asks for a deposit invoice of `sats` over the API, as `auth` (a header) if any, for
/// `pubkey` if given; the status and the JSON answer.
fn ask_deposit(
    agent: &ureq::Agent,
    base: &str,
    auth: Option<(&str, &str)>,
    pubkey: Option<&str>,
    sats: u64,
) -> (u16, serde_json::Value) {
    let mut request = agent.post(format!("{base}/api/deposits"));
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    let body = match pubkey {
        Some(p) => serde_json::json!({"pubkey": p, "sats": sats}),
        None => serde_json::json!({"sats": sats}),
    };
    let mut response = request.send(body.to_string()).expect("deposit");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("body");
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// A stranger fills the unpaid-invoice book to lock real depositors out. Without a session or
/// the operator's token every request is refused (401) and nothing is booked; with a session
/// of a fresh key of their own, they hold at most `MAX_PENDING_PER_ACCOUNT` unpaid invoices
/// (then 429 with the reason), and only for that key; a member then still gets an invoice.
#[test]
fn a_stranger_cannot_fill_the_deposit_book() {
    use moip::deposits::MAX_PENDING_PER_ACCOUNT;
    let dir = tempfile::tempdir().expect("tempdir");
    let up = start(dir.path());
    let agent = agent();
    let base = &up.base;

    // Anonymous: refused, each with the way in.
    for _ in 0..20 {
        let victim = nostr_sdk::Keys::generate().public_key().to_hex();
        let (status, answer) = ask_deposit(&agent, base, None, Some(&victim), 1_000);
        assert_eq!(status, 401, "an anonymous deposit: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("logged-in member")),
            "{answer}"
        );
    }

    // With a session of a key of their own: a few invoices, then refused.
    let mallory = nostr_sdk::Keys::generate();
    let cookie = nip07_session(&agent, base, &mallory);
    let mut made = 0;
    for _ in 0..MAX_PENDING_PER_ACCOUNT + 5 {
        let (status, answer) = ask_deposit(&agent, base, Some(("Cookie", &cookie)), None, 1_000);
        match status {
            201 => made += 1,
            429 => assert!(
                answer["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("unpaid deposit invoices")),
                "{answer}"
            ),
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!(made, MAX_PENDING_PER_ACCOUNT, "the stranger's own bound");
    let someone = nostr_sdk::Keys::generate().public_key().to_hex();
    let (status, answer) = ask_deposit(
        &agent,
        base,
        Some(("Cookie", &cookie)),
        Some(&someone),
        1_000,
    );
    assert_eq!(
        status, 403,
        "a session deposits to its own key only: {answer}"
    );

    // A member still gets an invoice, for themselves, over the API and on the wallet page;
    // not from another site's page.
    let ana = local_session(&agent, base, "ana");
    let (status, answer) = ask_deposit(&agent, base, Some(("Cookie", &ana)), None, 5_000);
    assert_eq!(status, 201, "{answer}");
    assert!(answer["invoice"]
        .as_str()
        .is_some_and(|i| i.starts_with("lnbcrt")));
    let mut wallet = agent
        .get(format!("{base}/wallet"))
        .header("Cookie", &ana)
        .call()
        .expect("wallet");
    let page = wallet.body_mut().read_to_string().expect("page");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's CSRF token");
    let mut response = agent
        .post(format!("{base}/deposit"))
        .header("Cookie", &ana)
        .header("Origin", base)
        .content_type("application/x-www-form-urlencoded")
        .send(format!("csrf={csrf}&sats=6000"))
        .expect("deposit");
    assert_eq!(response.status().as_u16(), 200);
    let page = response.body_mut().read_to_string().expect("page");
    assert!(page.contains("id=\"invoice\">lnbcrt"), "{page}");
    let mut request = agent
        .post(format!("{base}/api/deposits"))
        .header("Cookie", &ana)
        .header("Origin", "https://evil.example");
    request = request.header("Sec-Fetch-Site", "cross-site");
    let response = request.send(r#"{"sats":1000}"#).expect("deposit");
    assert_eq!(
        response.status().as_u16(),
        403,
        "a deposit posted from another site"
    );

    // The operator asks for anyone.
    let bearer = format!("Bearer {}", up.token);
    let (status, answer) = ask_deposit(
        &agent,
        base,
        Some(("Authorization", &bearer)),
        Some(&someone),
        2_000,
    );
    assert_eq!(status, 201, "{answer}");
    let (status, _) = ask_deposit(
        &agent,
        base,
        Some(("Authorization", "Bearer not-the-token")),
        Some(&someone),
        2_000,
    );
    assert_eq!(status, 403, "a wrong token");
    up.node.stop();
}

/// GET `path` as `auth` (a header) if any: the status and the body.
fn read(agent: &ureq::Agent, base: &str, path: &str, auth: Option<(&str, &str)>) -> (u16, String) {
    let mut request = agent.get(format!("{base}{path}"));
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    let mut response = request.call().expect("get");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().expect("body"))
}

/// [`read`], as JSON.
fn read_json(
    agent: &ureq::Agent,
    base: &str,
    path: &str,
    auth: Option<(&str, &str)>,
) -> (u16, serde_json::Value) {
    let (status, text) = read(agent, base, path, auth);
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// A member logged in as a NIP-07 signer, holding `sats` tokens deposited over Lightning
/// from `payer` (the test's own node, with a channel to the community's); their keys and
/// session cookie.
fn funded_member(
    agent: &ureq::Agent,
    up: &Up,
    payer: &moip_lightning::LightningNode,
    sats: u64,
) -> (nostr_sdk::Keys, String) {
    let keys = nostr_sdk::Keys::generate();
    let cookie = nip07_session(agent, &up.base, &keys);
    let (status, deposit) = ask_deposit(agent, &up.base, Some(("Cookie", &cookie)), None, sats);
    assert_eq!(status, 201, "{deposit}");
    payer
        .pay(
            deposit["invoice"].as_str().expect("invoice"),
            None,
            Default::default(),
            WAIT,
        )
        .expect("the deposit paid");
    let bearer = format!("Bearer {}", up.token);
    let me = keys.public_key().to_hex();
    crate::common::wait_until(WAIT, "the deposit minted", || {
        let (_, identity) = read_json(
            agent,
            &up.base,
            &format!("/api/identities/{me}"),
            Some(("Authorization", &bearer)),
        );
        (identity["balance"] == sats).then_some(())
    });
    (keys, cookie)
}

/// Balances are their owners': an anonymous visitor and another member see no member's
/// balance — not over the API (identity, listing, balance proof) nor on the dashboard's
/// pages — while the member sees their own and the operator sees all; a community that
/// chooses to publish balances (`publish_balances = true`) shows them to anyone.
#[test]
fn a_balance_is_shown_to_its_owner_and_the_operator_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = start(dir.path());
    let agent = agent();
    let base = &up.base;
    let payer = crate::common::payer::payer_with_channel(
        &up.node,
        &dir.path().join("payer"),
        &up.electrum,
        &up.lightning,
        1_000_000,
    );
    let (ana, ana_cookie) = funded_member(&agent, &up, &payer, 20_000);
    let ana_hex = ana.public_key().to_hex();
    let bob = nip07_session(&agent, base, &nostr_sdk::Keys::generate());
    let bearer = format!("Bearer {}", up.token);
    let one = format!("/api/identities/{ana_hex}");
    let proof = format!("/api/proof/{ana_hex}");
    let shown = "20\u{202f}000";

    // Strangers: an anonymous visitor, and another member.
    for (who, auth) in [("anyone", None), ("bob", Some(("Cookie", bob.as_str())))] {
        let (status, identity) = read_json(&agent, base, &one, auth);
        assert_eq!(status, 200);
        assert_eq!(
            identity["balance"],
            serde_json::Value::Null,
            "{who}: {identity}"
        );
        let (_, all) = read_json(&agent, base, "/api/identities", auth);
        let all = all.as_array().expect("a list").clone();
        assert!(
            all.iter()
                .all(|i| i["pubkey"] != ana_hex.as_str() && i["balance"].is_null()),
            "{who} sees no balance in the listing, nor who holds one: {all:?}"
        );
        let (status, answer) = read_json(&agent, base, &proof, auth);
        assert_eq!(status, 403, "{who}: the proof shows the balance: {answer}");
        for page in [format!("/identities/{ana_hex}"), "/identities".to_owned()] {
            let (status, html) = read(&agent, base, &page, auth);
            assert_eq!(status, 200);
            assert!(!html.contains(shown), "{who} on {page}");
        }
    }

    // The member herself, and the operator.
    for (who, auth) in [
        ("ana", ("Cookie", ana_cookie.as_str())),
        ("the operator", ("Authorization", bearer.as_str())),
    ] {
        let (_, identity) = read_json(&agent, base, &one, Some(auth));
        assert_eq!(identity["balance"], 20_000, "{who}: {identity}");
        let (_, all) = read_json(&agent, base, "/api/identities", Some(auth));
        assert!(
            all.as_array()
                .expect("a list")
                .iter()
                .any(|i| i["pubkey"] == ana_hex.as_str() && i["balance"] == 20_000),
            "{who}: {all}"
        );
        let (status, answer) = read_json(&agent, base, &proof, Some(auth));
        assert_eq!(status, 200, "{who}: {answer}");
        assert_eq!(answer["leaf_sum"], 20_000);
    }
    let (_, html) = read(
        &agent,
        base,
        &format!("/identities/{ana_hex}"),
        Some(("Cookie", &ana_cookie)),
    );
    assert!(html.contains(shown), "ana sees her own on the dashboard");
    let (status, _) = read_json(
        &agent,
        base,
        &one,
        Some(("Authorization", "Bearer not-the-token")),
    );
    assert_eq!(
        status, 403,
        "a wrong token is refused, not taken for anyone"
    );

    // A community that publishes balances shows them to anyone.
    up.node.stop();
    let up = up_with(dir.path(), "022", "publish_balances = true");
    let (_, identity) = read_json(&agent, &up.base, &one, None);
    assert_eq!(identity["balance"], 20_000, "published: {identity}");
    let (_, html) = read(&agent, &up.base, &format!("/identities/{ana_hex}"), None);
    assert!(html.contains(shown), "published on the dashboard");
    payer.stop().expect("stop the payer");
    up.node.stop();
}

/// A redemption request is signed once and taken once: replayed after the node restarts (when
/// the guard lived in memory only, it was taken again), it is refused with 409 and the
/// member's balance does not move.
#[test]
fn a_redemption_replayed_after_a_restart_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = start(dir.path());
    let agent = agent();
    let payer = crate::common::payer::payer_with_channel(
        &up.node,
        &dir.path().join("payer"),
        &up.electrum,
        &up.lightning,
        1_000_000,
    );
    let (member, _) = funded_member(&agent, &up, &payer, 90_000);
    let bearer = format!("Bearer {}", up.token);
    let me = format!("/api/identities/{}", member.public_key().to_hex());
    let balance = |base: &str| {
        read_json(&agent, base, &me, Some(("Authorization", &bearer))).1["balance"].as_u64()
    };

    // The member redeems 10 000 tokens to an invoice of the payer's, and is paid.
    let (_, pool) = read_json(&agent, &up.base, "/api/pool", None);
    let ppm = pool["fee_ppm"].as_u64().expect("fee");
    let amount = 10_000u64;
    let fee = (amount * ppm).div_ceil(1_000_000);
    let payout = payer
        .create_invoice(Some((amount - fee) * 1_000), "my tokens", 3_600)
        .expect("invoice");
    let (_, community) = read_json(&agent, &up.base, "/api/community", None);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let request = moip::actions::RedeemRequest {
        amount,
        invoice: payout.bolt11.clone(),
    };
    let signed =
        moip::actions::redeem_builder(community["id"].as_str().expect("id"), &request, now)
            .sign_with_keys(&member)
            .expect("sign");
    let signed = nostr_sdk::JsonUtil::as_json(&signed);
    let redeem = |base: &str| {
        let mut response = agent
            .post(format!("{base}/api/redemptions"))
            .send(signed.clone())
            .expect("redeem");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("body");
        (
            status,
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default(),
        )
    };
    let (status, ticket) = redeem(&up.base);
    assert_eq!(status, 200, "{ticket}");
    let id = ticket["id"].as_u64().expect("id");
    crate::common::wait_until(WAIT, "the redemption paid", || {
        let (_, r) = read_json(&agent, &up.base, &format!("/api/redemptions/{id}"), None);
        (r["status"] == "paid").then_some(())
    });

    // The same signed request, replayed after a restart: refused, nothing taken.
    up.node.stop();
    let up = start(dir.path());
    let before = balance(&up.base);
    let (status, answer) = redeem(&up.base);
    assert_eq!(status, 409, "the replay after the restart: {answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("taken already")),
        "{answer}"
    );
    assert_eq!(balance(&up.base), before, "the balance stays");
    let (_, pool) = read_json(&agent, &up.base, "/api/pool", None);
    assert_eq!(pool["queued"], 0, "nothing waits to be paid: {pool}");
    payer.stop().expect("stop the payer");
    up.node.stop();
}

/// The dashboard's Fund buttons (issue 21, attack 4) move the community's collateral, so they
/// are the operator's alone, with the same checks as the other operator forms: a member's
/// session and the operator's session without the form's CSRF token (what a page on another
/// site cannot know) are refused (403) and nothing moves; the operator's own form reaches the
/// API's fund (here refused, 422: no collateral is free).
#[test]
fn the_dashboards_fund_buttons_are_the_operators_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = start(dir.path());
    let agent = agent();
    let base = &up.base;
    let bearer = format!("Bearer {}", up.token);
    let api = |method: &str, path: &str, body: &str| {
        let url = format!("{base}{path}");
        let mut response = match method {
            "GET" => agent.get(&url).header("Authorization", &bearer).call(),
            _ => agent
                .post(&url)
                .header("Authorization", &bearer)
                .header("Content-Type", "application/json")
                .send(body.to_owned()),
        }
        .expect("the API answers");
        let text = response.body_mut().read_to_string().expect("body");
        (
            response.status().as_u16(),
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default(),
        )
    };
    let (status, beacon) = api("POST", "/api/pairing/beacon", "{}");
    assert_eq!(status, 200, "{beacon}");
    let id = beacon["id"].as_str().expect("the beacon's id").to_owned();
    let (status, _) = api("POST", "/api/pairing/nwc", r#"{"name":"till"}"#);
    assert_eq!(status, 200);
    let (_, apps) = api("GET", "/api/pairing/nwc", "");
    let client = apps[0]["client"]
        .as_str()
        .expect("the app's key")
        .to_owned();
    let balances = || {
        let (_, beacons) = api("GET", "/api/pairing/beacons", "");
        let (_, apps) = api("GET", "/api/pairing/nwc", "");
        (
            beacons[0]["balance_msat"].clone(),
            apps[0]["balance_msat"].clone(),
        )
    };
    let before = balances();

    // The operator's session sees a Fund button for each.
    let response = agent
        .post(format!("{base}/login/operator"))
        .header("Origin", base.as_str())
        .content_type("application/x-www-form-urlencoded")
        .send(format!("token={}", up.token))
        .expect("login");
    let operator = session_cookie(&response).expect("the operator's session");
    let mut page = agent
        .get(format!("{base}/pair"))
        .header("Cookie", &operator)
        .call()
        .expect("pair page");
    let page = page.body_mut().read_to_string().expect("page");
    let forms = [
        format!("/pair/beacons/{id}/fund"),
        format!("/pair/nwc/{client}/fund"),
    ];
    for form in &forms {
        assert!(
            page.contains(&format!("action=\"{form}\"")),
            "{form} in {page}"
        );
    }
    let csrf_of = |page: &str| {
        page.split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the form's CSRF token")
            .to_owned()
    };
    let csrf = csrf_of(&page);

    let post = |form: &str, cookie: &str, origin: &str, body: String| {
        let mut response = agent
            .post(format!("{base}{form}"))
            .header("Cookie", cookie)
            .header("Origin", origin)
            .content_type("application/x-www-form-urlencoded")
            .send(body)
            .expect("post");
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    let member = local_session(&agent, base, "ana");
    let mut wallet = agent
        .get(format!("{base}/wallet"))
        .header("Cookie", &member)
        .call()
        .expect("wallet");
    let member_csrf = csrf_of(&wallet.body_mut().read_to_string().expect("page"));
    for form in &forms {
        let (status, body) = post(form, &member, base, format!("csrf={member_csrf}&sats=1"));
        assert_eq!(status, 403, "a member funded {form}: {body}");
        let (status, body) = post(form, &operator, base, "sats=1".to_owned());
        assert_eq!(status, 403, "{form} without the CSRF token: {body}");
        // The operator's own form reaches the ledger, which finds no free collateral.
        let (status, body) = post(form, &operator, base, format!("csrf={csrf}&sats=1"));
        assert_eq!(status, 422, "{form}: {body}");
        assert!(body.contains("collateral"), "{body}");
    }
    assert_eq!(balances(), before, "nothing moved");
    up.node.stop();
}
