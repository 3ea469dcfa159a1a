//! The HTTP server loop of moip's own HTTP listeners (the node's RPC and REST, the community
//! node's dashboard and API), hardened against slow and greedy clients, which `axum::serve`
//! is not: a client must send a request's headers within [`HttpLimits::header_timeout`] — the
//! first request and every later one on a kept-alive connection — or the connection is
//! closed, so slow writers (slowloris) cannot hold connections open; and at most
//! [`HttpLimits::max_connections`] connections are served at once, the next ones being closed
//! as they arrive, so memory stays bounded (request bodies are bounded by each router).
//! [`serve_tls`] is the same loop behind TLS, the handshake bounded by the header timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How much an HTTP listener lets its clients take.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Time to send a request's headers.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a stop waits for requests in progress.
    pub drain: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            max_connections: 1_024,
            drain: Duration::from_secs(5),
        }
    }
}

/// Serves `router` on `listener` within `limits` until `stop` resolves, then lets the
/// requests in progress finish (up to `limits.drain`).
///
/// # Errors
/// Never for a client's doing; a listener that fails for good ends the loop.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_with(listener, router, limits, None, stop).await
}

/// [`serve`] over TLS (HTTPS): each connection's handshake must end within
/// `limits.header_timeout`, so a client that stalls it is cut off as a slow writer is.
///
/// # Errors
/// As [`serve`].
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    tls: Arc<rustls::ServerConfig>,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    serve_with(listener, router, limits, Some(acceptor), stop).await
}

async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!("accepting an HTTP connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(
                "HTTP connection refused: {} served already",
                limits.max_connections
            );
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let (http, watcher, tls) = (http.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            let ended = match tls {
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            watcher
                                .watch(http.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!("TLS handshake failed: {e}");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake not finished in time");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = ended {
                tracing::debug!("HTTP connection ended: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => {
            tracing::debug!("HTTP requests still in progress at the stop were cut");
        }
    }
    Ok(())
}
