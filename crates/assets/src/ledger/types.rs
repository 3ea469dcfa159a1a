//! The ledger's nouns: the token, accounts, tasks and where collateral came from.

use std::fmt;
use std::str::FromStr;

use bitcoin::hashes::{sha256, Hash, HashEngine};
use serde::{Deserialize, Serialize};

use crate::mssmt::LeafKey;
use crate::util::hex;

/// A community's token. One token unit is backed by one satoshi of collateral.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Stable identifier, e.g. the community's name in lowercase.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Ticker, e.g. "WORK".
    pub symbol: String,
}

/// Longest token id, name or symbol accepted, in bytes.
pub const MAX_TOKEN_TEXT: usize = 64;

/// An account: a participant's Nostr public key (32-byte x-only key, shown as 64 hex digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId([u8; 32]);

/// Text that is not 64 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a 32-byte key in hex: {0:?}")]
pub struct BadId(pub String);

fn parse_hex32(s: &str) -> Result<[u8; 32], BadId> {
    let bad = || BadId(s.chars().take(80).collect());
    // `from_str_radix` alone would take a sign ("+f" reads as 0x0f).
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte =
            u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

impl AccountId {
    /// The account of this x-only public key.
    pub fn from_bytes(bytes: [u8; 32]) -> AccountId {
        AccountId(bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Where the account's balance sits in the supply tree.
    pub fn leaf_key(&self) -> LeafKey {
        tagged_key(b"moip/account", &self.0)
    }
}

impl FromStr for AccountId {
    type Err = BadId;
    fn from_str(s: &str) -> Result<Self, BadId> {
        parse_hex32(s).map(AccountId)
    }
}

impl TryFrom<String> for AccountId {
    type Error = BadId;
    fn try_from(s: String) -> Result<Self, BadId> {
        s.parse()
    }
}

impl From<AccountId> for String {
    fn from(id: AccountId) -> String {
        id.to_string()
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({self})")
    }
}

/// A task whose reward is held in escrow (the Work protocol's task id).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct TaskId(pub String);

/// Longest task id accepted, in bytes.
pub const MAX_TASK_ID: usize = 128;

impl TaskId {
    /// Where the task's escrow sits in the supply tree: escrowed tokens are still supply.
    pub fn leaf_key(&self) -> LeafKey {
        tagged_key(b"moip/escrow", self.0.as_bytes())
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a pending redemption's locked tokens sit in the supply tree.
pub(crate) fn redemption_key(id: u64) -> LeafKey {
    tagged_key(b"moip/redemption", &id.to_be_bytes())
}

fn tagged_key(tag: &[u8], data: &[u8]) -> LeafKey {
    let mut engine = sha256::Hash::engine();
    engine.input(tag);
    engine.input(data);
    LeafKey::from_byte_array(sha256::Hash::from_engine(engine).to_byte_array())
}

/// Where a collateral deposit came from; each source may be deposited once.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CollateralSource {
    /// A confirmed output paying the community's collateral descriptor.
    OnChain {
        /// `txid:vout`.
        outpoint: String,
    },
    /// A settled Lightning payment to the community's node.
    Lightning {
        /// The payment hash, hex.
        payment_hash: String,
    },
}

impl fmt::Display for CollateralSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollateralSource::OnChain { outpoint } => write!(f, "on-chain {outpoint}"),
            CollateralSource::Lightning { payment_hash } => write!(f, "lightning {payment_hash}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_refuse_signs_found_by_fuzzing() {
        // fuzz/artifacts api_bodies: a '+' inside the digits parsed, as 0x00 for "+0".
        let signed = "79be667ef9dcbbac55+06295ce870b07029bfcdb2dce28d959f2815b16f81798";
        assert_eq!(signed.parse::<AccountId>(), Err(BadId(signed.to_owned())));
        let plain = signed.replace('+', "0");
        let account: AccountId = plain.parse().expect("hex");
        assert_eq!(account.to_string(), plain);
    }
}
