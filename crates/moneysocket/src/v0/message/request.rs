//! v0 requests (py-moneysocket `message/request/*.py`).

use std::num::NonZeroU64;

use uuid::Uuid;

use crate::seed::RendezvousId;
use crate::v0::message::payment::Bolt11;

/// Most bytes an invoice description may hold: what fits a BOLT #11 `d` field (639 bytes).
pub const MAX_DESCRIPTION_BYTES: usize = 639;

/// A request: a fresh `request_uuid` that notifications answering it refer to.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Identifies this request.
    pub request_uuid: Uuid,
    /// What is requested.
    pub kind: RequestKind,
}

/// The request names of v0.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestKind {
    /// `REQUEST_RENDEZVOUS`: ask the relay to pair this connection with the other one that
    /// presents the same id. Sent in the clear.
    Rendezvous {
        /// Derived from the shared seed, see [`crate::v0::seed::derive_rendezvous_id`].
        rendezvous_id: RendezvousId,
    },
    /// `REQUEST_PROVIDER`: the consumer asks for the provider's info.
    Provider,
    /// `REQUEST_PING`: liveness check, answered by `NOTIFY_PONG`.
    Ping,
    /// `REQUEST_INVOICE`: ask the provider for an invoice of this many msats.
    Invoice {
        /// The amount; the reference requires a positive integer.
        msats: NonZeroU64,
        /// The invoice's description (moip extension, shortcoming S3; at most
        /// [`MAX_DESCRIPTION_BYTES`]). Legacy providers ignore it.
        description: Option<String>,
    },
    /// `REQUEST_PAY`: ask the provider to pay this invoice.
    Pay {
        /// The invoice to pay.
        bolt11: Bolt11,
        /// The amount to pay an amountless invoice (moip extension, shortcoming S5). Legacy
        /// providers ignore it and refuse amountless invoices.
        msats: Option<NonZeroU64>,
    },
}

impl RequestKind {
    /// The `request_name` on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            RequestKind::Rendezvous { .. } => "REQUEST_RENDEZVOUS",
            RequestKind::Provider => "REQUEST_PROVIDER",
            RequestKind::Ping => "REQUEST_PING",
            RequestKind::Invoice { .. } => "REQUEST_INVOICE",
            RequestKind::Pay { .. } => "REQUEST_PAY",
        }
    }
}
