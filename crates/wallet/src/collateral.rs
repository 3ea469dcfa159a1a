//! The community collateral (seed 004): coins held by `k` of `n` guardians, with a recovery key
//! that can move them alone only after they sat `N` blocks unmoved.
//!
//! The descriptor is a taproot output whose key path is provably unspendable (the BIP341 NUMS
//! point `H`, whose discrete log nobody knows), with two script leaves:
//!
//! ```text
//! tr(H, { multi_a(k, G1, …, Gn), and_v(v:pk(R), older(N)) })
//! ```
//!
//! Guardians spend by passing a PSBT around until `k` have signed; the recovery key's leaf is
//! only valid in a transaction whose input's sequence is at least `N` (BIP68/BIP112), so the
//! network refuses it earlier. Guardian and recovery keys are extended public keys with origin,
//! derived from each person's mnemonic at `m/87'/coin'/0'` ([`collateral_key`]), so the wallet
//! can hand out a fresh address per deposit.

use std::collections::BTreeMap;
use std::str::FromStr;

use bdk_wallet::descriptor::policy::{Policy, SatisfiableItem};
use bdk_wallet::keys::{DescriptorPublicKey, DescriptorSecretKey};
use bip39::Mnemonic;
use bitcoin::bip32::{ChildNumber, DerivationPath, Xpriv};
use bitcoin::secp256k1::Secp256k1;
use bitcoin::Network;
use serde::{Deserialize, Serialize};

use crate::error::WalletError;

/// BIP341's nothing-up-my-sleeve point: `lift_x(SHA256(G))`, a key with no known private key.
pub const NUMS: &str = "50929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0";

/// Who holds the collateral and on what terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollateralPolicy {
    /// How many guardians must sign.
    pub threshold: usize,
    /// The guardians' keys (`[fingerprint/87'/1'/0']tpub…/0/*`).
    pub guardians: Vec<String>,
    /// The recovery key, same form.
    pub recovery: String,
    /// Blocks a coin must sit before the recovery key alone may move it.
    pub recovery_blocks: u16,
}

impl CollateralPolicy {
    /// Checks the policy is one a community can actually use.
    pub fn validate(&self) -> Result<(), WalletError> {
        let n = self.guardians.len();
        if n == 0 || self.threshold == 0 || self.threshold > n {
            return Err(WalletError::Descriptor(format!(
                "a {}-of-{n} multisig cannot be spent",
                self.threshold
            )));
        }
        if n > 999 {
            return Err(WalletError::Descriptor("too many guardians".into()));
        }
        if self.recovery_blocks == 0 {
            return Err(WalletError::Descriptor(
                "the recovery delay must be at least one block".into(),
            ));
        }
        let mut keys: Vec<&String> = self.guardians.iter().chain([&self.recovery]).collect();
        for key in &keys {
            DescriptorPublicKey::from_str(key)
                .map_err(|e| WalletError::Descriptor(format!("bad key {key}: {e}")))?;
        }
        keys.sort();
        keys.dedup();
        if keys.len() != n + 1 {
            return Err(WalletError::Descriptor(
                "every guardian and the recovery key must be different keys".into(),
            ));
        }
        Ok(())
    }

    /// The output descriptor (public keys only).
    pub fn descriptor(&self) -> Result<String, WalletError> {
        self.validate()?;
        Ok(format!(
            "tr({NUMS},{{multi_a({},{}),and_v(v:pk({}),older({}))}})",
            self.threshold,
            self.guardians.join(","),
            self.recovery,
            self.recovery_blocks
        ))
    }
}

/// A person's collateral key from their mnemonic: the public key expression to share with the
/// community, and the secret one their own wallet signs with.
pub fn collateral_key(
    mnemonic: &Mnemonic,
    passphrase: &str,
    network: Network,
) -> Result<(DescriptorPublicKey, DescriptorSecretKey), WalletError> {
    let secp = Secp256k1::new();
    let seed = mnemonic.to_seed(passphrase);
    let master =
        Xpriv::new_master(network, &seed).map_err(|e| WalletError::Descriptor(e.to_string()))?;
    let coin = if network == Network::Bitcoin { 0 } else { 1 };
    let path = DerivationPath::from(vec![
        ChildNumber::from_hardened_idx(87).map_err(|e| WalletError::Descriptor(e.to_string()))?,
        ChildNumber::from_hardened_idx(coin).map_err(|e| WalletError::Descriptor(e.to_string()))?,
        ChildNumber::from_hardened_idx(0).map_err(|e| WalletError::Descriptor(e.to_string()))?,
    ]);
    let account = master
        .derive_priv(&secp, &path)
        .map_err(|e| WalletError::Descriptor(e.to_string()))?;
    let secret = format!(
        "[{}/87h/{coin}h/0h]{account}/0/*",
        master.fingerprint(&secp)
    );
    let secret = DescriptorSecretKey::from_str(&secret)
        .map_err(|e| WalletError::Descriptor(e.to_string()))?;
    let public = secret
        .to_public(&secp)
        .map_err(|e| WalletError::Descriptor(e.to_string()))?;
    Ok((public, secret))
}

/// The policy path (BDK's `policy_path`) that satisfies `policy` through the first branch
/// containing an item `want` accepts: the multisig leaf for guardians, the timelock leaf for
/// the recovery key.
pub fn path_to(
    policy: &Policy,
    want: &dyn Fn(&SatisfiableItem) -> bool,
) -> Option<BTreeMap<String, Vec<usize>>> {
    let mut path = BTreeMap::new();
    walk(policy, want, &mut path).then_some(path)
}

fn contains(policy: &Policy, want: &dyn Fn(&SatisfiableItem) -> bool) -> bool {
    want(&policy.item)
        || matches!(&policy.item, SatisfiableItem::Thresh { items, .. } if items.iter().any(|p| contains(p, want)))
}

fn walk(
    policy: &Policy,
    want: &dyn Fn(&SatisfiableItem) -> bool,
    path: &mut BTreeMap<String, Vec<usize>>,
) -> bool {
    if want(&policy.item) {
        return true;
    }
    let SatisfiableItem::Thresh { items, threshold } = &policy.item else {
        return false;
    };
    if *threshold == items.len() {
        path.insert(policy.id.clone(), (0..items.len()).collect());
        return items.iter().any(|item| walk(item, want, path));
    }
    let Some(hit) = items.iter().position(|p| contains(p, want)) else {
        return false;
    };
    // A k-of-n choice: the wanted branch first, then other branches that involve no timelock.
    let mut chosen = vec![hit];
    for (i, item) in items.iter().enumerate() {
        if chosen.len() >= *threshold {
            break;
        }
        if i != hit
            && !contains(item, &|s| {
                matches!(s, SatisfiableItem::RelativeTimelock { .. })
            })
        {
            chosen.push(i);
        }
    }
    path.insert(policy.id.clone(), chosen);
    walk(&items[hit], want, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(word: u8) -> String {
        let mnemonic = Mnemonic::from_entropy(&[word; 16]).expect("entropy");
        collateral_key(&mnemonic, "", Network::Regtest)
            .expect("key")
            .0
            .to_string()
    }

    #[test]
    fn descriptor_has_the_nums_key_and_both_leaves() {
        let policy = CollateralPolicy {
            threshold: 2,
            guardians: vec![key(1), key(2), key(3)],
            recovery: key(4),
            recovery_blocks: 144,
        };
        let d = policy.descriptor().expect("descriptor");
        assert!(d.starts_with(&format!("tr({NUMS},{{multi_a(2,")));
        assert!(d.ends_with("older(144))})"));
        let parsed = bdk_wallet::miniscript::Descriptor::<DescriptorPublicKey>::from_str(&d);
        assert!(parsed.is_ok(), "{d}: {parsed:?}");
    }

    #[test]
    fn unusable_policies_are_refused() {
        let base = CollateralPolicy {
            threshold: 2,
            guardians: vec![key(1), key(2)],
            recovery: key(4),
            recovery_blocks: 10,
        };
        for bad in [
            CollateralPolicy {
                threshold: 3,
                ..base.clone()
            },
            CollateralPolicy {
                threshold: 0,
                ..base.clone()
            },
            CollateralPolicy {
                recovery: key(1),
                ..base.clone()
            },
            CollateralPolicy {
                recovery_blocks: 0,
                ..base.clone()
            },
            CollateralPolicy {
                guardians: vec![key(1), "xpub-nonsense".into()],
                ..base.clone()
            },
        ] {
            assert!(bad.descriptor().is_err(), "{bad:?}");
        }
        assert!(base.descriptor().is_ok());
    }
}
