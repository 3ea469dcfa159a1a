//! Attack 8 (issue 21): anyone who reaches the Nostr relay exhausts the node — strangers (many
//! fresh keys) publish large events, follow lists, reports and Work events as fast as the relay
//! takes them, so the relay holds every byte, the Work service decides and logs every event,
//! and a request that needs a member's trust scores the whole graph under the state's lock.
//!
//! The defence: the relay refuses an event over its size limit and a connection over its rate
//! with an `OK` false that says why ([`RelayLimits`]), and keeps a bounded number of events; the
//! service drops the follow lists and reports of authors without standing (no role, no tokens,
//! no score), keeps their refusals only up to a shared budget, holds each author to a quota
//! ([`IngestLimits`]), and scores on a schedule outside the lock, so that reading a member's
//! trust ([`WorkService::trust`]) never scores.
//!
//! `flood_of_strangers_is_refused_or_dropped_and_members_are_served` runs the real relay and the
//! real service; `measure_flood_growth` (ignored; run by hand) measures the node's memory and
//! disk per hostile event for `docs/reliability.md`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use moip_assets::ledger::{Ledger, MemoryJournal, TokenInfo};
use moip_work::community::Community;
use moip_work::events::Message;
use moip_work::identity::VerifierRules;
use moip_work::receipt::Verdict;
use moip_work::relay::{Relay, RelayLimits};
use moip_work::service::{IngestLimits, ServiceConfig, WorkService};
use moip_work::task::Rules;
use moip_work::trust::Params;
use moip_work::AccountId;
use nostr_sdk::{Event, EventBuilder, JsonUtil, Keys, Timestamp};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{account, now, publisher, send, sign, COMMUNITY, WAIT};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) fn community(founders: &[AccountId]) -> Community<Ledger<MemoryJournal>> {
    let ledger = Ledger::create(
        MemoryJournal::default(),
        TokenInfo {
            id: COMMUNITY.into(),
            name: "Bakery hours".into(),
            symbol: "BKH".into(),
        },
    )
    .expect("ledger");
    Community::new(
        COMMUNITY,
        ledger,
        founders,
        Rules::default(),
        VerifierRules::default(),
        Params::default(),
    )
}

pub(crate) async fn socket(url: &str) -> Socket {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("a WebSocket")
        .0
}

/// An event as sent: its id (hex) and its `["EVENT", …]` message.
type Wire = (String, String);

fn wire(event: &Event) -> Wire {
    (
        event.id.to_hex(),
        format!(r#"["EVENT",{}]"#, event.as_json()),
    )
}

/// Sends every event on `ws` at once, then reads the relay's `OK` for each, by a deadline:
/// `(accepted, reason)` in the order sent.
pub(crate) async fn flood(ws: &mut Socket, events: &[Event]) -> Vec<(bool, String)> {
    flood_wire(ws, &events.iter().map(wire).collect::<Vec<_>>()).await
}

/// [`flood`] with the events already serialised (the measurement holds no `Event`, so the
/// attacker's share of the process's memory is only the messages).
async fn flood_wire(ws: &mut Socket, events: &[Wire]) -> Vec<(bool, String)> {
    for (_, message) in events {
        ws.feed(Ws::text(message.as_str())).await.expect("send");
    }
    ws.flush().await.expect("flush");
    let mut answers = std::collections::HashMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while answers.len() < events.len() {
        let message = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("every OK by the deadline")
            .expect("the connection stays open")
            .expect("a message");
        let Ws::Text(text) = message else { continue };
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        if value[0] == "OK" {
            let id = value[1].as_str().expect("an id").to_owned();
            let reason = value[3].as_str().unwrap_or_default().to_owned();
            answers.insert(id, (value[2] == true, reason));
        }
    }
    events
        .iter()
        .map(|(id, _)| answers.remove(id).expect("an OK for each"))
        .collect()
}

/// A follow list of `n` made-up keys (about 70 bytes each).
fn follow_list(keys: &Keys, n: usize) -> Event {
    let seed = keys.public_key().to_bytes();
    let subjects = (0..n as u64)
        .map(|i| {
            let mut key = seed;
            key[..8].copy_from_slice(&i.to_le_bytes());
            AccountId::from_bytes(key)
        })
        .collect();
    sign(keys, &Message::Follows { subjects })
}

/// One stranger's hostile events: a follow list of `follows` keys, a report on `victim`, and a
/// claim on a task that does not exist.
fn hostile(follows: usize, victim: AccountId) -> Vec<Event> {
    let keys = Keys::generate();
    vec![
        follow_list(&keys, follows),
        sign(&keys, &Message::Report { subject: victim }),
        sign(
            &keys,
            &Message::Claim {
                task: "no-such-task".into(),
            },
        ),
    ]
}

/// Polls `done` until it holds or `WAIT` passes.
async fn until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

fn json_bytes(events: &[Event]) -> usize {
    events.iter().map(|e| e.as_json().len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_strangers_is_refused_or_dropped_and_members_are_served() {
    let limits = RelayLimits {
        events_per_minute: 600,
        ..RelayLimits::default()
    };
    let relay = Relay::start_with(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), limits.clone())
        .await
        .expect("relay");
    let (f1, f2, newcomer) = (Keys::generate(), Keys::generate(), Keys::generate());
    let mut config = ServiceConfig::new(vec![relay.url().to_owned()], Keys::generate());
    config.scores_every = Duration::from_millis(200);
    config.limits = IngestLimits {
        decisions_per_author: 5,
        stranger_refusals: 10,
        ..IngestLimits::default()
    };
    let budget = config.limits.stranger_refusals;
    let service = WorkService::start(config, community(&[account(&f1), account(&f2)]))
        .await
        .expect("service");
    let members = publisher(relay.url()).await;

    // Oversized events are refused with a reason, and the connection stays open.
    let mut greedy = socket(relay.url()).await;
    let stranger = Keys::generate();
    let note = EventBuilder::text_note("x".repeat(limits.max_event_bytes))
        .sign_with_keys(&stranger)
        .expect("signed");
    let huge_follows = follow_list(&stranger, 1_000);
    assert!(huge_follows.as_json().len() > limits.max_follow_list_bytes);
    let small = EventBuilder::text_note("hi")
        .sign_with_keys(&stranger)
        .expect("signed");
    // Dated ahead, it would outlive every real event in the store (oldest go first).
    let future = EventBuilder::text_note("from the future")
        .custom_created_at(Timestamp::from(now() + 86_400))
        .sign_with_keys(&stranger)
        .expect("signed");
    let answers = flood(&mut greedy, &[note, huge_follows, future, small]).await;
    for (accepted, reason) in &answers[..2] {
        assert!(
            !accepted && reason.starts_with("invalid: event too large"),
            "{reason}"
        );
    }
    let (accepted, reason) = &answers[2];
    assert!(!accepted && reason.contains("in the future"), "{reason}");
    assert!(answers[3].0, "a small event on the same connection passes");

    // One connection over its rate is told to slow down.
    let mut fast = socket(relay.url()).await;
    let spam: Vec<Event> = (0..limits.events_per_minute + 100)
        .map(|_| {
            let report = Message::Report {
                subject: account(&f1),
            };
            sign(&Keys::generate(), &report)
        })
        .collect();
    let answers = flood(&mut fast, &spam).await;
    let limited = answers
        .iter()
        .filter(|(ok, reason)| !ok && reason.starts_with("rate-limited:"))
        .count();
    assert!(limited >= 100, "{limited} events rate-limited");
    let mut hostile_taken = answers.iter().filter(|(ok, _)| *ok).count();

    // The flood: 150 strangers, each with a follow list of 850 keys (~60 KiB), a report on
    // a founder and a claim, over three connections — while members act.
    let victim = account(&f1);
    let batches: Vec<Vec<Event>> = (0..3)
        .map(|_| (0..50).flat_map(|_| hostile(850, victim)).collect())
        .collect();
    let flood_bytes: usize = batches.iter().map(|b| json_bytes(b)).sum();
    let strangers: Vec<AccountId> = batches
        .iter()
        .flatten()
        .map(|e| AccountId::from_bytes(e.pubkey.to_bytes()))
        .collect();
    let url = relay.url().to_owned();
    let flooding = tokio::spawn(async move {
        let (mut taken, mut claims) = (0, 0);
        for batch in batches {
            let mut ws = socket(&url).await;
            let answers = flood(&mut ws, &batch).await;
            taken += answers.iter().filter(|a| a.0).count();
            claims += answers.iter().skip(2).step_by(3).filter(|a| a.0).count();
        }
        (taken, claims)
    });

    // Members' events get their receipts within the deadline meanwhile.
    let vouch = Message::Vouch {
        subject: account(&newcomer),
    };
    assert_eq!(
        send(&service, &members, &f1, vouch).await.verdict,
        Verdict::Accepted
    );
    let follows = Message::Follows {
        subjects: vec![account(&f1), account(&f2)],
    };
    assert_eq!(
        send(&service, &members, &newcomer, follows).await.verdict,
        Verdict::Accepted
    );
    // A member over its quota: five reports kept, the sixth refused saying so, the rest
    // dropped.
    let reported: Vec<Keys> = (0..8).map(|_| Keys::generate()).collect();
    for (i, subject) in reported.iter().enumerate() {
        let report = sign(
            &f2,
            &Message::Report {
                subject: account(subject),
            },
        );
        let output = members.send_event(&report).await.expect("publish");
        assert!(!output.success.is_empty());
        if i <= 5 {
            let receipt = service
                .wait_receipt(&report.id, WAIT)
                .await
                .expect("a receipt");
            match (i, &receipt.verdict) {
                (0..=4, Verdict::Accepted) => {}
                (5, Verdict::Rejected { reason }) if reason.contains("quota") => {}
                other => panic!("report {i}: {other:?}"),
            }
        }
    }
    assert!(
        until(|| service.stats().over_quota >= 2).await,
        "{:?}",
        service.stats()
    );
    let member_entries = 2 + 6;

    let (taken, claims) = flooding.await.expect("the flood");
    hostile_taken += taken;
    // The strangers' claims (Work events of the community) are read, and refused within the
    // budget or dropped; their follow lists and reports are not even sent to the service, which
    // subscribes to those of authors with a score only.
    assert!(
        until(|| {
            let stats = service.stats();
            stats.ignored + stats.kept >= (claims + member_entries) as u64
        })
        .await,
        "{:?} for {claims} claims",
        service.stats()
    );
    assert_eq!(
        service.stats().signals_ignored,
        0,
        "no stranger's follow list or report reached the service"
    );
    // The node's own path (`WorkService::publish`, behind `POST /api/events`) decides without
    // the subscription: there the standing rule drops a stranger's follow list unrecorded.
    let direct = follow_list(&Keys::generate(), 10);
    service.publish(&direct).await.expect("published");
    assert_eq!(service.stats().signals_ignored, 1);
    assert!(service.receipt(&direct.id).is_none(), "no receipt kept");
    let direct_author = AccountId::from_bytes(direct.pubkey.to_bytes());
    assert!(service.with_community(|c| c.graph().around(&direct_author, 1).0.is_empty()));

    // Nothing of the strangers is in the graph, and the log holds the members' decisions and
    // at most the strangers' refusal budget.
    let stats = service.stats();
    let in_graph = service.with_community(|c| {
        strangers
            .iter()
            .filter(|s| !c.graph().around(s, 1).0.is_empty())
            .count()
    });
    assert_eq!(in_graph, 0, "strangers' follows and reports are not kept");
    let usage = service.log_usage().expect("log usage");
    println!(
        "flood: {hostile_taken} hostile events taken by the relay ({flood_bytes} bytes in the \
         main flood); service {stats:?}; log {usage:?}"
    );
    assert!(
        usage.entries <= (member_entries + budget as usize) as u64,
        "{usage:?}"
    );
    assert!(
        usage.bytes < 64 * 1024 && (usage.bytes as usize) < flood_bytes / 100,
        "the log stays small: {usage:?} after {flood_bytes} bytes of flood"
    );

    // A request for a member's trust reads the last scores: it never scores the graph.
    assert!(
        until(|| service.trust(&account(&newcomer)) > 0.0).await,
        "the vouched newcomer is scored on schedule"
    );
    let before = service.stats().scorings;
    for _ in 0..1_000 {
        assert!(service.trust(&account(&newcomer)) > 0.0);
    }
    let scored = service.stats().scorings - before;
    assert!(scored <= 1, "{scored} scorings for 1,000 trust reads");
    service.shutdown().await;
}

/// The process's resident memory, in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Bytes of the files in `dir` (the service's SQLite log, its WAL and shared memory).
fn disk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Measures the node's memory (this process's RSS: the relay with its default limits, and the
/// service with its default limits and a log on disk, and the flooding client holding one
/// round of messages) and disk (the log's files) as strangers
/// flood it, for `docs/reliability.md`. Each stranger publishes a follow list of 100 keys, a
/// report and a claim; `MOIP_FLOOD_EVENTS` hostile events in all (default 60,000), in rounds
/// of 3,000 over fresh connections; `MOIP_FLOOD_STORED` sets the relay's
/// [`RelayLimits::max_stored_events`] and `MOIP_FLOOD_FOLLOWS` the keys per follow list. Run
/// by hand:
///
/// `cargo test -p moip-work --test attacks relay_flood::measure -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn measure_flood_growth() {
    let total: usize = std::env::var("MOIP_FLOOD_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000);
    let follows: usize = std::env::var("MOIP_FLOOD_FOLLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut limits = RelayLimits::default();
    if let Some(stored) = std::env::var("MOIP_FLOOD_STORED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        limits.max_stored_events = stored;
    }
    let relay = Relay::start_with(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), limits)
        .await
        .expect("relay");
    let f1 = Keys::generate();
    let mut config = ServiceConfig::new(vec![relay.url().to_owned()], Keys::generate());
    config.log = Some(dir.path().join("work.db"));
    let service = WorkService::start(config, community(&[account(&f1)]))
        .await
        .expect("service");
    let (rss0, disk0) = (rss(), disk(dir.path()));
    println!("baseline: RSS {rss0} B, log {disk0} B");
    println!("| hostile events | their bytes | RSS growth | per event | log growth | kept |");
    let (mut sent, mut taken, mut claims, mut bytes) = (0usize, 0usize, 0usize, 0usize);
    while sent < total {
        let round: Vec<Wire> = (0..1_000)
            .flat_map(|_| {
                hostile(follows, account(&f1))
                    .iter()
                    .map(wire)
                    .collect::<Vec<_>>()
            })
            .collect();
        bytes += round.iter().map(|(_, m)| m.len()).sum::<usize>();
        sent += round.len();
        let mut ws = socket(relay.url()).await;
        let answers = flood_wire(&mut ws, &round).await;
        taken += answers.iter().filter(|a| a.0).count();
        // The service reads the claims only (follow lists and reports of authors without a
        // score are not sent to it).
        claims += answers.iter().skip(2).step_by(3).filter(|a| a.0).count();
        assert!(
            until(|| {
                let stats = service.stats();
                stats.ignored + stats.kept >= claims as u64
            })
            .await,
            "the service read the round: {:?}",
            service.stats()
        );
        let grown = rss().saturating_sub(rss0);
        println!(
            "| {sent} | {bytes} | {grown} | {} | {} | {} |",
            grown / sent as u64,
            disk(dir.path()).saturating_sub(disk0),
            service.stats().kept
        );
    }
    println!(
        "relay took {taken} of {sent}; service {:?}",
        service.stats()
    );
    service.shutdown().await;
}
