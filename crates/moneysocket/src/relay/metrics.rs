//! Counters an operator reads to see what the relay is doing and why it turns peers away.
//!
//! Relaxed atomics: each counter is independent and a snapshot only needs to be roughly
//! simultaneous, so no ordering between counters is promised.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the relay's counters. Totals only grow; `*_open`/`*_active` are gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayMetrics {
    /// TCP connections accepted (admitted or not).
    pub connections_total: u64,
    /// Connections admitted and not yet finished (handshake included).
    pub connections_open: u64,
    /// Pairs formed.
    pub pairs_total: u64,
    /// Pairs currently forwarding.
    pub pairs_active: u64,
    /// Frames forwarded verbatim from one side of a pair to the other.
    pub frames_forwarded: u64,
    /// Payload bytes in those frames.
    pub bytes_forwarded: u64,
    /// Text frames dropped (v0 carries messages in binary frames only, as the references do).
    pub text_frames_dropped: u64,
    /// Frames other than `REQUEST_RENDEZVOUS` received before pairing and dropped, as the
    /// reference relay does (most are ciphertext the relay cannot read).
    pub unpaired_frames_dropped: u64,
    /// Connections refused or cut, by reason.
    pub rejected: Rejections,
}

/// Refused or cut connections, one counter per reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejections {
    /// Refused at accept: the source address already has the maximum open.
    pub per_ip_limit: u64,
    /// Refused at accept: the relay already has the maximum open.
    pub connection_limit: u64,
    /// TLS or WebSocket handshake failed or timed out.
    pub handshake: u64,
    /// A frame exceeded the maximum size.
    pub oversize: u64,
    /// The connection sent faster than its rate limit.
    pub rate_limited: u64,
    /// The connection was not paired in time.
    pub unpaired_timeout: u64,
    /// A third connection asked for an id already paired.
    pub rendezvous_full: u64,
    /// A frame was malformed (not a valid clear message, nor shaped like ciphertext), or a
    /// connection asked to rendezvous twice.
    pub malformed: u64,
    /// The peer did not answer a WebSocket ping in time (a half-open connection).
    pub unresponsive: u64,
}

#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_open: AtomicU64,
    pub(crate) pairs_total: AtomicU64,
    pub(crate) pairs_active: AtomicU64,
    pub(crate) frames_forwarded: AtomicU64,
    pub(crate) bytes_forwarded: AtomicU64,
    pub(crate) text_frames_dropped: AtomicU64,
    pub(crate) unpaired_frames_dropped: AtomicU64,
    pub(crate) per_ip_limit: AtomicU64,
    pub(crate) connection_limit: AtomicU64,
    pub(crate) handshake: AtomicU64,
    pub(crate) oversize: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) unpaired_timeout: AtomicU64,
    pub(crate) rendezvous_full: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) unresponsive: AtomicU64,
}

/// Adds one.
pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Subtracts one from a gauge.
pub(crate) fn dec(counter: &AtomicU64) {
    counter.fetch_sub(1, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn forwarded(&self, bytes: usize) {
        inc(&self.frames_forwarded);
        self.bytes_forwarded
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RelayMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RelayMetrics {
            connections_total: get(&self.connections_total),
            connections_open: get(&self.connections_open),
            pairs_total: get(&self.pairs_total),
            pairs_active: get(&self.pairs_active),
            frames_forwarded: get(&self.frames_forwarded),
            bytes_forwarded: get(&self.bytes_forwarded),
            text_frames_dropped: get(&self.text_frames_dropped),
            unpaired_frames_dropped: get(&self.unpaired_frames_dropped),
            rejected: Rejections {
                per_ip_limit: get(&self.per_ip_limit),
                connection_limit: get(&self.connection_limit),
                handshake: get(&self.handshake),
                oversize: get(&self.oversize),
                rate_limited: get(&self.rate_limited),
                unpaired_timeout: get(&self.unpaired_timeout),
                rendezvous_full: get(&self.rendezvous_full),
                malformed: get(&self.malformed),
                unresponsive: get(&self.unresponsive),
            },
        }
    }
}
