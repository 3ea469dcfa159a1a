//! Why a v1 message was refused.

use crate::error::{BigSizeError, TlvError, UuidError};
use crate::v1::features::FeaturesError;

/// One of the three records of the message frame, for error reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageTlv {
    /// Record 0.
    SenderVersion,
    /// Record 1.
    MessageType,
    /// Record 2.
    LanguageObject,
}

/// A language-object field, for error reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageField {
    /// `timestamp`
    Timestamp,
    /// `version`
    Version,
    /// `version.major`
    VersionMajor,
    /// `version.minor`
    VersionMinor,
    /// `version.patch`
    VersionPatch,
    /// `type`
    Type,
    /// `subtype`
    Subtype,
    /// `subtype_data`
    SubtypeData,
    /// `request_uuid`
    RequestUuid,
}

/// A v1 message could not be decoded or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The input exceeds [`super::MAX_MESSAGE_LEN`].
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The outer record is malformed.
    #[error("invalid message TLV: {0}")]
    Tlv(TlvError),
    /// Bytes follow the message record.
    #[error("extra bytes after message TLV")]
    TrailingBytes,
    /// The outer record has a type other than 0.
    #[error("unknown TLV type {0} where a message was expected")]
    NotAMessage(u64),
    /// The message's contents are not a stream of well-formed records.
    #[error("invalid TLVs in message: {0}")]
    InvalidTlvs(TlvError),
    /// The message record is empty.
    #[error("no TLVs in message")]
    NoTlvs,
    /// A frame record is absent.
    #[error("missing {0:?} TLV")]
    MissingTlv(MessageTlv),
    /// Another record stands where a frame record is required.
    #[error("expected {expected:?} TLV, found type {found}")]
    UnexpectedTlv {
        /// The record required at this position.
        expected: MessageTlv,
        /// The type present.
        found: u64,
    },
    /// The sender version is not 3 bytes.
    #[error("malformed sender_version TLV: {0} bytes")]
    SenderVersionLength(usize),
    /// The message-type record is empty.
    #[error("malformed message_type type value")]
    MissingTypeByte,
    /// The subtype is not a valid BigSize.
    #[error("malformed message_type subtype value: {0}")]
    Subtype(BigSizeError),
    /// Bytes follow the subtype.
    #[error("extra bytes in message_type TLV")]
    MessageTypeTrailingBytes,
    /// The language object is not UTF-8 JSON.
    #[error("could not decode json object")]
    InvalidJson,
    /// The language object is JSON but not an object.
    #[error("language_object is not a json object")]
    LanguageObjectNotObject,
    /// A field is absent.
    #[error("language_object field {0:?} is missing")]
    Missing(MessageField),
    /// A field has the wrong JSON type.
    #[error("language_object field {0:?} has the wrong type")]
    WrongType(MessageField),
    /// A number is negative.
    #[error("language_object field {0:?} is negative")]
    Negative(MessageField),
    /// A number is too large (version parts above 255).
    #[error("language_object field {0:?} is too large")]
    TooLarge(MessageField),
    /// A string is empty.
    #[error("language_object field {0:?} is empty")]
    Empty(MessageField),
    /// The timestamp lies more than [`super::MAX_CLOCK_SKEW_SECS`] in the future.
    #[error("timestamp in the future")]
    TimestampInFuture,
    /// A `version` part differs from the sender-version record.
    #[error("language_object {0:?} doesn't match TLV")]
    VersionMismatch(MessageField),
    /// `features`/`feature_data` are invalid.
    #[error("invalid language_object features: {0}")]
    Features(FeaturesError),
    /// `type` is neither `REQUEST` nor `NOTIFICATION`.
    #[error("unknown message type {0:?}")]
    UnknownMessageType(String),
    /// `request_uuid` is not a version-4 UUID.
    #[error("invalid request_uuid: {0}")]
    RequestUuid(UuidError),
    /// No body is defined for this type and subtype.
    #[error("unknown message subtype {subtype:?} for {message_type}")]
    UnknownSubtype {
        /// `REQUEST` or `NOTIFICATION`.
        message_type: &'static str,
        /// The subtype name.
        subtype: String,
    },
    /// A `TRANSPORT_PONG` must reference the ping it answers.
    #[error("TRANSPORT_PONG without request_uuid")]
    PongWithoutRequestUuid,
    /// The header's type byte contradicts the JSON `type`.
    #[error("message_type TLV says {tlv}, language_object says {json}")]
    TypeMismatch {
        /// The header's type byte.
        tlv: u8,
        /// The JSON type name.
        json: &'static str,
    },
    /// The header's subtype number contradicts the JSON `subtype`.
    #[error("message_type TLV subtype {tlv}, language_object subtype {json} is {expected}")]
    SubtypeMismatch {
        /// The header's subtype.
        tlv: u64,
        /// The JSON subtype name.
        json: &'static str,
        /// The number of that name.
        expected: u64,
    },
    /// An additional record reuses a frame record type (0, 1 or 2).
    #[error("additional TLV {0} duplicates a defined record")]
    DuplicateTlv(u64),
    /// Additional records are not in increasing type order.
    #[error("additional TLV {found} follows TLV {previous}")]
    AdditionalTlvOrder {
        /// Type of the preceding record.
        previous: u64,
        /// Type of the offending record.
        found: u64,
    },
}
