//! The v1 wad: a bitcoin amount, optionally denominated in another asset
//! (RFC `03-provider-info.md`, py-moneysocket `moneysocket1/provider_info/wad.py`).
//!
//! ```json
//! {"msat": 12345678,
//!  "non_btc": {"units": 123.456, "name": "United States dollar", "code": "USD",
//!              "symbol": "$", "iso_num": 840, "fmt_decimals": 2, "rate_timestamp": 1622048707.3}}
//! ```
//!
//! `msat` may be fractional or negative (shortcoming S6 asks for negative balances). `non_btc`
//! is `null` or an object with `units`, a non-empty `name`, `code` (`""` or 3–12 characters;
//! if `iso_num` is given it must be non-empty and agree with ISO 4217; an ISO code without its
//! number is refused), `symbol` (at most 6 characters, may be `""`) and the optional
//! `rate_timestamp` (≥ 0), `iso_num` (≥ 0) and `fmt_decimals` (0–12). The RFC text says
//! `fmt_decimal`; the code and vectors say `fmt_decimals`, which we follow.
//!
//! Numbers are kept as the JSON numbers received, so `12345` and `12345.0` stay distinct and a
//! decoded wad re-encodes to the same JSON.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

use crate::encoding::json::is_integer;
use crate::v1::iso4217;

const MAX_CODE_CHARS: usize = 12;
const MIN_CODE_CHARS: usize = 3;
const MAX_SYMBOL_CHARS: usize = 6;
const MAX_FMT_DECIMALS: u64 = 12;

/// A validated v1 wad.
#[derive(Debug, Clone, PartialEq)]
pub struct Wad {
    msat: Number,
    non_btc: Option<NonBtc>,
}

/// The non-bitcoin denomination of a wad.
#[derive(Debug, Clone, PartialEq)]
pub struct NonBtc {
    units: Number,
    name: String,
    code: String,
    symbol: String,
    rate_timestamp: Option<Number>,
    iso_num: Option<u64>,
    fmt_decimals: Option<u8>,
}

/// The fields of a [`NonBtc`] before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct NonBtcFields {
    /// The amount in the asset's units.
    pub units: Number,
    /// The asset's name; not empty.
    pub name: String,
    /// The asset's code: `""` or 3 to 12 characters.
    pub code: String,
    /// The asset's symbol: at most 6 characters, may be empty.
    pub symbol: String,
    /// When the exchange rate was taken, Unix seconds.
    pub rate_timestamp: Option<Number>,
    /// The ISO 4217 number, required for codes that have one.
    pub iso_num: Option<u64>,
    /// Decimal places to display, 0 to 12.
    pub fmt_decimals: Option<u8>,
}

/// A wad field, for error reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WadField {
    /// `msat`
    Msat,
    /// `non_btc`
    NonBtc,
    /// `non_btc.units`
    Units,
    /// `non_btc.name`
    Name,
    /// `non_btc.rate_timestamp`
    RateTimestamp,
    /// `non_btc.iso_num`
    IsoNum,
    /// `non_btc.code`
    Code,
    /// `non_btc.symbol`
    Symbol,
    /// `non_btc.fmt_decimals`
    FmtDecimals,
}

/// A v1 wad could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WadError {
    /// The wad is not a JSON object.
    #[error("wad is not an object")]
    NotObject,
    /// A required field is absent.
    #[error("wad field {0:?} is missing")]
    Missing(WadField),
    /// A field has the wrong JSON type.
    #[error("wad field {0:?} has the wrong type")]
    WrongType(WadField),
    /// The wad has keys besides `msat` and `non_btc`.
    #[error("extra keys in wad")]
    ExtraKeys,
    /// A string field that must not be empty is.
    #[error("wad field {0:?} is empty")]
    Empty(WadField),
    /// A numeric field is negative.
    #[error("wad field {0:?} is negative")]
    Negative(WadField),
    /// A numeric field exceeds its maximum.
    #[error("wad field {0:?} is too large")]
    TooLarge(WadField),
    /// A string field is too long.
    #[error("wad field {0:?} is too long")]
    TooLong(WadField),
    /// A string field is too short.
    #[error("wad field {0:?} is too short")]
    TooShort(WadField),
    /// `code` is not the code ISO 4217 assigns to `iso_num`.
    #[error("iso_num {iso_num} is {expected}, not {code}")]
    IsoNumMismatch {
        /// The number given.
        iso_num: u64,
        /// The code given.
        code: String,
        /// The code ISO assigns to the number.
        expected: &'static str,
    },
    /// `code` has an ISO number but none was given.
    #[error("code {0} has an ISO number, which must be given")]
    MissingIsoNum(String),
}

impl Wad {
    /// A plain bitcoin amount.
    pub fn bitcoin(msat: Number) -> Self {
        Wad {
            msat,
            non_btc: None,
        }
    }

    /// An amount denominated in another asset.
    pub fn with_non_btc(msat: Number, non_btc: NonBtc) -> Self {
        Wad {
            msat,
            non_btc: Some(non_btc),
        }
    }

    /// The bitcoin amount in millisatoshis.
    pub fn msat(&self) -> &Number {
        &self.msat
    }

    /// The other denomination, if any.
    pub fn non_btc(&self) -> Option<&NonBtc> {
        self.non_btc.as_ref()
    }

    /// The wad as a JSON object.
    pub fn to_json_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("msat".into(), Value::Number(self.msat.clone()));
        map.insert(
            "non_btc".into(),
            self.non_btc
                .as_ref()
                .map_or(Value::Null, NonBtc::to_json_value),
        );
        Value::Object(map)
    }

    /// Validates a JSON wad in the reference's order.
    ///
    /// # Errors
    ///
    /// The first rule the value breaks.
    pub fn from_json_value(value: &Value) -> Result<Self, WadError> {
        let map = value.as_object().ok_or(WadError::NotObject)?;
        let msat = match map.get("msat") {
            None => return Err(WadError::Missing(WadField::Msat)),
            Some(Value::Number(n)) => n.clone(),
            Some(_) => return Err(WadError::WrongType(WadField::Msat)),
        };
        let non_btc = match map.get("non_btc") {
            None => return Err(WadError::Missing(WadField::NonBtc)),
            Some(Value::Null) => None,
            Some(Value::Object(fields)) => Some(NonBtc::from_json_map(fields)?),
            Some(_) => return Err(WadError::WrongType(WadField::NonBtc)),
        };
        if map.len() != 2 {
            return Err(WadError::ExtraKeys);
        }
        Ok(Wad { msat, non_btc })
    }
}

impl NonBtc {
    /// Validates the fields with the decoder's rules.
    ///
    /// # Errors
    ///
    /// The first rule the fields break.
    pub fn new(fields: NonBtcFields) -> Result<Self, WadError> {
        if fields.name.is_empty() {
            return Err(WadError::Empty(WadField::Name));
        }
        if fields.rate_timestamp.as_ref().is_some_and(is_negative) {
            return Err(WadError::Negative(WadField::RateTimestamp));
        }
        check_code(&fields.code, fields.iso_num)?;
        if fields.symbol.chars().count() > MAX_SYMBOL_CHARS {
            return Err(WadError::TooLong(WadField::Symbol));
        }
        if fields
            .fmt_decimals
            .is_some_and(|d| u64::from(d) > MAX_FMT_DECIMALS)
        {
            return Err(WadError::TooLarge(WadField::FmtDecimals));
        }
        Ok(NonBtc {
            units: fields.units,
            name: fields.name,
            code: fields.code,
            symbol: fields.symbol,
            rate_timestamp: fields.rate_timestamp,
            iso_num: fields.iso_num,
            fmt_decimals: fields.fmt_decimals,
        })
    }

    /// The amount in the asset's units.
    pub fn units(&self) -> &Number {
        &self.units
    }

    /// The asset's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The asset's code (may be empty).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The asset's symbol (may be empty).
    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    /// When the rate was taken.
    pub fn rate_timestamp(&self) -> Option<&Number> {
        self.rate_timestamp.as_ref()
    }

    /// The ISO 4217 number.
    pub fn iso_num(&self) -> Option<u64> {
        self.iso_num
    }

    /// Decimal places to display.
    pub fn fmt_decimals(&self) -> Option<u8> {
        self.fmt_decimals
    }

    fn to_json_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("units".into(), Value::Number(self.units.clone()));
        map.insert("name".into(), Value::String(self.name.clone()));
        map.insert("code".into(), Value::String(self.code.clone()));
        map.insert("symbol".into(), Value::String(self.symbol.clone()));
        if let Some(t) = &self.rate_timestamp {
            map.insert("rate_timestamp".into(), Value::Number(t.clone()));
        }
        if let Some(n) = self.iso_num {
            map.insert("iso_num".into(), Value::from(n));
        }
        if let Some(d) = self.fmt_decimals {
            map.insert("fmt_decimals".into(), Value::from(d));
        }
        Value::Object(map)
    }

    /// Reads the object in the order py-moneysocket's `NonBtc.from_dict` checks it. Keys it
    /// does not know are ignored, as there.
    fn from_json_map(map: &Map<String, Value>) -> Result<Self, WadError> {
        use WadField as F;
        let units = match map.get("units") {
            None => return Err(WadError::Missing(F::Units)),
            Some(Value::Number(n)) => n.clone(),
            Some(_) => return Err(WadError::WrongType(F::Units)),
        };
        let name = match map.get("name") {
            None => return Err(WadError::Missing(F::Name)),
            Some(Value::String(s)) if s.is_empty() => return Err(WadError::Empty(F::Name)),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(WadError::WrongType(F::Name)),
        };
        let rate_timestamp = match map.get("rate_timestamp") {
            None => None,
            Some(Value::Number(n)) if is_negative(n) => {
                return Err(WadError::Negative(F::RateTimestamp))
            }
            Some(Value::Number(n)) => Some(n.clone()),
            Some(_) => return Err(WadError::WrongType(F::RateTimestamp)),
        };
        let iso_num = match map.get("iso_num") {
            None => None,
            Some(Value::Number(n)) if is_integer(n) => {
                Some(n.as_u64().ok_or(WadError::Negative(F::IsoNum))?)
            }
            Some(_) => return Err(WadError::WrongType(F::IsoNum)),
        };
        let code = match map.get("code") {
            None => return Err(WadError::Missing(F::Code)),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(WadError::WrongType(F::Code)),
        };
        check_code(&code, iso_num)?;
        let symbol = match map.get("symbol") {
            None => return Err(WadError::Missing(F::Symbol)),
            Some(Value::String(s)) if s.chars().count() > MAX_SYMBOL_CHARS => {
                return Err(WadError::TooLong(F::Symbol))
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(WadError::WrongType(F::Symbol)),
        };
        let fmt_decimals = match map.get("fmt_decimals") {
            None => None,
            Some(Value::Number(n)) if is_integer(n) => {
                let d = n.as_u64().ok_or(WadError::Negative(F::FmtDecimals))?;
                if d > MAX_FMT_DECIMALS {
                    return Err(WadError::TooLarge(F::FmtDecimals));
                }
                u8::try_from(d).ok()
            }
            Some(_) => return Err(WadError::WrongType(F::FmtDecimals)),
        };
        Ok(NonBtc {
            units,
            name,
            code,
            symbol,
            rate_timestamp,
            iso_num,
            fmt_decimals,
        })
    }
}

fn is_negative(n: &Number) -> bool {
    n.as_f64().is_some_and(|f| f < 0.0)
}

/// The code rules: with an ISO number the code must be non-empty and match it; without one
/// it must not be an ISO code; either way a non-empty code has 3 to 12 characters.
fn check_code(code: &str, iso_num: Option<u64>) -> Result<(), WadError> {
    match iso_num {
        Some(_) if code.is_empty() => return Err(WadError::Empty(WadField::Code)),
        Some(n) => {
            if let Some(expected) = iso4217::code_for_number(n).filter(|e| *e != code) {
                return Err(WadError::IsoNumMismatch {
                    iso_num: n,
                    code: code.to_owned(),
                    expected,
                });
            }
        }
        None => {
            if iso4217::number_for_code(code).is_some() {
                return Err(WadError::MissingIsoNum(code.to_owned()));
            }
        }
    }
    let chars = code.chars().count();
    if chars > MAX_CODE_CHARS {
        return Err(WadError::TooLong(WadField::Code));
    }
    if chars != 0 && chars < MIN_CODE_CHARS {
        return Err(WadError::TooShort(WadField::Code));
    }
    Ok(())
}

impl fmt::Display for Wad {
    /// The references' format: `₿ 12.345 sat`, `$ 123.46 USD`, `🥒 69 CUCUMBER`, `77`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(non_btc) = &self.non_btc else {
            let msat = self.msat.as_f64().unwrap_or(0.0);
            return write!(f, "₿ {:.3} sat", msat / 1000.0);
        };
        if !non_btc.symbol.is_empty() {
            write!(f, "{} ", non_btc.symbol)?;
        }
        let units = non_btc.units.as_f64().unwrap_or(0.0);
        match non_btc.fmt_decimals {
            Some(d) => write!(f, "{:.*}", usize::from(d), units)?,
            // Python's `"%d" % round(x)`: ties to even; `+ 0.0` turns -0 into 0.
            None => write!(f, "{}", units.round_ties_even() + 0.0)?,
        }
        if !non_btc.code.is_empty() {
            write!(f, " {}", non_btc.code)?;
        }
        Ok(())
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
    fn constructor_applies_the_decoder_rules() {
        let fields = NonBtcFields {
            units: Number::from(5),
            name: "Euro".to_owned(),
            code: "EUR".to_owned(),
            symbol: "€".to_owned(),
            rate_timestamp: None,
            iso_num: Some(978),
            fmt_decimals: Some(2),
        };
        let eur = NonBtc::new(fields.clone()).expect("valid");
        let wad = Wad::with_non_btc(Number::from(1000), eur);
        assert_eq!(Wad::from_json_value(&wad.to_json_value()), Ok(wad.clone()));
        assert_eq!(wad.to_string(), "€ 5.00 EUR");
        assert_eq!(
            NonBtc::new(NonBtcFields {
                iso_num: None,
                ..fields.clone()
            }),
            Err(WadError::MissingIsoNum("EUR".to_owned()))
        );
        assert_eq!(
            NonBtc::new(NonBtcFields {
                fmt_decimals: Some(13),
                ..fields
            }),
            Err(WadError::TooLarge(WadField::FmtDecimals))
        );
    }

    #[test]
    fn empty_non_btc_object_is_not_bitcoin() {
        // The reference treats `{}` as falsy, i.e. as `null`; we validate it as an object.
        assert_eq!(
            Wad::from_json_value(&json!({"msat": 1, "non_btc": {}})),
            Err(WadError::Missing(WadField::Units))
        );
    }

    #[test]
    fn rounding_matches_python() {
        let wad = |units: f64| {
            let fields = NonBtcFields {
                units: Number::from_f64(units).expect("finite"),
                name: "x".to_owned(),
                code: String::new(),
                symbol: String::new(),
                rate_timestamp: None,
                iso_num: None,
                fmt_decimals: None,
            };
            Wad::with_non_btc(Number::from(0), NonBtc::new(fields).expect("valid")).to_string()
        };
        assert_eq!(wad(2.5), "2");
        assert_eq!(wad(3.5), "4");
        assert_eq!(wad(-0.4), "0");
    }
}
