//! MS-SMT proofs: compressed proofs (Taproot Assets' encoding) and store records decoded from
//! raw bytes, and proofs of trees the fuzzer fills, encoded, changed in one byte, decoded and
//! verified. A proof that decodes re-encodes to the same bytes; only the tree's own proof of a
//! key verifies (raw proofs against a fixed tree), so a proof changed in one byte, which cannot
//! decode to it, never verifies.
//!
//! Input: a mode byte; odd modes read leaves `[key first byte, key last byte, value length
//! (mod 17), value, sum (u64 BE)]` and end with `[position (u16 BE), xor]`.

use std::sync::OnceLock;

use moip_assets::mssmt::{
    decode_record, encode_record, CompressedProof, ComputedNode, LeafKey, LeafNode, MemoryStore,
    MsSmt, Proof,
};

/// A tree of three leaves, to verify raw proofs against.
struct Fixed {
    root: ComputedNode,
    /// Each leaf with its key and the tree's proof of it.
    leaves: Vec<(LeafKey, LeafNode, Proof)>,
    /// A key the tree does not hold, and the tree's proof of its absence.
    absent: (LeafKey, Proof),
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let mut tree = MsSmt::new(MemoryStore::new());
        let leaves: Vec<(LeafKey, LeafNode)> = (1u8..=3)
            .map(|i| {
                let mut key = [0u8; 32];
                key[0] = i;
                (
                    LeafKey::from_byte_array(key),
                    LeafNode::new(vec![i; 4], u64::from(i) * 100),
                )
            })
            .collect();
        for (key, leaf) in &leaves {
            tree.insert(key, leaf.clone()).expect("fits");
        }
        let absent = LeafKey::from_byte_array([0xa5; 32]);
        Fixed {
            root: tree.root().expect("root"),
            leaves: leaves
                .into_iter()
                .map(|(key, leaf)| {
                    let proof = tree.merkle_proof(&key).expect("proof");
                    (key, leaf, proof)
                })
                .collect(),
            absent: (absent, tree.merkle_proof(&absent).expect("proof")),
        }
    })
}

fn raw(bytes: &[u8]) {
    if let Ok(compressed) = CompressedProof::decode(bytes) {
        assert_eq!(compressed.encode(), bytes, "compressed proof round trip");
        let proof = compressed.decompress();
        assert_eq!(proof.compress(), compressed, "canonical compression");
        // Only the tree's own proof of a key leads from its leaf to the root (another one would
        // be a hash collision on the way), and no proof shows a key the tree holds absent.
        let fixed = fixed();
        for (key, leaf, own) in &fixed.leaves {
            if proof.verify_inclusion(&fixed.root, key, leaf).is_ok() {
                assert_eq!(&proof, own, "a foreign proof verified inclusion");
            }
            assert!(
                proof.verify_exclusion(&fixed.root, key).is_err(),
                "a proof showed a present key absent"
            );
        }
        let (absent, own) = &fixed.absent;
        if proof.verify_exclusion(&fixed.root, absent).is_ok() {
            assert_eq!(&proof, own, "a foreign proof verified exclusion");
        }
    }
    if let Ok(record) = decode_record(bytes) {
        assert_eq!(encode_record(&record), bytes, "record round trip");
    }
}

fn structured(data: &[u8]) {
    let Some((mut rest, tail)) = data.split_last_chunk::<3>() else {
        return;
    };
    let position = usize::from(u16::from_be_bytes([tail[0], tail[1]]));
    let xor = tail[2].max(1);
    let mut tree = MsSmt::new(MemoryStore::new());
    let mut keys = Vec::new();
    while let [first, last, len, more @ ..] = rest {
        if keys.len() >= 16 {
            break;
        }
        let len = usize::from(*len % 17);
        let Some(value) = more.get(..len) else { break };
        let Some((sum, after)) = more[len..].split_first_chunk::<8>() else {
            break;
        };
        rest = after;
        let mut key = [0u8; 32];
        key[0] = *first;
        key[31] = *last;
        let key = LeafKey::from_byte_array(key);
        let before = tree.root().expect("root");
        match tree.insert(
            &key,
            LeafNode::new(value.to_vec(), u64::from_be_bytes(*sum)),
        ) {
            Ok(_) => keys.push(key),
            // A refused insert leaves the tree as it was.
            Err(_) => assert_eq!(tree.root().expect("root"), before, "refused insert"),
        }
    }
    let root = tree.root().expect("root");
    // Each check hashes 256 levels: the first and last keys set, and one never set.
    let mut checked: Vec<LeafKey> = keys
        .first()
        .into_iter()
        .chain(keys.last())
        .copied()
        .collect();
    checked.push(LeafKey::from_byte_array([0xa5; 32]));
    for key in &checked {
        let leaf = tree.get(key).expect("get");
        let proof = tree.merkle_proof(key).expect("proof");
        proof
            .verify_inclusion(&root, key, &leaf)
            .expect("the tree's own proof verifies");
        let bytes = proof.to_compressed_bytes();
        assert_eq!(Proof::from_compressed_bytes(&bytes).as_ref(), Ok(&proof));
        let mut changed = bytes.clone();
        let i = position % changed.len();
        changed[i] ^= xor;
        // Only the tree's own proof verifies, and a changed encoding never decodes to it (the
        // encoding is canonical: `raw` checks that what decodes re-encodes to the same bytes).
        // So a proof changed in one byte never verifies.
        if let Ok(other) = Proof::from_compressed_bytes(&changed) {
            assert_ne!(
                other, proof,
                "changed bytes decoded to the tree's own proof"
            );
            assert!(
                other.verify_inclusion(&root, key, &leaf).is_err(),
                "a changed proof verified"
            );
        }
        if !leaf.is_empty() {
            // Values read from the input are at most 16 bytes long.
            let wrong = LeafNode::new(vec![0xff; 17], leaf.sum);
            assert!(proof.verify_inclusion(&root, key, &wrong).is_err());
            assert!(
                proof.verify_exclusion(&root, key).is_err(),
                "a present key shown absent"
            );
        }
    }
}

/// One input of the `mssmt_proof` target.
pub fn mssmt_proof(data: &[u8]) {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => structured(rest),
        Some((_, rest)) => raw(rest),
        None => {}
    }
}
