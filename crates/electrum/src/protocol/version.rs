//! Protocol versions and their negotiation (`server.version`).

use std::fmt;

/// A protocol version `major.minor[.revision]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion(pub u16, pub u16, pub u16);

impl ProtocolVersion {
    pub const V1_4: ProtocolVersion = ProtocolVersion(1, 4, 0);
    pub const V1_4_1: ProtocolVersion = ProtocolVersion(1, 4, 1);
    pub const V1_4_2: ProtocolVersion = ProtocolVersion(1, 4, 2);
    pub const V1_6: ProtocolVersion = ProtocolVersion(1, 6, 0);
    /// Every version this server speaks, lowest first (1.5 does not exist).
    pub const SUPPORTED: [ProtocolVersion; 4] =
        [Self::V1_4, Self::V1_4_1, Self::V1_4_2, Self::V1_6];
    pub const MIN: ProtocolVersion = Self::V1_4;
    pub const MAX: ProtocolVersion = Self::V1_6;

    /// Parses "1.4", "1.4.2" and the like.
    pub fn parse(s: &str) -> Option<ProtocolVersion> {
        let mut parts = s.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let revision = match parts.next() {
            Some(r) => r.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(ProtocolVersion(major, minor, revision))
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.2 == 0 {
            write!(f, "{}.{}", self.0, self.1)
        } else {
            write!(f, "{}.{}.{}", self.0, self.1, self.2)
        }
    }
}

/// Why no version could be agreed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("invalid protocol version: {0}")]
    Malformed(String),
    #[error("unsupported protocol version: {0}")]
    Unsupported(String),
}

/// Picks the highest version both sides speak, from the client's `protocol_version` argument:
/// a version string, or `[min, max]`.
pub fn negotiate(
    requested: Option<&serde_json::Value>,
) -> Result<ProtocolVersion, NegotiationError> {
    use serde_json::Value;
    let parse = |v: &Value| -> Result<ProtocolVersion, NegotiationError> {
        let s = v
            .as_str()
            .ok_or_else(|| NegotiationError::Malformed(v.to_string()))?;
        ProtocolVersion::parse(s).ok_or_else(|| NegotiationError::Malformed(s.to_owned()))
    };
    let (client_min, client_max) = match requested {
        None | Some(Value::Null) => (ProtocolVersion::V1_4, ProtocolVersion::V1_4),
        Some(Value::Array(range)) if range.len() == 2 => (parse(&range[0])?, parse(&range[1])?),
        Some(v @ Value::String(_)) => {
            let v = parse(v)?;
            (v, v)
        }
        Some(other) => return Err(NegotiationError::Malformed(other.to_string())),
    };
    let ceiling = client_max.min(ProtocolVersion::MAX);
    ProtocolVersion::SUPPORTED
        .iter()
        .rev()
        .find(|v| **v <= ceiling && **v >= client_min)
        .copied()
        .ok_or_else(|| NegotiationError::Unsupported(format!("{client_min}..{client_max}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(negotiate(None), Ok(ProtocolVersion::V1_4));
        assert_eq!(negotiate(Some(&json!("1.4"))), Ok(ProtocolVersion::V1_4));
        assert_eq!(
            negotiate(Some(&json!(["1.4", "1.6"]))),
            Ok(ProtocolVersion::V1_6)
        );
        assert_eq!(
            negotiate(Some(&json!(["1.4", "1.5"]))),
            Ok(ProtocolVersion::V1_4_2)
        );
        assert_eq!(
            negotiate(Some(&json!(["1.4", "2.0"]))),
            Ok(ProtocolVersion::V1_6)
        );
        assert_eq!(
            negotiate(Some(&json!("1.4.2"))),
            Ok(ProtocolVersion::V1_4_2)
        );
        assert!(matches!(
            negotiate(Some(&json!("1.2"))),
            Err(NegotiationError::Unsupported(_))
        ));
        assert!(matches!(
            negotiate(Some(&json!(["1.7", "1.8"]))),
            Err(NegotiationError::Unsupported(_))
        ));
        assert!(matches!(
            negotiate(Some(&json!("x"))),
            Err(NegotiationError::Malformed(_))
        ));
        assert!(matches!(
            negotiate(Some(&json!(7))),
            Err(NegotiationError::Malformed(_))
        ));
        assert_eq!(ProtocolVersion::V1_4_2.to_string(), "1.4.2");
    }
}
