//! A community's Work state: verified events applied to tasks, the registry of verifiers and
//! the trust graph, with every reward held in the token ledger's escrow — locked when a task is
//! posted, released to the worker once the challenge window passes or a panel decides for them,
//! refunded to the employer when the task is withdrawn or a panel decides against the work.
//!
//! Events come from relays in any order and may repeat; each is applied once (a replay is
//! refused by its id) and a refused event changes nothing — neither the tasks nor the ledger —
//! and says why ([`Rejection`]). Replaying the same events against the same ledger history gives
//! the same state: that is how a node rebuilds after losing its database.

use std::collections::{BTreeMap, HashMap, HashSet};

use moip_assets::ledger::{TaskId, TokenLedger};

use crate::dispute::{consequences, draw_panel, panel_seed, tally};
use crate::events::{Message, Signed};
use crate::identity::{IdentityError, Registry, Role, VerifierRules};
use crate::task::{Attestation, Rules, State, Task, TaskError, TaskSpec};
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
    ledger: L,
    registry: Registry,
    rules: Rules,
    params: Params,
    graph: TrustGraph,
    scores: Scores,
    tasks: BTreeMap<String, Task>,
    seen: HashSet<[u8; 32]>,
    panels: HashMap<String, Panel>,
}

/// A dispute's jurors and the votes they cast so far.
type Panel = (Vec<AccountId>, Vec<(AccountId, bool)>);

fn ledger_error(e: impl std::fmt::Display) -> Rejection {
    Rejection::Ledger(e.to_string())
}

impl<L: TokenLedger> Community<L> {
    /// A community founded by `founders` (its first physical verifiers) over `ledger`.
    pub fn new(
        ledger: L,
        founders: &[AccountId],
        rules: Rules,
        verifier_rules: VerifierRules,
        params: Params,
    ) -> Community<L> {
        let mut community = Community {
            ledger,
            registry: Registry::new(founders.iter().copied(), verifier_rules),
            rules,
            params,
            graph: TrustGraph::new(),
            scores: Scores::default(),
            tasks: BTreeMap::new(),
            seen: HashSet::new(),
            panels: HashMap::new(),
        };
        community.rescore(0);
        community
    }

    /// The ledger.
    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    /// A task.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.get(id)
    }

    /// Every task.
    pub fn tasks(&self) -> &BTreeMap<String, Task> {
        &self.tasks
    }

    /// Current trust scores.
    pub fn scores(&self) -> &Scores {
        &self.scores
    }

    /// The panel drawn for a disputed task.
    pub fn panel(&self, task: &str) -> Option<&[AccountId]> {
        self.panels.get(task).map(|(p, _)| p.as_slice())
    }

    fn rescore(&mut self, now: u64) {
        let observers: Vec<AccountId> = self.registry.verifiers(now).into_iter().collect();
        self.scores = self.graph.scores(&self.params, &observers);
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
        let outcome = self.apply_new(event, now)?;
        self.seen.insert(event.event_id);
        Ok(outcome)
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
                self.ledger
                    .lock(&TaskId(task.clone()), &author, body.reward)
                    .map_err(ledger_error)?;
                self.registry.grant(author, Role::Employer);
                self.tasks.insert(task.clone(), posted);
                Ok(Outcome::Accepted)
            }
            Message::Claim { task } => {
                self.task_mut(task)?.claim(author, now)?;
                self.registry.grant(author, Role::Worker);
                Ok(Outcome::Accepted)
            }
            Message::Withdraw { task } => {
                let t = self.task_mut(task)?;
                let open = t.state == State::Open;
                let mut trial = t.clone();
                trial.withdraw(author)?;
                if open {
                    // The employer withdrew an open task: the escrow goes back.
                    self.ledger
                        .refund(&TaskId(task.clone()))
                        .map_err(ledger_error)?;
                }
                *self.task_mut(task)? = trial;
                Ok(Outcome::Accepted)
            }
            Message::Submit { task, evidence } => {
                self.task_mut(task)?.submit(author, evidence.clone(), now)?;
                Ok(Outcome::Accepted)
            }
            Message::Attest { task, worker } => {
                let trust = self.scores.get(&author);
                let physical = self.registry.has_role(&author, Role::PhysicalVerifier, now);
                let rules = self.rules.clone();
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
                self.rescore(now);
                Ok(Outcome::QuorumReached)
            }
            Message::Dispute { task } => {
                self.task_mut(task)?.dispute(author, now)?;
                let parties = self.task_mut(task)?.parties();
                let candidates: Vec<(AccountId, f64)> =
                    self.scores.iter().map(|(a, s)| (*a, *s)).collect();
                let seed = panel_seed(task, &event.event_id);
                let panel = draw_panel(
                    &seed,
                    &candidates,
                    &parties,
                    PANEL_SIZE,
                    self.rules.min_trust,
                );
                self.panels.insert(task.clone(), (panel, Vec::new()));
                Ok(Outcome::Accepted)
            }
            Message::Vote { task, worker_won } => {
                let state = self.task_mut(task)?.state.clone();
                let State::Disputed {
                    worker,
                    attesters,
                    challenger,
                } = state
                else {
                    return Err(Rejection::Task(TaskError::WrongState("not disputed")));
                };
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
                let id = TaskId(task.clone());
                if won {
                    self.ledger.release(&id, &worker).map_err(ledger_error)?;
                } else {
                    self.ledger.refund(&id).map_err(ledger_error)?;
                }
                self.task_mut(task)?.resolve(won)?;
                for (rater, ratee, signal) in
                    consequences(&panel, &worker, &attesters, &challenger, won)
                {
                    self.graph.add(&self.params, rater, ratee, signal);
                }
                self.rescore(now);
                Ok(Outcome::Resolved { worker_won: won })
            }
            Message::Vouch { subject } => {
                if *subject == author {
                    return Err(Rejection::Identity(IdentityError::SelfCertification));
                }
                if !self.registry.has_role(&author, Role::PhysicalVerifier, now) {
                    return Err(Rejection::Identity(IdentityError::NotVerifier(author)));
                }
                self.registry.grant(*subject, Role::Member);
                self.graph
                    .add(&self.params, author, *subject, Signal::Certification);
                self.rescore(now);
                Ok(Outcome::Accepted)
            }
            Message::Certify { subject } => {
                self.registry.certify(author, *subject, now)?;
                self.graph
                    .add(&self.params, author, *subject, Signal::Certification);
                self.rescore(now);
                Ok(Outcome::Accepted)
            }
        }
    }

    /// Pays every attested task whose challenge window has passed; returns their ids.
    pub fn tick(&mut self, now: u64) -> Vec<String> {
        let due: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| matches!(t.state, State::Attested { until, .. } if until <= now))
            .map(|(id, _)| id.clone())
            .collect();
        let mut paid = Vec::new();
        for id in due {
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            let mut trial = task.clone();
            let Ok(worker) = trial.pay(now) else { continue };
            if self.ledger.release(&TaskId(id.clone()), &worker).is_ok() {
                *task = trial;
                paid.push(id);
            }
        }
        paid
    }
}
