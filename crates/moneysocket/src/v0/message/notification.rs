//! v0 notifications (py-moneysocket `message/notification/*.py`).

use uuid::Uuid;

use crate::seed::RendezvousId;
use crate::v0::message::error_code::ErrorCode;
use crate::v0::message::payment::{Bolt11, Preimage, PreimageExt};
use crate::v0::provider_info::ProviderInfo;

/// A notification: its own uuid, and the uuid of the request it answers (`null` when
/// unsolicited, e.g. a balance update or an incoming payment).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Identifies this notification.
    pub notification_uuid: Uuid,
    /// The request this answers, if any.
    pub request_reference_uuid: Option<Uuid>,
    /// What is notified.
    pub kind: NotificationKind,
}

/// The notification names of v0.
#[derive(Debug, Clone, PartialEq)]
pub enum NotificationKind {
    /// `NOTIFY_RENDEZVOUS`: the relay paired this connection. Clear.
    Rendezvous {
        /// The id the pair met under.
        rendezvous_id: RendezvousId,
    },
    /// `NOTIFY_RENDEZVOUS_NOT_READY`: the other end has not arrived yet; keep waiting. Clear.
    RendezvousNotReady {
        /// The id being waited on.
        rendezvous_id: RendezvousId,
    },
    /// `NOTIFY_RENDEZVOUS_END`: the other end left; the relay closes this one. Clear.
    RendezvousEnd {
        /// The id whose pairing ended.
        rendezvous_id: RendezvousId,
    },
    /// `NOTIFY_PROVIDER`: the provider's account and balance.
    Provider(ProviderInfo),
    /// `NOTIFY_PROVIDER_NOT_READY`: the provider app is not ready to serve yet.
    ProviderNotReady,
    /// `NOTIFY_PONG`: answer to `REQUEST_PING`.
    Pong,
    /// `NOTIFY_INVOICE`: the invoice made for a `REQUEST_INVOICE`.
    Invoice {
        /// The invoice.
        bolt11: Bolt11,
    },
    /// `NOTIFY_PREIMAGE`: a payment settled.
    Preimage {
        /// Proof of payment.
        preimage: Preimage,
        /// Free-form extension data.
        ext: Option<PreimageExt>,
        /// The routing fee paid, on the answer to a `REQUEST_PAY` (moip extension,
        /// shortcoming M3b).
        fee_msats: Option<u64>,
    },
    /// `NOTIFY_ERROR`: a request failed.
    Error {
        /// Free-form description.
        error_msg: String,
        /// What kind of failure (moip extension, shortcoming M9).
        error_code: Option<ErrorCode>,
    },
}

impl NotificationKind {
    /// The `notification_name` on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            NotificationKind::Rendezvous { .. } => "NOTIFY_RENDEZVOUS",
            NotificationKind::RendezvousNotReady { .. } => "NOTIFY_RENDEZVOUS_NOT_READY",
            NotificationKind::RendezvousEnd { .. } => "NOTIFY_RENDEZVOUS_END",
            NotificationKind::Provider(_) => "NOTIFY_PROVIDER",
            NotificationKind::ProviderNotReady => "NOTIFY_PROVIDER_NOT_READY",
            NotificationKind::Pong => "NOTIFY_PONG",
            NotificationKind::Invoice { .. } => "NOTIFY_INVOICE",
            NotificationKind::Preimage { .. } => "NOTIFY_PREIMAGE",
            NotificationKind::Error { .. } => "NOTIFY_ERROR",
        }
    }
}
