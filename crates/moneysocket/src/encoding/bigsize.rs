//! BigSize, the variable-length unsigned integer of BOLT #1.
//!
//! Values below `0xfd` take one byte; larger ones a marker byte (`0xfd`, `0xfe`, `0xff`)
//! followed by a big-endian `u16`, `u32` or `u64`. Every value has exactly one valid encoding:
//! the decoder rejects longer-than-necessary forms, so that two peers never disagree about
//! whether two encodings are the same message.
//!
//! See <https://github.com/lightning/bolts/blob/master/01-messaging.md#appendix-a-bigsize-test-vectors>.

use crate::error::BigSizeError;

/// The most bytes a BigSize can occupy (marker plus `u64`).
pub const MAX_BIGSIZE_LEN: usize = 9;

/// Returns how many bytes [`encode`] writes for `value`.
pub fn encoded_len(value: u64) -> usize {
    match value {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Appends the minimal encoding of `value` to `out`.
pub fn encode(value: u64, out: &mut Vec<u8>) {
    match value {
        0..=0xfc => out.push(value as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(value as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(value as u32).to_be_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

/// Returns the minimal encoding of `value` as a new vector.
pub fn to_vec(value: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(value));
    encode(value, &mut out);
    out
}

/// Decodes one BigSize from the front of `input`, returning it and the bytes after it.
///
/// # Errors
///
/// [`BigSizeError::UnexpectedEnd`] if `input` is shorter than the encoding its first byte
/// announces, [`BigSizeError::NotMinimal`] if the value would fit a shorter form.
pub fn decode(input: &[u8]) -> Result<(u64, &[u8]), BigSizeError> {
    let (&marker, rest) = input.split_first().ok_or(BigSizeError::UnexpectedEnd {
        needed: 1,
        available: 0,
    })?;
    let (width, minimum) = match marker {
        0xfd => (2, 0xfd),
        0xfe => (4, 0x1_0000),
        0xff => (8, 0x1_0000_0000),
        small => return Ok((u64::from(small), rest)),
    };
    if rest.len() < width {
        return Err(BigSizeError::UnexpectedEnd {
            needed: width + 1,
            available: input.len(),
        });
    }
    let (digits, rest) = rest.split_at(width);
    let value = digits
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if value < minimum {
        return Err(BigSizeError::NotMinimal { value });
    }
    Ok((value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BOLT #1 appendix A vectors (decoding): name, input, expected value or error kind.
    #[test]
    fn bolt1_decoding_vectors() {
        let ok: &[(&str, &[u8], u64)] = &[
            ("zero", &[0x00], 0),
            ("one byte high", &[0xfc], 252),
            ("two byte low", &[0xfd, 0x00, 0xfd], 253),
            ("two byte high", &[0xfd, 0xff, 0xff], 65535),
            ("four byte low", &[0xfe, 0x00, 0x01, 0x00, 0x00], 65536),
            (
                "four byte high",
                &[0xfe, 0xff, 0xff, 0xff, 0xff],
                4_294_967_295,
            ),
            (
                "eight byte low",
                &[0xff, 0, 0, 0, 1, 0, 0, 0, 0],
                4_294_967_296,
            ),
            ("eight byte high", &[0xff; 9], u64::MAX),
        ];
        for (name, input, want) in ok {
            let (got, rest) = decode(input).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, *want, "{name}");
            assert!(rest.is_empty(), "{name}");
            assert_eq!(to_vec(*want), *input, "{name}: encoding");
            assert_eq!(encoded_len(*want), input.len(), "{name}: encoded_len");
        }

        let not_minimal: &[(&str, &[u8])] = &[
            ("two byte not canonical", &[0xfd, 0x00, 0xfc]),
            ("four byte not canonical", &[0xfe, 0x00, 0x00, 0xff, 0xff]),
            (
                "eight byte not canonical",
                &[0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
            ),
        ];
        for (name, input) in not_minimal {
            assert!(
                matches!(decode(input), Err(BigSizeError::NotMinimal { .. })),
                "{name}"
            );
        }

        let short: &[(&str, &[u8])] = &[
            ("two byte short read", &[0xfd, 0x00]),
            ("four byte short read", &[0xfe, 0xff, 0xff]),
            ("eight byte short read", &[0xff, 0xff, 0xff, 0xff, 0xff]),
            ("one byte no read", &[]),
            ("two byte no read", &[0xfd]),
            ("four byte no read", &[0xfe]),
            ("eight byte no read", &[0xff]),
        ];
        for (name, input) in short {
            assert!(
                matches!(decode(input), Err(BigSizeError::UnexpectedEnd { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn decode_leaves_the_rest() {
        let (value, rest) = decode(&[0xfd, 0x01, 0xbb, 0xaa]).expect("valid bigsize");
        assert_eq!(value, 443);
        assert_eq!(rest, &[0xaa]);
    }
}
