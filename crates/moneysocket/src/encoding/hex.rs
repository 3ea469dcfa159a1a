//! Hexadecimal text, as used for seeds, rendezvous ids, preimages and public keys.
//!
//! Both cases are accepted on input (the references accept anything in Python's
//! `string.hexdigits`); output is always lower case.

use crate::error::HexError;

/// Decodes exactly `N` bytes. Checks the characters before the length, as the references
/// do, so the error says "not hex" for text that is both too short and not hex.
pub(crate) fn decode_array<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let digits = digits(s)?;
    if digits.len() != 2 * N {
        return Err(HexError::InvalidLength {
            expected: 2 * N,
            found: digits.len(),
        });
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (pair[0] << 4) | pair[1];
    }
    Ok(out)
}

/// Decodes an even number of hex digits into bytes.
pub(crate) fn decode_vec(s: &str) -> Result<Vec<u8>, HexError> {
    let digits = digits(s)?;
    if digits.len() % 2 != 0 {
        return Err(HexError::InvalidLength {
            expected: digits.len() + 1,
            found: digits.len(),
        });
    }
    Ok(digits
        .chunks_exact(2)
        .map(|pair| (pair[0] << 4) | pair[1])
        .collect())
}

/// Encodes bytes as lower-case hex.
pub(crate) fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn digits(s: &str) -> Result<Vec<u8>, HexError> {
    s.bytes()
        .map(|c| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(HexError::InvalidCharacter),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_kinds() {
        assert_eq!(decode_array::<2>("aBcD"), Ok([0xab, 0xcd]));
        assert_eq!(encode(&[0xab, 0xcd]), "abcd");
        assert_eq!(
            decode_array::<2>("abc"),
            Err(HexError::InvalidLength {
                expected: 4,
                found: 3
            })
        );
        assert_eq!(decode_array::<2>("xyz"), Err(HexError::InvalidCharacter));
        assert_eq!(decode_vec(""), Ok(vec![]));
        assert_eq!(
            decode_vec("a"),
            Err(HexError::InvalidLength {
                expected: 2,
                found: 1
            })
        );
        assert_eq!(decode_vec("ab cd"), Err(HexError::InvalidCharacter));
    }
}
