//! v1 wad vectors: `03-wad-encode.json` and `03-wad-decode-error.json`.

mod common;

use common::{load_vectors, str_field, Report};
use moip_moneysocket::v1::wad::{Wad, WadError, WadField as F};

#[test]
fn wad_encode_vectors() {
    let mut report = Report::new("03-wad-encode.json");
    for case in load_vectors("03-wad-encode.json") {
        let result = match Wad::from_json_value(&case["wad"]) {
            Err(e) => Err(format!("rejected: {e:?}")),
            Ok(wad) if wad.to_string() != str_field(&case, "string_fmt") => {
                Err(format!("formats as {:?}", wad.to_string()))
            }
            Ok(wad) if wad.to_json_value() != case["wad"] => {
                Err(format!("re-encodes as {}", wad.to_json_value()))
            }
            Ok(_) => Ok(()),
        };
        report.check(str_field(&case, "test_name"), result);
    }
    report.finish(5);
}

/// Maps the reference's error strings to our variants; panics on unknown strings.
pub fn matches_reference(reference: &str, e: &WadError) -> bool {
    use WadError as E;
    match reference {
        "no msat value given" => matches!(e, E::Missing(F::Msat)),
        "invalid type of msat value" => matches!(e, E::WrongType(F::Msat)),
        "no non_btc value given" => matches!(e, E::Missing(F::NonBtc)),
        "extra keys in wad_dict" => matches!(e, E::ExtraKeys),
        "no units value given" => matches!(e, E::Missing(F::Units)),
        "units is not an integer or float" => matches!(e, E::WrongType(F::Units)),
        "no name value given" => matches!(e, E::Missing(F::Name)),
        "name value not string" => matches!(e, E::WrongType(F::Name)),
        "name value is empty string" => matches!(e, E::Empty(F::Name)),
        "rate_timestamp is not an integer or float" => matches!(e, E::WrongType(F::RateTimestamp)),
        "rate_timestamp negative" => matches!(e, E::Negative(F::RateTimestamp)),
        "iso_num is not an integer" => matches!(e, E::WrongType(F::IsoNum)),
        "iso_num is not positive" => matches!(e, E::Negative(F::IsoNum)),
        // Missing and mistyped codes are one kind each, whether or not iso_num is present.
        "iso_num without code" | "code value not set" => matches!(e, E::Missing(F::Code)),
        "code value with iso_num is not string" | "code value is not string" => {
            matches!(e, E::WrongType(F::Code))
        }
        "code value with iso_num is empty string" => matches!(e, E::Empty(F::Code)),
        "iso_num and code mismatch" => matches!(
            e,
            E::IsoNumMismatch { iso_num: 840, code, expected: "USD" } if code == "GBP"
        ),
        "using non-standard code with iso_num assigned" => {
            matches!(e, E::MissingIsoNum(c) if c == "USD")
        }
        "code value longer than twelve characters" => matches!(e, E::TooLong(F::Code)),
        "code value less than three characters" => matches!(e, E::TooShort(F::Code)),
        "symbol value not set" => matches!(e, E::Missing(F::Symbol)),
        "symbol value not string type" => matches!(e, E::WrongType(F::Symbol)),
        "symbol value string too long" => matches!(e, E::TooLong(F::Symbol)),
        "fmt_decimals not integer" => matches!(e, E::WrongType(F::FmtDecimals)),
        "fmt_decimals negative value" => matches!(e, E::Negative(F::FmtDecimals)),
        "fmt_decimals too large" => matches!(e, E::TooLarge(F::FmtDecimals)),
        other => panic!("no mapping for reference error {other:?}"),
    }
}

#[test]
fn wad_decode_error_vectors() {
    let mut report = Report::new("03-wad-decode-error.json");
    for case in load_vectors("03-wad-decode-error.json") {
        let reference = str_field(&case, "decode_error");
        let result = match Wad::from_json_value(&case["input"]) {
            Ok(w) => Err(format!("accepted, expected {reference:?}: {w:?}")),
            Err(e) if matches_reference(reference, &e) => Ok(()),
            Err(e) => Err(format!("got {e:?}, expected {reference:?}")),
        };
        report.check(str_field(&case, "test_name"), result);
    }
    report.finish(28);
}
