//! Attacks on the Work protocol, each run against the real Work service over a real relay by
//! someone with bad intent. One module per attack; each test was seen to fail with its defence
//! taken out. The table in `docs/reliability.md` lists them.

#[path = "../common/mod.rs"]
mod common;

mod author_flood;
mod escrow_lock;
mod panel_grind;
mod relay_flood;
mod vouch_quorum;
