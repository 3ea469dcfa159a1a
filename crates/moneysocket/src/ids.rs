//! UUID parsing with the references' rules.
//!
//! py-moneysocket validates with Python's `uuid.UUID(text)`, which accepts the hyphenated,
//! plain-hex, braced and `urn:uuid:` forms; [`Uuid::try_parse`] accepts the same four. v0 takes
//! any version; v1 insists on version 4 of the RFC 4122 variant (what `uuid.UUID(..).version`
//! reports as 4). UUIDs are always written back hyphenated and lower case.

use uuid::{Uuid, Variant};

use crate::error::UuidError;

/// A fresh random (version 4) UUID for a request or notification we send.
pub(crate) fn random_v4() -> Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// Parses a UUID of any version (v0).
pub(crate) fn parse_any(s: &str) -> Result<Uuid, UuidError> {
    Uuid::try_parse(s).map_err(|_| UuidError::Invalid)
}

/// Parses a version-4 UUID (v1).
pub(crate) fn parse_v4(s: &str) -> Result<Uuid, UuidError> {
    let uuid = parse_any(s)?;
    if is_v4(&uuid) {
        Ok(uuid)
    } else {
        Err(UuidError::NotVersion4)
    }
}

/// True for an RFC 4122 version-4 UUID.
pub(crate) fn is_v4(uuid: &Uuid) -> bool {
    uuid.get_variant() == Variant::RFC4122 && uuid.get_version_num() == 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_uuids_are_version_4() {
        let (a, b) = (random_v4(), random_v4());
        assert!(is_v4(&a) && is_v4(&b));
        assert_ne!(a, b);
    }

    #[test]
    fn follows_python_uuid_rules() {
        let v4 = "a5b32936-3143-4856-bdea-7b3dda7aa5e8";
        assert!(parse_v4(v4).is_ok());
        assert!(parse_v4("A5B329363143-4856-BDEA-7B3DDA7AA5E8").is_err());
        assert!(parse_v4("a5b3293631434856bdea7b3dda7aa5e8").is_ok());
        assert!(parse_v4("{a5b32936-3143-4856-bdea-7b3dda7aa5e8}").is_ok());
        assert_eq!(
            parse_v4("b032ee60-c23c-11eb-a86b-08606ee5ade6"),
            Err(UuidError::NotVersion4)
        );
        assert!(parse_any("b032ee60-c23c-11eb-a86b-08606ee5ade6").is_ok());
        assert_eq!(parse_any("asdfasdfa"), Err(UuidError::Invalid));
        // Version nibble 4 but not the RFC 4122 variant.
        assert_eq!(
            parse_v4("a5b32936-3143-4856-7dea-7b3dda7aa5e8"),
            Err(UuidError::NotVersion4)
        );
    }
}
