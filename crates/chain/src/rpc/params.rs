//! Parameters of one call: positional or named, read with Core's type rules and messages.

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};
use serde_json::Value;

use super::error::{RpcError, INVALID_PARAMETER, MISC_ERROR, TYPE_ERROR};

/// A method's parameters, normalised to positions.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: Vec<Value>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn wrong_type(v: &Value, expected: &str) -> RpcError {
    RpcError::new(
        TYPE_ERROR,
        format!(
            "JSON value of type {} is not of expected type {expected}",
            type_name(v)
        ),
    )
}

impl Params {
    /// Positional parameters as given.
    pub fn positional(values: Vec<Value>) -> Params {
        Params { values }
    }

    /// Named parameters mapped onto the method's argument `names`; unknown names are refused,
    /// as Core does.
    pub fn named(map: serde_json::Map<String, Value>, names: &[&str]) -> Result<Params, RpcError> {
        let mut values = vec![Value::Null; names.len()];
        let mut last = 0;
        for (key, value) in map {
            // Core accepts either spelling for arguments it renamed (e.g. verbose|verbosity).
            let Some(pos) = names
                .iter()
                .position(|n| n.split('|').any(|alias| alias == key))
            else {
                return Err(RpcError::new(
                    INVALID_PARAMETER,
                    format!("Unknown named parameter {key}"),
                ));
            };
            values[pos] = value;
            last = last.max(pos + 1);
        }
        values.truncate(last);
        Ok(Params { values })
    }

    /// Number of parameters given (trailing nulls count, as in Core).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no parameter was given.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Enforces Core's arity rule; on failure answers with the method's usage line (`-1`).
    pub fn expect_count(
        &self,
        method: &str,
        required: usize,
        names: &[&str],
    ) -> Result<(), RpcError> {
        if self.values.len() < required || self.values.len() > names.len() {
            let args: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    if i < required {
                        format!("\"{n}\"")
                    } else {
                        format!("( \"{n}\" )")
                    }
                })
                .collect();
            return Err(RpcError::new(
                MISC_ERROR,
                format!("{method} {}", args.join(" ")),
            ));
        }
        Ok(())
    }

    /// The raw value at `index`, `None` when absent or null.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.values.get(index).filter(|v| !v.is_null())
    }

    fn required(&self, index: usize, name: &str) -> Result<&Value, RpcError> {
        self.get(index).ok_or_else(|| {
            RpcError::new(
                INVALID_PARAMETER,
                format!("Missing required parameter \"{name}\""),
            )
        })
    }

    /// A string parameter.
    pub fn str(&self, index: usize, name: &str) -> Result<&str, RpcError> {
        let v = self.required(index, name)?;
        v.as_str().ok_or_else(|| wrong_type(v, "string"))
    }

    /// An optional string parameter.
    pub fn opt_str(&self, index: usize) -> Result<Option<&str>, RpcError> {
        self.get(index)
            .map(|v| v.as_str().ok_or_else(|| wrong_type(v, "string")))
            .transpose()
    }

    /// An integer parameter within `i64`.
    pub fn int(&self, index: usize, name: &str) -> Result<i64, RpcError> {
        let v = self.required(index, name)?;
        as_int(v)
    }

    /// An optional integer parameter.
    pub fn opt_int(&self, index: usize) -> Result<Option<i64>, RpcError> {
        self.get(index).map(as_int).transpose()
    }

    /// An optional boolean parameter.
    pub fn opt_bool(&self, index: usize) -> Result<Option<bool>, RpcError> {
        self.get(index)
            .map(|v| v.as_bool().ok_or_else(|| wrong_type(v, "bool")))
            .transpose()
    }

    /// An optional amount in BTC (number or numeric string, as Core's `AmountFromValue`).
    pub fn opt_btc(&self, index: usize) -> Result<Option<bitcoin::Amount>, RpcError> {
        self.get(index).map(amount_from_value).transpose()
    }

    /// An array parameter.
    pub fn array(&self, index: usize, name: &str) -> Result<&Vec<Value>, RpcError> {
        let v = self.required(index, name)?;
        v.as_array().ok_or_else(|| wrong_type(v, "array"))
    }

    /// An optional object parameter.
    pub fn opt_object(
        &self,
        index: usize,
    ) -> Result<Option<&serde_json::Map<String, Value>>, RpcError> {
        self.get(index)
            .map(|v| v.as_object().ok_or_else(|| wrong_type(v, "object")))
            .transpose()
    }

    /// A block hash (64 hex digits, display order).
    pub fn block_hash(&self, index: usize, name: &str) -> Result<BlockHash, RpcError> {
        parse_hash::<BlockHash>(self.str(index, name)?, name)
    }

    /// A txid (64 hex digits, display order).
    pub fn txid(&self, index: usize, name: &str) -> Result<Txid, RpcError> {
        parse_hash::<Txid>(self.str(index, name)?, name)
    }
}

fn as_int(v: &Value) -> Result<i64, RpcError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| RpcError::new(TYPE_ERROR, "JSON integer out of range")),
        other => Err(wrong_type(other, "number")),
    }
}

/// Parses a hash as Core's `ParseHashV`: exactly 64 hex digits.
pub fn parse_hash<H: Hash + std::str::FromStr>(s: &str, name: &str) -> Result<H, RpcError> {
    if s.len() != 64 {
        return Err(RpcError::new(
            INVALID_PARAMETER,
            format!("{name} must be of length 64 (not {}, for '{s}')", s.len()),
        ));
    }
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RpcError::new(
            INVALID_PARAMETER,
            format!("{name} must be hexadecimal string (not '{s}')"),
        ));
    }
    s.parse::<H>().map_err(|_| {
        RpcError::new(
            INVALID_PARAMETER,
            format!("{name} must be hexadecimal string (not '{s}')"),
        )
    })
}

/// Core's `AmountFromValue`: a JSON number or numeric string in BTC, at most 8 decimals.
pub fn amount_from_value(v: &Value) -> Result<bitcoin::Amount, RpcError> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => return Err(wrong_type(other, "number")),
    };
    let amount = bitcoin::Amount::from_str_in(&text, bitcoin::Denomination::Bitcoin)
        .map_err(|_| RpcError::new(TYPE_ERROR, "Invalid amount"))?;
    if amount > bitcoin::Amount::MAX_MONEY {
        return Err(RpcError::new(TYPE_ERROR, "Amount out of range"));
    }
    Ok(amount)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_params_map_onto_positions_and_refuse_unknown_names() {
        let names = ["blockhash", "verbose"];
        let p = Params::named(
            json!({"verbose": false})
                .as_object()
                .cloned()
                .expect("object"),
            &names,
        )
        .expect("ok");
        assert_eq!(p.len(), 2);
        assert_eq!(p.opt_bool(1).expect("bool"), Some(false));
        let err = Params::named(
            json!({"nope": 1}).as_object().cloned().expect("object"),
            &names,
        )
        .expect_err("unknown");
        assert_eq!(err.code, INVALID_PARAMETER);
    }

    #[test]
    fn types_are_checked_like_core() {
        let p = Params::positional(vec![json!("12")]);
        let err = p.int(0, "height").expect_err("string is not a number");
        assert_eq!(err.code, TYPE_ERROR);
        assert_eq!(
            err.message,
            "JSON value of type string is not of expected type number"
        );
    }

    #[test]
    fn hashes_must_be_64_hex_digits() {
        assert_eq!(
            parse_hash::<Txid>("abc", "txid").expect_err("short").code,
            INVALID_PARAMETER
        );
        assert!(parse_hash::<Txid>(&"z".repeat(64), "txid").is_err());
        assert!(parse_hash::<Txid>(&"0".repeat(64), "txid").is_ok());
    }

    #[test]
    fn amounts_follow_core() {
        assert_eq!(
            amount_from_value(&json!(0.1)).expect("ok"),
            bitcoin::Amount::from_sat(10_000_000)
        );
        assert_eq!(
            amount_from_value(&json!("0.00000001")).expect("ok"),
            bitcoin::Amount::from_sat(1)
        );
        assert!(amount_from_value(&json!(0.000000001)).is_err());
        assert!(amount_from_value(&json!(21_000_001)).is_err());
    }
}
