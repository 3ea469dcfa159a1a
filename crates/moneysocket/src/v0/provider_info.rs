//! v0 provider info: the body of `NOTIFY_PROVIDER`.
//!
//! `account_uuid` names the provider's account, `payer` says it will pay invoices, `payee`
//! that it will make them, and `wad` (or `null`) advertises the spendable balance
//! (py-moneysocket `message/notification/provider.py`).

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::UuidError;
use crate::ids;
use crate::v0::wad::{Wad, WadError};

/// What a provider tells its consumer about the account behind a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderInfo {
    /// The provider's account.
    pub account_uuid: Uuid,
    /// The provider will pay invoices the consumer sends.
    pub payer: bool,
    /// The provider will generate invoices for the consumer.
    pub payee: bool,
    /// The spendable balance, if the provider discloses it.
    pub wad: Option<Wad>,
}

/// A provider-info field, for error reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderInfoField {
    /// `account_uuid`
    AccountUuid,
    /// `payer`
    Payer,
    /// `payee`
    Payee,
    /// `wad`
    Wad,
}

/// A v0 provider info could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderInfoError {
    /// A required field is absent.
    #[error("provider info field {0:?} is missing")]
    Missing(ProviderInfoField),
    /// A field has the wrong JSON type.
    #[error("provider info field {0:?} has the wrong type")]
    WrongType(ProviderInfoField),
    /// `account_uuid` is not a UUID.
    #[error("invalid account_uuid: {0}")]
    AccountUuid(UuidError),
    /// The wad is invalid.
    #[error("invalid wad: {0}")]
    Wad(WadError),
}

impl ProviderInfo {
    /// Reads the fields from a message object, in the order py-moneysocket checks them.
    ///
    /// # Errors
    ///
    /// The first rule the object breaks.
    pub fn from_json_map(map: &Map<String, Value>) -> Result<Self, ProviderInfoError> {
        use ProviderInfoField as F;
        let account_uuid = match map.get("account_uuid") {
            None => return Err(ProviderInfoError::Missing(F::AccountUuid)),
            Some(Value::String(s)) => ids::parse_any(s).map_err(ProviderInfoError::AccountUuid)?,
            Some(_) => return Err(ProviderInfoError::WrongType(F::AccountUuid)),
        };
        let flag = |key: &str, field: F| match map.get(key) {
            None => Err(ProviderInfoError::Missing(field)),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ProviderInfoError::WrongType(field)),
        };
        let payee = flag("payee", F::Payee)?;
        let payer = flag("payer", F::Payer)?;
        let wad = match map.get("wad") {
            None => return Err(ProviderInfoError::Missing(F::Wad)),
            Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => {
                Some(Wad::from_json_value(v).map_err(ProviderInfoError::Wad)?)
            }
            Some(_) => return Err(ProviderInfoError::WrongType(F::Wad)),
        };
        Ok(ProviderInfo {
            account_uuid,
            payer,
            payee,
            wad,
        })
    }

    /// Writes the fields into a message object.
    pub fn write_json_map(&self, map: &mut Map<String, Value>) {
        map.insert(
            "account_uuid".into(),
            Value::String(self.account_uuid.hyphenated().to_string()),
        );
        map.insert("payer".into(), Value::Bool(self.payer));
        map.insert("payee".into(), Value::Bool(self.payee));
        map.insert(
            "wad".into(),
            self.wad.as_ref().map_or(Value::Null, Wad::to_json_value),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_validates() {
        let info = ProviderInfo {
            account_uuid: Uuid::from_u128(0x0123_4567_89ab_4def_8123_4567_89ab_cdef),
            payer: true,
            payee: false,
            wad: Some(Wad::bitcoin(5)),
        };
        let mut map = Map::new();
        info.write_json_map(&mut map);
        assert_eq!(ProviderInfo::from_json_map(&map), Ok(info));

        let mut bad = map.clone();
        bad.remove("payee");
        assert_eq!(
            ProviderInfo::from_json_map(&bad),
            Err(ProviderInfoError::Missing(ProviderInfoField::Payee))
        );
        let mut bad = map.clone();
        bad.insert("wad".into(), json!("lots"));
        assert_eq!(
            ProviderInfo::from_json_map(&bad),
            Err(ProviderInfoError::WrongType(ProviderInfoField::Wad))
        );
        let mut bad = map;
        bad.insert("account_uuid".into(), json!("nope"));
        assert_eq!(
            ProviderInfo::from_json_map(&bad),
            Err(ProviderInfoError::AccountUuid(UuidError::Invalid))
        );
    }
}
