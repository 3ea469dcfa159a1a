//! Node types of the MS-SMT and the two hash functions that define it.
//!
//! A leaf commits to `sha256(value || sum)` and a branch to
//! `sha256(left_hash || right_hash || left_sum + right_sum)`, sums as big-endian `u64`
//! (`bip-tap-ms-smt`). A leaf's hash does not depend on its key: the key only decides where
//! the leaf sits.

use core::fmt;

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::hex::DisplayHex;

use super::error::SumOverflowError;

/// Number of levels below the root, one per bit of a [`LeafKey`]. Leaves sit at depth 256.
pub const MAX_TREE_LEVELS: usize = 256;

/// A 32-byte node hash (sha256).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeHash([u8; 32]);

impl NodeHash {
    /// Wraps 32 raw bytes.
    pub const fn from_byte_array(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Returns the raw bytes.
    pub const fn to_byte_array(self) -> [u8; 32] {
        self.0
    }

    /// Borrows the raw bytes.
    pub const fn as_byte_array(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for NodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_hex())
    }
}

impl fmt::Debug for NodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeHash({})", self.0.as_hex())
    }
}

/// The 32-byte key that addresses a leaf.
///
/// Bit `i` (the branch taken at depth `i`, `false` = left) is `(key[i / 8] >> (i % 8)) & 1`:
/// the least-significant bit of each byte comes first, as in Taproot Assets.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeafKey([u8; 32]);

impl LeafKey {
    /// Wraps 32 raw bytes.
    pub const fn from_byte_array(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Returns the raw bytes.
    pub const fn to_byte_array(self) -> [u8; 32] {
        self.0
    }

    /// Borrows the raw bytes.
    pub const fn as_byte_array(&self) -> &[u8; 32] {
        &self.0
    }

    /// Returns the bit that chooses the child of the node at depth `index`: `true` means the
    /// right child.
    ///
    /// A key has 256 bits (indices 0..=255); larger indices read as `false`.
    pub fn bit(&self, index: usize) -> bool {
        self.0
            .get(index / 8)
            .is_some_and(|byte| (byte >> (index % 8)) & 1 == 1)
    }

    /// Returns the first depth at which `self` and `other` take different branches, or `None`
    /// when the keys are equal.
    pub fn first_difference(&self, other: &LeafKey) -> Option<usize> {
        (0..MAX_TREE_LEVELS).find(|&i| self.bit(i) != other.bit(i))
    }
}

impl From<[u8; 32]> for LeafKey {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for LeafKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_hex())
    }
}

impl fmt::Debug for LeafKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeafKey({})", self.0.as_hex())
    }
}

/// A node reduced to what its parent commits to: its hash and its sum.
///
/// Proof siblings and the children recorded in a [`BranchNode`] are of this kind
/// (Taproot Assets calls them "computed nodes").
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ComputedNode {
    /// The node's hash.
    pub hash: NodeHash,
    /// The sum of all leaves below the node.
    pub sum: u64,
}

impl ComputedNode {
    /// Bundles a hash and a sum.
    pub const fn new(hash: NodeHash, sum: u64) -> Self {
        Self { hash, sum }
    }
}

/// A leaf: an opaque value and the amount it contributes to every sum above it.
///
/// The empty leaf (empty value, sum 0) is what every absent key maps to.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct LeafNode {
    /// The committed value.
    pub value: Vec<u8>,
    /// The committed amount.
    pub sum: u64,
}

impl LeafNode {
    /// Constructs a leaf.
    pub fn new(value: impl Into<Vec<u8>>, sum: u64) -> Self {
        Self {
            value: value.into(),
            sum,
        }
    }

    /// Returns the empty leaf that every absent key maps to.
    pub const fn empty() -> Self {
        Self {
            value: Vec::new(),
            sum: 0,
        }
    }

    /// Tells whether this is the empty leaf; inserting it is the same as deleting the key.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty() && self.sum == 0
    }

    /// Computes `sha256(value || sum)`.
    pub fn hash(&self) -> NodeHash {
        let mut engine = sha256::Hash::engine();
        engine.input(&self.value);
        engine.input(&self.sum.to_be_bytes());
        NodeHash(sha256::Hash::from_engine(engine).to_byte_array())
    }

    /// Returns the leaf's hash and sum.
    pub fn computed(&self) -> ComputedNode {
        ComputedNode::new(self.hash(), self.sum)
    }
}

/// An inner node: the hashes and sums of its two children.
///
/// Construction checks that the children's sums add up within a `u64`, so every branch in
/// hand has a well-defined sum.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BranchNode {
    left: ComputedNode,
    right: ComputedNode,
    sum: u64,
}

impl BranchNode {
    /// Joins two children.
    ///
    /// # Errors
    ///
    /// [`SumOverflowError`] when `left.sum + right.sum` does not fit in a `u64`.
    pub fn new(left: ComputedNode, right: ComputedNode) -> Result<Self, SumOverflowError> {
        let sum = left
            .sum
            .checked_add(right.sum)
            .ok_or(SumOverflowError::new(left.sum, right.sum))?;
        Ok(Self { left, right, sum })
    }

    /// Joins `child` and `sibling`, putting `child` on the right when `child_is_right`.
    pub(crate) fn join(
        child: ComputedNode,
        sibling: ComputedNode,
        child_is_right: bool,
    ) -> Result<Self, SumOverflowError> {
        if child_is_right {
            Self::new(sibling, child)
        } else {
            Self::new(child, sibling)
        }
    }

    /// The left child.
    pub const fn left(&self) -> ComputedNode {
        self.left
    }

    /// The right child.
    pub const fn right(&self) -> ComputedNode {
        self.right
    }

    /// The child on the right if `right`, else on the left.
    pub const fn child(&self, right: bool) -> ComputedNode {
        if right {
            self.right
        } else {
            self.left
        }
    }

    /// `left.sum + right.sum`.
    pub const fn sum(&self) -> u64 {
        self.sum
    }

    /// Computes `sha256(left_hash || right_hash || sum)`.
    pub fn hash(&self) -> NodeHash {
        branch_hash(&self.left.hash, &self.right.hash, self.sum)
    }

    /// Returns the branch's hash and sum.
    pub fn computed(&self) -> ComputedNode {
        ComputedNode::new(self.hash(), self.sum)
    }
}

/// `sha256(left || right || sum_be)`; the caller has already checked the sum.
pub(crate) fn branch_hash(left: &NodeHash, right: &NodeHash, sum: u64) -> NodeHash {
    let mut engine = sha256::Hash::engine();
    engine.input(&left.0);
    engine.input(&right.0);
    engine.input(&sum.to_be_bytes());
    NodeHash(sha256::Hash::from_engine(engine).to_byte_array())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_bits_are_lsb_first() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0b0000_0010;
        bytes[31] = 0b1000_0000;
        let key = LeafKey::from_byte_array(bytes);
        let set: Vec<usize> = (0..MAX_TREE_LEVELS).filter(|&i| key.bit(i)).collect();
        assert!(!key.bit(256));
        assert_eq!(set, vec![1, 255]);
    }

    #[test]
    fn first_difference_finds_lowest_differing_bit() {
        let a = LeafKey::from_byte_array([0u8; 32]);
        let mut bytes = [0u8; 32];
        bytes[2] = 0b0001_0100;
        let b = LeafKey::from_byte_array(bytes);
        assert_eq!(a.first_difference(&b), Some(18));
        assert_eq!(a.first_difference(&a), None);
    }

    #[test]
    fn leaf_hash_is_sha256_of_value_and_big_endian_sum() {
        let leaf = LeafNode::new(vec![0xab, 0xcd], 0x0102_0304_0506_0708);
        let expected = sha256::Hash::hash(&[0xab, 0xcd, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(leaf.hash().to_byte_array(), expected.to_byte_array());
    }

    #[test]
    fn branch_hash_commits_to_children_and_sum() {
        let left = ComputedNode::new(NodeHash::from_byte_array([1; 32]), 5);
        let right = ComputedNode::new(NodeHash::from_byte_array([2; 32]), 7);
        let branch = BranchNode::new(left, right).expect("5 + 7 fits");
        let mut preimage = vec![1u8; 32];
        preimage.extend_from_slice(&[2u8; 32]);
        preimage.extend_from_slice(&12u64.to_be_bytes());
        assert_eq!(branch.sum(), 12);
        assert_eq!(
            branch.hash().to_byte_array(),
            sha256::Hash::hash(&preimage).to_byte_array()
        );
    }

    #[test]
    fn branch_refuses_overflowing_sum() {
        let left = ComputedNode::new(NodeHash::from_byte_array([1; 32]), u64::MAX);
        let right = ComputedNode::new(NodeHash::from_byte_array([2; 32]), 1);
        let err = BranchNode::new(left, right).expect_err("u64::MAX + 1 overflows");
        assert!(err.to_string().contains("integer overflow"));
    }

    #[test]
    fn empty_leaf_is_only_empty_value_with_zero_sum() {
        assert!(LeafNode::empty().is_empty());
        assert!(!LeafNode::new(vec![], 1).is_empty());
        assert!(!LeafNode::new(vec![0], 0).is_empty());
    }
}
