//! Errors of the MS-SMT: arithmetic, tree operations, proof checks, decoding and storage.

use super::node::ComputedNode;

/// Two sums whose total does not fit in a `u64`.
///
/// The message starts with "integer overflow", the text Taproot Assets' vectors expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("integer overflow: {left} + {right} exceeds u64::MAX")]
pub struct SumOverflowError {
    left: u64,
    right: u64,
}

impl SumOverflowError {
    pub(crate) const fn new(left: u64, right: u64) -> Self {
        Self { left, right }
    }

    /// The left operand.
    pub const fn left(&self) -> u64 {
        self.left
    }

    /// The right operand.
    pub const fn right(&self) -> u64 {
        self.right
    }
}

/// Why a tree operation failed. On any error the tree is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError<E> {
    /// The update would make a sum exceed `u64::MAX`; nothing was written.
    #[error(transparent)]
    SumOverflow(#[from] SumOverflowError),
    /// The store failed to read or write.
    #[error("tree store failed")]
    Store(#[source] E),
    /// The store holds records that do not fit together.
    #[error(transparent)]
    Corrupt(#[from] CorruptStoreError),
}

/// Records in a store that contradict each other, found while walking the tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptStoreError {
    /// A branch summarises a non-empty child, but the child has no record.
    #[error("corrupt tree store: no record at depth {depth} below a non-empty summary")]
    MissingNode {
        /// Depth of the missing record.
        depth: usize,
    },
    /// A record's hash or sum differs from what its parent records for it.
    #[error("corrupt tree store: record at depth {depth} disagrees with its parent's summary")]
    SummaryMismatch {
        /// Depth of the record.
        depth: usize,
    },
    /// A branch record at leaf depth (256), where only leaves can be.
    #[error("corrupt tree store: branch record at leaf depth")]
    BranchAtLeafDepth,
    /// A leaf record whose key does not lead to the position it is stored at.
    #[error("corrupt tree store: leaf record at depth {depth} is off its key's path")]
    LeafOffPath {
        /// Depth of the record.
        depth: usize,
    },
}

/// Why a proof did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Walking up the proof makes a branch sum overflow, so it proves nothing.
    #[error("proof sums overflow")]
    SumOverflow(#[from] SumOverflowError),
    /// The proof leads to a different root.
    #[error("proof leads to root {computed:?}, expected {expected:?}")]
    RootMismatch {
        /// The root the caller trusts.
        expected: ComputedNode,
        /// The root the proof leads to.
        computed: ComputedNode,
    },
}

/// Why bytes are not a compressed proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofDecodeError {
    /// The input ends before the encoding does.
    #[error("compressed proof truncated: {expected} bytes needed, {actual} given")]
    Truncated {
        /// Bytes the encoding needs (as far as it could be read).
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// Bytes follow a complete encoding.
    #[error("compressed proof followed by {extra} trailing bytes")]
    TrailingBytes {
        /// Number of bytes after the encoding.
        extra: usize,
    },
    /// More explicit nodes than a proof has siblings.
    #[error("compressed proof claims {count} nodes, at most 256 possible")]
    TooManyNodes {
        /// The claimed node count.
        count: u16,
    },
    /// The bitmap's non-empty siblings and the explicit nodes differ in number.
    #[error(
        "compressed proof has {nodes} nodes but its bitmap marks {non_empty} non-empty siblings"
    )]
    NodeCountMismatch {
        /// Explicit nodes in the encoding.
        nodes: usize,
        /// Siblings the bitmap marks as non-empty.
        non_empty: usize,
    },
    /// An explicit node equals the empty subtree its bit should have marked; the encoder never
    /// writes this, and accepting it would give one proof several encodings.
    #[error("compressed proof spells out the empty sibling {index} instead of marking it")]
    NonCanonical {
        /// Index of the sibling, 0 being the leaf's sibling.
        index: usize,
    },
}

/// Why a stored record could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordDecodeError {
    /// The record is empty.
    #[error("empty node record")]
    Empty,
    /// The record's tag is unknown (another format version or garbage).
    #[error("unknown node record tag {0:#04x}")]
    UnknownTag(u8),
    /// The record's length does not fit its tag.
    #[error("node record with tag {tag:#04x} has invalid length {len}")]
    BadLength {
        /// The record's tag.
        tag: u8,
        /// The record's length in bytes.
        len: usize,
    },
    /// A branch record whose children's sums overflow.
    #[error("branch record: {0}")]
    SumOverflow(#[from] SumOverflowError),
}

/// Errors of [`RocksDbStore`](super::RocksDbStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RocksDbStoreError {
    /// RocksDB failed.
    #[error("rocksdb")]
    Db(#[from] rocksdb::Error),
    /// A stored record is malformed.
    #[error("malformed record in rocksdb")]
    Record(#[from] RecordDecodeError),
}
