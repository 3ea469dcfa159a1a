//! Merkle proofs: the 256 siblings on a key's path, and their verification.
//!
//! The same proof type proves inclusion (the key maps to a given leaf) and exclusion (the key
//! maps to the empty leaf). Verification only hashes; it needs no store.

use super::compressed::CompressedProof;
use super::empty::empty_tree;
use super::error::{ProofDecodeError, SumOverflowError, VerifyError};
use super::node::{BranchNode, ComputedNode, LeafKey, LeafNode, MAX_TREE_LEVELS};

/// The siblings of every node on a key's path, ordered as Taproot Assets orders them: index 0
/// is the leaf's sibling (depth 256), index 255 the root's child (depth 1).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Proof {
    // Boxed: 10 KiB is too much to move around by value.
    siblings: Box<[ComputedNode; MAX_TREE_LEVELS]>,
}

impl Proof {
    /// Wraps 256 siblings, leaf's sibling first.
    pub fn new(siblings: [ComputedNode; MAX_TREE_LEVELS]) -> Self {
        Self {
            siblings: Box::new(siblings),
        }
    }

    /// The proof of a key in the empty tree: every sibling is empty.
    pub fn empty() -> Self {
        let empty = empty_tree();
        Self::new(std::array::from_fn(|index| empty[MAX_TREE_LEVELS - index]))
    }

    /// The siblings, leaf's sibling first.
    pub fn siblings(&self) -> &[ComputedNode; MAX_TREE_LEVELS] {
        &self.siblings
    }

    /// Mutable siblings, leaf's sibling first.
    pub fn siblings_mut(&mut self) -> &mut [ComputedNode; MAX_TREE_LEVELS] {
        &mut self.siblings
    }

    /// Sets the sibling of the node at `depth` (1..=256) on the path.
    pub(crate) fn set_sibling_at_depth(&mut self, depth: usize, node: ComputedNode) {
        if let Some(slot) = MAX_TREE_LEVELS
            .checked_sub(depth)
            .and_then(|index| self.siblings.get_mut(index))
        {
            *slot = node;
        }
    }

    /// Computes the root that `leaf` at `key` leads to through these siblings.
    ///
    /// # Errors
    ///
    /// [`SumOverflowError`] when a branch sum on the way overflows: no tree has such a root.
    pub fn root(&self, key: &LeafKey, leaf: &LeafNode) -> Result<ComputedNode, SumOverflowError> {
        let mut current = leaf.computed();
        for (sibling, depth) in self.siblings.iter().zip((0..MAX_TREE_LEVELS).rev()) {
            current = BranchNode::join(current, *sibling, key.bit(depth))?.computed();
        }
        Ok(current)
    }

    /// Checks that `root` maps `key` to `leaf`.
    ///
    /// # Errors
    ///
    /// [`VerifyError`] when the proof leads elsewhere or its sums overflow.
    pub fn verify_inclusion(
        &self,
        root: &ComputedNode,
        key: &LeafKey,
        leaf: &LeafNode,
    ) -> Result<(), VerifyError> {
        let computed = self.root(key, leaf)?;
        if computed == *root {
            Ok(())
        } else {
            Err(VerifyError::RootMismatch {
                expected: *root,
                computed,
            })
        }
    }

    /// Checks that `root` maps `key` to the empty leaf, i.e. that the key is absent.
    ///
    /// # Errors
    ///
    /// [`VerifyError`] when the proof leads elsewhere or its sums overflow.
    pub fn verify_exclusion(&self, root: &ComputedNode, key: &LeafKey) -> Result<(), VerifyError> {
        self.verify_inclusion(root, key, &LeafNode::empty())
    }

    /// Replaces empty siblings with a bitmap.
    pub fn compress(&self) -> CompressedProof {
        CompressedProof::from_proof(self)
    }

    /// Encodes the proof in Taproot Assets' compressed format.
    pub fn to_compressed_bytes(&self) -> Vec<u8> {
        self.compress().encode()
    }

    /// Decodes a proof from Taproot Assets' compressed format.
    ///
    /// # Errors
    ///
    /// [`ProofDecodeError`] when the bytes are malformed, truncated or followed by more bytes.
    pub fn from_compressed_bytes(bytes: &[u8]) -> Result<Self, ProofDecodeError> {
        Ok(CompressedProof::decode(bytes)?.decompress())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mssmt::empty::empty_tree_root;
    use crate::mssmt::node::NodeHash;

    #[test]
    fn empty_proof_proves_exclusion_from_empty_tree() {
        let key = LeafKey::from_byte_array([0x5a; 32]);
        let proof = Proof::empty();
        assert_eq!(proof.verify_exclusion(&empty_tree_root(), &key), Ok(()));
        let leaf = LeafNode::new(b"x".to_vec(), 1);
        assert!(matches!(
            proof.verify_inclusion(&empty_tree_root(), &key, &leaf),
            Err(VerifyError::RootMismatch { .. })
        ));
    }

    #[test]
    fn overflowing_siblings_are_refused() {
        let key = LeafKey::from_byte_array([0; 32]);
        let mut proof = Proof::empty();
        proof.siblings_mut()[7] = ComputedNode::new(NodeHash::from_byte_array([1; 32]), u64::MAX);
        let leaf = LeafNode::new(b"x".to_vec(), 1);
        let root = ComputedNode::new(NodeHash::from_byte_array([0; 32]), 0);
        assert!(matches!(
            proof.verify_inclusion(&root, &key, &leaf),
            Err(VerifyError::SumOverflow(_))
        ));
    }
}
