//! v0 key schedule: `key = SHA256(SHA256(seed))`, `rendezvous_id = SHA256(SHA256(key))`.
//!
//! As implemented by py-moneysocket `beacon/shared_seed.py` and js-moneysocket
//! `beacon/shared_seed.js`; the double hashing differs from v1, see [`crate::seed`].

use crate::seed::{aes_key, sha256, AesKey, RendezvousId, SharedSeed};

/// Derives the AES-256 key that encrypts v0 frames.
pub fn derive_aes_key(seed: &SharedSeed) -> AesKey {
    aes_key(sha256(&sha256(seed.as_bytes())))
}

/// Derives the id sent in the clear in `REQUEST_RENDEZVOUS`.
pub fn derive_rendezvous_id(seed: &SharedSeed) -> RendezvousId {
    let key = derive_aes_key(seed);
    RendezvousId::from_bytes(sha256(&sha256(key.as_bytes())))
}
