//! v1 messages: a TLV frame around a JSON "language object"
//! (RFC `04-messages.md`, py-moneysocket `moneysocket1/message/message.py`).
//!
//! ```text
//! 0 message { 0 sender_version   u8 major, minor, patch
//!             1 message_type     u8 type (0 request, 1 notification) ‖ BigSize subtype
//!             2 language_object  UTF-8 JSON object
//!             further records    kept as additional TLVs (types above 2) }
//! ```
//!
//! The language object repeats what the binary header says — `version`, `type`, `subtype` —
//! and adds `timestamp`, `subtype_data`, `request_uuid` (a version-4 UUID for requests; the
//! referenced request's UUID or `null` for notifications), `features` and `feature_data`.
//! Decoding checks in the reference's order, so the first error is the one its vectors name.
//! Beyond the reference we check that additional records are in increasing order and — last
//! of all — that the header's type and subtype numbers match the JSON names. The reference's
//! version of that check never fires (its lookup tables are keyed the wrong way round), and its
//! error vectors all carry a REQUEST header whatever their JSON says; checking it last keeps
//! each vector's intended error first while still refusing contradictory messages.
//!
//! Encoding writes the language object as Python's `json.dumps` does, fields in the
//! reference's order, so our bytes equal the reference's; decoders must not rely on that.

mod error;
mod kind;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use uuid::Uuid;

pub use error::{MessageError, MessageField, MessageTlv};
pub use kind::{
    notification_subtype, request_subtype, MessageKind, NotificationSubtype, RequestSubtype,
    NOTIFICATION_TYPE, REQUEST_TYPE,
};

use crate::encoding::tlv::{self, RawTlv};
use crate::encoding::{bigsize, json};
use crate::error::UuidError;
use crate::ids;
use crate::timestamp::Timestamp;
use crate::v1::features::Features;
use crate::v1::version::Version;

/// Largest message accepted for decoding, in bytes (see [`crate::v0::message::MAX_MESSAGE_LEN`]
/// for the reasoning; v1 messages carry the same kind of content).
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// How far in the future a timestamp may lie before the message is refused, in seconds.
/// Allows for clock skew between the two ends, as the reference does.
pub const MAX_CLOCK_SKEW_SECS: f64 = 3600.0;

const MESSAGE_TLV_TYPE: u64 = 0;
const SENDER_VERSION_TLV_TYPE: u64 = 0;
const MESSAGE_TYPE_TLV_TYPE: u64 = 1;
const LANGUAGE_OBJECT_TLV_TYPE: u64 = 2;

const KNOWN_KEYS: [&str; 8] = [
    "timestamp",
    "version",
    "type",
    "subtype",
    "subtype_data",
    "request_uuid",
    "features",
    "feature_data",
];

/// A validated v1 message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    sender_version: Version,
    timestamp: Timestamp,
    kind: MessageKind,
    subtype_data: Map<String, Value>,
    features: Features,
    extra: Map<String, Value>,
    additional_tlvs: Vec<RawTlv>,
}

impl Message {
    /// A request with no subtype data, features or additional records.
    ///
    /// # Errors
    ///
    /// [`MessageError::RequestUuid`] unless `request_uuid` is a version-4 UUID.
    pub fn request(
        sender_version: Version,
        timestamp: Timestamp,
        request_uuid: Uuid,
        subtype: RequestSubtype,
    ) -> Result<Self, MessageError> {
        Self::new(
            sender_version,
            timestamp,
            MessageKind::Request {
                request_uuid,
                subtype,
            },
        )
    }

    /// A notification with no subtype data, features or additional records.
    ///
    /// # Errors
    ///
    /// [`MessageError::RequestUuid`] unless `request_uuid` is absent or a version-4 UUID;
    /// [`MessageError::PongWithoutRequestUuid`] for a pong that references nothing.
    pub fn notification(
        sender_version: Version,
        timestamp: Timestamp,
        request_uuid: Option<Uuid>,
        subtype: NotificationSubtype,
    ) -> Result<Self, MessageError> {
        Self::new(
            sender_version,
            timestamp,
            MessageKind::Notification {
                request_uuid,
                subtype,
            },
        )
    }

    fn new(
        sender_version: Version,
        timestamp: Timestamp,
        kind: MessageKind,
    ) -> Result<Self, MessageError> {
        if kind.request_uuid().is_some_and(|u| !ids::is_v4(&u)) {
            return Err(MessageError::RequestUuid(UuidError::NotVersion4));
        }
        check_subtype_rules(&kind)?;
        Ok(Message {
            sender_version,
            timestamp,
            kind,
            subtype_data: Map::new(),
            features: Features::none(),
            extra: Map::new(),
            additional_tlvs: Vec::new(),
        })
    }

    /// Sets the subtype data.
    #[must_use]
    pub fn with_subtype_data(mut self, subtype_data: Map<String, Value>) -> Self {
        self.subtype_data = subtype_data;
        self
    }

    /// Sets the features.
    #[must_use]
    pub fn with_features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }

    /// Sets the records appended after the language object.
    ///
    /// # Errors
    ///
    /// [`MessageError::DuplicateTlv`] or [`MessageError::AdditionalTlvOrder`] unless the
    /// types are above 2 and strictly increasing.
    pub fn with_additional_tlvs(mut self, tlvs: Vec<RawTlv>) -> Result<Self, MessageError> {
        check_additional_order(tlvs.iter().map(|t| t.tlv_type))?;
        self.additional_tlvs = tlvs;
        Ok(self)
    }

    /// The sender's protocol version.
    pub fn sender_version(&self) -> Version {
        self.sender_version
    }

    /// When the sender made the message.
    pub fn timestamp(&self) -> &Timestamp {
        &self.timestamp
    }

    /// Request or notification, with subtype and UUID.
    pub fn kind(&self) -> &MessageKind {
        &self.kind
    }

    /// The subtype's data.
    pub fn subtype_data(&self) -> &Map<String, Value> {
        &self.subtype_data
    }

    /// The features.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Language-object keys this implementation does not interpret (kept for re-encoding).
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }

    /// Records after the language object.
    pub fn additional_tlvs(&self) -> &[RawTlv] {
        &self.additional_tlvs
    }

    /// The language object, as a JSON value.
    pub fn language_object(&self) -> Value {
        let mut map = self.extra.clone();
        for (key, value) in self.known_fields() {
            map.insert(key.to_owned(), value);
        }
        Value::Object(map)
    }

    fn known_fields(&self) -> [(&'static str, Value); 8] {
        let v = self.sender_version;
        let mut version = Map::new();
        version.insert("major".into(), Value::from(v.major));
        version.insert("minor".into(), Value::from(v.minor));
        version.insert("patch".into(), Value::from(v.patch));
        let request_uuid = self
            .kind
            .request_uuid()
            .map_or(Value::Null, |u| Value::String(u.hyphenated().to_string()));
        [
            (
                "timestamp",
                Value::Number(self.timestamp.as_number().clone()),
            ),
            ("version", Value::Object(version)),
            ("type", Value::String(self.kind.type_name().to_owned())),
            (
                "subtype",
                Value::String(self.kind.subtype_name().to_owned()),
            ),
            ("subtype_data", Value::Object(self.subtype_data.clone())),
            ("request_uuid", request_uuid),
            ("features", self.features.names_json()),
            ("feature_data", self.features.data_json()),
        ]
    }

    /// The message record.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = tlv::to_vec(SENDER_VERSION_TLV_TYPE, &self.sender_version.to_bytes());
        let mut message_type = vec![self.kind.type_number()];
        bigsize::encode(self.kind.subtype_number(), &mut message_type);
        tlv::encode(MESSAGE_TYPE_TLV_TYPE, &message_type, &mut body);
        let known = self.known_fields();
        let members = known
            .iter()
            .map(|(k, v)| (*k, v))
            .chain(self.extra.iter().map(|(k, v)| (k.as_str(), v)));
        let mut language_object = String::new();
        json::write_object(&mut language_object, members);
        tlv::encode(
            LANGUAGE_OBJECT_TLV_TYPE,
            language_object.as_bytes(),
            &mut body,
        );
        for record in &self.additional_tlvs {
            record.encode(&mut body);
        }
        tlv::to_vec(MESSAGE_TLV_TYPE, &body)
    }

    /// Decodes a message record. `now` is the receiver's clock, used to refuse timestamps
    /// more than [`MAX_CLOCK_SKEW_SECS`] ahead; pass `SystemTime::now()`.
    ///
    /// # Errors
    ///
    /// See [`MessageError`].
    pub fn decode(bytes: &[u8], now: SystemTime) -> Result<Self, MessageError> {
        use MessageError as E;
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(E::TooLong {
                len: bytes.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let (outer, rest) = tlv::Tlv::decode(bytes).map_err(E::Tlv)?;
        if !rest.is_empty() {
            return Err(E::TrailingBytes);
        }
        if outer.tlv_type != MESSAGE_TLV_TYPE {
            return Err(E::NotAMessage(outer.tlv_type));
        }
        tlv::validate(outer.value).map_err(E::InvalidTlvs)?;
        if outer.value.is_empty() {
            return Err(E::NoTlvs);
        }
        // Validated above; errors are mapped rather than unwrapped all the same.
        let mut records = tlv::iter(outer.value);
        let mut next = |expected: MessageTlv, tlv_type: u64| match records.next().transpose() {
            Err(e) => Err(E::InvalidTlvs(e)),
            Ok(None) => Err(E::MissingTlv(expected)),
            Ok(Some(r)) if r.tlv_type == tlv_type => Ok(r.value),
            Ok(Some(r)) => Err(E::UnexpectedTlv {
                expected,
                found: r.tlv_type,
            }),
        };

        let version = next(MessageTlv::SenderVersion, SENDER_VERSION_TLV_TYPE)?;
        let sender_version =
            Version::from_bytes(version).ok_or(E::SenderVersionLength(version.len()))?;

        let message_type = next(MessageTlv::MessageType, MESSAGE_TYPE_TLV_TYPE)?;
        let (&type_byte, subtype) = message_type.split_first().ok_or(E::MissingTypeByte)?;
        let (subtype_number, rest) = bigsize::decode(subtype).map_err(E::Subtype)?;
        if !rest.is_empty() {
            return Err(E::MessageTypeTrailingBytes);
        }

        let language_object = next(MessageTlv::LanguageObject, LANGUAGE_OBJECT_TLV_TYPE)?;
        let value: Value = serde_json::from_slice(language_object).map_err(|_| E::InvalidJson)?;
        let object = value.as_object().ok_or(E::LanguageObjectNotObject)?;

        let mut message = decode_language_object(object, sender_version, now)?;

        let additional = records
            .map(|r| r.map(|r| r.to_raw()).map_err(E::InvalidTlvs))
            .collect::<Result<Vec<_>, _>>()?;
        check_additional_order(additional.iter().map(|t| t.tlv_type))?;
        message.additional_tlvs = additional;

        // Last, so that the reference's error vectors (which all carry type 0 in the header,
        // whatever their JSON says) still report the error they were written for.
        if type_byte != message.kind.type_number() {
            return Err(E::TypeMismatch {
                tlv: type_byte,
                json: message.kind.type_name(),
            });
        }
        if subtype_number != message.kind.subtype_number() {
            return Err(E::SubtypeMismatch {
                tlv: subtype_number,
                json: message.kind.subtype_name(),
                expected: message.kind.subtype_number(),
            });
        }
        Ok(message)
    }
}

/// Validates the language object in the order py-moneysocket does.
fn decode_language_object(
    object: &Map<String, Value>,
    sender_version: Version,
    now: SystemTime,
) -> Result<Message, MessageError> {
    use MessageError as E;
    use MessageField as F;

    let timestamp = match object.get("timestamp") {
        None => return Err(E::Missing(F::Timestamp)),
        Some(Value::Number(n)) => {
            Timestamp::from_number(n.clone()).ok_or(E::Negative(F::Timestamp))?
        }
        Some(_) => return Err(E::WrongType(F::Timestamp)),
    };
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    if timestamp.as_secs_f64() > now_secs + MAX_CLOCK_SKEW_SECS {
        return Err(E::TimestampInFuture);
    }

    let version = match object.get("version") {
        None => return Err(E::Missing(F::Version)),
        Some(Value::Object(v)) => v,
        Some(_) => return Err(E::WrongType(F::Version)),
    };
    let part = |key: &str, field: F| -> Result<u8, MessageError> {
        match version.get(key) {
            None => Err(E::Missing(field)),
            Some(Value::Number(n)) if json::is_integer(n) => {
                let n = n.as_u64().ok_or(E::Negative(field))?;
                u8::try_from(n).map_err(|_| E::TooLarge(field))
            }
            Some(_) => Err(E::WrongType(field)),
        }
    };
    let json_version = Version::new(
        part("major", F::VersionMajor)?,
        part("minor", F::VersionMinor)?,
        part("patch", F::VersionPatch)?,
    );
    if json_version.major != sender_version.major {
        return Err(E::VersionMismatch(F::VersionMajor));
    }
    if json_version.minor != sender_version.minor {
        return Err(E::VersionMismatch(F::VersionMinor));
    }
    if json_version.patch != sender_version.patch {
        return Err(E::VersionMismatch(F::VersionPatch));
    }

    let features = Features::from_json_map(object).map_err(E::Features)?;

    let non_empty_str = |key: &str, field: F| -> Result<&str, MessageError> {
        match object.get(key) {
            None => Err(E::Missing(field)),
            Some(Value::String(s)) if s.is_empty() => Err(E::Empty(field)),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(E::WrongType(field)),
        }
    };
    let type_name = non_empty_str("type", F::Type)?;
    let subtype_name = non_empty_str("subtype", F::Subtype)?;

    let request_uuid = match (type_name, object.get("request_uuid")) {
        ("REQUEST" | "NOTIFICATION", None) => return Err(E::Missing(F::RequestUuid)),
        ("NOTIFICATION", Some(Value::Null)) => None,
        ("REQUEST" | "NOTIFICATION", Some(Value::String(s))) => {
            Some(ids::parse_v4(s).map_err(E::RequestUuid)?)
        }
        ("REQUEST" | "NOTIFICATION", Some(_)) => return Err(E::WrongType(F::RequestUuid)),
        (other, _) => return Err(E::UnknownMessageType(other.to_owned())),
    };

    let subtype_data = match object.get("subtype_data") {
        None => return Err(E::Missing(F::SubtypeData)),
        Some(Value::Object(d)) => d.clone(),
        Some(_) => return Err(E::WrongType(F::SubtypeData)),
    };
    let kind = match type_name {
        "REQUEST" => {
            let subtype =
                RequestSubtype::from_name(subtype_name).ok_or_else(|| E::UnknownSubtype {
                    message_type: "REQUEST",
                    subtype: subtype_name.to_owned(),
                })?;
            // `request_uuid` of a request was checked above to be a string.
            let request_uuid = request_uuid.ok_or(E::WrongType(F::RequestUuid))?;
            MessageKind::Request {
                request_uuid,
                subtype,
            }
        }
        _ => {
            let subtype =
                NotificationSubtype::from_name(subtype_name).ok_or_else(|| E::UnknownSubtype {
                    message_type: "NOTIFICATION",
                    subtype: subtype_name.to_owned(),
                })?;
            MessageKind::Notification {
                request_uuid,
                subtype,
            }
        }
    };
    check_subtype_rules(&kind)?;

    let extra = object
        .iter()
        .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Message {
        sender_version,
        timestamp,
        kind,
        subtype_data,
        features,
        extra,
        additional_tlvs: Vec::new(),
    })
}

/// Per-subtype rules on the common fields.
fn check_subtype_rules(kind: &MessageKind) -> Result<(), MessageError> {
    match kind {
        MessageKind::Notification {
            request_uuid: None,
            subtype: NotificationSubtype::TransportPong,
        } => Err(MessageError::PongWithoutRequestUuid),
        _ => Ok(()),
    }
}

fn check_additional_order(types: impl Iterator<Item = u64>) -> Result<(), MessageError> {
    let mut previous = LANGUAGE_OBJECT_TLV_TYPE;
    for found in types {
        if found <= LANGUAGE_OBJECT_TLV_TYPE {
            return Err(MessageError::DuplicateTlv(found));
        }
        if found <= previous {
            return Err(MessageError::AdditionalTlvOrder { previous, found });
        }
        previous = found;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping() -> Message {
        Message::request(
            Version::new(0, 99, 99),
            Timestamp::from_unix_secs(1000),
            Uuid::from_u128(0xa5b3_2936_3143_4856_bdea_7b3d_da7a_a5e8),
            RequestSubtype::TransportPing,
        )
        .expect("valid ping")
    }

    /// Re-frames `message`'s records with a different message-type record.
    fn with_header(message: &Message, header: &[u8]) -> Vec<u8> {
        let encoded = message.encode();
        let (outer, _) = tlv::Tlv::decode(&encoded).expect("record");
        let mut body = Vec::new();
        for record in tlv::iter(outer.value) {
            let record = record.expect("valid");
            let value = if record.tlv_type == MESSAGE_TYPE_TLV_TYPE {
                header
            } else {
                record.value
            };
            tlv::encode(record.tlv_type, value, &mut body);
        }
        tlv::to_vec(MESSAGE_TLV_TYPE, &body)
    }

    #[test]
    fn header_must_agree_with_the_json() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(2000);
        let message = ping();
        assert_eq!(
            Message::decode(&with_header(&message, &[0, 0]), now),
            Ok(message.clone())
        );
        assert_eq!(
            Message::decode(&with_header(&message, &[1, 0]), now),
            Err(MessageError::TypeMismatch {
                tlv: 1,
                json: "REQUEST"
            })
        );
        assert_eq!(
            Message::decode(&with_header(&message, &[0, 1]), now),
            Err(MessageError::SubtypeMismatch {
                tlv: 1,
                json: "TRANSPORT_PING",
                expected: 0
            })
        );
    }

    #[test]
    fn additional_records_are_ordered_and_kept() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(2000);
        let extra = vec![
            RawTlv {
                tlv_type: 3,
                value: vec![1],
            },
            RawTlv {
                tlv_type: 9,
                value: vec![],
            },
        ];
        let message = ping().with_additional_tlvs(extra.clone()).expect("ordered");
        assert_eq!(
            Message::decode(&message.encode(), now).map(|m| m.additional_tlvs().to_vec()),
            Ok(extra)
        );
        let reversed = vec![
            RawTlv {
                tlv_type: 9,
                value: vec![],
            },
            RawTlv {
                tlv_type: 3,
                value: vec![],
            },
        ];
        assert_eq!(
            ping().with_additional_tlvs(reversed),
            Err(MessageError::AdditionalTlvOrder {
                previous: 9,
                found: 3
            })
        );
        assert_eq!(
            ping().with_additional_tlvs(vec![RawTlv {
                tlv_type: 1,
                value: vec![]
            }]),
            Err(MessageError::DuplicateTlv(1))
        );
    }

    #[test]
    fn constructors_enforce_uuid_rules() {
        let v = Version::new(1, 0, 0);
        let t = Timestamp::from_unix_secs(1);
        assert_eq!(
            Message::request(
                v,
                t.clone(),
                Uuid::from_u128(1),
                RequestSubtype::TransportPing
            ),
            Err(MessageError::RequestUuid(UuidError::NotVersion4))
        );
        assert_eq!(
            Message::notification(v, t, None, NotificationSubtype::TransportPong),
            Err(MessageError::PongWithoutRequestUuid)
        );
    }

    #[test]
    fn unknown_json_keys_survive_a_round_trip() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(2000);
        let message = ping();
        let mut object = match message.language_object() {
            Value::Object(map) => map,
            other => panic!("{other}"),
        };
        object.insert("zzz_future_field".into(), Value::from(7));
        let mut text = String::new();
        json::write_value(&mut text, &Value::Object(object));
        let mut body = tlv::to_vec(SENDER_VERSION_TLV_TYPE, &[0, 99, 99]);
        tlv::encode(MESSAGE_TYPE_TLV_TYPE, &[0, 0], &mut body);
        tlv::encode(LANGUAGE_OBJECT_TLV_TYPE, text.as_bytes(), &mut body);
        let bytes = tlv::to_vec(MESSAGE_TLV_TYPE, &body);
        let decoded = Message::decode(&bytes, now).expect("valid");
        assert_eq!(
            decoded.extra().get("zzz_future_field"),
            Some(&Value::from(7))
        );
        assert_eq!(Message::decode(&decoded.encode(), now), Ok(decoded));
    }

    #[test]
    fn size_and_shape_limits() {
        let now = SystemTime::now();
        let big = vec![0u8; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            Message::decode(&big, now),
            Err(MessageError::TooLong {
                len: MAX_MESSAGE_LEN + 1,
                max: MAX_MESSAGE_LEN
            })
        );
        let mut body = tlv::to_vec(SENDER_VERSION_TLV_TYPE, &[0, 0, 0]);
        tlv::encode(MESSAGE_TYPE_TLV_TYPE, &[0, 0], &mut body);
        tlv::encode(LANGUAGE_OBJECT_TLV_TYPE, b"[1, 2]", &mut body);
        assert_eq!(
            Message::decode(&tlv::to_vec(MESSAGE_TLV_TYPE, &body), now),
            Err(MessageError::LanguageObjectNotObject)
        );
    }
}
