//! v1 key schedule: `key = SHA256(seed)`, `rendezvous_id = SHA256(key)`
//! (RFC `06-rendezvous.md`, py-moneysocket `moneysocket1/beacon/shared_seed.py`).
//!
//! Note that the v1 rendezvous id equals the v0 AES key of the same seed: a seed used with
//! both generations would hand the v0 key to the relay. See [`crate::seed`].

use crate::seed::{aes_key, sha256, AesKey, RendezvousId, SharedSeed};

/// Derives the AES-256 key of a v1 connection.
pub fn derive_aes_key(seed: &SharedSeed) -> AesKey {
    aes_key(sha256(seed.as_bytes()))
}

/// Derives the rendezvous id of a v1 connection.
pub fn derive_rendezvous_id(seed: &SharedSeed) -> RendezvousId {
    RendezvousId::from_bytes(sha256(derive_aes_key(seed).as_bytes()))
}
