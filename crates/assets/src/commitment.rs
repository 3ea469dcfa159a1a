//! The supply commitment: a ledger's supply-tree root (hash and sum) committed on chain.
//!
//! The root goes into a tapscript leaf, in the manner of Taproot Assets (which puts its
//! asset-tree root in a leaf of the anchoring output): the leaf script is
//! `OP_RETURN <"moip/supply/v1"> <root hash> <sum, 8 bytes big-endian>` — a leaf that can never
//! be executed, only revealed — under the BIP341 NUMS internal key, so the output is
//! provably unspendable and its key is a function of the root alone. The same transaction
//! carries the root and sum in an `OP_RETURN` output, so anyone holding the transaction can
//! read what was committed and recompute the taproot output to check it: a commitment cannot
//! be claimed for a transaction that does not contain it.
//!
//! This is not Taproot Assets (no asset ids, no proofs of individual coins, no `tapd`
//! interoperability): it commits one number and one hash per epoch, which is what proof of
//! liabilities needs.

use std::str::FromStr;

use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::script::{Builder, Instruction, PushBytesBuf};
use bitcoin::secp256k1::{Secp256k1, Verification, XOnlyPublicKey};
use bitcoin::taproot::TaprootBuilder;
use bitcoin::{Address, Amount, Network, ScriptBuf, Transaction};

use crate::mssmt::{ComputedNode, NodeHash};

/// BIP341's nothing-up-my-sleeve point, `lift_x(SHA256(G))`: a key nobody can sign for.
const NUMS: &str = "50929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0";

/// Marks the leaf script and the `OP_RETURN` payload.
pub const TAG: &[u8] = b"moip/supply/v1";

/// The value given to the taproot commitment output: the P2TR dust limit.
pub const COMMITMENT_VALUE: Amount = Amount::from_sat(330);

/// A committed supply: the tree's root hash and sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupplyCommitment {
    /// The supply tree's root hash.
    pub root: NodeHash,
    /// Its sum: the supply.
    pub sum: u64,
}

/// Why a transaction is not a valid supply commitment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommitmentError {
    /// No `OP_RETURN` output carries a moip supply commitment.
    #[error("the transaction carries no supply commitment")]
    Missing,
    /// More than one does: ambiguous, refused.
    #[error("the transaction carries more than one supply commitment")]
    Ambiguous,
    /// The `OP_RETURN` names a root, but no output commits to it in its taproot key.
    #[error("no taproot output commits to the root the transaction announces")]
    NotCommitted,
}

impl From<ComputedNode> for SupplyCommitment {
    fn from(node: ComputedNode) -> SupplyCommitment {
        SupplyCommitment {
            root: node.hash,
            sum: node.sum,
        }
    }
}

fn payload(c: &SupplyCommitment) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(TAG.len() + 40);
    bytes.extend_from_slice(TAG);
    bytes.extend_from_slice(c.root.as_byte_array());
    bytes.extend_from_slice(&c.sum.to_be_bytes());
    bytes
}

fn push(bytes: &[u8]) -> PushBytesBuf {
    // Every push here is at most 54 bytes, far below the 520-byte limit.
    PushBytesBuf::try_from(bytes.to_vec()).unwrap_or_default()
}

impl SupplyCommitment {
    /// The tapscript leaf: `OP_RETURN <tag> <root> <sum>`.
    pub fn leaf_script(&self) -> ScriptBuf {
        Builder::new()
            .push_opcode(OP_RETURN)
            .push_slice(push(TAG))
            .push_slice(push(self.root.as_byte_array()))
            .push_slice(push(&self.sum.to_be_bytes()))
            .into_script()
    }

    /// The taproot output committing to the leaf, under the NUMS internal key.
    pub fn script_pubkey<C: Verification>(&self, secp: &Secp256k1<C>) -> ScriptBuf {
        let internal = XOnlyPublicKey::from_str(NUMS).expect("the NUMS point is a valid key");
        let spend_info = TaprootBuilder::new()
            .add_leaf(0, self.leaf_script())
            .expect("one leaf at depth 0")
            .finalize(secp, internal)
            .expect("a complete tree");
        ScriptBuf::new_p2tr_tweaked(spend_info.output_key())
    }

    /// [`SupplyCommitment::script_pubkey`] as an address, for wallets that pay addresses.
    pub fn address(&self, network: Network) -> Address {
        let secp = Secp256k1::verification_only();
        Address::from_script(&self.script_pubkey(&secp), network)
            .expect("a P2TR script has an address")
    }

    /// The `OP_RETURN` payload announcing the commitment: tag, root, sum (54 bytes).
    pub fn announcement(&self) -> Vec<u8> {
        payload(self)
    }

    /// Reads an announcement back from an output script.
    pub fn from_op_return(script: &ScriptBuf) -> Option<SupplyCommitment> {
        let mut instructions = script.instructions();
        match instructions.next() {
            Some(Ok(Instruction::Op(op))) if op == OP_RETURN => {}
            _ => return None,
        }
        let Some(Ok(Instruction::PushBytes(data))) = instructions.next() else {
            return None;
        };
        let data = data.as_bytes();
        if instructions.next().is_some() || data.len() != TAG.len() + 40 || !data.starts_with(TAG) {
            return None;
        }
        let rest = &data[TAG.len()..];
        let mut root = [0u8; 32];
        root.copy_from_slice(&rest[..32]);
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&rest[32..]);
        Some(SupplyCommitment {
            root: NodeHash::from_byte_array(root),
            sum: u64::from_be_bytes(sum),
        })
    }

    /// The commitment in `tx` and the index of its taproot output, checked: the announced
    /// root must be the one the taproot output's key commits to.
    ///
    /// # Errors
    /// [`CommitmentError`] when the transaction carries none, several, or an announcement
    /// without its taproot output.
    pub fn find_in(tx: &Transaction) -> Result<(SupplyCommitment, u32), CommitmentError> {
        let mut announced = tx
            .output
            .iter()
            .filter_map(|o| SupplyCommitment::from_op_return(&o.script_pubkey));
        let commitment = announced.next().ok_or(CommitmentError::Missing)?;
        if announced.next().is_some() {
            return Err(CommitmentError::Ambiguous);
        }
        let secp = Secp256k1::verification_only();
        let expected = commitment.script_pubkey(&secp);
        let vout = tx
            .output
            .iter()
            .position(|o| o.script_pubkey == expected)
            .ok_or(CommitmentError::NotCommitted)?;
        Ok((commitment, vout as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;
    use bitcoin::TxOut;

    fn commitment(sum: u64) -> SupplyCommitment {
        SupplyCommitment {
            root: NodeHash::from_byte_array([7; 32]),
            sum,
        }
    }

    fn tx(outputs: Vec<ScriptBuf>) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![],
            output: outputs
                .into_iter()
                .map(|script_pubkey| TxOut {
                    value: COMMITMENT_VALUE,
                    script_pubkey,
                })
                .collect(),
        }
    }

    fn op_return(c: &SupplyCommitment) -> ScriptBuf {
        ScriptBuf::new_op_return(push(&c.announcement()))
    }

    #[test]
    fn a_commitment_is_found_and_checked() {
        let secp = Secp256k1::verification_only();
        let c = commitment(1_000);
        let good = tx(vec![op_return(&c), c.script_pubkey(&secp)]);
        assert_eq!(SupplyCommitment::find_in(&good), Ok((c, 1)));
        // The output key depends on the sum: a different supply is a different output.
        assert_ne!(
            commitment(1_001).script_pubkey(&secp),
            c.script_pubkey(&secp)
        );
        assert!(c
            .address(Network::Regtest)
            .to_string()
            .starts_with("bcrt1p"));

        // An announcement with no matching taproot output, or one for another supply.
        let lying = tx(vec![op_return(&commitment(5)), c.script_pubkey(&secp)]);
        assert_eq!(
            SupplyCommitment::find_in(&lying),
            Err(CommitmentError::NotCommitted)
        );
        assert_eq!(
            SupplyCommitment::find_in(&tx(vec![c.script_pubkey(&secp)])),
            Err(CommitmentError::Missing)
        );
        let twice = tx(vec![op_return(&c), op_return(&c), c.script_pubkey(&secp)]);
        assert_eq!(
            SupplyCommitment::find_in(&twice),
            Err(CommitmentError::Ambiguous)
        );
        // Other OP_RETURNs are not announcements.
        assert_eq!(
            SupplyCommitment::from_op_return(&ScriptBuf::new_op_return(push(b"hello"))),
            None
        );
    }
}
