//! `moip up` as its own process: settings from a TOML file overridden by the environment, every
//! service answering on the port it advertises — the node's RPC, Electrum, Lightning, the
//! Moneysocket relay and the Nostr relay, with the NWC service's info event on it — blocks mined
//! on the timer, and a clean stop on SIGTERM.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{ElectrumClient, NodeProcess};
use futures_util::{SinkExt, StreamExt};
use moip_testenv::wait_until;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(60);

fn socket_addr(text: &str) -> SocketAddr {
    let hostport = text.rsplit("://").next().expect("an address");
    let hostport = hostport.rsplit('@').next().expect("host:port");
    hostport.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn up_runs_every_service_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("node");
    let config = dir.path().join("moip.toml");
    // The guardians' 2-of-3 multisig the supply commitments are checked against.
    let key = |b: u8| {
        let mnemonic = bip39::Mnemonic::from_entropy(&[b; 16]).expect("entropy");
        moip_wallet::collateral::collateral_key(&mnemonic, "", bitcoin::Network::Regtest)
            .expect("key")
            .0
            .to_string()
    };
    let descriptor = moip_wallet::CollateralPolicy {
        threshold: 2,
        guardians: vec![key(61), key(62), key(63)],
        recovery: key(64),
        recovery_blocks: 144,
    }
    .descriptor()
    .expect("descriptor");
    std::fs::write(
        &config,
        r#"
mine_every_secs = 1

[ports]
rpc = 0
electrum_tcp = 0
electrum_ws = 0
lightning = 0
moneysocket = 0
nostr = 0
api = 0

[community]
id = "from-the-file"
name = "Bakery hours"
symbol = "BKH"
founders = ["4f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa"]

[supply]
commit_every_blocks = 2
"#
        .to_owned()
            + &format!("collateral = \"{descriptor}\"\n"),
    )
    .expect("write settings");
    let args = [
        "up".to_owned(),
        "--config".into(),
        config.display().to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ];
    let (mut node, lines) = NodeProcess::spawn_with_env(
        &args,
        &[
            ("MOIP_PASSWORD", "correct horse"),
            ("MOIP_COMMUNITY", "from-the-environment"),
        ],
        &data_dir,
        &[
            "moip up: community ",
            "  electrum tcp: ",
            "  electrum ws: ",
            "  lightning: ",
            "  moneysocket relay: ",
            "  nostr relay: ",
            "  nwc service: ",
            "  work service: ",
            "  api: ",
            "  operator token: ",
            "moip up: ready in ",
        ],
    );
    // The environment overrides the file.
    assert!(
        lines[0].starts_with("\"from-the-environment\""),
        "{}",
        lines[0]
    );

    // The chain answers over RPC, and mines by itself.
    let start = node.height();
    wait_until(WAIT, "a block mined on the timer", || {
        (node.height() > start).then_some(())
    });

    // Electrum over TCP answers and sees the same chain.
    let mut electrum = ElectrumClient::connect(socket_addr(&lines[1]), "1.4", WAIT);
    let tip = electrum.ok("blockchain.headers.subscribe", json!([]));
    assert!(tip["height"].as_u64().expect("height") >= start);

    // The Lightning node takes connections.
    TcpStream::connect_timeout(&socket_addr(&lines[3]), WAIT).expect("lightning port");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Electrum over WebSocket.
        let (mut ws, _) = tokio_tungstenite::connect_async(lines[2].as_str())
            .await
            .expect("electrum ws");
        let request =
            json!({"jsonrpc": "2.0", "id": 1, "method": "server.version", "params": ["t", "1.4"]});
        ws.send(Message::text(request.to_string()))
            .await
            .expect("send");
        let reply = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("in time")
            .expect("a reply")
            .expect("a frame");
        assert!(reply.to_text().expect("text").contains("\"result\""));

        // The Moneysocket relay completes the WebSocket handshake.
        tokio_tungstenite::connect_async(lines[4].as_str())
            .await
            .expect("moneysocket relay");

        // The Nostr relay answers a subscription, and holds the NWC service's info event.
        let (mut nostr, _) = tokio_tungstenite::connect_async(lines[5].as_str())
            .await
            .expect("nostr relay");
        let request = json!(["REQ", "up", {"kinds": [13194], "authors": [lines[6]]}]);
        nostr
            .send(Message::text(request.to_string()))
            .await
            .expect("send");
        let (info, eose) = tokio::time::timeout(WAIT, async {
            let mut info = false;
            while let Some(frame) = nostr.next().await {
                let text = frame.expect("frame").into_text().expect("text").to_string();
                if text.starts_with(r#"["EVENT","up""#) && text.contains("pay_invoice") {
                    info = true;
                }
                if text.starts_with(r#"["EOSE","up""#) {
                    return (info, true);
                }
            }
            (info, false)
        })
        .await
        .expect("in time");
        assert!(eose && info, "the NWC info event is on the relay");
    });
    assert_eq!(lines[7].len(), 64, "the Work service's key: {}", lines[7]);
    let operator = std::fs::read_to_string(&lines[9]).expect("the operator token");
    let operator = operator.trim();
    let base = lines[8].trim_end_matches("/api/openapi.json");
    check_api(base, operator);
    check_supply_commitment(base, operator);

    // SIGTERM stops everything and the process exits cleanly.
    stop_with_sigterm(&mut node.child);
}

/// Sends SIGTERM and waits for a clean exit.
fn stop_with_sigterm(child: &mut std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = wait_until(WAIT, "moip up to exit", || child.try_wait().expect("wait"));
    assert!(exit.success(), "{exit:?}");
}

/// The REST API: the OpenAPI document, every endpoint, and refusals with the status an API
/// client expects.
fn check_api(base: &str, operator: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let get = |path: &str| {
        let mut response = agent.get(format!("{base}{path}")).call().expect("get");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("body");
        let body: serde_json::Value = serde_json::from_str(&text).expect("json");
        (status, body)
    };
    let post_to = |path: &str, body: String, token: Option<&str>| {
        let mut request = agent.post(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request.send(body).expect("post");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("body");
        let body: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        (status, body)
    };
    let post = |body: String| post_to("/api/events", body, None);
    let (status, doc) = get("/api/openapi.json");
    assert_eq!(status, 200);
    for path in [
        "/api/community",
        "/api/pool",
        "/api/history",
        "/api/tasks",
        "/api/tasks/{id}",
        "/api/identities",
        "/api/identities/{pubkey}",
        "/api/node",
        "/api/supply",
        "/api/proof/{pubkey}",
        "/api/events",
        "/api/prepare",
        "/api/redemptions",
        "/api/redemptions/{id}",
        "/api/deposits",
        "/api/deposits/{hash}",
        "/api/pairing/electrum",
        "/api/pairing/nwc",
        "/api/pairing/beacon",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} in the document");
    }
    let (status, community) = get("/api/community");
    assert_eq!(status, 200);
    assert_eq!(community["id"], "from-the-environment");
    assert_eq!(community["supply"], 0);
    assert_eq!(get("/api/tasks/no-such-task").0, 404);
    assert_eq!(get("/api/identities/not-a-key").0, 400);
    assert_eq!(get("/api/no-such-endpoint").0, 404);

    // Signed actions: garbage is 400, a forged signature 401, a refused event 422 with the
    // reason; the reason is a sentence, not a stack trace.
    assert_eq!(post("{not json".into()).0, 400);
    let keys = nostr_sdk::Keys::generate();
    let claim = moip_work::events::Message::Claim {
        task: "no-such-task".into(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let event =
        moip_work::events::encode(&keys, "from-the-environment", &claim, now).expect("sign");
    let json = nostr_sdk::JsonUtil::as_json(&event);
    let mut forged: serde_json::Value = serde_json::from_str(&json).expect("json");
    forged["content"] = json!("changed");
    assert_eq!(post(forged.to_string()).0, 401);
    let (status, receipt) = post(json);
    assert_eq!(status, 422, "{receipt}");
    assert_eq!(receipt["verdict"]["status"], "rejected");
    assert!(
        receipt["verdict"]["reason"]
            .as_str()
            .expect("a reason")
            .contains("unknown task"),
        "{receipt}"
    );
    let (status, identity) = get(&format!("/api/identities/{}", keys.public_key().to_hex()));
    assert_eq!(status, 200);
    assert_eq!(identity["balance"], json!(null), "a balance is its owner's");
    let mut response = agent
        .get(format!(
            "{base}/api/identities/{}",
            keys.public_key().to_hex()
        ))
        .header("Authorization", &format!("Bearer {operator}"))
        .call()
        .expect("get");
    let identity: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().expect("body")).expect("json");
    assert_eq!(identity["balance"], 0, "the operator sees it");

    // The read-only endpoints.
    let (status, pool) = get("/api/pool");
    assert_eq!(status, 200);
    assert_eq!(pool["queued"], 0);
    assert!(pool["fee_ppm"].as_u64().expect("fee") > 0);
    let (status, history) = get("/api/history");
    assert_eq!(status, 200);
    assert!(history.is_array(), "{history}");
    assert_eq!(get("/api/tasks"), (200, json!([])));
    assert_eq!(get("/api/identities").0, 200);
    let (status, node) = get("/api/node");
    assert_eq!(status, 200);
    assert!(node["height"].as_u64().expect("height") > 0, "{node}");
    assert_eq!(node["electrum_synced"], true);
    let (status, electrum) = get("/api/pairing/electrum");
    assert_eq!(status, 200);
    assert_eq!(electrum["uri"], node["electrum_url"]);
    assert_eq!(get("/api/redemptions/0").0, 404);
    assert_eq!(get("/api/redemptions/minus-one").0, 404);
    assert_eq!(get(&format!("/api/deposits/{}", "00".repeat(32))).0, 404);

    // Preparing an action for a NIP-07 signer: refused with a sentence for a bad field or key,
    // 404 for an unknown task; a good one is an unsigned event to sign.
    let me = keys.public_key().to_hex();
    let prepare = |fields: serde_json::Value| {
        post_to(
            "/api/prepare",
            json!({"pubkey": me, "fields": fields}).to_string(),
            None,
        )
    };
    let (status, e) = prepare(json!({"action": "claim", "task": "nope"}));
    assert_eq!(status, 404, "{e}");
    let (status, e) = prepare(json!({"action": "post", "task": "t", "category": "c",
        "geohash": "u33dc0", "evidence": "photo", "reward": "lots", "hours": "2"}));
    assert_eq!(status, 400);
    assert!(
        e["error"]
            .as_str()
            .expect("error")
            .contains("reward must be a whole number"),
        "{e}"
    );
    let (status, e) = post_to(
        "/api/prepare",
        json!({"pubkey": "nope", "fields": {"action": "claim"}}).to_string(),
        None,
    );
    assert_eq!(status, 400, "{e}");
    assert_eq!(prepare(json!({"action": "fly"})).0, 400);
    let (status, prepared) = prepare(
        json!({"action": "post", "task": "fence", "category": "repair",
        "geohash": "u33dc0", "evidence": "photo", "reward": "50 000", "hours": "2"}),
    );
    assert_eq!(status, 200, "{prepared}");
    assert_eq!(prepared["submit"], "/api/events");
    assert_eq!(prepared["event"]["kind"], 30910);
    assert_eq!(prepared["event"]["pubkey"], me.as_str());
    // Signed as a NIP-07 signer would, the post is refused: the employer has no tokens.
    let unsigned =
        <nostr_sdk::UnsignedEvent as nostr_sdk::JsonUtil>::from_json(prepared["event"].to_string())
            .expect("unsigned");
    let signed = unsigned.sign_with_keys(&keys).expect("sign");
    let (status, receipt) = post(nostr_sdk::JsonUtil::as_json(&signed));
    assert_eq!(status, 422, "{receipt}");

    // Deposits: asked for by a member or the operator (here the operator, for `me`), never
    // anonymously; bad amounts and keys are refused; a good one is an invoice, pending.
    let (status, e) = post_to(
        "/api/deposits",
        json!({"pubkey": me, "sats": 5_000}).to_string(),
        None,
    );
    assert_eq!(status, 401, "{e}");
    let deposit =
        |body: serde_json::Value| post_to("/api/deposits", body.to_string(), Some(operator));
    assert_eq!(deposit(json!({"pubkey": me, "sats": 5})).0, 422);
    assert_eq!(deposit(json!({"pubkey": "x", "sats": 5_000})).0, 400);
    assert_eq!(deposit(json!({"pubkey": me, "sats": "many"})).0, 400);
    let (status, invoice) = deposit(json!({"pubkey": me, "sats": 5_000}));
    assert_eq!(status, 201, "{invoice}");
    assert!(invoice["invoice"]
        .as_str()
        .expect("bolt11")
        .starts_with("lnbcrt"));
    let (status, pending) = get(&format!(
        "/api/deposits/{}",
        invoice["payment_hash"].as_str().expect("hash")
    ));
    assert_eq!(status, 200);
    assert_eq!(pending["minted"], 0);

    // Redemptions: garbage 400, forged 401, another kind 400, refused 422 with the reason,
    // and the same request again 409.
    let redeem = |body: String| post_to("/api/redemptions", body, None);
    assert_eq!(redeem("[]".into()).0, 400);
    let request = moip::actions::RedeemRequest {
        amount: 1_000,
        invoice: invoice["invoice"].as_str().expect("bolt11").to_owned(),
    };
    let event = moip::actions::redeem_builder("from-the-environment", &request, now)
        .sign_with_keys(&keys)
        .expect("sign");
    let json = nostr_sdk::JsonUtil::as_json(&event);
    let mut forged: serde_json::Value = serde_json::from_str(&json).expect("json");
    forged["content"] = json!("{}");
    assert_eq!(redeem(forged.to_string()).0, 401);
    assert_eq!(redeem(nostr_sdk::JsonUtil::as_json(&signed)).0, 400);
    let (status, e) = redeem(json.clone());
    assert_eq!(status, 422, "{e}");
    assert!(!e["error"].as_str().expect("reason").is_empty());
    assert_eq!(redeem(json).0, 409);

    // Pairing needs the operator: none 401, wrong 403; then an NWC URI and a beacon.
    let nwc = json!({"name": "phone", "budget_sat": 10_000}).to_string();
    assert_eq!(post_to("/api/pairing/nwc", nwc.clone(), None).0, 401);
    assert_eq!(
        post_to("/api/pairing/nwc", nwc.clone(), Some("wrong")).0,
        403
    );
    let (status, uri) = post_to("/api/pairing/nwc", nwc, Some(operator));
    assert_eq!(status, 200, "{uri}");
    assert!(uri["uri"]
        .as_str()
        .expect("uri")
        .starts_with("nostr+walletconnect://"));
    assert_eq!(
        post_to("/api/pairing/beacon", "{}".into(), Some("wrong")).0,
        403
    );
    let (status, beacon) = post_to("/api/pairing/beacon", "{}".into(), Some(operator));
    assert_eq!(status, 200, "{beacon}");
    assert!(beacon["uri"]
        .as_str()
        .expect("beacon")
        .starts_with("moneysocket1"));
    let (_, node) = get("/api/node");
    assert_eq!(node["nwc_connections"], 1);

    // Bodies over the limit are refused before they are read.
    assert_eq!(
        post_to("/api/deposits", "x".repeat(moip::api::MAX_BODY + 1), None).0,
        413
    );

    // The dashboard's pages answer, and an unknown one is a page saying so.
    for (path, status) in [
        ("/", 200),
        ("/tasks", 200),
        ("/node", 200),
        ("/pair", 200),
        ("/nope", 404),
    ] {
        let response = agent.get(format!("{base}{path}")).call().expect("page");
        assert_eq!(response.status().as_u16(), status, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(
            header("content-security-policy"),
            moip::web::CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    }
    check_nip07_login(base, &keys);
}

/// A NIP-07 signer logs in by signing a fresh challenge, once; an unsigned form action, a
/// stale challenge or another key's signature is refused.
fn check_nip07_login(base: &str, keys: &nostr_sdk::Keys) {
    // Cookies are handled by hand: the agent keeps none.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let form = agent
        .post(format!("{base}/act"))
        .content_type("application/x-www-form-urlencoded")
        .send("action=claim&task=x&csrf=nope")
        .expect("act");
    assert_eq!(form.status().as_u16(), 401, "no session, no action");

    let challenge = |agent: &ureq::Agent| -> String {
        let text = agent
            .post(format!("{base}/login/challenge"))
            .send("{}")
            .expect("challenge")
            .body_mut()
            .read_to_string()
            .expect("body");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v["challenge"].as_str().expect("challenge").to_owned()
    };
    let signed = |challenge: &str| {
        nostr_sdk::EventBuilder::new(nostr_sdk::Kind::from(22_242), "")
            .tags([nostr_sdk::Tag::custom(
                nostr_sdk::TagKind::custom("challenge"),
                [challenge],
            )])
            .sign_with_keys(keys)
            .expect("sign")
    };
    let login = |event: &nostr_sdk::Event| {
        agent
            .post(format!("{base}/login/nip07"))
            .send(nostr_sdk::JsonUtil::as_json(event))
            .expect("login")
    };
    let c = challenge(&agent);
    let event = signed(&c);
    let response = login(&event);
    assert_eq!(response.status().as_u16(), 200);
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("name=value").to_owned();
    let mut wallet = agent
        .get(format!("{base}/wallet"))
        .header("Cookie", &session)
        .call()
        .expect("wallet");
    let page = wallet.body_mut().read_to_string().expect("page");
    assert!(
        page.contains(&keys.public_key().to_hex()),
        "the member's own wallet"
    );
    assert!(
        page.contains("data-signer=\"nip07\""),
        "actions signed in the browser"
    );
    assert_eq!(
        login(&event).status().as_u16(),
        401,
        "a challenge serves once"
    );
    let forged = signed("not-a-challenge-the-node-made");
    assert_eq!(login(&forged).status().as_u16(), 401);
}

/// With `--bitcoind-rpc`, `moip up` runs over the user's node (here `moip node`, which speaks
/// bitcoind's RPC): no embedded chain and no RPC of its own, no mining, and the Electrum
/// server and the status page follow the user's chain.
#[test]
fn up_runs_over_a_users_bitcoind() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().expect("tempdir");
    let bitcoind = NodeProcess::start(&dir.path().join("bitcoind"));
    let start = bitcoind.height();
    let config = dir.path().join("moip.toml");
    std::fs::write(
        &config,
        "mine_every_secs = 1\n[ports]\nrpc = 0\nelectrum_tcp = 0\nelectrum_ws = 0\nlightning = 0\n\
         moneysocket = 0\nnostr = 0\napi = 0\n",
    )
    .expect("write settings");
    let mut up = Command::new(env!("CARGO_BIN_EXE_moip"))
        .arg("up")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("node"))
        .args([
            "--bitcoind-rpc",
            &bitcoind.url,
            "--bitcoind-user",
            &bitcoind.user,
        ])
        .env("MOIP_BITCOIND_PASSWORD", &bitcoind.password)
        .env("MOIP_PASSWORD", "correct horse")
        .env("MOIP_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn moip up");
    let stdout = up.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    // Read to the end, so the process never writes to a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(WAIT)
            .expect("moip up printed its endpoints");
        let ready = line.starts_with("moip up: ready in");
        lines.push(line);
        if ready {
            break;
        }
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("RPC and REST:")),
        "no RPC of its own: {lines:?}"
    );
    assert!(lines
        .iter()
        .any(|l| l == &format!("  bitcoind: {}", bitcoind.url)));
    let value = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{prefix} in {lines:?}"))
            .to_owned()
    };
    let base = value("  dashboard: ").trim_end_matches('/').to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let height = || -> u64 {
        let text = agent
            .get(format!("{base}/api/node"))
            .call()
            .expect("node")
            .body_mut()
            .read_to_string()
            .expect("body");
        let node: serde_json::Value = serde_json::from_str(&text).expect("json");
        node["height"].as_u64().expect("height")
    };
    assert_eq!(height(), start);
    bitcoind.call("generatetoaddress", json!([3, common::BURN_ADDRESS]));
    let mut electrum =
        ElectrumClient::connect(socket_addr(&value("  electrum tcp: ")), "1.4", WAIT);
    wait_until(WAIT, "Electrum at the user's tip", || {
        let tip = electrum.ok("blockchain.headers.subscribe", json!([]));
        (tip["height"].as_u64() == Some(start + 3)).then_some(())
    });
    assert_eq!(height(), start + 3, "the node mined nothing of its own");

    stop_with_sigterm(&mut up);
}

/// The node commits the supply root from its operations wallet (funded when the regtest chain
/// was new) and checks the confirmed commitment against the guardians' collateral, from the
/// chain alone; each member's balance comes with its proof against the root.
fn check_supply_commitment(base: &str, operator: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let get = |path: &str| {
        let mut response = agent.get(format!("{base}{path}")).call().expect("get");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("body");
        let body: serde_json::Value = serde_json::from_str(&text).expect("json");
        (status, body)
    };
    let (supply, last) = wait_until(WAIT, "a commitment checked from the chain", || {
        let (_, supply) = get("/api/supply");
        let last = supply["commitments"].as_array()?.last()?.clone();
        (last["covered"] == true).then_some((supply, last))
    });
    assert_eq!(last["root"], supply["root"], "{supply}");
    assert_eq!(last["sum"], 0);
    assert!(
        last["confirmed_at"].as_u64() > last["made_at"].as_u64(),
        "{last}"
    );
    let command = supply["verify_with"]
        .as_str()
        .expect("a command to check it");
    assert!(
        command.contains(last["txid"].as_str().expect("txid")),
        "{command}"
    );
    let mut overview = agent.get(format!("{base}/")).call().expect("overview");
    let page = overview.body_mut().read_to_string().expect("page");
    assert!(
        page.contains(last["txid"].as_str().expect("txid")),
        "the overview shows it"
    );

    // A proof shows the balance: to its owner and the operator only.
    assert_eq!(get(&format!("/api/proof/{}", "4f".repeat(32))).0, 403);
    let mut response = agent
        .get(format!("{base}/api/proof/{}", "4f".repeat(32)))
        .header("Authorization", &format!("Bearer {operator}"))
        .call()
        .expect("get");
    assert_eq!(response.status().as_u16(), 200);
    let proof: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().expect("body")).expect("json");
    assert_eq!(proof["leaf_sum"], 0);
    assert_eq!(proof["root"], supply["root"]);
    assert_eq!(get("/api/proof/nope").0, 400);
}

/// With `--database postgres://…` the application's state lives in PostgreSQL — the ledger's
/// journal, the Work log, the deposit book, the record of supply commitments and the NWC
/// connections: none of it in the data directory, and a restart reads it all back from the
/// database.
#[test]
fn up_keeps_the_application_state_in_postgresql() {
    let pg = moip_testkit::postgres::TempPostgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let founder = nostr_sdk::Keys::generate();
    let config = dir.path().join("moip.toml");
    std::fs::write(
        &config,
        format!(
            "mine_every_secs = 0\n[ports]\nrpc = 0\nelectrum_tcp = 0\nelectrum_ws = 0\n\
             lightning = 0\nmoneysocket = 0\nnostr = 0\napi = 0\n[community]\nid = \"mill\"\n\
             founders = [\"{}\"]\n",
            founder.public_key().to_hex()
        ),
    )
    .expect("write settings");
    let data_dir = dir.path().join("node");
    let args = [
        "up".to_owned(),
        "--config".into(),
        config.display().to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ];
    let url = pg.url();
    let envs = [
        ("MOIP_PASSWORD", "correct horse"),
        ("MOIP_DATABASE", url.as_str()),
    ];
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let get = |base: &str, path: &str| -> (u16, serde_json::Value) {
        let mut response = agent.get(format!("{base}{path}")).call().expect("get");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("body");
        (status, serde_json::from_str(&text).expect("json"))
    };
    let last_seq = |base: &str| {
        get(base, "/api/community").1["last_seq"]
            .as_u64()
            .expect("last_seq")
    };
    let nwc_apps = |base: &str| get(base, "/api/node").1["nwc_connections"].as_u64();
    let commitments = |base: &str| get(base, "/api/supply").1["commitments"].clone();

    let (mut node, lines) =
        NodeProcess::spawn_with_env(&args, &envs, &data_dir, &["  database: ", "  dashboard: "]);
    assert!(lines[0].contains("dbname="), "{}", lines[0]);
    let base = lines[1].trim_end_matches('/').to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let vouch = moip_work::events::Message::Vouch {
        subject: moip::actions::parse_key(&"4f".repeat(32)).expect("key"),
    };
    let event = moip_work::events::encode(&founder, "mill", &vouch, now).expect("sign");
    let response = agent
        .post(format!("{base}/api/events"))
        .send(nostr_sdk::JsonUtil::as_json(&event))
        .expect("post");
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(last_seq(&base), 1);
    // A deposit invoice, an NWC app, and the first supply commitment (made at start).
    let operator = std::fs::read_to_string(data_dir.join("api.token")).expect("operator token");
    let mut response = agent
        .post(format!("{base}/api/deposits"))
        .header("Authorization", &format!("Bearer {}", operator.trim()))
        .send(json!({"pubkey": "4f".repeat(32), "sats": 5_000}).to_string())
        .expect("deposit");
    assert_eq!(response.status().as_u16(), 201);
    let deposit: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().expect("body")).expect("json");
    let hash = deposit["payment_hash"].as_str().expect("hash").to_owned();
    let response = agent
        .post(format!("{base}/api/pairing/nwc"))
        .header("Authorization", &format!("Bearer {}", operator.trim()))
        .send(json!({"name": "till", "budget_sat": 1_000}).to_string())
        .expect("pair");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(nwc_apps(&base), Some(1));
    let committed = wait_until(WAIT, "the first supply commitment", || {
        let records = commitments(&base);
        (records.as_array()?.len() == 1).then_some(records)
    });
    stop_with_sigterm(&mut node.child);

    for file in [
        "ledger.sqlite",
        "work.sqlite",
        "deposits.json",
        "nwc-connections.json",
        "operations/commitments.json",
    ] {
        assert!(!data_dir.join(file).exists(), "{file} is in the data dir");
    }
    let mut db = moip_assets::ledger::PgClient::connect(&url).expect("connect");
    let count = |db: &mut moip_assets::ledger::PgClient, sql: &str| -> i64 {
        db.query_one(sql, &[&"mill"]).expect("query").get(0)
    };
    assert!(
        count(
            &mut db,
            "SELECT count(*) FROM moip_journal WHERE ledger = $1"
        ) >= 1
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM moip_work_log WHERE community = $1"
        ),
        1
    );
    let names: Vec<String> = db
        .query(
            "SELECT name FROM moip_state WHERE community = $1 ORDER BY name",
            &[&"mill"],
        )
        .expect("query")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        names,
        [
            "deposits.json",
            "nwc-connections.json",
            "operations/commitments.json"
        ]
    );
    drop(db);

    let (mut node, lines) =
        NodeProcess::spawn_with_env(&args, &envs, &data_dir, &["  dashboard: "]);
    let base = lines[0].trim_end_matches('/');
    assert_eq!(last_seq(base), 1, "read back from the database");
    let (status, book) = get(base, &format!("/api/deposits/{hash}"));
    assert_eq!((status, &book["sats"]), (200, &json!(5_000)), "{book}");
    assert_eq!(nwc_apps(base), Some(1));
    assert_eq!(commitments(base)[0]["txid"], committed[0]["txid"]);
    stop_with_sigterm(&mut node.child);
}
