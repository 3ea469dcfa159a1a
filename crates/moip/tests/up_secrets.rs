//! Secrets never reach a log. `moip up` runs with every log at `trace`; a local user logs in and
//! acts, a deposit invoice is made, the operator logs in to the dashboard and pairs apps there
//! and over the API, and the operator's login is tried with a wrong token. Then every secret the
//! node holds or hands out — the node's and the user's passwords, each sealed seed (as words, as
//! entropy, and as the Nostr key made from it), the operator's token, the RPC cookie, the session
//! cookies and CSRF tokens the dashboard gave, the NWC secret, the beacons and their shared seeds
//! and AES keys — is looked for in everything the process wrote: its output, its error stream
//! and every log file under the data directory (the Lightning node's log must be among them).
//!
//! Each secret is looked for in every form a careless log line could give it: as it is (and in
//! upper and lower case), URL-encoded (RFC 3986, `encodeURIComponent`, form encoding, with
//! upper- or lower-case escapes), base64 (standard and URL-safe, padded or not, and at any
//! alignment, so a secret inside a larger encoded blob such as a `Basic` header is found), hex
//! (lower and upper), and for secrets that are hex themselves, their bytes in all those forms
//! and as Rust prints a byte array (`[12, 34, …]`).

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use bitcoin::hashes::{sha256, Hash as _};
use common::wait_until;
use moip_wallet::keystore::SeedFile;
use nostr_sdk::ToBech32;

const WAIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "correct horse battery staple";
const USER_PASSWORD: &str = "ana's own passphrase";

/// The log files `moip up` must have written under its data directory: a secret scan that
/// finds one of them missing has not looked where it should.
const EXPECTED_LOGS: &[&str] = &["ln/ldk/ldk_node.log"];

/// The ways a sealed seed could leak: its words, its entropy, the Nostr key made from it.
fn seed_secrets(path: &Path, password: &str) -> Vec<String> {
    let mnemonic =
        SeedFile::open(path, password).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let entropy = mnemonic.to_entropy();
    let nostr = sha256::Hash::hash(&entropy).to_string();
    let nsec = nostr_sdk::Keys::parse(&nostr)
        .expect("key")
        .secret_key()
        .to_bech32()
        .expect("nsec");
    vec![mnemonic.to_string(), hex(&entropy), nostr, nsec]
}

/// A beacon's secrets: the beacon as given, its shared seed and the AES key derived from it.
fn beacon_secrets(beacon: &str) -> Vec<String> {
    let decoded = moip_moneysocket::v0::beacon::Beacon::from_bech32(&beacon.to_lowercase())
        .unwrap_or_else(|e| panic!("beacon {beacon:.12}…: {e}"));
    let seed = decoded.shared_seed;
    let key = moip_moneysocket::v0::seed::derive_aes_key(&seed);
    vec![beacon.to_owned(), seed.to_hex(), hex(key.as_bytes())]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of `s` when it is hex (an even number of hex digits).
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// `bytes` percent-encoded: bytes `keep` accepts stay, a space becomes `space`, every other byte
/// `%XX` (in upper- or lower-case hex).
fn percent(bytes: &[u8], keep: impl Fn(u8) -> bool, space: &str, upper: bool) -> String {
    let mut out = String::new();
    for &b in bytes {
        if keep(b) {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push_str(space);
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The base64 characters that depend on `bytes` alone when they start `offset` bytes into an
/// encoded stream (offset 0, 1, 2 cover every alignment): whatever precedes or follows them,
/// an encoding of a stream holding `bytes` at such an offset contains this text. At offset 0
/// it is the whole encoding without its last partial character and padding, so it is found in
/// the padded and the unpadded form alike.
fn base64_core(engine: &impl base64::Engine, bytes: &[u8], offset: usize) -> String {
    let mut stream = vec![0u8; offset];
    stream.extend_from_slice(bytes);
    let encoded = engine.encode(&stream);
    let first = (8 * offset).div_ceil(6);
    let end = (8 * (offset + bytes.len())) / 6;
    encoded[first..end].to_owned()
}

/// Every form of `bytes` the scan looks for, by name.
fn byte_forms(bytes: &[u8], what: &str, forms: &mut Vec<(String, Vec<u8>)>) {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    let uri_component = |b: u8| b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b);
    let form = |b: u8| b.is_ascii_alphanumeric() || b"*-._".contains(&b);
    forms.push((format!("{what}raw"), bytes.to_vec()));
    for upper in [true, false] {
        let case = if upper { "upper" } else { "lower" };
        for (name, text) in [
            ("percent", percent(bytes, unreserved, "%20", upper)),
            (
                "encodeURIComponent",
                percent(bytes, uri_component, "%20", upper),
            ),
            ("form", percent(bytes, form, "+", upper)),
        ] {
            forms.push((format!("{what}{name} ({case} escapes)"), text.into_bytes()));
        }
    }
    for offset in 0..3 {
        forms.push((
            format!("{what}base64 (at offset {offset})"),
            base64_core(&STANDARD_NO_PAD, bytes, offset).into_bytes(),
        ));
        forms.push((
            format!("{what}URL-safe base64 (at offset {offset})"),
            base64_core(&URL_SAFE_NO_PAD, bytes, offset).into_bytes(),
        ));
    }
    forms.push((format!("{what}hex"), hex(bytes).into_bytes()));
    forms.push((
        format!("{what}upper-case hex"),
        hex(bytes).to_uppercase().into_bytes(),
    ));
    forms.push((
        format!("{what}Debug bytes"),
        format!("{bytes:?}").into_bytes(),
    ));
}

/// Every form of the secret `s` the scan looks for: its text's and, when it is hex, its bytes'.
fn secret_forms(s: &str) -> Vec<(String, Vec<u8>)> {
    let mut forms = Vec::new();
    byte_forms(s.as_bytes(), "", &mut forms);
    forms.push(("upper case".into(), s.to_uppercase().into_bytes()));
    forms.push(("lower case".into(), s.to_lowercase().into_bytes()));
    if let Some(bytes) = unhex(s) {
        byte_forms(&bytes, "its bytes as ", &mut forms);
    }
    let mut seen = HashSet::new();
    forms.retain(|(_, form)| seen.insert(form.clone()));
    forms
}

/// What was found: (secret's label, form, log), for each needle found in a log.
struct Scan {
    /// Each needle with its secret's label and form's name.
    needles: Vec<(Vec<u8>, String, String)>,
    /// The needles by their first `KEY` bytes.
    by_key: HashMap<[u8; KEY], Vec<usize>>,
}

/// Length of the index key; every needle is at least this long.
const KEY: usize = 8;

impl Scan {
    fn new(secrets: &[(String, String)]) -> Scan {
        let mut needles = Vec::new();
        let mut by_key: HashMap<[u8; KEY], Vec<usize>> = HashMap::new();
        for (label, secret) in secrets {
            assert!(
                secret.len() >= 12,
                "{label} is too short to look for ({} bytes)",
                secret.len()
            );
            for (form, needle) in secret_forms(secret) {
                assert!(needle.len() >= KEY, "{label} as {form} is too short");
                let key: [u8; KEY] = needle[..KEY].try_into().expect("key");
                by_key.entry(key).or_default().push(needles.len());
                needles.push((needle, label.clone(), form));
            }
        }
        Scan { needles, by_key }
    }

    /// Every (secret, form) found in `log`.
    fn find(&self, log: &[u8]) -> Vec<(String, String)> {
        let mut found = Vec::new();
        if log.len() < KEY {
            return found;
        }
        for at in 0..=log.len() - KEY {
            let key: [u8; KEY] = log[at..at + KEY].try_into().expect("key");
            if let Some(candidates) = self.by_key.get(&key) {
                for &i in candidates {
                    let (needle, label, form) = &self.needles[i];
                    if log[at..].starts_with(needle) {
                        found.push((label.clone(), form.clone()));
                    }
                }
            }
        }
        found
    }
}

/// Every log file under `dir`: `*.log` (with rotations such as `x.log.1`), and RocksDB's `LOG`
/// and `LOG.old.*`.
fn log_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.expect("entry");
        let path = entry.path();
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            log_files(&path, out);
        } else if kind.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".log")
                || name.contains(".log.")
                || name == "LOG"
                || name.starts_with("LOG.old")
            {
                out.push(path);
            }
        }
    }
}

/// The scan finds what it claims to: each form of a secret, hidden in a line as a log would
/// write it, and nothing in a line without one.
#[test]
fn the_scan_finds_every_form() {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let token = "00ff".repeat(16);
    let secrets = vec![
        ("password".to_owned(), PASSWORD.to_owned()),
        ("user's password".to_owned(), USER_PASSWORD.to_owned()),
        ("token".to_owned(), token.clone()),
    ];
    let scan = Scan::new(&secrets);
    let lines = [
        "body=name%3Dana%26password%3Dana%27s%20own%20passphrase".to_owned(),
        "name=ana&password=ana%27s+own+passphrase".to_owned(),
        "password=correct+horse+battery+staple&x=1".to_owned(),
        format!(
            "authorization: Basic {}",
            STANDARD.encode(format!("user:{PASSWORD}"))
        ),
        format!("x{}", URL_SAFE.encode(format!("ab{USER_PASSWORD}c"))),
        format!("cookie={}", token.to_uppercase()),
        format!("key={}", STANDARD.encode(unhex(&token).expect("hex"))),
        format!("key={:?}", unhex(&token).expect("hex")),
        hex(PASSWORD.as_bytes()).to_uppercase(),
    ];
    for line in &lines {
        assert!(
            !scan.find(line.as_bytes()).is_empty(),
            "not found in {line:?}"
        );
    }
    assert!(scan
        .find(b"an ordinary line: correct horse, 00ff00ff, ana")
        .is_empty());
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
    let token = token.trim().to_owned();
    // The node's RPC cookie (`user:password`) exists while the node runs.
    let rpc_cookie = std::fs::read_to_string(data.join("chain/.cookie")).expect("the RPC cookie");
    let rpc_cookie = rpc_cookie.trim().to_owned();
    let rpc_password = rpc_cookie
        .split_once(':')
        .expect("user:password")
        .1
        .to_owned();
    // Every session cookie the dashboard gives, and every CSRF token it hands out.
    let mut sessions: Vec<String> = Vec::new();
    let mut csrfs: Vec<String> = Vec::new();
    let session_of = |response: &ureq::http::Response<ureq::Body>| -> String {
        response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.strip_prefix("moip_session="))
            .expect("a session cookie")
            .to_owned()
    };
    let csrf_in = |page: &str| -> String {
        page.split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the form's CSRF token")
            .to_owned()
    };

    // A local user logs in (the key is made and sealed) and asks for a deposit invoice.
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
    let login = try_login(USER_PASSWORD);
    assert_eq!(login.status().as_u16(), 303);
    let cookie = session_of(&login);
    sessions.push(cookie.clone());
    // Guessing ana's password: the free wrong guesses are refused (403), then further guesses
    // must wait, longer each time (429 with Retry-After); after the wait the right password
    // gets in.
    for _ in 0..moip::web::throttle::FREE_FAILURES {
        assert_eq!(try_login("not the password").status().as_u16(), 403);
    }
    // The waits double (1 s, 2 s, …): one of the next guesses comes within one.
    let held = (0..3)
        .map(|_| try_login("not the password"))
        .find(|r| r.status().as_u16() == 429)
        .expect("a guess held back");
    assert!(held.headers().get("retry-after").is_some());
    let again = wait_until(WAIT, "the wait after wrong passwords to end", || {
        let r = try_login(USER_PASSWORD);
        (r.status().as_u16() == 303).then_some(r)
    });
    sessions.push(session_of(&again));
    let mut wallet = agent
        .get(format!("{base}/wallet"))
        .header("Cookie", &format!("moip_session={cookie}"))
        .call()
        .expect("wallet");
    let csrf = csrf_in(&wallet.body_mut().read_to_string().expect("page"));
    csrfs.push(csrf.clone());
    let deposit = agent
        .post(format!("{base}/deposit"))
        .header("Cookie", &format!("moip_session={cookie}"))
        .content_type("application/x-www-form-urlencoded")
        .send(format!("csrf={csrf}&sats=5000"))
        .expect("deposit");
    assert_eq!(deposit.status().as_u16(), 200);

    // The operator logs in to the dashboard and makes a beacon there.
    let operator = agent
        .post(format!("{base}/login/operator"))
        .content_type("application/x-www-form-urlencoded")
        .send(format!("token={token}"))
        .expect("operator login");
    assert_eq!(operator.status().as_u16(), 303);
    let operator_cookie = session_of(&operator);
    sessions.push(operator_cookie.clone());
    let mut pair_page = agent
        .get(format!("{base}/pair"))
        .header("Cookie", &format!("moip_session={operator_cookie}"))
        .call()
        .expect("pair page");
    let operator_csrf = csrf_in(&pair_page.body_mut().read_to_string().expect("page"));
    csrfs.push(operator_csrf.clone());
    let mut made = agent
        .post(format!("{base}/pair/beacon"))
        .header("Cookie", &format!("moip_session={operator_cookie}"))
        .content_type("application/x-www-form-urlencoded")
        .send(format!("csrf={operator_csrf}&limit_sat=1000"))
        .expect("make a beacon");
    assert_eq!(made.status().as_u16(), 200);
    let made = made.body_mut().read_to_string().expect("page");
    let dashboard_beacon = made
        .split("id=\"beacon\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the beacon on the page")
        .to_owned();

    // The operator pairs two apps over the API; a wrong token is refused.
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

    let mut secrets: Vec<(String, String)> = vec![
        ("the node's password".into(), PASSWORD.into()),
        ("ana's password".into(), USER_PASSWORD.into()),
        ("the operator's token".into(), token.clone()),
        ("the RPC cookie".into(), rpc_cookie),
        ("the RPC password".into(), rpc_password),
        ("the NWC secret".into(), nwc_secret),
    ];
    for (i, b) in [beacon, dashboard_beacon].iter().enumerate() {
        for (j, s) in beacon_secrets(b).into_iter().enumerate() {
            let part = ["beacon", "its shared seed", "its AES key"][j];
            secrets.push((format!("beacon {i}: {part}"), s));
        }
    }
    for (i, s) in sessions.into_iter().enumerate() {
        secrets.push((format!("session cookie {i}"), s));
    }
    for (i, s) in csrfs.into_iter().enumerate() {
        secrets.push((format!("CSRF token {i}"), s));
    }
    for (file, password) in [
        ("ln/seed", PASSWORD),
        ("work.seed", PASSWORD),
        ("nwc.seed", PASSWORD),
        ("operations/seed", PASSWORD),
        ("users/ana.seed", USER_PASSWORD),
    ] {
        for (part, s) in ["words", "entropy", "Nostr key", "nsec"]
            .iter()
            .zip(seed_secrets(&data.join(file), password))
        {
            secrets.push((format!("{file}: {part}"), s));
        }
    }

    let mut files = vec![out_path.clone(), err_path.clone()];
    log_files(&data, &mut files);
    for expected in EXPECTED_LOGS {
        let path = data.join(expected);
        assert!(
            files.contains(&path),
            "{expected} is missing from the data directory: the scan cannot cover it"
        );
        let len = std::fs::metadata(&path).expect("log").len();
        assert!(len > 0, "{expected} is empty");
    }
    let stderr = std::fs::read_to_string(&err_path).expect("stderr");
    assert!(
        stderr.lines().count() > 100,
        "the trace log is written (else this test proves nothing)"
    );
    let scan = Scan::new(&secrets);
    let mut leaks = Vec::new();
    let mut scanned = 0;
    for file in &files {
        let log = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        scanned += log.len();
        for (label, form) in scan.find(&log) {
            leaks.push(format!("{label} as {form} in {}", file.display()));
        }
    }
    println!(
        "scanned {} logs ({scanned} bytes) for {} secrets in {} forms:",
        files.len(),
        secrets.len(),
        scan.needles.len()
    );
    for file in &files {
        println!(
            "  {}",
            file.strip_prefix(dir.path()).unwrap_or(file).display()
        );
    }
    leaks.sort();
    leaks.dedup();
    assert!(
        leaks.is_empty(),
        "secrets in the logs:\n{}",
        leaks.join("\n")
    );
}
