//! The fuzz targets' bodies: each `fuzz_targets/<target>.rs` calls one of these, and
//! `tests/replay.rs` runs the committed inputs through them.

pub mod api_bodies;
pub mod chain_rpc;
pub mod electrum_request;
pub mod moneysocket_secure;
pub mod moneysocket_v0;
pub mod moneysocket_v1;
pub mod mssmt_proof;
pub mod nwc_request;
pub mod work_event;
