//! Identifiers of the Electrum protocol: script hashes and transaction numbers.

use std::fmt;
use std::str::FromStr;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::Script;

/// `sha256(scriptPubKey)`, the key of every address query. Electrum writes it hex-encoded in
/// reversed byte order; internally it is kept in hash order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScriptHash(pub [u8; 32]);

impl ScriptHash {
    /// The script hash of an output script.
    pub fn of(script: &Script) -> ScriptHash {
        ScriptHash(sha256::Hash::hash(script.as_bytes()).to_byte_array())
    }
}

impl fmt::Display for ScriptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.iter().rev() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ScriptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScriptHash({self})")
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid script hash")]
pub struct BadScriptHash(pub String);

impl FromStr for ScriptHash {
    type Err = BadScriptHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadScriptHash(s.chars().take(80).collect());
        // `from_str_radix` alone would take a sign ("+f" reads as 0x0f).
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let text = std::str::from_utf8(chunk).map_err(|_| bad())?;
            out[31 - i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(ScriptHash(out))
    }
}

/// The position of a confirmed transaction in the whole chain: 0 for the first transaction of
/// block 1, counting up. Eight bytes in memory, five on disk (a trillion transactions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxNum(pub u64);

impl TxNum {
    /// On-disk width.
    pub const LEN: usize = 5;

    /// Big-endian, so keys sort by chain position.
    pub fn to_bytes(self) -> [u8; 5] {
        let b = self.0.to_be_bytes();
        [b[3], b[4], b[5], b[6], b[7]]
    }

    /// Reads five big-endian bytes.
    pub fn from_bytes(b: &[u8]) -> Option<TxNum> {
        let b: &[u8; 5] = b.get(..5)?.try_into().ok()?;
        Some(TxNum(u64::from_be_bytes([
            0, 0, 0, b[0], b[1], b[2], b[3], b[4],
        ])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::ScriptBuf;

    #[test]
    fn script_hash_matches_the_spec_example() {
        // The genesis block's P2PKH output (protocol-basics.rst, "Script Hashes").
        let script =
            ScriptBuf::from_hex("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac").expect("hex");
        let sh = ScriptHash::of(&script);
        assert_eq!(
            sh.to_string(),
            "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161"
        );
        assert_eq!(sh.to_string().parse::<ScriptHash>(), Ok(sh));
        assert!("zz".parse::<ScriptHash>().is_err());
        assert!("g".repeat(64).parse::<ScriptHash>().is_err());
    }

    #[test]
    fn script_hash_refuses_signs_found_by_fuzzing() {
        // fuzz/artifacts electrum_request: a '+' inside the digits parsed, as 0x0f for "+f".
        let signed = "8b01df4e368ea28f8d+0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161";
        assert_eq!(
            signed.parse::<ScriptHash>(),
            Err(BadScriptHash(signed.to_owned()))
        );
        assert!("+f".repeat(32).parse::<ScriptHash>().is_err());
    }

    #[test]
    fn txnum_round_trips_in_five_bytes() {
        for n in [0u64, 1, 255, 1 << 32, (1 << 40) - 1] {
            assert_eq!(TxNum::from_bytes(&TxNum(n).to_bytes()), Some(TxNum(n)));
        }
        assert!(
            TxNum(1).to_bytes() < TxNum(256).to_bytes(),
            "keys sort by number"
        );
        assert_eq!(TxNum::from_bytes(&[1, 2]), None);
    }
}
