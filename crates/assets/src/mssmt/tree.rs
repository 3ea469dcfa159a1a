//! The tree: insert, delete, get, root and proofs over any [`TreeStore`].
//!
//! Every operation walks one path from the root, reading one record per stored level, so its
//! cost depends on the depth of the path (at most 256), never on the number of leaves. An
//! update is planned in memory as a [`ChangeSet`] and handed to the store in one commit; if
//! planning fails (a sum overflows, a record is corrupt) nothing is written.

use super::empty::empty_tree;
use super::error::{CorruptStoreError, TreeError};
use super::node::{branch_hash, BranchNode, ComputedNode, LeafKey, LeafNode, MAX_TREE_LEVELS};
use super::proof::Proof;
use super::store::{ChangeSet, CompactedLeaf, NodePosition, StoredNode, TreeStore};

/// A Merkle-Sum Sparse Merkle Tree (`bip-tap-ms-smt`) kept in a [`TreeStore`].
///
/// Every 32-byte key maps to a leaf, the empty leaf unless set. The root commits to all
/// leaves and to the sum of their amounts.
///
/// One `MsSmt` must be the only writer of its store: updates read the path, then commit.
#[derive(Debug)]
pub struct MsSmt<S> {
    store: S,
}

/// What the walk found at the end of the stored path.
enum Terminal {
    /// An empty subtree: the key maps to the empty leaf.
    Empty,
    /// A subtree holding this one leaf, which may or may not be the key's.
    Leaf(CompactedLeaf),
}

/// The stored nodes on a key's path.
struct Walk {
    /// The branch at depth `d` is `branches[d]`.
    branches: Vec<BranchNode>,
    /// Depth of the terminal, which is `branches.len()`.
    depth: usize,
    terminal: Terminal,
}

/// An update ready to commit.
struct Plan {
    changes: ChangeSet,
    root: ComputedNode,
}

/// The new content of the subtree on the key's path, at the level being rebuilt.
enum Subtree {
    Empty,
    /// One leaf, whose record must end up at the top of this single-leaf subtree.
    Single {
        record: CompactedLeaf,
        /// Depth where the record is stored now, if it is stored at all.
        stored_at: Option<usize>,
        summary: ComputedNode,
    },
    /// Two leaves or more: a branch record is stored at this level.
    Multi(ComputedNode),
}

impl Subtree {
    fn summary(&self, depth: usize) -> ComputedNode {
        match self {
            Subtree::Empty => empty_tree()[depth],
            Subtree::Single { summary, .. } | Subtree::Multi(summary) => *summary,
        }
    }
}

impl<S: TreeStore> MsSmt<S> {
    /// Wraps a store; an empty store is the empty tree.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Returns the root's hash and sum.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub fn root(&self) -> Result<ComputedNode, TreeError<S::Error>> {
        let record = self
            .store
            .get(&NodePosition::root())
            .map_err(TreeError::Store)?;
        Ok(match record {
            None => empty_tree()[0],
            Some(StoredNode::Branch(branch)) => branch.computed(),
            Some(StoredNode::Leaf(leaf)) => compacted_summary(&leaf, 0),
        })
    }

    /// Returns the leaf at `key`, the empty leaf if the key was never set or was deleted.
    ///
    /// # Errors
    ///
    /// When the store fails or its records contradict each other.
    pub fn get(&self, key: &LeafKey) -> Result<LeafNode, TreeError<S::Error>> {
        Ok(match self.walk(key)?.terminal {
            Terminal::Leaf(found) if found.key == *key => found.leaf,
            _ => LeafNode::empty(),
        })
    }

    /// Sets the leaf at `key` and returns the new root. Inserting the empty leaf deletes.
    ///
    /// # Errors
    ///
    /// [`TreeError::SumOverflow`] when a sum would exceed `u64::MAX`; store errors otherwise.
    /// On error the tree is unchanged.
    pub fn insert(
        &mut self,
        key: &LeafKey,
        leaf: LeafNode,
    ) -> Result<ComputedNode, TreeError<S::Error>> {
        match self.plan(key, leaf)? {
            Some(Plan { changes, root }) => {
                self.store.commit(changes).map_err(TreeError::Store)?;
                Ok(root)
            }
            None => self.root(),
        }
    }

    /// Resets `key` to the empty leaf and returns the new root. Deleting an absent key does
    /// nothing.
    ///
    /// # Errors
    ///
    /// When the store fails or its records contradict each other. On error the tree is
    /// unchanged.
    pub fn delete(&mut self, key: &LeafKey) -> Result<ComputedNode, TreeError<S::Error>> {
        self.insert(key, LeafNode::empty())
    }

    /// Returns the proof of what `key` maps to: an inclusion proof if the key is set, an
    /// exclusion proof (for the empty leaf) otherwise.
    ///
    /// # Errors
    ///
    /// When the store fails or its records contradict each other.
    pub fn merkle_proof(&self, key: &LeafKey) -> Result<Proof, TreeError<S::Error>> {
        let walk = self.walk(key)?;
        let mut proof = Proof::empty();
        for (depth, branch) in walk.branches.iter().enumerate() {
            proof.set_sibling_at_depth(depth + 1, branch.child(!key.bit(depth)));
        }
        // Below the stored path all siblings are empty, except where the path leaves the one
        // other leaf of this subtree.
        if let Terminal::Leaf(other) = walk.terminal {
            if let Some(fork) = key.first_difference(&other.key) {
                proof.set_sibling_at_depth(fork + 1, compacted_summary(&other, fork + 1));
            }
        }
        Ok(proof)
    }

    /// Reads the stored path of `key`, checking each record against its parent's summary.
    fn walk(&self, key: &LeafKey) -> Result<Walk, TreeError<S::Error>> {
        let mut branches = Vec::new();
        // What the parent branch records for the node at `depth`; none for the root.
        let mut expected: Option<ComputedNode> = None;
        // One empty subtree per depth, 0..=256.
        for (depth, empty_here) in empty_tree().iter().enumerate() {
            let terminal = if expected.is_some_and(|summary| summary == *empty_here) {
                Terminal::Empty
            } else {
                let position = NodePosition::on_path(key, depth);
                match self.store.get(&position).map_err(TreeError::Store)? {
                    None if expected.is_none() => Terminal::Empty,
                    None => return Err(CorruptStoreError::MissingNode { depth }.into()),
                    Some(StoredNode::Leaf(found)) => {
                        if NodePosition::on_path(&found.key, depth) != position {
                            return Err(CorruptStoreError::LeafOffPath { depth }.into());
                        }
                        // The sum is checked; the hash would cost `256 - depth` hashes.
                        if expected.is_some_and(|summary| summary.sum != found.leaf.sum) {
                            return Err(CorruptStoreError::SummaryMismatch { depth }.into());
                        }
                        Terminal::Leaf(found)
                    }
                    Some(StoredNode::Branch(branch)) => {
                        if depth == MAX_TREE_LEVELS {
                            return Err(CorruptStoreError::BranchAtLeafDepth.into());
                        }
                        if expected.is_some_and(|summary| summary != branch.computed()) {
                            return Err(CorruptStoreError::SummaryMismatch { depth }.into());
                        }
                        expected = Some(branch.child(key.bit(depth)));
                        branches.push(branch);
                        continue;
                    }
                }
            };
            return Ok(Walk {
                branches,
                depth,
                terminal,
            });
        }
        // Depth 256 always returns above: a branch there is refused.
        Err(CorruptStoreError::BranchAtLeafDepth.into())
    }

    /// Computes the records that setting `key` to `leaf` changes, and the new root; `None`
    /// when nothing changes (deleting an absent key).
    fn plan(&self, key: &LeafKey, leaf: LeafNode) -> Result<Option<Plan>, TreeError<S::Error>> {
        let empty = empty_tree();
        let Walk {
            branches,
            depth: top,
            terminal,
        } = self.walk(key)?;
        let mut changes = ChangeSet::default();

        // The subtree at the end of the stored path.
        let mut subtree = match terminal {
            Terminal::Empty if leaf.is_empty() => return Ok(None),
            Terminal::Empty => {
                let record = CompactedLeaf { key: *key, leaf };
                let summary = compacted_summary(&record, top);
                Subtree::Single {
                    record,
                    stored_at: None,
                    summary,
                }
            }
            Terminal::Leaf(other) if other.key != *key => {
                if leaf.is_empty() {
                    return Ok(None);
                }
                let new = CompactedLeaf { key: *key, leaf };
                Subtree::Multi(split(&mut changes, top, other, new)?)
            }
            Terminal::Leaf(_) if leaf.is_empty() => {
                changes.delete(NodePosition::on_path(key, top));
                Subtree::Empty
            }
            Terminal::Leaf(_) => {
                let record = CompactedLeaf { key: *key, leaf };
                let summary = compacted_summary(&record, top);
                Subtree::Single {
                    record,
                    stored_at: Some(top),
                    summary,
                }
            }
        };

        // Rebuild the stored path bottom-up, keeping the layout compacted: a branch record
        // only where both sides hold leaves, a leaf record at the top of its lone subtree.
        for (depth, branch) in branches.iter().enumerate().rev() {
            let go_right = key.bit(depth);
            let sibling = branch.child(!go_right);
            let sibling_is_empty = sibling == empty[depth + 1];
            let parent = BranchNode::join(subtree.summary(depth + 1), sibling, go_right)?;
            let position = NodePosition::on_path(key, depth);
            subtree = match subtree {
                Subtree::Multi(_) => {
                    changes.put(position, StoredNode::Branch(parent));
                    Subtree::Multi(parent.computed())
                }
                Subtree::Single {
                    record, stored_at, ..
                } if sibling_is_empty => {
                    changes.delete(position);
                    Subtree::Single {
                        record,
                        stored_at,
                        summary: parent.computed(),
                    }
                }
                Subtree::Single {
                    record, stored_at, ..
                } => {
                    place(&mut changes, record, stored_at, depth + 1);
                    changes.put(position, StoredNode::Branch(parent));
                    Subtree::Multi(parent.computed())
                }
                Subtree::Empty if sibling_is_empty => {
                    changes.delete(position);
                    Subtree::Empty
                }
                Subtree::Empty => {
                    // Our side emptied: if the sibling is a lone leaf it moves up.
                    let sibling_position = NodePosition::sibling_on_path(key, depth + 1);
                    match self
                        .store
                        .get(&sibling_position)
                        .map_err(TreeError::Store)?
                    {
                        Some(StoredNode::Leaf(record)) => {
                            changes.delete(position);
                            Subtree::Single {
                                record,
                                stored_at: Some(depth + 1),
                                summary: parent.computed(),
                            }
                        }
                        Some(StoredNode::Branch(_)) => {
                            changes.put(position, StoredNode::Branch(parent));
                            Subtree::Multi(parent.computed())
                        }
                        None => {
                            return Err(CorruptStoreError::MissingNode { depth: depth + 1 }.into())
                        }
                    }
                }
            };
        }

        let root = match subtree {
            Subtree::Empty => empty[0],
            Subtree::Single {
                record,
                stored_at,
                summary,
            } => {
                place(&mut changes, record, stored_at, 0);
                summary
            }
            Subtree::Multi(root) => root,
        };
        Ok(Some(Plan { changes, root }))
    }
}

/// Stores a lone leaf at `depth` on its path, removing it from where it was.
fn place(changes: &mut ChangeSet, record: CompactedLeaf, stored_at: Option<usize>, depth: usize) {
    if let Some(old) = stored_at.filter(|&old| old != depth) {
        changes.delete(NodePosition::on_path(&record.key, old));
    }
    changes.put(
        NodePosition::on_path(&record.key, depth),
        StoredNode::Leaf(record),
    );
}

/// Puts two leaves that share the subtree at `top` below the branch where their keys fork, and
/// returns the new summary of the subtree at `top`.
fn split<E>(
    changes: &mut ChangeSet,
    top: usize,
    old: CompactedLeaf,
    new: CompactedLeaf,
) -> Result<ComputedNode, TreeError<E>> {
    let fork = new
        .key
        .first_difference(&old.key)
        .filter(|&fork| fork >= top)
        .ok_or(CorruptStoreError::LeafOffPath { depth: top })?;
    let empty = empty_tree();
    let key = new.key;
    let new_summary = compacted_summary(&new, fork + 1);
    let old_summary = compacted_summary(&old, fork + 1);
    let mut branch = BranchNode::join(new_summary, old_summary, key.bit(fork))?;

    changes.delete(NodePosition::on_path(&old.key, top));
    changes.put(
        NodePosition::on_path(&old.key, fork + 1),
        StoredNode::Leaf(old),
    );
    changes.put(NodePosition::on_path(&key, fork + 1), StoredNode::Leaf(new));
    changes.put(
        NodePosition::on_path(&key, fork),
        StoredNode::Branch(branch),
    );
    // Above the fork, up to `top`, the other side of each branch is empty.
    for depth in (top..fork).rev() {
        branch = BranchNode::join(branch.computed(), empty[depth + 1], key.bit(depth))?;
        changes.put(
            NodePosition::on_path(&key, depth),
            StoredNode::Branch(branch),
        );
    }
    Ok(branch.computed())
}

/// The hash and sum of the subtree at `depth` that holds only `record`'s leaf: the leaf
/// hashed up through empty siblings (`256 - depth` hashes).
fn compacted_summary(record: &CompactedLeaf, depth: usize) -> ComputedNode {
    let empty = empty_tree();
    let mut current = record.leaf.computed();
    for level in (depth..MAX_TREE_LEVELS).rev() {
        let sibling = &empty[level + 1].hash;
        // The empty sibling's sum is 0, so the sum carries over unchanged.
        current.hash = if record.key.bit(level) {
            branch_hash(sibling, &current.hash, current.sum)
        } else {
            branch_hash(&current.hash, sibling, current.sum)
        };
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mssmt::node::NodeHash;
    use crate::mssmt::store::MemoryStore;

    fn key_with_bits(bits: &[usize]) -> LeafKey {
        let mut bytes = [0u8; 32];
        for &bit in bits {
            bytes[bit / 8] |= 1 << (bit % 8);
        }
        LeafKey::from_byte_array(bytes)
    }

    fn corrupt_tree(records: Vec<(NodePosition, StoredNode)>) -> MsSmt<MemoryStore> {
        let mut changes = ChangeSet::default();
        for (position, node) in records {
            changes.put(position, node);
        }
        let mut store = MemoryStore::new();
        store.commit(changes).expect("memory store");
        MsSmt::new(store)
    }

    #[test]
    fn keys_forking_at_the_last_bit_store_leaves_at_depth_256() {
        let a = key_with_bits(&[]);
        let b = key_with_bits(&[255]);
        let mut tree = MsSmt::new(MemoryStore::new());
        tree.insert(&a, LeafNode::new(b"a".to_vec(), 1))
            .expect("insert");
        assert_eq!(
            tree.store().len(),
            1,
            "a lone leaf is one record at the root"
        );
        tree.insert(&b, LeafNode::new(b"b".to_vec(), 2))
            .expect("insert");
        // 256 branches (depths 0..=255) and the two leaves at depth 256.
        assert_eq!(tree.store().len(), MAX_TREE_LEVELS + 2);
        let position = NodePosition::on_path(&b, MAX_TREE_LEVELS);
        assert!(matches!(
            tree.store().get(&position),
            Ok(Some(StoredNode::Leaf(_)))
        ));
        let root = tree.delete(&b).expect("delete");
        assert_eq!(
            tree.store().len(),
            1,
            "the remaining leaf moves back to the root"
        );
        assert_eq!(
            root,
            compacted_summary(
                &CompactedLeaf {
                    key: a,
                    leaf: LeafNode::new(b"a".to_vec(), 1)
                },
                0
            )
        );
    }

    #[test]
    fn missing_child_record_is_reported() {
        let child = ComputedNode::new(NodeHash::from_byte_array([1; 32]), 3);
        let branch = BranchNode::new(child, empty_tree()[1]).expect("fits");
        let tree = corrupt_tree(vec![(NodePosition::root(), StoredNode::Branch(branch))]);
        let err = tree.get(&key_with_bits(&[])).expect_err("dangling branch");
        assert!(matches!(
            err,
            TreeError::Corrupt(CorruptStoreError::MissingNode { depth: 1 })
        ));
        // The other side is empty by the branch's own record and needs no read.
        assert_eq!(
            tree.get(&key_with_bits(&[0])).expect("get"),
            LeafNode::empty()
        );
    }

    #[test]
    fn leaf_stored_off_its_path_is_reported() {
        let record = CompactedLeaf {
            key: key_with_bits(&[0]),
            leaf: LeafNode::new(b"x".to_vec(), 3),
        };
        let summary = compacted_summary(&record, 1);
        // The leaf's key goes right at depth 0, but it is stored on the left.
        let branch = BranchNode::new(summary, empty_tree()[1]).expect("fits");
        let tree = corrupt_tree(vec![
            (NodePosition::root(), StoredNode::Branch(branch)),
            (
                NodePosition::on_path(&key_with_bits(&[]), 1),
                StoredNode::Leaf(record),
            ),
        ]);
        let err = tree.get(&key_with_bits(&[])).expect_err("misplaced leaf");
        assert!(matches!(
            err,
            TreeError::Corrupt(CorruptStoreError::LeafOffPath { depth: 1 })
        ));
    }

    #[test]
    fn record_disagreeing_with_parent_is_reported() {
        let record = CompactedLeaf {
            key: key_with_bits(&[]),
            leaf: LeafNode::new(b"x".to_vec(), 3),
        };
        // The parent claims a sum of 4 for a leaf of sum 3.
        let claimed = ComputedNode::new(compacted_summary(&record, 1).hash, 4);
        let branch = BranchNode::new(claimed, empty_tree()[1]).expect("fits");
        let mut tree = corrupt_tree(vec![
            (NodePosition::root(), StoredNode::Branch(branch)),
            (
                NodePosition::on_path(&record.key, 1),
                StoredNode::Leaf(record.clone()),
            ),
        ]);
        let before = tree.store().clone();
        let err = tree
            .insert(&record.key, LeafNode::new(b"y".to_vec(), 1))
            .expect_err("inconsistent records");
        assert!(matches!(
            err,
            TreeError::Corrupt(CorruptStoreError::SummaryMismatch { depth: 1 })
        ));
        assert_eq!(tree.store(), &before, "nothing written on error");
    }

    #[test]
    fn deleting_an_absent_key_writes_nothing() {
        let mut tree = MsSmt::new(MemoryStore::new());
        let a = key_with_bits(&[3]);
        let root = tree
            .insert(&a, LeafNode::new(b"a".to_vec(), 1))
            .expect("insert");
        let before = tree.store().clone();
        assert_eq!(tree.delete(&key_with_bits(&[4])).expect("delete"), root);
        assert_eq!(tree.store(), &before);
    }
}
