//! Prometheus metrics, served as text on their own HTTP port.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters and gauges of one server.
#[derive(Default)]
pub struct Metrics {
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub sessions: AtomicU64,
    pub subscriptions: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub notifications: AtomicU64,
    pub disconnects_for_cost: AtomicU64,
    pub index_height: AtomicU64,
    pub index_bytes: AtomicU64,
    pub mempool_txs: AtomicU64,
    requests: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl Metrics {
    /// Counts a request of `method`, and whether it failed.
    pub fn request(&self, method: &str, failed: bool) {
        let mut map = self.requests.lock().expect("metrics lock");
        // Unknown method names are not echoed into labels (they are client-controlled).
        let key = if method.len() <= 40
            && method
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
        {
            method.to_owned()
        } else {
            "other".to_owned()
        };
        if map.len() > 64 && !map.contains_key(&key) {
            return;
        }
        let entry = map.entry(key).or_default();
        entry.0 += 1;
        if failed {
            entry.1 += 1;
        }
    }

    /// The Prometheus exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        gauge(
            &mut out,
            "electrum_connections_total",
            "Connections accepted.",
            "counter",
            &self.connections_total,
        );
        gauge(
            &mut out,
            "electrum_connections_refused_total",
            "Connections refused by limits.",
            "counter",
            &self.connections_refused,
        );
        gauge(
            &mut out,
            "electrum_sessions",
            "Open sessions.",
            "gauge",
            &self.sessions,
        );
        gauge(
            &mut out,
            "electrum_subscriptions",
            "Script-hash subscriptions held.",
            "gauge",
            &self.subscriptions,
        );
        gauge(
            &mut out,
            "electrum_received_bytes_total",
            "Request bytes received.",
            "counter",
            &self.bytes_received,
        );
        gauge(
            &mut out,
            "electrum_sent_bytes_total",
            "Reply and notification bytes sent.",
            "counter",
            &self.bytes_sent,
        );
        gauge(
            &mut out,
            "electrum_notifications_total",
            "Notifications sent.",
            "counter",
            &self.notifications,
        );
        gauge(
            &mut out,
            "electrum_cost_disconnects_total",
            "Sessions closed at the hard cost limit.",
            "counter",
            &self.disconnects_for_cost,
        );
        gauge(
            &mut out,
            "electrum_index_height",
            "Height of the indexed tip.",
            "gauge",
            &self.index_height,
        );
        gauge(
            &mut out,
            "electrum_index_bytes",
            "Bytes of the index on disk.",
            "gauge",
            &self.index_bytes,
        );
        gauge(
            &mut out,
            "electrum_mempool_transactions",
            "Transactions in the mempool view.",
            "gauge",
            &self.mempool_txs,
        );
        let _ = writeln!(out, "# HELP electrum_requests_total Requests by method.\n# TYPE electrum_requests_total counter");
        let requests = self.requests.lock().expect("metrics lock");
        for (method, (count, _)) in requests.iter() {
            let _ = writeln!(
                out,
                "electrum_requests_total{{method=\"{method}\"}} {count}"
            );
        }
        let _ = writeln!(out, "# HELP electrum_request_errors_total Failed requests by method.\n# TYPE electrum_request_errors_total counter");
        for (method, (_, failed)) in requests.iter() {
            let _ = writeln!(
                out,
                "electrum_request_errors_total{{method=\"{method}\"}} {failed}"
            );
        }
        out
    }
}
