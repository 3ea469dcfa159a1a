//! Message timestamps: seconds since the Unix epoch, integer or fractional.
//!
//! The references write `time.time()` (a float) but accept integers, and the v1 vectors use
//! the integer `1234`. The JSON number is kept as received, so re-encoding a decoded message
//! reproduces `1234` rather than `1234.0`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Number;

/// A non-negative, finite number of seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Timestamp(Number);

impl Timestamp {
    /// A whole number of seconds.
    pub fn from_unix_secs(secs: u64) -> Self {
        Timestamp(Number::from(secs))
    }

    /// Fractional seconds; `None` if negative or not finite.
    pub fn from_unix_secs_f64(secs: f64) -> Option<Self> {
        if secs >= 0.0 {
            Number::from_f64(secs).map(Timestamp)
        } else {
            None
        }
    }

    /// Accepts a JSON number if it is non-negative; `None` otherwise.
    pub fn from_number(n: Number) -> Option<Self> {
        match n.as_f64() {
            Some(f) if f >= 0.0 => Some(Timestamp(n)),
            _ => None,
        }
    }

    /// The given time (as `time.time()` would report it); `None` before 1970.
    pub fn from_system_time(t: SystemTime) -> Option<Self> {
        t.duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| Self::from_unix_secs_f64(d.as_secs_f64()))
    }

    /// The current time, as a sender stamps a new message; the epoch if the clock reads
    /// before 1970 (a message is still valid, only oddly dated).
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now()).unwrap_or_else(|| Self::from_unix_secs(0))
    }

    /// The JSON number, as written on the wire.
    pub fn as_number(&self) -> &Number {
        &self.0
    }

    /// Seconds as a float.
    pub fn as_secs_f64(&self) -> f64 {
        self.0.as_f64().unwrap_or(0.0)
    }
}
