//! Type-length-value records (BOLT #1): `BigSize type ‖ BigSize length ‖ value`.
//!
//! Decoding never allocates from a length read off the wire: a record borrows its value from
//! the input after checking that the input really holds that many bytes, so a forged length
//! costs nothing. Which types may appear, in which order, and whether repeats are allowed
//! differs per Moneysocket object, so those rules live with each object's decoder; this module
//! only frames records.

use crate::encoding::bigsize;
use crate::error::TlvError;

/// A record borrowed from the input it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The record type.
    pub tlv_type: u64,
    /// The record value.
    pub value: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// Decodes the record at the front of `input`, returning it and the bytes after it.
    ///
    /// # Errors
    ///
    /// [`TlvError::Type`] or [`TlvError::Length`] if a BigSize is malformed or cut short,
    /// [`TlvError::Truncated`] if the value is shorter than its length claims.
    pub fn decode(input: &'a [u8]) -> Result<(Self, &'a [u8]), TlvError> {
        let (tlv_type, rest) = bigsize::decode(input).map_err(TlvError::Type)?;
        let (length, rest) = bigsize::decode(rest).map_err(TlvError::Length)?;
        let truncated = TlvError::Truncated {
            length,
            available: rest.len(),
        };
        let length = usize::try_from(length).map_err(|_| truncated.clone())?;
        if rest.len() < length {
            return Err(truncated);
        }
        let (value, rest) = rest.split_at(length);
        Ok((Tlv { tlv_type, value }, rest))
    }

    /// Copies the record out of its input.
    pub fn to_raw(&self) -> RawTlv {
        RawTlv {
            tlv_type: self.tlv_type,
            value: self.value.to_vec(),
        }
    }
}

/// An owned record, used for records a decoder keeps without understanding them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawTlv {
    /// The record type.
    pub tlv_type: u64,
    /// The record value.
    pub value: Vec<u8>,
}

impl RawTlv {
    /// Appends the encoded record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode(self.tlv_type, &self.value, out);
    }
}

/// Appends the record `tlv_type ‖ len(value) ‖ value` to `out`.
pub fn encode(tlv_type: u64, value: &[u8], out: &mut Vec<u8>) {
    bigsize::encode(tlv_type, out);
    // A slice length always fits a u64 on the platforms Rust supports.
    bigsize::encode(value.len() as u64, out);
    out.extend_from_slice(value);
}

/// Returns the record `tlv_type ‖ len(value) ‖ value` as a new vector.
pub fn to_vec(tlv_type: u64, value: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(bigsize::encoded_len(tlv_type) + bigsize::MAX_BIGSIZE_LEN + value.len());
    encode(tlv_type, value, &mut out);
    out
}

/// Iterates over the records of a stream, stopping after the first malformed one.
pub fn iter(stream: &[u8]) -> TlvIter<'_> {
    TlvIter {
        rest: stream,
        failed: false,
    }
}

/// Checks that `stream` is a sequence of well-formed records and nothing else.
///
/// # Errors
///
/// The error of the first record that does not decode.
pub fn validate(stream: &[u8]) -> Result<(), TlvError> {
    iter(stream).try_for_each(|tlv| tlv.map(|_| ()))
}

/// Iterator returned by [`iter`].
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> TlvIter<'a> {
    /// The bytes not consumed yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<Tlv<'a>, TlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match Tlv::decode(self.rest) {
            Ok((tlv, rest)) => {
                self.rest = rest;
                Some(Ok(tlv))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BigSizeError;

    #[test]
    fn record_round_trips() {
        let bytes = to_vec(65979, b"abc");
        assert_eq!(
            bytes,
            [0xfe, 0x00, 0x01, 0x01, 0xbb, 0x03, b'a', b'b', b'c']
        );
        let (tlv, rest) = Tlv::decode(&bytes).expect("valid record");
        assert_eq!(
            tlv,
            Tlv {
                tlv_type: 65979,
                value: b"abc"
            }
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn truncated_value_is_rejected_without_allocating() {
        // A length of 2^64-1 must be refused by comparison, never by a failed allocation.
        let mut bytes = vec![0x01];
        bigsize::encode(u64::MAX, &mut bytes);
        assert_eq!(
            Tlv::decode(&bytes),
            Err(TlvError::Truncated {
                length: u64::MAX,
                available: 0
            })
        );
    }

    #[test]
    fn malformed_fields_are_attributed() {
        assert_eq!(
            Tlv::decode(&[]),
            Err(TlvError::Type(BigSizeError::UnexpectedEnd {
                needed: 1,
                available: 0
            }))
        );
        assert_eq!(
            Tlv::decode(&[0x00]),
            Err(TlvError::Length(BigSizeError::UnexpectedEnd {
                needed: 1,
                available: 0
            }))
        );
        assert_eq!(
            Tlv::decode(&[0xfd, 0x00, 0x01, 0x00]),
            Err(TlvError::Type(BigSizeError::NotMinimal { value: 1 }))
        );
    }

    #[test]
    fn stream_iteration_stops_at_first_error() {
        let stream = [0x01, 0x01, 0xaa, 0x02, 0x05, 0xbb];
        let items: Vec<_> = iter(&stream).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0],
            Ok(Tlv {
                tlv_type: 1,
                value: &[0xaa]
            })
        );
        assert!(matches!(
            items[1],
            Err(TlvError::Truncated {
                length: 5,
                available: 1
            })
        ));
        assert!(validate(&stream).is_err());
        assert!(validate(&stream[..3]).is_ok());
        assert!(validate(&[]).is_ok());
    }
}
