//! The trust graph and its scores: GrapeRank with attenuation and rigor, personalised to a set
//! of observers (the community's physical verifiers).
//!
//! Signals become `(rating, confidence)` edges from rater to ratee: follows (NIP-02), reports
//! (NIP-56), verifier certifications, attestation outcomes and lost disputes. Between one rater
//! and one ratee the strongest kind wins (a lost dispute or a report over a certification over
//! attestations over a follow); several attestations add up their confidence.
//!
//! Scores follow GrapeRank: with influence `G` (observers fixed at 1), each ratee `v` gets
//! `w_r = G_r · c_r · (α unless r is an observer)`, input `I_v = Σ w_r`, average
//! `A_v = Σ w_r·rating_r / I_v`, confidence `C_v = 1 − ρ^I_v`, and `G_v = max(0, A_v·C_v)`,
//! iterated until no score moves by more than 10⁻⁴ or 20 rounds. Every hop multiplies by α, so
//! influence fades with distance from the observers.
//!
//! One change of ours, for sybil resistance: **each rater's confidences are capped at one unit in
//! total** — a rater who rates many identities has its confidence split among them, as
//! EigenTrust normalises trust. Without it, a clique of a thousand fresh keys that all rate each
//! other amplifies any trickle of input into full scores (each member's input is the sum over
//! the clique). With it, what a region of the graph gains is bounded by what flows into it:
//! [`sybil_bound`] states the bound, and the tests check it.

use std::collections::HashMap;

use crate::AccountId;

/// Kinds of signal, strongest first where they compete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    /// The ratee lost a dispute the rater was party to (or judged).
    DisputeLost,
    /// A NIP-56 report.
    Report,
    /// A physical verifier's certification.
    Certification,
    /// An attestation of the ratee's work that passed its quorum.
    Attestation,
    /// A NIP-02 follow.
    Follow,
}

/// How strongly each kind of signal counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Attenuation α: how much of a rater's influence passes one hop.
    pub attenuation: f64,
    /// Rigor ρ: how much input it takes to be confident (`C = 1 − ρ^I`).
    pub rigor: f64,
    /// `(rating, confidence)` per signal.
    pub follow: (f64, f64),
    /// For a report.
    pub report: (f64, f64),
    /// For a lost dispute.
    pub dispute_lost: (f64, f64),
    /// For a certification.
    pub certification: (f64, f64),
    /// For one attestation (several add up: `1 − Π(1 − c)`).
    pub attestation: (f64, f64),
    /// Most total confidence one rater spreads over all it rates.
    pub rater_budget: f64,
    /// Most rounds.
    pub max_rounds: usize,
    /// Stop when no score moves more than this.
    pub tolerance: f64,
}

impl Default for Params {
    /// GrapeRank's default preset (ρ 0.5, α 0.85, follows (1, 0.03), reports (−0.1, 0.5)),
    /// with the reference's suggested mapping for the community's own signals.
    fn default() -> Self {
        Params {
            attenuation: 0.85,
            rigor: 0.5,
            follow: (1.0, 0.03),
            report: (-0.1, 0.5),
            dispute_lost: (-0.9, 0.9),
            certification: (1.0, 0.9),
            attestation: (1.0, 0.3),
            rater_budget: 1.0,
            max_rounds: 20,
            tolerance: 1e-4,
        }
    }
}

impl Params {
    fn rating_of(&self, signal: Signal) -> (f64, f64) {
        match signal {
            Signal::DisputeLost => self.dispute_lost,
            Signal::Report => self.report,
            Signal::Certification => self.certification,
            Signal::Attestation => self.attestation,
            Signal::Follow => self.follow,
        }
    }
}

/// One rater's view of one ratee, before scoring.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Edge {
    signal: Signal,
    rating: f64,
    confidence: f64,
}

/// The other identity of a signal, and the signal.
pub type Signalled = (AccountId, Signal);

/// Signals between identities.
#[derive(Clone, Debug, Default)]
pub struct TrustGraph {
    edges: HashMap<AccountId, HashMap<AccountId, Edge>>,
}

/// Scores by identity, 0 to 1; identities absent score 0.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scores {
    scores: HashMap<AccountId, f64>,
    /// Rounds run.
    pub rounds: usize,
    /// Whether the scores settled within the tolerance.
    pub converged: bool,
}

impl Scores {
    /// `who`'s score.
    pub fn get(&self, who: &AccountId) -> f64 {
        self.scores.get(who).copied().unwrap_or(0.0)
    }

    /// Every identity with a score above 0.
    pub fn iter(&self) -> impl Iterator<Item = (&AccountId, &f64)> {
        self.scores.iter().filter(|(_, s)| **s > 0.0)
    }
}

impl TrustGraph {
    /// An empty graph.
    pub fn new() -> TrustGraph {
        TrustGraph::default()
    }

    /// Records `signal` from `rater` about `ratee`. Self-ratings are ignored.
    pub fn add(&mut self, params: &Params, rater: AccountId, ratee: AccountId, signal: Signal) {
        if rater == ratee {
            return;
        }
        let (rating, confidence) = params.rating_of(signal);
        let new = Edge {
            signal,
            rating,
            confidence,
        };
        let slot = self.edges.entry(rater).or_default().entry(ratee);
        match slot {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(new);
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let old = *o.get();
                if signal < old.signal {
                    o.insert(new);
                } else if signal == old.signal && signal == Signal::Attestation {
                    // Independent attestations: confidence 1 − Π(1 − c), below 1.
                    let c = 1.0 - (1.0 - old.confidence) * (1.0 - confidence);
                    o.get_mut().confidence = c.min(0.99);
                }
            }
        }
    }

    /// Replaces `rater`'s follows with `followees` (a NIP-02 list replaces the one before it):
    /// follow edges to anyone no longer listed go, stronger signals stay.
    pub fn set_follows(&mut self, params: &Params, rater: AccountId, followees: &[AccountId]) {
        if let Some(rated) = self.edges.get_mut(&rater) {
            let keep: std::collections::HashSet<&AccountId> = followees.iter().collect();
            rated.retain(|ratee, edge| edge.signal != Signal::Follow || keep.contains(ratee));
        }
        for followee in followees {
            self.add(params, rater, *followee, Signal::Follow);
        }
    }

    /// The signals around `who`: those it gives (ratee, signal) and those it receives
    /// (rater, signal), at most `max` of each, strongest first — what a picture of one
    /// member's neighbourhood shows.
    pub fn around(&self, who: &AccountId, max: usize) -> (Vec<Signalled>, Vec<Signalled>) {
        let mut gives: Vec<Signalled> = self
            .edges
            .get(who)
            .map(|rated| rated.iter().map(|(r, e)| (*r, e.signal)).collect())
            .unwrap_or_default();
        let mut receives: Vec<Signalled> = self
            .edges
            .iter()
            .filter_map(|(rater, rated)| rated.get(who).map(|e| (*rater, e.signal)))
            .collect();
        for list in [&mut gives, &mut receives] {
            list.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
            list.truncate(max);
        }
        (gives, receives)
    }

    /// Who vouched for or certified `who` (raters whose edge to it is a certification), sorted:
    /// the verifiers whose word lifted it. A quorum must not rest on one of them alone (see
    /// [`crate::task::Rules::quorum`]).
    pub fn sponsors(&self, who: &AccountId) -> Vec<AccountId> {
        let mut sponsors: Vec<AccountId> = self
            .edges
            .iter()
            .filter(|(_, rated)| {
                rated
                    .get(who)
                    .is_some_and(|e| e.signal == Signal::Certification)
            })
            .map(|(rater, _)| *rater)
            .collect();
        sponsors.sort();
        sponsors
    }

    /// How many rater → ratee edges there are.
    pub fn len(&self) -> usize {
        self.edges.values().map(HashMap::len).sum()
    }

    /// True without edges.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// GrapeRank scores personalised to `observers`.
    pub fn scores(&self, params: &Params, observers: &[AccountId]) -> Scores {
        // Index identities, and turn edges into (rater, rating, capped confidence) per ratee.
        let mut index: HashMap<AccountId, usize> = HashMap::new();
        let mut ids: Vec<AccountId> = Vec::new();
        let mut id_of = |a: &AccountId, index: &mut HashMap<AccountId, usize>| {
            *index.entry(*a).or_insert_with(|| {
                ids.push(*a);
                ids.len() - 1
            })
        };
        let mut incoming: Vec<Vec<(usize, f64, f64)>> = Vec::new();
        // Sorted, so every sum is taken in the same order and the same graph always gives
        // bit-identical scores (a rebuilt node must agree with the one it replaces).
        let mut raters: Vec<(&AccountId, &HashMap<AccountId, Edge>)> = self.edges.iter().collect();
        raters.sort_by_key(|(rater, _)| **rater);
        for (rater, rated) in raters {
            let r = id_of(rater, &mut index);
            let mut rated: Vec<(&AccountId, &Edge)> = rated.iter().collect();
            rated.sort_by_key(|(ratee, _)| **ratee);
            let scale = budget_scale(params, rated.iter().map(|(_, e)| e.confidence));
            for (ratee, edge) in rated {
                let v = id_of(ratee, &mut index);
                if incoming.len() <= v.max(r) {
                    incoming.resize(v.max(r) + 1, Vec::new());
                }
                incoming[v].push((r, edge.rating, edge.confidence * scale));
            }
        }
        for o in observers {
            id_of(o, &mut index);
        }
        let n = ids.len();
        incoming.resize(n, Vec::new());
        let mut is_observer = vec![false; n];
        for o in observers {
            is_observer[index[o]] = true;
        }
        let ln_rigor = params.rigor.clamp(1e-9, 1.0 - 1e-9).ln();
        let mut g: Vec<f64> = is_observer
            .iter()
            .map(|o| if *o { 1.0 } else { 0.0 })
            .collect();
        let mut next = g.clone();
        let mut rounds = 0;
        let mut converged = false;
        while rounds < params.max_rounds {
            rounds += 1;
            let mut delta: f64 = 0.0;
            for v in 0..n {
                if is_observer[v] {
                    continue;
                }
                let (mut input, mut weighted) = (0.0, 0.0);
                for &(r, rating, confidence) in &incoming[v] {
                    let attenuation = if is_observer[r] {
                        1.0
                    } else {
                        params.attenuation
                    };
                    let w = g[r] * confidence * attenuation;
                    input += w;
                    weighted += w * rating;
                }
                let score = if input > 0.0 {
                    let average = weighted / input;
                    let confidence = 1.0 - (input * ln_rigor).exp();
                    (average * confidence).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                delta = delta.max((score - g[v]).abs());
                next[v] = score;
            }
            std::mem::swap(&mut g, &mut next);
            for v in 0..n {
                if is_observer[v] {
                    g[v] = 1.0;
                }
            }
            next.copy_from_slice(&g);
            if delta < params.tolerance {
                converged = true;
                break;
            }
        }
        Scores {
            scores: ids.into_iter().zip(g).collect(),
            rounds,
            converged,
        }
    }

    /// The input that flows from outside `region` into it: `Σ G_r · α · c_r` over edges from a
    /// rater outside to a ratee inside, with the scores and the capped confidences used in
    /// scoring.
    pub fn inflow(
        &self,
        params: &Params,
        scores: &Scores,
        region: &std::collections::HashSet<AccountId>,
        observers: &[AccountId],
    ) -> f64 {
        let mut total = 0.0;
        for (rater, rated) in &self.edges {
            if region.contains(rater) {
                continue;
            }
            let scale = budget_scale(params, rated.values().map(|e| e.confidence));
            let attenuation = if observers.contains(rater) {
                1.0
            } else {
                params.attenuation
            };
            for (ratee, edge) in rated {
                if region.contains(ratee) && edge.rating > 0.0 {
                    total += scores.get(rater) * edge.confidence * scale * attenuation;
                }
            }
        }
        total
    }
}

/// What a rater's confidences are multiplied by so that they add up to at most the budget.
fn budget_scale(params: &Params, confidences: impl Iterator<Item = f64>) -> f64 {
    let total: f64 = confidences.sum();
    if total > params.rater_budget {
        params.rater_budget / total
    } else {
        1.0
    }
}

/// The most total score a region of the graph can hold, given the input flowing into it from
/// outside (see [`TrustGraph::inflow`]): `ln(1/ρ) · inflow / (1 − α · B · ln(1/ρ))`, where `B` is
/// the rater budget. It holds because a member's score is at most `ln(1/ρ)` times its input
/// (`1 − ρ^I ≤ I·ln(1/ρ)`), and the region's members together pass on at most `α · B` times their
/// total score; it needs `α · B · ln(1/ρ) < 1` (0.59 with the defaults). `None` otherwise.
pub fn sybil_bound(params: &Params, inflow: f64) -> Option<f64> {
    let k = (1.0 / params.rigor).ln();
    let gain = params.attenuation * params.rater_budget * k;
    (gain < 1.0).then(|| k * inflow / (1.0 - gain))
}
