//! Alby's JS SDK (`@getalby/sdk`, the client most NWC apps are written with) against the NWC
//! service: real ldk-nodes on the embedded regtest chain, an in-process Nostr relay, and the
//! SDK's `NWCClient` in Node, driven line by line through `tests/alby/alby.mjs`. Every method
//! the service offers, its notifications, and its errors as the SDK's typed `Nip47WalletError`.
//!
//! Node and the SDK come from `make test` (Debian's `nodejs`/`npm`, then `npm ci` in
//! `tests/alby`); `MOIP_NODE` may name another `node`. Without them the test fails, unless
//! `MOIP_SKIP_ALBY` is set (the Makefile never sets it).

mod common;

use common::{relay, runtime};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moip_lightning::{PaymentHash, PaymentState, Preimage, RouteLimits};
use moip_nwc::{get_info_methods, Budget, NwcConfig, NwcService, Renewal, METHODS, NOTIFICATIONS};
use nostr_sdk::Keys;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(90);

/// The Node project: `alby.mjs`, its lock and (after `npm ci`) its `node_modules`.
fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/alby")
}

/// `node` and the SDK's version, or why they cannot be used.
fn node_and_sdk() -> Result<(PathBuf, String), String> {
    let node = std::env::var_os("MOIP_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("node"));
    let version = Command::new(&node)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} does not run ({e})", node.display()))?;
    if !version.status.success() {
        return Err(format!("{} --version failed", node.display()));
    }
    let read = |path: PathBuf| -> Result<Value, String> {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{} is missing ({e})", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let pinned = read(project().join("package.json"))?["dependencies"]["@getalby/sdk"].clone();
    let installed =
        read(project().join("node_modules/@getalby/sdk/package.json"))?["version"].clone();
    if installed != pinned {
        return Err(format!(
            "node_modules has @getalby/sdk {installed}, package.json pins {pinned}"
        ));
    }
    Ok((node, installed.as_str().unwrap_or_default().to_string()))
}

/// The SDK in a Node process: one JSON command a line in, one JSON line out per command,
/// notifications in between.
struct Alby {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Value>,
    notifications: Vec<Value>,
    next_id: u64,
}

impl Alby {
    fn start(node: &Path, uri: &str) -> Alby {
        let mut child = Command::new(node)
            .arg("alby.mjs")
            .current_dir(project())
            .env("NWC_URI", uri)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node alby.mjs");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("alby.mjs printed {line:?}: {e}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Alby {
            child,
            stdin,
            lines,
            notifications: Vec::new(),
            next_id: 1,
        }
    }

    /// The next line before `deadline`; None when it passes. Panics when Node has exited.
    fn next_line(&mut self, deadline: Instant, waiting_for: &str) -> Option<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().expect("wait");
                panic!("alby.mjs exited ({status}) while waiting for {waiting_for}")
            }
        }
    }

    /// Sends a command and returns its answer line: `{"id", "result"}` or `{"id", "error"}`.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let command = json!({ "id": id, "method": method, "params": params });
        writeln!(self.stdin, "{command}").expect("write to alby.mjs");
        self.stdin.flush().expect("flush");
        let deadline = Instant::now() + WAIT;
        loop {
            let line = self
                .next_line(deadline, method)
                .unwrap_or_else(|| panic!("no answer to {method} from the SDK within {WAIT:?}"));
            if line.get("notification").is_some() {
                self.notifications.push(line);
            } else if line["id"] == json!(id) {
                return line;
            } else {
                panic!("answer to another command: {line}");
            }
        }
    }

    /// The SDK's result for `method`; panics with the SDK's error.
    fn ok(&mut self, method: &str, params: Value) -> Value {
        let line = self.call(method, params);
        match line.get("error") {
            Some(error) => panic!("{method}: the SDK threw {error}"),
            None => line["result"].clone(),
        }
    }

    /// The SDK's error for `method`: (class, NIP-47 code); panics when it succeeds.
    fn err(&mut self, method: &str, params: Value) -> (String, String) {
        let line = self.call(method, params);
        let error = match line.get("error") {
            Some(error) => error,
            None => panic!("{method}: expected an error, the SDK returned {line}"),
        };
        let text = |k: &str| error[k].as_str().unwrap_or_default().to_string();
        (text("class"), text("code"))
    }

    /// The first notification of `kind` for `payment_hash` the SDK passed on, within WAIT.
    fn notification(&mut self, kind: &str, payment_hash: &str) -> Value {
        let matches = |n: &Value| {
            n["notification"]["notification_type"] == json!(kind)
                && n["notification"]["notification"]["payment_hash"] == json!(payment_hash)
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.notifications.iter().position(matches) {
                return self.notifications.remove(i)["notification"]["notification"].clone();
            }
            match self.next_line(deadline, kind) {
                Some(line) if line.get("notification").is_some() => self.notifications.push(line),
                Some(line) => panic!("a line nobody asked for: {line}"),
                None => panic!(
                    "no {kind} notification for {payment_hash} in the SDK within {WAIT:?}; \
                     it passed on {:?}",
                    self.notifications
                ),
            }
        }
    }
}

impl Drop for Alby {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hash_of(preimage: &Value) -> String {
    let preimage: Preimage = preimage
        .as_str()
        .unwrap_or_else(|| panic!("no preimage: {preimage}"))
        .parse()
        .expect("hex preimage");
    preimage.payment_hash().to_string()
}

#[test]
fn albys_js_sdk_uses_every_method_and_notification_of_the_service() {
    let (node, sdk_version) = match node_and_sdk() {
        Ok(found) => found,
        Err(why) if std::env::var_os("MOIP_SKIP_ALBY").is_some() => {
            eprintln!("skipped (MOIP_SKIP_ALBY is set): {why}");
            return;
        }
        Err(why) => panic!(
            "Node or Alby's SDK is not usable: {why}. Run `make test` (it installs nodejs and \
             npm and runs `npm ci` in crates/nwc/tests/alby), or set MOIP_NODE to a `node`, \
             or MOIP_SKIP_ALBY=1 to skip this test"
        ),
    };
    eprintln!("{} with @getalby/sdk {sdk_version}", node.display());

    let (_env, _root, wallet, shop) = common::wallet_and_shop();
    let rt = runtime();

    let (relay, relay_url) = relay(&rt);
    let service = rt
        .block_on(NwcService::start(
            Arc::new(wallet.clone()),
            Keys::generate(),
            NwcConfig::new(vec![relay_url.to_string()]),
        ))
        .expect("service");
    let budget = Budget {
        limit_msat: 100_000_000,
        renewal: Renewal::Daily,
    };
    let uri = service
        .connect_app("alby", Some(budget), None)
        .expect("connect");
    let mut alby = Alby::start(&node, &uri.to_string());

    // The info event the SDK reads to choose its encryption: NIP-44 v2, and what is offered.
    let info = alby.ok("get_wallet_service_info", json!({}));
    assert!(info["encryptions"]
        .as_array()
        .expect("encryptions")
        .contains(&json!("nip44_v2")));
    // (METHODS as JSON: the NIP-47 names.)
    let methods = json!(METHODS);
    for method in methods.as_array().expect("methods") {
        assert!(
            info["capabilities"]
                .as_array()
                .expect("capabilities")
                .contains(method),
            "{method} missing from {info}"
        );
    }
    assert_eq!(info["notifications"], json!(NOTIFICATIONS));

    let info = alby.ok("get_info", json!({}));
    assert_eq!(
        info["pubkey"],
        json!(wallet.node_id().to_string()),
        "{info}"
    );
    assert_eq!(info["network"], json!("regtest"), "{info}");
    // get_info names the methods rust-nostr's client can read (not get_budget).
    assert_eq!(info["methods"], json!(get_info_methods(&METHODS)), "{info}");
    assert_eq!(info["notifications"], json!(NOTIFICATIONS), "{info}");

    // The balance an app is told is what its budget leaves it.
    let balance = alby.ok("get_balance", json!({}));
    assert_eq!(balance["balance"], json!(100_000_000), "{balance}");

    // Receive: the SDK makes an invoice, the shop pays it, the SDK is told and looks it up.
    // The subscription is sent on the connection before the next request, so the relay has it
    // before the invoice exists.
    assert_eq!(alby.ok("subscribe_notifications", json!({})), json!(true));
    let made = alby.ok(
        "make_invoice",
        json!({ "amount": 20_000_000, "description": "coffee" }),
    );
    assert_eq!(made["amount"], json!(20_000_000), "{made}");
    assert_eq!(made["type"], json!("incoming"), "{made}");
    assert_eq!(made["state"], json!("pending"), "{made}");
    assert_eq!(made["description"], json!("coffee"), "{made}");
    let made_hash = made["payment_hash"].as_str().expect("hash").to_string();
    let bolt11 = made["invoice"].as_str().expect("invoice");
    let outcome = shop
        .pay(bolt11, None, RouteLimits::default(), WAIT)
        .expect("the shop pays the SDK's invoice");
    let shop_preimage = outcome.preimage.expect("preimage");
    assert_eq!(shop_preimage.payment_hash().to_string(), made_hash);

    let received = alby.notification("payment_received", &made_hash);
    assert_eq!(received["amount"], json!(20_000_000), "{received}");
    assert_eq!(received["type"], json!("incoming"), "{received}");
    assert_eq!(received["description"], json!("coffee"), "{received}");
    assert_eq!(
        received["preimage"],
        json!(shop_preimage.to_string()),
        "{received}"
    );

    let looked_up = alby.ok("lookup_invoice", json!({ "payment_hash": made_hash }));
    assert_eq!(looked_up["state"], json!("settled"), "{looked_up}");
    assert_eq!(looked_up["type"], json!("incoming"), "{looked_up}");
    assert_eq!(looked_up["amount"], json!(20_000_000), "{looked_up}");
    assert_eq!(looked_up["invoice"], json!(bolt11), "{looked_up}");
    assert_eq!(hash_of(&looked_up["preimage"]), made_hash);
    let by_invoice = alby.ok("lookup_invoice", json!({ "invoice": bolt11 }));
    assert_eq!(by_invoice["payment_hash"], json!(made_hash), "{by_invoice}");

    // Pay: the preimage the SDK returns is the shop's, and the SDK is told it was sent.
    let tea = shop
        .create_invoice(Some(30_000_000), "tea", 3600)
        .expect("invoice");
    let tea_hash = tea.payment_hash.to_string();
    let paid = alby.ok("pay_invoice", json!({ "invoice": tea.bolt11 }));
    assert_eq!(hash_of(&paid["preimage"]), tea_hash, "{paid}");
    assert!(paid["fees_paid"].is_u64(), "{paid}");
    shop.wait_for(WAIT, "the shop to be paid", |n| {
        (n.payment_by_hash(tea.payment_hash)?.state == PaymentState::Succeeded).then_some(())
    })
    .expect("paid");
    let sent = alby.notification("payment_sent", &tea_hash);
    assert_eq!(sent["amount"], json!(30_000_000), "{sent}");
    assert_eq!(sent["type"], json!("outgoing"), "{sent}");
    assert_eq!(sent["preimage"], paid["preimage"], "{sent}");

    // The payment the SDK just made, looked up by payment_hash and by invoice: the SDK
    // accepts the answer only with the invoice paid in it.
    let tea_paid = alby.ok("lookup_invoice", json!({ "payment_hash": tea_hash }));
    assert_eq!(tea_paid["type"], json!("outgoing"), "{tea_paid}");
    assert_eq!(tea_paid["state"], json!("settled"), "{tea_paid}");
    assert_eq!(tea_paid["invoice"], json!(tea.bolt11), "{tea_paid}");
    assert_eq!(tea_paid["preimage"], paid["preimage"], "{tea_paid}");
    let tea_by_invoice = alby.ok("lookup_invoice", json!({ "invoice": tea.bolt11 }));
    assert_eq!(
        tea_by_invoice["payment_hash"],
        json!(tea_hash),
        "{tea_by_invoice}"
    );
    assert_eq!(
        tea_by_invoice["invoice"],
        json!(tea.bolt11),
        "{tea_by_invoice}"
    );

    // What is left of the budget: 100k sat less the tea and its fee.
    let spent = service.connections()[0].spent_msat;
    assert!((30_000_000..31_000_000).contains(&spent), "{spent}");
    let balance = alby.ok("get_balance", json!({}));
    assert_eq!(balance["balance"], json!(100_000_000 - spent), "{balance}");

    // The history: both payments, as the SDK reads them.
    let listed = alby.ok("list_transactions", json!({}));
    let transactions = listed["transactions"].as_array().expect("transactions");
    let find = |hash: &str| {
        transactions
            .iter()
            .find(|t| t["payment_hash"] == json!(hash))
            .unwrap_or_else(|| panic!("{hash} not in {listed}"))
    };
    let coffee = find(&made_hash);
    assert_eq!(coffee["type"], json!("incoming"), "{coffee}");
    assert_eq!(coffee["state"], json!("settled"), "{coffee}");
    assert_eq!(coffee["amount"], json!(20_000_000), "{coffee}");
    let tea_listed = find(&tea_hash);
    assert_eq!(tea_listed["type"], json!("outgoing"), "{tea_listed}");
    assert_eq!(tea_listed["state"], json!("settled"), "{tea_listed}");
    assert_eq!(tea_listed["amount"], json!(30_000_000), "{tea_listed}");
    assert_eq!(tea_listed["invoice"], json!(tea.bolt11), "{tea_listed}");
    assert_eq!(tea_listed["preimage"], paid["preimage"], "{tea_listed}");
    let incoming = alby.ok("list_transactions", json!({ "type": "incoming" }));
    let hashes: Vec<&Value> = incoming["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .map(|t| &t["payment_hash"])
        .collect();
    assert_eq!(hashes, [&json!(made_hash)], "{incoming}");

    // Hold invoices: the SDK is told when the shop's payment is held, then settles or cancels.
    for settle in [true, false] {
        let secret = Preimage::random();
        let hash: PaymentHash = secret.payment_hash();
        let held = alby.ok(
            "make_hold_invoice",
            json!({ "amount": 15_000_000, "description": "escrow", "payment_hash": hash.to_string() }),
        );
        assert_eq!(held["payment_hash"], json!(hash.to_string()), "{held}");
        assert_eq!(held["amount"], json!(15_000_000), "{held}");
        let invoice = held["invoice"].as_str().expect("invoice").to_string();
        let payer = shop.clone();
        let paying =
            std::thread::spawn(move || payer.pay(&invoice, None, RouteLimits::default(), WAIT));
        let accepted = alby.notification("hold_invoice_accepted", &hash.to_string());
        assert_eq!(accepted["amount"], json!(15_000_000), "{accepted}");
        if settle {
            alby.ok(
                "settle_hold_invoice",
                json!({ "preimage": secret.to_string() }),
            );
        } else {
            alby.ok(
                "cancel_hold_invoice",
                json!({ "payment_hash": hash.to_string() }),
            );
        }
        let outcome = paying.join().expect("payer thread");
        if settle {
            assert_eq!(outcome.expect("settled").preimage, Some(secret));
        } else {
            assert!(
                outcome.is_err(),
                "a cancelled hold invoice fails the payment"
            );
        }
    }

    // An invoice without an amount, paid with the amount the SDK gives.
    let tip = shop.create_invoice(None, "tip", 3600).expect("invoice");
    let paid_tip = alby.ok(
        "pay_invoice",
        json!({ "invoice": tip.bolt11, "amount": 5_000_000 }),
    );
    assert_eq!(hash_of(&paid_tip["preimage"]), tip.payment_hash.to_string());
    let tip_record = shop
        .payment_by_hash(tip.payment_hash)
        .expect("the shop's record");
    assert_eq!(tip_record.amount_msat, Some(5_000_000));

    // Errors come back as the SDK's Nip47WalletError with NIP-47's code.
    let cake = shop
        .create_invoice(Some(80_000_000), "cake", 3600)
        .expect("invoice");
    assert_eq!(
        alby.err("pay_invoice", json!({ "invoice": cake.bolt11 })),
        ("Nip47WalletError".into(), "QUOTA_EXCEEDED".into())
    );
    assert_ne!(
        shop.payment_by_hash(cake.payment_hash).map(|p| p.state),
        Some(PaymentState::Succeeded)
    );
    assert_eq!(
        alby.err("pay_invoice", json!({ "invoice": "lnbcrt1notaninvoice" })),
        ("Nip47WalletError".into(), "OTHER".into())
    );
    let unknown = Preimage::random().payment_hash().to_string();
    assert_eq!(
        alby.err("lookup_invoice", json!({ "payment_hash": unknown })),
        ("Nip47WalletError".into(), "NOT_FOUND".into())
    );

    // Revoked: the SDK's next request is UNAUTHORIZED.
    let app_key = Keys::new(uri.secret.clone()).public_key();
    service.revoke(&app_key).expect("revoke");
    assert_eq!(
        alby.err("get_balance", json!({})),
        ("Nip47WalletError".into(), "UNAUTHORIZED".into())
    );

    drop(alby);
    rt.block_on(service.shutdown());
    relay.shutdown();
    wallet.stop().expect("stop");
    shop.stop().expect("stop");
}
