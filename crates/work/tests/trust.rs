//! GrapeRank on the trust graph: scores stay in 0..1 with the observers at 1 and settle;
//! influence fades with distance; reports and lost disputes pull a score down; and a sybil
//! region — a thousand fresh keys that follow and "attest" each other, about a million edges,
//! tied to the community by three follows — holds no more than the stated bound in total and no
//! member reaches the attester threshold.

use std::collections::HashSet;

use moip_work::trust::{sybil_bound, Params, Signal, TrustGraph};
use moip_work::AccountId;
use proptest::prelude::*;

fn id(n: u32) -> AccountId {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes[31] = 0xaa;
    AccountId::from_bytes(bytes)
}

/// The attester threshold the community uses in these tests.
const THRESHOLD: f64 = 0.1;

fn signal(n: u8) -> Signal {
    match n % 5 {
        0 => Signal::Follow,
        1 => Signal::Attestation,
        2 => Signal::Certification,
        3 => Signal::Report,
        _ => Signal::DisputeLost,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn scores_stay_in_range_and_observers_at_one(
        edges in proptest::collection::vec((0u32..40, 0u32..40, any::<u8>()), 0..400),
        observers in proptest::collection::vec(0u32..40, 1..4),
    ) {
        let params = Params::default();
        let mut graph = TrustGraph::new();
        for (a, b, s) in edges {
            graph.add(&params, id(a), id(b), signal(s));
        }
        let observers: Vec<AccountId> = observers.into_iter().map(id).collect();
        let scores = graph.scores(&params, &observers);
        prop_assert!(scores.rounds <= params.max_rounds);
        for (_, s) in scores.iter() {
            prop_assert!((0.0..=1.0).contains(s), "{s}");
        }
        for o in &observers {
            prop_assert_eq!(scores.get(o), 1.0);
        }
    }
}

#[test]
fn influence_fades_with_distance_and_negative_signals_count() {
    let params = Params::default();
    let mut graph = TrustGraph::new();
    let verifier = id(0);
    // verifier → 1 → 2 → 3 by certifications and attestations.
    graph.add(&params, verifier, id(1), Signal::Certification);
    graph.add(&params, id(1), id(2), Signal::Attestation);
    graph.add(&params, id(2), id(3), Signal::Attestation);
    let scores = graph.scores(&params, &[verifier]);
    assert!(scores.converged);
    let (s1, s2, s3) = (scores.get(&id(1)), scores.get(&id(2)), scores.get(&id(3)));
    assert!(s1 > s2 && s2 > s3 && s3 > 0.0, "{s1} {s2} {s3}");
    assert_eq!(scores.get(&id(99)), 0.0);

    // More attestations from the same rater add up.
    let mut more = graph.clone();
    more.add(&params, id(1), id(2), Signal::Attestation);
    assert!(more.scores(&params, &[verifier]).get(&id(2)) > s2);

    // A lost dispute outranks the certification between the same pair, and pulls the score to 0.
    let mut lost = graph.clone();
    lost.add(&params, verifier, id(1), Signal::DisputeLost);
    let after = lost.scores(&params, &[verifier]);
    assert_eq!(after.get(&id(1)), 0.0);
    assert_eq!(after.get(&id(2)), 0.0, "nothing flows from a zero score");

    // A report from another rater lowers the score without zeroing it.
    let mut reported = graph.clone();
    reported.add(&params, id(50), id(1), Signal::Report);
    reported.add(&params, verifier, id(50), Signal::Certification);
    let r = reported.scores(&params, &[verifier]).get(&id(1));
    assert!(r < s1 && r > 0.0, "{r} vs {s1}");

    // A new follow list replaces the old: dropped follows go, a stronger signal stays.
    let mut follows = TrustGraph::new();
    follows.set_follows(&params, verifier, &[id(1), id(2), id(3)]);
    follows.add(&params, verifier, id(2), Signal::Certification);
    assert_eq!(follows.len(), 3);
    follows.set_follows(&params, verifier, &[id(4)]);
    assert_eq!(
        follows.len(),
        2,
        "the certification of 2 and the follow of 4"
    );
    let scores = follows.scores(&params, &[verifier]);
    assert!(scores.get(&id(2)) > 0.0 && scores.get(&id(4)) > 0.0);
    assert_eq!(scores.get(&id(1)), 0.0);

    // Self-ratings are ignored.
    let mut selfish = TrustGraph::new();
    selfish.add(&params, id(7), id(7), Signal::Certification);
    assert!(selfish.is_empty());
}

#[test]
fn a_sybil_region_stays_below_its_bound_and_the_threshold() {
    let params = Params::default();
    let mut graph = TrustGraph::new();
    // The community: 5 physical verifiers (the observers), each certifying 4 of 40 members so
    // that 20 members are certified by two verifiers; members follow 10 others and attest
    // each other's work.
    let verifiers: Vec<AccountId> = (0..5).map(id).collect();
    let members: Vec<AccountId> = (100..140).map(id).collect();
    for (v, verifier) in verifiers.iter().enumerate() {
        for k in 0..4 {
            let m = (v * 4 + k) % 20;
            graph.add(&params, *verifier, members[m], Signal::Certification);
            graph.add(
                &params,
                *verifier,
                members[(m + 7) % 20],
                Signal::Certification,
            );
        }
    }
    for (i, m) in members.iter().enumerate() {
        for k in 1..=10 {
            graph.add(
                &params,
                *m,
                members[(i + k * 3) % members.len()],
                Signal::Follow,
            );
        }
        graph.add(
            &params,
            *m,
            members[(i + 1) % members.len()],
            Signal::Attestation,
        );
    }
    // The sybils: 1 000 fresh keys, each following and attesting every other.
    let sybils: Vec<AccountId> = (10_000..11_000).map(id).collect();
    for a in &sybils {
        for b in &sybils {
            graph.add(&params, *a, *b, Signal::Follow);
            graph.add(&params, *a, *b, Signal::Attestation);
        }
    }
    // Three members were fooled into following a sybil.
    for (m, s) in [(0, 0), (5, 10), (9, 20)] {
        graph.add(&params, members[m], sybils[s], Signal::Follow);
    }
    assert!(graph.len() > 999_000);

    let scores = graph.scores(&params, &verifiers);
    let region: HashSet<AccountId> = sybils.iter().copied().collect();
    let total: f64 = sybils.iter().map(|s| scores.get(s)).sum();
    let best = sybils.iter().map(|s| scores.get(s)).fold(0.0, f64::max);
    let inflow = graph.inflow(&params, &scores, &region, &verifiers);
    let bound = sybil_bound(&params, inflow).expect("the defaults satisfy α·B·ln(1/ρ) < 1");
    println!(
        "sybil region: total score {total:.6}, best {best:.6}, inflow {inflow:.6}, bound {bound:.6}"
    );
    assert!(total <= bound * 1.01 + 1e-9, "{total} > {bound}");
    assert!(best < THRESHOLD, "a sybil reached {best}");

    // The certified members clear the threshold.
    let certified = members[..20]
        .iter()
        .filter(|m| scores.get(m) >= THRESHOLD)
        .count();
    assert!(
        certified >= 15,
        "only {certified} certified members clear {THRESHOLD}"
    );
}
