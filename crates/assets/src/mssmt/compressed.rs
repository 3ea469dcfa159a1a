//! Compressed proofs, byte-compatible with Taproot Assets.
//!
//! Most siblings of a proof are empty subtrees whose hashes anyone can compute, so the
//! encoding lists only the others:
//!
//! ```text
//! count: u16 BE | count × (hash: 32 bytes | sum: u64 BE) | bitmap: 32 bytes
//! ```
//!
//! Bit `i` of the bitmap (byte `i / 8`, bit `i % 8`, least significant first) is set when
//! sibling `i` (0 = the leaf's sibling) is the empty subtree; the listed nodes fill the clear
//! bits in order. The length is therefore `2 + 40 × count + 32`, with `count ≤ 256`.

use super::empty::empty_tree;
use super::error::ProofDecodeError;
use super::node::{ComputedNode, NodeHash, MAX_TREE_LEVELS};
use super::proof::Proof;

const COUNT_LEN: usize = 2;
const NODE_LEN: usize = 32 + 8;
const BITMAP_LEN: usize = MAX_TREE_LEVELS / 8;

/// A proof with its empty siblings replaced by a bitmap.
///
/// The number of clear bits always equals the number of listed nodes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CompressedProof {
    empty_bits: [u8; BITMAP_LEN],
    nodes: Vec<ComputedNode>,
}

impl CompressedProof {
    pub(crate) fn from_proof(proof: &Proof) -> Self {
        let empty = empty_tree();
        let mut empty_bits = [0u8; BITMAP_LEN];
        let mut nodes = Vec::new();
        for (index, (sibling, empty_sibling)) in
            proof.siblings().iter().zip(empty.iter().rev()).enumerate()
        {
            // Like Taproot Assets, compare hashes only: an empty hash with a non-zero sum
            // would be a sha256 collision.
            if sibling.hash == empty_sibling.hash {
                set_bit(&mut empty_bits, index);
            } else {
                nodes.push(*sibling);
            }
        }
        Self { empty_bits, nodes }
    }

    /// Tells whether sibling `index` (0 = the leaf's sibling) is the empty subtree.
    pub fn is_empty_sibling(&self, index: usize) -> bool {
        bit(&self.empty_bits, index)
    }

    /// The listed (non-empty) siblings, leaf side first.
    pub fn nodes(&self) -> &[ComputedNode] {
        &self.nodes
    }

    /// Restores the full proof.
    pub fn decompress(&self) -> Proof {
        let empty = empty_tree();
        let mut listed = self.nodes.iter();
        let mut proof = Proof::empty();
        for (index, slot) in proof.siblings_mut().iter_mut().enumerate() {
            if !self.is_empty_sibling(index) {
                // The invariant (one listed node per clear bit) makes this always `Some`.
                *slot = listed
                    .next()
                    .copied()
                    .unwrap_or(empty[MAX_TREE_LEVELS - index]);
            }
        }
        proof
    }

    /// The encoded length, `2 + 40 × count + 32`.
    pub fn encoded_len(&self) -> usize {
        COUNT_LEN + NODE_LEN * self.nodes.len() + BITMAP_LEN
    }

    /// Encodes in Taproot Assets' format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        // At most 256 nodes: one per sibling.
        let count = u16::try_from(self.nodes.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for node in &self.nodes {
            out.extend_from_slice(node.hash.as_byte_array());
            out.extend_from_slice(&node.sum.to_be_bytes());
        }
        out.extend_from_slice(&self.empty_bits);
        out
    }

    /// Decodes Taproot Assets' format; the input must be exactly one proof.
    ///
    /// The claimed count is checked against the input length before anything is allocated.
    ///
    /// # Errors
    ///
    /// [`ProofDecodeError`] when the input is truncated, too long, claims more than 256 nodes,
    /// lists a different number of nodes than the bitmap has clear bits, or lists a node that
    /// its bit should have marked as empty.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofDecodeError> {
        let (count_bytes, rest) =
            bytes
                .split_first_chunk::<COUNT_LEN>()
                .ok_or(ProofDecodeError::Truncated {
                    expected: COUNT_LEN,
                    actual: bytes.len(),
                })?;
        let count = u16::from_be_bytes(*count_bytes);
        if usize::from(count) > MAX_TREE_LEVELS {
            return Err(ProofDecodeError::TooManyNodes { count });
        }
        let expected = COUNT_LEN + NODE_LEN * usize::from(count) + BITMAP_LEN;
        match bytes.len().cmp(&expected) {
            core::cmp::Ordering::Less => {
                return Err(ProofDecodeError::Truncated {
                    expected,
                    actual: bytes.len(),
                })
            }
            core::cmp::Ordering::Greater => {
                return Err(ProofDecodeError::TrailingBytes {
                    extra: bytes.len() - expected,
                })
            }
            core::cmp::Ordering::Equal => {}
        }

        let (node_bytes, bitmap) = rest.split_at(NODE_LEN * usize::from(count));
        let nodes: Vec<ComputedNode> = node_bytes
            .chunks_exact(NODE_LEN)
            .map(|chunk| {
                let (hash, sum) = chunk.split_at(32);
                let mut hash_bytes = [0u8; 32];
                hash_bytes.copy_from_slice(hash);
                let mut sum_bytes = [0u8; 8];
                sum_bytes.copy_from_slice(sum);
                ComputedNode::new(
                    NodeHash::from_byte_array(hash_bytes),
                    u64::from_be_bytes(sum_bytes),
                )
            })
            .collect();
        let mut empty_bits = [0u8; BITMAP_LEN];
        empty_bits.copy_from_slice(bitmap);

        let non_empty = (0..MAX_TREE_LEVELS)
            .filter(|&index| !bit(&empty_bits, index))
            .count();
        if non_empty != nodes.len() {
            return Err(ProofDecodeError::NodeCountMismatch {
                nodes: nodes.len(),
                non_empty,
            });
        }

        let empty = empty_tree();
        let mut listed = nodes.iter();
        for index in 0..MAX_TREE_LEVELS {
            if bit(&empty_bits, index) {
                continue;
            }
            let is_empty_subtree = listed
                .next()
                .is_some_and(|node| node.hash == empty[MAX_TREE_LEVELS - index].hash);
            if is_empty_subtree {
                return Err(ProofDecodeError::NonCanonical { index });
            }
        }

        Ok(Self { empty_bits, nodes })
    }
}

fn bit(bits: &[u8; BITMAP_LEN], index: usize) -> bool {
    bits.get(index / 8)
        .is_some_and(|byte| (byte >> (index % 8)) & 1 == 1)
}

fn set_bit(bits: &mut [u8; BITMAP_LEN], index: usize) {
    if let Some(byte) = bits.get_mut(index / 8) {
        *byte |= 1 << (index % 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof_with(non_empty: &[(usize, u8)]) -> Proof {
        let mut proof = Proof::empty();
        for &(index, fill) in non_empty {
            proof.siblings_mut()[index] =
                ComputedNode::new(NodeHash::from_byte_array([fill; 32]), u64::from(fill));
        }
        proof
    }

    #[test]
    fn empty_proof_encodes_to_count_zero_and_full_bitmap() {
        let bytes = Proof::empty().to_compressed_bytes();
        let mut expected = vec![0u8, 0];
        expected.extend_from_slice(&[0xff; 32]);
        assert_eq!(bytes, expected);
        assert_eq!(Proof::from_compressed_bytes(&bytes), Ok(Proof::empty()));
    }

    #[test]
    fn layout_is_count_nodes_then_lsb_first_bitmap() {
        let proof = proof_with(&[(0, 7), (9, 8)]);
        let bytes = proof.to_compressed_bytes();
        assert_eq!(bytes.len(), 2 + 2 * 40 + 32);
        assert_eq!(&bytes[..2], &[0, 2]);
        assert_eq!(&bytes[2..34], &[7; 32]);
        assert_eq!(&bytes[34..42], &7u64.to_be_bytes());
        assert_eq!(&bytes[42..74], &[8; 32]);
        assert_eq!(&bytes[74..82], &8u64.to_be_bytes());
        let bitmap = &bytes[82..];
        assert_eq!(bitmap[0], 0b1111_1110); // sibling 0 listed
        assert_eq!(bitmap[1], 0b1111_1101); // sibling 9 listed
        assert!(bitmap[2..].iter().all(|&b| b == 0xff));
        assert_eq!(Proof::from_compressed_bytes(&bytes), Ok(proof));
    }

    #[test]
    fn truncated_and_trailing_inputs_are_refused() {
        let bytes = proof_with(&[(3, 1)]).to_compressed_bytes();
        assert_eq!(
            CompressedProof::decode(&[]),
            Err(ProofDecodeError::Truncated {
                expected: 2,
                actual: 0
            })
        );
        assert_eq!(
            CompressedProof::decode(&[0]),
            Err(ProofDecodeError::Truncated {
                expected: 2,
                actual: 1
            })
        );
        for cut in 2..bytes.len() {
            assert_eq!(
                CompressedProof::decode(&bytes[..cut]),
                Err(ProofDecodeError::Truncated {
                    expected: bytes.len(),
                    actual: cut
                }),
                "cut at {cut}"
            );
        }
        let mut long = bytes.clone();
        long.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            CompressedProof::decode(&long),
            Err(ProofDecodeError::TrailingBytes { extra: 3 })
        );
    }

    #[test]
    fn oversized_count_is_refused_before_reading() {
        // Claims 65535 nodes but carries none: refused without allocating for them.
        let mut bytes = vec![0xff, 0xff];
        bytes.extend_from_slice(&[0xff; 32]);
        assert_eq!(
            CompressedProof::decode(&bytes),
            Err(ProofDecodeError::TooManyNodes { count: u16::MAX })
        );
        let mut bytes = vec![0x01, 0x01];
        bytes.extend_from_slice(&[0xff; 32]);
        assert_eq!(
            CompressedProof::decode(&bytes),
            Err(ProofDecodeError::TooManyNodes { count: 257 })
        );
    }

    #[test]
    fn count_must_match_clear_bits() {
        let mut bytes = proof_with(&[(3, 1)]).to_compressed_bytes();
        // Mark a second sibling as listed without listing it.
        let bitmap_start = bytes.len() - 32;
        bytes[bitmap_start + 1] &= !1;
        assert_eq!(
            CompressedProof::decode(&bytes),
            Err(ProofDecodeError::NodeCountMismatch {
                nodes: 1,
                non_empty: 2
            })
        );
    }

    #[test]
    fn listing_an_empty_sibling_is_refused() {
        let empty = empty_tree();
        let mut bytes = vec![0, 1];
        bytes.extend_from_slice(empty[MAX_TREE_LEVELS - 5].hash.as_byte_array());
        bytes.extend_from_slice(&0u64.to_be_bytes());
        let mut bitmap = [0xffu8; 32];
        bitmap[0] &= !(1 << 5);
        bytes.extend_from_slice(&bitmap);
        assert_eq!(
            CompressedProof::decode(&bytes),
            Err(ProofDecodeError::NonCanonical { index: 5 })
        );
    }
}
