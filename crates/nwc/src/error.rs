//! Errors of the wallet service. Errors of a single request never surface here: they become a
//! NIP-47 error reply to the app that sent it (see [`crate::service`]).

use thiserror::Error;

/// What can go wrong running the service itself.
#[derive(Debug, Error)]
pub enum NwcError {
    /// A relay URL could not be parsed or the relay pool refused it.
    #[error("relay: {0}")]
    Relay(String),
    /// An event could not be built, signed or published.
    #[error("event: {0}")]
    Event(String),
    /// The connection store could not be read or written.
    #[error("connection store: {0}")]
    Store(String),
    /// No connection has that client key.
    #[error("no connection for {0}")]
    UnknownConnection(String),
}
