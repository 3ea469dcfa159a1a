//! Shared by the service and flow tests: members with keys, a publishing client on the
//! in-process relay, and a helper that signs a message, publishes it and waits for its receipt.

#![allow(dead_code)] // each test binary uses its own part

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moip_assets::ledger::TokenLedger;
use moip_work::events::{encode, Message};
use moip_work::receipt::Receipt;
use moip_work::relay::Relay;
use moip_work::service::WorkService;
use moip_work::AccountId;
use nostr_sdk::{Client, Event, Keys};

pub const COMMUNITY: &str = "bakery";
pub const WAIT: Duration = Duration::from_secs(30);

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

pub fn account(keys: &Keys) -> AccountId {
    AccountId::from_bytes(keys.public_key().to_bytes())
}

pub async fn relay() -> Relay {
    Relay::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("relay")
}

/// A client that publishes other people's signed events (as any relay client could).
pub async fn publisher(url: &str) -> Client {
    let client = Client::default();
    client.add_relay(url).await.expect("relay url");
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(5)).await;
    client
}

pub fn sign(keys: &Keys, message: &Message) -> Event {
    encode(keys, COMMUNITY, message, now()).expect("sign")
}

/// Publishes `event` and waits for the service's receipt.
pub async fn publish<L: TokenLedger + Send + 'static>(
    service: &WorkService<L>,
    client: &Client,
    event: &Event,
) -> Receipt {
    let output = client.send_event(event).await.expect("publish");
    assert!(!output.success.is_empty(), "the relay took it: {output:?}");
    service
        .wait_receipt(&event.id, WAIT)
        .await
        .unwrap_or_else(|| panic!("no receipt for {:?}", event.kind))
}

/// Signs, publishes and waits.
pub async fn send<L: TokenLedger + Send + 'static>(
    service: &WorkService<L>,
    client: &Client,
    keys: &Keys,
    message: Message,
) -> Receipt {
    publish(service, client, &sign(keys, &message)).await
}
