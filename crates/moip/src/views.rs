//! The figures a page or an API response shows, read from the running node. The API returns
//! them as JSON and the dashboard renders them as HTML: one reading, two forms.

use moip_assets::ledger::{AccountId, TokenLedger};
use moip_assets::pool::Status;
use moip_work::receipt::rank;
use moip_work::task::{State, Task};
use moip_work::trust::Signal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::hub::Hub;

pub use crate::util::now;

/// The community's figures.
#[derive(Serialize, ToSchema)]
pub struct CommunityView {
    /// The community (and token) id.
    pub id: String,
    /// The token's name.
    pub name: String,
    /// The token's symbol.
    pub symbol: String,
    /// Satoshis of collateral held.
    pub collateral_sats: u64,
    /// Tokens in existence, escrows and pending redemptions included.
    pub supply: u64,
    /// The supply tree's root hash (hex), which the guardians commit on chain each epoch.
    pub supply_root: String,
    /// Tasks in all.
    pub tasks: usize,
    /// Tasks open to claim.
    pub open_tasks: usize,
    /// The last entry of the community's log.
    pub last_seq: u64,
    /// The Work service's Nostr key (hex): it signs the receipts.
    pub service_pubkey: String,
}

/// The redemption pool's limits and queue.
#[derive(Serialize, ToSchema)]
pub struct PoolView {
    /// Fee, parts per million.
    pub fee_ppm: u32,
    /// Epoch length, seconds.
    pub epoch_secs: u64,
    /// Tokens all accounts may redeem per epoch.
    pub epoch_cap: u64,
    /// Tokens one account may redeem per epoch at full trust.
    pub account_cap: u64,
    /// Redeemed so far this epoch.
    pub epoch_out: u64,
    /// Redemptions waiting.
    pub queued: usize,
    /// Tokens they hold.
    pub queued_tokens: u64,
    /// Whether the circuit breaker holds every payout now.
    pub breaker_tripped: bool,
}

/// One identity.
#[derive(Serialize, ToSchema)]
pub struct IdentityView {
    /// The Nostr public key (hex).
    pub pubkey: String,
    /// Trust score, 0 to 1, as last published (a few seconds old at most).
    pub score: f64,
    /// The NIP-85 rank published for it (0–100).
    pub rank: u8,
    /// Spendable tokens; `null` when hidden from the viewer (see [`Viewer`]).
    pub balance: Option<u64>,
    /// A physical verifier now.
    pub verifier: bool,
}

/// One signal in a member's neighbourhood.
#[derive(Serialize, ToSchema)]
pub struct Neighbour {
    /// The other identity (hex).
    pub pubkey: String,
    /// `certification`, `attestation`, `follow`, `report` or `dispute_lost`.
    pub signal: String,
    /// True when the member gives the signal, false when it receives it.
    pub outgoing: bool,
    /// The other identity's score.
    pub score: f64,
}

/// A task as the board shows it.
#[derive(Serialize, ToSchema)]
pub struct TaskView {
    /// Its id.
    pub id: String,
    /// Who pays (hex).
    pub employer: String,
    /// What kind of work.
    pub category: String,
    /// Where (geohash).
    pub geohash: String,
    /// The evidence the proof needs.
    pub evidence_required: Vec<String>,
    /// Tokens paid.
    pub reward: u64,
    /// Unix seconds.
    pub deadline: u64,
    /// `open`, `claimed`, `submitted`, `attested`, `paid`, `disputed`, `resolved`, `withdrawn`.
    pub state: String,
    /// The worker, once there is one (hex).
    pub worker: Option<String>,
    /// Attestations so far (or the quorum's attesters).
    pub attesters: Vec<String>,
    /// End of the challenge window, when attested.
    pub challenge_until: Option<u64>,
}

/// A Lightning channel.
#[derive(Serialize, ToSchema)]
pub struct ChannelView {
    /// The peer's node id.
    pub peer: String,
    /// Capacity, sats.
    pub capacity_sats: u64,
    /// What the node can send, sats.
    pub outbound_sats: u64,
    /// What it can receive, sats.
    pub inbound_sats: u64,
    /// Payments can flow.
    pub usable: bool,
}

/// The node's status.
#[derive(Serialize, ToSchema)]
pub struct NodeView {
    /// The chain's height.
    pub height: u32,
    /// The Electrum server's address.
    pub electrum_url: String,
    /// Electrum sessions open.
    pub electrum_clients: u64,
    /// Scripthash subscriptions held.
    pub electrum_subscriptions: u64,
    /// Whether its index has reached the tip.
    pub electrum_synced: bool,
    /// The Lightning node's id.
    pub lightning_node_id: String,
    /// Where it listens.
    pub lightning_addresses: Vec<String>,
    /// Its channels.
    pub channels: Vec<ChannelView>,
    /// Its side of the channels, sats.
    pub lightning_sats: u64,
    /// Its on-chain wallet, sats.
    pub onchain_sats: u64,
    /// The Moneysocket relay's URL.
    pub moneysocket_url: String,
    /// Pairs forwarding now.
    pub moneysocket_pairs: u64,
    /// Connections open.
    pub moneysocket_connections: u64,
    /// The Nostr relays.
    pub nostr_relays: Vec<String>,
    /// Apps connected over NWC (not revoked).
    pub nwc_connections: usize,
}

/// A redemption as the pool answers it.
#[derive(Serialize, ToSchema)]
pub struct RedemptionView {
    /// Its number.
    pub id: u64,
    /// `paid`, `queued`, `in_flight` or `cancelled`.
    pub status: String,
    /// Place in the queue, when queued.
    pub position: Option<usize>,
    /// Why it was cancelled, or what holds it.
    pub reason: Option<String>,
    /// Sats it pays (when known).
    pub sats_out: Option<u64>,
    /// The pool's fee in tokens (when known).
    pub fee: Option<u64>,
}

impl RedemptionView {
    /// `status` of redemption `id`.
    pub fn of(id: u64, status: &Status, sats_out: Option<u64>, fee: Option<u64>) -> Self {
        let (name, position, reason) = match status {
            Status::Paid => ("paid", None, None),
            Status::Queued { position, hold } => {
                ("queued", Some(*position), hold.map(|h| format!("{h:?}")))
            }
            Status::InFlight => ("in_flight", None, None),
            Status::Cancelled { reason } => ("cancelled", None, Some(reason.clone())),
        };
        RedemptionView {
            id,
            status: name.into(),
            position,
            reason,
            sats_out,
            fee,
        }
    }
}

fn hex_of(account: &AccountId) -> String {
    account.to_string()
}

/// The community's figures.
pub fn community(hub: &Hub) -> CommunityView {
    let last_seq = hub.work.last_seq();
    let token = hub.ledger.token();
    hub.work.with_community(|c| {
        let root = c.ledger().supply_root();
        CommunityView {
            id: c.id().to_owned(),
            name: token.as_ref().map_or_else(String::new, |t| t.name.clone()),
            symbol: token
                .as_ref()
                .map_or_else(String::new, |t| t.symbol.clone()),
            collateral_sats: c.ledger().collateral(),
            supply: c.ledger().supply(),
            supply_root: root.hash.to_string(),
            tasks: c.tasks().len(),
            open_tasks: c
                .tasks()
                .values()
                .filter(|t| matches!(t.state, State::Open))
                .count(),
            last_seq,
            service_pubkey: hub.work.public_key().to_hex(),
        }
    })
}

/// The pool's limits and queue.
pub fn pool(hub: &Hub) -> PoolView {
    let config = hub.pool.config();
    let (queued_tokens, queued) = hub.pool.queue();
    PoolView {
        fee_ppm: config.fee_ppm,
        epoch_secs: config.epoch_secs,
        epoch_cap: config.epoch_cap,
        account_cap: config.account_cap,
        epoch_out: hub.pool.epoch_out(),
        queued,
        queued_tokens,
        breaker_tripped: hub.pool.breaker_tripped(),
    }
}

/// Who is looking at balances. A balance says what a member holds — what they could be robbed
/// of, or pressed for — so it is theirs to see: a member sees their own, the operator (who
/// keeps the ledger anyway) sees all, anyone else sees none, unless the community chooses to
/// publish them (`publish_balances` in `[community]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// Nobody logged in (or a key nobody proved).
    Anyone,
    /// A logged-in member.
    Member(AccountId),
    /// The operator (the token, or the operator's session).
    Operator,
}

impl Viewer {
    /// Whether this viewer sees `account`'s balance on `hub`.
    pub fn sees_balance_of(self, hub: &Hub, account: &AccountId) -> bool {
        hub.publish_balances
            || match self {
                Viewer::Operator => true,
                Viewer::Member(me) => me == *account,
                Viewer::Anyone => false,
            }
    }
}

/// One identity, its balance shown to `viewer` if theirs to see.
pub fn identity(hub: &Hub, account: &AccountId, viewer: Viewer) -> IdentityView {
    let at = now();
    let score = hub.work.scores().get(account);
    let shown = viewer.sees_balance_of(hub, account);
    hub.work.with_community(|c| IdentityView {
        pubkey: hex_of(account),
        score,
        rank: rank(score),
        balance: shown.then(|| c.ledger().balance(account)),
        verifier: c.registry().verifiers(at).contains(account),
    })
}

/// Everyone with a score, and those with a balance `viewer` may see, best score first (at most
/// `max`); the balances `viewer` may not see are hidden, and play no part in the order.
pub fn identities(hub: &Hub, max: usize, viewer: Viewer) -> Vec<IdentityView> {
    let at = now();
    let scores = hub.work.scores();
    let mut all: Vec<IdentityView> = hub.work.with_community(|c| {
        let verifiers = c.registry().verifiers(at);
        let mut accounts: std::collections::BTreeSet<AccountId> =
            scores.iter().map(|(a, _)| *a).collect();
        accounts.extend(verifiers.iter().copied());
        let ledger = c.ledger();
        accounts.extend(
            hub.ledger_state_accounts()
                .into_iter()
                .filter(|a| ledger.balance(a) > 0 && viewer.sees_balance_of(hub, a)),
        );
        accounts
            .into_iter()
            .map(|a| {
                let score = scores.get(&a);
                IdentityView {
                    pubkey: hex_of(&a),
                    score,
                    rank: rank(score),
                    balance: viewer.sees_balance_of(hub, &a).then(|| ledger.balance(&a)),
                    verifier: verifiers.contains(&a),
                }
            })
            .collect()
    });
    all.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.balance.cmp(&a.balance))
            .then(a.pubkey.cmp(&b.pubkey))
    });
    all.truncate(max);
    all
}

impl Hub {
    /// Accounts the ledger knows.
    fn ledger_state_accounts(&self) -> Vec<AccountId> {
        let ledger = crate::util::lock(&self.ledger);
        ledger.state().balances().keys().copied().collect()
    }
}

fn signal_name(signal: Signal) -> &'static str {
    match signal {
        Signal::DisputeLost => "dispute_lost",
        Signal::Report => "report",
        Signal::Certification => "certification",
        Signal::Attestation => "attestation",
        Signal::Follow => "follow",
    }
}

/// The signals around `account` (at most `max` each way).
pub fn neighbours(hub: &Hub, account: &AccountId, max: usize) -> Vec<Neighbour> {
    let scores = hub.work.scores();
    hub.work.with_community(|c| {
        let (gives, receives) = c.graph().around(account, max);
        gives
            .into_iter()
            .map(|x| (x, true))
            .chain(receives.into_iter().map(|x| (x, false)))
            .map(|((other, signal), outgoing)| Neighbour {
                pubkey: hex_of(&other),
                signal: signal_name(signal).into(),
                outgoing,
                score: scores.get(&other),
            })
            .collect()
    })
}

/// A task for the board.
pub fn task_view(task: &Task) -> TaskView {
    let (state, worker, attesters, until): (&str, Option<&AccountId>, Vec<&AccountId>, _) =
        match &task.state {
            State::Open => ("open", None, vec![], None),
            State::Claimed { worker, .. } => ("claimed", Some(worker), vec![], None),
            State::Submitted {
                worker,
                attestations,
                ..
            } => (
                "submitted",
                Some(worker),
                attestations.iter().map(|a| &a.attester).collect(),
                None,
            ),
            State::Attested {
                worker,
                attesters,
                until,
            } => (
                "attested",
                Some(worker),
                attesters.iter().collect(),
                Some(*until),
            ),
            State::Paid { worker } => ("paid", Some(worker), vec![], None),
            State::Disputed {
                worker, attesters, ..
            } => ("disputed", Some(worker), attesters.iter().collect(), None),
            State::Resolved { worker, .. } => ("resolved", Some(worker), vec![], None),
            State::Withdrawn => ("withdrawn", None, vec![], None),
        };
    TaskView {
        id: task.spec.id.clone(),
        employer: hex_of(&task.spec.employer),
        category: task.spec.category.clone(),
        geohash: task.spec.geohash.clone(),
        evidence_required: task.spec.evidence_required.clone(),
        reward: task.spec.reward,
        deadline: task.spec.deadline,
        state: state.into(),
        worker: worker.map(hex_of),
        attesters: attesters.into_iter().map(hex_of).collect(),
        challenge_until: until,
    }
}

/// Every task, newest deadline first (at most `max`).
pub fn tasks(hub: &Hub, max: usize) -> Vec<TaskView> {
    let mut all: Vec<TaskView> = hub
        .work
        .with_community(|c| c.tasks().values().map(task_view).collect());
    all.sort_by(|a, b| b.deadline.cmp(&a.deadline).then(a.id.cmp(&b.id)));
    all.truncate(max);
    all
}

/// One task.
pub fn task(hub: &Hub, id: &str) -> Option<TaskView> {
    hub.work.with_community(|c| c.task(id).map(task_view))
}

/// The node's status.
pub fn node(hub: &Hub) -> NodeView {
    let probe = &hub.node;
    let ms = probe.moneysocket.metrics();
    let balance = probe.lightning.balance();
    NodeView {
        height: probe.chain.tip().map_or(0, |t| t.height),
        electrum_url: probe.electrum_url.clone(),
        electrum_clients: probe.electrum.sessions(),
        electrum_subscriptions: probe.electrum.subscriptions(),
        electrum_synced: probe.electrum.is_synced(),
        lightning_node_id: probe.lightning.node_id().to_string(),
        lightning_addresses: probe
            .lightning
            .peer_addresses()
            .iter()
            .map(ToString::to_string)
            .collect(),
        channels: probe
            .lightning
            .channels()
            .into_iter()
            .map(|c| ChannelView {
                peer: c.counterparty.to_string(),
                capacity_sats: c.capacity_sats,
                outbound_sats: c.outbound_msat / 1_000,
                inbound_sats: c.inbound_msat / 1_000,
                usable: c.is_usable,
            })
            .collect(),
        lightning_sats: balance.lightning_sats,
        onchain_sats: balance.onchain_sats,
        moneysocket_url: probe.moneysocket_url.clone(),
        moneysocket_pairs: ms.pairs_active,
        moneysocket_connections: ms.connections_open,
        nostr_relays: probe.nostr_relays.clone(),
        nwc_connections: hub.nwc.connections().iter().filter(|c| !c.revoked).count(),
    }
}

/// The supply now and its commitments.
pub fn supply(hub: &Hub) -> crate::api::SupplyView {
    let root = hub.ledger.supply_root();
    let records = hub.commitments.records();
    let collateral = hub.commitments.collateral().map(str::to_owned);
    let verify_with = match (records.last(), &collateral) {
        (Some(last), Some(descriptor)) => Some(format!(
            "moip verify-supply --network {} --server {}{} --commitment {} --collateral '{}'",
            hub.node.chain.network(),
            hub.node.electrum_url,
            // The node's certificate may be self-signed; the proofs are checked against the
            // chain's headers whatever the certificate says.
            if hub.node.electrum_url.starts_with("ssl://") {
                " --accept-invalid-certs"
            } else {
                ""
            },
            last.txid,
            descriptor
        )),
        _ => None,
    };
    crate::api::SupplyView {
        root: root.hash.to_string(),
        sum: root.sum,
        commitments: records.iter().rev().take(20).rev().cloned().collect(),
        collateral,
        verify_with,
    }
}

/// `account`'s balance proven against the supply root.
pub fn balance_proof(hub: &Hub, account: &AccountId) -> crate::api::BalanceProof {
    let ledger = crate::util::lock(&hub.ledger);
    let root = ledger.supply_root();
    let (leaf, proof) = ledger.state().proof(account);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    crate::api::BalanceProof {
        pubkey: account.to_string(),
        root: root.hash.to_string(),
        supply: root.sum,
        leaf_value: hex(&leaf.value),
        leaf_sum: leaf.sum,
        proof: hex(&proof.compress().encode()),
    }
}
