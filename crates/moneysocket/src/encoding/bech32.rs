//! Bech32 text (BIP-173 checksum, not bech32m) for arbitrary byte strings.
//!
//! BIP-173 caps strings at 90 characters because that is what segwit addresses need; a
//! Moneysocket beacon carries a seed plus a list of locations and routinely runs to 100–250
//! characters, so the references drop that cap. We do not drop the bound altogether: strings
//! are limited to [`MAX_BECH32_LEN`] characters, the length of the BCH code behind the bech32
//! checksum. Up to that length the checksum still guarantees detection of up to 4 errors
//! (BIP-173 §Checksum design); beyond it the guarantee is gone, so longer strings would be
//! neither safe to type nor safe to trust. It also bounds the work and memory a decoder spends
//! on a hostile string (at most 628 bytes of payload).
//!
//! Bytes are regrouped 8→5 bits with zero padding when encoding; decoding requires the
//! leftover bits to be fewer than five and all zero, as BIP-173 says, so one byte string has
//! exactly one encoding per case.

use bitcoin::bech32::primitives::decode::CheckedHrpstring;
use bitcoin::bech32::{self, Bech32, Hrp};

use crate::error::Bech32Error;

/// The longest bech32 string, in characters, that is encoded or decoded.
pub const MAX_BECH32_LEN: usize = 1023;

/// Encodes `data` under the human-readable part `hrp`, in lower case.
///
/// # Errors
///
/// [`Bech32Error::Hrp`] if `hrp` is not a valid BIP-173 human-readable part,
/// [`Bech32Error::TooLong`] if the result would exceed [`MAX_BECH32_LEN`].
pub fn encode(hrp: &str, data: &[u8]) -> Result<String, Bech32Error> {
    let hrp = Hrp::parse(hrp).map_err(Bech32Error::Hrp)?;
    // hrp + separator + ceil(8n/5) data characters + 6 checksum characters.
    let len = hrp.as_str().len() + 1 + (data.len() * 8).div_ceil(5) + 6;
    if len > MAX_BECH32_LEN {
        return Err(Bech32Error::TooLong {
            len,
            max: MAX_BECH32_LEN,
        });
    }
    bech32::encode_lower::<Bech32>(hrp, data).map_err(|_| Bech32Error::TooLong {
        len,
        max: MAX_BECH32_LEN,
    })
}

/// Decodes a bech32 string into its lower-cased human-readable part and data bytes.
///
/// All-upper-case input (as QR codes carry it) is accepted; mixed case is not.
///
/// # Errors
///
/// [`Bech32Error::TooLong`] past [`MAX_BECH32_LEN`], [`Bech32Error::Invalid`] for anything
/// BIP-173 rejects (including a bad checksum or an empty human-readable part), and
/// [`Bech32Error::Padding`] if the data does not regroup into whole bytes.
pub fn decode(s: &str) -> Result<(String, Vec<u8>), Bech32Error> {
    if s.len() > MAX_BECH32_LEN {
        return Err(Bech32Error::TooLong {
            len: s.len(),
            max: MAX_BECH32_LEN,
        });
    }
    let checked = CheckedHrpstring::new::<Bech32>(s).map_err(Bech32Error::Invalid)?;
    checked
        .validate_segwit_padding()
        .map_err(|_| Bech32Error::Padding)?;
    Ok((checked.hrp().to_lowercase(), checked.byte_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_past_ninety_characters() {
        let data: Vec<u8> = (0..=255).collect();
        let s = encode("moneysocket", &data).expect("fits the limit");
        assert!(s.len() > 90);
        assert_eq!(decode(&s), Ok(("moneysocket".to_owned(), data)));
        assert_eq!(decode(&s.to_uppercase()).map(|(_, d)| d.len()), Ok(256));
    }

    #[test]
    fn length_limit_is_enforced_both_ways() {
        let data = vec![0u8; 700];
        assert!(matches!(
            encode("moneysocket", &data),
            Err(Bech32Error::TooLong { .. })
        ));
        let long = "a".repeat(MAX_BECH32_LEN + 1);
        assert!(matches!(decode(&long), Err(Bech32Error::TooLong { .. })));
    }

    #[test]
    fn rejects_bech32m_and_mixed_case() {
        // BIP-350 test vector: valid bech32m, so its bech32 checksum is wrong.
        assert!(matches!(decode("a1lqfn3a"), Err(Bech32Error::Invalid(_))));
        // BIP-173 valid vector, then the same with one letter upper-cased.
        assert!(decode("a12uel5l").is_ok());
        assert!(matches!(decode("A12uel5l"), Err(Bech32Error::Invalid(_))));
    }

    /// Encodes raw 5-bit groups, so tests can build data parts no byte string produces.
    fn encode_groups(hrp: &str, groups: &[bech32::Fe32]) -> String {
        use bech32::Fe32IterExt;
        let hrp = Hrp::parse(hrp).expect("valid hrp");
        groups
            .iter()
            .copied()
            .with_checksum::<Bech32>(&hrp)
            .chars()
            .collect()
    }

    #[test]
    fn rejects_bad_padding() {
        use bech32::Fe32;
        // 0b11111_11100: 8 bits of data plus 2 zero padding bits.
        let ok = encode_groups("moneysocket", &[Fe32::L, Fe32::U]);
        assert_eq!(decode(&ok).map(|(_, d)| d), Ok(vec![0xff]));
        // 0b11111_11111: the 2 padding bits are not zero.
        let nonzero = encode_groups("moneysocket", &[Fe32::L, Fe32::L]);
        assert_eq!(decode(&nonzero), Err(Bech32Error::Padding));
        // A whole 5-bit group of padding (5 leftover bits), even if zero.
        let too_much = encode_groups("moneysocket", &[Fe32::Q]);
        assert_eq!(decode(&too_much), Err(Bech32Error::Padding));
    }
}
