//! GrapeRank at community scale (issue 8): 100 000 identities and 1 000 000 edges — mostly
//! follows, with attestations, certifications and reports mixed in — scored from 20 observers.
//! Prints the time to build the graph and to score it, the rounds, and the process's resident
//! memory before and after.
//!
//! Run: `cargo bench -p moip-work --bench graperank`; `GRAPERANK_IDS` and `GRAPERANK_EDGES`
//! change the sizes. The graph is generated from a fixed seed, so every run scores the same one.

use std::time::Instant;

use moip_work::trust::{Params, Signal, TrustGraph};
use moip_work::AccountId;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn id(n: u64) -> AccountId {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    bytes[31] = 0x55;
    AccountId::from_bytes(bytes)
}

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let ids = env_or("GRAPERANK_IDS", 100_000);
    let edges = env_or("GRAPERANK_EDGES", 1_000_000);
    let params = Params::default();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let before = rss_kib();
    let started = Instant::now();
    let mut graph = TrustGraph::new();
    for _ in 0..edges {
        let (a, b) = (next() % ids, next() % ids);
        let signal = match next() % 100 {
            0..=84 => Signal::Follow,
            85..=94 => Signal::Attestation,
            95..=97 => Signal::Certification,
            _ => Signal::Report,
        };
        graph.add(&params, id(a), id(b), signal);
    }
    let built = started.elapsed();
    let observers: Vec<AccountId> = (0..20).map(id).collect();
    let started = Instant::now();
    let scores = graph.scores(&params, &observers);
    let scored = started.elapsed();
    let after = rss_kib();
    let scored_ids = scores.iter().count();
    println!(
        "graperank: {ids} identities, {} edges: graph built in {:.2} s, scored in {:.2} s \
         ({} rounds, converged {}), {scored_ids} identities with a score > 0; resident memory \
         {before} → {after} KiB (+{:.0} MiB)",
        graph.len(),
        built.as_secs_f64(),
        scored.as_secs_f64(),
        scores.rounds,
        scores.converged,
        (after.saturating_sub(before)) as f64 / 1024.0
    );
}
