//! L3 Orchestration: the Moneysocket protocol.
//!
//! This crate currently holds the protocol's codecs: pure functions from bytes or text to
//! typed values and back, with a typed error for every way untrusted input can be wrong. No
//! I/O happens here; transports, the relay and the consumer/provider stacks build on it.
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

pub mod encoding;
pub mod error;
mod ids;
pub mod seed;
pub mod timestamp;
pub mod v0;
pub mod v1;

pub use seed::{AesKey, RendezvousId, SharedSeed};
pub use timestamp::Timestamp;
pub use uuid::Uuid;
