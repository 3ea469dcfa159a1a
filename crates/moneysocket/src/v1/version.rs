//! The `major.minor.patch` protocol version carried by v1 beacons and messages.

use std::fmt;

/// A protocol version; each part is one byte on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// Incompatible changes.
    pub major: u8,
    /// Compatible additions.
    pub minor: u8,
    /// Fixes.
    pub patch: u8,
}

impl Version {
    /// Builds a version.
    pub const fn new(major: u8, minor: u8, patch: u8) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// The three wire bytes.
    pub const fn to_bytes(self) -> [u8; 3] {
        [self.major, self.minor, self.patch]
    }

    /// Reads exactly three bytes; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match *bytes {
            [major, minor, patch] => Some(Version {
                major,
                minor,
                patch,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}
