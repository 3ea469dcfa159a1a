//! L4 Markets: BTC-backed work tokens.

pub mod mssmt;
