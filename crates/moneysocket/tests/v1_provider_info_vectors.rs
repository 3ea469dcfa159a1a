//! v1 provider-info vectors: `03-provider-info-encode.json` and
//! `03-provider-info-decode-error.json`.

mod common;

use common::{load_vectors, str_field, Report};
use moip_moneysocket::error::UuidError;
use moip_moneysocket::v1::features::FeaturesError;
use moip_moneysocket::v1::provider_info::{
    ProviderInfo, ProviderInfoError, ProviderInfoField as F,
};
use moip_moneysocket::v1::wad::{WadError, WadField};

#[test]
fn provider_info_encode_vectors() {
    let mut report = Report::new("03-provider-info-encode.json");
    for case in load_vectors("03-provider-info-encode.json") {
        let want = &case["provider_info"];
        let result = match ProviderInfo::from_json_value(want) {
            Err(e) => Err(format!("rejected: {e:?}")),
            // Unknown keys included: the reference round-trips them, so must we.
            Ok(info) if info.to_json_value() != *want => {
                Err(format!("re-encodes as {}", info.to_json_value()))
            }
            Ok(_) => Ok(()),
        };
        report.check(str_field(&case, "test_name"), result);
    }
    report.finish(7);
}

/// Maps the reference's error strings to our variants; panics on unknown strings.
fn matches_reference(reference: &str, e: &ProviderInfoError) -> bool {
    use ProviderInfoError as E;
    match reference {
        "no account_uuid included" => matches!(e, E::Missing(F::AccountUuid)),
        "account_uuid type is not a string" => matches!(e, E::WrongType(F::AccountUuid)),
        "invalid account_uuid" => matches!(e, E::AccountUuid(UuidError::Invalid)),
        "account_uuid is not uuid version 4" => matches!(e, E::AccountUuid(UuidError::NotVersion4)),
        "wad value not included" => matches!(e, E::Missing(F::Wad)),
        "wad value not an object" => matches!(e, E::WrongType(F::Wad)),
        "invalid wad: no msat value given" => {
            matches!(e, E::Wad(WadError::Missing(WadField::Msat)))
        }
        "no payee setting included" => matches!(e, E::Missing(F::Payee)),
        "payee must be boolean type" => matches!(e, E::WrongType(F::Payee)),
        "no payer setting included" => matches!(e, E::Missing(F::Payer)),
        "payer must be boolean type" => matches!(e, E::WrongType(F::Payer)),
        "features value not included" => matches!(e, E::Features(FeaturesError::MissingFeatures)),
        "features value must be a list" => matches!(e, E::Features(FeaturesError::FeaturesNotList)),
        "features list entry not a string" => {
            matches!(e, E::Features(FeaturesError::FeatureNotString))
        }
        "feature_data for undeclared feature" => {
            matches!(e, E::Features(FeaturesError::UndeclaredFeatureData(f)) if f == "feature3")
        }
        "feature_data value is null" => {
            matches!(e, E::Features(FeaturesError::NullFeatureData(f)) if f == "feature1")
        }
        "public_keys value not included" => matches!(e, E::Missing(F::PublicKeys)),
        "public_keys value not object type" => matches!(e, E::WrongType(F::PublicKeys)),
        "public key not interpretable as bytes" => matches!(e, E::PublicKeyNotHex { .. }),
        "public key info value not object type" => matches!(e, E::WrongType(F::PublicKeyInfo)),
        "curve of public key not specified" => matches!(e, E::Missing(F::Curve)),
        "curve value not a string" => matches!(e, E::WrongType(F::Curve)),
        "curve value is an empty string" => matches!(e, E::Empty(F::Curve)),
        "friendly_name value is not a string" => matches!(e, E::WrongType(F::FriendlyName)),
        "friendly_name value is empty string" => matches!(e, E::Empty(F::FriendlyName)),
        "friendly_name string is longer than 64 chars" => matches!(e, E::FriendlyNameTooLong),
        "features list not included in object" => matches!(e, E::Missing(F::KeyFeatures)),
        "features value not an array" => matches!(e, E::WrongType(F::KeyFeatures)),
        "feature string not a string" => matches!(e, E::WrongType(F::KeyFeature)),
        "feature string an empty string" => matches!(e, E::Empty(F::KeyFeature)),
        other => panic!("no mapping for reference error {other:?}"),
    }
}

#[test]
fn provider_info_decode_error_vectors() {
    let mut report = Report::new("03-provider-info-decode-error.json");
    for case in load_vectors("03-provider-info-decode-error.json") {
        let reference = str_field(&case, "decode_error");
        let result = match ProviderInfo::from_json_value(&case["input"]) {
            Ok(p) => Err(format!("accepted, expected {reference:?}: {p:?}")),
            Err(e) if matches_reference(reference, &e) => Ok(()),
            Err(e) => Err(format!("got {e:?}, expected {reference:?}")),
        };
        report.check(str_field(&case, "test_name"), result);
    }
    report.finish(30);
}
