//! Merkle-Sum Sparse Merkle Tree (MS-SMT), as Taproot Assets defines it (`bip-tap-ms-smt`).
//!
//! A sparse Merkle tree over 2^256 keys in which every node also commits to the sum of the
//! amounts below it. The root therefore proves both *what* is in the tree and *how much*: a
//! supply commitment whose root sum is the total supply, with proofs that a key holds a
//! given leaf (inclusion) or nothing (exclusion).
//!
//! - [`LeafNode`] and [`BranchNode`]: leaf `sha256(value || sum)`, branch
//!   `sha256(left || right || left_sum + right_sum)`, sums big-endian `u64`;
//! - [`empty_tree`]: the hash of an empty subtree at each depth;
//! - [`MsSmt`]: insert, delete, get, root and proofs, generic over a [`TreeStore`]
//!   ([`MemoryStore`] or [`RocksDbStore`]);
//! - [`Proof`] and [`CompressedProof`]: verification, and Taproot Assets' compressed encoding.
//!
//! Any update that would make a sum exceed `u64::MAX` is refused with
//! [`TreeError::SumOverflow`] and leaves the tree unchanged.
//!
//! ```
//! use moip_assets::mssmt::{LeafKey, LeafNode, MemoryStore, MsSmt, Proof};
//!
//! let mut tree = MsSmt::new(MemoryStore::new());
//! let alice = LeafKey::from_byte_array([1; 32]);
//! let bob = LeafKey::from_byte_array([2; 32]);
//! let root = tree.insert(&alice, LeafNode::new(b"alice".to_vec(), 70)).unwrap();
//! assert_eq!(root.sum, 70);
//!
//! let proof = tree.merkle_proof(&alice).unwrap();
//! proof.verify_inclusion(&root, &alice, &LeafNode::new(b"alice".to_vec(), 70)).unwrap();
//! let absent = Proof::from_compressed_bytes(&tree.merkle_proof(&bob).unwrap().to_compressed_bytes()).unwrap();
//! absent.verify_exclusion(&root, &bob).unwrap();
//! ```

#![warn(missing_docs)]

mod compressed;
mod empty;
mod error;
mod node;
mod proof;
mod store;
mod tree;

pub use compressed::CompressedProof;
pub use empty::{empty_tree, empty_tree_root, EmptyTree};
pub use error::{
    CorruptStoreError, ProofDecodeError, RecordDecodeError, RocksDbStoreError, SumOverflowError,
    TreeError, VerifyError,
};
pub use node::{BranchNode, ComputedNode, LeafKey, LeafNode, NodeHash, MAX_TREE_LEVELS};
pub use proof::Proof;
pub use store::{
    decode_record, encode_record, ChangeSet, CompactedLeaf, MemoryStore, NodePosition,
    RocksDbStore, StoredNode, TreeStore,
};
pub use tree::MsSmt;
