//! A connection's request path without the connection, for the fuzz targets (`fuzz/`): the
//! session a client gets, fed received lines directly.

use std::net::IpAddr;
use std::sync::Arc;

use super::session::Session;
use super::{ServerConfig, Shared};
use crate::query::Query;

/// One client session of a server with its own state (accounting, metrics), over `query`.
pub struct FuzzSession {
    session: Session,
}

impl FuzzSession {
    /// A session of a server with `config` over `query` (whose index is taken as synced), for
    /// a client connected from `ip`, admitted as the server admits a connection.
    ///
    /// # Errors
    /// Why the server would refuse the connection.
    pub fn new(
        query: Arc<Query>,
        config: ServerConfig,
        ip: IpAddr,
    ) -> Result<FuzzSession, &'static str> {
        let shared = Arc::new(Shared::new(query, config, 16, true));
        let client = shared.accountant.client(ip, false);
        shared.accountant.connect(client)?;
        Ok(FuzzSession {
            session: Session::new(shared, client, false),
        })
    }

    /// Handles one received line (a call, a notification or a batch) as the connection does:
    /// the lines to send back, and whether the session closes.
    pub async fn handle(&mut self, text: &str) -> (Vec<String>, bool) {
        let outcome = self.session.handle(text).await;
        (outcome.replies, outcome.close)
    }
}
