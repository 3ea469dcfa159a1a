//! The v0 wad: an amount of bitcoin plus the asset it is denominated in.
//!
//! A JSON object with exactly nine keys (py-moneysocket `wad/wad.py`, js `wad/wad.js`):
//!
//! ```json
//! {"msats": 1000, "asset_stable": false, "asset_units": 1000, "code": "BTC",
//!  "countries": "All", "decimals": 0, "iso_num": null, "name": "Bitcoin", "symbol": "₿"}
//! ```
//!
//! For a bitcoin wad the references put the msat amount (not BTC) in `asset_units`; that is
//! what peers send, so [`Wad::bitcoin`] does the same. String limits count Unicode code points,
//! as Python's `len` does. `countries` is capped at 200 (py; js allows 1000) — the stricter of
//! the two, so anything we emit is accepted by both.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

use crate::encoding::json::is_integer;

const MAX_CODE_CHARS: usize = 20;
const MAX_COUNTRIES_CHARS: usize = 200;
const MAX_DECIMALS: u64 = 10;
const MAX_NAME_CHARS: usize = 50;
const MAX_SYMBOL_CHARS: usize = 5;

const KEYS: [&str; 9] = [
    "msats",
    "asset_stable",
    "asset_units",
    "code",
    "countries",
    "decimals",
    "iso_num",
    "name",
    "symbol",
];

/// A validated v0 wad. Build one with [`Wad::bitcoin`] or [`Wad::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct Wad {
    msats: u64,
    asset_stable: bool,
    asset_units: Number,
    code: String,
    countries: Option<String>,
    decimals: Option<u8>,
    iso_num: Option<u16>,
    name: Option<String>,
    symbol: Option<String>,
}

/// The fields of a wad before validation; see [`Wad::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct WadFields {
    /// The bitcoin amount in millisatoshis.
    pub msats: u64,
    /// True if the value is pegged to another asset (a "stable" balance).
    pub asset_stable: bool,
    /// The amount in the asset's units; non-negative.
    pub asset_units: Number,
    /// Asset code, at most 20 characters.
    pub code: String,
    /// Where the asset is used, at most 200 characters.
    pub countries: Option<String>,
    /// Decimal places to display, 0 to 10.
    pub decimals: Option<u8>,
    /// ISO 4217 number.
    pub iso_num: Option<u16>,
    /// Asset name, at most 50 characters.
    pub name: Option<String>,
    /// Asset symbol, at most 5 characters.
    pub symbol: Option<String>,
}

/// A wad field, for error reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WadField {
    /// `msats`
    Msats,
    /// `asset_stable`
    AssetStable,
    /// `asset_units`
    AssetUnits,
    /// `code`
    Code,
    /// `countries`
    Countries,
    /// `decimals`
    Decimals,
    /// `iso_num`
    IsoNum,
    /// `name`
    Name,
    /// `symbol`
    Symbol,
}

/// A v0 wad could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WadError {
    /// The wad is not a JSON object.
    #[error("wad is not an object")]
    NotObject,
    /// The object's keys are not exactly the nine wad keys.
    #[error("key set not consistent with wad dictionary")]
    KeySet,
    /// A field has the wrong JSON type (`msats` and `decimals` must be integers).
    #[error("wad field {0:?} has the wrong type")]
    WrongType(WadField),
    /// A numeric field is negative.
    #[error("wad field {0:?} is negative")]
    Negative(WadField),
    /// A numeric field exceeds its maximum.
    #[error("wad field {0:?} is too large")]
    TooLarge(WadField),
    /// A string field exceeds its maximum length.
    #[error("wad field {0:?} is too long")]
    TooLong(WadField),
}

impl Wad {
    /// A bitcoin-denominated wad, exactly as the references build it.
    pub fn bitcoin(msats: u64) -> Self {
        Wad {
            msats,
            asset_stable: false,
            asset_units: Number::from(msats),
            code: "BTC".to_owned(),
            countries: Some("All".to_owned()),
            decimals: Some(0),
            iso_num: None,
            name: Some("Bitcoin".to_owned()),
            symbol: Some("₿".to_owned()),
        }
    }

    /// Validates `fields` with the decoder's rules.
    ///
    /// # Errors
    ///
    /// The first rule `fields` breaks.
    pub fn new(fields: WadFields) -> Result<Self, WadError> {
        let units_negative = fields.asset_units.as_f64().is_none_or(|u| u < 0.0);
        if units_negative {
            return Err(WadError::Negative(WadField::AssetUnits));
        }
        check_len(&fields.code, MAX_CODE_CHARS, WadField::Code)?;
        if let Some(c) = &fields.countries {
            check_len(c, MAX_COUNTRIES_CHARS, WadField::Countries)?;
        }
        if fields.decimals.is_some_and(|d| u64::from(d) > MAX_DECIMALS) {
            return Err(WadError::TooLarge(WadField::Decimals));
        }
        if let Some(n) = &fields.name {
            check_len(n, MAX_NAME_CHARS, WadField::Name)?;
        }
        if let Some(s) = &fields.symbol {
            check_len(s, MAX_SYMBOL_CHARS, WadField::Symbol)?;
        }
        Ok(Wad {
            msats: fields.msats,
            asset_stable: fields.asset_stable,
            asset_units: fields.asset_units,
            code: fields.code,
            countries: fields.countries,
            decimals: fields.decimals,
            iso_num: fields.iso_num,
            name: fields.name,
            symbol: fields.symbol,
        })
    }

    /// The bitcoin amount in millisatoshis.
    pub fn msats(&self) -> u64 {
        self.msats
    }

    /// True if the value is pegged to another asset.
    pub fn asset_stable(&self) -> bool {
        self.asset_stable
    }

    /// The amount in the asset's units.
    pub fn asset_units(&self) -> &Number {
        &self.asset_units
    }

    /// The asset code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// All fields, for inspection or to build a modified wad.
    pub fn to_fields(&self) -> WadFields {
        WadFields {
            msats: self.msats,
            asset_stable: self.asset_stable,
            asset_units: self.asset_units.clone(),
            code: self.code.clone(),
            countries: self.countries.clone(),
            decimals: self.decimals,
            iso_num: self.iso_num,
            name: self.name.clone(),
            symbol: self.symbol.clone(),
        }
    }

    /// The wad as a JSON object.
    pub fn to_json_value(&self) -> Value {
        let opt_str = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
        let mut map = Map::new();
        map.insert("msats".into(), Value::from(self.msats));
        map.insert("asset_stable".into(), Value::Bool(self.asset_stable));
        map.insert(
            "asset_units".into(),
            Value::Number(self.asset_units.clone()),
        );
        map.insert("code".into(), Value::String(self.code.clone()));
        map.insert("countries".into(), opt_str(&self.countries));
        map.insert(
            "decimals".into(),
            self.decimals.map_or(Value::Null, Value::from),
        );
        map.insert(
            "iso_num".into(),
            self.iso_num.map_or(Value::Null, Value::from),
        );
        map.insert("name".into(), opt_str(&self.name));
        map.insert("symbol".into(), opt_str(&self.symbol));
        Value::Object(map)
    }

    /// Validates a JSON wad, in the order py-moneysocket's `validate_wad_dict` checks.
    ///
    /// # Errors
    ///
    /// The first rule the value breaks.
    pub fn from_json_value(value: &Value) -> Result<Self, WadError> {
        let map = value.as_object().ok_or(WadError::NotObject)?;
        if map.len() != KEYS.len() || !KEYS.iter().all(|k| map.contains_key(*k)) {
            return Err(WadError::KeySet);
        }
        let get = |key: &str| map.get(key).unwrap_or(&Value::Null);
        let msats = match get("msats") {
            Value::Number(n) if is_integer(n) => {
                n.as_u64().ok_or(WadError::Negative(WadField::Msats))?
            }
            _ => return Err(WadError::WrongType(WadField::Msats)),
        };
        let asset_stable = get("asset_stable")
            .as_bool()
            .ok_or(WadError::WrongType(WadField::AssetStable))?;
        let asset_units = match get("asset_units") {
            Value::Number(n) => n.clone(),
            _ => return Err(WadError::WrongType(WadField::AssetUnits)),
        };
        if asset_units.as_f64().is_none_or(|u| u < 0.0) {
            return Err(WadError::Negative(WadField::AssetUnits));
        }
        let code = get("code")
            .as_str()
            .ok_or(WadError::WrongType(WadField::Code))?;
        check_len(code, MAX_CODE_CHARS, WadField::Code)?;
        let countries = opt_string(get("countries"), MAX_COUNTRIES_CHARS, WadField::Countries)?;
        let decimals = match get("decimals") {
            Value::Null => None,
            Value::Number(n) if is_integer(n) => {
                let d = n.as_u64().ok_or(WadError::Negative(WadField::Decimals))?;
                if d > MAX_DECIMALS {
                    return Err(WadError::TooLarge(WadField::Decimals));
                }
                u8::try_from(d).ok()
            }
            _ => return Err(WadError::WrongType(WadField::Decimals)),
        };
        // The references do not look at iso_num; we require what their tables hold: null or
        // a small non-negative integer.
        let iso_num = match get("iso_num") {
            Value::Null => None,
            Value::Number(n) if is_integer(n) => {
                let n = n.as_u64().ok_or(WadError::Negative(WadField::IsoNum))?;
                Some(u16::try_from(n).map_err(|_| WadError::TooLarge(WadField::IsoNum))?)
            }
            _ => return Err(WadError::WrongType(WadField::IsoNum)),
        };
        let name = opt_string(get("name"), MAX_NAME_CHARS, WadField::Name)?;
        let symbol = opt_string(get("symbol"), MAX_SYMBOL_CHARS, WadField::Symbol)?;
        Ok(Wad {
            msats,
            asset_stable,
            asset_units,
            code: code.to_owned(),
            countries,
            decimals,
            iso_num,
            name,
            symbol,
        })
    }
}

fn check_len(s: &str, max: usize, field: WadField) -> Result<(), WadError> {
    if s.chars().count() > max {
        return Err(WadError::TooLong(field));
    }
    Ok(())
}

fn opt_string(value: &Value, max: usize, field: WadField) -> Result<Option<String>, WadError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => check_len(s, max, field).map(|()| Some(s.clone())),
        _ => Err(WadError::WrongType(field)),
    }
}

impl fmt::Display for Wad {
    /// The references' short format: `₿ 1.000 sat`, `$ 12.34 USD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let symbol = self.symbol.as_deref().unwrap_or("");
        if !self.asset_stable {
            return write!(f, "{symbol} {:.3} sat", self.msats as f64 / 1000.0);
        }
        if !symbol.is_empty() {
            write!(f, "{symbol} ")?;
        }
        let units = self.asset_units.as_f64().unwrap_or(0.0);
        match self.decimals {
            Some(d) => write!(f, "{:.*}", usize::from(d), units)?,
            None => write!(f, "{}", units.round_ties_even())?,
        }
        write!(f, " {}", self.code)
    }
}

impl Serialize for Wad {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Wad {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Wad::from_json_value(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bitcoin_wad_matches_the_reference_wire_form() {
        let wad = Wad::bitcoin(1234);
        assert_eq!(
            wad.to_json_value(),
            json!({"msats": 1234, "asset_stable": false, "asset_units": 1234, "code": "BTC",
                   "countries": "All", "decimals": 0, "iso_num": null, "name": "Bitcoin",
                   "symbol": "₿"})
        );
        assert_eq!(Wad::from_json_value(&wad.to_json_value()), Ok(wad.clone()));
        assert_eq!(wad.to_string(), "₿ 1.234 sat");
    }

    #[test]
    fn validation_follows_the_reference() {
        let base = Wad::bitcoin(1).to_json_value();
        let with = |key: &str, v: Value| {
            let mut w = base.clone();
            w[key] = v;
            Wad::from_json_value(&w)
        };
        assert_eq!(
            with("msats", json!(1.5)),
            Err(WadError::WrongType(WadField::Msats))
        );
        assert_eq!(
            with("msats", json!(-1)),
            Err(WadError::Negative(WadField::Msats))
        );
        assert_eq!(
            with("asset_stable", json!(0)),
            Err(WadError::WrongType(WadField::AssetStable))
        );
        assert_eq!(
            with("asset_units", json!(-0.5)),
            Err(WadError::Negative(WadField::AssetUnits))
        );
        assert_eq!(
            with("code", json!("X".repeat(21))),
            Err(WadError::TooLong(WadField::Code))
        );
        assert_eq!(with("symbol", json!("₿₿₿₿₿")).map(|w| w.msats()), Ok(1));
        assert_eq!(
            with("symbol", json!("₿₿₿₿₿₿")),
            Err(WadError::TooLong(WadField::Symbol))
        );
        assert_eq!(
            with("decimals", json!(11)),
            Err(WadError::TooLarge(WadField::Decimals))
        );
        assert_eq!(
            with("decimals", json!(-1)),
            Err(WadError::Negative(WadField::Decimals))
        );
        assert_eq!(
            with("countries", json!(5)),
            Err(WadError::WrongType(WadField::Countries))
        );
        assert_eq!(with("name", Value::Null).map(|w| w.msats()), Ok(1));
        let mut extra = base.clone();
        extra["foo"] = json!(1);
        assert_eq!(Wad::from_json_value(&extra), Err(WadError::KeySet));
        assert_eq!(Wad::from_json_value(&json!([])), Err(WadError::NotObject));
    }

    #[test]
    fn stable_wad_formats_like_the_reference() {
        let usd = Wad::new(WadFields {
            msats: 5_000_000,
            asset_stable: true,
            asset_units: Number::from_f64(12.345).expect("finite"),
            code: "USD".to_owned(),
            countries: None,
            decimals: Some(2),
            iso_num: Some(840),
            name: Some("United States dollar".to_owned()),
            symbol: Some("$".to_owned()),
        })
        .expect("valid");
        assert_eq!(usd.to_string(), "$ 12.35 USD");
    }
}
