//! Payment fields of v0 messages: invoices and preimages.

use std::fmt;
use std::str::FromStr;

use crate::encoding::hex;
use crate::error::HexError;

/// Most characters a `NOTIFY_PREIMAGE` `ext` field may hold.
pub const MAX_EXT_CHARS: usize = 4096;

/// A BOLT #11 invoice, checked only as the references check it: it must start with `lnbc`.
///
/// That prefix covers mainnet and regtest (`lnbcrt`) but not testnet or signet invoices
/// (`lntb`, `lntbs`); deployed v0 apps reject those too, so we keep the rule for interop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bolt11(String);

/// The invoice text does not start with `lnbc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("doesn't look like a bolt11")]
pub struct NotBolt11;

impl Bolt11 {
    /// The invoice text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Bolt11 {
    type Err = NotBolt11;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("lnbc") {
            Ok(Bolt11(s.to_owned()))
        } else {
            Err(NotBolt11)
        }
    }
}

impl fmt::Display for Bolt11 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 32-byte payment preimage, written as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Preimage([u8; 32]);

impl Preimage {
    /// Wraps preimage bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Preimage(bytes)
    }

    /// The preimage bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Preimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for Preimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Preimage({self})")
    }
}

impl FromStr for Preimage {
    type Err = HexError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        hex::decode_array(s).map(Preimage)
    }
}

/// The free-form `ext` string of `NOTIFY_PREIMAGE`, at most [`MAX_EXT_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PreimageExt(String);

/// The `ext` text is longer than [`MAX_EXT_CHARS`] characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ext is larger than 4096 characters")]
pub struct ExtTooLong;

impl PreimageExt {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PreimageExt {
    type Err = ExtTooLong;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.chars().count() > MAX_EXT_CHARS {
            Err(ExtTooLong)
        } else {
            Ok(PreimageExt(s.to_owned()))
        }
    }
}
