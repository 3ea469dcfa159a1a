//! v1 message vectors: `04-message-encode-decode.json` and `04-message-decode-error.json`.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{hex, load_vectors, str_field, Report};
use moip_moneysocket::encoding::{bigsize, json};
use moip_moneysocket::error::{BigSizeError, TlvError, UuidError};
use moip_moneysocket::v1::features::{Features, FeaturesError};
use moip_moneysocket::v1::message::{
    Message, MessageError, MessageField as F, MessageKind, MessageTlv, NotificationSubtype,
    RequestSubtype,
};
use moip_moneysocket::v1::version::Version;
use moip_moneysocket::{Timestamp, Uuid};
use serde_json::Value;

/// A fixed receiver clock (2023-11-14) so the "future timestamp" rule is deterministic: the
/// vectors' timestamps are from 2021, except the one meant to be in the future (2072).
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

#[test]
fn message_encode_decode_vectors() {
    let mut report = Report::new("04-message-encode-decode.json");
    for case in load_vectors("04-message-encode-decode.json") {
        let want = &case["decoded"];
        let encoded = hex(str_field(&case, "encoded"));
        let result = (|| {
            let message = Message::decode(&encoded, now()).map_err(|e| format!("decode: {e:?}"))?;
            let v = message.sender_version();
            let got = serde_json::json!({
                "type": message.kind().type_number(),
                "subtype": message.kind().subtype_number(),
                "language_object": message.language_object(),
                "sender_version": {"major": v.major, "minor": v.minor, "patch": v.patch},
                "additional_tlvs": message.additional_tlvs().iter().map(|t| t.tlv_type).collect::<Vec<_>>(),
            });
            if got != *want {
                return Err(format!("decoded as {got}"));
            }
            if message.encode() != encoded {
                return Err("re-encoding differs from the vector bytes".to_owned());
            }
            let built = build(want)?;
            if built != message {
                return Err(format!("built {built:?}"));
            }
            if built.encode() != encoded {
                return Err("built message encodes differently".to_owned());
            }
            Ok(())
        })();
        report.check(str_field(&case, "test_name"), result);
    }
    report.finish(3);
}

/// Builds the message a `decoded` object describes through the public constructors.
fn build(decoded: &Value) -> Result<Message, String> {
    let lo = &decoded["language_object"];
    let v = &decoded["sender_version"];
    let part = |k: &str| {
        v[k].as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or("version part")
    };
    let version = Version::new(part("major")?, part("minor")?, part("patch")?);
    let timestamp = Timestamp::from_unix_secs(lo["timestamp"].as_u64().ok_or("timestamp")?);
    let uuid: Uuid = str_field(lo, "request_uuid")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let message = match str_field(lo, "type") {
        "REQUEST" => Message::request(version, timestamp, uuid, RequestSubtype::TransportPing),
        _ => Message::notification(
            version,
            timestamp,
            Some(uuid),
            NotificationSubtype::TransportPong,
        ),
    }
    .map_err(|e| format!("{e:?}"))?;
    let names = lo["features"]
        .as_array()
        .ok_or("features")?
        .iter()
        .map(|f| f.as_str().map(str::to_owned).ok_or("feature"))
        .collect::<Result<Vec<_>, _>>()?;
    let data = lo["feature_data"]
        .as_object()
        .ok_or("feature_data")?
        .clone();
    let features = Features::new(names, data).map_err(|e| format!("{e:?}"))?;
    Ok(message.with_features(features))
}

/// Assembles an error case: hex chunks as bytes, object chunks as Python's `json.dumps`
/// (which is how the reference test builds them). Checks that each JSON chunk has the length
/// its preceding record header announces, which validates the `json.dumps` emulation.
fn assemble(chunks: &[Value]) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let mut previous: Option<&str> = None;
    for chunk in chunks {
        match chunk {
            Value::String(h) => {
                bytes.extend(hex(h));
                previous = Some(h);
            }
            Value::Object(_) => {
                let text = json::to_string(chunk);
                let header = hex(previous.ok_or("object chunk without a header")?);
                let (tlv_type, rest) = bigsize::decode(&header).map_err(|e| e.to_string())?;
                let (length, _) = bigsize::decode(rest).map_err(|e| e.to_string())?;
                if tlv_type != 2 || length != text.len() as u64 {
                    return Err(format!(
                        "header {header:?} does not announce {} bytes",
                        text.len()
                    ));
                }
                bytes.extend(text.into_bytes());
                previous = None;
            }
            other => return Err(format!("unexpected chunk {other}")),
        }
    }
    Ok(bytes)
}

/// Maps the reference's error strings to our variants; panics on unknown strings.
fn matches_reference(reference: &str, e: &MessageError) -> bool {
    use BigSizeError::UnexpectedEnd;
    use MessageError as E;
    match reference {
        "could not get type: underrun while peeking a uint8" => {
            matches!(e, E::Tlv(TlvError::Type(UnexpectedEnd { .. })))
        }
        "could not get length: underrun while peeking a uint8" => {
            matches!(e, E::Tlv(TlvError::Length(UnexpectedEnd { .. })))
        }
        "value truncated" => matches!(e, E::Tlv(TlvError::Truncated { .. })),
        "extra bytes after message TLV" => matches!(e, E::TrailingBytes),
        "unknown TLV" => matches!(e, E::NotAMessage(1)),
        "invalid TLVs in message" => matches!(e, E::InvalidTlvs(_)),
        "no TLVs in message" => matches!(e, E::NoTlvs),
        "missing sender_version TLV" => {
            matches!(
                e,
                E::UnexpectedTlv {
                    expected: MessageTlv::SenderVersion,
                    found: 1
                }
            )
        }
        "malformed sender_version TLV: unable to decode version from bytes" => {
            matches!(e, E::SenderVersionLength(2))
        }
        "missing message_type TLV" => matches!(e, E::MissingTlv(MessageTlv::MessageType)),
        "no message_type TLV after sender_version" => {
            matches!(
                e,
                E::UnexpectedTlv {
                    expected: MessageTlv::MessageType,
                    found: 4
                }
            )
        }
        "malformed message_type type value: underrun while popping a u8" => {
            matches!(e, E::MissingTypeByte)
        }
        "malformed message_type subtype value: underrun while peeking a uint8" => {
            matches!(e, E::Subtype(UnexpectedEnd { .. }))
        }
        "extra bytes in message_type TLV" => matches!(e, E::MessageTypeTrailingBytes),
        "missing language_object TLV" => matches!(e, E::MissingTlv(MessageTlv::LanguageObject)),
        "no language_object TLV after message_type" => {
            matches!(
                e,
                E::UnexpectedTlv {
                    expected: MessageTlv::LanguageObject,
                    found: 3
                }
            )
        }
        "could not decode json object" => matches!(e, E::InvalidJson),
        "timestamp not in language_object" => matches!(e, E::Missing(F::Timestamp)),
        "timestamp not an integer or float" => matches!(e, E::WrongType(F::Timestamp)),
        "timestamp is not a positive value" => matches!(e, E::Negative(F::Timestamp)),
        "timestamp in the future" => matches!(e, E::TimestampInFuture),
        "version not in language_object" => matches!(e, E::Missing(F::Version)),
        "version not an object" => matches!(e, E::WrongType(F::Version)),
        "version missing major value" => matches!(e, E::Missing(F::VersionMajor)),
        "version major not integer" => matches!(e, E::WrongType(F::VersionMajor)),
        "version major negative" => matches!(e, E::Negative(F::VersionMajor)),
        "version major greater than 255" => matches!(e, E::TooLarge(F::VersionMajor)),
        "version missing minor value" => matches!(e, E::Missing(F::VersionMinor)),
        "version minor not integer" => matches!(e, E::WrongType(F::VersionMinor)),
        "version minor negative" => matches!(e, E::Negative(F::VersionMinor)),
        "version minor greater than 255" => matches!(e, E::TooLarge(F::VersionMinor)),
        "version missing patch value" => matches!(e, E::Missing(F::VersionPatch)),
        "version patch not integer" => matches!(e, E::WrongType(F::VersionPatch)),
        "version patch negative" => matches!(e, E::Negative(F::VersionPatch)),
        "version patch greater than 255" => matches!(e, E::TooLarge(F::VersionPatch)),
        "language_object major version doesn't match TLV" => {
            matches!(e, E::VersionMismatch(F::VersionMajor))
        }
        "language_object minor version doesn't match TLV" => {
            matches!(e, E::VersionMismatch(F::VersionMinor))
        }
        "language_object patch version doesn't match TLV" => {
            matches!(e, E::VersionMismatch(F::VersionPatch))
        }
        "language_object features value not included" => {
            matches!(e, E::Features(FeaturesError::MissingFeatures))
        }
        "language_object features value not a list" => {
            matches!(e, E::Features(FeaturesError::FeaturesNotList))
        }
        "language_object feature_data value not included" => {
            matches!(e, E::Features(FeaturesError::MissingFeatureData))
        }
        "language_object feature_data value not an object" => {
            matches!(e, E::Features(FeaturesError::FeatureDataNotObject))
        }
        "language_object feature_data for unknown feature" => {
            matches!(e, E::Features(FeaturesError::UndeclaredFeatureData(f)) if f == "feature_two")
        }
        "language_object feature_data value is null" => {
            matches!(e, E::Features(FeaturesError::NullFeatureData(f)) if f == "feature_one")
        }
        "language_object missing type" => matches!(e, E::Missing(F::Type)),
        "language_object type is not a string" => matches!(e, E::WrongType(F::Type)),
        "language_object type is an empty string" => matches!(e, E::Empty(F::Type)),
        "language_object missing subtype" => matches!(e, E::Missing(F::Subtype)),
        "language_object subtype is not a string" => matches!(e, E::WrongType(F::Subtype)),
        "language_object subtype is an empty string" => matches!(e, E::Empty(F::Subtype)),
        "no subtype_data included" => matches!(e, E::Missing(F::SubtypeData)),
        "subtype_data not of object type" => matches!(e, E::WrongType(F::SubtypeData)),
        "unknown message type" => matches!(e, E::UnknownMessageType(t) if t == "NOT_A_REAL_TYPE"),
        "unknown message subtype parser" => {
            matches!(e, E::UnknownSubtype { message_type: "REQUEST", subtype } if subtype == "NOT_A_REAL_SUBTYPE")
        }
        "no request_uuid for REQUEST" | "no request_uuid for NOTIFICATION" => {
            matches!(e, E::Missing(F::RequestUuid))
        }
        "request_uuid is not a string" => matches!(e, E::WrongType(F::RequestUuid)),
        "uuid is not uuid version 4" => matches!(e, E::RequestUuid(UuidError::NotVersion4)),
        "invalid uuid" => matches!(e, E::RequestUuid(UuidError::Invalid)),
        "aditional TLVs duplicates of defined values" => matches!(e, E::DuplicateTlv(0)),
        other => panic!("no mapping for reference error {other:?}"),
    }
}

#[test]
fn message_decode_error_vectors() {
    let mut report = Report::new("04-message-decode-error.json");
    for case in load_vectors("04-message-decode-error.json") {
        let reference = str_field(&case, "decode_error");
        let result = (|| {
            let chunks = case["input_chunks"].as_array().ok_or("input_chunks")?;
            let bytes = assemble(chunks)?;
            match Message::decode(&bytes, now()) {
                Ok(m) => Err(format!("decoded, expected {reference:?}: {m:?}")),
                Err(e) if matches_reference(reference, &e) => Ok(()),
                Err(e) => Err(format!("got {e:?}, expected {reference:?}")),
            }
        })();
        report.check(str_field(&case, "test_name"), result);
    }
    report.finish(62);
}

#[test]
fn future_rule_uses_the_given_clock() {
    let message = Message::request(
        Version::new(0, 99, 99),
        Timestamp::from_unix_secs(1_700_003_600),
        "a5b32936-3143-4856-bdea-7b3dda7aa5e8"
            .parse()
            .expect("uuid"),
        RequestSubtype::TransportPing,
    )
    .expect("valid");
    let bytes = message.encode();
    assert_eq!(Message::decode(&bytes, now()).as_ref(), Ok(&message));
    let earlier = now() - Duration::from_secs(1);
    assert_eq!(
        Message::decode(&bytes, earlier),
        Err(MessageError::TimestampInFuture)
    );
    assert!(matches!(message.kind(), MessageKind::Request { .. }));
}
