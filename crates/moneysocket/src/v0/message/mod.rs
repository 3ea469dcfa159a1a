//! v0 messages: one JSON object per WebSocket binary frame.
//!
//! Every message carries `timestamp`, `protocol: "Moneysocket"`, `protocol_version` and
//! `message_class` (`REQUEST` or `NOTIFICATION`); requests add `request_uuid` and
//! `request_name`, notifications `notification_uuid`, `request_reference_uuid` (or `null`)
//! and `notification_name`, and each name its own fields. Decoding validates in the order
//! py-moneysocket does (`message/message.py`, `request/request.py`,
//! `notification/notification.py` and the per-name classes), so the first error reported is
//! the one the reference would report. Unknown extra keys are ignored, as there.
//!
//! moip adds a few optional keys that legacy apps ignore: `description` on `REQUEST_INVOICE`,
//! `msats` on `REQUEST_PAY` (for amountless invoices), `fee_msats` on `NOTIFY_PREIMAGE`,
//! `error_code` on `NOTIFY_ERROR`, and `moip_auth_hello` on `REQUEST_PROVIDER` and
//! `NOTIFY_PROVIDER`, which negotiates the authenticated-encryption layer
//! ([`crate::secure`]). Absent keys are not written, so messages without them encode exactly
//! as the references do.
//!
//! Encryption is not this module's concern: a frame is handed here once it is known to be
//! clear text (the caller decrypts first). [`Message::requires_cleartext`] tells which
//! messages must travel unencrypted.

mod error;
mod error_code;
mod notification;
mod payment;
mod request;

use std::num::NonZeroU64;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};
use uuid::Uuid;

pub use error::{MessageError, MessageField};
pub use error_code::ErrorCode;
pub use notification::{Notification, NotificationKind};
pub use payment::{Bolt11, ExtTooLong, NotBolt11, Preimage, PreimageExt, MAX_EXT_CHARS};
pub use request::{Request, RequestKind, MAX_DESCRIPTION_BYTES};

use crate::encoding::json::is_integer;
use crate::ids;
use crate::seed::RendezvousId;
use crate::timestamp::Timestamp;
use crate::v0::provider_info::ProviderInfo;

/// The `protocol` value of every v0 message.
pub const PROTOCOL: &str = "Moneysocket";
/// The `protocol_version` the references send.
pub const PROTOCOL_VERSION: &str = "0.0.0";
/// Largest frame accepted for decoding, in bytes.
///
/// The biggest legitimate v0 messages are a `NOTIFY_PREIMAGE` with a 4096-character `ext` or
/// an invoice with many route hints, both a few KiB; 64 KiB leaves an order of magnitude of
/// headroom while bounding what a peer can make us parse and allocate (the references have
/// no limit at all).
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

/// A v0 message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// When the sender created it.
    pub timestamp: Timestamp,
    /// The sender's `protocol_version` string; the references send `"0.0.0"` and accept any.
    pub protocol_version: String,
    /// The request or notification.
    pub body: Body,
    /// The sender's hello for the authenticated-encryption layer ([`crate::secure`]), offered
    /// on `REQUEST_PROVIDER` and accepted on `NOTIFY_PROVIDER`; ignored on other messages.
    pub auth_hello: Option<Vec<u8>>,
}

/// The longest `moip_auth_hello` accepted, in bytes (a hello is 71).
const MAX_AUTH_HELLO: usize = 128;

/// The two message classes.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `message_class: "REQUEST"`.
    Request(Request),
    /// `message_class: "NOTIFICATION"`.
    Notification(Notification),
}

impl Message {
    /// A message stamped with `timestamp` and the reference `protocol_version`.
    pub fn new(timestamp: Timestamp, body: Body) -> Self {
        Message {
            timestamp,
            protocol_version: PROTOCOL_VERSION.to_owned(),
            body,
            auth_hello: None,
        }
    }

    /// A new request stamped now, with a fresh random `request_uuid`.
    pub fn request(kind: RequestKind) -> Self {
        Message::new(
            Timestamp::now(),
            Body::Request(Request {
                request_uuid: ids::random_v4(),
                kind,
            }),
        )
    }

    /// A new notification stamped now, with a fresh random `notification_uuid`, answering
    /// `request_reference_uuid` (or unsolicited when `None`).
    pub fn notification(request_reference_uuid: Option<Uuid>, kind: NotificationKind) -> Self {
        Message::new(
            Timestamp::now(),
            Body::Notification(Notification {
                notification_uuid: ids::random_v4(),
                request_reference_uuid,
                kind,
            }),
        )
    }

    /// The `request_name` or `notification_name`.
    pub fn name(&self) -> &'static str {
        match &self.body {
            Body::Request(r) => r.kind.name(),
            Body::Notification(n) => n.kind.name(),
        }
    }

    /// True for the rendezvous messages, which the relay must read and so travel in the
    /// clear; every other message must be encrypted.
    pub fn requires_cleartext(&self) -> bool {
        matches!(
            &self.body,
            Body::Request(Request {
                kind: RequestKind::Rendezvous { .. },
                ..
            }) | Body::Notification(Notification {
                kind: NotificationKind::Rendezvous { .. }
                    | NotificationKind::RendezvousNotReady { .. }
                    | NotificationKind::RendezvousEnd { .. },
                ..
            })
        )
    }

    /// Decodes a clear-text frame.
    ///
    /// # Errors
    ///
    /// See [`MessageError`]; the size limit is checked before parsing.
    pub fn decode(frame: &[u8]) -> Result<Self, MessageError> {
        if frame.len() > MAX_MESSAGE_LEN {
            return Err(MessageError::TooLong {
                len: frame.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let value: Value = serde_json::from_slice(frame).map_err(|_| MessageError::NotJson)?;
        Self::from_json_value(&value)
    }

    /// The frame bytes (compact JSON).
    pub fn encode(&self) -> Vec<u8> {
        self.to_json_value().to_string().into_bytes()
    }

    /// Validates a parsed JSON message.
    ///
    /// # Errors
    ///
    /// See [`MessageError`].
    pub fn from_json_value(value: &Value) -> Result<Self, MessageError> {
        use MessageField as F;
        let map = value.as_object().ok_or(MessageError::NotObject)?;
        let class = required_str(map, F::MessageClass)?;
        if class != "REQUEST" && class != "NOTIFICATION" {
            return Err(MessageError::UnknownMessageClass(class.to_owned()));
        }
        let timestamp = match map.get("timestamp") {
            None => return Err(MessageError::Missing(F::Timestamp)),
            Some(Value::Number(n)) => {
                Timestamp::from_number(n.clone()).ok_or(MessageError::NegativeTimestamp)?
            }
            Some(_) => return Err(MessageError::WrongType(F::Timestamp)),
        };
        let protocol = required_str(map, F::Protocol)?;
        if protocol != PROTOCOL {
            return Err(MessageError::UnknownProtocol(protocol.to_owned()));
        }
        let protocol_version = required_str(map, F::ProtocolVersion)?.to_owned();
        let body = if class == "REQUEST" {
            Body::Request(decode_request(map)?)
        } else {
            Body::Notification(decode_notification(map)?)
        };
        let auth_hello = match map.get(key(F::AuthHello)) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= 2 * MAX_AUTH_HELLO => Some(
                crate::encoding::hex::decode_vec(s).map_err(|error| MessageError::Hex {
                    field: F::AuthHello,
                    error,
                })?,
            ),
            Some(Value::String(_)) => return Err(MessageError::OutOfRange(F::AuthHello)),
            Some(_) => return Err(MessageError::WrongType(F::AuthHello)),
        };
        Ok(Message {
            timestamp,
            protocol_version,
            body,
            auth_hello,
        })
    }

    /// The message as a JSON object.
    pub fn to_json_value(&self) -> Value {
        let mut map = Map::new();
        map.insert(
            "timestamp".into(),
            Value::Number(self.timestamp.as_number().clone()),
        );
        map.insert("protocol".into(), Value::String(PROTOCOL.to_owned()));
        map.insert(
            "protocol_version".into(),
            Value::String(self.protocol_version.clone()),
        );
        match &self.body {
            Body::Request(r) => {
                map.insert("message_class".into(), Value::String("REQUEST".to_owned()));
                map.insert("request_uuid".into(), uuid_value(&r.request_uuid));
                map.insert(
                    "request_name".into(),
                    Value::String(r.kind.name().to_owned()),
                );
                write_request_fields(&r.kind, &mut map);
            }
            Body::Notification(n) => {
                map.insert(
                    "message_class".into(),
                    Value::String("NOTIFICATION".to_owned()),
                );
                map.insert("notification_uuid".into(), uuid_value(&n.notification_uuid));
                map.insert(
                    "request_reference_uuid".into(),
                    n.request_reference_uuid
                        .as_ref()
                        .map_or(Value::Null, uuid_value),
                );
                map.insert(
                    "notification_name".into(),
                    Value::String(n.kind.name().to_owned()),
                );
                write_notification_fields(&n.kind, &mut map);
            }
        }
        if let Some(hello) = &self.auth_hello {
            map.insert(
                key(MessageField::AuthHello).into(),
                Value::String(crate::encoding::hex::encode(hello)),
            );
        }
        Value::Object(map)
    }
}

fn uuid_value(uuid: &Uuid) -> Value {
    Value::String(uuid.hyphenated().to_string())
}

fn key(field: MessageField) -> &'static str {
    match field {
        MessageField::MessageClass => "message_class",
        MessageField::Timestamp => "timestamp",
        MessageField::Protocol => "protocol",
        MessageField::ProtocolVersion => "protocol_version",
        MessageField::RequestUuid => "request_uuid",
        MessageField::RequestName => "request_name",
        MessageField::NotificationUuid => "notification_uuid",
        MessageField::RequestReferenceUuid => "request_reference_uuid",
        MessageField::NotificationName => "notification_name",
        MessageField::RendezvousId => "rendezvous_id",
        MessageField::Msats => "msats",
        MessageField::Bolt11 => "bolt11",
        MessageField::Preimage => "preimage",
        MessageField::Ext => "ext",
        MessageField::ErrorMsg => "error_msg",
        MessageField::Description => "description",
        MessageField::FeeMsats => "fee_msats",
        MessageField::ErrorCode => "error_code",
        MessageField::AuthHello => "moip_auth_hello",
    }
}

fn required_str(map: &Map<String, Value>, field: MessageField) -> Result<&str, MessageError> {
    match map.get(key(field)) {
        None => Err(MessageError::Missing(field)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(MessageError::WrongType(field)),
    }
}

fn required_uuid(map: &Map<String, Value>, field: MessageField) -> Result<Uuid, MessageError> {
    ids::parse_any(required_str(map, field)?).map_err(|error| MessageError::Uuid { field, error })
}

fn rendezvous_id(map: &Map<String, Value>) -> Result<RendezvousId, MessageError> {
    let field = MessageField::RendezvousId;
    required_str(map, field)?
        .parse()
        .map_err(|error| MessageError::Hex { field, error })
}

fn bolt11(map: &Map<String, Value>) -> Result<Bolt11, MessageError> {
    required_str(map, MessageField::Bolt11)?
        .parse()
        .map_err(|NotBolt11| MessageError::NotBolt11)
}

/// An optional non-negative integer field (moip extensions): absent or null is `None`.
fn optional_u64(
    map: &Map<String, Value>,
    field: MessageField,
) -> Result<Option<u64>, MessageError> {
    match map.get(key(field)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if is_integer(n) => {
            n.as_u64().map(Some).ok_or(MessageError::OutOfRange(field))
        }
        Some(_) => Err(MessageError::WrongType(field)),
    }
}

fn decode_request(map: &Map<String, Value>) -> Result<Request, MessageError> {
    use MessageField as F;
    let request_uuid = required_uuid(map, F::RequestUuid)?;
    let name = required_str(map, F::RequestName)?;
    let kind = match name {
        "REQUEST_RENDEZVOUS" => RequestKind::Rendezvous {
            rendezvous_id: rendezvous_id(map)?,
        },
        "REQUEST_PROVIDER" => RequestKind::Provider,
        "REQUEST_PING" => RequestKind::Ping,
        "REQUEST_INVOICE" => {
            let msats = match map.get("msats") {
                None => return Err(MessageError::Missing(F::Msats)),
                Some(Value::Number(n)) if is_integer(n) => n
                    .as_u64()
                    .and_then(NonZeroU64::new)
                    .ok_or(MessageError::NonPositiveMsats)?,
                Some(_) => return Err(MessageError::WrongType(F::Msats)),
            };
            let description = match map.get(key(F::Description)) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.len() <= MAX_DESCRIPTION_BYTES => Some(s.clone()),
                Some(Value::String(_)) => return Err(MessageError::DescriptionTooLong),
                Some(_) => return Err(MessageError::WrongType(F::Description)),
            };
            RequestKind::Invoice { msats, description }
        }
        "REQUEST_PAY" => {
            let bolt11 = bolt11(map)?;
            let msats = match optional_u64(map, F::Msats)? {
                None => None,
                Some(n) => Some(NonZeroU64::new(n).ok_or(MessageError::NonPositiveMsats)?),
            };
            RequestKind::Pay { bolt11, msats }
        }
        other => return Err(MessageError::UnknownRequestName(other.to_owned())),
    };
    Ok(Request { request_uuid, kind })
}

fn decode_notification(map: &Map<String, Value>) -> Result<Notification, MessageError> {
    use MessageField as F;
    let notification_uuid = required_uuid(map, F::NotificationUuid)?;
    let request_reference_uuid = match map.get(key(F::RequestReferenceUuid)) {
        None => return Err(MessageError::Missing(F::RequestReferenceUuid)),
        Some(Value::Null) => None,
        Some(_) => Some(required_uuid(map, F::RequestReferenceUuid)?),
    };
    let name = required_str(map, F::NotificationName)?;
    let kind = match name {
        "NOTIFY_RENDEZVOUS" => NotificationKind::Rendezvous {
            rendezvous_id: rendezvous_id(map)?,
        },
        "NOTIFY_RENDEZVOUS_NOT_READY" => NotificationKind::RendezvousNotReady {
            rendezvous_id: rendezvous_id(map)?,
        },
        "NOTIFY_RENDEZVOUS_END" => NotificationKind::RendezvousEnd {
            rendezvous_id: rendezvous_id(map)?,
        },
        "NOTIFY_PROVIDER" => NotificationKind::Provider(
            ProviderInfo::from_json_map(map).map_err(MessageError::ProviderInfo)?,
        ),
        "NOTIFY_PROVIDER_NOT_READY" => NotificationKind::ProviderNotReady,
        "NOTIFY_PONG" => NotificationKind::Pong,
        "NOTIFY_INVOICE" => NotificationKind::Invoice {
            bolt11: bolt11(map)?,
        },
        "NOTIFY_PREIMAGE" => {
            let field = F::Preimage;
            let preimage = required_str(map, field)?
                .parse()
                .map_err(|error| MessageError::Hex { field, error })?;
            // The reference reads `ext` with `msg_dict['ext']`: it must be present, may be null.
            let ext = match map.get(key(F::Ext)) {
                None => return Err(MessageError::Missing(F::Ext)),
                Some(Value::Null) => None,
                Some(Value::String(s)) => {
                    Some(s.parse().map_err(|ExtTooLong| MessageError::ExtTooLong)?)
                }
                Some(_) => return Err(MessageError::WrongType(F::Ext)),
            };
            let fee_msats = optional_u64(map, F::FeeMsats)?;
            NotificationKind::Preimage {
                preimage,
                ext,
                fee_msats,
            }
        }
        "NOTIFY_ERROR" => {
            let error_msg = required_str(map, F::ErrorMsg)?.to_owned();
            let error_code = match optional_u64(map, F::ErrorCode)? {
                None => None,
                Some(n) => Some(ErrorCode(
                    u16::try_from(n).map_err(|_| MessageError::OutOfRange(F::ErrorCode))?,
                )),
            };
            NotificationKind::Error {
                error_msg,
                error_code,
            }
        }
        other => return Err(MessageError::UnknownNotificationName(other.to_owned())),
    };
    Ok(Notification {
        notification_uuid,
        request_reference_uuid,
        kind,
    })
}

fn write_request_fields(kind: &RequestKind, map: &mut Map<String, Value>) {
    match kind {
        RequestKind::Rendezvous { rendezvous_id } => {
            map.insert(
                "rendezvous_id".into(),
                Value::String(rendezvous_id.to_string()),
            );
        }
        RequestKind::Provider | RequestKind::Ping => {}
        RequestKind::Invoice { msats, description } => {
            map.insert("msats".into(), Value::Number(Number::from(msats.get())));
            if let Some(description) = description {
                map.insert("description".into(), Value::String(description.clone()));
            }
        }
        RequestKind::Pay { bolt11, msats } => {
            map.insert("bolt11".into(), Value::String(bolt11.to_string()));
            if let Some(msats) = msats {
                map.insert("msats".into(), Value::Number(Number::from(msats.get())));
            }
        }
    }
}

fn write_notification_fields(kind: &NotificationKind, map: &mut Map<String, Value>) {
    match kind {
        NotificationKind::Rendezvous { rendezvous_id }
        | NotificationKind::RendezvousNotReady { rendezvous_id }
        | NotificationKind::RendezvousEnd { rendezvous_id } => {
            map.insert(
                "rendezvous_id".into(),
                Value::String(rendezvous_id.to_string()),
            );
        }
        NotificationKind::Provider(info) => info.write_json_map(map),
        NotificationKind::ProviderNotReady | NotificationKind::Pong => {}
        NotificationKind::Invoice { bolt11 } => {
            map.insert("bolt11".into(), Value::String(bolt11.to_string()));
        }
        NotificationKind::Preimage {
            preimage,
            ext,
            fee_msats,
        } => {
            map.insert("preimage".into(), Value::String(preimage.to_string()));
            let ext = ext
                .as_ref()
                .map_or(Value::Null, |e| Value::String(e.as_str().to_owned()));
            map.insert("ext".into(), ext);
            if let Some(fee) = fee_msats {
                map.insert("fee_msats".into(), Value::Number(Number::from(*fee)));
            }
        }
        NotificationKind::Error {
            error_msg,
            error_code,
        } => {
            map.insert("error_msg".into(), Value::String(error_msg.clone()));
            if let Some(code) = error_code {
                map.insert("error_code".into(), Value::Number(Number::from(code.0)));
            }
        }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Message {
    /// Deserializes and validates, with the same rules as [`Message::decode`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Message::from_json_value(&value).map_err(serde::de::Error::custom)
    }
}
