//! The Work service over a real in-process Nostr relay: members publish signed events, the
//! service applies them and answers every one with a signed receipt on the relay — the reason
//! included when it refuses — pays at the end of the challenge window, publishes NIP-85 scores,
//! and, after its local database is deleted, rebuilds the same state from the relays' events over
//! the ledger, writing nothing twice; a relay that lost everything is refilled from the node's
//! log; with no log and no relay the service refuses to start rather than begin afresh. Then a sybil attack through the same path: a thousand fresh
//! keys following each other and attesting, with a few edges into the community, gain trust
//! below the stated bound and never form a quorum.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{account, now, publish, publisher, relay, send, sign, COMMUNITY, WAIT};
use moip_assets::ledger::{
    CollateralSource, Ledger, MemoryJournal, PostgresJournal, SqliteJournal, TaskId, TokenInfo,
    TokenLedger,
};
use moip_work::community::Community;
use moip_work::events::{encode, Message, TaskBody, KIND_SUBMIT};
use moip_work::identity::VerifierRules;
use moip_work::receipt::{decode_receipt, decode_score, Verdict, KIND_RECEIPT, KIND_SCORE};
use moip_work::service::{ServiceConfig, WorkService};
use moip_work::task::{Evidence, Rules, State};
use moip_work::trust::{sybil_bound, Params};
use moip_work::AccountId;
use nostr_sdk::{EventBuilder, Filter, Keys, Kind, Tag, TagKind};

fn token() -> TokenInfo {
    TokenInfo {
        id: COMMUNITY.into(),
        name: "Bakery hours".into(),
        symbol: "BKH".into(),
    }
}

fn rules() -> Rules {
    Rules {
        challenge_window: 2,
        ..Rules::default()
    }
}

fn community<L: TokenLedger>(ledger: L, founders: &[AccountId]) -> Community<L> {
    Community::new(
        COMMUNITY,
        ledger,
        founders,
        rules(),
        VerifierRules {
            cap_per_period: 50,
            ..VerifierRules::default()
        },
        Params::default(),
    )
}

fn config(url: &str, keys: &Keys) -> ServiceConfig {
    let mut config = ServiceConfig::new(vec![url.to_owned()], keys.clone());
    config.tick = Duration::from_millis(200);
    config.scores_every = Duration::from_millis(300);
    config
}

fn task_body(reward: u64) -> TaskBody {
    TaskBody {
        category: "painting".into(),
        geohash: "u33dc0".into(),
        evidence_required: vec!["photo-after".into()],
        reward,
        deadline: now() + 3_600,
    }
}

fn evidence() -> Evidence {
    Evidence {
        items: vec![("photo-after".into(), "cd".repeat(32))],
        time: now(),
        geohash: "u33dc0".into(),
    }
}

fn rejected(verdict: &Verdict, needle: &str) -> bool {
    matches!(verdict, Verdict::Rejected { reason } if reason.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_a_relay_get_receipts_and_the_state_rebuilds_from_the_relay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = relay().await;
    let client = publisher(relay.url()).await;
    let people: Vec<Keys> = (0..8).map(|_| Keys::generate()).collect();
    let [v1, v2, verifier, a1, a2, employer, worker, stranger] =
        <[Keys; 8]>::try_from(people).expect("eight");
    let founders = [account(&v1), account(&v2)];

    // The ledger (the money) lives in SQLite and outlives the Work state.
    let mut ledger = Ledger::create(
        SqliteJournal::open(&dir.path().join("ledger.sqlite")).expect("journal"),
        token(),
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
    ledger.mint(&account(&employer), 20_000).expect("mint");
    let ledger = Arc::new(Mutex::new(ledger));

    let service_keys = Keys::generate();
    let log = dir.path().join("work.sqlite");
    let mut cfg = config(relay.url(), &service_keys);
    cfg.log = Some(log.clone());
    let service = WorkService::start(cfg.clone(), community(Arc::clone(&ledger), &founders))
        .await
        .expect("service");

    // The founders certify a third verifier and two attesters (two certifications each).
    for subject in [&verifier, &a1, &a2] {
        for founder in [&v1, &v2] {
            let receipt = send(
                &service,
                &client,
                founder,
                Message::Certify {
                    subject: account(subject),
                },
            )
            .await;
            assert_eq!(receipt.verdict, Verdict::Accepted);
        }
    }
    // A founder vouches for the worker, whom they met: enough trust to claim.
    let vouch = Message::Vouch {
        subject: account(&worker),
    };
    assert_eq!(
        send(&service, &client, &v1, vouch).await.verdict,
        Verdict::Accepted
    );

    // Flow 2's end: a task posted, its reward escrowed at once.
    let task = "paint-the-hall".to_string();
    let post = Message::Post {
        task: task.clone(),
        body: task_body(5_000),
    };
    assert_eq!(
        send(&service, &client, &employer, post).await.verdict,
        Verdict::Accepted
    );
    assert_eq!(ledger.balance(&account(&employer)), 15_000);
    assert_eq!(
        ledger.escrow(&TaskId(task.clone())).map(|e| e.amount),
        Some(5_000)
    );

    // Bad input, each refused with its reason on the relay, nothing moved in the ledger.
    let entries = ledger.lock().expect("ledger").len();
    let unknown = sign(
        &worker,
        &Message::Claim {
            task: "no-such-task".into(),
        },
    );
    let receipt = publish(&service, &client, &unknown).await;
    assert!(rejected(&receipt.verdict, "unknown task"), "{receipt:?}");
    // The sender reads the reason from the relay: the receipt that names its event.
    let from_relay = client
        .fetch_events(
            Filter::new()
                .kind(Kind::from(KIND_RECEIPT))
                .author(service.public_key())
                .event(unknown.id),
            WAIT,
        )
        .await
        .expect("fetch");
    let relayed = from_relay.first().expect("the receipt is on the relay");
    let relayed = decode_receipt(relayed, &service.public_key(), COMMUNITY).expect("decode");
    assert_eq!(relayed, receipt);
    assert_eq!(relayed.author, Some(account(&worker)));
    // Too big a reward: the ledger refuses to lock it.
    let too_big = Message::Post {
        task: "too-big".into(),
        body: task_body(50_000),
    };
    let receipt = send(&service, &client, &employer, too_big).await;
    assert!(rejected(&receipt.verdict, "ledger"), "{receipt:?}");
    // A Work event whose content is not what its kind carries.
    let garbage = EventBuilder::new(Kind::from(KIND_SUBMIT), "{not json")
        .tags([
            Tag::custom(TagKind::custom("task"), [task.as_str()]),
            Tag::custom(TagKind::h(), [COMMUNITY]),
        ])
        .sign_with_keys(&worker)
        .expect("sign");
    let receipt = publish(&service, &client, &garbage).await;
    assert!(rejected(&receipt.verdict, "bad content"), "{receipt:?}");
    // A wrongly signed event never gets past the relay.
    let claim = sign(&worker, &Message::Claim { task: task.clone() });
    let mut json: serde_json::Value =
        serde_json::from_str(&nostr_sdk::JsonUtil::as_json(&claim)).expect("json");
    json["pubkey"] = serde_json::json!(stranger.public_key().to_hex());
    let forged: nostr_sdk::Event = nostr_sdk::JsonUtil::from_json(json.to_string()).expect("parse");
    let output = client.send_event(&forged).await;
    assert!(
        output.map(|o| o.success.is_empty()).unwrap_or(true),
        "the relay refuses a forged signature"
    );
    assert_eq!(ledger.lock().expect("ledger").len(), entries);

    // Flow 1: claim, proof, attestations — refused for a party and a low-trust key.
    assert_eq!(
        send(
            &service,
            &client,
            &worker,
            Message::Claim { task: task.clone() }
        )
        .await
        .verdict,
        Verdict::Accepted
    );
    let submit = Message::Submit {
        task: task.clone(),
        evidence: evidence(),
    };
    assert_eq!(
        send(&service, &client, &worker, submit).await.verdict,
        Verdict::Accepted
    );
    let attest = Message::Attest {
        task: task.clone(),
        worker: account(&worker),
    };
    let receipt = send(&service, &client, &employer, attest.clone()).await;
    assert!(rejected(&receipt.verdict, "party"), "{receipt:?}");
    let receipt = send(&service, &client, &stranger, attest.clone()).await;
    assert!(rejected(&receipt.verdict, "trust"), "{receipt:?}");
    let first = sign(&a1, &attest);
    let receipt = publish(&service, &client, &first).await;
    assert_eq!(receipt.verdict, Verdict::Accepted);
    // The same event again is a replay: no second decision, the first receipt stands.
    client.send_event(&first).await.expect("publish");
    // A second attestation by a1 (a new event) is a double.
    let again = encode(&a1, COMMUNITY, &attest, now() + 1).expect("sign");
    let double = publish(&service, &client, &again).await;
    assert!(rejected(&double.verdict, "already attested"), "{double:?}");
    assert_eq!(
        double.seq,
        receipt.seq + 1,
        "the replay took no place in the log"
    );
    assert_eq!(
        send(&service, &client, &a2, attest.clone()).await.verdict,
        Verdict::Accepted
    );
    let mut receipts = service.receipts();
    assert_eq!(
        send(&service, &client, &verifier, attest.clone())
            .await
            .verdict,
        Verdict::QuorumReached
    );
    // The challenge window passes; the service pays and says so.
    let paid = tokio::time::timeout(WAIT, async {
        loop {
            let r = receipts.recv().await.expect("receipts");
            if let Verdict::Paid { tasks } = r.verdict {
                return tasks;
            }
        }
    })
    .await
    .expect("paid within the wait");
    assert_eq!(paid, vec![task.clone()]);
    assert_eq!(ledger.balance(&account(&worker)), 5_000);
    assert!(service
        .with_community(|c| matches!(c.task(&task).map(|t| &t.state), Some(State::Paid { .. }))));

    // Scores on the relay as NIP-85 assertions, signed by the service.
    let a1_rank = tokio::time::timeout(WAIT, async {
        loop {
            let events = client
                .fetch_events(
                    Filter::new()
                        .kind(Kind::from(KIND_SCORE))
                        .author(service.public_key()),
                    WAIT,
                )
                .await
                .expect("fetch");
            let ranks: Vec<(AccountId, u8)> = events
                .iter()
                .map(|e| decode_score(e).expect("a valid assertion"))
                .collect();
            if let Some((_, r)) = ranks.iter().find(|(who, _)| *who == account(&a1)) {
                return *r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("a1's score is published");
    assert!(f64::from(a1_rank) >= rules().min_trust * 100.0);

    // The node loses its Work database. A new service over the same ledger rebuilds from the
    // relay: the same tasks, scores and log, and not one ledger entry written twice.
    let at = now();
    let tasks = service.with_community(|c| c.tasks().clone());
    let scores = service.with_community(|c| c.scores(at));
    let seq = service.receipt(&unknown.id).expect("receipt").seq;
    let (entries, root) = {
        let l = ledger.lock().expect("ledger");
        (l.len(), l.supply_root())
    };
    service.shutdown().await;
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", log.display());
        let _ = std::fs::remove_file(path);
    }
    let rebuilt = WorkService::start(cfg.clone(), community(Arc::clone(&ledger), &founders))
        .await
        .expect("rebuilt from the relay");
    assert_eq!(rebuilt.with_community(|c| c.tasks().clone()), tasks);
    assert_eq!(rebuilt.with_community(|c| c.scores(at)), scores);
    assert_eq!(rebuilt.receipt(&unknown.id).map(|r| r.seq), Some(seq));
    {
        let l = ledger.lock().expect("ledger");
        assert_eq!(l.len(), entries, "nothing written twice");
        assert_eq!(l.supply_root(), root);
    }
    // It goes on serving: a second task is posted and escrowed.
    let second = Message::Post {
        task: "fix-the-roof".into(),
        body: task_body(1_000),
    };
    assert_eq!(
        send(&rebuilt, &client, &employer, second).await.verdict,
        Verdict::Accepted
    );
    assert_eq!(ledger.balance(&account(&employer)), 14_000);
    rebuilt.shutdown().await;

    // A restart with the local log replays it (the relay is not asked) to the same state.
    let restarted = WorkService::start(cfg.clone(), community(Arc::clone(&ledger), &founders))
        .await
        .expect("restarted from the local log");
    assert!(restarted.with_community(|c| c.task("fix-the-roof").is_some()));
    assert_eq!(ledger.balance(&account(&employer)), 14_000);
    let tasks = restarted.with_community(|c| c.tasks().clone());
    restarted.shutdown().await;

    // A relay that lost everything (the in-process relay after a restart) gets the log back
    // from the node, and can then serve a rebuild on its own.
    let empty = common::relay().await;
    let mut on_empty = cfg.clone();
    on_empty.relays = vec![empty.url().to_owned()];
    let republishing =
        WorkService::start(on_empty.clone(), community(Arc::clone(&ledger), &founders))
            .await
            .expect("restarted on an empty relay");
    assert_eq!(republishing.with_community(|c| c.tasks().clone()), tasks);
    let last = republishing.last_seq();
    assert!(last > seq);
    let reader = publisher(empty.url()).await;
    tokio::time::timeout(WAIT, async {
        loop {
            let receipts = reader
                .fetch_events(
                    Filter::new()
                        .kind(Kind::from(KIND_RECEIPT))
                        .author(republishing.public_key()),
                    WAIT,
                )
                .await
                .expect("fetch");
            if receipts.len() as u64 >= last {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the receipts are back on the relay");
    republishing.shutdown().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", log.display()));
    }
    let rebuilt = WorkService::start(on_empty, community(Arc::clone(&ledger), &founders))
        .await
        .expect("rebuilt from the refilled relay");
    assert_eq!(rebuilt.with_community(|c| c.tasks().clone()), tasks);
    assert_eq!(rebuilt.last_seq(), last);
    rebuilt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sybils_gain_little_trust_and_never_form_a_quorum() {
    let relay = relay().await;
    let client = publisher(relay.url()).await;
    let founders_keys = [Keys::generate(), Keys::generate()];
    let founders: Vec<AccountId> = founders_keys.iter().map(account).collect();
    let members: Vec<Keys> = (0..40).map(|_| Keys::generate()).collect();
    let employer = &members[0];

    let mut ledger = Ledger::create(MemoryJournal::default(), token()).expect("ledger");
    ledger
        .deposit(
            10_000,
            CollateralSource::Lightning {
                payment_hash: "cd".repeat(32),
            },
        )
        .expect("deposit");
    ledger.mint(&account(employer), 10_000).expect("mint");
    // The sybils have no standing, so by default their follow lists would be dropped unread;
    // this test is of GrapeRank's bound with the region in the graph, so the service keeps them.
    let mut config = config(relay.url(), &Keys::generate());
    config.limits.keep_strangers = true;
    let service = WorkService::start(config, community(ledger, &founders))
        .await
        .expect("service");

    // The community: the founders certify ten members and follow all forty.
    for member in &members[..10] {
        for founder in &founders_keys {
            let certify = Message::Certify {
                subject: account(member),
            };
            assert_eq!(
                send(&service, &client, founder, certify).await.verdict,
                Verdict::Accepted
            );
        }
    }
    for founder in &founders_keys {
        let follows = Message::Follows {
            subjects: members.iter().map(account).collect(),
        };
        send(&service, &client, founder, follows).await;
    }

    // A thousand fresh keys: each follows fifty others and a few community members; three
    // members follow a sybil each (the edges into the region).
    let sybils: Vec<Keys> = (0..1_000).map(|_| Keys::generate()).collect();
    let ids: Vec<AccountId> = sybils.iter().map(account).collect();
    let mut last = None;
    for (i, keys) in sybils.iter().enumerate() {
        let mut subjects: Vec<AccountId> = (1..=50).map(|k| ids[(i + k * 7) % ids.len()]).collect();
        subjects.extend(members[..3].iter().map(account));
        let event = sign(keys, &Message::Follows { subjects });
        client.send_event(&event).await.expect("publish");
        last = Some(event.id);
    }
    for (member, sybil) in members[10..13].iter().zip(&ids) {
        let follows = Message::Follows {
            subjects: vec![*sybil],
        };
        send(&service, &client, member, follows).await;
    }
    let last = last.expect("a last follow list");
    service
        .wait_receipt(&last, Duration::from_secs(120))
        .await
        .expect("every follow list applied");
    assert!(
        service.with_community(|c| c.graph().len()) >= 50_000,
        "the sybils' follows are in the graph"
    );

    // A real task: a sybil's claim is refused for low trust; a certified member claims it and
    // submits; sybils attest — each refused for low trust.
    let task = "sweep-the-yard".to_string();
    let post = Message::Post {
        task: task.clone(),
        body: task_body(2_000),
    };
    assert_eq!(
        send(&service, &client, employer, post).await.verdict,
        Verdict::Accepted
    );
    let (sybil_worker, attesters) = (&sybils[0], &sybils[1..21]);
    let receipt = send(
        &service,
        &client,
        sybil_worker,
        Message::Claim { task: task.clone() },
    )
    .await;
    assert!(rejected(&receipt.verdict, "trust"), "{receipt:?}");
    let worker = &members[1];
    let receipt = send(
        &service,
        &client,
        worker,
        Message::Claim { task: task.clone() },
    )
    .await;
    assert_eq!(receipt.verdict, Verdict::Accepted);
    let submit = Message::Submit {
        task: task.clone(),
        evidence: evidence(),
    };
    let receipt = send(&service, &client, worker, submit).await;
    assert_eq!(receipt.verdict, Verdict::Accepted);
    for attester in attesters {
        let attest = Message::Attest {
            task: task.clone(),
            worker: account(worker),
        };
        let receipt = send(&service, &client, attester, attest).await;
        assert!(rejected(&receipt.verdict, "trust"), "{receipt:?}");
    }
    assert!(service.with_community(|c| matches!(
        c.task(&task).map(|t| &t.state),
        Some(State::Submitted { .. })
    )));

    // The region's total trust is within the bound its inflow allows, and no sybil comes near
    // the attester threshold.
    let at = now();
    let (total, best, bound, members_above) = service.with_community(|c| {
        let scores = c.scores(at);
        let region: HashSet<AccountId> = ids.iter().copied().collect();
        let observers: Vec<AccountId> = c.registry().verifiers(at).into_iter().collect();
        let inflow = c.graph().inflow(c.params(), &scores, &region, &observers);
        let total: f64 = ids.iter().map(|s| scores.get(s)).sum();
        let best = ids.iter().map(|s| scores.get(s)).fold(0.0, f64::max);
        let above = members[..10]
            .iter()
            .filter(|m| scores.get(&account(m)) >= c.rules().min_trust)
            .count();
        (
            total,
            best,
            sybil_bound(c.params(), inflow).expect("a bound"),
            above,
        )
    });
    assert!(
        total <= bound,
        "sybil total {total} above the bound {bound}"
    );
    assert!(best < rules().min_trust, "best sybil {best}");
    assert_eq!(
        members_above, 10,
        "the certified members clear the threshold"
    );
    println!("sybil region: total {total:.4}, bound {bound:.4}, best {best:.4}");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_log_with_no_relay_reachable_is_an_error_not_a_fresh_start() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let ledger = Ledger::create(MemoryJournal::default(), token()).expect("ledger");
    let config = config(&format!("ws://127.0.0.1:{port}"), &Keys::generate());
    let started = WorkService::start(config, community(ledger, &[])).await;
    match started {
        Err(moip_work::service::ServiceError::Rebuild(reason)) => {
            assert!(reason.contains("no relay"), "{reason}")
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("started without its log or a relay"),
    }
}

/// With a PostgreSQL database, the log lives there beside the ledger's journal: a service
/// restarted on an empty relay reads its whole state back from the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_in_postgresql_outlives_the_relay() {
    let pg = moip_testkit::postgres::TempPostgres::start();
    let url = pg.url();
    let founders = [Keys::generate(), Keys::generate()];
    let founder_ids: Vec<AccountId> = founders.iter().map(account).collect();
    let subject = Keys::generate();
    let service_keys = Keys::generate();
    let open_ledger = || {
        let journal = PostgresJournal::connect(&url, COMMUNITY).expect("journal");
        let ledger = Ledger::open(journal).expect("ledger");
        if ledger.token().is_some() {
            ledger
        } else {
            Ledger::create(ledger.into_store(), token()).expect("create")
        }
    };

    let first = relay().await;
    let client = publisher(first.url()).await;
    let mut cfg = config(first.url(), &service_keys);
    cfg.database = Some(url.clone());
    let service = WorkService::start(cfg, community(open_ledger(), &founder_ids))
        .await
        .expect("service");
    for founder in &founders {
        let certify = Message::Certify {
            subject: account(&subject),
        };
        let receipt = send(&service, &client, founder, certify).await;
        assert_eq!(receipt.verdict, Verdict::Accepted);
    }
    let seq = service.last_seq();
    assert_eq!(seq, 2);
    service.shutdown().await;
    first.shutdown();

    // A new, empty relay: only the database knows what happened.
    let second = relay().await;
    let mut cfg = config(second.url(), &service_keys);
    cfg.database = Some(url.clone());
    let service = WorkService::start(cfg, community(open_ledger(), &founder_ids))
        .await
        .expect("restarted");
    assert_eq!(service.last_seq(), seq);
    assert!(service.with_community(|c| c.registry().verifiers(now()).contains(&account(&subject))));
    service.shutdown().await;
}

/// A log decided by the rules before rules versions (version 1: any key could claim) still
/// starts a service that decides by today's: each logged event is judged again by the rules
/// its receipt says it was decided by, and new events by today's rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_written_under_the_old_rules_still_starts_the_service() {
    use moip_work::log::WorkLog;
    use moip_work::task::RULES_VERSION;

    let dir = tempfile::tempdir().expect("tempdir");
    let relay = relay().await;
    let client = publisher(relay.url()).await;
    let (employer, stranger, newcomer) = (Keys::generate(), Keys::generate(), Keys::generate());
    let mut ledger = Ledger::create(MemoryJournal::default(), token()).expect("ledger");
    ledger
        .deposit(
            10_000,
            CollateralSource::Lightning {
                payment_hash: "cd".repeat(32),
            },
        )
        .expect("deposit");
    ledger.mint(&account(&employer), 10_000).expect("mint");
    let ledger = Arc::new(Mutex::new(ledger));
    let community = |rules: Rules| {
        Community::new(
            COMMUNITY,
            Arc::clone(&ledger),
            &[],
            rules,
            VerifierRules::default(),
            Params::default(),
        )
    };
    let log = dir.path().join("work.sqlite");
    let mut cfg = config(relay.url(), &Keys::generate());
    cfg.log = Some(log.clone());

    // The old log: a service deciding by version 1 takes a claim from a key with no trust.
    let old = WorkService::start(cfg.clone(), community(rules().as_of(1)))
        .await
        .expect("service");
    for task in ["old", "new"] {
        // Due in 30 days: longer than today's claim window.
        let post = Message::Post {
            task: task.into(),
            body: TaskBody {
                deadline: now() + 30 * 86_400,
                ..task_body(1_000)
            },
        };
        let receipt = send(&old, &client, &employer, post).await;
        assert_eq!(receipt.verdict, Verdict::Accepted);
    }
    let claim = Message::Claim { task: "old".into() };
    let receipt = send(&old, &client, &stranger, claim).await;
    assert_eq!(
        receipt.verdict,
        Verdict::Accepted,
        "the old rules let it claim"
    );
    old.shutdown().await;
    drop(old);
    // Written as before versions were recorded: no version in the log's receipts.
    let entries = WorkLog::open(&log)
        .expect("log")
        .entries()
        .expect("entries");
    assert_eq!(entries.len(), 3);
    for (receipt, _) in &entries {
        assert_eq!(receipt.rules, 1);
        let json = serde_json::to_string(receipt).expect("json");
        assert!(!json.contains("rules"), "{json}");
    }

    // Today's rules: the service starts from that log, the old claim standing — and lapsing
    // within today's claim window from the upgrade, where version 1 set no deadline.
    let started = now();
    let service = WorkService::start(cfg.clone(), community(rules()))
        .await
        .expect("a log of the old rules replays");
    let claimed = |service: &WorkService<_>| {
        service.with_community(|c| match &c.task("old").expect("the task").state {
            State::Claimed { worker, until } => Some((*worker, *until)),
            _ => None,
        })
    };
    let (worker, until) = claimed(&service).expect("still claimed");
    assert_eq!(worker, account(&stranger));
    assert!(
        until <= now() + rules().claim_window && until >= started + rules().claim_window,
        "the old claim lapses {} s from now",
        until.saturating_sub(now())
    );
    // The boundary is in the log: a receipt adopting today's rules, once.
    let entries = WorkLog::open(&log)
        .expect("log")
        .entries()
        .expect("entries");
    let (boundary, _) = entries.last().expect("entries");
    assert_eq!(
        (boundary.seq, &boundary.verdict, boundary.rules),
        (4, &Verdict::RulesAdopted, RULES_VERSION)
    );
    // A new claim from a key with no trust is judged by today's rules.
    let claim = Message::Claim { task: "new".into() };
    let receipt = send(&service, &client, &newcomer, claim).await;
    assert!(rejected(&receipt.verdict, "needed to claim"), "{receipt:?}");
    assert_eq!(receipt.rules, RULES_VERSION);
    service.shutdown().await;
    drop(service);

    // Started again, it replays the boundary where it was, and records no second one.
    let service = WorkService::start(cfg, community(rules()))
        .await
        .expect("the log replays again");
    assert_eq!(claimed(&service), Some((account(&stranger), until)));
    let entries = WorkLog::open(&log)
        .expect("log")
        .entries()
        .expect("entries");
    assert_eq!(entries.len(), 5, "no second boundary");
    service.shutdown().await;
}
