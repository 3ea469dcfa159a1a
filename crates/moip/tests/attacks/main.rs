//! Attacks on `moip up`'s money paths, each run against the real parts (the `moip` binary, its
//! ldk-node, the relay) by someone with bad intent. One module per attack; each test was seen
//! to fail with its defence taken out. The table in `docs/reliability.md` lists them.

#[path = "../common/mod.rs"]
mod common;

mod app_terms;
mod apps;
mod beacon_budget;
mod up_rules;
mod web;
