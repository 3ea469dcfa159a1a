//! L3 Orchestration: the Moneysocket protocol.
//!
//! The protocol's codecs are pure functions from bytes or text to typed values and back, with
//! a typed error for every way untrusted input can be wrong; they do no I/O. On top of them
//! sit the two network pieces of the v0 stack:
//!
//! - [`relay`] — a WebSocket relay that pairs the two holders of a seed by rendezvous id and
//!   forwards their frames verbatim, with the limits the reference relay lacks.
//! - [`client`] — the outgoing WebSocket plus rendezvous layers a consumer or provider runs
//!   on, framing messages with [`v0::frame`].
//! - [`provider`] and [`consumer`] — the two roles over a rendezvoused socket; the provider's
//!   wallet is a trait ([`provider::ProviderBackend`]), so this crate holds none.
//! - [`secure`] — an authenticated-encryption layer for moip peers (ephemeral ECDH bound to the
//!   seed, ChaCha20-Poly1305 with counters), negotiated in `REQUEST_PROVIDER`/`NOTIFY_PROVIDER`
//!   so that deployed v0 apps keep working.
//! - [`nexus`] — the announce/revoke events of the layer model.
//!
//! Moneysocket has two incompatible wire generations, kept in separate modules:
//!
//! - [`v0`] — what deployed apps speak: bech32 beacons with TLV types from 65979, JSON
//!   messages, double-SHA-256 key schedule.
//! - [`v1`] — the RFC draft: new beacon layout, TLV-framed messages carrying JSON, single
//!   SHA-256 key schedule. Only its codecs exist anywhere.
//!
//! Both share the primitives in [`encoding`] (BigSize, TLV, bech32) and the [`SharedSeed`].
//!
//! ```
//! use moip_moneysocket::v0::beacon::Beacon;
//! use moip_moneysocket::v0::seed::derive_rendezvous_id;
//!
//! let beacon: Beacon = "moneysocket1lcqqzqdmy0lqqqgph5gxsetvd3hjqenjdakjqmrfva58flsqqyquzpl7qqqsr0cpqqpwt49e"
//!     .parse()
//!     .expect("valid v0 beacon");
//! assert!(beacon.locations.is_empty());
//! assert_eq!(
//!     derive_rendezvous_id(&beacon.shared_seed).to_string(),
//!     "d678c107fe2913ae1ab79bfba00694aaed75b5a2b0187ea0719919cbfedf9758"
//! );
//! ```

#![warn(missing_docs)]

pub mod client;
pub mod consumer;
pub mod encoding;
pub mod error;
mod ids;
pub mod liveness;
pub mod nexus;
pub mod provider;
pub mod relay;
pub mod secure;
pub mod seed;
pub mod timestamp;
pub mod v0;
pub mod v1;

pub use seed::{AesKey, RendezvousId, SharedSeed};
pub use timestamp::Timestamp;
pub use uuid::Uuid;
