//! MS-SMT throughput at a million leaves (issue 7): inserts per second, then merkle proofs
//! generated and verified per second on the full tree, with the in-memory store and the RocksDB
//! store (the persistent one for large trees) in the same run.
//!
//! Keys are SHA-256 of the leaf number (uniformly spread, as account keys are), sums 1 to
//! 1 000. Run: `cargo bench -p moip-assets --bench mssmt`; `MSSMT_BENCH_LEAVES` (default
//! 1 000 000) and `MSSMT_BENCH_PROOFS` (default 10 000) change the sizes.

use std::time::{Duration, Instant};

use bitcoin::hashes::{sha256, Hash};
use moip_assets::mssmt::{LeafKey, LeafNode, MemoryStore, MsSmt, RocksDbStore, TreeStore};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn key(i: u64) -> LeafKey {
    LeafKey::from_byte_array(sha256::Hash::hash(&i.to_be_bytes()).to_byte_array())
}

fn leaf(i: u64) -> LeafNode {
    LeafNode::new(i.to_be_bytes().to_vec(), i % 1_000 + 1)
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn run<S: TreeStore>(name: &str, store: S, leaves: usize, proofs: usize) -> (f64, f64, f64)
where
    S::Error: std::fmt::Debug,
{
    let mut tree = MsSmt::new(store);
    let started = Instant::now();
    for i in 0..leaves as u64 {
        tree.insert(&key(i), leaf(i)).expect("insert");
    }
    let insert = per_sec(leaves, started.elapsed());
    let root = tree.root().expect("root");
    let expected: u64 = (0..leaves as u64).map(|i| i % 1_000 + 1).sum();
    assert_eq!(root.sum, expected);

    let step = (leaves / proofs).max(1) as u64;
    let picks: Vec<u64> = (0..proofs as u64)
        .map(|i| (i * step) % leaves as u64)
        .collect();
    let started = Instant::now();
    let made: Vec<_> = picks
        .iter()
        .map(|i| tree.merkle_proof(&key(*i)).expect("proof"))
        .collect();
    let generate = per_sec(proofs, started.elapsed());
    let started = Instant::now();
    for (i, proof) in picks.iter().zip(&made) {
        proof
            .verify_inclusion(&root, &key(*i), &leaf(*i))
            .expect("verifies");
    }
    let verify = per_sec(proofs, started.elapsed());
    let size: usize = made
        .iter()
        .map(|p| p.to_compressed_bytes().len())
        .sum::<usize>()
        / proofs;
    println!(
        "{name}: {leaves} leaves: {insert:.0} inserts/s; {proofs} proofs: {generate:.0} generated/s, \
         {verify:.0} verified/s, {size} bytes compressed on average"
    );
    (insert, generate, verify)
}

fn main() {
    let leaves = env_or("MSSMT_BENCH_LEAVES", 1_000_000);
    let proofs = env_or("MSSMT_BENCH_PROOFS", 10_000).min(leaves);
    let memory = run("memory", MemoryStore::new(), leaves, proofs);
    let dir = tempfile::tempdir().expect("tempdir");
    let rocks = run(
        "rocksdb",
        RocksDbStore::open(dir.path().join("tree")).expect("rocksdb"),
        leaves,
        proofs,
    );
    println!(
        "ratio memory/rocksdb: inserts {:.2}, proof generation {:.2}, verification {:.2}",
        memory.0 / rocks.0,
        memory.1 / rocks.1,
        memory.2 / rocks.2
    );
}
