//! The relay's admission and rate limits, none of which the reference relay has (shortcoming
//! list, digest §6): connection counts per source address and in total, and a token bucket
//! per connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A per-connection message rate: a bucket of `burst` tokens refilled at `per_second`.
///
/// Moneysocket traffic is a handful of messages per payment plus a ping every few seconds
/// (js-moneysocket pings every 3 s), so a legitimate peer never comes near the default; a
/// flood is cut before it can keep the partner's writer and the relay's CPU busy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained messages per second.
    pub per_second: f64,
    /// Messages allowed in a burst above the sustained rate.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 20.0,
            burst: 100,
        }
    }
}

/// A token bucket; pure, the caller supplies the clock.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        let capacity = f64::from(limit.burst.max(1));
        TokenBucket {
            rate: limit.per_second.max(0.0),
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why a new connection was turned away before its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    PerIp,
    Total,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Counts open connections; each admitted one holds an [`Admission`] that gives its place
/// back when dropped, however the connection ends.
#[derive(Clone)]
pub(crate) struct Admissions {
    max_total: usize,
    max_per_ip: usize,
    counts: Arc<Mutex<Counts>>,
}

impl Admissions {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Self {
        Admissions {
            max_total,
            max_per_ip,
            counts: Arc::new(Mutex::new(Counts::default())),
        }
    }

    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Admission, Refusal> {
        let mut counts = self.counts.lock().expect("admissions lock poisoned");
        if counts.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let here = counts.per_ip.entry(ip).or_insert(0);
        if *here >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *here += 1;
        counts.total += 1;
        Ok(Admission {
            ip,
            counts: Arc::clone(&self.counts),
        })
    }
}

/// One admitted connection's place.
pub(crate) struct Admission {
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        // A poisoned lock means a panic elsewhere already; leaking one count is the lesser harm.
        if let Ok(mut counts) = self.counts.lock() {
            counts.total = counts.total.saturating_sub(1);
            if let Some(n) = counts.per_ip.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.per_ip.remove(&self.ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(
            RateLimit {
                per_second: 2.0,
                burst: 3,
            },
            t0,
        );
        assert!((0..3).all(|_| bucket.take(t0)));
        assert!(!bucket.take(t0));
        assert!(bucket.take(t0 + Duration::from_millis(500)));
        assert!(!bucket.take(t0 + Duration::from_millis(500)));
        // Refill stops at the burst size.
        let later = t0 + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| bucket.take(later)).count(), 3);
    }

    #[test]
    fn admissions_count_per_ip_and_total() {
        let admissions = Admissions::new(3, 2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let a1 = admissions.admit(a).expect("first");
        let _a2 = admissions.admit(a).expect("second");
        assert_eq!(admissions.admit(a).err(), Some(Refusal::PerIp));
        let _b1 = admissions.admit(b).expect("other ip");
        assert_eq!(admissions.admit(b).err(), Some(Refusal::Total));
        drop(a1);
        assert!(admissions.admit(a).is_ok());
    }
}
