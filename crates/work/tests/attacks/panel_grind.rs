//! Attack 6 (issue 21): the challenger picks the dispute panel. The panel's seed hashed the
//! challenger's own signed dispute event, so the challenger signed it again and again (another
//! `created_at`, another id), computed each draw from public data, and published the one that
//! seated a majority of their friends.
//!
//! The defence ([`moip_work::dispute`]): the seed adds the Work service's drawing-key signature
//! over the task and the dispute, which no party can compute; only the first dispute of a task
//! is accepted, so the challenger gets one blind draw; anyone checks the draw afterwards from
//! the published key.
//!
//! The test grinds as the attacker would, over the real relay and Work service. Every key is
//! derived from a fixed label and every ground event has a fixed `created_at`, so the draw the
//! service makes is the same on every run.

use bitcoin::hashes::{sha256, Hash};
use moip_assets::ledger::{CollateralSource, Ledger, MemoryJournal, TokenInfo, TokenLedger};
use moip_work::community::{Community, PANEL_SIZE};
use moip_work::dispute::{draw_panel, drawing_key, drawing_public_key, panel_seed, verify_draw};
use moip_work::events::{encode, Message, TaskBody};
use moip_work::identity::VerifierRules;
use moip_work::receipt::Verdict;
use moip_work::service::{ServiceConfig, WorkService};
use moip_work::task::{Evidence, Rules};
use moip_work::trust::Params;
use moip_work::AccountId;
use nostr_sdk::Keys;

use crate::common::{account, now, publish, publisher, relay, send, COMMUNITY};

/// A key derived from `label`, the same on every run.
fn keys(label: &str) -> Keys {
    let secret = sha256::Hash::hash(format!("moip/panel-grind/{label}").as_bytes());
    Keys::parse(&secret.to_string()).expect("a key")
}

/// Ground dispute events are dated from here (in the past, as relays accept).
const GRIND_FROM: u64 = 1_700_000_000;
/// Most re-signed disputes the attacker tries.
const GRIND_TRIES: u64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenger_who_grinds_the_dispute_event_does_not_pick_the_panel() {
    let service_keys = keys("service");
    let founders = [keys("founder-1"), keys("founder-2")];
    let (employer, worker, attester) = (keys("employer"), keys("worker"), keys("attester"));
    let jurors: Vec<Keys> = (0..20).map(|i| keys(&format!("juror-{i}"))).collect();
    // The employer's friends, who will vote for a refund if seated.
    let friends: Vec<AccountId> = jurors[..3].iter().map(account).collect();
    let majority = PANEL_SIZE / 2 + 1;
    assert_eq!(friends.len(), majority);

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
                payment_hash: "34".repeat(32),
            },
        )
        .expect("deposit");
    ledger.mint(&account(&employer), 10_000).expect("mint");
    // Two founders vouch for twenty-two people: their confidence is spread thin, so the
    // thresholds are lowered to what that gives (the draw, not the threshold, is under test).
    let rules = Rules {
        min_trust: 0.05,
        claim_min_trust: 0.05,
        vouch_cap: 100,
        ..Rules::default()
    };
    let community = Community::new(
        COMMUNITY,
        ledger,
        &founders.iter().map(account).collect::<Vec<_>>(),
        rules.clone(),
        VerifierRules::default(),
        Params::default(),
    );
    let config = ServiceConfig::new(vec![relay.url().to_owned()], service_keys.clone());
    let service = WorkService::start(config, community)
        .await
        .expect("service");

    for subject in jurors.iter().chain([&worker, &attester]) {
        for founder in &founders {
            let vouch = Message::Vouch {
                subject: account(subject),
            };
            let receipt = send(&service, &client, founder, vouch).await;
            assert_eq!(receipt.verdict, Verdict::Accepted);
        }
    }
    let task = "rebuild-the-wall".to_string();
    let post = Message::Post {
        task: task.clone(),
        body: TaskBody {
            category: "masonry".into(),
            geohash: "u33dc0".into(),
            evidence_required: vec!["photo-after".into()],
            reward: 4_000,
            deadline: now() + 3_600,
        },
    };
    let submit = Message::Submit {
        task: task.clone(),
        evidence: Evidence {
            items: vec![("photo-after".into(), "ab".repeat(32))],
            time: now(),
            geohash: "u33dc0".into(),
        },
    };
    for (who, message) in [
        (&employer, post),
        (&worker, Message::Claim { task: task.clone() }),
        (&worker, submit),
    ] {
        assert_eq!(
            send(&service, &client, who, message).await.verdict,
            Verdict::Accepted
        );
    }
    let attest = Message::Attest {
        task: task.clone(),
        worker: account(&worker),
    };
    let mut verdict = Verdict::Accepted;
    for who in [&founders[0], &founders[1], &attester] {
        verdict = send(&service, &client, who, attest.clone()).await.verdict;
    }
    assert_eq!(verdict, Verdict::QuorumReached);

    // The grind: everything the old draw used is public — the scores, the parties, the
    // dispute event's id. The employer re-signs the dispute until the draw seats their friends.
    let at = now();
    let (candidates, parties) = service.with_community(|c| {
        let candidates: Vec<(AccountId, f64)> =
            c.scores(at).iter().map(|(a, s)| (*a, *s)).collect();
        (candidates, c.task(&task).expect("task").parties())
    });
    let seated = |panel: &[AccountId]| panel.iter().filter(|j| friends.contains(j)).count();
    let dispute = Message::Dispute { task: task.clone() };
    let (ground, predicted) = (0..GRIND_TRIES)
        .find_map(|i| {
            let event = encode(&employer, COMMUNITY, &dispute, GRIND_FROM + i).expect("sign");
            let seed = panel_seed(&task, &event.id.to_bytes());
            let panel = draw_panel(&seed, &candidates, &parties, PANEL_SIZE, rules.min_trust);
            (seated(&panel) >= majority).then_some((event, panel))
        })
        .expect("the grind finds a dispute event whose public draw seats the friends");

    let receipt = publish(&service, &client, &ground).await;
    assert_eq!(receipt.verdict, Verdict::Accepted);
    let (panel, draw, key) = service.with_community(|c| {
        (
            c.panel(&task).expect("a panel").to_vec(),
            c.draw(&task).expect("a draw"),
            c.drawing_key(),
        )
    });
    assert_eq!(panel.len(), PANEL_SIZE);
    assert_ne!(
        panel, predicted,
        "the public data does not predict the draw"
    );
    assert!(
        seated(&panel) < majority,
        "the friends hold no majority: {} of {PANEL_SIZE}",
        seated(&panel)
    );

    // Anyone checks the draw: the signature is the drawing key's for this task and dispute,
    // and the seed it makes gives this very panel.
    assert_eq!(draw.dispute, ground.id.to_bytes());
    let service_secret = service_keys.secret_key().secret_bytes();
    let expected_key = drawing_key(&service_secret).expect("drawing key");
    assert_eq!(key, drawing_public_key(&expected_key));
    let seed = verify_draw(&key, &task, &draw.dispute, &draw.signature).expect("verifies");
    assert_eq!(
        draw_panel(&seed, &candidates, &parties, PANEL_SIZE, rules.min_trust),
        panel
    );
    // A signature for another dispute, or a forged one, does not verify.
    assert!(verify_draw(&key, &task, &[0; 32], &draw.signature).is_none());
    let mut forged = draw.signature;
    forged[63] ^= 1;
    assert!(verify_draw(&key, &task, &draw.dispute, &forged).is_none());

    // One draw only: the next ground dispute is refused, the panel unchanged.
    let again = encode(&employer, COMMUNITY, &dispute, GRIND_FROM + GRIND_TRIES).expect("sign");
    let receipt = publish(&service, &client, &again).await;
    assert!(
        matches!(&receipt.verdict, Verdict::Rejected { reason } if reason.contains("disputed")),
        "{receipt:?}"
    );
    assert_eq!(
        service.with_community(|c| c.panel(&task).map(<[AccountId]>::to_vec)),
        Some(panel)
    );
    service.shutdown().await;
}
