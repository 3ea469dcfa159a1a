//! Pairing an app with the node: the strings a wallet scans — the Electrum server's address, a
//! Moneysocket beacon, a Nostr Wallet Connect URI — and QR codes of them.
//!
//! A beacon and an NWC URI are bearer secrets: whoever holds one spends within its limit. They
//! are made on request, shown once, and never logged.

use std::sync::Arc;
use std::time::Duration;

use moip_moneysocket::client::ClientConfig;
use moip_moneysocket::provider::{Account, BeaconBudget, MemoryBudget, SpendingLimit};
use moip_moneysocket::relay::LocalConnector;
use moip_moneysocket::v0::beacon::Beacon;
use moip_moneysocket::v0::location::{Location, WebSocketLocation};
use moip_moneysocket::SharedSeed;
use qrcode::render::svg;
use qrcode::QrCode;

/// Why a pairing string could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PairingError {
    /// The relay URL cannot go in a beacon.
    #[error("{0}")]
    RelayUrl(String),
    /// The beacon could not be encoded.
    #[error("the beacon: {0}")]
    Beacon(String),
    /// Too long for a QR code.
    #[error("too long for a QR code: {0}")]
    Qr(String),
}

/// A relay URL (`ws://host:port`, `wss://host[:port]`) as a beacon location.
///
/// # Errors
/// [`PairingError::RelayUrl`] for another scheme, a path, or a bad port.
pub fn relay_location(url: &str) -> Result<WebSocketLocation, PairingError> {
    let bad = |why: &str| PairingError::RelayUrl(format!("{why}: {url}"));
    let (tls, rest) = if let Some(rest) = url.strip_prefix("wss://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("ws://") {
        (false, rest)
    } else {
        return Err(bad("the relay URL must start with ws:// or wss://"));
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(bad("a v0 beacon cannot carry a path"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (
            host,
            Some(port.parse::<u16>().map_err(|_| bad("the relay port"))?),
        ),
        None => (rest, None),
    };
    let mut location = WebSocketLocation::new(host, tls);
    if let Some(port) = port.and_then(std::num::NonZeroU16::new) {
        location.port = port;
    }
    Ok(location)
}

/// How a beacon's provider reaches the relay the beacon names.
#[derive(Clone)]
pub enum ProviderPath {
    /// Over the network, at the beacon's own URL (a relay in another process).
    Url,
    /// Inside the process: the node's own relay, with no socket, TLS or per-IP limit (a
    /// community hands out a beacon per member, all served from this one place).
    InProcess(LocalConnector),
}

/// A fresh beacon on `relay` for `account`, spending at most `limit` in all its sessions (held
/// in memory: `moip up` keeps its beacons' budgets durably, see [`crate::beacons`]), with a
/// provider serving it on the current tokio runtime for as long as the runtime runs. Returns
/// the beacon.
///
/// # Errors
/// [`PairingError`] for a relay URL a beacon cannot carry.
pub fn new_beacon(
    relay: &str,
    path: ProviderPath,
    account: &Arc<Account>,
    limit: SpendingLimit,
) -> Result<String, PairingError> {
    let seed = SharedSeed::from_bytes(rand::random());
    let beacon = beacon_uri(relay, seed)?;
    tokio::spawn(serve_beacon(
        relay.to_owned(),
        path,
        seed,
        Arc::clone(account),
        Arc::new(MemoryBudget::new(limit)),
    ));
    Ok(beacon)
}

/// The beacon (`moneysocket1…`) for `seed` on `relay`.
///
/// # Errors
/// [`PairingError`] for a relay URL a beacon cannot carry.
pub fn beacon_uri(relay: &str, seed: SharedSeed) -> Result<String, PairingError> {
    Beacon {
        shared_seed: seed,
        locations: vec![Location::WebSocket(relay_location(relay)?)],
    }
    .to_bech32()
    .map_err(|e| PairingError::Beacon(e.to_string()))
}

/// Serves a beacon for as long as the runtime runs (or the task is aborted): after each
/// consumer leaves (or the relay drops), the provider rendezvouses again for the next one.
/// Every session spends from the one `budget`, so a reconnect starts from what was spent.
pub async fn serve_beacon(
    relay: String,
    path: ProviderPath,
    seed: SharedSeed,
    account: Arc<Account>,
    budget: Arc<dyn BeaconBudget>,
) {
    use moip_moneysocket::provider::{serve_socket_with_budget, serve_with_budget};
    let config = ClientConfig::default();
    loop {
        let (account, budget) = (Arc::clone(&account), Arc::clone(&budget));
        let served = match &path {
            ProviderPath::Url => serve_with_budget(&relay, seed, account, budget, &config).await,
            ProviderPath::InProcess(connector) => {
                let socket = connector.connect(seed);
                serve_socket_with_budget(socket, account, budget, config.security).await
            }
        };
        if let Err(e) = served {
            tracing::info!("beacon session ended: {e}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `text` as an SVG QR code (for a web page; phone cameras read it off the screen).
///
/// # Errors
/// [`PairingError::Qr`] when the text is too long.
pub fn qr_svg(text: &str) -> Result<String, PairingError> {
    let code = QrCode::new(text.as_bytes()).map_err(|e| PairingError::Qr(e.to_string()))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_become_locations_or_are_refused() {
        let l = relay_location("ws://127.0.0.1:11060").expect("ws");
        assert!(!l.use_tls);
        assert_eq!(l.port.get(), 11060);
        assert!(relay_location("wss://relay.example/").expect("wss").use_tls);
        for bad in ["http://x", "ws://x/path", "ws://x:notaport"] {
            assert!(relay_location(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn qr_codes_are_svg_and_long_text_is_refused() {
        let svg = qr_svg("tcp://127.0.0.1:50001").expect("qr");
        assert!(svg.contains("<svg"), "{svg}");
        assert!(qr_svg(&"x".repeat(5_000)).is_err());
    }
}
