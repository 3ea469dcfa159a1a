//! v1 provider info (RFC `03-provider-info.md`, py-moneysocket
//! `moneysocket1/provider_info/provider_info.py`).
//!
//! ```json
//! {"account_uuid": "a5b32936-…", "wad": {…}, "payer": true, "payee": false,
//!  "public_keys": {"<hex>": {"curve": "secp256k1", "features": ["SCHNORR_SIGN_ARMOR"],
//!                            "friendly_name": "UnicornPrincess"}},
//!  "features": [], "feature_data": {}}
//! ```
//!
//! Keys this implementation does not know — at the top level and inside a public key's
//! object — are kept and written back, as the reference does, so provider info passes through
//! unchanged. Public-key map keys are kept exactly as received (they must be non-empty,
//! even-length hex).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::encoding::hex;
use crate::error::{HexError, UuidError};
use crate::ids;
use crate::v1::features::{Features, FeaturesError};
use crate::v1::wad::{Wad, WadError};

/// Longest `friendly_name`, in characters.
pub const MAX_FRIENDLY_NAME_CHARS: usize = 64;

const KNOWN_KEYS: [&str; 7] = [
    "account_uuid",
    "wad",
    "payer",
    "payee",
    "public_keys",
    "features",
    "feature_data",
];
const KNOWN_KEY_INFO_KEYS: [&str; 3] = ["curve", "features", "friendly_name"];

/// What a provider tells its consumer about the account behind a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderInfo {
    account_uuid: Uuid,
    wad: Wad,
    payer: bool,
    payee: bool,
    public_keys: BTreeMap<String, PublicKeyInfo>,
    features: Features,
    extra: Map<String, Value>,
}

/// What a provider says about one of its public keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    curve: String,
    features: Vec<String>,
    friendly_name: Option<String>,
    extra: Map<String, Value>,
}

/// A provider-info field, for error reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderInfoField {
    /// `account_uuid`
    AccountUuid,
    /// `wad`
    Wad,
    /// `payee`
    Payee,
    /// `payer`
    Payer,
    /// `public_keys`
    PublicKeys,
    /// A value of `public_keys`.
    PublicKeyInfo,
    /// `public_keys.*.curve`
    Curve,
    /// `public_keys.*.friendly_name`
    FriendlyName,
    /// `public_keys.*.features`
    KeyFeatures,
    /// An entry of `public_keys.*.features`.
    KeyFeature,
}

/// A v1 provider info could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderInfoError {
    /// The provider info is not a JSON object.
    #[error("provider info is not an object")]
    NotObject,
    /// A required field is absent.
    #[error("provider info field {0:?} is missing")]
    Missing(ProviderInfoField),
    /// A field has the wrong JSON type.
    #[error("provider info field {0:?} has the wrong type")]
    WrongType(ProviderInfoField),
    /// A string field that must not be empty is.
    #[error("provider info field {0:?} is empty")]
    Empty(ProviderInfoField),
    /// `friendly_name` is longer than [`MAX_FRIENDLY_NAME_CHARS`].
    #[error("friendly_name string is longer than 64 chars")]
    FriendlyNameTooLong,
    /// `account_uuid` is not a version-4 UUID.
    #[error("invalid account_uuid: {0}")]
    AccountUuid(UuidError),
    /// The wad is invalid.
    #[error("invalid wad: {0}")]
    Wad(WadError),
    /// `features`/`feature_data` are invalid.
    #[error("invalid features: {0}")]
    Features(FeaturesError),
    /// A `public_keys` key is not hex.
    #[error("public key {key:?} not interpretable as bytes: {error}")]
    PublicKeyNotHex {
        /// The key as received.
        key: String,
        /// Why it is not hex.
        error: HexError,
    },
}

impl ProviderInfo {
    /// Provider info with no public keys and no features.
    ///
    /// # Errors
    ///
    /// [`ProviderInfoError::AccountUuid`] unless `account_uuid` is a version-4 UUID.
    pub fn new(
        account_uuid: Uuid,
        wad: Wad,
        payer: bool,
        payee: bool,
    ) -> Result<Self, ProviderInfoError> {
        if !ids::is_v4(&account_uuid) {
            return Err(ProviderInfoError::AccountUuid(UuidError::NotVersion4));
        }
        Ok(ProviderInfo {
            account_uuid,
            wad,
            payer,
            payee,
            public_keys: BTreeMap::new(),
            features: Features::none(),
            extra: Map::new(),
        })
    }

    /// Adds (or replaces) a public key, given as hex.
    ///
    /// # Errors
    ///
    /// [`ProviderInfoError::PublicKeyNotHex`] if `key_hex` is not non-empty, even-length hex.
    pub fn with_public_key(
        mut self,
        key_hex: &str,
        info: PublicKeyInfo,
    ) -> Result<Self, ProviderInfoError> {
        check_key_hex(key_hex)?;
        self.public_keys.insert(key_hex.to_owned(), info);
        Ok(self)
    }

    /// Sets the features.
    #[must_use]
    pub fn with_features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }

    /// The account.
    pub fn account_uuid(&self) -> Uuid {
        self.account_uuid
    }

    /// The balance.
    pub fn wad(&self) -> &Wad {
        &self.wad
    }

    /// The provider pays invoices.
    pub fn payer(&self) -> bool {
        self.payer
    }

    /// The provider makes invoices.
    pub fn payee(&self) -> bool {
        self.payee
    }

    /// Public keys by their hex text.
    pub fn public_keys(&self) -> &BTreeMap<String, PublicKeyInfo> {
        &self.public_keys
    }

    /// The features.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Top-level keys this implementation does not interpret.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }

    /// The provider info as a JSON object.
    pub fn to_json_value(&self) -> Value {
        let mut map = self.extra.clone();
        map.insert(
            "account_uuid".into(),
            Value::String(self.account_uuid.hyphenated().to_string()),
        );
        map.insert("wad".into(), self.wad.to_json_value());
        map.insert("payer".into(), Value::Bool(self.payer));
        map.insert("payee".into(), Value::Bool(self.payee));
        let keys = self
            .public_keys
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json_value()))
            .collect();
        map.insert("public_keys".into(), Value::Object(keys));
        map.insert("features".into(), self.features.names_json());
        map.insert("feature_data".into(), self.features.data_json());
        Value::Object(map)
    }

    /// Validates JSON provider info in the reference's order.
    ///
    /// # Errors
    ///
    /// The first rule the value breaks.
    pub fn from_json_value(value: &Value) -> Result<Self, ProviderInfoError> {
        use ProviderInfoError as E;
        use ProviderInfoField as F;
        let map = value.as_object().ok_or(E::NotObject)?;
        let account_uuid = match map.get("account_uuid") {
            None => return Err(E::Missing(F::AccountUuid)),
            Some(Value::String(s)) => ids::parse_v4(s).map_err(E::AccountUuid)?,
            Some(_) => return Err(E::WrongType(F::AccountUuid)),
        };
        let wad = match map.get("wad") {
            None => return Err(E::Missing(F::Wad)),
            Some(v @ Value::Object(_)) => Wad::from_json_value(v).map_err(E::Wad)?,
            Some(_) => return Err(E::WrongType(F::Wad)),
        };
        let flag = |key: &str, field: F| match map.get(key) {
            None => Err(E::Missing(field)),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(E::WrongType(field)),
        };
        let payee = flag("payee", F::Payee)?;
        let payer = flag("payer", F::Payer)?;
        let features = Features::from_json_map(map).map_err(E::Features)?;
        let public_keys = match map.get("public_keys") {
            None => return Err(E::Missing(F::PublicKeys)),
            Some(Value::Object(keys)) => keys
                .iter()
                .map(|(key, info)| {
                    check_key_hex(key)?;
                    Ok((key.clone(), PublicKeyInfo::from_json_value(info)?))
                })
                .collect::<Result<BTreeMap<_, _>, E>>()?,
            Some(_) => return Err(E::WrongType(F::PublicKeys)),
        };
        let extra = without_keys(map, &KNOWN_KEYS);
        Ok(ProviderInfo {
            account_uuid,
            wad,
            payer,
            payee,
            public_keys,
            features,
            extra,
        })
    }
}

impl PublicKeyInfo {
    /// Describes a key.
    ///
    /// # Errors
    ///
    /// [`ProviderInfoError::Empty`] for an empty curve, feature or friendly name, and
    /// [`ProviderInfoError::FriendlyNameTooLong`].
    pub fn new(
        curve: String,
        features: Vec<String>,
        friendly_name: Option<String>,
    ) -> Result<Self, ProviderInfoError> {
        use ProviderInfoError as E;
        use ProviderInfoField as F;
        if curve.is_empty() {
            return Err(E::Empty(F::Curve));
        }
        if let Some(name) = &friendly_name {
            check_friendly_name(name)?;
        }
        if features.iter().any(String::is_empty) {
            return Err(E::Empty(F::KeyFeature));
        }
        Ok(PublicKeyInfo {
            curve,
            features,
            friendly_name,
            extra: Map::new(),
        })
    }

    /// The curve, e.g. `secp256k1`.
    pub fn curve(&self) -> &str {
        &self.curve
    }

    /// What the key can be used for, e.g. `SCHNORR_SIGN_ARMOR`.
    pub fn features(&self) -> &[String] {
        &self.features
    }

    /// A name for people.
    pub fn friendly_name(&self) -> Option<&str> {
        self.friendly_name.as_deref()
    }

    /// Keys this implementation does not interpret.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }

    fn to_json_value(&self) -> Value {
        let mut map = self.extra.clone();
        map.insert("curve".into(), Value::String(self.curve.clone()));
        map.insert(
            "features".into(),
            Value::Array(self.features.iter().cloned().map(Value::String).collect()),
        );
        if let Some(name) = &self.friendly_name {
            map.insert("friendly_name".into(), Value::String(name.clone()));
        }
        Value::Object(map)
    }

    fn from_json_value(value: &Value) -> Result<Self, ProviderInfoError> {
        use ProviderInfoError as E;
        use ProviderInfoField as F;
        let map = value.as_object().ok_or(E::WrongType(F::PublicKeyInfo))?;
        let curve = match map.get("curve") {
            None => return Err(E::Missing(F::Curve)),
            Some(Value::String(s)) if s.is_empty() => return Err(E::Empty(F::Curve)),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(E::WrongType(F::Curve)),
        };
        let friendly_name = match map.get("friendly_name") {
            None => None,
            Some(Value::String(s)) => {
                check_friendly_name(s)?;
                Some(s.clone())
            }
            Some(_) => return Err(E::WrongType(F::FriendlyName)),
        };
        let features = match map.get("features") {
            None => return Err(E::Missing(F::KeyFeatures)),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) if s.is_empty() => Err(E::Empty(F::KeyFeature)),
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(E::WrongType(F::KeyFeature)),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(E::WrongType(F::KeyFeatures)),
        };
        let extra = without_keys(map, &KNOWN_KEY_INFO_KEYS);
        Ok(PublicKeyInfo {
            curve,
            features,
            friendly_name,
            extra,
        })
    }
}

fn check_friendly_name(name: &str) -> Result<(), ProviderInfoError> {
    if name.is_empty() {
        return Err(ProviderInfoError::Empty(ProviderInfoField::FriendlyName));
    }
    if name.chars().count() > MAX_FRIENDLY_NAME_CHARS {
        return Err(ProviderInfoError::FriendlyNameTooLong);
    }
    Ok(())
}

/// Public keys must decode as bytes; an empty key names nothing, so it is refused too.
fn check_key_hex(key: &str) -> Result<(), ProviderInfoError> {
    let error = match hex::decode_vec(key) {
        Ok(bytes) if !bytes.is_empty() => return Ok(()),
        Ok(_) => HexError::InvalidLength {
            expected: 2,
            found: 0,
        },
        Err(e) => e,
    };
    Err(ProviderInfoError::PublicKeyNotHex {
        key: key.to_owned(),
        error,
    })
}

fn without_keys(map: &Map<String, Value>, known: &[&str]) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Serialize for ProviderInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ProviderInfo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        ProviderInfo::from_json_value(&value).map_err(serde::de::Error::custom)
    }
}
