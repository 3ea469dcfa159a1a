//! Tasks, attestation quorums, disputes and verifier certification: every transition and every
//! refusal the Work protocol names — attestations by parties or low-trust keys, double
//! attestations, late submissions, quorums without a physical verifier — and panels anyone can
//! recompute.

use moip_work::dispute::{consequences, draw_panel, panel_seed, tally};
use moip_work::identity::{IdentityError, Registry, Role, VerifierRules};
use moip_work::task::{Attestation, Evidence, Rules, State, Task, TaskError, TaskSpec};
use moip_work::trust::Signal;
use moip_work::AccountId;

fn id(n: u8) -> AccountId {
    AccountId::from_bytes([n; 32])
}

const HOUR: u64 = 3_600;

fn spec() -> TaskSpec {
    TaskSpec {
        id: "paint-the-hall".into(),
        employer: id(1),
        category: "painting".into(),
        geohash: "u33dc0".into(),
        evidence_required: vec!["photo-after".into()],
        reward: 5_000,
        deadline: 100 * HOUR,
    }
}

fn evidence() -> Evidence {
    Evidence {
        items: vec![("photo-after".into(), "ab".repeat(32))],
        time: 10 * HOUR,
        geohash: "u33dc0".into(),
    }
}

fn attestation(n: u8, physical: bool, trust: f64, time: u64) -> Attestation {
    Attestation {
        attester: id(n),
        physical_verifier: physical,
        trust,
        time,
        sponsors: vec![],
    }
}

#[test]
fn flow_one_from_posting_to_payment() {
    let rules = Rules::default();
    assert!(matches!(
        Task::post(
            TaskSpec {
                geohash: "not a geohash!".into(),
                ..spec()
            },
            0
        ),
        Err(TaskError::Invalid(_))
    ));
    assert!(matches!(
        Task::post(
            TaskSpec {
                reward: 0,
                ..spec()
            },
            0
        ),
        Err(TaskError::Invalid(_))
    ));
    let mut task = Task::post(spec(), 0).expect("post");
    let (employer, worker) = (id(1), id(2));
    assert_eq!(
        task.claim(employer, 0.5, &rules, HOUR),
        Err(TaskError::NotAllowed("someone other than the employer"))
    );
    task.claim(worker, 0.5, &rules, HOUR).expect("claim");
    assert!(matches!(
        task.claim(id(3), 0.5, &rules, HOUR),
        Err(TaskError::WrongState("claimed"))
    ));
    // Missing evidence, someone else submitting, and a late submission are refused.
    let bare = Evidence {
        items: vec![],
        ..evidence()
    };
    assert_eq!(
        task.submit(worker, bare, 10 * HOUR),
        Err(TaskError::MissingEvidence("photo-after".into()))
    );
    assert_eq!(
        task.submit(id(3), evidence(), 10 * HOUR),
        Err(TaskError::NotAllowed("the worker"))
    );
    assert_eq!(
        task.submit(worker, evidence(), 101 * HOUR),
        Err(TaskError::Late(100 * HOUR))
    );
    task.submit(worker, evidence(), 10 * HOUR).expect("submit");

    // Attestations: parties, low trust, doubles and late ones refused.
    let now = 11 * HOUR;
    assert_eq!(
        task.attest(attestation(1, true, 0.9, now), &rules, now),
        Err(TaskError::PartyAttests)
    );
    assert_eq!(
        task.attest(attestation(2, true, 0.9, now), &rules, now),
        Err(TaskError::PartyAttests)
    );
    assert!(matches!(
        task.attest(attestation(10, false, 0.05, now), &rules, now),
        Err(TaskError::LowTrust { .. })
    ));
    assert!(matches!(
        task.attest(attestation(10, false, f64::NAN, now), &rules, now),
        Err(TaskError::LowTrust { .. })
    ));
    let late = 10 * HOUR + rules.attestation_window + 1;
    assert_eq!(
        task.attest(attestation(10, false, 0.5, late), &rules, late),
        Err(TaskError::OutsideWindow)
    );
    assert_eq!(
        task.attest(attestation(10, false, 0.5, now), &rules, now),
        Ok(false)
    );
    assert_eq!(
        task.attest(attestation(10, false, 0.5, now), &rules, now),
        Err(TaskError::DoubleAttestation)
    );
    assert_eq!(
        task.attest(attestation(11, false, 0.5, now), &rules, now),
        Ok(false)
    );
    // Three attesters but no physical verifier: no quorum yet.
    assert_eq!(
        task.attest(attestation(12, false, 0.5, now), &rules, now),
        Ok(false)
    );
    assert_eq!(
        task.attest(attestation(13, true, 0.5, now), &rules, now),
        Ok(true)
    );
    assert!(matches!(task.state, State::Attested { .. }));

    // Paid only after the challenge window.
    assert!(task.pay(now + HOUR).is_err());
    assert_eq!(task.pay(now + rules.challenge_window), Ok(worker));
    assert_eq!(task.state, State::Paid { worker });
}

#[test]
fn withdrawals() {
    let rules = Rules::default();
    let mut task = Task::post(spec(), 0).expect("post");
    task.claim(id(2), 0.5, &rules, HOUR).expect("claim");
    assert!(task.withdraw(id(3), &rules, HOUR).is_err());
    assert!(
        task.withdraw(id(1), &rules, HOUR).is_err(),
        "not while the claim runs"
    );
    assert_eq!(
        task.withdraw(id(2), &rules, HOUR),
        Ok(false),
        "the worker gives it up"
    );
    assert_eq!(task.state, State::Open);
    assert_eq!(
        task.withdraw(id(1), &rules, HOUR),
        Ok(true),
        "the employer withdraws it"
    );
    assert_eq!(task.state, State::Withdrawn);
    assert!(task.claim(id(2), 0.5, &rules, HOUR).is_err());
}

#[test]
fn a_dispute_reverses_a_quorum_through_a_verifiable_panel() {
    let rules = Rules::default();
    let mut task = Task::post(spec(), 0).expect("post");
    let worker = id(2);
    task.claim(worker, 0.5, &rules, HOUR).expect("claim");
    task.submit(worker, evidence(), 10 * HOUR).expect("submit");
    for n in [10, 11, 12] {
        task.attest(attestation(n, n == 10, 0.5, 11 * HOUR), &rules, 11 * HOUR)
            .expect("attest");
    }
    let until = 11 * HOUR + rules.challenge_window;
    assert_eq!(
        task.dispute(worker, 0.5, &rules, 12 * HOUR),
        Err(TaskError::NotAllowed("someone other than the worker"))
    );
    assert_eq!(
        task.dispute(id(20), 0.5, &rules, until),
        Err(TaskError::OutsideWindow)
    );
    task.dispute(id(20), 0.5, &rules, 12 * HOUR)
        .expect("dispute");
    assert!(task.pay(until + 1).is_err(), "the escrow is frozen");

    // Candidates: everyone with a score; the panel excludes every party.
    let candidates: Vec<(AccountId, f64)> = (1..=40)
        .map(|n| (id(n), 0.05 + f64::from(n) / 50.0))
        .collect();
    let parties = task.parties();
    for p in [id(1), worker, id(10), id(11), id(12), id(20)] {
        assert!(parties.contains(&p));
    }
    let seed = panel_seed("paint-the-hall", &[7; 32]);
    let panel = draw_panel(&seed, &candidates, &parties, 5, 0.1);
    assert_eq!(panel.len(), 5);
    assert!(panel.iter().all(|j| !parties.contains(j)));
    // Anyone recomputes the same panel; another dispute event gives another draw.
    assert_eq!(draw_panel(&seed, &candidates, &parties, 5, 0.1), panel);
    let other = draw_panel(
        &panel_seed("paint-the-hall", &[8; 32]),
        &candidates,
        &parties,
        5,
        0.1,
    );
    assert_ne!(other, panel);

    // Votes: outsiders and second votes ignored; a majority decides.
    let mut votes = vec![
        (id(1), true),
        (panel[0], false),
        (panel[0], true),
        (panel[1], false),
    ];
    assert_eq!(tally(&panel, &votes), None);
    votes.push((panel[2], false));
    assert_eq!(tally(&panel, &votes), Some(false));
    task.resolve(false).expect("resolve");
    assert_eq!(
        task.state,
        State::Resolved {
            worker,
            worker_won: false
        }
    );

    // The losers — the worker and the attesters — take lost-dispute edges from every juror.
    let edges = consequences(&panel, &worker, &[id(10), id(11), id(12)], &id(20), false);
    assert_eq!(edges.len(), 5 * 4);
    assert!(edges.iter().all(|(_, _, s)| *s == Signal::DisputeLost));
    let won = consequences(&panel, &worker, &[id(10)], &id(20), true);
    assert!(won.iter().all(|(_, loser, _)| *loser == id(20)));
}

#[test]
fn panels_favour_trust_over_many_draws() {
    // Two candidates, trust 0.9 and 0.1: over many seeds the trusted one sits far more often.
    let candidates = [(id(1), 0.9), (id(2), 0.1)];
    let mut first = 0;
    for n in 0u8..200 {
        let panel = draw_panel(&panel_seed("t", &[n; 32]), &candidates, &[], 1, 0.0);
        if panel == [id(1)] {
            first += 1;
        }
    }
    assert!(first > 150, "{first} of 200");
}

#[test]
fn verifiers_are_certified_by_two_within_caps_and_expire() {
    let rules = VerifierRules {
        certifiers_needed: 2,
        cap_per_period: 2,
        period_secs: 10 * HOUR,
        validity_secs: 100 * HOUR,
    };
    let (f1, f2, f3) = (id(1), id(2), id(3));
    let mut registry = Registry::new([f1, f2, f3], rules);
    let (alice, bob) = (id(10), id(11));
    assert_eq!(
        registry.certify(alice, bob, 0),
        Err(IdentityError::NotVerifier(alice))
    );
    assert_eq!(
        registry.certify(f1, f1, 0),
        Err(IdentityError::SelfCertification)
    );
    // One certification is not enough: never certify alone.
    registry.certify(f1, alice, 0).expect("first");
    assert!(!registry.has_role(&alice, Role::PhysicalVerifier, HOUR));
    registry.certify(f2, alice, HOUR).expect("second");
    assert!(registry.has_role(&alice, Role::PhysicalVerifier, HOUR));
    assert!(registry.has_role(&alice, Role::Member, HOUR));
    // Alice can now certify; f1 hits its cap of two per period.
    registry
        .certify(alice, bob, 2 * HOUR)
        .expect("alice certifies");
    registry.certify(f1, bob, 2 * HOUR).expect("f1's second");
    assert!(registry.has_role(&bob, Role::PhysicalVerifier, 2 * HOUR));
    assert_eq!(
        registry.certify(f1, id(12), 3 * HOUR),
        Err(IdentityError::OverCap {
            verifier: f1,
            cap: 2
        })
    );
    registry
        .certify(f1, id(12), 11 * HOUR)
        .expect("a new period");
    // Certifications expire: without renewal, alice is no verifier after 100 hours, and bob,
    // certified partly by alice, loses it too.
    assert!(!registry.has_role(&alice, Role::PhysicalVerifier, 101 * HOUR));
    assert!(!registry.has_role(&bob, Role::PhysicalVerifier, 101 * HOUR));
    // Renewal keeps alice.
    registry.certify(f2, alice, 99 * HOUR).expect("renew");
    registry.certify(f3, alice, 99 * HOUR).expect("renew");
    assert!(registry.has_role(&alice, Role::PhysicalVerifier, 150 * HOUR));
}
