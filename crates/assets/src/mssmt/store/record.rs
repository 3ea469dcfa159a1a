//! Byte encoding of [`StoredNode`] records for key-value backends (format version 1).
//!
//! - branch: `0x01 || left_hash || left_sum || right_hash || right_sum` (81 bytes)
//! - leaf: `0x02 || key || sum || value` (41 bytes and up)
//!
//! Sums are big-endian `u64`. The tag doubles as the format version: a later layout takes new
//! tags, so old records stay readable.

use super::{CompactedLeaf, StoredNode};
use crate::mssmt::error::RecordDecodeError;
use crate::mssmt::node::{BranchNode, ComputedNode, LeafKey, LeafNode, NodeHash};

const TAG_BRANCH: u8 = 0x01;
const TAG_LEAF: u8 = 0x02;
const BRANCH_LEN: usize = 1 + 2 * (32 + 8);
const LEAF_HEADER_LEN: usize = 1 + 32 + 8;

/// Encodes a record.
pub fn encode_record(node: &StoredNode) -> Vec<u8> {
    match node {
        StoredNode::Branch(branch) => {
            let mut out = Vec::with_capacity(BRANCH_LEN);
            out.push(TAG_BRANCH);
            for child in [branch.left(), branch.right()] {
                out.extend_from_slice(child.hash.as_byte_array());
                out.extend_from_slice(&child.sum.to_be_bytes());
            }
            out
        }
        StoredNode::Leaf(compacted) => {
            let mut out = Vec::with_capacity(LEAF_HEADER_LEN + compacted.leaf.value.len());
            out.push(TAG_LEAF);
            out.extend_from_slice(compacted.key.as_byte_array());
            out.extend_from_slice(&compacted.leaf.sum.to_be_bytes());
            out.extend_from_slice(&compacted.leaf.value);
            out
        }
    }
}

/// Decodes a record written by [`encode_record`].
///
/// # Errors
///
/// [`RecordDecodeError`] when the bytes are not a record of this format.
pub fn decode_record(bytes: &[u8]) -> Result<StoredNode, RecordDecodeError> {
    let (&tag, body) = bytes.split_first().ok_or(RecordDecodeError::Empty)?;
    let bad_length = || RecordDecodeError::BadLength {
        tag,
        len: bytes.len(),
    };
    match tag {
        TAG_BRANCH => {
            let body: &[u8; BRANCH_LEN - 1] = body.try_into().map_err(|_| bad_length())?;
            let (left, right) = body.split_at(40);
            let branch = BranchNode::new(read_computed(left), read_computed(right))?;
            Ok(StoredNode::Branch(branch))
        }
        TAG_LEAF => {
            let (key, rest) = body.split_first_chunk::<32>().ok_or_else(bad_length)?;
            let (sum, value) = rest.split_first_chunk::<8>().ok_or_else(bad_length)?;
            Ok(StoredNode::Leaf(CompactedLeaf {
                key: LeafKey::from_byte_array(*key),
                leaf: LeafNode::new(value, u64::from_be_bytes(*sum)),
            }))
        }
        other => Err(RecordDecodeError::UnknownTag(other)),
    }
}

/// Reads `hash || sum` from the 40 bytes of one child.
fn read_computed(bytes: &[u8]) -> ComputedNode {
    let mut hash = [0u8; 32];
    let mut sum = [0u8; 8];
    hash.iter_mut()
        .chain(sum.iter_mut())
        .zip(bytes)
        .for_each(|(o, b)| *o = *b);
    ComputedNode::new(NodeHash::from_byte_array(hash), u64::from_be_bytes(sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branch() -> StoredNode {
        let left = ComputedNode::new(NodeHash::from_byte_array([3; 32]), 40);
        let right = ComputedNode::new(NodeHash::from_byte_array([4; 32]), 2);
        StoredNode::Branch(BranchNode::new(left, right).expect("fits"))
    }

    fn leaf(value: &[u8]) -> StoredNode {
        StoredNode::Leaf(CompactedLeaf {
            key: LeafKey::from_byte_array([9; 32]),
            leaf: LeafNode::new(value, 77),
        })
    }

    #[test]
    fn records_round_trip() {
        for node in [branch(), leaf(b""), leaf(b"value")] {
            let bytes = encode_record(&node);
            assert_eq!(decode_record(&bytes), Ok(node));
        }
        assert_eq!(encode_record(&branch()).len(), BRANCH_LEN);
    }

    #[test]
    fn malformed_records_are_refused() {
        assert_eq!(decode_record(&[]), Err(RecordDecodeError::Empty));
        assert_eq!(
            decode_record(&[0x07, 1, 2]),
            Err(RecordDecodeError::UnknownTag(0x07))
        );
        let mut long = encode_record(&branch());
        long.push(0);
        assert!(matches!(
            decode_record(&long),
            Err(RecordDecodeError::BadLength { tag: 0x01, len: 82 })
        ));
        let short_leaf = &encode_record(&leaf(b""))[..40];
        assert!(matches!(
            decode_record(short_leaf),
            Err(RecordDecodeError::BadLength { tag: 0x02, len: 40 })
        ));
        let mut overflowing = vec![TAG_BRANCH];
        overflowing.extend_from_slice(&[0; 32]);
        overflowing.extend_from_slice(&u64::MAX.to_be_bytes());
        overflowing.extend_from_slice(&[0; 32]);
        overflowing.extend_from_slice(&1u64.to_be_bytes());
        assert!(matches!(
            decode_record(&overflowing),
            Err(RecordDecodeError::SumOverflow(_))
        ));
    }
}
