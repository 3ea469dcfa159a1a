//! Attacks 5–8 (issue 21), as `moip up` is configured: the relay's per-author share and the
//! Work rules come from `moip.toml` (`[nostr_relay]`, `[rules]`, `[ingest]`). A share set
//! there must be the one the running relay holds a flooding key to, and a value that cannot
//! work (a zero claim window would lapse every claim at once) must stop the start, naming the
//! key, rather than run.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nostr_relay_builder::prelude::{EventBuilder, JsonUtil, Keys};
use tokio_tungstenite::tungstenite::Message;

use crate::common::spawn_up;

/// One key publishes five events to `moip up`'s relay, whose `moip.toml` gives each author
/// three: the first three are kept, the others refused with the quota's reason.
#[test]
fn the_relay_holds_one_key_to_the_share_moip_toml_sets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, lines, _data) = spawn_up(
        dir.path(),
        "[nostr_relay]\nauthor_stored_events = 3\n",
        &["  nostr relay: "],
    );
    let url = lines[0].trim().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let answers: Vec<(bool, String)> = rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("the relay");
        let keys = Keys::generate();
        let mut answers = Vec::new();
        for i in 0..5 {
            let event = EventBuilder::text_note(format!("flood {i}"))
                .sign_with_keys(&keys)
                .expect("signed");
            let id = event.id.to_hex();
            let message = format!(r#"["EVENT",{}]"#, event.as_json());
            ws.send(Message::text(message)).await.expect("send");
            // One at a time, each answered before the next: the share is exact.
            loop {
                let next = tokio::time::timeout(Duration::from_secs(30), ws.next())
                    .await
                    .expect("an answer by the deadline")
                    .expect("the connection stays open")
                    .expect("a message");
                let Message::Text(text) = next else { continue };
                let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                if value[0] == "OK" && value[1] == id.as_str() {
                    let reason = value[3].as_str().unwrap_or_default().to_owned();
                    answers.push((value[2] == true, reason));
                    break;
                }
            }
        }
        answers
    });
    node.stop();
    for (i, (kept, reason)) in answers.iter().enumerate() {
        if i < 3 {
            assert!(kept, "event {i}: {reason}");
        } else {
            assert!(
                !kept && reason.starts_with("blocked: author quota:"),
                "event {i}: kept {kept}, {reason}"
            );
        }
    }
}

/// `[rules] claim_window_secs = 0` stops `moip up` before it starts anything, saying which key.
#[test]
fn a_zero_claim_window_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("moip.toml");
    std::fs::write(&config, "[rules]\nclaim_window_secs = 0\n").expect("settings");
    let mut child = Command::new(env!("CARGO_BIN_EXE_moip"))
        .arg("up")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("node"))
        .env("MOIP_PASSWORD", "correct horse")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("moip up");
    // Its error stream ends when it exits: read it on a thread, with a deadline.
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let Ok(text) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        panic!("moip up kept running with a zero claim window");
    };
    let status = child.wait().expect("exit status");
    assert!(!status.success(), "{text}");
    assert!(
        text.contains("rules.claim_window_secs must be above 0"),
        "{text}"
    );
}
