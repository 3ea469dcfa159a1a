//! Disputes: a panel drawn at random — verifiably, from a seed both sides can recompute — with
//! the chance of each member proportional to their trust, excluding the task's parties; a
//! majority of the panel decides; the losing side takes negative trust edges.

use bitcoin::hashes::{sha256, Hash, HashEngine};

use crate::trust::Signal;
use crate::AccountId;

/// The panel's seed: `sha256("moip/panel" ‖ task id ‖ the dispute event's id)`. Both sides know
/// both inputs, and neither chooses the dispute event's id alone (it hashes the signed event).
pub fn panel_seed(task_id: &str, dispute_event_id: &[u8; 32]) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(b"moip/panel");
    engine.input(&(task_id.len() as u64).to_be_bytes());
    engine.input(task_id.as_bytes());
    engine.input(dispute_event_id);
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// A number in (0, 1] for `who` from `seed`.
fn uniform(seed: &[u8; 32], who: &AccountId) -> f64 {
    let mut engine = sha256::Hash::engine();
    engine.input(seed);
    engine.input(who.as_bytes());
    let digest = sha256::Hash::from_engine(engine).to_byte_array();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // 53 bits, never zero.
    ((u64::from_be_bytes(bytes) >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// Draws `size` jurors from `candidates` (identity, trust score): parties and anyone below
/// `min_trust` excluded, the rest chosen without replacement with probability proportional to
/// trust (Efraimidis–Spirakis: the `size` largest `u^(1/trust)`). Deterministic in `seed`, so
/// anyone can check the panel. Fewer than `size` when fewer are eligible.
pub fn draw_panel(
    seed: &[u8; 32],
    candidates: &[(AccountId, f64)],
    parties: &[AccountId],
    size: usize,
    min_trust: f64,
) -> Vec<AccountId> {
    let mut keyed: Vec<(f64, AccountId)> = candidates
        .iter()
        .filter(|(who, trust)| !parties.contains(who) && *trust >= min_trust && *trust > 0.0)
        .map(|(who, trust)| (uniform(seed, who).powf(1.0 / trust), *who))
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    keyed.dedup_by(|a, b| a.1 == b.1);
    keyed.into_iter().take(size).map(|(_, who)| who).collect()
}

/// The panel's decision: `Some(worker_won)` once a strict majority of the panel has voted the
/// same way; votes from outside the panel and second votes are ignored.
pub fn tally(panel: &[AccountId], votes: &[(AccountId, bool)]) -> Option<bool> {
    let mut seen = Vec::new();
    let (mut for_worker, mut against) = (0, 0);
    for (juror, worker_won) in votes {
        if !panel.contains(juror) || seen.contains(juror) {
            continue;
        }
        seen.push(*juror);
        if *worker_won {
            for_worker += 1;
        } else {
            against += 1;
        }
    }
    let majority = panel.len() / 2 + 1;
    if for_worker >= majority {
        Some(true)
    } else if against >= majority {
        Some(false)
    } else {
        None
    }
}

/// The trust edges a decision leaves: each juror rates the losing side as having lost a
/// dispute — the worker and the attesters who vouched for the work when the worker loses, the
/// challenger when the worker wins.
pub fn consequences(
    panel: &[AccountId],
    worker: &AccountId,
    attesters: &[AccountId],
    challenger: &AccountId,
    worker_won: bool,
) -> Vec<(AccountId, AccountId, Signal)> {
    let losers: Vec<AccountId> = if worker_won {
        vec![*challenger]
    } else {
        std::iter::once(*worker)
            .chain(attesters.iter().copied())
            .collect()
    };
    panel
        .iter()
        .flat_map(|juror| {
            losers
                .iter()
                .filter(move |l| *l != juror)
                .map(move |l| (*juror, *l, Signal::DisputeLost))
        })
        .collect()
}
