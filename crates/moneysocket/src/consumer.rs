//! The consumer role: an app using a provider's wallet through a relay.
//!
//! A [`Consumer`] owns one rendezvoused socket, driven by a task: requests go out with their
//! uuid, and the notification that references a request completes it; notifications that
//! reference nothing we asked (balance updates, preimages of our invoices being paid) go to
//! [`Consumer::events`].

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use crate::client::{connect, ClientConfig, ClientError};
use crate::v0::message::{Body, Message, Notification, NotificationKind, RequestKind};
use crate::v0::provider_info::ProviderInfo;
use crate::SharedSeed;

/// Why a consumer call failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The relay connection failed or closed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The provider answered with `NOTIFY_ERROR`.
    #[error("the provider refused: {0}")]
    Provider(String),
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

type Pending = HashMap<Uuid, oneshot::Sender<Notification>>;

/// An app's connection to a provider.
pub struct Consumer {
    requests: mpsc::Sender<(Message, Uuid, oneshot::Sender<Notification>)>,
    events: broadcast::Sender<Notification>,
    timeout: Duration,
}

impl Consumer {
    /// Connects to the relay at `url`, rendezvouses on `seed` and starts the connection task.
    /// Calls wait at most `timeout` for their answer (a payment takes a while).
    ///
    /// # Errors
    /// [`ConsumerError::Client`] when the relay cannot be reached.
    pub async fn connect(
        url: &str,
        seed: SharedSeed,
        config: &ClientConfig,
        timeout: Duration,
    ) -> Result<Consumer, ConsumerError> {
        let mut socket = connect(url, seed, config).await?;
        let (requests, mut queue) =
            mpsc::channel::<(Message, Uuid, oneshot::Sender<Notification>)>(64);
        let events = broadcast::channel(256).0;
        let unsolicited = events.clone();
        tokio::spawn(async move {
            let mut pending: Pending = HashMap::new();
            loop {
                tokio::select! {
                    request = queue.recv() => {
                        let Some((message, uuid, reply)) = request else { return };
                        pending.insert(uuid, reply);
                        if socket.send(&message).await.is_err() {
                            return;
                        }
                    }
                    message = socket.recv() => {
                        let Ok(message) = message else { return };
                        let Body::Notification(notification) = message.body else { continue };
                        let waiter = notification
                            .request_reference_uuid
                            .and_then(|uuid| pending.remove(&uuid));
                        match waiter {
                            Some(reply) => {
                                let _ = reply.send(notification);
                            }
                            None => {
                                let _ = unsolicited.send(notification);
                            }
                        }
                    }
                }
            }
        });
        Ok(Consumer {
            requests,
            events,
            timeout,
        })
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
        match answer.kind {
            NotificationKind::Error { error_msg } => Err(ConsumerError::Provider(error_msg)),
            NotificationKind::ProviderNotReady => Err(ConsumerError::NotReady),
            other => Ok(other),
        }
    }

    /// `REQUEST_PROVIDER`: the account, its capabilities and its balance.
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

    /// `REQUEST_INVOICE`: a BOLT11 invoice paying into the provider's wallet.
    ///
    /// # Errors
    /// See [`ConsumerError`].
    pub async fn invoice(&self, msats: std::num::NonZeroU64) -> Result<String, ConsumerError> {
        match self.call(RequestKind::Invoice { msats }).await? {
            NotificationKind::Invoice { bolt11 } => Ok(bolt11.to_string()),
            other => Err(ConsumerError::Unexpected(other.name())),
        }
    }

    /// `REQUEST_PAY`: the provider pays `bolt11`; the preimage proves it.
    ///
    /// # Errors
    /// [`ConsumerError::Provider`] when the provider refuses or the payment fails.
    pub async fn pay(&self, bolt11: &str) -> Result<[u8; 32], ConsumerError> {
        let bolt11 = bolt11
            .parse()
            .map_err(|_| ConsumerError::Provider("not a BOLT11 invoice".into()))?;
        match self.call(RequestKind::Pay { bolt11 }).await? {
            NotificationKind::Preimage { preimage, .. } => Ok(*preimage.as_bytes()),
            other => Err(ConsumerError::Unexpected(other.name())),
        }
    }
}
