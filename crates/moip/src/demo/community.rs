//! The community and its people, and the Work protocol's two flows between them.
//!
//! Seven people, each a Nostr key made for the run: two founders (the first physical
//! verifiers), a third physical verifier they certify, two attesters, an employer and a
//! worker. The founders also certify the attesters, which gives them the trust attesting needs.
//! Every message is an event signed by its author and published to the Nostr relay by a plain
//! client, as anyone's would be; the Work service reads it from the relay and answers with a
//! receipt.
//!
//! Flow 2: the employer pays a Lightning invoice of the community's node; once settled the
//! payment is collateral and the ledger mints tokens 1:1; the employer posts a task whose
//! reward is escrowed. Flow 1: the worker claims the task and submits proof, the three attest
//! (the quorum needs a physical verifier), the challenge window passes and the reward is
//! released; the worker redeems it over Lightning through the redemption pool, with a cap
//! scaled by the trust the work earned.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use moip_assets::collateral::credit_lightning_deposit;
use moip_assets::ledger::{Ledger, SqliteJournal, TaskId, TokenInfo, TokenLedger};
use moip_assets::pool::{Limiter, PoolConfig, RedemptionPool, Status};
use moip_lightning::{PaymentRail, RouteLimits};
use moip_work::community::Community as WorkCommunity;
use moip_work::events::{encode, Message, TaskBody};
use moip_work::identity::VerifierRules;
use moip_work::receipt::{Receipt, Verdict};
use moip_work::relay::Relay;
use moip_work::service::{ServiceConfig, WorkService};
use moip_work::task::{Evidence, Rules, State};
use moip_work::trust::Params;
use moip_work::AccountId;
use nostr_sdk::{Client, Keys};
use tokio::runtime::Runtime;

use super::stack::Stack;
use super::{wait_until, Narrator, WAIT};

/// The community's id: its token's id and the `h` tag of its events.
pub(super) const COMMUNITY: &str = "bakery";
/// Its token's symbol.
pub(super) const SYMBOL: &str = "BKH";
/// What the employer deposits over Lightning (under a tenth of the channel, see [`Stack`]).
const DEPOSIT_SATS: u64 = 90_000;
/// The task's reward, in tokens.
const REWARD: u64 = 50_000;
const TASK: &str = "bake-for-the-fair";
/// Seconds disputes may be raised after the quorum: two days in `moip up`, two seconds here.
const CHALLENGE_WINDOW: u64 = 2;

type SharedLedger = Arc<Mutex<Ledger<SqliteJournal>>>;

/// What the flows did, for the summary.
pub(super) struct Figures {
    pub(super) deposited: u64,
    pub(super) minted: u64,
    pub(super) attestations: usize,
    pub(super) reward: u64,
    pub(super) fee: u64,
    pub(super) redeemed: u64,
}

/// Everyone taking part.
struct People {
    founders: [Keys; 2],
    verifier: Keys,
    attesters: [Keys; 2],
    employer: Keys,
    worker: Keys,
}

impl People {
    fn new() -> People {
        People {
            founders: [Keys::generate(), Keys::generate()],
            verifier: Keys::generate(),
            attesters: [Keys::generate(), Keys::generate()],
            employer: Keys::generate(),
            worker: Keys::generate(),
        }
    }
}

/// The community: its ledger, the relay, the Work service on it, and a client that publishes
/// the members' events.
pub(super) struct Community {
    ledger: SharedLedger,
    relay: Relay,
    client: Client,
    service: WorkService<SharedLedger>,
    people: People,
}

impl Community {
    /// Creates the ledger in `dir/ledger.sqlite`, starts the relay and the Work service (its
    /// log in `dir/work.sqlite`) with the two founders as the first physical verifiers.
    pub(super) fn start(rt: &Runtime, dir: &Path) -> anyhow::Result<Community> {
        let people = People::new();
        let token = TokenInfo {
            id: COMMUNITY.into(),
            name: "Bakery hours".into(),
            symbol: SYMBOL.into(),
        };
        let journal = SqliteJournal::open(&dir.join("ledger.sqlite"))?;
        let ledger = Arc::new(Mutex::new(Ledger::create(journal, token)?));
        let relay = rt
            .block_on(Relay::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))))
            .context("starting the Nostr relay")?;
        let mut config = ServiceConfig::new(vec![relay.url().to_owned()], Keys::generate());
        config.log = Some(dir.join("work.sqlite"));
        // Check the short challenge window often, so the reward follows it closely.
        config.tick = Duration::from_millis(200);
        let community = WorkCommunity::new(
            COMMUNITY,
            Arc::clone(&ledger),
            &people.founders.each_ref().map(account),
            Rules {
                challenge_window: CHALLENGE_WINDOW,
                ..Rules::default()
            },
            VerifierRules::default(),
            Params::default(),
        );
        let service = rt
            .block_on(WorkService::start(config, community))
            .context("starting the Work service")?;
        let client = rt.block_on(async {
            let client = Client::default();
            client.add_relay(relay.url()).await?;
            client.connect().await;
            client.wait_for_connection(Duration::from_secs(5)).await;
            anyhow::Ok(client)
        })?;
        Ok(Community {
            ledger,
            relay,
            client,
            service,
            people,
        })
    }

    pub(super) fn relay_url(&self) -> &str {
        self.relay.url()
    }

    pub(super) fn ledger(&self) -> &SharedLedger {
        &self.ledger
    }

    /// Flow 2, then Flow 1.
    pub(super) fn run_flows(
        &self,
        rt: &Runtime,
        stack: &Stack,
        say: &Narrator,
    ) -> anyhow::Result<Figures> {
        say.part("Flow 2: the employer deposits and posts a task");
        let (deposited, minted) = self.deposit(rt, stack, say)?;
        self.certify(rt, say)?;
        self.post(rt, say)?;
        say.part("Flow 1: the worker does the task, is attested, paid and redeems");
        let attestations = self.work(rt, say)?;
        let (fee, redeemed) = self.redeem(rt, stack, say)?;
        Ok(Figures {
            deposited,
            minted,
            attestations,
            reward: REWARD,
            fee,
            redeemed,
        })
    }

    /// Flow 2's money: a Lightning deposit becomes collateral, and tokens are minted against it.
    fn deposit(&self, rt: &Runtime, stack: &Stack, say: &Narrator) -> anyhow::Result<(u64, u64)> {
        let invoice = stack.community.create_invoice(
            Some(DEPOSIT_SATS * 1_000),
            "deposit from the employer",
            3_600,
        )?;
        stack
            .employer
            .pay(&invoice.bolt11, None, RouteLimits::default(), WAIT)
            .context("the employer's payment")?;
        say.step(format!(
            "employer pays the community node's invoice: {DEPOSIT_SATS} sat over Lightning"
        ));
        let rail: &dyn PaymentRail = &stack.community;
        wait_until(WAIT, "the deposit to settle", || {
            rt.block_on(credit_lightning_deposit(
                rail,
                &self.ledger,
                invoice.payment_hash,
            ))
            .transpose()
        })??;
        let deposited = self.ledger.collateral();
        say.step(format!(
            "the payment settled: the ledger credits {deposited} sat of collateral"
        ));
        let employer = account(&self.people.employer);
        lock(&self.ledger)?.mint(&employer, deposited)?;
        let minted = self.ledger.balance(&employer);
        say.step(format!(
            "{minted} {SYMBOL} minted 1:1 to the employer (supply {})",
            self.ledger.supply()
        ));
        Ok((deposited, minted))
    }

    /// The founders certify the third physical verifier and the two attesters; one vouches for
    /// the worker.
    fn certify(&self, rt: &Runtime, say: &Narrator) -> anyhow::Result<()> {
        let p = &self.people;
        for (subject, name) in [
            (&p.verifier, "the verifier"),
            (&p.attesters[0], "attester 1"),
            (&p.attesters[1], "attester 2"),
        ] {
            for founder in &p.founders {
                let certify = Message::Certify {
                    subject: account(subject),
                };
                self.send(rt, founder, certify)?;
            }
            say.step(format!("founders 1 and 2 certify {name}: accepted twice"));
        }
        // Claiming a task needs trust: founder 1 vouches for the worker, whom they met.
        let vouch = Message::Vouch {
            subject: account(&p.worker),
        };
        self.send(rt, &p.founders[0], vouch)?;
        say.step("founder 1 vouches for the worker: accepted");
        Ok(())
    }

    /// The employer posts the task; its reward leaves their balance for the escrow.
    fn post(&self, rt: &Runtime, say: &Narrator) -> anyhow::Result<()> {
        let post = Message::Post {
            task: TASK.into(),
            body: TaskBody {
                category: "baking".into(),
                geohash: "u33dc0".into(),
                evidence_required: vec!["photo".into()],
                reward: REWARD,
                deadline: now() + 3_600,
            },
        };
        self.send(rt, &self.people.employer, post)?;
        let escrow = self
            .ledger
            .escrow(&TaskId(TASK.into()))
            .map_or(0, |e| e.amount);
        say.step(format!(
            "employer posts {TASK:?} (reward {REWARD} {SYMBOL}): accepted, {escrow} {SYMBOL} \
             escrowed, {} left to the employer",
            self.ledger.balance(&account(&self.people.employer))
        ));
        Ok(())
    }

    /// Flow 1 up to the payment: claim, proof, three attestations, the challenge window.
    /// Returns the attestations accepted.
    fn work(&self, rt: &Runtime, say: &Narrator) -> anyhow::Result<usize> {
        let p = &self.people;
        let worker = account(&p.worker);
        self.send(rt, &p.worker, Message::Claim { task: TASK.into() })?;
        say.step("worker claims the task: accepted");
        let proof = Message::Submit {
            task: TASK.into(),
            evidence: Evidence {
                // The SHA-256 of the photo; the photo itself stays with the worker.
                items: vec![("photo".into(), "ef".repeat(32))],
                time: now(),
                geohash: "u33dc0".into(),
            },
        };
        self.send(rt, &p.worker, proof)?;
        say.step("worker submits proof (a photo's hash, at geohash u33dc0): accepted");
        let mut attestations = 0;
        for (attester, name) in [
            (&p.attesters[0], "attester 1"),
            (&p.attesters[1], "attester 2"),
            (&p.verifier, "the verifier (physical)"),
        ] {
            let attest = Message::Attest {
                task: TASK.into(),
                worker,
            };
            let verdict = match self.send(rt, attester, attest)?.verdict {
                Verdict::QuorumReached => "quorum reached",
                _ => "accepted",
            };
            attestations += 1;
            say.step(format!("{name} attests the work: {verdict}"));
        }
        say.step(format!(
            "challenge window: {CHALLENGE_WINDOW} s with no dispute (two days in `moip up`)"
        ));
        wait_until(WAIT, "the reward to be released", || {
            let paid = self.service.with_community(|c| {
                matches!(c.task(TASK).map(|t| &t.state), Some(State::Paid { .. }))
            });
            paid.then_some(())
        })?;
        say.step(format!(
            "the service releases the escrow: the worker holds {} {SYMBOL}",
            self.ledger.balance(&worker)
        ));
        Ok(attestations)
    }

    /// The worker redeems the whole reward over Lightning. Returns the fee and the sats paid.
    fn redeem(&self, rt: &Runtime, stack: &Stack, say: &Narrator) -> anyhow::Result<(u64, u64)> {
        let worker = account(&self.people.worker);
        let amount = self.ledger.balance(&worker);
        let trust = self
            .service
            .with_community(|c| c.scores(now()).get(&worker));
        let config = PoolConfig {
            fee_ppm: 5_000, // 0.5 %
            ..PoolConfig::default()
        };
        let cap = Limiter::new(config.clone()).account_cap(trust);
        say.step(format!(
            "the worker's trust is {trust:.2}: the pool lets them redeem up to {cap} {SYMBOL} \
             a day"
        ));
        let rail: Arc<dyn PaymentRail> = Arc::new(stack.community.clone());
        let pool = RedemptionPool::new(Arc::clone(&self.ledger), rail, config)?;
        let fee = pool.fee(amount);
        let invoice =
            stack
                .worker
                .create_invoice(Some((amount - fee) * 1_000), "redeem my tokens", 3_600)?;
        let before = stack.worker.balance().lightning_sats;
        let ticket = rt.block_on(pool.redeem(&worker, amount, &invoice.bolt11, trust))?;
        // The request only queues it; `moip up` pays in the background, the demo pays now.
        let paid = rt
            .block_on(pool.process())
            .into_iter()
            .find(|(id, _)| *id == ticket.id)
            .map(|(_, status)| status);
        if paid != Some(Status::Paid) {
            bail!("the redemption was not paid: {paid:?}");
        }
        stack
            .worker
            .wait_for(WAIT, "the payout to arrive", |n| {
                (n.balance().lightning_sats >= before + ticket.sats_out).then_some(())
            })
            .context("the worker's node")?;
        say.step(format!(
            "worker redeems {amount} {SYMBOL}: {} sat paid over Lightning to the worker's node \
             (fee {fee} {SYMBOL}), the tokens burned",
            ticket.sats_out
        ));
        Ok((fee, ticket.sats_out))
    }

    /// Signs `message` as `keys`, publishes it to the relay and waits for the service's
    /// receipt, which must not be a refusal.
    fn send(&self, rt: &Runtime, keys: &Keys, message: Message) -> anyhow::Result<Receipt> {
        let event = encode(keys, COMMUNITY, &message, now())?;
        let receipt = rt.block_on(async {
            let output = self.client.send_event(&event).await?;
            if output.success.is_empty() {
                bail!("the relay refused the event: {:?}", output.failed);
            }
            self.service
                .wait_receipt(&event.id, WAIT)
                .await
                .context("no receipt from the Work service")
        })?;
        if let Verdict::Rejected { reason } = &receipt.verdict {
            bail!("the Work service refused {message:?}: {reason}");
        }
        Ok(receipt)
    }

    /// Stops the service, the client and the relay.
    pub(super) fn stop(self, rt: &Runtime) {
        rt.block_on(async {
            self.service.shutdown().await;
            self.client.shutdown().await;
        });
        self.relay.shutdown();
    }
}

fn account(keys: &Keys) -> AccountId {
    AccountId::from_bytes(keys.public_key().to_bytes())
}

fn lock(ledger: &SharedLedger) -> anyhow::Result<std::sync::MutexGuard<'_, Ledger<SqliteJournal>>> {
    ledger
        .lock()
        .map_err(|_| anyhow::anyhow!("the ledger's lock is poisoned"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
