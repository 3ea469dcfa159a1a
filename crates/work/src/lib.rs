//! L5 Interface: the Work protocol — who may do what in a community, how much each member is
//! trusted, and how work becomes payment.
//!
//! - [`trust`]: the trust graph and GrapeRank attenuation scoring, personalised to the
//!   community's physical verifiers, with a bound on what a sybil region can gain.
//! - [`task`]: tasks as state machines — open, claimed, submitted, attested by a quorum, paid;
//!   or disputed and resolved.
//! - [`dispute`]: verifiable trust-weighted panels, majority, and the edges the loser takes.
//! - [`identity`]: roles, and physical verifiers certified by at least two others.
//! - [`events`]: the protocol's Nostr events, verified and decoded with typed errors.
//! - [`community`]: verified events applied to tasks, verifiers and trust, with rewards in the
//!   token ledger's escrow; replays refused, refusals explained, state rebuilt by replay.
//! - [`receipt`]: the signed receipts (the community's log) and NIP-85 score assertions.
//! - [`service`]: the community state run over Nostr relays, with its local [`log`]; [`relay`]
//!   is the in-process relay it uses by default.
//!
//! Identities are Nostr keys ([`moip_assets::ledger::AccountId`], the same keys that hold
//! tokens).

pub mod community;
pub mod dispute;
pub mod events;
pub mod identity;
pub mod log;
pub mod receipt;
pub mod relay;
pub mod service;
pub mod task;
pub mod trust;

pub use moip_assets::ledger::AccountId;
