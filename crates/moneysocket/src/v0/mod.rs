//! Moneysocket v0: the generation the deployed apps speak (relay.socket.money, terminus,
//! the py/js 0.x libraries).
//!
//! Beacons are bech32 TLV records with types counted up from 65979, messages are JSON
//! objects, one per WebSocket binary frame, and the derived keys use double SHA-256.

pub mod beacon;
pub mod frame;
pub mod location;
pub mod message;
pub mod provider_info;
pub mod seed;
pub mod wad;
