//! A community's Work state driven by signed events: Flow 1 from posting to payment with the
//! reward in the ledger's escrow, every refusal the protocol names (a party or a low-trust key
//! attesting, a double attestation, a replayed event, an unknown task, an employer who cannot
//! cover the reward) changing nothing; a dispute whose panel reverses the quorum and refunds the
//! employer; and the whole state rebuilt by replaying the events over the ledger's history.

use std::collections::HashMap;

use moip_assets::ledger::{
    AccountId, CollateralSource, Ledger, MemoryJournal, TaskId, TokenInfo, TokenLedger,
};
use moip_work::community::{Community, Outcome, Rejection};
use moip_work::events::{decode, encode, Message, Signed, TaskBody};
use moip_work::identity::VerifierRules;
use moip_work::task::{Evidence, Rules, State, TaskError};
use moip_work::trust::Params;
use nostr_sdk::Keys;

const HOUR: u64 = 3_600;
const START: u64 = 1_800_000_000;

fn account(keys: &Keys) -> AccountId {
    AccountId::from_bytes(keys.public_key().to_bytes())
}

fn ledger(employer: &AccountId) -> Ledger<MemoryJournal> {
    let mut ledger = Ledger::create(
        MemoryJournal::default(),
        TokenInfo {
            id: "bakery".into(),
            name: "Bakery hours".into(),
            symbol: "BKH".into(),
        },
    )
    .expect("ledger");
    ledger
        .deposit(
            100_000,
            CollateralSource::Lightning {
                payment_hash: "ab".repeat(32),
            },
        )
        .expect("deposit");
    ledger.mint(employer, 20_000).expect("mint");
    ledger
}

struct World {
    keys: HashMap<AccountId, Keys>,
    founders: Vec<AccountId>,
    log: Vec<(Signed, u64)>,
}

impl World {
    fn sign(&self, who: &AccountId, message: Message, at: u64) -> Signed {
        let event = encode(&self.keys[who], "bakery", &message, at).expect("sign");
        decode(&event).expect("verify")
    }

    /// Applies and, when accepted, records the event for the rebuild.
    fn apply(
        &mut self,
        community: &mut Community<Ledger<MemoryJournal>>,
        who: &AccountId,
        message: Message,
        at: u64,
    ) -> Result<Outcome, Rejection> {
        let signed = self.sign(who, message, at);
        let outcome = community.apply(&signed, at);
        if outcome.is_ok() {
            self.log.push((signed, at));
        }
        outcome
    }
}

fn body(reward: u64) -> TaskBody {
    TaskBody {
        category: "painting".into(),
        geohash: "u33dc0".into(),
        evidence_required: vec!["photo-after".into()],
        reward,
        deadline: START + 100 * HOUR,
    }
}

fn evidence() -> Evidence {
    Evidence {
        items: vec![("photo-after".into(), "cd".repeat(32))],
        time: START + 2 * HOUR,
        geohash: "u33dc0".into(),
    }
}

fn new_community(world: &World, employer: &AccountId) -> Community<Ledger<MemoryJournal>> {
    community_over(world, ledger(employer))
}

fn community_over(
    world: &World,
    ledger: Ledger<MemoryJournal>,
) -> Community<Ledger<MemoryJournal>> {
    let mut community = Community::new(
        "bakery",
        ledger,
        &world.founders,
        Rules::default(),
        VerifierRules {
            cap_per_period: 20,
            ..VerifierRules::default()
        },
        Params::default(),
    );
    // The service's key, as the Work service gives it: a rebuild redraws the same panels.
    community.set_drawing_secret(&[7; 32]);
    community
}

#[test]
fn flow_one_disputes_and_a_rebuild_from_events() {
    let everyone: Vec<Keys> = (0..14).map(|_| Keys::generate()).collect();
    let ids: Vec<AccountId> = everyone.iter().map(account).collect();
    let mut world = World {
        keys: ids.iter().copied().zip(everyone.iter().cloned()).collect(),
        founders: vec![ids[0], ids[1]],
        log: Vec::new(),
    };
    let (v1, v2) = (ids[0], ids[1]);
    let (employer, worker, verifier, a1, a2) = (ids[2], ids[3], ids[4], ids[5], ids[6]);
    let stranger = ids[13];
    let mut community = new_community(&world, &employer);

    // The founders certify a third verifier (two certifications: never alone) and the members.
    let mut t = START;
    for subject in [
        verifier, a1, a2, ids[7], ids[8], ids[9], ids[10], ids[11], ids[12],
    ] {
        for founder in [v1, v2] {
            t += 1;
            world
                .apply(&mut community, &founder, Message::Certify { subject }, t)
                .expect("certify");
        }
    }
    // Both founders vouch for the worker, whom they met: enough trust to claim (one founder's
    // vouch is diluted by the nine certifications it gave).
    for founder in [v1, v2] {
        t += 1;
        world
            .apply(
                &mut community,
                &founder,
                Message::Vouch { subject: worker },
                t,
            )
            .expect("vouch");
    }
    assert!(community.scores(t).get(&a1) >= Rules::default().min_trust);
    assert_eq!(community.scores(t).get(&stranger), 0.0);

    // Flow 2's end: the employer posts a task; the reward is escrowed at once.
    let task = "paint-the-hall".to_string();
    world
        .apply(
            &mut community,
            &employer,
            Message::Post {
                task: task.clone(),
                body: body(5_000),
            },
            START + HOUR,
        )
        .expect("post");
    assert_eq!(community.ledger().balance(&employer), 15_000);
    assert_eq!(
        community
            .ledger()
            .escrow(&TaskId(task.clone()))
            .map(|e| e.amount),
        Some(5_000)
    );
    // More than the employer holds: refused, nothing locked.
    assert!(matches!(
        world.apply(
            &mut community,
            &employer,
            Message::Post {
                task: "too-big".into(),
                body: body(50_000),
            },
            START + HOUR,
        ),
        Err(Rejection::Ledger(_))
    ));
    assert!(community.task("too-big").is_none());
    assert!(matches!(
        world.apply(
            &mut community,
            &worker,
            Message::Claim {
                task: "nope".into()
            },
            START + HOUR
        ),
        Err(Rejection::UnknownTask(_))
    ));

    // Flow 1: claim, proof, attestations.
    world
        .apply(
            &mut community,
            &worker,
            Message::Claim { task: task.clone() },
            START + HOUR,
        )
        .expect("claim");
    world
        .apply(
            &mut community,
            &worker,
            Message::Submit {
                task: task.clone(),
                evidence: evidence(),
            },
            START + 2 * HOUR,
        )
        .expect("submit");
    let attest = |task: &str| Message::Attest {
        task: task.into(),
        worker,
    };
    let at = START + 3 * HOUR;
    assert_eq!(
        world.apply(&mut community, &employer, attest(&task), at),
        Err(Rejection::Task(TaskError::PartyAttests))
    );
    assert!(matches!(
        world.apply(&mut community, &stranger, attest(&task), at),
        Err(Rejection::Task(TaskError::LowTrust { .. }))
    ));
    assert_eq!(
        world.apply(&mut community, &a1, attest(&task), at),
        Ok(Outcome::Accepted)
    );
    // The same event again is a replay; a second attestation by a1 is a double.
    let replay = world.log.last().expect("a1's attestation").0.clone();
    assert_eq!(community.apply(&replay, at), Err(Rejection::Replayed));
    assert_eq!(
        world.apply(&mut community, &a1, attest(&task), at + 1),
        Err(Rejection::Task(TaskError::DoubleAttestation))
    );
    assert_eq!(
        world.apply(&mut community, &a2, attest(&task), at),
        Ok(Outcome::Accepted)
    );
    assert_eq!(
        world.apply(&mut community, &verifier, attest(&task), at),
        Ok(Outcome::QuorumReached)
    );
    // The challenge window, then payment out of escrow.
    assert!(community.tick(at + HOUR).is_empty());
    assert_eq!(
        community.tick(at + Rules::default().challenge_window),
        vec![task.clone()]
    );
    assert_eq!(community.ledger().balance(&worker), 5_000);
    assert!(matches!(
        community.task(&task).map(|t| &t.state),
        Some(State::Paid { .. })
    ));

    // A second task: quorum, then the employer disputes; the panel reverses it.
    let second = "fix-the-roof".to_string();
    let t0 = START + 200 * HOUR;
    let mut second_body = body(3_000);
    second_body.deadline = t0 + 100 * HOUR;
    world
        .apply(
            &mut community,
            &employer,
            Message::Post {
                task: second.clone(),
                body: second_body,
            },
            t0,
        )
        .expect("post");
    world
        .apply(
            &mut community,
            &worker,
            Message::Claim {
                task: second.clone(),
            },
            t0,
        )
        .expect("claim");
    world
        .apply(
            &mut community,
            &worker,
            Message::Submit {
                task: second.clone(),
                evidence: evidence(),
            },
            t0 + HOUR,
        )
        .expect("submit");
    for a in [a1, a2, verifier] {
        world
            .apply(&mut community, &a, attest(&second), t0 + 2 * HOUR)
            .expect("attest");
    }
    let score_before = community.scores(t0).get(&worker);
    world
        .apply(
            &mut community,
            &employer,
            Message::Dispute {
                task: second.clone(),
            },
            t0 + 3 * HOUR,
        )
        .expect("dispute");
    let panel = community.panel(&second).expect("a panel").to_vec();
    assert!(!panel.is_empty());
    for party in [employer, worker, a1, a2, verifier] {
        assert!(!panel.contains(&party));
    }
    assert_eq!(
        world.apply(
            &mut community,
            &stranger,
            Message::Vote {
                task: second.clone(),
                worker_won: true
            },
            t0 + 4 * HOUR,
        ),
        Err(Rejection::NotOnPanel)
    );
    let mut outcome = Outcome::Accepted;
    for juror in &panel {
        outcome = world
            .apply(
                &mut community,
                juror,
                Message::Vote {
                    task: second.clone(),
                    worker_won: false,
                },
                t0 + 4 * HOUR,
            )
            .expect("vote");
        if outcome != Outcome::Accepted {
            break;
        }
    }
    assert_eq!(outcome, Outcome::Resolved { worker_won: false });
    assert_eq!(
        community.ledger().balance(&employer),
        12_000 + 3_000,
        "refunded"
    );
    assert_eq!(community.ledger().balance(&worker), 5_000);
    assert!(community.scores(t0 + 5 * HOUR).get(&worker) < score_before);

    // Rebuild: a node that lost its Work state replays the accepted events over the ledger's
    // own history (genesis, deposit, mint) and arrives at the same state.
    let mut rebuilt = new_community(&world, &employer);
    for (event, at) in &world.log {
        rebuilt.apply(event, *at).expect("replays");
    }
    rebuilt.tick(t0 + 10 * HOUR);
    assert_eq!(rebuilt.tasks(), community.tasks());
    assert_eq!(rebuilt.scores(t0), community.scores(t0));
    for who in &ids {
        assert_eq!(
            rebuilt.ledger().balance(who),
            community.ledger().balance(who)
        );
    }
    assert_eq!(
        rebuilt.ledger().supply_root(),
        community.ledger().supply_root()
    );

    // The usual rebuild: the Work state is gone but the ledger (the money) is not. Replaying
    // over the ledger that already holds every lock, release and refund changes nothing in it.
    let tasks = community.tasks().clone();
    let scores = community.scores(t0);
    let ledger = community.into_ledger();
    let (entries, root) = (ledger.len(), ledger.supply_root());
    let mut again = community_over(&world, ledger);
    for (event, at) in &world.log {
        again.apply(event, *at).expect("replays");
    }
    again.tick(t0 + 10 * HOUR);
    assert_eq!(again.tasks(), &tasks);
    assert_eq!(again.scores(t0), scores);
    assert_eq!(again.ledger().len(), entries, "nothing written twice");
    assert_eq!(again.ledger().supply_root(), root);

    // An event for another community is refused.
    let foreign = encode(
        &world.keys[&worker],
        "elsewhere",
        &Message::Claim {
            task: "paint-the-hall".into(),
        },
        t0,
    )
    .expect("sign");
    assert_eq!(
        again.apply(&decode(&foreign).expect("verify"), t0),
        Err(Rejection::OtherCommunity("elsewhere".into()))
    );
}
