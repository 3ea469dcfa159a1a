//! L4 Markets: BTC-backed work tokens.

pub mod ledger;
pub mod mssmt;
