//! Moneysocket v1: the RFC draft (moneysocket-rfc) as implemented by py-moneysocket's
//! `moneysocket1/` package and its test vectors.
//!
//! Only codecs exist for v1 anywhere: beacons, wads, provider info and the message framing
//! with the transport ping/pong subtypes. Where the RFC text and the code disagree (subtype
//! numbers, field names), this module follows the code and the vectors.

pub mod beacon;
pub mod features;
pub(crate) mod iso4217;
pub mod message;
pub mod provider_info;
pub mod seed;
pub mod version;
pub mod wad;
