//! Tasks and their life: posted with the reward escrowed, claimed, proof submitted, attested by
//! a quorum, paid — or disputed within the challenge window and resolved by a panel.
//!
//! ```text
//! open ─claim→ claimed ─submit→ submitted ─quorum→ attested ─window passes→ paid
//!   │             │                                   │
//!   └─withdraw    └─withdraw (back to open)           └─dispute→ disputed ─panel→ resolved
//! ```
//!
//! Nobody can keep a reward in escrow for ever ([`Rules`] holds the figures):
//!
//! - claiming and disputing need trust ([`Rules::claim_min_trust`],
//!   [`Rules::dispute_min_trust`]; the employer may always dispute their own task), so fresh keys
//!   cannot take tasks or freeze payments;
//! - a claim lapses unless proof comes within [`Rules::claim_window`] (and by the task's
//!   deadline); a lapsed claim may be taken by someone else, or the employer withdraws the task
//!   and the escrow goes back;
//! - a submission that gathers no quorum within the attestation window lapses too: the employer
//!   may then withdraw;
//! - a panel decides within [`Rules::panel_window`]; when it has not (empty, short of a majority,
//!   or silent), the **quorum stands and the worker is paid** ([`Task::settle`]): a challenge
//!   that cannot win a majority does not undo the attesters' decision.
//!
//! Pure: every transition takes the time and the facts it needs and either moves the task or
//! says why not ([`TaskError`]); the Work service turns the decisions into ledger entries
//! (lock at posting, release when paid, refund when a dispute goes against the worker).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::AccountId;

/// What a task asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Unique within the community.
    pub id: String,
    /// Who posts and pays.
    pub employer: AccountId,
    /// What kind of work (e.g. "cleaning", "repair").
    pub category: String,
    /// Where, as a geohash.
    pub geohash: String,
    /// What the proof must include (e.g. "photo-before", "photo-after").
    pub evidence_required: Vec<String>,
    /// Tokens paid for the work.
    pub reward: u64,
    /// Proof must be submitted by then (Unix seconds).
    pub deadline: u64,
}

/// Proof of completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Content hashes (hex SHA-256) of the evidence, by requirement name.
    pub items: Vec<(String, String)>,
    /// When the work was done (Unix seconds).
    pub time: u64,
    /// Where, as a geohash.
    pub geohash: String,
}

/// One attestation of a submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attestation {
    /// Who attests.
    pub attester: AccountId,
    /// Whether they hold the physical-verifier role.
    pub physical_verifier: bool,
    /// Their trust score when they attested.
    pub trust: f64,
    /// When (Unix seconds).
    pub time: u64,
    /// The verifiers who vouched for or certified them when they attested
    /// ([`crate::trust::TrustGraph::sponsors`]).
    #[serde(default)]
    pub sponsors: Vec<AccountId>,
}

/// The community's rules for attestation and disputes.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// Distinct attesters needed — and never one verifier alone with keys only it vouched for
    /// or certified: a quorum counts only if, for every key `v`, some attester is neither `v`
    /// nor someone whose sole sponsor is `v` (see [`Attestation::sponsors`]). Otherwise one
    /// verifier who vouches for two fresh keys fills a quorum of three by itself.
    pub quorum: usize,
    /// Of whom at least this many physical verifiers.
    pub physical_verifiers: usize,
    /// Least trust score to attest.
    pub min_trust: f64,
    /// Attestations count within this many seconds after the submission.
    pub attestation_window: u64,
    /// After the quorum, disputes may be raised for this many seconds.
    pub challenge_window: u64,
    /// Least trust score to claim a task: a fresh key cannot take one (and so cannot hold its
    /// reward in escrow). A vouch or certification from a verifier who rates a few others clears
    /// it; one who rates many spreads its confidence thin (the rater budget), so then it takes
    /// more than one.
    pub claim_min_trust: f64,
    /// A claim lapses unless proof comes within this many seconds (and by the task's deadline).
    pub claim_window: u64,
    /// Least trust score to dispute a task, the employer excepted (it is their money).
    pub dispute_min_trust: f64,
    /// A panel decides within this many seconds of the dispute, or the quorum stands and the
    /// worker is paid.
    pub panel_window: u64,
    /// Most vouches one verifier gives per [`Rules::vouch_period`] (renewals count): a vouch is
    /// a strong trust edge, so it is rationed as certifications are.
    pub vouch_cap: usize,
    /// The vouch cap's period, in seconds.
    pub vouch_period: u64,
    /// Which rules these are: [`RULES_VERSION`], or an older one ([`Rules::as_of`]) to replay a
    /// log decided by it. Each receipt records the version it was decided by.
    pub version: u32,
}

/// The version of the rules this build decides by. Version 1: the rules before issue 21's
/// attacks 5–7 (any key claimed and disputed, claims and panels had no deadline, vouches no
/// cap, one verifier could carry a quorum, the panel's seed was public). Version 2: the floors,
/// windows and caps of [`Rules`], and panels drawn with the drawing key's signature.
pub const RULES_VERSION: u32 = 2;

/// What version 1 had in place of a window: none. A century, so deadlines stay sums that do
/// not overflow.
const NO_WINDOW: u64 = 100 * 365 * 86_400;

impl Rules {
    /// These rules as they stood in `version`: for version 1, no trust floor to claim or
    /// dispute, no claim or panel deadline, no vouch cap, and (by [`Rules::version`]) no check
    /// that one verifier carries a quorum and the old public panel seed; the quorum, trust to
    /// attest and the attestation and challenge windows as they are. For
    /// [`RULES_VERSION`] and later, themselves.
    pub fn as_of(&self, version: u32) -> Rules {
        if version >= RULES_VERSION {
            return self.clone();
        }
        Rules {
            claim_min_trust: 0.0,
            claim_window: NO_WINDOW,
            dispute_min_trust: 0.0,
            panel_window: NO_WINDOW,
            vouch_cap: usize::MAX,
            version,
            ..self.clone()
        }
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            quorum: 3,
            physical_verifiers: 1,
            min_trust: 0.1,
            attestation_window: 7 * 86_400,
            challenge_window: 2 * 86_400,
            claim_min_trust: 0.1,
            claim_window: 7 * 86_400,
            dispute_min_trust: 0.1,
            panel_window: 7 * 86_400,
            vouch_cap: 5,
            vouch_period: 30 * 86_400,
            version: RULES_VERSION,
        }
    }
}

impl Task {
    /// Brings a deadline set by older rules within `rules`' windows counted from `now`: a
    /// claim lapses by `now + claim_window`, a panel decides by `now + panel_window` — never
    /// later than before. Version 1 set neither, so without this a claim taken under it would
    /// hold the escrow for good after an upgrade.
    pub fn adopt(&mut self, rules: &Rules, now: u64) {
        match &mut self.state {
            State::Claimed { until, .. } => {
                *until = (*until).min(now.saturating_add(rules.claim_window));
            }
            State::Disputed { until, .. } => {
                *until = (*until).min(now.saturating_add(rules.panel_window));
            }
            _ => {}
        }
    }
}

/// Where a task stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum State {
    /// Waiting for a worker.
    Open,
    /// A worker took it.
    Claimed {
        /// The worker.
        worker: AccountId,
        /// The claim lapses after this (Unix seconds) unless proof has come.
        until: u64,
    },
    /// The worker sent proof; attestations are being gathered.
    Submitted {
        /// The worker.
        worker: AccountId,
        /// The proof.
        evidence: Evidence,
        /// When it was sent.
        at: u64,
        /// Attestations so far.
        attestations: Vec<Attestation>,
    },
    /// The quorum is reached; the challenge window runs until `until`.
    Attested {
        /// The worker.
        worker: AccountId,
        /// The attesters.
        attesters: Vec<AccountId>,
        /// End of the challenge window.
        until: u64,
    },
    /// The reward went to the worker.
    Paid {
        /// The worker.
        worker: AccountId,
    },
    /// Under dispute: the escrow is frozen.
    Disputed {
        /// The worker.
        worker: AccountId,
        /// The attesters whose quorum is challenged.
        attesters: Vec<AccountId>,
        /// Who challenged.
        challenger: AccountId,
        /// The panel's deadline (Unix seconds): undecided by then, the quorum stands.
        until: u64,
    },
    /// A panel decided: paid to the worker, or refunded to the employer.
    Resolved {
        /// The worker.
        worker: AccountId,
        /// Whether the worker won.
        worker_won: bool,
    },
    /// The employer withdrew it before anyone claimed it; the escrow went back.
    Withdrawn,
}

/// Why a transition was refused; nothing changed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The transition does not exist from this state.
    #[error("not possible while the task is {0}")]
    WrongState(&'static str),
    /// Only the worker (or the employer) may do this.
    #[error("only {0} may do this")]
    NotAllowed(&'static str),
    /// Too late.
    #[error("too late: the deadline was {0}")]
    Late(u64),
    /// The proof lacks required evidence.
    #[error("the proof lacks {0}")]
    MissingEvidence(String),
    /// The attester is a party to the task (employer or worker).
    #[error("a party to the task cannot attest it")]
    PartyAttests,
    /// The attester's trust is below the threshold.
    #[error("trust {trust:.3} is below the threshold {min:.3}")]
    LowTrust {
        /// Their score.
        trust: f64,
        /// The threshold.
        min: f64,
    },
    /// The attester already attested this submission.
    #[error("already attested")]
    DoubleAttestation,
    /// Outside the attestation window.
    #[error("outside the attestation window")]
    OutsideWindow,
    /// A field is malformed.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A claimant or challenger whose trust is below the rule's floor.
    #[error("trust {trust:.3} is below the {min:.3} needed to {action}")]
    Untrusted {
        /// What they tried ("claim", "dispute").
        action: &'static str,
        /// Their score.
        trust: f64,
        /// The floor.
        min: f64,
    },
}

/// Whether `trust` is at least `min` (a NaN trust is not).
fn trusted(trust: f64, min: f64) -> bool {
    trust.partial_cmp(&min).is_some_and(|o| o.is_ge())
}

fn state_name(state: &State) -> &'static str {
    match state {
        State::Open => "open",
        State::Claimed { .. } => "claimed",
        State::Submitted { .. } => "submitted",
        State::Attested { .. } => "attested",
        State::Paid { .. } => "paid",
        State::Disputed { .. } => "disputed",
        State::Resolved { .. } => "resolved",
        State::Withdrawn => "withdrawn",
    }
}

/// A task and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// What it asks.
    pub spec: TaskSpec,
    /// Where it stands.
    pub state: State,
}

impl Task {
    /// A posted task (its reward must be escrowed by the caller).
    ///
    /// # Errors
    /// [`TaskError::Invalid`] for an empty id, a zero reward, or a geohash that is not one.
    pub fn post(spec: TaskSpec, now: u64) -> Result<Task, TaskError> {
        if spec.id.is_empty() || spec.id.len() > 96 {
            return Err(TaskError::Invalid("the id must be 1 to 96 bytes".into()));
        }
        if spec.reward == 0 {
            return Err(TaskError::Invalid("the reward must be positive".into()));
        }
        if !is_geohash(&spec.geohash) {
            return Err(TaskError::Invalid(format!(
                "{:?} is not a geohash",
                spec.geohash
            )));
        }
        if spec.deadline <= now {
            return Err(TaskError::Late(spec.deadline));
        }
        Ok(Task {
            spec,
            state: State::Open,
        })
    }

    fn wrong(&self) -> TaskError {
        TaskError::WrongState(state_name(&self.state))
    }

    /// A worker with at least [`Rules::claim_min_trust`] takes the task: an open one, or one
    /// whose claim lapsed (the lapsed worker cannot take it again at once). The claim lapses at
    /// `now + claim_window` or the task's deadline, whichever comes first.
    ///
    /// # Errors
    /// Not open (or claimed and not lapsed), past the deadline, the employer claiming their own
    /// task, the lapsed worker again, or too little trust.
    pub fn claim(
        &mut self,
        worker: AccountId,
        trust: f64,
        rules: &Rules,
        now: u64,
    ) -> Result<(), TaskError> {
        match &self.state {
            State::Open => {}
            State::Claimed { worker: w, until } if now > *until => {
                if *w == worker {
                    return Err(TaskError::NotAllowed(
                        "someone other than the lapsed worker",
                    ));
                }
            }
            _ => return Err(self.wrong()),
        }
        if worker == self.spec.employer {
            return Err(TaskError::NotAllowed("someone other than the employer"));
        }
        if now > self.spec.deadline {
            return Err(TaskError::Late(self.spec.deadline));
        }
        if !trusted(trust, rules.claim_min_trust) {
            return Err(TaskError::Untrusted {
                action: "claim",
                trust,
                min: rules.claim_min_trust,
            });
        }
        let until = now
            .saturating_add(rules.claim_window)
            .min(self.spec.deadline);
        self.state = State::Claimed { worker, until };
        Ok(())
    }

    /// The worker gives the task up (back to open), or the employer withdraws it — while open,
    /// once a claim has lapsed, or once a submission's attestation window closed without a
    /// quorum. Returns true when the employer withdrew (the escrow goes back).
    ///
    /// # Errors
    /// Anyone else, or a task past those states.
    pub fn withdraw(&mut self, who: AccountId, rules: &Rules, now: u64) -> Result<bool, TaskError> {
        let employer = who == self.spec.employer;
        match &self.state {
            State::Claimed { worker, .. } if *worker == who => {
                self.state = State::Open;
                Ok(false)
            }
            State::Open if employer => {
                self.state = State::Withdrawn;
                Ok(true)
            }
            State::Claimed { until, .. } if employer && now > *until => {
                self.state = State::Withdrawn;
                Ok(true)
            }
            State::Submitted { at, .. }
                if employer && now > at.saturating_add(rules.attestation_window) =>
            {
                self.state = State::Withdrawn;
                Ok(true)
            }
            State::Open | State::Claimed { .. } => Err(TaskError::NotAllowed(
                "the worker (or the employer, once the task is open or the claim lapsed)",
            )),
            State::Submitted { .. } if employer => Err(TaskError::WrongState(
                "submitted, its attestation window still open",
            )),
            _ => Err(self.wrong()),
        }
    }

    /// The worker submits proof.
    ///
    /// # Errors
    /// Not the worker, late, or evidence missing.
    pub fn submit(
        &mut self,
        who: AccountId,
        evidence: Evidence,
        now: u64,
    ) -> Result<(), TaskError> {
        let State::Claimed { worker, until } = &self.state else {
            return Err(self.wrong());
        };
        if *worker != who {
            return Err(TaskError::NotAllowed("the worker"));
        }
        if now > *until {
            return Err(TaskError::Late(*until));
        }
        for required in &self.spec.evidence_required {
            let given = evidence
                .items
                .iter()
                .any(|(name, hash)| name == required && is_sha256_hex(hash));
            if !given {
                return Err(TaskError::MissingEvidence(required.clone()));
            }
        }
        self.state = State::Submitted {
            worker: *worker,
            evidence,
            at: now,
            attestations: Vec::new(),
        };
        Ok(())
    }

    /// Records an attestation; returns true when it completes the quorum (the task is then
    /// attested and its challenge window starts).
    ///
    /// # Errors
    /// A party attesting, low trust, a second attestation by the same key, outside the window.
    pub fn attest(&mut self, a: Attestation, rules: &Rules, now: u64) -> Result<bool, TaskError> {
        let employer = self.spec.employer;
        let State::Submitted {
            worker,
            at,
            attestations,
            ..
        } = &mut self.state
        else {
            return Err(TaskError::WrongState(state_name(&self.state)));
        };
        if a.attester == employer || a.attester == *worker {
            return Err(TaskError::PartyAttests);
        }
        // A NaN trust fails this comparison too, and is refused.
        if a.trust
            .partial_cmp(&rules.min_trust)
            .is_none_or(|o| o.is_lt())
        {
            return Err(TaskError::LowTrust {
                trust: a.trust,
                min: rules.min_trust,
            });
        }
        if now < *at || now > at.saturating_add(rules.attestation_window) {
            return Err(TaskError::OutsideWindow);
        }
        if attestations.iter().any(|x| x.attester == a.attester) {
            return Err(TaskError::DoubleAttestation);
        }
        attestations.push(a);
        let distinct: BTreeSet<AccountId> = attestations.iter().map(|x| x.attester).collect();
        let physical = attestations.iter().filter(|x| x.physical_verifier).count();
        if distinct.len() >= rules.quorum
            && physical >= rules.physical_verifiers
            && (rules.version < RULES_VERSION || carried_by_one(attestations).is_none())
        {
            let attesters = distinct.into_iter().collect();
            self.state = State::Attested {
                worker: *worker,
                attesters,
                until: now.saturating_add(rules.challenge_window),
            };
            return Ok(true);
        }
        Ok(false)
    }

    /// The challenge window has passed: the reward goes to the worker. Returns the worker.
    ///
    /// # Errors
    /// Not attested, or the window still open.
    pub fn pay(&mut self, now: u64) -> Result<AccountId, TaskError> {
        let State::Attested { worker, until, .. } = &self.state else {
            return Err(self.wrong());
        };
        if now < *until {
            return Err(TaskError::WrongState("in its challenge window"));
        }
        let worker = *worker;
        self.state = State::Paid { worker };
        Ok(worker)
    }

    /// Someone with at least [`Rules::dispute_min_trust`] (or the employer, whatever their
    /// trust) challenges the quorum within the window: the escrow freezes until a panel decides
    /// or [`Rules::panel_window`] passes.
    ///
    /// # Errors
    /// Not attested, the window closed, the worker challenging their own payment, or too little
    /// trust.
    pub fn dispute(
        &mut self,
        challenger: AccountId,
        trust: f64,
        rules: &Rules,
        now: u64,
    ) -> Result<(), TaskError> {
        let State::Attested {
            worker,
            attesters,
            until,
        } = &self.state
        else {
            return Err(self.wrong());
        };
        if now >= *until {
            return Err(TaskError::OutsideWindow);
        }
        if challenger == *worker {
            return Err(TaskError::NotAllowed("someone other than the worker"));
        }
        if challenger != self.spec.employer && !trusted(trust, rules.dispute_min_trust) {
            return Err(TaskError::Untrusted {
                action: "dispute",
                trust,
                min: rules.dispute_min_trust,
            });
        }
        self.state = State::Disputed {
            worker: *worker,
            attesters: attesters.clone(),
            challenger,
            until: now.saturating_add(rules.panel_window),
        };
        Ok(())
    }

    /// Whether the panel may still vote at `now`.
    ///
    /// # Errors
    /// Not disputed, or the panel's deadline passed.
    pub fn panel_open(&self, now: u64) -> Result<(), TaskError> {
        let State::Disputed { until, .. } = &self.state else {
            return Err(self.wrong());
        };
        if now >= *until {
            return Err(TaskError::OutsideWindow);
        }
        Ok(())
    }

    /// The panel's majority decided.
    ///
    /// # Errors
    /// Not disputed.
    pub fn resolve(&mut self, worker_won: bool) -> Result<(), TaskError> {
        let State::Disputed { worker, .. } = &self.state else {
            return Err(self.wrong());
        };
        self.state = State::Resolved {
            worker: *worker,
            worker_won,
        };
        Ok(())
    }

    /// Whatever time alone decides at `now`: an attested task whose challenge window passed is
    /// paid; a disputed one whose panel did not decide by its deadline is resolved for the
    /// worker (the quorum stands). Returns the worker to pay.
    ///
    /// # Errors
    /// Nothing is due.
    pub fn settle(&mut self, now: u64) -> Result<AccountId, TaskError> {
        match &self.state {
            State::Attested { .. } => self.pay(now),
            State::Disputed { worker, until, .. } if now >= *until => {
                let worker = *worker;
                self.state = State::Resolved {
                    worker,
                    worker_won: true,
                };
                Ok(worker)
            }
            State::Disputed { .. } => Err(TaskError::WrongState("before its panel's deadline")),
            _ => Err(self.wrong()),
        }
    }

    /// Everyone who is a party to the task and so may not attest or sit on its panel.
    pub fn parties(&self) -> Vec<AccountId> {
        let mut parties = vec![self.spec.employer];
        match &self.state {
            State::Claimed { worker, .. }
            | State::Submitted { worker, .. }
            | State::Paid { worker }
            | State::Resolved { worker, .. } => parties.push(*worker),
            State::Attested {
                worker, attesters, ..
            } => {
                parties.push(*worker);
                parties.extend(attesters);
            }
            State::Disputed {
                worker,
                attesters,
                challenger,
                ..
            } => {
                parties.push(*worker);
                parties.push(*challenger);
                parties.extend(attesters);
            }
            State::Open | State::Withdrawn => {}
        }
        parties
    }
}

/// A key that carries every attestation alone: each attester is that key, or was vouched for
/// or certified by it and by no one else. `None` when the attesters are independent of any
/// single key.
pub fn carried_by_one(attestations: &[Attestation]) -> Option<AccountId> {
    let carries = |v: &AccountId| {
        attestations
            .iter()
            .all(|a| a.attester == *v || a.sponsors.as_slice() == [*v])
    };
    attestations
        .iter()
        .flat_map(|a| std::iter::once(&a.attester).chain(&a.sponsors))
        .find(|v| carries(v))
        .copied()
}

/// A geohash: 1 to 12 characters of the geohash alphabet.
pub fn is_geohash(s: &str) -> bool {
    const ALPHABET: &str = "0123456789bcdefghjkmnpqrstuvwxyz";
    (1..=12).contains(&s.len()) && s.chars().all(|c| ALPHABET.contains(c))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
