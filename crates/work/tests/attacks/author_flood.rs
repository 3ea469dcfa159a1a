//! Attack 8, one key (issue 21): a single author floods the relay over several connections, each
//! within its own rate, until the store (which drops its oldest events first) holds only that
//! author's events and everyone else's are gone.
//!
//! The defence: each author has a share of the relay ([`RelayLimits::author_events_per_minute`]
//! over all its connections, [`RelayLimits::author_stored_events`] kept), refused past it with
//! `blocked: author quota: …`; the keys the Work service reads trust from (its own first) are
//! the relay's [`moip_work::relay::Members`] and have the larger `member_*` share.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use moip_work::relay::{Relay, RelayLimits};
use moip_work::service::{ServiceConfig, WorkService};
use nostr_sdk::{Event, EventBuilder, Keys, Timestamp};
use tokio_tungstenite::tungstenite::Message as Ws;

use crate::common::{account, now, WAIT};
use crate::relay_flood::{community, flood, socket};

/// The ids of the events the relay serves for `filter` (a REQ's filter, as JSON), read until
/// its end of stored events, by the deadline.
async fn served(url: &str, filter: serde_json::Value) -> HashSet<String> {
    let mut ws = socket(url).await;
    let req = serde_json::json!(["REQ", "q", filter]).to_string();
    ws.send(Ws::text(req)).await.expect("subscribe");
    let mut ids = HashSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let message = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the stored events by the deadline")
            .expect("the connection stays open")
            .expect("a message");
        let Ws::Text(text) = message else { continue };
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        match value[0].as_str() {
            Some("EVENT") => {
                ids.insert(value[2]["id"].as_str().expect("an id").to_owned());
            }
            Some("EOSE") => return ids,
            _ => panic!("unexpected {text}"),
        }
    }
}

fn note(keys: &Keys, text: String, at: u64) -> Event {
    EventBuilder::text_note(text)
        .custom_created_at(Timestamp::from(at))
        .sign_with_keys(keys)
        .expect("signed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_over_many_connections_cannot_push_out_other_authors() {
    let limits = RelayLimits {
        max_stored_events: 400,
        author_stored_events: 40,
        author_events_per_minute: 150,
        ..RelayLimits::default()
    };
    let relay = Relay::start_with(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), limits.clone())
        .await
        .expect("relay");
    // The real service keeps the relay's members: its own key among them.
    let service_keys = Keys::generate();
    let mut config = ServiceConfig::new(vec![relay.url().to_owned()], service_keys.clone());
    config.scores_every = Duration::from_millis(200);
    config.relay_members = Some(relay.members());
    let founder = Keys::generate();
    let service = WorkService::start(config, community(&[account(&founder)]))
        .await
        .expect("service");
    assert!(relay.members().contains(&service_keys.public_key()));

    // 20 honest authors, 5 events each, older than the flood: the first the store would drop.
    let honest: Vec<Event> = (0..20)
        .flat_map(|_| {
            let keys = Keys::generate();
            (0..5)
                .map(|i| note(&keys, format!("honest {i}"), now() - 60))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut ws = socket(relay.url()).await;
    assert!(flood(&mut ws, &honest).await.iter().all(|(ok, _)| *ok));

    // One key, four connections at once, 150 events each: within each connection's rate,
    // and together more than the store's free room.
    let attacker = Keys::generate();
    let floods = (0..4).map(|c| {
        let events: Vec<Event> = (0..150)
            .map(|i| note(&attacker, format!("flood {c}/{i}"), now()))
            .collect();
        let url = relay.url().to_owned();
        tokio::spawn(async move {
            let mut ws = socket(&url).await;
            flood(&mut ws, &events).await
        })
    });
    let mut answers = Vec::new();
    for handle in floods.collect::<Vec<_>>() {
        answers.extend(handle.await.expect("a flood"));
    }
    // Everyone else's events are still stored and served.
    let ids: Vec<String> = honest.iter().map(|e| e.id.to_hex()).collect();
    let still = served(relay.url(), serde_json::json!({ "ids": ids })).await;
    assert_eq!(still.len(), honest.len(), "honest events still served");

    let taken = answers.iter().filter(|(ok, _)| *ok).count();
    let refused: Vec<&String> = answers
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, reason)| reason)
        .collect();
    assert!(
        refused
            .iter()
            .all(|r| r.starts_with("blocked: author quota:")),
        "{:?}",
        refused
            .iter()
            .find(|r| !r.starts_with("blocked: author quota:"))
    );
    // Its share, and at most one more per concurrent connection (count and save are two steps).
    let most = limits.author_stored_events + 3;
    assert!(taken <= most, "the attacker had {taken} events taken");
    let attacker_stored = served(
        relay.url(),
        serde_json::json!({"authors": [attacker.public_key().to_hex()]}),
    )
    .await;
    assert!(attacker_stored.len() <= most, "{}", attacker_stored.len());

    // A member (the service's key) has the larger share, and so has a key kept as one (the
    // node's NWC service, say), whatever the service sets after.
    let kept = Keys::generate();
    relay.members().keep(kept.public_key());
    relay.members().set([service_keys.public_key()]);
    for keys in [&service_keys, &kept] {
        let member: Vec<Event> = (0..100)
            .map(|i| note(keys, format!("member {i}"), now()))
            .collect();
        let mut ws = socket(relay.url()).await;
        let answers = flood(&mut ws, &member).await;
        assert!(answers.iter().all(|(ok, _)| *ok), "{answers:?}");
    }
    service.shutdown().await;
}
