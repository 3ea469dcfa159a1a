//! The consumer role: an app using a provider's wallet through a relay.
//!
//! [`Consumer::connect`] runs the consumer layer's handshake: it rendezvouses, sends
//! `REQUEST_PROVIDER` (offering the authenticated layer of [`crate::secure`] unless told
//! [`Security::Legacy`]) and returns only once `NOTIFY_PROVIDER` has come back — the nexus is
//! *announced* with the provider's info in hand (shortcoming M2). From then on a task owns the
//! socket: requests go out with their uuid, and the notification that references a request
//! completes it; notifications that reference nothing we asked (balance updates, preimages of
//! our invoices being paid) go to [`Consumer::events`]. When the connection ends the nexus is
//! *revoked*: [`Consumer::revoked`] resolves with the reason and pending calls fail.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use uuid::Uuid;

use crate::client::{ClientConfig, ClientError, OutgoingSocket, Security};
use crate::secure::{Handshake, Role};
use crate::v0::message::{
    Body, ErrorCode, Message, Notification, NotificationKind, RequestKind, MAX_DESCRIPTION_BYTES,
};
use crate::v0::provider_info::ProviderInfo;
use crate::SharedSeed;

/// Why a consumer call failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The relay connection failed or closed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The provider answered with `NOTIFY_ERROR`; moip providers add a code.
    #[error("the provider refused{}: {message}", code.map(|c| format!(" [{c}]")).unwrap_or_default())]
    Provider {
        /// The error code, from providers that send one.
        code: Option<ErrorCode>,
        /// The provider's text.
        message: String,
    },
    /// The request is invalid before it is sent (an unreadable invoice, a description too
    /// long).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The provider answered with something else than the request calls for.
    #[error("unexpected answer {0}")]
    Unexpected(&'static str),
    /// The provider is connected but has no wallet ready.
    #[error("the provider is not ready")]
    NotReady,
    /// No answer in time.
    #[error("no answer from the provider within {0:?}")]
    Timeout(Duration),
    /// The consumer's connection task has stopped.
    #[error("the connection to the provider is gone")]
    Gone,
}

/// A payment the provider made for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payment {
    /// Proof of payment.
    pub preimage: [u8; 32],
    /// The routing fee the provider paid, from providers that report it.
    pub fee_msat: Option<u64>,
}

type Pending = HashMap<Uuid, oneshot::Sender<Notification>>;
type Outgoing = (Message, Uuid, oneshot::Sender<Notification>);

/// An app's connection to a provider.
pub struct Consumer {
    requests: mpsc::Sender<Outgoing>,
    events: broadcast::Sender<Notification>,
    revoked: watch::Receiver<Option<String>>,
    info: ProviderInfo,
    secure: bool,
    uuid: Uuid,
    timeout: Duration,
}

impl Consumer {
    /// Connects to the relay at `url`, rendezvouses on `seed`, runs the provider handshake and
    /// starts the connection task. The handshake and later calls wait at most `timeout` for
    /// their answer (a payment takes a while).
    ///
    /// # Errors
    /// [`ConsumerError::Client`] when the relay cannot be reached, or with
    /// [`ClientError::InsecurePeer`] when `config.security` requires the authenticated layer and
    /// the provider does not speak it; see also [`Consumer::connect_socket`].
    pub async fn connect(
        url: &str,
        seed: SharedSeed,
        config: &ClientConfig,
        timeout: Duration,
    ) -> Result<Consumer, ConsumerError> {
        let socket = OutgoingSocket::connect(url, seed, config).await?;
        Consumer::connect_socket(socket, config.security, timeout).await
    }

    /// [`Consumer::connect`] on a socket already connected to a relay (over the network, or in
    /// process with [`crate::relay::RelayHandle::local_connect`]).
    ///
    /// # Errors
    /// As [`Consumer::connect`]; [`ConsumerError::Provider`] when the provider refuses the
    /// handshake, and [`ConsumerError::NotReady`] when it answered `NOTIFY_PROVIDER_NOT_READY`
    /// and did not follow with `NOTIFY_PROVIDER` within the timeout. (As the reference consumer
    /// does, NOT_READY is waited past: the provider sends `NOTIFY_PROVIDER` once ready.)
    pub async fn connect_socket(
        mut socket: OutgoingSocket,
        security: Security,
        timeout: Duration,
    ) -> Result<Consumer, ConsumerError> {
        socket.rendezvous().await?;
        let mut not_ready = false;
        let info = tokio::time::timeout(timeout, handshake(&mut socket, security, &mut not_ready))
            .await
            .map_err(|_| match not_ready {
                // Told to wait, and the provider did not become ready in time.
                true => ConsumerError::NotReady,
                false => ConsumerError::Timeout(timeout),
            })??;
        let (requests, queue) = mpsc::channel::<Outgoing>(64);
        let events = broadcast::channel(256).0;
        let (revoke, revoked) = watch::channel(None);
        let (secure, uuid) = (socket.is_secure(), socket.uuid());
        tokio::spawn(drive(socket, queue, events.clone(), revoke));
        Ok(Consumer {
            requests,
            events,
            revoked,
            info,
            secure,
            uuid,
            timeout,
        })
    }

    /// The provider's info as the handshake returned it.
    pub fn provider_info(&self) -> &ProviderInfo {
        &self.info
    }

    /// Whether the authenticated layer was negotiated.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The nexus uuid of this connection.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// Resolves when the connection has ended (the nexus is revoked), with the reason.
    pub async fn revoked(&self) -> String {
        let mut revoked = self.revoked.clone();
        let reason = match revoked.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the connection task is gone".to_owned(),
        };
        reason
    }

    /// Notifications that answer no request of ours: balance updates (`NOTIFY_PROVIDER`) and
    /// preimages of invoices we asked for, once paid.
    pub fn events(&self) -> broadcast::Receiver<Notification> {
        self.events.subscribe()
    }

    async fn call(&self, kind: RequestKind) -> Result<NotificationKind, ConsumerError> {
        let message = Message::request(kind);
        let Body::Request(request) = &message.body else {
            return Err(ConsumerError::Unexpected("not a request"));
        };
        let uuid = request.request_uuid;
        let (tx, rx) = oneshot::channel();
        self.requests
            .send((message, uuid, tx))
            .await
            .map_err(|_| ConsumerError::Gone)?;
        let answer = tokio::time::timeout(self.timeout, rx)
            .await
            .map_err(|_| ConsumerError::Timeout(self.timeout))?
            .map_err(|_| ConsumerError::Gone)?;
        answer_kind(answer.kind)
    }

    /// `REQUEST_PROVIDER`: the account, its capabilities and its balance now.
    ///
    /// # Errors
    /// See [`ConsumerError`].
    pub async fn provider(&self) -> Result<ProviderInfo, ConsumerError> {
        match self.call(RequestKind::Provider).await? {
            NotificationKind::Provider(info) => Ok(info),
            other => Err(ConsumerError::Unexpected(other.name())),
        }
    }

    /// `REQUEST_PING`.
    ///
    /// # Errors
    /// See [`ConsumerError`].
    pub async fn ping(&self) -> Result<(), ConsumerError> {
        match self.call(RequestKind::Ping).await? {
            NotificationKind::Pong => Ok(()),
            other => Err(ConsumerError::Unexpected(other.name())),
        }
    }

    /// `REQUEST_INVOICE`: a BOLT11 invoice paying into the provider's wallet, with an optional
    /// description (which legacy providers ignore).
    ///
    /// # Errors
    /// [`ConsumerError::Invalid`] for a description over 639 bytes; see [`ConsumerError`].
    pub async fn invoice(
        &self,
        msats: NonZeroU64,
        description: Option<&str>,
    ) -> Result<String, ConsumerError> {
        if description.is_some_and(|d| d.len() > MAX_DESCRIPTION_BYTES) {
            return Err(ConsumerError::Invalid(format!(
                "the description is longer than {MAX_DESCRIPTION_BYTES} bytes"
            )));
        }
        let kind = RequestKind::Invoice {
            msats,
            description: description.map(str::to_owned),
        };
        match self.call(kind).await? {
            NotificationKind::Invoice { bolt11 } => Ok(bolt11.to_string()),
            other => Err(ConsumerError::Unexpected(other.name())),
        }
    }

    /// `REQUEST_PAY`: the provider pays `bolt11` — `msats` for an amountless invoice, `None`
    /// otherwise; the preimage proves it.
    ///
    /// # Errors
    /// [`ConsumerError::Invalid`] for text that is not an invoice; [`ConsumerError::Provider`]
    /// when the provider refuses or the payment fails.
    pub async fn pay(
        &self,
        bolt11: &str,
        msats: Option<NonZeroU64>,
    ) -> Result<Payment, ConsumerError> {
        let bolt11 = bolt11
            .parse()
            .map_err(|_| ConsumerError::Invalid("not a BOLT11 invoice".into()))?;
        match self.call(RequestKind::Pay { bolt11, msats }).await? {
            NotificationKind::Preimage {
                preimage,
                fee_msats,
                ..
            } => Ok(Payment {
                preimage: *preimage.as_bytes(),
                fee_msat: fee_msats,
            }),
            other => Err(ConsumerError::Unexpected(other.name())),
        }
    }
}

/// Errors and not-ready answers as [`ConsumerError`]s; anything else is the caller's to match.
fn answer_kind(kind: NotificationKind) -> Result<NotificationKind, ConsumerError> {
    match kind {
        NotificationKind::Error {
            error_msg,
            error_code,
        } => Err(ConsumerError::Provider {
            code: error_code,
            message: error_msg,
        }),
        NotificationKind::ProviderNotReady => Err(ConsumerError::NotReady),
        other => Ok(other),
    }
}

/// The consumer layer's handshake: `REQUEST_PROVIDER` with our hello, `NOTIFY_PROVIDER` with
/// the provider's, then both sides switch to the authenticated layer. A provider that does not
/// answer the hello (every deployed one) leaves the socket on v0, unless that is refused.
///
/// A `NOTIFY_PROVIDER_NOT_READY` sets `not_ready` and the wait goes on for the
/// `NOTIFY_PROVIDER` a provider sends, referencing the same request, once its wallet is ready.
async fn handshake(
    socket: &mut OutgoingSocket,
    security: Security,
    not_ready: &mut bool,
) -> Result<ProviderInfo, ConsumerError> {
    let mut request = Message::request(RequestKind::Provider);
    let pending = match security {
        Security::Legacy => None,
        Security::Prefer | Security::Require => {
            let (handshake, hello) = Handshake::start(*socket.shared_seed(), Role::Consumer);
            request.auth_hello = Some(hello);
            Some(handshake)
        }
    };
    let Body::Request(sent) = &request.body else {
        return Err(ConsumerError::Unexpected("not a request"));
    };
    let uuid = sent.request_uuid;
    socket.send(&request).await?;
    let answer = loop {
        let message = match socket.recv().await {
            Ok(message) => message,
            Err(e) if e.is_recoverable() => continue,
            Err(e) => return Err(e.into()),
        };
        let hello = message.auth_hello;
        if let Body::Notification(n) = message.body {
            if n.request_reference_uuid == Some(uuid) {
                if n.kind == NotificationKind::ProviderNotReady {
                    *not_ready = true;
                    continue;
                }
                break (n.kind, hello);
            }
        }
    };
    let (kind, hello) = answer;
    let NotificationKind::Provider(info) = answer_kind(kind)? else {
        return Err(ConsumerError::Unexpected("answer to REQUEST_PROVIDER"));
    };
    match (pending, hello) {
        (Some(handshake), Some(hello)) => {
            let session = handshake.finish(&hello).map_err(ClientError::from)?;
            socket.upgrade(session);
        }
        _ if security == Security::Require => return Err(ClientError::InsecurePeer.into()),
        _ => {}
    }
    Ok(info)
}

/// Owns the socket: sends requests, routes answers to their callers and the rest to `events`,
/// and reports why it stopped.
async fn drive(
    mut socket: OutgoingSocket,
    mut queue: mpsc::Receiver<Outgoing>,
    events: broadcast::Sender<Notification>,
    revoke: watch::Sender<Option<String>>,
) {
    let mut pending: Pending = HashMap::new();
    let reason = loop {
        tokio::select! {
            request = queue.recv() => {
                let Some((message, uuid, reply)) = request else {
                    break "the consumer was dropped".to_owned();
                };
                pending.insert(uuid, reply);
                if let Err(e) = socket.send(&message).await {
                    break e.to_string();
                }
            }
            message = socket.recv() => {
                let message = match message {
                    Ok(message) => message,
                    Err(e) if e.is_recoverable() => continue,
                    Err(e) => break e.to_string(),
                };
                let Body::Notification(notification) = message.body else { continue };
                let waiter = notification
                    .request_reference_uuid
                    .and_then(|uuid| pending.remove(&uuid));
                match waiter {
                    Some(reply) => {
                        let _ = reply.send(notification);
                    }
                    None => {
                        let _ = events.send(notification);
                    }
                }
            }
        }
    };
    let _ = revoke.send(Some(reason));
    let _ = socket.close().await;
}
