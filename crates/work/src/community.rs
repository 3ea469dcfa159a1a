//! A community's Work state: verified events applied to tasks, the registry of verifiers and
//! the trust graph, with every reward held in the token ledger's escrow — locked when a task is
//! posted, released to the worker once the challenge window passes, a panel decides for them or
//! a panel's deadline passes undecided, refunded to the employer when the task is withdrawn
//! (open, its claim lapsed, or its submission unattested past the window) or a panel decides
//! against the work.
//!
//! Events come from relays in any order and may repeat; each is applied once (a replay is
//! refused by its id) and a refused event changes nothing — neither the tasks nor the ledger —
//! and says why ([`Rejection`]). Replaying the same events at the same times gives the same
//! state: that is how a node rebuilds after losing its database.
//!
//! The ledger outlives this state (it is the money; the Work state is derived from events), so
//! a rebuild replays events over a ledger that already holds their effects. Each escrow change
//! is therefore idempotent: a lock, release or refund the ledger already shows for this task —
//! same employer, amount and payee — is taken as done, not done twice. The same covers a crash
//! between writing the ledger and recording the event.
//!
//! A vouch is a strong trust edge one verifier gives alone, so vouches are capped per verifier
//! and period ([`Rules::vouch_cap`]) and an attestation carries who vouched for or certified
//! its attester, so that no quorum rests on one verifier and its own vouchees
//! ([`Rules::quorum`]).
//!
//! Scores are recomputed lazily, when an attestation, dispute or vote needs them (a thousand
//! follow lists arriving cost one scoring, not a thousand), always at the time of the event that
//! needs them, so a replay scores at the same moments as the original run.

use std::collections::{BTreeMap, HashMap, HashSet};

use bitcoin::secp256k1::Keypair;
use moip_assets::ledger::{Escrow, Settlement, TaskId, TokenLedger};

use crate::dispute::{
    consequences, draw_panel, drawing_key, drawing_public_key, drawn_seed, legacy_panel_seed,
    sign_draw, tally,
};
use crate::events::{Message, Signed};
use crate::identity::{IdentityError, Registry, Role, VerifierRules};
use crate::task::{Attestation, Rules, State, Task, TaskError, TaskSpec, RULES_VERSION};
use crate::trust::{Params, Scores, Signal, TrustGraph};
use crate::AccountId;

/// Jurors per dispute panel.
pub const PANEL_SIZE: usize = 5;

/// Why an event was refused; nothing changed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// This event was applied before.
    #[error("replayed event")]
    Replayed,
    /// No such task.
    #[error("unknown task {0}")]
    UnknownTask(String),
    /// A task with this id exists already.
    #[error("task {0} exists already")]
    Duplicate(String),
    /// The task refused the transition.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The ledger refused (e.g. the employer cannot cover the reward).
    #[error("ledger: {0}")]
    Ledger(String),
    /// The registry refused a certification.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A vote from outside the task's panel.
    #[error("not on this task's panel")]
    NotOnPanel,
    /// The event is for another community.
    #[error("the event is for community {0:?}")]
    OtherCommunity(String),
    /// The verifier has given its vouches for this period.
    #[error("{verifier} has vouched for {cap} keys this period already")]
    VouchCap {
        /// The verifier.
        verifier: AccountId,
        /// The cap ([`Rules::vouch_cap`]).
        cap: usize,
    },
}

/// What an accepted event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied.
    Accepted,
    /// The attestation completed the quorum; the challenge window runs.
    QuorumReached,
    /// The panel decided the dispute.
    Resolved {
        /// Whether the worker was paid.
        worker_won: bool,
    },
}

/// A community's Work state over its token ledger.
pub struct Community<L> {
    id: String,
    ledger: L,
    registry: Registry,
    rules: Rules,
    params: Params,
    graph: TrustGraph,
    scores: Scores,
    /// The graph changed since `scores` was computed.
    dirty: bool,
    /// The observers `scores` was computed for (verifiers come and go as certifications expire).
    observers: Vec<AccountId>,
    tasks: BTreeMap<String, Task>,
    seen: HashSet<[u8; 32]>,
    panels: HashMap<String, Panel>,
    /// When each verifier vouched, for [`Rules::vouch_cap`].
    vouches: HashMap<AccountId, Vec<u64>>,
    /// Signs each dispute's draw (see [`crate::dispute`]).
    drawing: Keypair,
    /// Each disputed task's draw: the dispute event's id and the drawing key's signature.
    draws: HashMap<String, Draw>,
}

/// What a panel was drawn from: anyone checks it with [`crate::dispute::verify_draw`] and the
/// community's [`Community::drawing_key`], then redraws with [`draw_panel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draw {
    /// The dispute event's id.
    pub dispute: [u8; 32],
    /// The drawing key's signature over the task and the dispute.
    pub signature: [u8; 64],
}

/// A dispute's jurors and the votes they cast so far.
type Panel = (Vec<AccountId>, Vec<(AccountId, bool)>);

/// A drawing key nobody else knows, for a community not (yet) given its service's.
fn random_drawing_key() -> Keypair {
    loop {
        let secret = nostr_sdk::Keys::generate().secret_key().secret_bytes();
        if let Some(key) = drawing_key(&secret) {
            return key;
        }
    }
}

fn ledger_error(e: impl std::fmt::Display) -> Rejection {
    Rejection::Ledger(e.to_string())
}

impl<L: TokenLedger> Community<L> {
    /// The community `id`, founded by `founders` (its first physical verifiers), over `ledger`.
    pub fn new(
        id: &str,
        ledger: L,
        founders: &[AccountId],
        rules: Rules,
        verifier_rules: VerifierRules,
        params: Params,
    ) -> Community<L> {
        let mut community = Community {
            id: id.to_owned(),
            ledger,
            registry: Registry::new(founders.iter().copied(), verifier_rules),
            rules,
            params,
            graph: TrustGraph::new(),
            scores: Scores::default(),
            dirty: false,
            observers: Vec::new(),
            tasks: BTreeMap::new(),
            seen: HashSet::new(),
            panels: HashMap::new(),
            vouches: HashMap::new(),
            drawing: random_drawing_key(),
            draws: HashMap::new(),
        };
        community.rescore(0);
        community
    }

    /// Sets the key that signs panel draws, derived from `service_secret` (the Work service's
    /// signing key; [`crate::service::WorkService::start`] does this). Until then a community
    /// draws with a random key of its own: nobody can grind it, but another instance replaying
    /// the same events draws other panels — set the same secret on both to rebuild.
    pub fn set_drawing_secret(&mut self, service_secret: &[u8; 32]) {
        if let Some(key) = drawing_key(service_secret) {
            self.drawing = key;
        }
    }

    /// The public key that checks this community's panel draws.
    pub fn drawing_key(&self) -> [u8; 32] {
        drawing_public_key(&self.drawing)
    }

    /// What a disputed task's panel was drawn from.
    pub fn draw(&self, task: &str) -> Option<Draw> {
        self.draws.get(task).copied()
    }

    /// The community's id (the `h` tag of its events).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The ledger.
    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    /// Gives the ledger back (to rebuild over it).
    pub fn into_ledger(self) -> L {
        self.ledger
    }

    /// The trust graph.
    pub fn graph(&self) -> &TrustGraph {
        &self.graph
    }

    /// The scoring parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The roles and verifier certifications.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The attestation rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// A task.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.get(id)
    }

    /// Every task.
    pub fn tasks(&self) -> &BTreeMap<String, Task> {
        &self.tasks
    }

    /// Trust scores as of `now` (computed afresh when signals arrived since the last event
    /// that needed them; reading does not change the state).
    pub fn scores(&self, now: u64) -> Scores {
        let observers: Vec<AccountId> = self.registry.verifiers(now).into_iter().collect();
        if self.dirty || observers != self.observers {
            self.graph.scores(&self.params, &observers)
        } else {
            self.scores.clone()
        }
    }

    /// The panel drawn for a disputed task.
    pub fn panel(&self, task: &str) -> Option<&[AccountId]> {
        self.panels.get(task).map(|(p, _)| p.as_slice())
    }

    fn rescore(&mut self, now: u64) {
        self.observers = self.registry.verifiers(now).into_iter().collect();
        self.scores = self.graph.scores(&self.params, &self.observers);
        self.dirty = false;
    }

    /// Scores for a decision at `now`: recomputed if anything changed since.
    fn fresh_scores(&mut self, now: u64) -> &Scores {
        let observers: Vec<AccountId> = self.registry.verifiers(now).into_iter().collect();
        if self.dirty || observers != self.observers {
            self.rescore(now);
        }
        &self.scores
    }

    /// Locks a task's reward, unless the ledger shows this very lock already.
    fn lock(&mut self, task: &str, from: AccountId, amount: u64) -> Result<(), Rejection> {
        let id = TaskId(task.to_owned());
        let same = Escrow { from, amount };
        let existing = self
            .ledger
            .escrow(&id)
            .or_else(|| self.ledger.settled(&id).map(|s| s.escrow));
        match existing {
            Some(escrow) if escrow == same => Ok(()),
            Some(_) => Err(Rejection::Duplicate(task.to_owned())),
            None => self
                .ledger
                .lock_escrow(&id, &from, amount)
                .map(drop)
                .map_err(ledger_error),
        }
    }

    /// Pays a task's escrow to `to`, unless the ledger shows it paid to them already.
    fn release(&mut self, task: &str, to: AccountId) -> Result<(), Rejection> {
        let id = TaskId(task.to_owned());
        match self.ledger.settled(&id).map(|s| s.settlement) {
            Some(Settlement::Released(paid)) if paid == to => Ok(()),
            _ => self
                .ledger
                .release(&id, &to)
                .map(drop)
                .map_err(ledger_error),
        }
    }

    /// Returns a task's escrow, unless the ledger shows it returned already.
    fn refund(&mut self, task: &str) -> Result<(), Rejection> {
        let id = TaskId(task.to_owned());
        match self.ledger.settled(&id).map(|s| s.settlement) {
            Some(Settlement::Refunded) => Ok(()),
            _ => self.ledger.refund(&id).map(drop).map_err(ledger_error),
        }
    }

    fn task_mut(&mut self, id: &str) -> Result<&mut Task, Rejection> {
        self.tasks
            .get_mut(id)
            .ok_or_else(|| Rejection::UnknownTask(id.to_owned()))
    }

    /// Applies a verified event at `now`.
    ///
    /// # Errors
    /// [`Rejection`] with the reason; nothing changed.
    pub fn apply(&mut self, event: &Signed, now: u64) -> Result<Outcome, Rejection> {
        if self.seen.contains(&event.event_id) {
            return Err(Rejection::Replayed);
        }
        if let Some(other) = event.community.as_ref().filter(|c| **c != self.id) {
            return Err(Rejection::OtherCommunity(other.clone()));
        }
        let outcome = self.apply_new(event, now)?;
        self.seen.insert(event.event_id);
        Ok(outcome)
    }

    /// Puts the community's rules in force, at `now`, for what older rules left open: each open
    /// claim and panel gets the current windows from `now` ([`Task::adopt`]). The service
    /// does this once, at the boundary a `RulesAdopted` receipt records, so a replay does it
    /// at the same moment.
    pub fn adopt_rules(&mut self, now: u64) {
        let rules = self.rules.clone();
        for task in self.tasks.values_mut() {
            task.adopt(&rules, now);
        }
    }

    /// [`Community::apply`] by the rules of `version` ([`Rules::as_of`]): replays a log
    /// decided by older rules, each event judged by the rules in force when it was decided.
    /// The community's own rules are back in place after.
    ///
    /// # Errors
    /// The [`Rejection`] those rules give.
    pub fn apply_as_of(
        &mut self,
        event: &Signed,
        now: u64,
        version: u32,
    ) -> Result<Outcome, Rejection> {
        if version >= self.rules.version {
            return self.apply(event, now);
        }
        let older = self.rules.as_of(version);
        let current = std::mem::replace(&mut self.rules, older);
        let outcome = self.apply(event, now);
        self.rules = current;
        outcome
    }

    fn apply_new(&mut self, event: &Signed, now: u64) -> Result<Outcome, Rejection> {
        let author = event.author;
        match &event.message {
            Message::Post { task, body } => {
                if self.tasks.contains_key(task) {
                    return Err(Rejection::Duplicate(task.clone()));
                }
                let spec = TaskSpec {
                    id: task.clone(),
                    employer: author,
                    category: body.category.clone(),
                    geohash: body.geohash.clone(),
                    evidence_required: body.evidence_required.clone(),
                    reward: body.reward,
                    deadline: body.deadline,
                };
                let posted = Task::post(spec, now)?;
                self.lock(task, author, body.reward)?;
                self.registry.grant(author, Role::Employer);
                self.tasks.insert(task.clone(), posted);
                Ok(Outcome::Accepted)
            }
            Message::Claim { task } => {
                self.task_mut(task)?;
                let trust = self.fresh_scores(now).get(&author);
                let rules = self.rules.clone();
                self.task_mut(task)?.claim(author, trust, &rules, now)?;
                self.registry.grant(author, Role::Worker);
                Ok(Outcome::Accepted)
            }
            Message::Withdraw { task } => {
                let rules = self.rules.clone();
                let mut trial = self.task_mut(task)?.clone();
                if trial.withdraw(author, &rules, now)? {
                    // The employer withdrew (open, lapsed claim or lapsed submission): the
                    // escrow goes back.
                    self.refund(task)?;
                }
                *self.task_mut(task)? = trial;
                Ok(Outcome::Accepted)
            }
            Message::Submit { task, evidence } => {
                self.task_mut(task)?.submit(author, evidence.clone(), now)?;
                Ok(Outcome::Accepted)
            }
            Message::Attest { task, worker } => {
                let trust = self.fresh_scores(now).get(&author);
                let physical = self.registry.has_role(&author, Role::PhysicalVerifier, now);
                let rules = self.rules.clone();
                let sponsors = self.graph.sponsors(&author);
                let t = self.task_mut(task)?;
                match &t.state {
                    State::Submitted { worker: w, .. } if w == worker => {}
                    State::Submitted { .. } => {
                        return Err(Rejection::Task(TaskError::Invalid(
                            "the attestation names another worker".into(),
                        )))
                    }
                    _ => {}
                }
                let attestation = Attestation {
                    attester: author,
                    physical_verifier: physical,
                    trust,
                    time: now,
                    sponsors,
                };
                let complete = t.attest(attestation, &rules, now)?;
                if !complete {
                    return Ok(Outcome::Accepted);
                }
                if let State::Attested { attesters, .. } = &t.state {
                    for a in attesters.clone() {
                        self.graph
                            .add(&self.params, a, *worker, Signal::Attestation);
                    }
                }
                self.dirty = true;
                Ok(Outcome::QuorumReached)
            }
            Message::Dispute { task } => {
                self.task_mut(task)?;
                let trust = self.fresh_scores(now).get(&author);
                let rules = self.rules.clone();
                self.task_mut(task)?.dispute(author, trust, &rules, now)?;
                let parties = self.task_mut(task)?.parties();
                let candidates: Vec<(AccountId, f64)> = self
                    .fresh_scores(now)
                    .iter()
                    .map(|(a, s)| (*a, *s))
                    .collect();
                // Neither side can compute this before the dispute is accepted, and only the
                // first dispute is: see [`crate::dispute`].
                let signature = sign_draw(&self.drawing, task, &event.event_id);
                let seed = if self.rules.version < RULES_VERSION {
                    legacy_panel_seed(task, &event.event_id)
                } else {
                    drawn_seed(task, &event.event_id, &signature)
                };
                let panel = draw_panel(
                    &seed,
                    &candidates,
                    &parties,
                    PANEL_SIZE,
                    self.rules.min_trust,
                );
                self.panels.insert(task.clone(), (panel, Vec::new()));
                if self.rules.version >= RULES_VERSION {
                    self.draws.insert(
                        task.clone(),
                        Draw {
                            dispute: event.event_id,
                            signature,
                        },
                    );
                }
                Ok(Outcome::Accepted)
            }
            Message::Vote { task, worker_won } => {
                let state = self.task_mut(task)?.state.clone();
                let State::Disputed {
                    worker,
                    attesters,
                    challenger,
                    ..
                } = state
                else {
                    return Err(Rejection::Task(TaskError::WrongState("not disputed")));
                };
                // After the panel's deadline the quorum stands ([`Community::tick`]).
                self.task_mut(task)?.panel_open(now)?;
                let (panel, votes) = self
                    .panels
                    .get(task)
                    .cloned()
                    .ok_or_else(|| Rejection::UnknownTask(task.clone()))?;
                if !panel.contains(&author) {
                    return Err(Rejection::NotOnPanel);
                }
                if votes.iter().any(|(juror, _)| *juror == author) {
                    return Err(Rejection::Task(TaskError::DoubleAttestation));
                }
                let mut votes = votes;
                votes.push((author, *worker_won));
                let decision = tally(&panel, &votes);
                self.panels.insert(task.clone(), (panel.clone(), votes));
                let Some(won) = decision else {
                    return Ok(Outcome::Accepted);
                };
                if won {
                    self.release(task, worker)?;
                } else {
                    self.refund(task)?;
                }
                self.task_mut(task)?.resolve(won)?;
                for (rater, ratee, signal) in
                    consequences(&panel, &worker, &attesters, &challenger, won)
                {
                    self.graph.add(&self.params, rater, ratee, signal);
                }
                self.dirty = true;
                Ok(Outcome::Resolved { worker_won: won })
            }
            Message::Vouch { subject } => {
                if *subject == author {
                    return Err(Rejection::Identity(IdentityError::SelfCertification));
                }
                if !self.registry.has_role(&author, Role::PhysicalVerifier, now) {
                    return Err(Rejection::Identity(IdentityError::NotVerifier(author)));
                }
                let (cap, period) = (self.rules.vouch_cap, self.rules.vouch_period);
                let given = self.vouches.entry(author).or_default();
                given.retain(|t| t.saturating_add(period) > now);
                if given.len() >= cap {
                    return Err(Rejection::VouchCap {
                        verifier: author,
                        cap,
                    });
                }
                given.push(now);
                self.registry.grant(*subject, Role::Member);
                self.graph
                    .add(&self.params, author, *subject, Signal::Certification);
                self.dirty = true;
                Ok(Outcome::Accepted)
            }
            Message::Certify { subject } => {
                self.registry.certify(author, *subject, now)?;
                self.graph
                    .add(&self.params, author, *subject, Signal::Certification);
                self.dirty = true;
                Ok(Outcome::Accepted)
            }
            Message::Follows { subjects } => {
                self.graph.set_follows(&self.params, author, subjects);
                self.dirty = true;
                Ok(Outcome::Accepted)
            }
            Message::Report { subject } => {
                self.graph
                    .add(&self.params, author, *subject, Signal::Report);
                self.dirty = true;
                Ok(Outcome::Accepted)
            }
        }
    }

    /// Pays every worker whose time has come: attested tasks whose challenge window has passed,
    /// and disputed ones whose panel did not decide by its deadline (the quorum stands — an
    /// empty or silent panel cannot hold the escrow for ever). Returns their ids.
    pub fn tick(&mut self, now: u64) -> Vec<String> {
        let due: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| {
                matches!(t.state,
                    State::Attested { until, .. } | State::Disputed { until, .. } if until <= now)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut paid = Vec::new();
        for id in due {
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            let mut trial = task.clone();
            let Ok(worker) = trial.settle(now) else {
                continue;
            };
            if self.release(&id, worker).is_ok() {
                self.tasks.insert(id.clone(), trial);
                paid.push(id);
            }
        }
        paid
    }
}
