//! Collateral and supply over time, for the dashboard's chart: the ledger's journal replayed
//! entry by entry. Incremental — each call replays only the entries written since the last —
//! so a page view costs the new entries, not the whole journal.

use std::sync::Mutex;

use moip_assets::ledger::{JournalStore, Ledger, LedgerError, State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::util::lock;

/// Most points kept; older ones are thinned to every other one when it is reached.
pub const MAX_POINTS: usize = 2_000;

/// The figures after one moment's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Point {
    /// Unix seconds.
    pub time: u64,
    /// Satoshis of collateral.
    pub collateral: u64,
    /// Tokens in existence.
    pub supply: u64,
}

/// The replay so far.
#[derive(Default)]
pub struct History {
    replay: Mutex<Replay>,
}

#[derive(Default)]
struct Replay {
    next: u64,
    state: State,
    points: Vec<Point>,
}

impl History {
    /// The points up to the ledger's last entry.
    ///
    /// # Errors
    /// The store failing, or a journal the rules refuse (it was checked when written).
    pub fn points<S: JournalStore>(
        &self,
        ledger: &Mutex<Ledger<S>>,
    ) -> Result<Vec<Point>, LedgerError> {
        let mut replay = lock(&self.replay);
        let entries = {
            let mut ledger = lock(ledger);
            if ledger.len() <= replay.next {
                return Ok(replay.points.clone());
            }
            ledger.entries(replay.next)?
        };
        for entry in entries {
            replay.state.apply(&entry.op)?;
            replay.next = entry.seq + 1;
            let point = Point {
                time: entry.time,
                collateral: replay.state.collateral(),
                supply: replay.state.supply(),
            };
            match replay.points.last_mut() {
                Some(last) if last.time == point.time => *last = point,
                _ => replay.points.push(point),
            }
            if replay.points.len() > MAX_POINTS {
                let thinned = replay
                    .points
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % 2 == 0)
                    .map(|(_, p)| *p)
                    .collect();
                replay.points = thinned;
            }
        }
        Ok(replay.points.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moip_assets::ledger::{AccountId, CollateralSource, MemoryJournal, TokenInfo, TokenLedger};

    #[test]
    fn the_replay_follows_the_ledger_and_only_reads_new_entries() {
        let ledger = Mutex::new(
            Ledger::create(
                MemoryJournal::default(),
                TokenInfo {
                    id: "t".into(),
                    name: "t".into(),
                    symbol: "T".into(),
                },
            )
            .expect("ledger"),
        );
        let history = History::default();
        let source = CollateralSource::Lightning {
            payment_hash: "ab".repeat(32),
        };
        lock(&ledger).deposit(7_000, source).expect("deposit");
        let points = history.points(&ledger).expect("points");
        let last = points.last().expect("a point");
        assert_eq!((last.collateral, last.supply), (7_000, 0));
        lock(&ledger)
            .mint(&AccountId::from_bytes([2; 32]), 5_000)
            .expect("mint");
        let points = history.points(&ledger).expect("points");
        let last = points.last().expect("a point");
        assert_eq!((last.collateral, last.supply), (7_000, 5_000));
        assert!(points.iter().all(|p| p.supply <= p.collateral));
    }
}
