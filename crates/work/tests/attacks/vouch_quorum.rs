//! Attack 7 (issue 21): one verifier carries the quorum. A vouch is a strong trust edge that
//! one verifier gives alone; two vouches lift two fresh keys above the attestation threshold,
//! and the verifier with its two keys makes a quorum of three (one of them a physical verifier)
//! that pays whoever it likes. Vouches were unlimited, outside the certification cap.
//!
//! The defence: a quorum counts only when no single key carries it — some attester must be
//! neither that key nor someone only it vouched for or certified ([`moip_work::task::Rules`]);
//! and a verifier gives at most `vouch_cap` vouches per period.
//!
//! Both tests run the real Work service over the real relay.

use moip_assets::ledger::{CollateralSource, Ledger, MemoryJournal, TokenInfo, TokenLedger};
use moip_work::community::Community;
use moip_work::events::{Message, TaskBody};
use moip_work::identity::VerifierRules;
use moip_work::receipt::Verdict;
use moip_work::relay::Relay;
use moip_work::service::{ServiceConfig, WorkService};
use moip_work::task::{Evidence, Rules, State};
use moip_work::trust::Params;
use moip_work::AccountId;
use nostr_sdk::{Client, Keys};

use crate::common::{account, now, publisher, relay, send, COMMUNITY};

type Service = WorkService<Ledger<MemoryJournal>>;

async fn start(founders: &[AccountId], employer: &AccountId) -> (Relay, Client, Service) {
    let relay = relay().await;
    let client = publisher(relay.url()).await;
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
                payment_hash: "12".repeat(32),
            },
        )
        .expect("deposit");
    ledger.mint(employer, 10_000).expect("mint");
    let community = Community::new(
        COMMUNITY,
        ledger,
        founders,
        Rules::default(),
        VerifierRules::default(),
        Params::default(),
    );
    let config = ServiceConfig::new(vec![relay.url().to_owned()], Keys::generate());
    let service = WorkService::start(config, community)
        .await
        .expect("service");
    (relay, client, service)
}

async fn vouch(service: &Service, client: &Client, by: &Keys, subject: &Keys) -> Verdict {
    let vouch = Message::Vouch {
        subject: account(subject),
    };
    send(service, client, by, vouch).await.verdict
}

/// A founder vouches for two fresh keys and attests with them: three attesters, one a physical
/// verifier, all above the threshold — and no quorum, because the founder carries all three.
/// An attester the other founder vouched for completes it. On the code before the defence the
/// third of the founder's attestations reached the quorum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_verifier_and_the_keys_it_vouched_for_cannot_fill_a_quorum() {
    let [v1, v2, employer, worker, s1, s2, honest] = std::array::from_fn(|_| Keys::generate());
    let (_relay, client, service) = start(&[account(&v1), account(&v2)], &account(&employer)).await;

    for sybil in [&s1, &s2] {
        assert_eq!(
            vouch(&service, &client, &v1, sybil).await,
            Verdict::Accepted
        );
    }
    for member in [&worker, &honest] {
        assert_eq!(
            vouch(&service, &client, &v2, member).await,
            Verdict::Accepted
        );
    }
    let task = "repaint-the-sign".to_string();
    let post = Message::Post {
        task: task.clone(),
        body: TaskBody {
            category: "painting".into(),
            geohash: "u33dc0".into(),
            evidence_required: vec!["photo-after".into()],
            reward: 3_000,
            deadline: now() + 3_600,
        },
    };
    assert_eq!(
        send(&service, &client, &employer, post).await.verdict,
        Verdict::Accepted
    );
    let claim = Message::Claim { task: task.clone() };
    assert_eq!(
        send(&service, &client, &worker, claim).await.verdict,
        Verdict::Accepted
    );
    let submit = Message::Submit {
        task: task.clone(),
        evidence: Evidence {
            items: vec![("photo-after".into(), "ab".repeat(32))],
            time: now(),
            geohash: "u33dc0".into(),
        },
    };
    assert_eq!(
        send(&service, &client, &worker, submit).await.verdict,
        Verdict::Accepted
    );

    // Each of the sybils clears the threshold on the one vouch.
    let at = now();
    let min = Rules::default().min_trust;
    for sybil in [&s1, &s2] {
        let trust = service.with_community(|c| c.scores(at).get(&account(sybil)));
        assert!(trust >= min, "one vouch lifts a fresh key to {trust}");
    }

    let attest = Message::Attest {
        task: task.clone(),
        worker: account(&worker),
    };
    for attester in [&v1, &s1, &s2] {
        let receipt = send(&service, &client, attester, attest.clone()).await;
        assert_eq!(receipt.verdict, Verdict::Accepted, "counted, not a quorum");
    }
    assert!(service.with_community(|c| matches!(
        c.task(&task).map(|t| &t.state),
        Some(State::Submitted { .. })
    )));

    // An attester the other founder vouched for is independent of v1: the quorum stands.
    let receipt = send(&service, &client, &honest, attest).await;
    assert_eq!(receipt.verdict, Verdict::QuorumReached);
    service.shutdown().await;
}

/// A verifier vouches for as many keys as the cap allows in a period; the next is refused with
/// the reason and gives no trust. On the code before the defence every vouch was accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_vouches_for_at_most_the_cap_per_period() {
    let [v1, v2, employer] = std::array::from_fn(|_| Keys::generate());
    let (_relay, client, service) = start(&[account(&v1), account(&v2)], &account(&employer)).await;
    let cap = Rules::default().vouch_cap;
    let fresh: Vec<Keys> = (0..=cap).map(|_| Keys::generate()).collect();
    for subject in &fresh[..cap] {
        assert_eq!(
            vouch(&service, &client, &v1, subject).await,
            Verdict::Accepted
        );
    }
    let over = &fresh[cap];
    let verdict = vouch(&service, &client, &v1, over).await;
    assert!(
        matches!(&verdict, Verdict::Rejected { reason } if reason.contains("vouched for")),
        "{verdict:?}"
    );
    assert_eq!(
        service.with_community(|c| c.scores(now()).get(&account(over))),
        0.0
    );
    // The other founder's vouches are its own.
    assert_eq!(vouch(&service, &client, &v2, over).await, Verdict::Accepted);
    service.shutdown().await;
}
