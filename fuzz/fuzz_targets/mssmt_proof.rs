//! MS-SMT proofs: compressed proofs (Taproot Assets' encoding) and store records decoded from
//! raw bytes, and proofs of trees the fuzzer fills, encoded, changed in one byte, decoded and
//! verified. A proof that decodes re-encodes to the same bytes, and a changed proof verifies
//! only if it decodes to the very proof the tree gave.
//!
//! Input: a mode byte; odd modes read leaves `[key first byte, key last byte, value length
//! (mod 17), value, sum (u64 BE)]` and end with `[position (u16 BE), xor]`.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use moip_assets::mssmt::{
    decode_record, encode_record, CompressedProof, ComputedNode, LeafKey, LeafNode, MemoryStore,
    MsSmt, Proof,
};

/// A tree of three leaves, to verify raw proofs against.
fn fixed() -> &'static (ComputedNode, Vec<(LeafKey, LeafNode)>) {
    static FIXED: OnceLock<(ComputedNode, Vec<(LeafKey, LeafNode)>)> = OnceLock::new();
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
        (tree.root().expect("root"), leaves)
    })
}

fn raw(bytes: &[u8]) {
    if let Ok(compressed) = CompressedProof::decode(bytes) {
        assert_eq!(compressed.encode(), bytes, "compressed proof round trip");
        let proof = compressed.decompress();
        assert_eq!(proof.compress(), compressed, "canonical compression");
        let (root, leaves) = fixed();
        for (key, leaf) in leaves {
            let _ = proof.verify_inclusion(root, key, leaf);
            let _ = proof.verify_exclusion(root, key);
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
        if let Ok(other) = Proof::from_compressed_bytes(&changed) {
            if other.verify_inclusion(&root, key, &leaf).is_ok() {
                assert_eq!(other, proof, "a different proof verified");
            }
        }
        if !leaf.is_empty() {
            // Values read from the input are at most 16 bytes long.
            let wrong = LeafNode::new(vec![0xff; 17], leaf.sum);
            assert!(proof.verify_inclusion(&root, key, &wrong).is_err());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => structured(rest),
        Some((_, rest)) => raw(rest),
        None => {}
    }
});
