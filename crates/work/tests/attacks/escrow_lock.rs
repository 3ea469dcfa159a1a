//! Attack 5 (issue 21): anyone locks an escrowed reward for ever — a fresh key claims the task
//! and sits on it, or disputes the payment and no panel ever decides.
//!
//! The defence (see [`moip_work::task`]): claiming and disputing need trust (the employer may
//! always dispute their own task); a claim lapses after its window or the task's deadline, and
//! then another may take the task or the employer withdraws it and is refunded; a submission
//! that gathers no quorum in its window lapses too; a panel that has not decided by its deadline
//! leaves the quorum standing and the worker is paid.
//!
//! The first two tests run the real Work service over the real relay; the third drives the same
//! [`Community`] the service runs, with the time given to it, to step past week-long windows.

use moip_assets::ledger::{
    CollateralSource, Ledger, MemoryJournal, TaskId, TokenInfo, TokenLedger,
};
use moip_work::community::{Community, Outcome, Rejection};
use moip_work::events::{decode, encode, Message, TaskBody};
use moip_work::identity::VerifierRules;
use moip_work::receipt::Verdict;
use moip_work::service::{ServiceConfig, WorkService};
use moip_work::task::{Evidence, Rules, State, TaskError};
use moip_work::trust::Params;
use moip_work::AccountId;
use nostr_sdk::Keys;
use std::time::Duration;

use crate::common::{account, now, publisher, relay, send, COMMUNITY, WAIT};

const REWARD: u64 = 2_000;
const DAY: u64 = 86_400;

fn ledger(employer: &AccountId) -> Ledger<MemoryJournal> {
    let mut ledger = Ledger::create(
        MemoryJournal::default(),
        TokenInfo {
            id: COMMUNITY.into(),
            name: "Bakery hours".into(),
            symbol: "BKH".into(),
        },
    )
    .expect("ledger");
    ledger
        .deposit(
            10_000,
            CollateralSource::Lightning {
                payment_hash: "ef".repeat(32),
            },
        )
        .expect("deposit");
    ledger.mint(employer, 10_000).expect("mint");
    ledger
}

fn community(
    employer: &AccountId,
    founders: &[AccountId],
    rules: Rules,
) -> Community<Ledger<MemoryJournal>> {
    Community::new(
        COMMUNITY,
        ledger(employer),
        founders,
        rules,
        VerifierRules::default(),
        Params::default(),
    )
}

fn body(deadline: u64) -> TaskBody {
    TaskBody {
        category: "painting".into(),
        geohash: "u33dc0".into(),
        evidence_required: vec!["photo-after".into()],
        reward: REWARD,
        deadline,
    }
}

fn evidence(time: u64) -> Evidence {
    Evidence {
        items: vec![("photo-after".into(), "cd".repeat(32))],
        time,
        geohash: "u33dc0".into(),
    }
}

fn rejected(verdict: &Verdict, needle: &str) -> bool {
    matches!(verdict, Verdict::Rejected { reason } if reason.contains(needle))
}

/// The people of a small community: two founders (verifiers), two attesters certified by both,
/// an employer, a worker one founder vouched for, and a fresh key.
struct People {
    founders: [Keys; 2],
    attesters: [Keys; 2],
    employer: Keys,
    worker: Keys,
    stranger: Keys,
}

impl People {
    fn new() -> People {
        People {
            founders: [Keys::generate(), Keys::generate()],
            attesters: [Keys::generate(), Keys::generate()],
            employer: Keys::generate(),
            worker: Keys::generate(),
            stranger: Keys::generate(),
        }
    }

    fn founder_ids(&self) -> Vec<AccountId> {
        self.founders.iter().map(account).collect()
    }

    /// The events that give the attesters and the worker their trust, in order.
    fn trust_events(&self) -> Vec<(&Keys, Message)> {
        let mut events = Vec::new();
        for attester in &self.attesters {
            for founder in &self.founders {
                let subject = account(attester);
                events.push((founder, Message::Certify { subject }));
            }
        }
        let subject = account(&self.worker);
        events.push((&self.founders[0], Message::Vouch { subject }));
        events
    }

    /// The three attesters of a quorum: a founder (the physical verifier) and the two others.
    fn quorum(&self) -> [&Keys; 3] {
        [&self.founders[1], &self.attesters[0], &self.attesters[1]]
    }
}

async fn start(
    people: &People,
    rules: Rules,
) -> (
    moip_work::relay::Relay,
    nostr_sdk::Client,
    WorkService<Ledger<MemoryJournal>>,
) {
    let relay = relay().await;
    let client = publisher(relay.url()).await;
    let mut config = ServiceConfig::new(vec![relay.url().to_owned()], Keys::generate());
    config.tick = Duration::from_millis(200);
    let community = community(&account(&people.employer), &people.founder_ids(), rules);
    let service = WorkService::start(config, community)
        .await
        .expect("service");
    for (keys, message) in people.trust_events() {
        assert_eq!(
            send(&service, &client, keys, message).await.verdict,
            Verdict::Accepted
        );
    }
    (relay, client, service)
}

/// A fresh key's claim and dispute are refused with the reason, the escrow untouched; the
/// attested reward is then paid when its window passes. On the code before the defence the
/// stranger's claim was accepted and held the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_key_can_neither_claim_nor_dispute_a_reward() {
    let people = People::new();
    let rules = Rules {
        challenge_window: 3,
        ..Rules::default()
    };
    let (_relay, client, service) = start(&people, rules).await;
    let task = "paint-the-gate".to_string();
    let escrow = |service: &WorkService<Ledger<MemoryJournal>>| {
        service.with_community(|c| c.ledger().escrow(&TaskId(task.clone())).map(|e| e.amount))
    };
    let state = |service: &WorkService<Ledger<MemoryJournal>>| {
        service.with_community(|c| c.task(&task).map(|t| t.state.clone()))
    };
    let post = Message::Post {
        task: task.clone(),
        body: body(now() + 3_600),
    };
    assert_eq!(
        send(&service, &client, &people.employer, post)
            .await
            .verdict,
        Verdict::Accepted
    );

    let claim = Message::Claim { task: task.clone() };
    let receipt = send(&service, &client, &people.stranger, claim.clone()).await;
    assert!(rejected(&receipt.verdict, "to claim"), "{receipt:?}");
    assert_eq!(state(&service), Some(State::Open));
    assert_eq!(escrow(&service), Some(REWARD));

    // The worker the community trusts does the work; a quorum attests it.
    let receipt = send(&service, &client, &people.worker, claim).await;
    assert_eq!(receipt.verdict, Verdict::Accepted);
    let submit = Message::Submit {
        task: task.clone(),
        evidence: evidence(now()),
    };
    let receipt = send(&service, &client, &people.worker, submit).await;
    assert_eq!(receipt.verdict, Verdict::Accepted);
    let attest = Message::Attest {
        task: task.clone(),
        worker: account(&people.worker),
    };
    let mut last = Verdict::Accepted;
    for attester in people.quorum() {
        last = send(&service, &client, attester, attest.clone())
            .await
            .verdict;
    }
    assert_eq!(last, Verdict::QuorumReached);

    // The stranger tries to freeze the payment.
    let dispute = Message::Dispute { task: task.clone() };
    let receipt = send(&service, &client, &people.stranger, dispute).await;
    assert!(rejected(&receipt.verdict, "to dispute"), "{receipt:?}");
    assert!(matches!(state(&service), Some(State::Attested { .. })));

    let worker = account(&people.worker);
    moip_testkit::wait_until(WAIT, "the reward paid after the challenge window", || {
        (service.with_community(|c| c.ledger().balance(&worker)) == REWARD).then_some(())
    });
    assert_eq!(escrow(&service), None);
    service.shutdown().await;
}

/// The employer disputes (as they may, whatever their trust) and the panel stays silent: at the
/// panel's deadline the quorum stands and the service pays the worker. On the code before the
/// defence the task stayed disputed, its escrow frozen, for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_panel_cannot_freeze_the_escrow() {
    let people = People::new();
    let rules = Rules {
        challenge_window: 600,
        panel_window: 3,
        ..Rules::default()
    };
    let (_relay, client, service) = start(&people, rules).await;
    let task = "fix-the-oven".to_string();
    let post = Message::Post {
        task: task.clone(),
        body: body(now() + 3_600),
    };
    assert_eq!(
        send(&service, &client, &people.employer, post)
            .await
            .verdict,
        Verdict::Accepted
    );
    for message in [
        Message::Claim { task: task.clone() },
        Message::Submit {
            task: task.clone(),
            evidence: evidence(now()),
        },
    ] {
        let receipt = send(&service, &client, &people.worker, message).await;
        assert_eq!(receipt.verdict, Verdict::Accepted);
    }
    let attest = Message::Attest {
        task: task.clone(),
        worker: account(&people.worker),
    };
    for attester in people.quorum() {
        send(&service, &client, attester, attest.clone()).await;
    }
    let dispute = Message::Dispute { task: task.clone() };
    let receipt = send(&service, &client, &people.employer, dispute).await;
    assert_eq!(
        receipt.verdict,
        Verdict::Accepted,
        "the employer may dispute"
    );
    assert!(service.with_community(|c| matches!(
        c.task(&task).map(|t| &t.state),
        Some(State::Disputed { .. })
    )));

    // Nobody on the panel votes. The service's own clock passes the deadline.
    let worker = account(&people.worker);
    moip_testkit::wait_until(WAIT, "the silent panel's default: the worker paid", || {
        (service.with_community(|c| c.ledger().balance(&worker)) == REWARD).then_some(())
    });
    assert!(service.with_community(|c| matches!(
        c.task(&task).map(|t| &t.state),
        Some(State::Resolved {
            worker_won: true,
            ..
        })
    )));
    assert_eq!(
        service.with_community(|c| c.ledger().escrow(&TaskId(task.clone()))),
        None
    );
    service.shutdown().await;
}

/// Week-long windows, stepped through with the time given to the community the service runs:
/// a claim that never delivers lapses (another takes the task, or the employer is refunded), a
/// submission nobody attests lapses, and a vote after the panel's deadline is refused while the
/// deadline pays the worker. On the code before the defence every one of these stayed locked.
#[test]
fn claims_submissions_and_panels_run_out_and_the_escrow_comes_back() {
    let people = People::new();
    let helper = Keys::generate();
    let rules = Rules::default();
    let (employer, worker) = (account(&people.employer), account(&people.worker));
    let mut community = community(&employer, &people.founder_ids(), rules.clone());
    let t0 = 1_800_000_000;
    let mut t = t0;
    let apply = |community: &mut Community<_>, keys: &Keys, message: Message, at: u64| {
        let event = encode(keys, COMMUNITY, &message, at).expect("sign");
        community.apply(&decode(&event).expect("verify"), at)
    };
    let mut trust = people.trust_events();
    trust.push((
        &people.founders[1],
        Message::Vouch {
            subject: account(&helper),
        },
    ));
    for (keys, message) in trust {
        t += 1;
        apply(&mut community, keys, message, t).expect("trust");
    }
    let balance = |c: &Community<Ledger<MemoryJournal>>| c.ledger().balance(&employer);
    let start = balance(&community);

    // A claim that never delivers: the employer cannot withdraw while it runs; once it lapses
    // another takes the task (not the lapsed worker), and when theirs lapses too the employer
    // withdraws and has the reward back.
    let task = "mend-the-fence".to_string();
    let post = Message::Post {
        task: task.clone(),
        body: body(t0 + 30 * DAY),
    };
    apply(&mut community, &people.employer, post, t).expect("post");
    assert_eq!(balance(&community), start - REWARD);
    let claim = Message::Claim { task: task.clone() };
    apply(&mut community, &people.worker, claim.clone(), t).expect("claim");
    let withdraw = Message::Withdraw { task: task.clone() };
    assert!(matches!(
        apply(&mut community, &people.employer, withdraw.clone(), t + DAY),
        Err(Rejection::Task(TaskError::NotAllowed(_)))
    ));
    let lapsed = t + rules.claim_window + 1;
    assert_eq!(
        apply(&mut community, &people.worker, claim.clone(), lapsed),
        Err(Rejection::Task(TaskError::NotAllowed(
            "someone other than the lapsed worker"
        )))
    );
    let late = Message::Submit {
        task: task.clone(),
        evidence: evidence(lapsed),
    };
    assert!(matches!(
        apply(&mut community, &people.worker, late, lapsed),
        Err(Rejection::Task(TaskError::Late(_)))
    ));
    apply(&mut community, &helper, claim, lapsed).expect("another takes the lapsed claim");
    let lapsed_again = lapsed + rules.claim_window + 1;
    assert_eq!(
        apply(&mut community, &people.employer, withdraw, lapsed_again),
        Ok(Outcome::Accepted)
    );
    assert_eq!(balance(&community), start, "refunded");
    assert_eq!(community.ledger().escrow(&TaskId(task.clone())), None);

    // A submission nobody attests: after the attestation window the employer withdraws.
    let t1 = lapsed_again + DAY;
    let task = "paint-the-shed".to_string();
    let post = Message::Post {
        task: task.clone(),
        body: body(t1 + 30 * DAY),
    };
    apply(&mut community, &people.employer, post, t1).expect("post");
    apply(
        &mut community,
        &people.worker,
        Message::Claim { task: task.clone() },
        t1,
    )
    .expect("claim");
    let submit = Message::Submit {
        task: task.clone(),
        evidence: evidence(t1),
    };
    apply(&mut community, &people.worker, submit, t1).expect("submit");
    let withdraw = Message::Withdraw { task: task.clone() };
    assert!(apply(&mut community, &people.employer, withdraw.clone(), t1 + DAY).is_err());
    let after = t1 + rules.attestation_window + 1;
    apply(&mut community, &people.employer, withdraw, after).expect("withdraw after the window");
    assert_eq!(balance(&community), start, "refunded");

    // A panel that never decides: a vote after its deadline is refused, and the deadline pays
    // the worker (the quorum stands).
    let t2 = after + DAY;
    let task = "sweep-the-hall".to_string();
    let post = Message::Post {
        task: task.clone(),
        body: body(t2 + 30 * DAY),
    };
    apply(&mut community, &people.employer, post, t2).expect("post");
    apply(
        &mut community,
        &people.worker,
        Message::Claim { task: task.clone() },
        t2,
    )
    .expect("claim");
    let submit = Message::Submit {
        task: task.clone(),
        evidence: evidence(t2),
    };
    apply(&mut community, &people.worker, submit, t2).expect("submit");
    let attest = Message::Attest {
        task: task.clone(),
        worker,
    };
    for attester in people.quorum() {
        apply(&mut community, attester, attest.clone(), t2 + 1).expect("attest");
    }
    apply(
        &mut community,
        &people.employer,
        Message::Dispute { task: task.clone() },
        t2 + 2,
    )
    .expect("the employer disputes");
    let deadline = t2 + 2 + rules.panel_window;
    assert!(
        community.tick(deadline - 1).is_empty(),
        "frozen until the deadline"
    );
    // The panel is drawn from those outside the task: founder 0 and the helper.
    let panel = community.panel(&task).expect("a panel").to_vec();
    let juror = [&people.founders[0], &helper]
        .into_iter()
        .find(|k| panel.contains(&account(k)))
        .expect("a juror among the eligible");
    let vote = Message::Vote {
        task: task.clone(),
        worker_won: false,
    };
    assert_eq!(
        apply(&mut community, juror, vote, deadline),
        Err(Rejection::Task(TaskError::OutsideWindow))
    );
    assert_eq!(community.tick(deadline), vec![task.clone()]);
    assert_eq!(community.ledger().balance(&worker), REWARD);
    assert!(matches!(
        community.task(&task).map(|t| &t.state),
        Some(State::Resolved {
            worker_won: true,
            ..
        })
    ));
}
