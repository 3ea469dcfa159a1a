//! Errors of the encoding primitives shared by both protocol generations.
//!
//! Each protocol object (beacon, wad, message, ...) has its own error enum next to its codec;
//! those wrap the primitive errors below so a caller can still see, for example, that a beacon
//! failed because a BigSize inside it was not minimally encoded.

/// A BigSize (BOLT #1 variable-length integer) could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BigSizeError {
    /// The input ended before the BigSize (or its prefix byte) was complete.
    #[error("input ended inside a bigsize: needed {needed} bytes, {available} available")]
    UnexpectedEnd {
        /// Bytes the encoding needs, prefix included.
        needed: usize,
        /// Bytes that were left in the input.
        available: usize,
    },
    /// The value was encoded with more bytes than its size requires.
    #[error("bigsize value {value} is not minimally encoded")]
    NotMinimal {
        /// The decoded (but non-canonical) value.
        value: u64,
    },
}

/// A type-length-value record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlvError {
    /// The type field is not a valid BigSize.
    #[error("could not read tlv type: {0}")]
    Type(BigSizeError),
    /// The length field is not a valid BigSize.
    #[error("could not read tlv length: {0}")]
    Length(BigSizeError),
    /// The length field claims more bytes than the input holds.
    #[error("tlv value truncated: length {length}, {available} bytes available")]
    Truncated {
        /// The length the record claims.
        length: u64,
        /// Bytes that were left in the input.
        available: usize,
    },
}

/// A bech32 string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Bech32Error {
    /// The string is longer than [`crate::encoding::bech32::MAX_BECH32_LEN`].
    #[error("bech32 string of {len} characters exceeds the limit of {max}")]
    TooLong {
        /// Length of the offered string in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The string is not well-formed bech32 (characters, case, separator, checksum).
    #[error("invalid bech32 string: {0}")]
    Invalid(bitcoin::bech32::primitives::decode::CheckedHrpstringError),
    /// A human-readable part to encode is not valid BIP-173 (1 to 83 printable ASCII).
    #[error("invalid bech32 human-readable part: {0}")]
    Hrp(bitcoin::bech32::primitives::hrp::Error),
    /// The data part does not regroup into whole bytes (more than 4 padding bits, or
    /// non-zero padding), so it cannot be a byte string.
    #[error("bech32 data part has invalid padding")]
    Padding,
}

/// A hexadecimal string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// A character is not a hexadecimal digit.
    #[error("not a hex string")]
    InvalidCharacter,
    /// The digit count is wrong: odd, or not the size the field requires.
    #[error("hex string has {found} digits, expected {expected}")]
    InvalidLength {
        /// Digits required (for variable-length fields: the found count rounded to even).
        expected: usize,
        /// Digits present.
        found: usize,
    },
}

/// A UUID field could not be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UuidError {
    /// The text is not a UUID.
    #[error("invalid uuid")]
    Invalid,
    /// The UUID is valid but not a random (RFC 4122 version 4) one.
    #[error("uuid is not uuid version 4")]
    NotVersion4,
}
