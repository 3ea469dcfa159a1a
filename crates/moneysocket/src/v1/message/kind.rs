//! Message types and subtypes of v1.
//!
//! The wire carries a type byte (0 request, 1 notification) and a BigSize subtype; the JSON
//! carries the same as names. The RFC's tables disagree with each other and with the code;
//! py-moneysocket `message/rfc_types.py` assigns requests TRANSPORT_PING = 0, RENDEZVOUS = 1
//! and notifications TRANSPORT_PONG = 0, RENDEZVOUS = 1, RENDEZVOUS_NOT_READY = 2,
//! RENDEZVOUS_END = 3, and the vectors agree. Only the transport ping and pong have a defined
//! body anywhere, so only they are decoded; the rendezvous subtypes are listed for reference.

use uuid::Uuid;

/// Wire type byte of requests.
pub const REQUEST_TYPE: u8 = 0;
/// Wire type byte of notifications.
pub const NOTIFICATION_TYPE: u8 = 1;

/// Request subtype numbers assigned by the reference code.
pub mod request_subtype {
    /// `TRANSPORT_PING`
    pub const TRANSPORT_PING: u64 = 0;
    /// `RENDEZVOUS` (no body defined yet)
    pub const RENDEZVOUS: u64 = 1;
}

/// Notification subtype numbers assigned by the reference code.
pub mod notification_subtype {
    /// `TRANSPORT_PONG`
    pub const TRANSPORT_PONG: u64 = 0;
    /// `RENDEZVOUS` (no body defined yet)
    pub const RENDEZVOUS: u64 = 1;
    /// `RENDEZVOUS_NOT_READY` (no body defined yet)
    pub const RENDEZVOUS_NOT_READY: u64 = 2;
    /// `RENDEZVOUS_END` (no body defined yet)
    pub const RENDEZVOUS_END: u64 = 3;
}

/// What a message is: a request (with its own UUID) or a notification (referring to a
/// request's UUID, or to none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A request.
    Request {
        /// A version-4 UUID naming this request.
        request_uuid: Uuid,
        /// Which request.
        subtype: RequestSubtype,
    },
    /// A notification.
    Notification {
        /// The request this answers, if any (a version-4 UUID).
        request_uuid: Option<Uuid>,
        /// Which notification.
        subtype: NotificationSubtype,
    },
}

/// Request subtypes with a defined body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestSubtype {
    /// `TRANSPORT_PING`, answered by `TRANSPORT_PONG`.
    TransportPing,
}

/// Notification subtypes with a defined body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationSubtype {
    /// `TRANSPORT_PONG`; must reference the ping's UUID.
    TransportPong,
}

impl RequestSubtype {
    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            RequestSubtype::TransportPing => "TRANSPORT_PING",
        }
    }

    /// The wire number.
    pub fn number(self) -> u64 {
        match self {
            RequestSubtype::TransportPing => request_subtype::TRANSPORT_PING,
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        (name == "TRANSPORT_PING").then_some(RequestSubtype::TransportPing)
    }
}

impl NotificationSubtype {
    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            NotificationSubtype::TransportPong => "TRANSPORT_PONG",
        }
    }

    /// The wire number.
    pub fn number(self) -> u64 {
        match self {
            NotificationSubtype::TransportPong => notification_subtype::TRANSPORT_PONG,
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        (name == "TRANSPORT_PONG").then_some(NotificationSubtype::TransportPong)
    }
}

impl MessageKind {
    /// The wire type byte.
    pub fn type_number(&self) -> u8 {
        match self {
            MessageKind::Request { .. } => REQUEST_TYPE,
            MessageKind::Notification { .. } => NOTIFICATION_TYPE,
        }
    }

    /// The JSON type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            MessageKind::Request { .. } => "REQUEST",
            MessageKind::Notification { .. } => "NOTIFICATION",
        }
    }

    /// The wire subtype number.
    pub fn subtype_number(&self) -> u64 {
        match self {
            MessageKind::Request { subtype, .. } => subtype.number(),
            MessageKind::Notification { subtype, .. } => subtype.number(),
        }
    }

    /// The JSON subtype name.
    pub fn subtype_name(&self) -> &'static str {
        match self {
            MessageKind::Request { subtype, .. } => subtype.name(),
            MessageKind::Notification { subtype, .. } => subtype.name(),
        }
    }

    /// The `request_uuid` JSON field.
    pub fn request_uuid(&self) -> Option<Uuid> {
        match self {
            MessageKind::Request { request_uuid, .. } => Some(*request_uuid),
            MessageKind::Notification { request_uuid, .. } => *request_uuid,
        }
    }
}
