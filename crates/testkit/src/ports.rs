//! Loopback ports for servers that must keep their port across a restart.
//!
//! A server that can bind port 0 should: nothing can take its port. One that is stopped and
//! started again on the same port (a node whose address its peers or apps already hold) needs
//! a port chosen ahead, and the usual trick — bind port 0, note the port, release it — picks
//! from the kernel's ephemeral range, where every other test's port-0 listener and every
//! outgoing connection also draw their ports. With several test binaries running side by side
//! (`make test` runs three), such a port is sometimes taken before the server binds it, or
//! between its stop and its restart. So these ports come from below the ephemeral range, where
//! the kernel never hands out a port by itself: only another caller of [`free_port`] could pick
//! the same one, at random among some twenty thousand, and only if it is free at that moment.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, TcpListener};
use std::ops::Range;

/// Ports are drawn from here up to the ephemeral range's start.
const LOWEST: u16 = 10_000;

/// Where the kernel draws ephemeral ports from (`ip_local_port_range`), Linux's default if it
/// cannot be read.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// The range the ports are drawn from: below the ephemeral range, or (if the machine's
/// ephemeral range starts too low to leave room) the ports above it.
fn candidates() -> Range<u16> {
    let start = ephemeral_start();
    if start > LOWEST + 1_000 {
        LOWEST..start
    } else {
        61_000..65_535
    }
}

/// A random number from the standard library's per-process random keys (no `rand` needed).
fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// A loopback TCP port that is free now and outside the kernel's ephemeral range.
///
/// # Panics
/// When a thousand random candidates are all taken: the machine is out of ports.
#[must_use]
pub fn free_port() -> u16 {
    let range = candidates();
    let span = u64::from(range.end - range.start);
    for _ in 0..1_000 {
        let port = range.start + u16::try_from(random() % span).unwrap_or(0);
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {range:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_and_outside_the_ephemeral_range() {
        let ephemeral = ephemeral_start()..61_000;
        for _ in 0..50 {
            let port = free_port();
            assert!(!ephemeral.contains(&port), "{port} is ephemeral");
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("still free");
        }
    }

    #[test]
    fn ports_differ() {
        let ports: std::collections::HashSet<u16> = (0..20).map(|_| free_port()).collect();
        assert!(ports.len() > 15, "{ports:?}");
    }
}
