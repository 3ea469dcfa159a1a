//! Nexus events: what the layer model of the references reports as connections come and go.
//!
//! In the references every layer wraps the nexus below it and calls `announce` upward once its
//! own handshake is done, `revoke` when an announced nexus goes away. moip's stack is flatter
//! (one task per connection, see [`crate::client`]), so the events are reported where an
//! application needs them: by the provider for every beacon of an [`crate::provider::Account`],
//! and by the consumer for its one connection.
//!
//! A nexus is *announced* only once the consumer and provider have exchanged
//! `REQUEST_PROVIDER`/`NOTIFY_PROVIDER` (and negotiated the authenticated layer, if both speak
//! it), not when the relay pairs the sockets: an announced nexus is one an app can use
//! (shortcoming M2).

use uuid::Uuid;

use crate::seed::RendezvousId;

/// Something that happened to one nexus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NexusEvent {
    /// The nexus: one connection, named by [`crate::client::OutgoingSocket::uuid`].
    pub nexus: Uuid,
    /// The rendezvous (beacon) it serves.
    pub rendezvous_id: RendezvousId,
    /// What happened.
    pub kind: NexusEventKind,
}

/// The life of a nexus: created, then announced, then revoked if it was announced, then
/// destroyed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NexusEventKind {
    /// The connection to the relay is open.
    Created,
    /// The peer is there and the provider handshake is done: the nexus is usable.
    Announced {
        /// Whether the authenticated layer was negotiated.
        secure: bool,
    },
    /// An announced nexus lost its peer (or failed); `reason` says how.
    Revoked {
        /// Why.
        reason: String,
    },
    /// The connection is closed.
    Destroyed,
}
