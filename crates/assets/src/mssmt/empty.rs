//! The empty tree: the hash of an all-empty subtree at every depth.
//!
//! A sparse tree of 2^256 leaves is only computable because every empty subtree of a given
//! depth has the same hash. The table is computed once, on first use.

use std::sync::OnceLock;

use super::node::{branch_hash, ComputedNode, LeafNode, MAX_TREE_LEVELS};

/// Hashes of empty subtrees, indexed by depth: `[0]` is the empty root, `[256]` the empty leaf.
pub type EmptyTree = [ComputedNode; MAX_TREE_LEVELS + 1];

/// Returns the empty-subtree table, computing it (257 hashes) on the first call.
pub fn empty_tree() -> &'static EmptyTree {
    static TABLE: OnceLock<EmptyTree> = OnceLock::new();
    TABLE.get_or_init(|| {
        let leaf = LeafNode::empty().computed();
        let mut table = [leaf; MAX_TREE_LEVELS + 1];
        for depth in (0..MAX_TREE_LEVELS).rev() {
            let child = table[depth + 1].hash;
            table[depth] = ComputedNode::new(branch_hash(&child, &child, 0), 0);
        }
        table
    })
}

/// Returns the root of the tree in which every key maps to the empty leaf.
pub fn empty_tree_root() -> ComputedNode {
    empty_tree()[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mssmt::node::BranchNode;

    #[test]
    fn each_level_joins_two_copies_of_the_level_below() {
        let table = empty_tree();
        assert_eq!(table[MAX_TREE_LEVELS], LeafNode::empty().computed());
        for depth in 0..MAX_TREE_LEVELS {
            let child = table[depth + 1];
            let joined = BranchNode::new(child, child).expect("empty sums are 0");
            assert_eq!(table[depth], joined.computed(), "depth {depth}");
            assert_eq!(table[depth].sum, 0);
        }
        // All 257 hashes are distinct, so no level can be mistaken for another.
        let mut hashes: Vec<_> = table.iter().map(|n| n.hash).collect();
        hashes.sort();
        hashes.dedup();
        assert_eq!(hashes.len(), MAX_TREE_LEVELS + 1);
    }
}
