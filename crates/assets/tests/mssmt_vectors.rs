//! Taproot Assets' MS-SMT vectors (lightninglabs/taproot-assets@95bd8d4, `mssmt/testdata/`),
//! read in place from the shared reference folder and run against both stores.
//!
//! The cases are replayed as tapd's own test replays them: insert the listed leaves in the
//! order of `all_tree_leaves`, delete `deleted_leaves`, insert `replaced_leaves`, then compare
//! the root; proofs are verified with the leaf from `all_tree_leaves`. Error cases expect the
//! insert of the last leaf to fail with the given message.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use bitcoin::hex::FromHex;
use moip_assets::mssmt::{
    ComputedNode, LeafKey, LeafNode, MemoryStore, MsSmt, NodeHash, Proof, RocksDbStore, TreeError,
    TreeStore,
};
use serde::Deserialize;

const VECTOR_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/mssmt");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Vectors {
    all_tree_leaves: Vec<TestLeaf>,
    valid_test_cases: Option<Vec<ValidCase>>,
    error_test_cases: Option<Vec<ErrorCase>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct TestLeaf {
    key: String,
    node: TestLeafNode,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct TestLeafNode {
    value: String,
    sum: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidCase {
    root_hash: String,
    root_sum: String,
    inserted_leaves: Option<Vec<String>>,
    deleted_leaves: Option<Vec<String>>,
    replaced_leaves: Option<Vec<TestLeaf>>,
    inclusion_proofs: Option<Vec<ProofCase>>,
    exclusion_proofs: Option<Vec<ProofCase>>,
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorCase {
    inserted_leaves: Vec<String>,
    error: String,
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofCase {
    proof_key: String,
    compressed_proof: String,
}

fn load(name: &str) -> Vectors {
    let path = PathBuf::from(VECTOR_DIR).join(name);
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading vector file {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn key(hex: &str) -> LeafKey {
    LeafKey::from_byte_array(<[u8; 32]>::from_hex(hex).expect("vector key is 32 hex bytes"))
}

fn leaf(test_leaf: &TestLeaf) -> (LeafKey, LeafNode) {
    let value = Vec::<u8>::from_hex(&test_leaf.node.value).expect("vector value is hex");
    let sum = test_leaf.node.sum.parse().expect("vector sum is a u64");
    (key(&test_leaf.key), LeafNode::new(value, sum))
}

fn find_leaf(vectors: &Vectors, key_hex: &str) -> LeafNode {
    let found = vectors
        .all_tree_leaves
        .iter()
        .find(|l| l.key == key_hex)
        .unwrap_or_else(|| panic!("proof key {key_hex} not in all_tree_leaves"));
    leaf(found).1
}

/// Counts of what a vector file exercised, so a test cannot pass by checking nothing.
#[derive(Default, Debug, PartialEq, Eq)]
struct Checked {
    valid_cases: usize,
    error_cases: usize,
    proofs: usize,
}

fn run_file<S: TreeStore>(name: &str, mut new_store: impl FnMut() -> S) -> Checked {
    let vectors = load(name);
    let mut checked = Checked::default();
    for case in vectors.valid_test_cases.iter().flatten() {
        checked.proofs += run_valid_case(&vectors, case, new_store());
        checked.valid_cases += 1;
    }
    for case in vectors.error_test_cases.iter().flatten() {
        run_error_case(&vectors, case, new_store());
        checked.error_cases += 1;
    }
    checked
}

fn run_valid_case<S: TreeStore>(vectors: &Vectors, case: &ValidCase, store: S) -> usize {
    let name = &case.comment;
    let mut tree = MsSmt::new(store);
    // The leaves the tree should hold at the end, kept alongside for the extra checks.
    let mut expected: BTreeMap<LeafKey, LeafNode> = BTreeMap::new();

    let inserted = case.inserted_leaves.as_deref().unwrap_or_default();
    for test_leaf in &vectors.all_tree_leaves {
        if !inserted.contains(&test_leaf.key) {
            continue;
        }
        let (k, l) = leaf(test_leaf);
        tree.insert(&k, l.clone())
            .unwrap_or_else(|e| panic!("{name}: insert {k}: {e}"));
        expected.insert(k, l);
    }
    for key_hex in case.deleted_leaves.iter().flatten() {
        let k = key(key_hex);
        tree.delete(&k)
            .unwrap_or_else(|e| panic!("{name}: delete {k}: {e}"));
        expected.remove(&k);
    }
    for test_leaf in case.replaced_leaves.iter().flatten() {
        let (k, l) = leaf(test_leaf);
        tree.insert(&k, l.clone())
            .unwrap_or_else(|e| panic!("{name}: replace {k}: {e}"));
        expected.insert(k, l);
    }

    let root = tree.root().unwrap_or_else(|e| panic!("{name}: root: {e}"));
    let expected_root = ComputedNode::new(
        NodeHash::from_byte_array(<[u8; 32]>::from_hex(&case.root_hash).expect("root hex")),
        case.root_sum.parse().expect("root sum"),
    );
    assert_eq!(root, expected_root, "{name}: root");

    let mut proofs = 0;
    for inclusion in case.inclusion_proofs.iter().flatten() {
        let k = key(&inclusion.proof_key);
        let bytes = Vec::<u8>::from_hex(&inclusion.compressed_proof).expect("proof hex");
        let proof = Proof::from_compressed_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{name}: decode inclusion proof for {k}: {e}"));
        let l = find_leaf(vectors, &inclusion.proof_key);
        assert_eq!(proof.verify_inclusion(&root, &k, &l), Ok(()), "{name}: {k}");
        let ours = tree.merkle_proof(&k).expect("proof");
        assert_eq!(
            ours.to_compressed_bytes(),
            bytes,
            "{name}: our proof of {k}"
        );
        proofs += 1;
    }
    for exclusion in case.exclusion_proofs.iter().flatten() {
        let k = key(&exclusion.proof_key);
        let bytes = Vec::<u8>::from_hex(&exclusion.compressed_proof).expect("proof hex");
        let proof = Proof::from_compressed_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{name}: decode exclusion proof for {k}: {e}"));
        assert_eq!(proof.verify_exclusion(&root, &k), Ok(()), "{name}: {k}");
        let ours = tree.merkle_proof(&k).expect("proof");
        assert_eq!(
            ours.to_compressed_bytes(),
            bytes,
            "{name}: our proof of {k}"
        );
        proofs += 1;
    }

    // Beyond the vectors: every key of the file reads back as expected and proves so.
    for test_leaf in &vectors.all_tree_leaves {
        let k = key(&test_leaf.key);
        let want = expected.get(&k).cloned().unwrap_or_else(LeafNode::empty);
        assert_eq!(tree.get(&k).expect("get"), want, "{name}: get {k}");
        let proof = tree.merkle_proof(&k).expect("proof");
        assert_eq!(
            proof.verify_inclusion(&root, &k, &want),
            Ok(()),
            "{name}: own proof of {k}"
        );
    }
    proofs
}

fn run_error_case<S: TreeStore>(vectors: &Vectors, case: &ErrorCase, store: S) {
    let name = &case.comment;
    let mut tree = MsSmt::new(store);
    let last = vectors.all_tree_leaves.len() - 1;
    let mut failures = 0;
    for (index, test_leaf) in vectors.all_tree_leaves.iter().enumerate() {
        if !case.inserted_leaves.contains(&test_leaf.key) {
            continue;
        }
        let (k, l) = leaf(test_leaf);
        let before = tree.root().expect("root");
        let result = tree.insert(&k, l);
        if index != last {
            result.unwrap_or_else(|e| panic!("{name}: insert {k}: {e}"));
            continue;
        }
        let err = result.expect_err("the last insert must fail");
        assert!(
            matches!(err, TreeError::SumOverflow(_)),
            "{name}: unexpected error {err:?}"
        );
        assert!(
            err.to_string().contains(&case.error),
            "{name}: {err} does not contain {:?}",
            case.error
        );
        // Refused means unchanged.
        assert_eq!(tree.root().expect("root"), before, "{name}: root changed");
        assert!(tree.get(&k).expect("get").is_empty(), "{name}: leaf stored");
        failures += 1;
    }
    assert_eq!(failures, 1, "{name}: expected exactly one refused insert");
}

/// A fresh RocksDB store per case; the closure owns the directories, so they outlive the
/// stores it hands out.
fn rocksdb_stores() -> impl FnMut() -> RocksDbStore {
    let mut dirs = Vec::new();
    move || {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RocksDbStore::open(dir.path()).expect("open rocksdb");
        dirs.push(dir);
        store
    }
}

// These files carry no proofs (`inclusion_proofs`/`exclusion_proofs` are null; tapd's proof
// vectors are in `mssmt_tree_proofs.json`, not shipped), hence `proofs: 0`. Proofs are still
// checked for every key of each file against the expected leaves, in `run_valid_case`.

#[test]
fn replacement_vectors_memory() {
    let checked = run_file("mssmt_tree_replacement.json", MemoryStore::new);
    assert_eq!(checked, expect(1, 0));
}

#[test]
fn replacement_vectors_rocksdb() {
    let checked = run_file("mssmt_tree_replacement.json", rocksdb_stores());
    assert_eq!(checked, expect(1, 0));
}

#[test]
fn deletion_vectors_memory() {
    let checked = run_file("mssmt_tree_deletion.json", MemoryStore::new);
    assert_eq!(checked, expect(1, 0));
}

#[test]
fn deletion_vectors_rocksdb() {
    let checked = run_file("mssmt_tree_deletion.json", rocksdb_stores());
    assert_eq!(checked, expect(1, 0));
}

#[test]
fn error_case_vectors_memory() {
    let checked = run_file("mssmt_tree_error_cases.json", MemoryStore::new);
    assert_eq!(checked, expect(1, 1));
}

#[test]
fn error_case_vectors_rocksdb() {
    let checked = run_file("mssmt_tree_error_cases.json", rocksdb_stores());
    assert_eq!(checked, expect(1, 1));
}

fn expect(valid_cases: usize, error_cases: usize) -> Checked {
    Checked {
        valid_cases,
        error_cases,
        proofs: 0,
    }
}
