//! Fee estimation by mempool projection.
//!
//! Core's estimator learns from how long past transactions took to confirm and has nothing to
//! say on a fresh regtest chain. moip answers instead with the fee rate that would place a
//! transaction inside the next `target` blocks if they were mined from the current mempool, and
//! never less than the relay minimum. Documented as a deviation in `docs/embedded-node.md`.

use bitcoin::FeeRate;

use super::mempool::Mempool;
use super::policy::{MAX_BLOCK_WEIGHT, MIN_RELAY_FEE};
use crate::{FeeEstimate, FeeMode};

/// Weight kept free for the coinbase, as Core's block assembler does.
pub(crate) const COINBASE_RESERVED_WEIGHT: u64 = 4_000;

/// Core answers targets 1 to 1008 and reports target 1 as 2.
pub(crate) fn clamp_target(target: u16) -> u16 {
    target.clamp(2, 1008)
}

pub(crate) fn estimate(pool: &Mempool, target: u16, mode: FeeMode) -> FeeEstimate {
    let blocks = clamp_target(target);
    // Conservative estimates look at a horizon half as long: a higher rate.
    let horizon = match mode {
        FeeMode::Conservative => (blocks / 2).max(1),
        FeeMode::Economical | FeeMode::Unset => blocks,
    };
    let capacity = u64::from(horizon) * (MAX_BLOCK_WEIGHT - COINBASE_RESERVED_WEIGHT);
    let order = pool.select(u64::MAX, u64::MAX / 2);
    let mut used = 0u64;
    let mut rate = MIN_RELAY_FEE;
    for txid in order {
        let Some(tx) = pool.get(&txid) else { continue };
        used += tx.weight;
        if used > capacity {
            // The first transaction left out sets the bar: beat it by one sat/kvB.
            let boundary = crate::types::fee_rate_of(tx.fee, tx.vsize);
            rate = FeeRate::from_sat_per_kwu(boundary.to_sat_per_kwu() + 1).max(MIN_RELAY_FEE);
            break;
        }
    }
    FeeEstimate {
        fee_rate: rate,
        blocks,
    }
}
