//! Property tests of the MS-SMT against a reference model.
//!
//! The model is the definition itself: a map of leaves and a recursive root that partitions
//! the leaves bit by bit over all 256 levels, with no compaction and no store. The tree's
//! compacted, store-backed layout must agree with it after any sequence of updates.

use std::collections::BTreeMap;

use moip_assets::mssmt::{
    empty_tree, empty_tree_root, BranchNode, ComputedNode, LeafKey, LeafNode, MemoryStore, MsSmt,
    Proof, RocksDbStore, TreeError, TreeStore, MAX_TREE_LEVELS,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// Largest leaf sum generated: 63 such leaves still fit in a `u64`, and pools hold fewer.
const MAX_LEAF_SUM: u64 = u64::MAX / 64;
const MAX_POOL: usize = 24;

type Model = BTreeMap<LeafKey, LeafNode>;

/// One update: set the key at `Index` in the pool to the leaf, or delete it (`None`).
type Op = (Index, Option<LeafNode>);

fn flip(base: [u8; 32], bits: &[usize]) -> LeafKey {
    let mut key = base;
    for &bit in bits {
        key[bit / 8] ^= 1 << (bit % 8);
    }
    LeafKey::from_byte_array(key)
}

/// Keys that fork near the root, anywhere, or only in the last bits (leaves at depth 256).
fn key_pool() -> impl Strategy<Value = Vec<LeafKey>> {
    let near = |bits: std::ops::Range<usize>| {
        (
            any::<[u8; 32]>(),
            prop::collection::vec(prop::collection::vec(bits, 1..3), 1..MAX_POOL),
        )
            .prop_map(|(base, flips)| flips.iter().map(|f| flip(base, f)).collect())
    };
    prop_oneof![
        prop::collection::vec(
            any::<[u8; 32]>().prop_map(LeafKey::from_byte_array),
            1..MAX_POOL
        ),
        near(0..MAX_TREE_LEVELS),
        near(MAX_TREE_LEVELS - 8..MAX_TREE_LEVELS),
    ]
}

/// Mostly non-empty leaves (some with an empty value or a zero sum), sometimes the empty one.
fn leaf() -> impl Strategy<Value = LeafNode> {
    prop_oneof![
        1 => Just(LeafNode::empty()),
        8 => (prop::collection::vec(any::<u8>(), 0..12), 0..=MAX_LEAF_SUM)
            .prop_map(|(value, sum)| LeafNode::new(value, sum)),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec((any::<Index>(), prop::option::weighted(0.8, leaf())), 0..48)
}

/// The definition: partition the leaves by the bit at `depth`, recurse, join.
fn model_root(leaves: &[(&LeafKey, &LeafNode)], depth: usize) -> ComputedNode {
    match leaves {
        [] => empty_tree()[depth],
        [(_, leaf)] if depth == MAX_TREE_LEVELS => leaf.computed(),
        _ => {
            let (right, left): (Vec<_>, Vec<_>) = leaves.iter().partition(|(k, _)| k.bit(depth));
            let branch =
                BranchNode::new(model_root(&left, depth + 1), model_root(&right, depth + 1))
                    .expect("generated sums cannot overflow");
            branch.computed()
        }
    }
}

fn root_of(model: &Model) -> ComputedNode {
    let leaves: Vec<_> = model.iter().collect();
    model_root(&leaves, 0)
}

fn apply<S: TreeStore>(tree: &mut MsSmt<S>, model: &mut Model, pool: &[LeafKey], ops: &[Op]) {
    for (index, change) in ops {
        let key = *index.get(pool);
        match change {
            Some(leaf) => {
                tree.insert(&key, leaf.clone()).expect("insert");
                if leaf.is_empty() {
                    model.remove(&key);
                } else {
                    model.insert(key, leaf.clone());
                }
            }
            None => {
                tree.delete(&key).expect("delete");
                model.remove(&key);
            }
        }
    }
}

fn built(pool: &[LeafKey], ops: &[Op]) -> (MsSmt<MemoryStore>, Model) {
    let mut tree = MsSmt::new(MemoryStore::new());
    let mut model = Model::new();
    apply(&mut tree, &mut model, pool, ops);
    (tree, model)
}

fn leaf_at(model: &Model, key: &LeafKey) -> LeafNode {
    model.get(key).cloned().unwrap_or_else(LeafNode::empty)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Root hash and sum equal the definition's, and the sum is the sum of the leaves.
    #[test]
    fn root_matches_reference_model(pool in key_pool(), ops in ops()) {
        let (tree, model) = built(&pool, &ops);
        let root = tree.root().expect("root");
        prop_assert_eq!(root, root_of(&model));
        prop_assert_eq!(root.sum, model.values().map(|l| l.sum).sum::<u64>());
        for key in &pool {
            prop_assert_eq!(tree.get(key).expect("get"), leaf_at(&model, key));
        }
    }

    /// Every key proves what it maps to (inclusion if set, exclusion if not), and nothing else.
    #[test]
    fn proofs_of_every_key_verify(pool in key_pool(), ops in ops(), stranger in any::<[u8; 32]>()) {
        let (tree, model) = built(&pool, &ops);
        let root = tree.root().expect("root");
        let stranger = LeafKey::from_byte_array(stranger);
        for key in pool.iter().chain([&stranger]) {
            let proof = tree.merkle_proof(key).expect("proof");
            let leaf = leaf_at(&model, key);
            prop_assert_eq!(proof.verify_inclusion(&root, key, &leaf), Ok(()));
            if leaf.is_empty() {
                prop_assert_eq!(proof.verify_exclusion(&root, key), Ok(()));
                let other = LeafNode::new(b"not here".to_vec(), 1);
                prop_assert!(proof.verify_inclusion(&root, key, &other).is_err());
            } else {
                prop_assert!(proof.verify_exclusion(&root, key).is_err());
            }
        }
    }

    /// The same leaves give the same root and the same records, whatever the insertion order.
    #[test]
    fn insertion_order_does_not_change_the_tree(
        (leaves, shuffled) in prop::collection::vec((any::<[u8; 32]>(), leaf()), 0..MAX_POOL)
            .prop_flat_map(|leaves| (Just(leaves.clone()), Just(leaves).prop_shuffle()))
    ) {
        // Keys may repeat; the last write wins, so build from deduplicated leaves.
        let unique: BTreeMap<[u8; 32], LeafNode> = leaves.into_iter().collect();
        let mut forward = MsSmt::new(MemoryStore::new());
        for (key, leaf) in &unique {
            forward.insert(&LeafKey::from_byte_array(*key), leaf.clone()).expect("insert");
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut other = MsSmt::new(MemoryStore::new());
        for (key, _) in shuffled {
            if seen.insert(key) {
                let leaf = unique[&key].clone();
                other.insert(&LeafKey::from_byte_array(key), leaf).expect("insert");
            }
        }
        prop_assert_eq!(forward.root().expect("root"), other.root().expect("root"));
        prop_assert_eq!(forward.store(), other.store());
    }

    /// Whatever the history, the records are those of inserting the final leaves afresh:
    /// deletions leave no stale record behind.
    #[test]
    fn history_does_not_change_the_layout(pool in key_pool(), ops in ops()) {
        let (tree, model) = built(&pool, &ops);
        let mut fresh = MsSmt::new(MemoryStore::new());
        for (key, leaf) in &model {
            fresh.insert(key, leaf.clone()).expect("insert");
        }
        prop_assert_eq!(tree.store(), fresh.store());
    }

    /// Deleting every leaf, in any order, gives back the empty root and an empty store.
    #[test]
    fn deleting_everything_returns_the_empty_root(
        (pool, order) in key_pool().prop_flat_map(|pool| (Just(pool.clone()), Just(pool).prop_shuffle())),
        ops in ops(),
    ) {
        let (mut tree, _) = built(&pool, &ops);
        for (i, key) in pool.iter().enumerate() {
            tree.insert(key, LeafNode::new(vec![1], i as u64)).expect("insert");
        }
        prop_assert_ne!(tree.root().expect("root"), empty_tree_root());
        for key in &order {
            tree.delete(key).expect("delete");
        }
        prop_assert_eq!(tree.root().expect("root"), empty_tree_root());
        prop_assert!(tree.store().is_empty());
    }

    /// Compressed proofs decode to the same proof and re-encode to the same bytes.
    #[test]
    fn compressed_proofs_round_trip(pool in key_pool(), ops in ops()) {
        let (tree, _) = built(&pool, &ops);
        for key in &pool {
            let proof = tree.merkle_proof(key).expect("proof");
            let compressed = proof.compress();
            let bytes = proof.to_compressed_bytes();
            prop_assert_eq!(bytes.len(), 2 + 40 * compressed.nodes().len() + 32);
            let decoded = Proof::from_compressed_bytes(&bytes).expect("own encoding decodes");
            prop_assert_eq!(&decoded, &proof);
            prop_assert_eq!(decoded.to_compressed_bytes(), bytes);
        }
    }

    /// Any single-bit change to an encoded inclusion proof is caught, by the decoder or by
    /// verification; so is any change to a sibling or to the leaf.
    #[test]
    fn tampered_proofs_fail(
        pool in key_pool(),
        ops in ops(),
        pick in any::<Index>(),
        bit in any::<Index>(),
        sibling in 0..MAX_TREE_LEVELS,
    ) {
        let (mut tree, mut model) = built(&pool, &ops);
        let key = *pick.get(&pool);
        let leaf = LeafNode::new(b"tamper me".to_vec(), 5);
        tree.insert(&key, leaf.clone()).expect("insert");
        model.insert(key, leaf.clone());
        let root = tree.root().expect("root");
        let proof = tree.merkle_proof(&key).expect("proof");
        prop_assert_eq!(proof.verify_inclusion(&root, &key, &leaf), Ok(()));

        let mut bytes = proof.to_compressed_bytes();
        let flipped = bit.index(bytes.len() * 8);
        bytes[flipped / 8] ^= 1 << (flipped % 8);
        if let Ok(decoded) = Proof::from_compressed_bytes(&bytes) {
            prop_assert!(decoded.verify_inclusion(&root, &key, &leaf).is_err(), "bit {}", flipped);
        }

        let mut bad_hash = proof.clone();
        let mut hash = bad_hash.siblings()[sibling].hash.to_byte_array();
        hash[0] ^= 1;
        bad_hash.siblings_mut()[sibling].hash = moip_assets::mssmt::NodeHash::from_byte_array(hash);
        prop_assert!(bad_hash.verify_inclusion(&root, &key, &leaf).is_err());

        let mut bad_sum = proof.clone();
        bad_sum.siblings_mut()[sibling].sum ^= 1;
        prop_assert!(bad_sum.verify_inclusion(&root, &key, &leaf).is_err());

        let more_value = LeafNode::new(b"tamper me!".to_vec(), 5);
        prop_assert!(proof.verify_inclusion(&root, &key, &more_value).is_err());
        let more_sum = LeafNode::new(b"tamper me".to_vec(), 6);
        prop_assert!(proof.verify_inclusion(&root, &key, &more_sum).is_err());
    }

    /// An update whose total would pass `u64::MAX` is refused and changes nothing; the
    /// largest update that fits is accepted (replacing a leaf counts its old sum out).
    #[test]
    fn overflow_is_refused_and_changes_nothing(pool in key_pool(), ops in ops(), pick in any::<Index>()) {
        let (mut tree, mut model) = built(&pool, &ops);
        // A leaf outside the pool, so the others always sum to at least 1 and `headroom + 1`
        // is a valid `u64`.
        let anchor = (0..=u8::MAX)
            .map(|b| LeafKey::from_byte_array([b; 32]))
            .find(|k| !pool.contains(k))
            .expect("the pool has fewer than 256 keys");
        tree.insert(&anchor, LeafNode::new(vec![1], 1)).expect("insert");
        model.insert(anchor, LeafNode::new(vec![1], 1));
        let key = *pick.get(&pool);
        let others: u64 = model.iter().filter(|(k, _)| **k != key).map(|(_, l)| l.sum).sum();
        let headroom = u64::MAX - others;
        let before_root = tree.root().expect("root");
        let before_store = tree.store().clone();

        let err = tree.insert(&key, LeafNode::new(vec![7], headroom + 1)).expect_err("overflows");
        prop_assert!(matches!(err, TreeError::SumOverflow(_)));
        prop_assert!(err.to_string().contains("integer overflow"));
        prop_assert_eq!(tree.root().expect("root"), before_root);
        prop_assert_eq!(tree.store(), &before_store);

        let root = tree.insert(&key, LeafNode::new(vec![7], headroom)).expect("fits exactly");
        prop_assert_eq!(root.sum, u64::MAX);
    }

    /// Bytes near a valid encoding either fail to decode or decode to a proof that encodes
    /// back to exactly those bytes: one encoding per proof, no panic.
    #[test]
    fn decoding_is_strict_and_total(
        pool in key_pool(),
        ops in ops(),
        pick in any::<Index>(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 0..4),
        cut in prop::option::of(any::<Index>()),
        extra in prop::collection::vec(any::<u8>(), 0..3),
    ) {
        let (tree, _) = built(&pool, &ops);
        let mut bytes = tree.merkle_proof(pick.get(&pool)).expect("proof").to_compressed_bytes();
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        bytes.extend_from_slice(&extra);
        if let Ok(proof) = Proof::from_compressed_bytes(&bytes) {
            prop_assert_eq!(proof.to_compressed_bytes(), bytes);
        }
    }
}

proptest! {
    // Each case opens a RocksDB database: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The same code over RocksDB gives the same roots and proofs as over memory, and the tree
    /// survives closing and reopening the database.
    #[test]
    fn rocksdb_store_matches_memory_store(pool in key_pool(), ops in ops()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut on_disk = MsSmt::new(RocksDbStore::open(dir.path()).expect("open"));
        let mut in_memory = MsSmt::new(MemoryStore::new());
        let mut disk_model = Model::new();
        let mut memory_model = Model::new();
        for op in &ops {
            apply(&mut on_disk, &mut disk_model, &pool, std::slice::from_ref(op));
            apply(&mut in_memory, &mut memory_model, &pool, std::slice::from_ref(op));
            prop_assert_eq!(on_disk.root().expect("root"), in_memory.root().expect("root"));
        }
        let root = in_memory.root().expect("root");
        prop_assert_eq!(root, root_of(&memory_model));

        drop(on_disk);
        let reopened = MsSmt::new(RocksDbStore::open(dir.path()).expect("reopen"));
        prop_assert_eq!(reopened.root().expect("root"), root);
        for key in &pool {
            prop_assert_eq!(reopened.get(key).expect("get"), leaf_at(&memory_model, key));
            prop_assert_eq!(
                reopened.merkle_proof(key).expect("proof"),
                in_memory.merkle_proof(key).expect("proof")
            );
        }
    }
}

/// Two trees in one database, under different namespaces (one a prefix of the other), do
/// not see each other's records.
#[test]
fn rocksdb_namespaces_are_isolated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = std::sync::Arc::new(rocksdb::DB::open_default(dir.path()).expect("open"));
    let mut a = MsSmt::new(RocksDbStore::with_namespace(db.clone(), b"t".to_vec()));
    let mut b = MsSmt::new(RocksDbStore::with_namespace(db, b"t2".to_vec()));
    let key = LeafKey::from_byte_array([3; 32]);
    let root_a = a
        .insert(&key, LeafNode::new(b"a".to_vec(), 1))
        .expect("insert");
    assert_eq!(b.root().expect("root"), empty_tree_root());
    let root_b = b
        .insert(&key, LeafNode::new(b"b".to_vec(), 2))
        .expect("insert");
    assert_ne!(root_a, root_b);
    assert_eq!(a.root().expect("root"), root_a);
    assert_eq!(a.get(&key).expect("get"), LeafNode::new(b"a".to_vec(), 1));
}
