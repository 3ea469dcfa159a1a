//! What the API and the dashboard reach: the community's services on a running node, and
//! read-only handles on the lower layers for the status page.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use moip_assets::ledger::{AnyJournal, Ledger};
use moip_assets::pool::RedemptionPool;
use moip_chain::ChainSource;
use moip_electrum::ServerStatus;
use moip_lightning::LightningNode;
use moip_moneysocket::provider::Account;
use moip_moneysocket::relay::{LocalConnector, MetricsSource};
use moip_nwc::NwcService;
use moip_work::service::WorkService;

use crate::commitments::Committer;
use crate::deposits::Deposits;
use crate::history::History;
use crate::web::session::Sessions;

/// The community's ledger, shared by the Work service, the pool and the deposits.
pub type SharedLedger = Arc<Mutex<Ledger<AnyJournal>>>;

/// Read-only handles on the lower layers.
pub struct NodeProbe {
    /// The chain (the embedded node, or a user's bitcoind).
    pub chain: Arc<dyn ChainSource>,
    /// The Electrum server.
    pub electrum: ServerStatus,
    /// Its address for wallets: `tcp://host:port` on loopback, `ssl://host:port` with TLS.
    pub electrum_url: String,
    /// The community's Lightning node.
    pub lightning: LightningNode,
    /// The Moneysocket relay.
    pub moneysocket: MetricsSource,
    /// Its URL for wallets (what beacons name).
    pub moneysocket_url: String,
    /// The way in for the node's own providers, inside the process.
    pub moneysocket_relay: LocalConnector,
    /// The Nostr relays of the Work service and NWC, as apps and members reach them.
    pub nostr_relays: Vec<String>,
}

/// Everything the handlers reach.
pub struct Hub {
    /// The Work service (and through it the community's state).
    pub work: Arc<WorkService<SharedLedger>>,
    /// The ledger.
    pub ledger: SharedLedger,
    /// The redemption pool.
    pub pool: Arc<RedemptionPool<AnyJournal>>,
    /// Deposits that mint.
    pub deposits: Arc<Deposits<AnyJournal>>,
    /// The supply root's commitments on chain.
    pub commitments: Arc<Committer>,
    /// The lower layers.
    pub node: NodeProbe,
    /// Nostr Wallet Connect on the community's node.
    pub nwc: Arc<NwcService>,
    /// The node's Moneysocket account, served on the beacons made for it.
    pub moneysocket: Arc<Account>,
    /// The beacons made for it, with their durable budgets.
    pub beacons: Arc<crate::beacons::Beacons>,
    /// The operator's token (a file in the data directory): pairing needs it.
    pub admin_token: String,
    /// Logged-in browsers.
    pub sessions: Sessions,
    /// Whether the dashboard is served over HTTPS (its cookies are then `Secure`).
    pub https: bool,
    /// Where local users' keys are sealed, one file each, under their own passwords.
    pub users: PathBuf,
    /// Collateral and supply over time, replayed from the journal.
    pub history: History,
    /// Whether the community publishes every member's balance (else a member sees their own,
    /// the operator all; see [`crate::views::Viewer`]).
    pub publish_balances: bool,
    /// Redemption requests already taken, so none is taken twice (across restarts too).
    pub redemptions_seen: crate::state::SeenRequests,
}
