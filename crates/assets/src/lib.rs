//! L4 Markets: BTC-backed work tokens.

pub mod collateral;
pub mod commitment;
pub mod ledger;
pub mod mssmt;
pub mod pool;
pub mod reserves;
pub mod swap;
mod util;
