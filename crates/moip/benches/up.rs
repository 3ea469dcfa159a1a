//! `moip up` (issue 9): how long until every service is ready, and the dashboard's latency
//! under 100 concurrent users.
//!
//! - **ready**: `moip up` started as its own process, from spawn to its `ready` line — on a new
//!   data directory (seeds sealed, the chain's first 101 blocks mined, every service started)
//!   and again on the same directory (everything reopened);
//! - **load**: the community is first given members — two founders (the physical verifiers,
//!   whose view the trust scores take) follow twenty members, and 300 members follow twenty
//!   others each, all over the API: a trust graph of 300 scored identities; then `wrk` (Debian's, `make
//!   bench-up` installs it) runs 100 connections on 2 threads for 10 s against each page and
//!   API call on loopback, and its latency distribution is read back.
//!
//! Run: `cargo bench -p moip --bench up` (release). Prints a table of the figures.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moip_work::events::{encode, Message};
use nostr_sdk::{JsonUtil, Keys};

const MEMBERS: usize = 300;
const FOLLOWS: usize = 20;

/// The founders' secret keys (fixed, so the settings can name them).
const FOUNDERS: [&str; 2] = [
    "0000000000000000000000000000000000000000000000000000000000000001",
    "0000000000000000000000000000000000000000000000000000000000000002",
];

const SETTINGS: &str = "mine_every_secs = 10
[ports]
rpc = 0
electrum_tcp = 0
electrum_ws = 0
lightning = 0
moneysocket = 0
nostr = 0
api = 0
[community]
id = \"bench\"
";

fn settings() -> String {
    let founders: Vec<String> = FOUNDERS
        .iter()
        .map(|k| format!("\"{}\"", Keys::parse(k).expect("key").public_key().to_hex()))
        .collect();
    format!("{SETTINGS}founders = [{}]\n", founders.join(", "))
}

/// A running `moip up` and its dashboard's address.
struct Up {
    child: Child,
    dashboard: String,
    ready: Duration,
}

fn start(dir: &Path) -> Up {
    let config = dir.join("moip.toml");
    std::fs::write(&config, settings()).expect("settings");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_moip"))
        .arg("up")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("node"))
        .env("MOIP_PASSWORD", "bench password")
        .env("MOIP_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn moip up");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut dashboard = None;
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(300))
            .expect("moip up got ready");
        if let Some(url) = line.strip_prefix("  dashboard: ") {
            dashboard = Some(url.trim_end_matches('/').to_owned());
        }
        if line.starts_with("moip up: ready in") {
            break;
        }
    }
    Up {
        child,
        dashboard: dashboard.expect("the dashboard's address"),
        ready: started.elapsed(),
    }
}

fn stop(mut up: Up) {
    let _ = Command::new("kill")
        .args(["-TERM", &up.child.id().to_string()])
        .status();
    let _ = up.child.wait();
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Members following each other (each follows `FOLLOWS` others), over the API.
fn populate(base: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let members: Vec<Keys> = (0..MEMBERS).map(|_| Keys::generate()).collect();
    let ids: Vec<_> = members
        .iter()
        .map(|k| moip::actions::parse_key(&k.public_key().to_hex()).expect("key"))
        .collect();
    let founders: Vec<Keys> = FOUNDERS
        .iter()
        .map(|k| Keys::parse(k).expect("key"))
        .collect();
    let lists = founders.iter().map(|k| (k, ids[..FOLLOWS].to_vec())).chain(
        members.iter().enumerate().map(|(i, k)| {
            (
                k,
                (1..=FOLLOWS).map(|d| ids[(i + d * 7) % MEMBERS]).collect(),
            )
        }),
    );
    for (i, (keys, subjects)) in lists.enumerate() {
        let event =
            encode(keys, "bench", &Message::Follows { subjects }, now()).expect("sign follows");
        let status = agent
            .post(format!("{base}/api/events"))
            .send(event.as_json())
            .expect("post")
            .status()
            .as_u16();
        assert_eq!(status, 202, "follow list {i}");
    }
}

/// What wrk measured for one URL.
struct Load {
    path: &'static str,
    requests_per_sec: f64,
    p50: String,
    p99: String,
    errors: String,
}

fn wrk(base: &str, path: &'static str) -> Load {
    let output = Command::new("wrk")
        .args(["-t2", "-c100", "-d10s", "--latency"])
        .arg(format!("{base}{path}"))
        .output()
        .expect("wrk (make bench-up installs Debian's wrk)");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| "—".into())
    };
    let errors = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    Load {
        path,
        requests_per_sec: field("Requests/sec:").parse().unwrap_or(0.0),
        p50: field("50%"),
        p99: field("99%"),
        errors: if errors.is_empty() {
            "none".into()
        } else {
            errors
        },
    }
}

fn main() {
    let mut fresh = Vec::new();
    let mut reopened = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let up = start(dir.path());
        fresh.push(up.ready);
        stop(up);
        let up = start(dir.path());
        reopened.push(up.ready);
        stop(up);
    }
    let ms = |d: &Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    println!(
        "moip up to ready, new data directory: {}",
        fresh.iter().map(ms).collect::<Vec<_>>().join(", ")
    );
    println!(
        "moip up to ready, reopened:           {}",
        reopened.iter().map(ms).collect::<Vec<_>>().join(", ")
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let up = start(dir.path());
    let seeded = Instant::now();
    populate(&up.dashboard);
    println!(
        "{MEMBERS} follow lists of {FOLLOWS} (and the founders') through POST /api/events in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );
    // Wait until the scores are published, so /identities lists the whole graph.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let started = Instant::now();
    let scored = loop {
        let text = agent
            .get(format!("{}/api/identities", up.dashboard))
            .call()
            .expect("identities")
            .body_mut()
            .read_to_string()
            .expect("body");
        let listed: Vec<serde_json::Value> = serde_json::from_str(&text).expect("json");
        if listed.len() >= MEMBERS || started.elapsed() > Duration::from_secs(60) {
            break listed.len();
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("identities with a score: {scored}");
    println!("| page | requests/s | p50 | p99 | errors |");
    println!("|---|---|---|---|---|");
    for path in [
        "/",
        "/tasks",
        "/identities",
        "/node",
        "/api/community",
        "/api/identities",
    ] {
        let load = wrk(&up.dashboard, path);
        println!(
            "| `{}` | {:.0} | {} | {} | {} |",
            load.path, load.requests_per_sec, load.p50, load.p99, load.errors
        );
    }
    stop(up);
}
