//! Tasks carried through the whole of Flow 1 per minute on the embedded stack (issue 8): for
//! each task the employer posts it (reward escrowed), the worker claims it and submits proof,
//! three attesters attest — every message a signed event through the in-process Nostr relay and
//! the Work service, answered by its receipt — the reward is released when the (zero-length)
//! challenge window ends, and the worker redeems it over a real Lightning payment from the
//! community's ldk-node. Tasks run one after another; the time of each stage is reported.
//!
//! Run: `cargo bench -p moip-work --bench flow`; `FLOW_TASKS` sets the number of tasks
//! (default 30).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moip_assets::collateral::credit_lightning_deposit;
use moip_assets::ledger::{AccountId, Ledger, SqliteJournal, TokenInfo, TokenLedger};
use moip_assets::pool::{PoolConfig, RedemptionPool, Status};
use moip_lightning::testing::{fund, open_usable, start_node};
use moip_lightning::PaymentRail;
use moip_testenv::Regtest;
use moip_work::community::Community;
use moip_work::events::{encode, Message, TaskBody};
use moip_work::identity::VerifierRules;
use moip_work::receipt::{Receipt, Verdict};
use moip_work::relay::Relay;
use moip_work::service::{ServiceConfig, WorkService};
use moip_work::task::{Evidence, Rules};
use moip_work::trust::Params;
use nostr_sdk::{Client, Keys};

const COMMUNITY: &str = "bench";
const WAIT: Duration = Duration::from_secs(60);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn account(keys: &Keys) -> AccountId {
    AccountId::from_bytes(keys.public_key().to_bytes())
}

async fn say(
    service: &WorkService<Arc<Mutex<Ledger<SqliteJournal>>>>,
    client: &Client,
    keys: &Keys,
    message: Message,
) -> Receipt {
    let event = encode(keys, COMMUNITY, &message, now()).expect("sign");
    client.send_event(&event).await.expect("publish");
    service
        .wait_receipt(&event.id, WAIT)
        .await
        .expect("a receipt")
}

fn main() {
    let tasks: usize = std::env::var("FLOW_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let env = Regtest::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let community_node = start_node(&env, dir.path(), "community");
    let employer_node = start_node(&env, dir.path(), "employer");
    let worker_node = start_node(&env, dir.path(), "worker");
    fund(&env, &community_node, &[&employer_node, &worker_node]);
    open_usable(
        &env,
        &community_node,
        &employer_node,
        2_000_000,
        Some(1_000_000_000),
    );
    open_usable(&env, &community_node, &worker_node, 2_000_000, None);
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
                name: "Bench".into(),
                symbol: "BEN".into(),
            },
        )
        .expect("ledger"),
    ));
    // Flow 2 once: the employer's deposit over Lightning funds every task's reward.
    let reward = 2_000;
    let deposit_sats = reward * tasks as u64;
    let deposit = community_node
        .create_invoice(Some(deposit_sats * 1_000), "deposit", 3_600)
        .expect("invoice");
    employer_node
        .pay(&deposit.bolt11, None, Default::default(), WAIT)
        .expect("deposit paid");
    let start = Instant::now();
    while rt
        .block_on(credit_lightning_deposit(
            &*rail,
            &ledger,
            deposit.payment_hash,
        ))
        .expect("credit")
        .is_none()
    {
        assert!(start.elapsed() < WAIT, "the deposit settles");
        std::thread::sleep(Duration::from_millis(50));
    }
    ledger
        .lock()
        .expect("ledger")
        .mint(&account(&employer), deposit_sats)
        .expect("mint");

    let relay = rt
        .block_on(Relay::start(([127, 0, 0, 1], 0).into()))
        .expect("relay");
    let client = rt.block_on(async {
        let client = Client::default();
        client.add_relay(relay.url()).await.expect("relay");
        client.connect().await;
        client.wait_for_connection(Duration::from_secs(5)).await;
        client
    });
    let mut config = ServiceConfig::new(vec![relay.url().to_owned()], Keys::generate());
    config.log = Some(dir.path().join("work.sqlite"));
    config.tick = Duration::from_millis(20);
    let community = Community::new(
        COMMUNITY,
        Arc::clone(&ledger),
        &[account(&v1), account(&v2)],
        Rules {
            challenge_window: 0,
            ..Rules::default()
        },
        VerifierRules::default(),
        Params::default(),
    );
    let service = rt
        .block_on(WorkService::start(config, community))
        .expect("service");
    for subject in [&verifier, &a1, &a2] {
        for founder in [&v1, &v2] {
            let certify = Message::Certify {
                subject: account(subject),
            };
            rt.block_on(say(&service, &client, founder, certify));
        }
    }
    // A founder vouches for the worker: claiming needs trust.
    let vouch = Message::Vouch {
        subject: account(&worker),
    };
    rt.block_on(say(&service, &client, &v1, vouch));
    let pool = RedemptionPool::new(
        Arc::clone(&ledger),
        Arc::clone(&rail),
        PoolConfig {
            account_cap: 100_000_000,
            epoch_cap: 100_000_000,
            breaker_max: 100_000_000,
            ..PoolConfig::default()
        },
    )
    .expect("pool");

    let (mut events, mut release, mut redeem) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let total = Instant::now();
    for n in 0..tasks {
        let task = format!("task-{n}");
        let t0 = Instant::now();
        let post = Message::Post {
            task: task.clone(),
            body: TaskBody {
                category: "baking".into(),
                geohash: "u33dc0".into(),
                evidence_required: vec!["photo".into()],
                reward,
                deadline: now() + 3_600,
            },
        };
        let mut receipts = service.receipts();
        rt.block_on(async {
            assert_eq!(
                say(&service, &client, &employer, post).await.verdict,
                Verdict::Accepted
            );
            say(
                &service,
                &client,
                &worker,
                Message::Claim { task: task.clone() },
            )
            .await;
            let proof = Message::Submit {
                task: task.clone(),
                evidence: Evidence {
                    items: vec![("photo".into(), "ef".repeat(32))],
                    time: now(),
                    geohash: "u33dc0".into(),
                },
            };
            say(&service, &client, &worker, proof).await;
            let attest = Message::Attest {
                task: task.clone(),
                worker: account(&worker),
            };
            for attester in [&a1, &a2, &verifier] {
                let r = say(&service, &client, attester, attest.clone()).await;
                assert!(r.verdict.applies(), "{r:?}");
            }
        });
        let t1 = Instant::now();
        rt.block_on(async {
            tokio::time::timeout(WAIT, async {
                loop {
                    let r = receipts.recv().await.expect("receipts");
                    if matches!(&r.verdict, Verdict::Paid { tasks } if tasks.contains(&task)) {
                        return;
                    }
                }
            })
            .await
            .expect("released")
        });
        let t2 = Instant::now();
        let fee = pool.fee(reward);
        let invoice = worker_node
            .create_invoice(Some((reward - fee) * 1_000), "redeem", 3_600)
            .expect("invoice");
        let ticket = rt
            .block_on(pool.redeem(&account(&worker), reward, &invoice.bolt11, 1.0))
            .expect("redeem");
        assert_eq!(ticket.status, Status::Paid);
        let t3 = Instant::now();
        events += t1 - t0;
        release += t2 - t1;
        redeem += t3 - t2;
    }
    let elapsed = total.elapsed();
    let per = |d: Duration| d.as_secs_f64() * 1_000.0 / tasks as f64;
    println!(
        "flow 1: {tasks} tasks in {:.1} s = {:.1} tasks/min",
        elapsed.as_secs_f64(),
        tasks as f64 * 60.0 / elapsed.as_secs_f64()
    );
    println!(
        "per task: 7 events {:.1} ms, release after the window {:.1} ms, Lightning redemption {:.1} ms",
        per(events),
        per(release),
        per(redeem)
    );
    assert_eq!(ledger.balance(&account(&worker)), 0);
    assert!(ledger.collateral() >= ledger.supply());
    rt.block_on(service.shutdown());
}
