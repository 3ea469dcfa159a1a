//! Disputes: a panel drawn at random — verifiably, from a seed neither side of the dispute can
//! choose — with the chance of each member proportional to their trust, excluding the task's
//! parties; a majority of the panel decides; the losing side takes negative trust edges.
//!
//! ## The seed, and why it cannot be ground
//!
//! Hashing only the dispute event ([`panel_seed`]) let the challenger pick the panel: they can
//! sign the dispute again and again (another `created_at`, another id), compute the draw for
//! each from public data, and publish the one that suits them. The Work service has no chain
//! to take a later block hash from, so the seed adds what only the service can compute: its
//! **drawing key**'s BIP-340 signature over the task and the dispute event ([`sign_draw`]),
//! made without auxiliary randomness, so that the same key, task and dispute always give the
//! same signature and a replay redraws the same panel. The seed is
//! [`drawn_seed`]`(task, dispute, signature)`.
//!
//! - The challenger cannot grind: without the drawing key they cannot compute the seed of any
//!   dispute they might sign, and only the first dispute of a task is accepted, so they get one
//!   draw, blind.
//! - The worker and the attesters cannot either, for the same reason.
//! - Anyone can check the draw afterwards: [`verify_draw`] checks the signature against the
//!   drawing key's public key and gives the seed; [`draw_panel`] from it gives the panel.
//! - What remains trusted is the service: holding the key, it could sign with other nonces and
//!   choose among draws. It already decides every event and holds the ledger; the drawing key
//!   is derived from its signing key ([`drawing_key`]), so the same operator answers for both.
//!
//! The challenger still chooses *when* to dispute within the challenge window, and so which
//! trust scores the draw weighs; they cannot see the draw before choosing.

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{schnorr, Keypair, Message as Digest, Secp256k1, XOnlyPublicKey};

use crate::trust::Signal;
use crate::AccountId;

/// The public part of the seed: `sha256("moip/panel" ‖ task id ‖ the dispute event's id)`.
/// **Grindable on its own** (the challenger signs the dispute event): the draw uses
/// [`drawn_seed`].
pub fn panel_seed(task_id: &str, dispute_event_id: &[u8; 32]) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(b"moip/panel");
    engine.input(&(task_id.len() as u64).to_be_bytes());
    engine.input(task_id.as_bytes());
    engine.input(dispute_event_id);
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// The drawing key for a service whose signing key's secret is `service_secret`:
/// `sha256("moip/panel-key" ‖ secret)`, a key of its own so that panel signatures can never be
/// taken for Nostr events. `None` only for the negligible case of a digest that is no key.
pub fn drawing_key(service_secret: &[u8; 32]) -> Option<Keypair> {
    let mut engine = sha256::Hash::engine();
    engine.input(b"moip/panel-key");
    engine.input(service_secret);
    let secret = sha256::Hash::from_engine(engine).to_byte_array();
    Keypair::from_seckey_slice(&Secp256k1::signing_only(), &secret).ok()
}

/// The public key that checks a drawing key's signatures (x-only, as Nostr keys are).
pub fn drawing_public_key(key: &Keypair) -> [u8; 32] {
    key.x_only_public_key().0.serialize()
}

/// What the drawing key signs for a dispute:
/// `sha256("moip/panel-draw" ‖ task id ‖ the dispute event's id)`.
fn draw_digest(task_id: &str, dispute_event_id: &[u8; 32]) -> Digest {
    let mut engine = sha256::Hash::engine();
    engine.input(b"moip/panel-draw");
    engine.input(&(task_id.len() as u64).to_be_bytes());
    engine.input(task_id.as_bytes());
    engine.input(dispute_event_id);
    Digest::from_digest(sha256::Hash::from_engine(engine).to_byte_array())
}

/// The drawing key's signature for a dispute (BIP-340 without auxiliary randomness: the same
/// inputs give the same signature, so a replay redraws the same panel).
pub fn sign_draw(key: &Keypair, task_id: &str, dispute_event_id: &[u8; 32]) -> [u8; 64] {
    Secp256k1::signing_only()
        .sign_schnorr_no_aux_rand(&draw_digest(task_id, dispute_event_id), key)
        .serialize()
}

/// The panel's seed under rules version 1 (see [`crate::task::RULES_VERSION`]):
/// `sha256("moip/panel" ‖ task id ‖ the dispute event's id)`, all public, so the challenger
/// could grind it. Kept only to replay logs decided by those rules.
pub fn legacy_panel_seed(task_id: &str, dispute_event_id: &[u8; 32]) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(b"moip/panel");
    engine.input(&(task_id.len() as u64).to_be_bytes());
    engine.input(task_id.as_bytes());
    engine.input(dispute_event_id);
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// The panel's seed: `sha256("moip/panel-seed" ‖ task id ‖ dispute event id ‖ signature)`.
pub fn drawn_seed(task_id: &str, dispute_event_id: &[u8; 32], signature: &[u8; 64]) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(b"moip/panel-seed");
    engine.input(&(task_id.len() as u64).to_be_bytes());
    engine.input(task_id.as_bytes());
    engine.input(dispute_event_id);
    engine.input(signature);
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// Checks a draw's signature against the drawing key's public key and gives the seed it makes;
/// `None` when the signature is not the drawing key's for this task and dispute.
pub fn verify_draw(
    drawing_key: &[u8; 32],
    task_id: &str,
    dispute_event_id: &[u8; 32],
    signature: &[u8; 64],
) -> Option<[u8; 32]> {
    let key = XOnlyPublicKey::from_slice(drawing_key).ok()?;
    let sig = schnorr::Signature::from_slice(signature).ok()?;
    Secp256k1::verification_only()
        .verify_schnorr(&sig, &draw_digest(task_id, dispute_event_id), &key)
        .ok()?;
    Some(drawn_seed(task_id, dispute_event_id, signature))
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
