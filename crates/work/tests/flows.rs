//! Both of the Work protocol's flows end to end, through every layer: real ldk-nodes on the
//! embedded regtest chain, the token ledger in SQLite, the Work service on a real in-process
//! Nostr relay, and the redemption pool paying over Lightning.
//!
//! Flow 2: the employer deposits bitcoin over Lightning; once settled it is collateral, tokens
//! are minted 1:1, and the employer posts a task whose reward is escrowed.
//! Flow 1: the worker claims and proves the work, three attesters (one a physical verifier)
//! attest, the challenge window passes and the reward is released; the worker redeems the tokens
//! 1:1 (less the pool's fee) for bitcoin over Lightning, with a cap scaled by their trust.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{account, now, publisher, relay, send, COMMUNITY, WAIT};
use moip_assets::collateral::credit_lightning_deposit;
use moip_assets::ledger::{Ledger, SqliteJournal, TaskId, TokenInfo, TokenLedger};
use moip_assets::pool::{PoolConfig, RedemptionPool, Status};
use moip_lightning::testing::{fund, open_usable, start_node};
use moip_lightning::PaymentRail;
use moip_testenv::Regtest;
use moip_testkit::wait_until;
use moip_work::community::Community;
use moip_work::events::{Message, TaskBody};
use moip_work::identity::VerifierRules;
use moip_work::receipt::Verdict;
use moip_work::service::{ServiceConfig, WorkService};
use moip_work::task::{Evidence, Rules, State};
use moip_work::trust::Params;
use nostr_sdk::Keys;

const LN_WAIT: Duration = Duration::from_secs(60);

#[test]
fn flow_two_then_flow_one_with_lightning_a_relay_and_the_ledger() {
    let env = Regtest::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let community_node = start_node(&env, dir.path(), "community");
    let employer_node = start_node(&env, dir.path(), "employer");
    let worker_node = start_node(&env, dir.path(), "worker");
    fund(&env, &community_node, &[&employer_node, &worker_node]);
    // The employer can pay the community (pushed balance); the community can pay the worker.
    open_usable(
        &env,
        &community_node,
        &employer_node,
        1_000_000,
        Some(400_000_000),
    );
    open_usable(&env, &community_node, &worker_node, 1_000_000, None);
    let rail: Arc<dyn PaymentRail> = Arc::new(community_node.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let people: Vec<Keys> = (0..7).map(|_| Keys::generate()).collect();
    let [v1, v2, verifier, a1, a2, employer, worker] =
        <[Keys; 7]>::try_from(people).expect("seven");
    let ledger = Arc::new(Mutex::new(
        Ledger::create(
            SqliteJournal::open(&dir.path().join("ledger.sqlite")).expect("journal"),
            TokenInfo {
                id: COMMUNITY.into(),
                name: "Bakery hours".into(),
                symbol: "BKH".into(),
            },
        )
        .expect("ledger"),
    ));

    // Flow 2: 90 000 sat over Lightning to the community's node → collateral → tokens. (ldk-node
    // lets a tenth of a channel be in flight: 100 000 sat on these.)
    let deposit = community_node
        .create_invoice(Some(90_000_000), "deposit from the employer", 3_600)
        .expect("invoice");
    employer_node
        .pay(&deposit.bolt11, None, Default::default(), LN_WAIT)
        .expect("the employer pays");
    wait_until(LN_WAIT, "the deposit credited", || {
        rt.block_on(credit_lightning_deposit(
            &*rail,
            &ledger,
            deposit.payment_hash,
        ))
        .expect("credit")
    });
    ledger
        .lock()
        .expect("ledger")
        .mint(&account(&employer), 90_000)
        .expect("mint against the deposit");
    assert_eq!(ledger.collateral(), 90_000);
    assert_eq!(ledger.balance(&account(&employer)), 90_000);

    // The Work service on the in-process relay.
    let relay = rt.block_on(relay());
    let client = rt.block_on(publisher(relay.url()));
    let mut config = ServiceConfig::new(vec![relay.url().to_owned()], Keys::generate());
    config.log = Some(dir.path().join("work.sqlite"));
    config.tick = Duration::from_millis(200);
    let community = Community::new(
        COMMUNITY,
        Arc::clone(&ledger),
        &[account(&v1), account(&v2)],
        Rules {
            challenge_window: 2,
            ..Rules::default()
        },
        VerifierRules::default(),
        Params::default(),
    );
    let service = rt
        .block_on(WorkService::start(config, community))
        .expect("service");
    let say = |keys: &Keys, message: Message| rt.block_on(send(&service, &client, keys, message));
    for subject in [&verifier, &a1, &a2] {
        for founder in [&v1, &v2] {
            let certify = Message::Certify {
                subject: account(subject),
            };
            assert_eq!(say(founder, certify).verdict, Verdict::Accepted);
        }
    }
    // A founder vouches for the worker, whom they met: enough trust to claim.
    let vouch = Message::Vouch {
        subject: account(&worker),
    };
    assert_eq!(say(&v1, vouch).verdict, Verdict::Accepted);
    let task = "bake-for-the-fair".to_string();
    let post = Message::Post {
        task: task.clone(),
        body: TaskBody {
            category: "baking".into(),
            geohash: "u33dc0".into(),
            evidence_required: vec!["photo".into()],
            reward: 50_000,
            deadline: now() + 3_600,
        },
    };
    assert_eq!(say(&employer, post).verdict, Verdict::Accepted);
    assert_eq!(
        ledger.escrow(&TaskId(task.clone())).map(|e| e.amount),
        Some(50_000)
    );
    assert_eq!(ledger.balance(&account(&employer)), 40_000);

    // Flow 1: the work, its proof and three attestations.
    assert_eq!(
        say(&worker, Message::Claim { task: task.clone() }).verdict,
        Verdict::Accepted
    );
    let proof = Message::Submit {
        task: task.clone(),
        evidence: Evidence {
            items: vec![("photo".into(), "ef".repeat(32))],
            time: now(),
            geohash: "u33dc0".into(),
        },
    };
    assert_eq!(say(&worker, proof).verdict, Verdict::Accepted);
    let attest = Message::Attest {
        task: task.clone(),
        worker: account(&worker),
    };
    assert_eq!(say(&a1, attest.clone()).verdict, Verdict::Accepted);
    assert_eq!(say(&a2, attest.clone()).verdict, Verdict::Accepted);
    assert_eq!(say(&verifier, attest).verdict, Verdict::QuorumReached);
    wait_until(WAIT, "the reward released", || {
        (ledger.balance(&account(&worker)) == 50_000).then_some(())
    });
    assert!(service
        .with_community(|c| matches!(c.task(&task).map(|t| &t.state), Some(State::Paid { .. }))));
    assert_eq!(ledger.escrow(&TaskId(task.clone())), None);

    // The worker redeems the reward over Lightning, the cap scaled by their trust.
    let trust = service.with_community(|c| c.scores(now()).get(&account(&worker)));
    assert!(trust > 0.0, "the attested worker has gained trust");
    let pool = RedemptionPool::new(
        Arc::clone(&ledger),
        Arc::clone(&rail),
        PoolConfig {
            fee_ppm: 5_000, // 0.5 %
            account_cap: 1_000_000,
            ..PoolConfig::default()
        },
    )
    .expect("pool");
    let fee = pool.fee(50_000);
    let invoice = worker_node
        .create_invoice(Some((50_000 - fee) * 1_000), "redeem my tokens", 3_600)
        .expect("invoice");
    let before = worker_node.balance().lightning_sats;
    let ticket = rt
        .block_on(pool.redeem(&account(&worker), 50_000, &invoice.bolt11, trust))
        .expect("redeem");
    // The request only queues it; the pool pays in the background (here, now).
    let paid = rt
        .block_on(pool.process())
        .into_iter()
        .find(|(id, _)| *id == ticket.id)
        .map(|(_, status)| status);
    assert_eq!(paid, Some(Status::Paid));
    assert_eq!(ticket.sats_out, 50_000 - fee);
    worker_node
        .wait_for(LN_WAIT, "the payout", |n| {
            (n.balance().lightning_sats >= before + 50_000 - fee).then_some(())
        })
        .expect("the worker is paid in bitcoin");
    assert_eq!(ledger.balance(&account(&worker)), 0);
    assert_eq!(ledger.supply(), 40_000);
    assert_eq!(ledger.collateral(), 90_000 - (50_000 - fee));
    assert!(ledger.collateral() >= ledger.supply());
    rt.block_on(service.shutdown());
}
