//! JSON text exactly as Python's `json.dumps(obj)` writes it with default arguments.
//!
//! The reference implementations are Python; their v1 message vectors embed JSON produced by
//! `json.dumps` (`", "` and `": "` separators, `\uXXXX` escapes for non-ASCII, Python's float
//! repr). Emitting the same text lets our encoder reproduce those bytes exactly, which is the
//! strongest interoperability check available. Decoders never depend on this format.

use serde_json::{Number, Value};

/// Appends `value` to `out` in `json.dumps` form. Object keys are written in the map's
/// iteration order (sorted, since `serde_json::Map` is a `BTreeMap` here).
pub(crate) fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map.iter().map(|(k, v)| (k.as_str(), v))),
    }
}

/// Appends an object whose members are written in the given order.
pub(crate) fn write_object<'a>(
    out: &mut String,
    members: impl IntoIterator<Item = (&'a str, &'a Value)>,
) {
    out.push('{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_str(out, key);
        out.push_str(": ");
        write_value(out, value);
    }
    out.push('}');
}

/// Returns `value` as Python's `json.dumps(value)` would.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Appends a string literal with Python's `ensure_ascii=True` escaping.
pub(crate) fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Appends a number the way Python prints an `int` or a `float`.
pub(crate) fn write_number(out: &mut String, n: &Number) {
    match n.as_f64() {
        Some(f) if n.is_f64() => out.push_str(&python_float_repr(f)),
        _ => out.push_str(&n.to_string()),
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, in positional notation when
/// the decimal exponent is in `-4 < e <= 16` (with a trailing `.0` if integral), otherwise as
/// `d.ddde±XX`.
fn python_float_repr(f: f64) -> String {
    if !f.is_finite() {
        // JSON has no such values and serde_json never produces them; keep Python's spelling.
        return if f.is_nan() {
            "NaN".to_owned()
        } else if f > 0.0 {
            "Infinity".to_owned()
        } else {
            "-Infinity".to_owned()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".to_owned()
        } else {
            "0.0".to_owned()
        };
    }
    let scientific = format!("{f:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return scientific;
    };
    let decimal_point = exponent + 1;
    if -4 < decimal_point && decimal_point <= 16 {
        let mut positional = format!("{f}");
        if !positional.contains('.') {
            positional.push_str(".0");
        }
        positional
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

/// True if `n` is a JSON integer (Python `int`), as opposed to a float.
pub(crate) fn is_integer(n: &Number) -> bool {
    n.is_i64() || n.is_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_python_separators_and_escapes() {
        let v = json!({"b": [1, 2.5, null, true], "a": "é\n\"🥒"});
        assert_eq!(
            to_string(&v),
            r#"{"a": "\u00e9\n\"\ud83e\udd52", "b": [1, 2.5, null, true]}"#
        );
    }

    #[test]
    fn matches_python_float_repr() {
        let cases: &[(f64, &str)] = &[
            (1623361001.983355, "1623361001.983355"),
            (1234.0, "1234.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (1.5e300, "1.5e+300"),
            (-2.5e-7, "-2.5e-07"),
            (-0.0, "-0.0"),
        ];
        for (f, want) in cases {
            assert_eq!(python_float_repr(*f), *want, "{f}");
        }
        assert_eq!(to_string(&json!(1234)), "1234");
        assert_eq!(to_string(&json!(-7)), "-7");
    }
}
