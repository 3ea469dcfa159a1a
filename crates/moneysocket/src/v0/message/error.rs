//! Why a v0 message was refused.

use crate::error::{HexError, UuidError};
use crate::v0::provider_info::ProviderInfoError;

/// A message field, for error reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageField {
    /// `message_class`
    MessageClass,
    /// `timestamp`
    Timestamp,
    /// `protocol`
    Protocol,
    /// `protocol_version`
    ProtocolVersion,
    /// `request_uuid`
    RequestUuid,
    /// `request_name`
    RequestName,
    /// `notification_uuid`
    NotificationUuid,
    /// `request_reference_uuid`
    RequestReferenceUuid,
    /// `notification_name`
    NotificationName,
    /// `rendezvous_id`
    RendezvousId,
    /// `msats`
    Msats,
    /// `bolt11`
    Bolt11,
    /// `preimage`
    Preimage,
    /// `ext`
    Ext,
    /// `error_msg`
    ErrorMsg,
    /// `description` (moip extension)
    Description,
    /// `fee_msats` (moip extension)
    FeeMsats,
    /// `error_code` (moip extension)
    ErrorCode,
    /// `moip_auth_hello` (moip extension)
    AuthHello,
}

/// A v0 message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The frame exceeds [`super::MAX_MESSAGE_LEN`].
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Frame length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is not UTF-8 JSON.
    #[error("could not parse json")]
    NotJson,
    /// The JSON is not an object.
    #[error("message is not a json object")]
    NotObject,
    /// A required field is absent.
    #[error("message field {0:?} is missing")]
    Missing(MessageField),
    /// A field has the wrong JSON type.
    #[error("message field {0:?} has the wrong type")]
    WrongType(MessageField),
    /// `message_class` is neither `REQUEST` nor `NOTIFICATION`.
    #[error("not a known message class: {0}")]
    UnknownMessageClass(String),
    /// `timestamp` is negative.
    #[error("timestamp not positive value")]
    NegativeTimestamp,
    /// `protocol` is not `Moneysocket`.
    #[error("unknown protocol: {0}")]
    UnknownProtocol(String),
    /// A uuid field does not parse.
    #[error("invalid uuid in {field:?}: {error}")]
    Uuid {
        /// Which field.
        field: MessageField,
        /// Why.
        error: UuidError,
    },
    /// `request_name` is not a v0 request.
    #[error("unknown request_name: {0}")]
    UnknownRequestName(String),
    /// `notification_name` is not a v0 notification.
    #[error("unknown notification_name: {0}")]
    UnknownNotificationName(String),
    /// A hex field (`rendezvous_id`, `preimage`) is not 64 hex digits.
    #[error("invalid hex in {field:?}: {error}")]
    Hex {
        /// Which field.
        field: MessageField,
        /// Why.
        error: HexError,
    },
    /// `msats` is zero or negative.
    #[error("msats must be a positive non-zero integer")]
    NonPositiveMsats,
    /// `bolt11` starts with neither `lnbc` nor `lntb` (see [`super::Bolt11`]).
    #[error("doesn't look like a bolt11")]
    NotBolt11,
    /// `ext` is longer than [`super::MAX_EXT_CHARS`].
    #[error("ext is larger than 4096 characters")]
    ExtTooLong,
    /// `description` is longer than [`super::MAX_DESCRIPTION_BYTES`].
    #[error("description is longer than 639 bytes")]
    DescriptionTooLong,
    /// `fee_msats` or `error_code` is not a non-negative integer in range.
    #[error("message field {0:?} is out of range")]
    OutOfRange(MessageField),
    /// The `NOTIFY_PROVIDER` fields are invalid.
    #[error("invalid provider info: {0}")]
    ProviderInfo(ProviderInfoError),
}
