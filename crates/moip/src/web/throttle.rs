//! Local-user logins cost an Argon2 unseal each — deliberately slow, so a stolen seed file is
//! slow to guess — which makes the login form the cheapest way to burn the node's CPU, and a
//! way to guess one user's password online. Two limits:
//!
//! - at most [`MAX_UNSEALS`] unseals run at once; a login beyond that is told to come back in a
//!   moment, before any work is done;
//! - after [`FREE_FAILURES`] wrong passwords for a name, each further attempt for that name
//!   must wait twice as long as the one before (1 s, 2 s, 4 s… up to [`MAX_WAIT_SECS`]); a
//!   right password clears the count. A waiting name is refused without an unseal, so guessing
//!   gets slower and slower while the user, who knows the password, waits at most that long.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::util::lock;

/// Unseals run at once (the machine's cores are few, and pages must still be served).
pub const MAX_UNSEALS: usize = 2;

/// Wrong passwords a name may have before each next attempt must wait.
pub const FREE_FAILURES: u32 = 5;

/// The longest wait between attempts for one name, in seconds.
pub const MAX_WAIT_SECS: u64 = 900;

/// Names tracked at most; past that the one with the oldest failure is forgotten.
const MAX_NAMES: usize = 10_000;

/// Why a login is not tried now.
#[derive(Debug, PartialEq, Eq)]
pub enum Throttled {
    /// Too many logins are being checked at once.
    Busy,
    /// This name had too many wrong passwords: try again in this many seconds.
    Wait(u64),
}

/// Failures of one name.
#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: u64,
}

/// The login limits of a node.
pub struct LoginThrottle {
    unseals: Arc<Semaphore>,
    failures: Mutex<HashMap<String, Failures>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            unseals: Arc::new(Semaphore::new(MAX_UNSEALS)),
            failures: Mutex::new(HashMap::new()),
        }
    }
}

/// Seconds a name with `count` failures, the last at `last`, must still wait at `now`.
fn wait_left(failures: Failures, now: u64) -> u64 {
    if failures.count < FREE_FAILURES {
        return 0;
    }
    let wait = 1u64
        .checked_shl(failures.count - FREE_FAILURES)
        .unwrap_or(u64::MAX)
        .min(MAX_WAIT_SECS);
    (failures.last.saturating_add(wait)).saturating_sub(now)
}

impl LoginThrottle {
    /// Whether `name` may try a password now; the permit holds one unseal slot while the
    /// password is checked.
    pub fn admit(&self, name: &str, now: u64) -> Result<OwnedSemaphorePermit, Throttled> {
        if let Some(failures) = lock(&self.failures).get(name).copied() {
            let wait = wait_left(failures, now);
            if wait > 0 {
                return Err(Throttled::Wait(wait));
            }
        }
        Arc::clone(&self.unseals)
            .try_acquire_owned()
            .map_err(|_| Throttled::Busy)
    }

    /// Records how a password check for `name` went.
    pub fn record(&self, name: &str, right: bool, now: u64) {
        let mut failures = lock(&self.failures);
        if right {
            failures.remove(name);
            return;
        }
        if failures.len() >= MAX_NAMES && !failures.contains_key(name) {
            if let Some(oldest) = failures
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(n, _)| n.clone())
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(name.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_passwords_past_the_free_ones_wait_longer_and_longer() {
        let throttle = LoginThrottle::default();
        for _ in 0..FREE_FAILURES {
            drop(throttle.admit("maria", 100).expect("free attempts"));
            throttle.record("maria", false, 100);
        }
        assert_eq!(throttle.admit("maria", 100).err(), Some(Throttled::Wait(1)));
        drop(throttle.admit("maria", 101).expect("after the wait"));
        throttle.record("maria", false, 101);
        assert_eq!(throttle.admit("maria", 101).err(), Some(Throttled::Wait(2)));
        // Another name is not held back, and the right password clears the count.
        drop(throttle.admit("juan", 101).expect("another name"));
        throttle.record("maria", true, 103);
        drop(throttle.admit("maria", 103).expect("cleared"));
    }

    #[test]
    fn the_wait_is_capped_and_never_overflows() {
        let many = Failures {
            count: u32::MAX,
            last: 1_000,
        };
        assert_eq!(wait_left(many, 1_000), MAX_WAIT_SECS);
        assert_eq!(wait_left(many, 1_000 + MAX_WAIT_SECS), 0);
    }

    #[test]
    fn only_so_many_unseals_run_at_once() {
        let throttle = LoginThrottle::default();
        let held: Vec<_> = (0..MAX_UNSEALS)
            .map(|i| throttle.admit(&format!("user{i}"), 0).expect("a slot"))
            .collect();
        assert_eq!(throttle.admit("one more", 0).err(), Some(Throttled::Busy));
        drop(held);
        assert!(throttle.admit("one more", 0).is_ok());
    }
}
