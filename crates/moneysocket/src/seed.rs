//! The shared seed and the secrets derived from it.
//!
//! A beacon hands both ends of a Moneysocket connection the same 16 random bytes. Whoever
//! holds them can derive the AES key that protects the traffic and the rendezvous id the relay
//! pairs connections by, so a seed is a bearer secret: it is redacted from `Debug` output.
//! The two protocol generations derive differently — see [`crate::v0::seed`] and
//! [`crate::v1::seed`] — and the v1 rendezvous id equals the v0 AES key for the same seed, so a
//! seed must never be used with both.

use std::fmt;
use std::str::FromStr;

use bitcoin::hashes::{sha256, Hash};

use crate::encoding::hex;
use crate::error::HexError;

/// Length of a shared seed in bytes.
pub const SHARED_SEED_LEN: usize = 16;

/// 16 random bytes shared through a beacon.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SharedSeed([u8; SHARED_SEED_LEN]);

impl SharedSeed {
    /// Wraps seed bytes. The caller is responsible for drawing them from a CSPRNG and for
    /// never reusing them (RFC appendix, shortcoming M6).
    pub const fn from_bytes(bytes: [u8; SHARED_SEED_LEN]) -> Self {
        SharedSeed(bytes)
    }

    /// The seed bytes.
    pub const fn as_bytes(&self) -> &[u8; SHARED_SEED_LEN] {
        &self.0
    }

    /// The seed as 32 lower-case hex digits (the form the references print and store).
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl fmt::Debug for SharedSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSeed(<redacted>)")
    }
}

impl FromStr for SharedSeed {
    type Err = HexError;

    /// Parses 32 hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        hex::decode_array(s).map(SharedSeed)
    }
}

/// A 256-bit AES key derived from a shared seed. Redacted from `Debug` output.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AesKey([u8; 32]);

impl AesKey {
    /// The key bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKey(<redacted>)")
    }
}

/// The 256-bit id under which a relay pairs the two connections of one seed. It is sent in
/// the clear, so it must not reveal the key; both generations derive it by hashing the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RendezvousId([u8; 32]);

impl RendezvousId {
    /// Wraps id bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        RendezvousId(bytes)
    }

    /// The id bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for RendezvousId {
    /// Writes the 64 lower-case hex digits sent on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for RendezvousId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RendezvousId({self})")
    }
}

impl FromStr for RendezvousId {
    type Err = HexError;

    /// Parses 64 hex digits of either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        hex::decode_array(s).map(RendezvousId)
    }
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    sha256::Hash::hash(data).to_byte_array()
}

/// Builds an [`AesKey`]; only the generation modules derive keys.
pub(crate) const fn aes_key(bytes: [u8; 32]) -> AesKey {
    AesKey(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let seed = SharedSeed::from_bytes(*b"hello from light");
        assert!(!format!("{seed:?}").contains("68656c6c6f"));
        assert_eq!(seed.to_hex(), "68656c6c6f2066726f6d206c69676874");
        assert_eq!(
            "68656C6C6F2066726F6D206C69676874".parse::<SharedSeed>(),
            Ok(seed)
        );
        assert!(!format!("{:?}", aes_key([7; 32])).contains("0707"));
    }
}
