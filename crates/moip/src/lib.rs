//! The wiring of moip's layers, as a library so the integration tests use exactly what the
//! binary runs. Protocol crates hold no wallet; here their backend traits meet the Lightning
//! node's [`PaymentRail`](moip_lightning::PaymentRail).

pub mod api;
pub mod wiring;
