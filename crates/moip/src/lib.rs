//! The wiring of moip's layers, as a library so the integration tests use exactly what the
//! binary runs. Protocol crates hold no wallet; here their backend traits meet the Lightning
//! node's [`PaymentRail`](moip_lightning::PaymentRail). On top, what a community node serves
//! people: the REST API, the web dashboard, deposits that mint, and pairing.

pub mod actions;
pub mod api;
pub mod beacons;
pub mod commitments;
pub mod deposits;
pub mod history;
pub mod hub;
pub mod pairing;
pub mod secrets;
pub mod state;
pub mod tls;
mod util;
pub mod views;
pub mod web;
pub mod wiring;
