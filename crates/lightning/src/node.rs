//! [`LightningNode`]: an ldk-node with moip's configuration, an event pump and typed errors.
//!
//! ldk-node has one event queue per node, and an event stays at its head until it is marked
//! handled. A node that several layers watch therefore needs one reader: the pump task here
//! takes each event, records what later calls need (the amounts of held payments, the reasons
//! of failures), fans it out to every subscriber, and only then marks it handled — so an event
//! interrupted by a crash is delivered again after the restart.
//!
//! The node gets its own small tokio runtime. ldk-node's blocking calls use
//! `block_in_place` on whatever runtime is current, which panics on a current-thread runtime;
//! giving ldk-node a runtime we own, and calling the blocking parts off any caller's runtime,
//! makes the node safe to use from sync code, from `#[tokio::test]` and from a server alike.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ldk_node::bitcoin::constants::ChainHash;
use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::bitcoin::{Address, Network, Txid};
use ldk_node::config::{BackgroundSyncConfig, ElectrumSyncConfig, EsploraSyncConfig};
use ldk_node::lightning::ln::channelmanager::PaymentId as LdkPaymentId;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::lightning::offers::offer::{Amount as OfferAmount, Offer};
use ldk_node::lightning::routing::router::RouteParametersConfig;
use ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use ldk_node::lightning_types::payment::{
    PaymentHash as LdkPaymentHash, PaymentPreimage as LdkPreimage,
};
use ldk_node::logger::LogLevel;
use ldk_node::payment::{PaymentDetails, PaymentDirection, PaymentKind, PaymentStatus};
use ldk_node::{Event, NodeError, UserChannelId};
use tokio::sync::broadcast;

use crate::config::{ChainSourceConfig, LightningConfig, SeedSource};
use crate::error::{LightningError, Result};
use crate::rail::{
    Balance, ChannelRef, Invoice, LightningEvent, NodeInfo, PaymentHash, PaymentId, PaymentOutcome,
    PaymentRecord, PaymentState, PaymentType, Preimage, RouteLimits,
};
use crate::sent::SentLog;

/// Subscribers that fall further behind than this many events get `Lagged`.
const EVENT_CAPACITY: usize = 1024;

/// How often waits re-check state that changes without an event (channel usability after a
/// sync, balances after a block).
const WAIT_RECHECK: Duration = Duration::from_millis(200);

/// How long an open waits for its funding transaction to reach the node's wallet before it
/// returns anyway (the open goes on; only the next open may then pick the same coins).
const FUNDING_WAIT: Duration = Duration::from_secs(60);

/// Worker threads of a node's runtime: enough for ldk-node's background tasks to progress
/// while one blocks on I/O, few enough that three test nodes fit on two cores.
const RUNTIME_THREADS: usize = 2;

/// A peer to connect to: `pubkey@host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddress {
    /// The peer's node id.
    pub node_id: PublicKey,
    /// Where it listens.
    pub address: SocketAddress,
}

impl FromStr for PeerAddress {
    type Err = LightningError;
    fn from_str(s: &str) -> Result<PeerAddress> {
        let malformed = |reason: &str| LightningError::Malformed {
            what: "peer address",
            reason: reason.to_string(),
        };
        let (id, addr) = s
            .trim()
            .split_once('@')
            .ok_or_else(|| malformed("expected <node id>@<host>:<port>"))?;
        let node_id = parse_node_id(id)?;
        let address = SocketAddress::from_str(addr).map_err(|_| malformed("bad host:port"))?;
        Ok(PeerAddress { node_id, address })
    }
}

impl std::fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.node_id, self.address)
    }
}

/// Parses a hex node id into a public key.
pub fn parse_node_id(s: &str) -> Result<PublicKey> {
    PublicKey::from_str(s.trim()).map_err(|e| LightningError::Malformed {
        what: "node id",
        reason: e.to_string(),
    })
}

/// One channel, as [`LightningNode::channels`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Our id for it (stable across restarts); closing takes this.
    pub user_channel_id: u128,
    /// The protocol's channel id, hex.
    pub channel_id: String,
    /// The peer.
    pub counterparty: PublicKey,
    /// The funding output, once known.
    pub funding_txid: Option<Txid>,
    /// Total capacity.
    pub capacity_sats: u64,
    /// What we could send (our balance less the reserve and in-flight HTLCs).
    pub outbound_msat: u64,
    /// What we could receive.
    pub inbound_msat: u64,
    /// Confirmations of the funding transaction.
    pub confirmations: Option<u32>,
    /// Funding confirmed and `channel_ready` exchanged.
    pub is_ready: bool,
    /// Ready and the peer is connected: payments can flow.
    pub is_usable: bool,
    /// Announced to the network (routable by others).
    pub is_announced: bool,
    /// We opened it.
    pub is_outbound: bool,
    /// What the peer charges to forward payments to us over it, once its channel update
    /// arrived: what our invoices' route hints ask payers to pay for a private channel.
    pub peer_fee: Option<ForwardingFee>,
}

/// State shared between the node handle and its event pump.
struct Shared {
    events: broadcast::Sender<LightningEvent>,
    /// Bumped on every event; waiters sleep on `changed` and re-check their condition.
    generation: Mutex<u64>,
    changed: Condvar,
    /// Claimable amounts of hold-invoice payments that arrived and are not yet decided.
    held: Mutex<HashMap<[u8; 32], u64>>,
    /// Failure reasons of outgoing payments, by payment id.
    failures: Mutex<HashMap<[u8; 32], String>>,
    /// Outbound successes ldk-node's store has no record of (see [`crate::sent`]).
    sent: SentLog,
}

/// A poisoned lock only means another thread panicked while holding it; the maps inside stay
/// consistent (every update is a single insert or remove), so carry on with the data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

struct Inner {
    ldk: Arc<ldk_node::Node>,
    network: Network,
    shared: Arc<Shared>,
    stop_pump: tokio::sync::watch::Sender<bool>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    stopped: AtomicBool,
    /// Held from a channel open until the wallet has seen its funding transaction (see
    /// [`LightningNode::open_channel`]).
    opening: Mutex<()>,
}

/// A running Lightning node. Cheap to clone; every clone is the same node. The node stops when
/// [`stop`](Self::stop) is called or the last clone is dropped.
#[derive(Clone)]
pub struct LightningNode {
    inner: Arc<Inner>,
}

/// Runs `f` on a fresh thread with no tokio context, so ldk-node's `block_in_place` uses the
/// node's own runtime whatever runtime (if any) the caller is on.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a node charges for forwarding a payment over one of its channels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwardingFee {
    /// A flat fee per forwarded payment, in msat.
    pub base_msat: u32,
    /// A fee in millionths of the forwarded amount.
    pub proportional_millionths: u32,
}

fn route_params(limits: RouteLimits) -> Option<RouteParametersConfig> {
    if limits == RouteLimits::default() {
        return None;
    }
    let default = RouteParametersConfig::default();
    Some(RouteParametersConfig {
        max_total_routing_fee_msat: limits.max_fee_msat.or(default.max_total_routing_fee_msat),
        max_path_count: limits.max_parts.unwrap_or(default.max_path_count),
        max_total_cltv_expiry_delta: limits
            .max_cltv_expiry_delta
            .unwrap_or(default.max_total_cltv_expiry_delta),
        ..default
    })
}

impl LightningNode {
    /// Opens (or creates) the node in `config.data_dir`, connects to its chain source and starts
    /// listening. Blocks until ldk-node has started (it syncs fee estimates first).
    ///
    /// # Errors
    /// [`LightningError::Config`] for an invalid configuration, [`LightningError::Seed`] when the
    /// seed file cannot be opened (wrong password included), [`LightningError::Build`] or
    /// [`LightningError::Node`] when ldk-node cannot start.
    pub fn start(config: LightningConfig) -> Result<LightningNode> {
        config.validate()?;
        let mnemonic = match &config.seed {
            SeedSource::EncryptedFile { path, password } => {
                moip_wallet::keystore::SeedFile::open(path, password)?
            }
            SeedSource::Mnemonic(mnemonic) => mnemonic.clone(),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("moip-ln")
            .enable_all()
            .build()
            .map_err(|e| LightningError::Config(format!("cannot start a runtime: {e}")))?;

        let mut builder = ldk_node::Builder::new();
        builder.set_network(config.network);
        builder.set_storage_dir_path(config.data_dir.to_string_lossy().into_owned());
        builder.set_entropy_bip39_mnemonic(mnemonic, None);
        builder.set_runtime(runtime.handle().clone());
        // Info keeps the log useful without a line per gossip message; ldk-node never logs keys.
        builder.set_filesystem_logger(
            Some(
                config
                    .data_dir
                    .join("ldk_node.log")
                    .to_string_lossy()
                    .into_owned(),
            ),
            Some(LogLevel::Info),
        );
        let background = config.sync_interval.map(|interval| BackgroundSyncConfig {
            onchain_wallet_sync_interval_secs: interval.as_secs(),
            lightning_wallet_sync_interval_secs: interval.as_secs(),
            fee_rate_cache_update_interval_secs: interval.as_secs().max(60),
        });
        match &config.chain {
            ChainSourceConfig::Electrum { url } => {
                let sync = background.map(|b| ElectrumSyncConfig {
                    background_sync_config: Some(b),
                });
                builder.set_chain_source_electrum(url.clone(), sync);
            }
            ChainSourceConfig::Esplora { url } => {
                let sync = background.map(|b| EsploraSyncConfig {
                    background_sync_config: Some(b),
                });
                builder.set_chain_source_esplora(url.clone(), sync);
            }
            ChainSourceConfig::BitcoindRpc {
                host,
                port,
                user,
                password,
            } => {
                builder.set_chain_source_bitcoind_rpc(
                    host.clone(),
                    *port,
                    user.clone(),
                    password.clone(),
                );
            }
        }
        // Gossip from peers: moip's nodes learn the graph from each other, no outside service.
        builder.set_gossip_source_p2p();
        if !config.listen.is_empty() {
            let addresses = config.listen.iter().map(|a| SocketAddress::from(*a));
            builder.set_listening_addresses(addresses.collect())?;
        }
        if let Some(alias) = &config.alias {
            builder.set_node_alias(alias.clone())?;
        }

        let sent = SentLog::open(&config.data_dir).map_err(|e| {
            LightningError::Config(format!("cannot read the record of sent payments: {e}"))
        })?;
        let ldk = off_runtime(|| -> Result<Arc<ldk_node::Node>> {
            let node = Arc::new(builder.build()?);
            node.start()?;
            Ok(node)
        })?;

        let shared = Arc::new(Shared {
            events: broadcast::channel(EVENT_CAPACITY).0,
            generation: Mutex::new(0),
            changed: Condvar::new(),
            held: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            sent,
        });
        let (stop_pump, stop_rx) = tokio::sync::watch::channel(false);
        runtime.spawn(pump(Arc::clone(&ldk), Arc::clone(&shared), stop_rx));

        Ok(LightningNode {
            inner: Arc::new(Inner {
                ldk,
                network: config.network,
                shared,
                stop_pump,
                runtime: Mutex::new(Some(runtime)),
                stopped: AtomicBool::new(false),
                opening: Mutex::new(()),
            }),
        })
    }

    /// Stops the node: disconnects peers, persists, and releases the data directory so the
    /// node can be started again from it. Idempotent.
    pub fn stop(&self) -> Result<()> {
        self.inner.stop()
    }

    /// The underlying ldk-node, for what this wrapper does not cover.
    pub fn ldk(&self) -> &ldk_node::Node {
        &self.inner.ldk
    }

    /// The node's public key.
    pub fn node_id(&self) -> PublicKey {
        self.inner.ldk.node_id()
    }

    /// The network the node runs on.
    pub fn network(&self) -> Network {
        self.inner.network
    }

    /// `node_id@address` for each listening address, what peers need to connect.
    pub fn peer_addresses(&self) -> Vec<PeerAddress> {
        self.inner
            .ldk
            .listening_addresses()
            .unwrap_or_default()
            .into_iter()
            .map(|address| PeerAddress {
                node_id: self.node_id(),
                address,
            })
            .collect()
    }

    /// Syncs the on-chain and Lightning wallets with the chain source now, instead of waiting
    /// for the next background sync.
    pub fn sync(&self) -> Result<()> {
        let ldk = &self.inner.ldk;
        off_runtime(|| ldk.sync_wallets())?;
        self.inner.shared.bump();
        Ok(())
    }

    /// The best block the node has processed.
    pub fn best_block_height(&self) -> u32 {
        self.inner.ldk.status().current_best_block.height
    }

    /// A new subscription to the node's events.
    pub fn subscribe(&self) -> broadcast::Receiver<LightningEvent> {
        self.inner.shared.events.subscribe()
    }

    /// Waits until `check` returns `Some`, re-checking on every node event and at least every
    /// 200 ms (for state that changes without an event).
    ///
    /// # Errors
    /// [`LightningError::Timeout`] when `timeout` passes first.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&LightningNode) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let shared = &self.inner.shared;
        loop {
            let seen = *lock(&shared.generation);
            if let Some(value) = check(self) {
                return Ok(value);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(LightningError::Timeout {
                    what: what.to_string(),
                    after: timeout,
                });
            }
            let guard = lock(&shared.generation);
            if *guard == seen {
                let slice = WAIT_RECHECK.min(deadline - now);
                let _ = shared.changed.wait_timeout(guard, slice);
            }
        }
    }

    // ---- channels and peers ----

    /// Connects to a peer and remembers it, so the node reconnects after a restart.
    pub fn connect(&self, peer: &PeerAddress) -> Result<()> {
        let ldk = &self.inner.ldk;
        off_runtime(|| ldk.connect(peer.node_id, peer.address.clone(), true))?;
        Ok(())
    }

    /// Opens a channel of `amount_sats` to `peer`, pushing `push_msat` to its side. An announced
    /// channel (the default for nodes with an alias) is routable by the whole network once it has
    /// six confirmations; an unannounced one is private to the two peers.
    ///
    /// Returns once the funding transaction is broadcast and known to the node's wallet (or
    /// after a minute, if the peer is slow to sign). ldk-node 0.7 builds the funding
    /// transaction from its wallet but marks the coins spent only at the wallet's next sync, so
    /// a second open started before that would spend the same coins, and its funding
    /// transaction — a double spend — would never confirm. Opens are therefore serialised.
    ///
    /// # Errors
    /// [`LightningError::InsufficientBalance`] when the wallet cannot fund the channel,
    /// [`LightningError::ChannelRefused`] when the peer rejects it, [`LightningError::Node`]
    /// for any other refusal by ldk-node (peer unreachable, amount out of range…).
    pub fn open_channel(
        &self,
        peer: &PeerAddress,
        amount_sats: u64,
        push_msat: Option<u64>,
        announce: bool,
    ) -> Result<u128> {
        self.open_channel_with(peer, amount_sats, push_msat, announce, None)
    }

    /// Like [`LightningNode::open_channel`], charging `fee` for payments this node forwards
    /// out over the new channel (LDK's default otherwise). The fee is in the first channel
    /// update the peer gets, so a private channel's route hints carry it from the start.
    ///
    /// # Errors
    /// As [`LightningNode::open_channel`].
    pub fn open_channel_charging(
        &self,
        peer: &PeerAddress,
        amount_sats: u64,
        announce: bool,
        fee: ForwardingFee,
    ) -> Result<u128> {
        self.open_channel_with(peer, amount_sats, None, announce, Some(fee))
    }

    fn open_channel_with(
        &self,
        peer: &PeerAddress,
        amount_sats: u64,
        push_msat: Option<u64>,
        announce: bool,
        fee: Option<ForwardingFee>,
    ) -> Result<u128> {
        let _one_at_a_time = lock(&self.inner.opening);
        let ldk = &self.inner.ldk;
        let config = fee.map(|fee| ldk_node::config::ChannelConfig {
            forwarding_fee_base_msat: fee.base_msat,
            forwarding_fee_proportional_millionths: fee.proportional_millionths,
            ..Default::default()
        });
        let id = off_runtime(|| {
            let address = peer.address.clone();
            if announce {
                ldk.open_announced_channel(peer.node_id, address, amount_sats, push_msat, config)
            } else {
                ldk.open_channel(peer.node_id, address, amount_sats, push_msat, config)
            }
        })
        .map_err(|e| match e {
            NodeError::InsufficientFunds => LightningError::InsufficientBalance {
                requested_msat: amount_sats.saturating_mul(1000),
                available_msat: self
                    .inner
                    .ldk
                    .list_balances()
                    .spendable_onchain_balance_sats
                    .saturating_mul(1000),
            },
            other => other.into(),
        })?;
        match self.wait_funding_in_wallet(id.0) {
            Err(LightningError::Timeout { .. }) | Ok(()) => Ok(id.0),
            Err(e) => Err(e),
        }
    }

    /// Waits until the wallet lists the funding transaction of channel `id`, syncing it with
    /// the chain source as the transaction appears there.
    fn wait_funding_in_wallet(&self, id: u128) -> Result<()> {
        let ldk = &self.inner.ldk;
        let known = self.wait_for(FUNDING_WAIT, "the funding transaction", |_| {
            let Some(channel) = ldk
                .list_channels()
                .into_iter()
                .find(|c| c.user_channel_id.0 == id)
            else {
                // The peer refused (or the open failed): LDK dropped the channel.
                return Some(false);
            };
            let txid = channel.funding_txo?.txid;
            off_runtime(|| ldk.sync_wallets()).ok()?;
            let in_wallet = !ldk
                .list_payments_with_filter(
                    |p| matches!(p.kind, PaymentKind::Onchain { txid: t, .. } if t == txid),
                )
                .is_empty();
            in_wallet.then_some(true)
        })?;
        if known {
            Ok(())
        } else {
            Err(LightningError::ChannelRefused)
        }
    }

    /// The node's channels.
    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.inner
            .ldk
            .list_channels()
            .into_iter()
            .map(|c| ChannelInfo {
                user_channel_id: c.user_channel_id.0,
                channel_id: c.channel_id.to_string(),
                counterparty: c.counterparty_node_id,
                funding_txid: c.funding_txo.map(|o| o.txid),
                capacity_sats: c.channel_value_sats,
                outbound_msat: c.outbound_capacity_msat,
                inbound_msat: c.inbound_capacity_msat,
                confirmations: c.confirmations,
                is_ready: c.is_channel_ready,
                is_usable: c.is_usable,
                is_announced: c.is_announced,
                is_outbound: c.is_outbound,
                peer_fee: c
                    .counterparty_forwarding_info_fee_base_msat
                    .map(|base_msat| ForwardingFee {
                        base_msat,
                        proportional_millionths: c
                            .counterparty_forwarding_info_fee_proportional_millionths
                            .unwrap_or(0),
                    }),
            })
            .collect()
    }

    fn channel_counterparty(&self, user_channel_id: u128) -> Result<PublicKey> {
        self.inner
            .ldk
            .list_channels()
            .into_iter()
            .find(|c| c.user_channel_id.0 == user_channel_id)
            .map(|c| c.counterparty_node_id)
            .ok_or_else(|| LightningError::UnknownChannel(user_channel_id.to_string()))
    }

    /// Closes a channel cooperatively: both sides sign a closing transaction that pays each its
    /// balance at once.
    pub fn close_channel(&self, user_channel_id: u128) -> Result<()> {
        let peer = self.channel_counterparty(user_channel_id)?;
        let ldk = &self.inner.ldk;
        off_runtime(|| ldk.close_channel(&UserChannelId(user_channel_id), peer))?;
        Ok(())
    }

    /// Force-closes a channel by broadcasting our commitment transaction, for a peer that is gone
    /// or misbehaves. Our balance comes back after the channel's CSV delay, swept by the node to
    /// its on-chain wallet.
    pub fn force_close_channel(&self, user_channel_id: u128, reason: Option<String>) -> Result<()> {
        let peer = self.channel_counterparty(user_channel_id)?;
        let ldk = &self.inner.ldk;
        off_runtime(|| ldk.force_close_channel(&UserChannelId(user_channel_id), peer, reason))?;
        Ok(())
    }

    /// Channels known from gossip (our own announced ones included).
    pub fn graph_channel_count(&self) -> usize {
        self.inner.ldk.network_graph().list_channels().len()
    }

    /// Nodes whose node announcement (alias, addresses, features) we have from gossip. Paying
    /// a BOLT12 offer needs them: onion messages are routed over announced nodes.
    pub fn graph_announced_node_count(&self) -> usize {
        let graph = self.inner.ldk.network_graph();
        graph
            .list_nodes()
            .iter()
            .filter(|id| {
                graph
                    .node(id)
                    .is_some_and(|n| n.announcement_info.is_some())
            })
            .count()
    }

    // ---- on-chain wallet ----

    /// A fresh address of the node's on-chain wallet.
    pub fn new_address(&self) -> Result<Address> {
        Ok(self.inner.ldk.onchain_payment().new_address()?)
    }

    /// Sends `amount_sats` on chain.
    pub fn send_onchain(&self, address: &str, amount_sats: u64) -> Result<Txid> {
        let address = Address::from_str(address.trim())
            .map_err(|e| LightningError::Malformed {
                what: "address",
                reason: e.to_string(),
            })?
            .require_network(self.network())
            .map_err(|_| LightningError::WrongNetwork {
                what: "address",
                expected: self.network().to_string(),
            })?;
        let spendable = self
            .inner
            .ldk
            .list_balances()
            .spendable_onchain_balance_sats;
        if amount_sats > spendable {
            return Err(LightningError::InsufficientBalance {
                requested_msat: amount_sats.saturating_mul(1000),
                available_msat: spendable.saturating_mul(1000),
            });
        }
        Ok(self
            .inner
            .ldk
            .onchain_payment()
            .send_to_address(&address, amount_sats, None)?)
    }

    /// Balances, on chain and in channels.
    pub fn balance(&self) -> Balance {
        let details = self.inner.ldk.list_balances();
        let (mut sendable, mut receivable) = (0u64, 0u64);
        for c in self.inner.ldk.list_channels() {
            if c.is_usable {
                sendable = sendable.saturating_add(c.next_outbound_htlc_limit_msat);
                receivable = receivable.saturating_add(c.inbound_capacity_msat);
            }
        }
        Balance {
            lightning_sats: details.total_lightning_balance_sats,
            sendable_msat: sendable,
            receivable_msat: receivable,
            onchain_sats: details.total_onchain_balance_sats,
            onchain_spendable_sats: details.spendable_onchain_balance_sats,
        }
    }

    /// Sweeps of force-closed channels that have not yet confirmed deeply, in sats.
    pub fn pending_sweep_sats(&self) -> u64 {
        use ldk_node::PendingSweepBalance as P;
        self.inner
            .ldk
            .list_balances()
            .pending_balances_from_channel_closures
            .iter()
            .map(|b| match b {
                P::PendingBroadcast {
                    amount_satoshis, ..
                }
                | P::BroadcastAwaitingConfirmation {
                    amount_satoshis, ..
                }
                | P::AwaitingThresholdConfirmations {
                    amount_satoshis, ..
                } => *amount_satoshis,
            })
            .sum()
    }

    // ---- receiving ----

    /// Issues a BOLT11 invoice; the payment is claimed automatically when it arrives.
    pub fn create_invoice(
        &self,
        amount_msat: Option<u64>,
        description: &str,
        expiry_secs: u32,
    ) -> Result<Invoice> {
        let description = bolt11_description(description)?;
        let bolt11 = self.inner.ldk.bolt11_payment();
        let invoice = match amount_msat {
            Some(amount) => bolt11.receive(amount, &description, expiry_secs)?,
            None => bolt11.receive_variable_amount(&description, expiry_secs)?,
        };
        Ok(invoice_info(&invoice))
    }

    /// Issues an invoice committing to `description_hash`; see
    /// [`crate::PaymentRail::create_invoice_for_description_hash`].
    pub fn create_invoice_for_description_hash(
        &self,
        amount_msat: Option<u64>,
        description_hash: [u8; 32],
        expiry_secs: u32,
    ) -> Result<Invoice> {
        use ldk_node::bitcoin::hashes::{sha256, Hash};
        let description = Bolt11InvoiceDescription::Hash(ldk_node::lightning_invoice::Sha256(
            sha256::Hash::from_byte_array(description_hash),
        ));
        let bolt11 = self.inner.ldk.bolt11_payment();
        let invoice = match amount_msat {
            Some(amount) => bolt11.receive(amount, &description, expiry_secs)?,
            None => bolt11.receive_variable_amount(&description, expiry_secs)?,
        };
        Ok(invoice_info(&invoice))
    }

    /// Signs `message` with the node's key; see [`crate::PaymentRail::sign_message`].
    pub fn sign_message(&self, message: &[u8]) -> String {
        self.inner.ldk.sign_message(message)
    }

    /// Whether `signature` (zbase32, from [`sign_message`](Self::sign_message) or LND's or
    /// CLN's `signmessage`) signs `message` with `node_id`'s key.
    pub fn verify_signature(&self, message: &[u8], signature: &str, node_id: &PublicKey) -> bool {
        self.inner.ldk.verify_signature(message, signature, node_id)
    }

    /// Issues a hold invoice for `payment_hash`; see [`crate::PaymentRail::create_hold_invoice`].
    pub fn create_hold_invoice(
        &self,
        payment_hash: PaymentHash,
        amount_msat: u64,
        description: &str,
        expiry_secs: u32,
    ) -> Result<Invoice> {
        let description = bolt11_description(description)?;
        let invoice = self.inner.ldk.bolt11_payment().receive_for_hash(
            amount_msat,
            &description,
            expiry_secs,
            LdkPaymentHash(payment_hash.0),
        )?;
        Ok(invoice_info(&invoice))
    }

    /// Claims a held payment with its preimage.
    ///
    /// # Errors
    /// [`LightningError::HoldInvoiceNotAccepted`] if no payment to that hash has arrived yet,
    /// [`LightningError::UnknownPayment`] if no hold invoice has that hash.
    pub fn settle_hold_invoice(&self, preimage: Preimage) -> Result<()> {
        let hash = preimage.payment_hash();
        let amount = lock(&self.inner.shared.held).get(&hash.0).copied();
        let Some(amount) = amount else {
            return Err(match self.inner.ldk.payment(&LdkPaymentId(hash.0)) {
                Some(_) => LightningError::HoldInvoiceNotAccepted(hash.to_string()),
                None => LightningError::UnknownPayment(hash.to_string()),
            });
        };
        self.inner
            .ldk
            .bolt11_payment()
            .claim_for_hash(LdkPaymentHash(hash.0), amount, LdkPreimage(preimage.0))
            .map_err(|e| match e {
                NodeError::InvalidPaymentHash => LightningError::UnknownPayment(hash.to_string()),
                other => other.into(),
            })?;
        lock(&self.inner.shared.held).remove(&hash.0);
        Ok(())
    }

    /// Remembers that a payment of `amount_msat` to the hold invoice `payment_hash` arrived
    /// before a restart (see [`crate::PaymentRail::restore_held`]), so that
    /// [`settle_hold_invoice`](Self::settle_hold_invoice) claims it; one noted since the start
    /// is kept as it is.
    pub fn restore_held(&self, payment_hash: PaymentHash, amount_msat: u64) {
        lock(&self.inner.shared.held)
            .entry(payment_hash.0)
            .or_insert(amount_msat);
    }

    /// Fails a held payment back to its payer, and refuses later payments to the same hash.
    pub fn cancel_hold_invoice(&self, payment_hash: PaymentHash) -> Result<()> {
        self.inner
            .ldk
            .bolt11_payment()
            .fail_for_hash(LdkPaymentHash(payment_hash.0))
            .map_err(|e| match e {
                NodeError::InvalidPaymentHash => {
                    LightningError::UnknownPayment(payment_hash.to_string())
                }
                other => other.into(),
            })?;
        lock(&self.inner.shared.held).remove(&payment_hash.0);
        Ok(())
    }

    /// Creates a BOLT12 offer (reusable; `None` lets the payer choose the amount).
    pub fn create_offer(&self, amount_msat: Option<u64>, description: &str) -> Result<String> {
        let bolt12 = self.inner.ldk.bolt12_payment();
        let offer = match amount_msat {
            Some(amount) => bolt12.receive(amount, description, None, None)?,
            None => bolt12.receive_variable_amount(description, None)?,
        };
        Ok(offer.to_string())
    }

    // ---- sending ----

    /// Parses and checks a BOLT11 invoice for this node's network and the current time.
    pub fn parse_invoice(&self, invoice: &str) -> Result<Bolt11Invoice> {
        let invoice =
            Bolt11Invoice::from_str(invoice.trim()).map_err(|e| LightningError::Malformed {
                what: "invoice",
                reason: e.to_string(),
            })?;
        if invoice.network() != self.network() {
            return Err(LightningError::WrongNetwork {
                what: "invoice",
                expected: self.network().to_string(),
            });
        }
        if invoice.is_expired() {
            let expired_at = invoice.expires_at().map(|d| d.as_secs()).unwrap_or(0);
            return Err(LightningError::InvoiceExpired {
                ago_secs: now_secs().saturating_sub(expired_at),
            });
        }
        Ok(invoice)
    }

    /// Refuses a payment the channels cannot carry, before anything is sent.
    fn check_sendable(&self, amount_msat: u64, limits: RouteLimits) -> Result<()> {
        if amount_msat == 0 {
            return Err(LightningError::InvalidAmount("the amount is zero".into()));
        }
        let requested = amount_msat.saturating_add(limits.max_fee_msat.unwrap_or(0));
        let available = self.balance().sendable_msat;
        if requested > available {
            return Err(LightningError::InsufficientBalance {
                requested_msat: requested,
                available_msat: available,
            });
        }
        Ok(())
    }

    /// Starts paying a BOLT11 invoice and returns without waiting; see
    /// [`wait_payment`](Self::wait_payment). LDK splits the payment over several paths when no
    /// single one can carry it (multi-path payments).
    ///
    /// `amount_msat` is required for any-amount invoices and may exceed a fixed amount.
    /// `limits` caps the routing fees of all parts together and the number of parts.
    pub fn send_bolt11(
        &self,
        invoice: &str,
        amount_msat: Option<u64>,
        limits: RouteLimits,
    ) -> Result<PaymentId> {
        let invoice = self.parse_invoice(invoice)?;
        let amount = match (invoice.amount_milli_satoshis(), amount_msat) {
            (Some(asked), None) => asked,
            (Some(asked), Some(given)) if given < asked => {
                return Err(LightningError::InvalidAmount(format!(
                    "{given} msat is less than the invoice's {asked} msat"
                )))
            }
            (_, Some(given)) => given,
            (None, None) => {
                return Err(LightningError::InvalidAmount(
                    "the invoice has no amount; give one".into(),
                ))
            }
        };
        self.check_sendable(amount, limits)?;
        let bolt11 = self.inner.ldk.bolt11_payment();
        let params = route_params(limits);
        let sent = match amount_msat {
            None => bolt11.send(&invoice, params),
            Some(amount) => bolt11.send_using_amount(&invoice, amount, params),
        };
        sent.map(|id| PaymentId(id.0)).map_err(send_error)
    }

    /// Starts a spontaneous (keysend) payment to `node_id`.
    pub fn send_keysend(
        &self,
        node_id: PublicKey,
        amount_msat: u64,
        limits: RouteLimits,
    ) -> Result<PaymentId> {
        self.check_sendable(amount_msat, limits)?;
        self.inner
            .ldk
            .spontaneous_payment()
            .send(amount_msat, node_id, route_params(limits))
            .map(|id| PaymentId(id.0))
            .map_err(send_error)
    }

    /// Sends a keysend payment with the caller's preimage and TLV records and waits for the
    /// outcome; see [`crate::PaymentRail::pay_keysend`].
    pub fn pay_keysend(&self, request: crate::rail::KeysendRequest) -> Result<PaymentOutcome> {
        self.check_sendable(request.amount_msat, request.limits)?;
        let tlvs: Vec<ldk_node::CustomTlvRecord> = request
            .tlv_records
            .into_iter()
            .map(|(type_num, value)| ldk_node::CustomTlvRecord { type_num, value })
            .collect();
        let id = self
            .inner
            .ldk
            .spontaneous_payment()
            .send_with_preimage_and_custom_tlvs(
                request.amount_msat,
                request.node_id,
                tlvs,
                LdkPreimage(request.preimage.0),
                route_params(request.limits),
            )
            .map(|id| PaymentId(id.0))
            .map_err(send_error)?;
        self.wait_payment(id, request.timeout)
    }

    /// Starts paying a BOLT12 offer: requests an invoice from the offer's node over onion
    /// messages, then pays it.
    pub fn send_offer(
        &self,
        offer: &str,
        amount_msat: Option<u64>,
        payer_note: Option<String>,
        limits: RouteLimits,
    ) -> Result<PaymentId> {
        let offer = Offer::from_str(offer.trim()).map_err(|e| LightningError::Malformed {
            what: "offer",
            reason: format!("{e:?}"),
        })?;
        if !offer.supports_chain(ChainHash::using_genesis_block(self.network())) {
            return Err(LightningError::WrongNetwork {
                what: "offer",
                expected: self.network().to_string(),
            });
        }
        if offer.is_expired() {
            let expired_at = offer.absolute_expiry().map(|d| d.as_secs()).unwrap_or(0);
            return Err(LightningError::InvoiceExpired {
                ago_secs: now_secs().saturating_sub(expired_at),
            });
        }
        let asked = match offer.amount() {
            Some(OfferAmount::Bitcoin { amount_msats }) => Some(amount_msats),
            Some(OfferAmount::Currency { .. }) => {
                return Err(LightningError::InvalidAmount(
                    "offers priced in fiat currencies are not supported".into(),
                ))
            }
            None => None,
        };
        let amount = match (asked, amount_msat) {
            (Some(asked), None) => asked,
            (Some(asked), Some(given)) if given < asked => {
                return Err(LightningError::InvalidAmount(format!(
                    "{given} msat is less than the offer's {asked} msat"
                )))
            }
            (_, Some(given)) => given,
            (None, None) => {
                return Err(LightningError::InvalidAmount(
                    "the offer has no amount; give one".into(),
                ))
            }
        };
        self.check_sendable(amount, limits)?;
        let bolt12 = self.inner.ldk.bolt12_payment();
        let params = route_params(limits);
        let sent = match amount_msat {
            None => bolt12.send(&offer, None, payer_note, params),
            Some(amount) => bolt12.send_using_amount(&offer, amount, None, payer_note, params),
        };
        sent.map(|id| PaymentId(id.0)).map_err(send_error)
    }

    /// Waits for an outgoing payment's outcome.
    ///
    /// # Errors
    /// [`LightningError::PaymentFailed`] with LDK's reason, [`LightningError::Timeout`] if
    /// it is still in flight after `timeout`, [`LightningError::UnknownPayment`] for an id the
    /// node never sent.
    pub fn wait_payment(&self, id: PaymentId, timeout: Duration) -> Result<PaymentOutcome> {
        let ldk_id = LdkPaymentId(id.0);
        self.wait_for(timeout, &format!("payment {id}"), |node| {
            let Some(details) = node.inner.ldk.payment(&ldk_id) else {
                return Some(Err(LightningError::UnknownPayment(id.to_string())));
            };
            match details.status {
                PaymentStatus::Pending => None,
                PaymentStatus::Succeeded => {
                    let record = record(&details);
                    Some(Ok(PaymentOutcome {
                        payment_id: id,
                        payment_hash: record.payment_hash,
                        preimage: record.preimage,
                        amount_msat: record.amount_msat,
                        fee_paid_msat: record.fee_paid_msat,
                    }))
                }
                PaymentStatus::Failed => {
                    let reason = lock(&node.inner.shared.failures)
                        .get(&id.0)
                        .cloned()
                        .unwrap_or_else(|| "unknown".into());
                    Some(Err(LightningError::PaymentFailed { reason }))
                }
            }
        })?
    }

    /// Pays a BOLT11 invoice and waits for the outcome.
    pub fn pay(
        &self,
        invoice: &str,
        amount_msat: Option<u64>,
        limits: RouteLimits,
        timeout: Duration,
    ) -> Result<PaymentOutcome> {
        let id = self.send_bolt11(invoice, amount_msat, limits)?;
        self.wait_payment(id, timeout)
    }

    // ---- history ----

    /// Decodes a BOLT11 invoice for this node (network and expiry checked).
    pub fn decode_invoice(&self, invoice: &str) -> Result<Invoice> {
        self.parse_invoice(invoice).map(|i| invoice_info(&i))
    }

    /// The Lightning payment with `payment_hash`, if any (the most recent if several).
    pub fn payment_by_hash(&self, payment_hash: PaymentHash) -> Option<PaymentRecord> {
        // BOLT11 and keysend payments (hold invoices included) are stored under their hash:
        // one lookup. Only BOLT12 payments have random ids and need the scan.
        let stored = self
            .inner
            .ldk
            .payment(&LdkPaymentId(payment_hash.0))
            .map(|d| record(&d));
        if let Some(preimage) = self.inner.shared.sent.preimage(&payment_hash) {
            if stored
                .as_ref()
                .is_none_or(|r| r.state != PaymentState::Succeeded)
            {
                return Some(PaymentRecord {
                    id: PaymentId(payment_hash.0),
                    kind: PaymentType::Bolt11,
                    inbound: false,
                    state: PaymentState::Succeeded,
                    amount_msat: stored.as_ref().and_then(|r| r.amount_msat),
                    fee_paid_msat: None,
                    payment_hash: Some(payment_hash),
                    preimage: Some(preimage),
                    updated_at: stored.map_or_else(now_secs, |r| r.updated_at),
                });
            }
        }
        if stored.is_some() {
            return stored;
        }
        self.payments()
            .into_iter()
            .rev()
            .find(|p| p.payment_hash == Some(payment_hash))
    }

    /// Who the node is.
    pub fn node_info(&self) -> NodeInfo {
        NodeInfo {
            node_id: self.node_id(),
            network: self.network(),
            alias: self.inner.ldk.node_alias().map(|a| a.to_string()),
            block_height: self.best_block_height(),
        }
    }

    /// Every payment the node knows, oldest update first.
    pub fn payments(&self) -> Vec<PaymentRecord> {
        let mut records: Vec<PaymentRecord> =
            self.inner.ldk.list_payments().iter().map(record).collect();
        records.sort_by_key(|r| r.updated_at);
        records
    }

    /// One payment by id.
    pub fn payment(&self, id: PaymentId) -> Option<PaymentRecord> {
        self.inner
            .ldk
            .payment(&LdkPaymentId(id.0))
            .map(|d| record(&d))
    }
}

fn send_error(e: NodeError) -> LightningError {
    match e {
        NodeError::DuplicatePayment => LightningError::DuplicatePayment,
        NodeError::InvalidInvoice => LightningError::Malformed {
            what: "invoice",
            reason: "rejected by ldk-node".into(),
        },
        NodeError::InvalidAmount => LightningError::InvalidAmount("rejected by ldk-node".into()),
        // LDK found no route within the limits (or refused the parameters) before sending.
        NodeError::PaymentSendingFailed => LightningError::NotSent {
            reason: "no route within the fee limit, or LDK refused the parameters".into(),
        },
        other => LightningError::Node(other),
    }
}

/// Reads a BOLT11 invoice without judging it: no network or expiry check. For the books of
/// invoices accepted earlier, which may have expired since (use
/// [`LightningNode::decode_invoice`] to decide whether to pay one).
///
/// # Errors
/// [`LightningError::Malformed`] when `text` is not a BOLT11 invoice.
pub fn read_invoice(text: &str) -> Result<Invoice> {
    Bolt11Invoice::from_str(text.trim())
        .map(|i| invoice_info(&i))
        .map_err(|e| LightningError::Malformed {
            what: "invoice",
            reason: e.to_string(),
        })
}

fn bolt11_description(text: &str) -> Result<Bolt11InvoiceDescription> {
    let description = Description::new(text.to_string())
        .map_err(|e| LightningError::InvalidAmount(format!("description: {e}")))?;
    Ok(Bolt11InvoiceDescription::Direct(description))
}

fn invoice_info(invoice: &Bolt11Invoice) -> Invoice {
    use ldk_node::bitcoin::hashes::Hash;
    Invoice {
        bolt11: invoice.to_string(),
        payment_hash: PaymentHash(invoice.payment_hash().to_byte_array()),
        amount_msat: invoice.amount_milli_satoshis(),
        expires_at: invoice
            .expires_at()
            .map(|d| d.as_secs())
            .unwrap_or(u64::MAX),
        min_final_cltv_expiry_delta: invoice.min_final_cltv_expiry_delta(),
    }
}

fn record(details: &PaymentDetails) -> PaymentRecord {
    let (kind, hash, preimage) = match &details.kind {
        PaymentKind::Onchain { .. } => (PaymentType::Onchain, None, None),
        PaymentKind::Bolt11 { hash, preimage, .. }
        | PaymentKind::Bolt11Jit { hash, preimage, .. } => {
            (PaymentType::Bolt11, Some(*hash), *preimage)
        }
        PaymentKind::Bolt12Offer { hash, preimage, .. }
        | PaymentKind::Bolt12Refund { hash, preimage, .. } => {
            (PaymentType::Bolt12, *hash, *preimage)
        }
        PaymentKind::Spontaneous { hash, preimage } => {
            (PaymentType::Keysend, Some(*hash), *preimage)
        }
    };
    PaymentRecord {
        id: PaymentId(details.id.0),
        kind,
        inbound: details.direction == PaymentDirection::Inbound,
        state: match details.status {
            PaymentStatus::Pending => PaymentState::Pending,
            PaymentStatus::Succeeded => PaymentState::Succeeded,
            PaymentStatus::Failed => PaymentState::Failed,
        },
        amount_msat: details.amount_msat,
        fee_paid_msat: details.fee_paid_msat,
        payment_hash: hash.map(|h| PaymentHash(h.0)),
        preimage: preimage.map(|p| Preimage(p.0)),
        updated_at: details.latest_update_timestamp,
    }
}

impl Shared {
    fn bump(&self) {
        *lock(&self.generation) += 1;
        self.changed.notify_all();
    }

    /// Records what later calls need from `event` and turns it into ours.
    fn absorb(&self, event: Event) -> Option<LightningEvent> {
        let channel =
            |user_channel_id: UserChannelId, counterparty: Option<PublicKey>| ChannelRef {
                user_channel_id: user_channel_id.0,
                counterparty,
            };
        Some(match event {
            Event::PaymentSuccessful {
                payment_id,
                payment_hash,
                fee_paid_msat,
                ..
            } => LightningEvent::PaymentSent {
                payment_id: payment_id.map(|id| PaymentId(id.0)),
                payment_hash: PaymentHash(payment_hash.0),
                fee_paid_msat,
            },
            Event::PaymentFailed {
                payment_id,
                payment_hash,
                reason,
            } => {
                let reason = reason.map_or_else(|| "unknown".to_string(), |r| format!("{r:?}"));
                if let Some(id) = payment_id {
                    lock(&self.failures).insert(id.0, reason.clone());
                }
                LightningEvent::PaymentFailed {
                    payment_id: payment_id.map(|id| PaymentId(id.0)),
                    payment_hash: payment_hash.map(|h| PaymentHash(h.0)),
                    reason,
                }
            }
            Event::PaymentReceived {
                payment_id,
                payment_hash,
                amount_msat,
                ..
            } => LightningEvent::PaymentReceived {
                payment_id: payment_id.map(|id| PaymentId(id.0)),
                payment_hash: PaymentHash(payment_hash.0),
                amount_msat,
            },
            Event::PaymentClaimable {
                payment_hash,
                claimable_amount_msat,
                claim_deadline,
                ..
            } => {
                lock(&self.held).insert(payment_hash.0, claimable_amount_msat);
                LightningEvent::HoldInvoiceAccepted {
                    payment_hash: PaymentHash(payment_hash.0),
                    amount_msat: claimable_amount_msat,
                    claim_deadline,
                }
            }
            Event::PaymentForwarded {
                total_fee_earned_msat,
                outbound_amount_forwarded_msat,
                ..
            } => LightningEvent::PaymentForwarded {
                fee_earned_msat: total_fee_earned_msat,
                amount_forwarded_msat: outbound_amount_forwarded_msat,
            },
            Event::ChannelPending {
                user_channel_id,
                counterparty_node_id,
                ..
            } => LightningEvent::ChannelPending {
                channel: channel(user_channel_id, Some(counterparty_node_id)),
            },
            Event::ChannelReady {
                user_channel_id,
                counterparty_node_id,
                ..
            } => LightningEvent::ChannelReady {
                channel: channel(user_channel_id, counterparty_node_id),
            },
            Event::ChannelClosed {
                user_channel_id,
                counterparty_node_id,
                reason,
                ..
            } => LightningEvent::ChannelClosed {
                channel: channel(user_channel_id, counterparty_node_id),
                reason: reason.map_or_else(|| "unknown".to_string(), |r| r.to_string()),
            },
            // Splicing is not used by moip yet.
            _ => return None,
        })
    }
}

/// The preimage of an outbound success that ldk-node's store did not record (its payment's
/// record was never written: see [`crate::sent`]).
fn unrecorded_success(ldk: &ldk_node::Node, event: &Event) -> Option<Preimage> {
    let Event::PaymentSuccessful {
        payment_id: Some(id),
        payment_preimage: Some(preimage),
        ..
    } = event
    else {
        return None;
    };
    let recorded = ldk
        .payment(id)
        .is_some_and(|d| d.status == PaymentStatus::Succeeded);
    (!recorded).then_some(Preimage(preimage.0))
}

/// The single reader of ldk-node's event queue (see the module docs).
async fn pump(
    ldk: Arc<ldk_node::Node>,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            _ = stop.changed() => return,
            event = ldk.next_event_async() => event,
        };
        if let Some(preimage) = unrecorded_success(&ldk, &event) {
            if let Err(e) = shared.sent.record(preimage) {
                // Not marked handled: the event comes again, and so does this write.
                tracing::error!("cannot record a sent payment: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        if let Some(ours) = shared.absorb(event) {
            // No subscriber is fine: the history keeps the record.
            let _ = shared.events.send(ours);
        }
        // On a persistence failure the event stays queued and is delivered again.
        let _ = ldk.event_handled();
        shared.bump();
    }
}

impl Inner {
    fn stop(&self) -> Result<()> {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let _ = self.stop_pump.send(true);
        let runtime = lock(&self.runtime).take();
        let ldk = &self.ldk;
        // Off any caller's runtime: ldk-node blocks on its own, and a runtime may not be
        // dropped from inside another.
        let result = off_runtime(move || {
            let result = ldk.stop();
            drop(runtime);
            result
        });
        self.shared.bump();
        match result {
            Ok(()) | Err(NodeError::NotRunning) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Listening addresses are plain socket addresses in the configuration; this turns one into
/// what peers dial.
pub fn peer_address(node_id: PublicKey, address: SocketAddr) -> PeerAddress {
    PeerAddress {
        node_id,
        address: SocketAddress::from(address),
    }
}
