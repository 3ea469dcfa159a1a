//! The storage seam: what the tree reads and writes, and the trait a backend implements.
//!
//! The tree never stores the 2^256 nodes it describes. It keeps a *compacted* layout:
//!
//! - a subtree with no leaf has no record (its hash is in [`empty_tree`](super::empty_tree));
//! - a subtree with exactly one leaf is a single [`StoredNode::Leaf`] record at the subtree's
//!   top, and the hashes of the empty levels below it are recomputed when needed;
//! - a subtree with two or more leaves is a [`StoredNode::Branch`] record holding the hash and
//!   sum of both children.
//!
//! So `n` leaves take fewer than `2n` records plus the single-child branches above keys that
//! share a long prefix. Records are addressed by [`NodePosition`] (depth and key prefix), not
//! by hash: equal subtrees at different places (two equal leaves, say) never share a record,
//! so deleting one cannot destroy the other.

mod memory;
mod record;
mod rocksdb;

use std::collections::BTreeMap;

pub use self::memory::MemoryStore;
pub use self::rocksdb::RocksDbStore;
pub use record::{decode_record, encode_record};

use super::node::{BranchNode, LeafKey, LeafNode, MAX_TREE_LEVELS};

/// Where a record lives: a depth (0 = root, 256 = leaf) and the key bits above it.
///
/// Bits at and below `depth` are cleared, so every key whose path crosses this node maps to
/// the same position.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodePosition {
    depth: u16,
    prefix: [u8; 32],
}

impl NodePosition {
    /// Length of [`to_bytes`](Self::to_bytes).
    pub const ENCODED_LEN: usize = 34;

    /// The root's position.
    pub const fn root() -> Self {
        Self {
            depth: 0,
            prefix: [0; 32],
        }
    }

    /// The position of the node at `depth` on `key`'s path. `depth` is at most 256.
    pub(crate) fn on_path(key: &LeafKey, depth: usize) -> Self {
        debug_assert!(depth <= MAX_TREE_LEVELS, "depth {depth} below the leaves");
        let mut prefix = key.to_byte_array();
        for (index, byte) in prefix.iter_mut().enumerate() {
            let first_bit = index * 8;
            if depth <= first_bit {
                *byte = 0;
            } else if depth < first_bit + 8 {
                // Keep the low `depth - first_bit` bits: bit order is LSB first.
                *byte &= (1u8 << (depth - first_bit)) - 1;
            }
        }
        Self {
            depth: u16::try_from(depth).unwrap_or(u16::MAX),
            prefix,
        }
    }

    /// The position of the sibling of the node at `depth` on `key`'s path (`depth` ≥ 1).
    pub(crate) fn sibling_on_path(key: &LeafKey, depth: usize) -> Self {
        debug_assert!((1..=MAX_TREE_LEVELS).contains(&depth));
        let mut position = Self::on_path(key, depth);
        let bit = depth - 1;
        if let Some(byte) = position.prefix.get_mut(bit / 8) {
            *byte ^= 1 << (bit % 8);
        }
        position
    }

    /// Depth of the node (0 = root, 256 = leaf).
    pub fn depth(&self) -> usize {
        usize::from(self.depth)
    }

    /// The key bits above the node, the rest cleared.
    pub fn prefix(&self) -> &[u8; 32] {
        &self.prefix
    }

    /// A fixed-length encoding, big-endian depth then prefix, usable as a database key.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..2].copy_from_slice(&self.depth.to_be_bytes());
        out[2..].copy_from_slice(&self.prefix);
        out
    }
}

/// A subtree holding exactly one leaf, stored at the subtree's top.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CompactedLeaf {
    /// The leaf's full key (its position only tells the first bits).
    pub key: LeafKey,
    /// The leaf.
    pub leaf: LeafNode,
}

/// One record of the compacted layout.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StoredNode {
    /// A subtree with at least two leaves.
    Branch(BranchNode),
    /// A subtree with exactly one leaf.
    Leaf(CompactedLeaf),
}

/// The records one tree update writes or deletes; a store applies it atomically.
///
/// Each position appears once, with its final state (`None` = delete).
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct ChangeSet {
    changes: BTreeMap<NodePosition, Option<StoredNode>>,
}

impl ChangeSet {
    pub(crate) fn put(&mut self, position: NodePosition, node: StoredNode) {
        self.changes.insert(position, Some(node));
    }

    pub(crate) fn delete(&mut self, position: NodePosition) {
        self.changes.insert(position, None);
    }

    /// The changes in position order; `None` means the record is deleted.
    pub fn iter(&self) -> impl Iterator<Item = (&NodePosition, Option<&StoredNode>)> {
        self.changes.iter().map(|(pos, node)| (pos, node.as_ref()))
    }

    /// Consumes the set, yielding changes in position order.
    pub fn into_changes(self) -> impl Iterator<Item = (NodePosition, Option<StoredNode>)> {
        self.changes.into_iter()
    }

    /// Number of positions touched.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Tells whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// A backend holding the compacted records of one tree.
///
/// The tree is generic over this trait, so the same code runs in memory or on disk. A store
/// only maps positions to records; it knows nothing of hashing.
pub trait TreeStore {
    /// The backend's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Reads the record at `position`, `None` if there is none.
    ///
    /// # Errors
    ///
    /// When the backend fails or holds an unreadable record.
    fn get(&self, position: &NodePosition) -> Result<Option<StoredNode>, Self::Error>;

    /// Applies every change of `changes`, all or none.
    ///
    /// # Errors
    ///
    /// When the backend fails; then none of the changes may be visible.
    fn commit(&mut self, changes: ChangeSet) -> Result<(), Self::Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_keeps_only_bits_above_depth() {
        let key = LeafKey::from_byte_array([0xff; 32]);
        let root = NodePosition::on_path(&key, 0);
        assert_eq!(root.prefix(), &[0u8; 32]);
        let at_11 = NodePosition::on_path(&key, 11);
        let mut expected = [0u8; 32];
        expected[0] = 0xff;
        expected[1] = 0b0000_0111;
        assert_eq!(at_11.prefix(), &expected);
        assert_eq!(at_11.depth(), 11);
        let leaf = NodePosition::on_path(&key, 256);
        assert_eq!(leaf.prefix(), &[0xff; 32]);
        assert_eq!(&leaf.to_bytes()[..2], &[1, 0]);
    }

    #[test]
    fn sibling_position_flips_the_last_bit() {
        let key = LeafKey::from_byte_array([0u8; 32]);
        let sibling = NodePosition::sibling_on_path(&key, 10);
        let mut expected = [0u8; 32];
        expected[1] = 0b0000_0010; // bit 9
        assert_eq!(sibling.prefix(), &expected);
        assert_eq!(sibling.depth(), 10);
        let mut other = [0u8; 32];
        other[1] = 0b0000_0010;
        assert_eq!(
            sibling,
            NodePosition::on_path(&LeafKey::from_byte_array(other), 10)
        );
    }
}
