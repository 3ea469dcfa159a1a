//! Attacks on the redemption pool, each run against real ldk-nodes on the embedded regtest
//! chain by a member with bad intent. One module per attack; each test was seen to fail with
//! its defence taken out. The table in `docs/reliability.md` lists them.

mod fee_drain;
mod frozen_queue;
