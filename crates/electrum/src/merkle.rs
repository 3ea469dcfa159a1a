//! Merkle branches for `transaction.get_merkle` and `id_from_pos`, and header checkpoint proofs
//! for `cp_height`. Hashes go in and out in internal byte order; callers print display order.

use bitcoin::hashes::{sha256d, Hash};

fn combine(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut data = [0u8; 64];
    data[..32].copy_from_slice(left);
    data[32..].copy_from_slice(right);
    sha256d::Hash::hash(&data).to_byte_array()
}

/// The branch from leaf `index` to the root, deepest pair first, and the root. An odd level
/// pairs its last hash with itself, as Bitcoin's Merkle tree does. `None` for a bad index.
pub fn branch_and_root(leaves: &[[u8; 32]], mut index: usize) -> Option<(Vec<[u8; 32]>, [u8; 32])> {
    if index >= leaves.len() {
        return None;
    }
    let mut level = leaves.to_vec();
    let mut branch = Vec::new();
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            level.push(*level.last().expect("non-empty"));
        }
        branch.push(level[index ^ 1]);
        level = level.chunks(2).map(|p| combine(&p[0], &p[1])).collect();
        index /= 2;
    }
    Some((branch, level[0]))
}

/// Recomputes a root from a leaf and its branch (what a client does).
pub fn root_from_branch(leaf: [u8; 32], branch: &[[u8; 32]], mut index: usize) -> [u8; 32] {
    let mut h = leaf;
    for sibling in branch {
        h = if index & 1 == 1 {
            combine(sibling, &h)
        } else {
            combine(&h, sibling)
        };
        index >>= 1;
    }
    h
}

/// A cache of the header Merkle tree over block hashes `0..=cp_height`, so repeated checkpoint
/// proofs do not rehash the whole chain (ElectrumX keeps a similar cache).
#[derive(Default)]
pub struct HeaderProofCache {
    cp_height: Option<u32>,
    levels: Vec<Vec<[u8; 32]>>,
}

impl HeaderProofCache {
    /// The branch for `height` and the root of the tree whose last leaf is `cp_height`.
    pub fn proof(
        &mut self,
        hashes: impl FnOnce() -> Vec<[u8; 32]>,
        height: u32,
        cp_height: u32,
    ) -> Option<(Vec<[u8; 32]>, [u8; 32])> {
        if height > cp_height {
            return None;
        }
        if self.cp_height != Some(cp_height) {
            let leaves = hashes();
            if leaves.len() != cp_height as usize + 1 {
                return None;
            }
            let mut levels = vec![leaves];
            while levels.last().expect("non-empty").len() > 1 {
                let mut level = levels.last().expect("non-empty").clone();
                if level.len() % 2 == 1 {
                    level.push(*level.last().expect("non-empty"));
                }
                levels.push(level.chunks(2).map(|p| combine(&p[0], &p[1])).collect());
            }
            self.levels = levels;
            self.cp_height = Some(cp_height);
        }
        let mut index = height as usize;
        let mut branch = Vec::with_capacity(self.levels.len());
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = level.get(index ^ 1).copied().unwrap_or(level[index]);
            branch.push(sibling);
            index /= 2;
        }
        Some((branch, self.levels.last()?[0]))
    }

    /// Forgets the cached tree (after a reorganisation).
    pub fn clear(&mut self) {
        self.cp_height = None;
        self.levels.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn branches_verify_for_every_position_and_size() {
        for size in 1..=9usize {
            let leaves: Vec<[u8; 32]> = (0..size as u8).map(leaf).collect();
            for index in 0..size {
                let (branch, root) = branch_and_root(&leaves, index).expect("in range");
                assert_eq!(
                    root_from_branch(leaves[index], &branch, index),
                    root,
                    "size {size} index {index}"
                );
                let mut cache = HeaderProofCache::default();
                let (cbranch, croot) = cache
                    .proof(|| leaves.clone(), index as u32, size as u32 - 1)
                    .expect("proof");
                assert_eq!((cbranch, croot), (branch.clone(), root));
            }
        }
        assert!(branch_and_root(&[leaf(1)], 1).is_none());
    }

    #[test]
    fn merkle_root_matches_a_real_block() {
        // Block 1 of regtest is generated; use the block structure from rust-bitcoin instead.
        let block = bitcoin::constants::genesis_block(bitcoin::Network::Bitcoin);
        let leaves: Vec<[u8; 32]> = block
            .txdata
            .iter()
            .map(|t| t.compute_txid().to_byte_array())
            .collect();
        let (_, root) = branch_and_root(&leaves, 0).expect("one tx");
        assert_eq!(root, block.header.merkle_root.to_byte_array());
    }
}
