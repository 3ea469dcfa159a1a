//! A [`TreeStore`] in a hash map, for tests and trees that fit in memory.

use std::collections::HashMap;
use std::convert::Infallible;

use super::{ChangeSet, NodePosition, StoredNode, TreeStore};

/// Records held in memory. Cannot fail.
///
/// Two stores compare equal when they hold the same records; since the tree keeps one
/// canonical layout per set of leaves, that is when they hold the same leaves.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct MemoryStore {
    nodes: HashMap<NodePosition, StoredNode>,
}

impl MemoryStore {
    /// An empty store (the empty tree).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Tells whether no record is held, which is the case exactly for the empty tree.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl TreeStore for MemoryStore {
    type Error = Infallible;

    fn get(&self, position: &NodePosition) -> Result<Option<StoredNode>, Infallible> {
        Ok(self.nodes.get(position).cloned())
    }

    fn commit(&mut self, changes: ChangeSet) -> Result<(), Infallible> {
        for (position, node) in changes.into_changes() {
            match node {
                Some(node) => self.nodes.insert(position, node),
                None => self.nodes.remove(&position),
            };
        }
        Ok(())
    }
}
