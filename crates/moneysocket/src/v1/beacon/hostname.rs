//! Host names allowed in v1 WebSocket locations.

use std::fmt;
use std::str::FromStr;

/// Longest host name, without a trailing dot (RFC 1035 §2.3.4).
pub const MAX_HOSTNAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// An RFC 1123 host name, checked as py-moneysocket `location/websocket.py` checks it:
/// dot-separated labels of 1–63 letters, digits and hyphens, not starting or ending with a
/// hyphen, at most 253 characters (one trailing dot allowed), and a last label that is not all
/// digits. That last rule excludes IPv4 literals; the reference has it, so beacons we make
/// must not contain them either.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hostname(String);

/// The text is not an acceptable host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hostname {0:?}")]
pub struct InvalidHostname(pub String);

impl Hostname {
    /// The host name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Hostname {
    type Err = InvalidHostname;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if is_valid(s) {
            Ok(Hostname(s.to_owned()))
        } else {
            Err(InvalidHostname(s.to_owned()))
        }
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_valid(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > MAX_HOSTNAME_LEN {
        return false;
    }
    let valid_label = |label: &str| {
        (1..=MAX_LABEL_LEN).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let all_digits = s
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()));
    !all_digits && s.split('.').all(valid_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_reference_rules() {
        for ok in [
            "relay.socket.money",
            "localhost",
            "Relay.Example.",
            "a-b.c1",
            "x.y2k",
        ] {
            assert!(ok.parse::<Hostname>().is_ok(), "{ok}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let too_long = format!("{}.com", ["a"; 126].join("."));
        for bad in [
            "",
            ".",
            "-a.com",
            "a-.com",
            "a..b",
            "127.0.0.1",
            "a_b.com",
            "a b",
            &long_label,
            &too_long,
            "\0\0",
        ] {
            assert!(bad.parse::<Hostname>().is_err(), "{bad:?}");
        }
    }
}
