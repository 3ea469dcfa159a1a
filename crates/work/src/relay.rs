//! The in-process Nostr relay a community node runs by default (rust-nostr's
//! `nostr-relay-builder`, events in memory): on loopback unless told otherwise, with limits
//! sized for one community — a burst of events from one connection (a node publishing its
//! receipts) is normal here, so the per-connection rate is far above a public relay's.

use std::net::SocketAddr;

use nostr_relay_builder::builder::RateLimit;
use nostr_relay_builder::{LocalRelay, RelayBuilder};

/// The relay could not start.
#[derive(Debug, thiserror::Error)]
#[error("nostr relay: {0}")]
pub struct RelayError(String);

/// Most events one connection may publish per minute.
pub const NOTES_PER_MINUTE: u32 = 120_000;

/// Most open subscriptions per connection.
pub const MAX_SUBSCRIPTIONS: usize = 500;

/// Most connections.
pub const MAX_CONNECTIONS: usize = 1_000;

/// A running relay and its `ws://` URL.
pub struct Relay {
    relay: LocalRelay,
    url: String,
}

impl Relay {
    /// Starts a relay on `addr` (port 0 for any free port).
    ///
    /// # Errors
    /// [`RelayError`] when it cannot bind.
    pub async fn start(addr: SocketAddr) -> Result<Relay, RelayError> {
        let mut builder = RelayBuilder::default()
            .addr(addr.ip())
            .max_connections(MAX_CONNECTIONS)
            .rate_limit(RateLimit {
                max_reqs: MAX_SUBSCRIPTIONS,
                notes_per_minute: NOTES_PER_MINUTE,
            });
        // Without a port the builder picks a free one and reports it in `url`; an explicit 0
        // would be reported as 0.
        if addr.port() != 0 {
            builder = builder.port(addr.port());
        }
        let relay = LocalRelay::new(builder);
        relay.run().await.map_err(|e| RelayError(e.to_string()))?;
        let url = relay.url().await.to_string();
        Ok(Relay { relay, url })
    }

    /// Its `ws://host:port` URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops it.
    pub fn shutdown(&self) {
        self.relay.shutdown();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.relay.shutdown();
    }
}
