//! Regtest helpers for the tests and benchmarks of the layers above (feature `testing`): real
//! nodes on the embedded chain, synced through moip's Electrum server, and waits that end on
//! the nodes' state with a timeout. Not for production use — seeds are kept in memory.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use moip_testenv::Regtest;

use crate::{LightningConfig, LightningNode, Network, PeerAddress, SeedSource};

/// Generous bound for anything that waits on the chain or a peer.
pub const WAIT: Duration = Duration::from_secs(120);

/// A free loopback port, outside the kernel's ephemeral range (see [`moip_testkit::ports`]).
pub use moip_testkit::free_port;

/// A node named `name` in `root/name`: a fresh in-memory mnemonic, a loopback port, an alias
/// (so its channels are announced) and the shortest background sync.
///
/// A port freed by [`free_port`] can be taken by another test before the node binds it; the
/// node then starts again on another port, a few times.
pub fn start_node(env: &Regtest, root: &Path, name: &str) -> LightningNode {
    let mnemonic = ldk_node::generate_entropy_mnemonic(None);
    let mut attempts = 0;
    loop {
        let mut config = LightningConfig::new(
            Network::Regtest,
            root.join(name),
            env.electrum_url(),
            SeedSource::Mnemonic(mnemonic.clone()),
        );
        config.listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))];
        config.alias = Some(name.into());
        config.sync_interval = Some(crate::MIN_SYNC_INTERVAL);
        match LightningNode::start(config) {
            Err(crate::LightningError::Node(crate::NodeError::InvalidSocketAddress))
                if attempts < 5 =>
            {
                attempts += 1;
            }
            started => return started.expect("start the node"),
        }
    }
}

/// Where `node` listens.
pub fn peer(node: &LightningNode) -> PeerAddress {
    node.peer_addresses()
        .into_iter()
        .next()
        .expect("the node listens")
}

/// Waits until every node has synced to the chain's tip.
pub fn sync(env: &Regtest, nodes: &[&LightningNode]) {
    let tip = env.height();
    for node in nodes {
        node.wait_for(WAIT, "the node to reach the tip", |n| {
            n.sync().ok()?;
            (n.best_block_height() >= tip).then_some(())
        })
        .expect("synced");
    }
}

/// Mines `n` blocks to a burn address and syncs the nodes.
pub fn mine(env: &Regtest, n: u32, nodes: &[&LightningNode]) {
    env.mine_burn(n);
    sync(env, nodes);
}

/// Gives `node` one matured coinbase; `others` are synced along.
pub fn fund(env: &Regtest, node: &LightningNode, others: &[&LightningNode]) {
    let address = node.new_address().expect("address");
    env.mine_to(1, &address.script_pubkey());
    let mut all = vec![node];
    all.extend_from_slice(others);
    mine(env, 100, &all);
    node.wait_for(WAIT, "the coinbase in the wallet", |n| {
        n.sync().ok()?;
        (n.balance().onchain_spendable_sats > 0).then_some(())
    })
    .expect("funded");
}

/// Opens an announced channel `from` → `to` (pushing `push_msat`), confirms it and waits until
/// both sides can use it.
pub fn open_usable(
    env: &Regtest,
    from: &LightningNode,
    to: &LightningNode,
    sats: u64,
    push_msat: Option<u64>,
) -> u128 {
    open_and_wait(env, from, to, || {
        from.open_channel(&peer(to), sats, push_msat, true)
    })
}

/// Opens an announced channel `from` → `to` over which `from` charges `fee` to forward,
/// confirms it, and waits until both sides can use it and every node of `seen_by` has the
/// fee in its network graph (so it routes through the channel at that fee).
///
/// Announced, because LDK refuses to forward over a private channel by its real short
/// channel id, which is what an LDK invoice's route hints name.
pub fn open_usable_charging(
    env: &Regtest,
    from: &LightningNode,
    to: &LightningNode,
    sats: u64,
    fee: crate::ForwardingFee,
    seen_by: &[&LightningNode],
) -> u128 {
    let id = open_and_wait(env, from, to, || {
        from.open_channel_charging(&peer(to), sats, true, fee)
    });
    let scid = from
        .ldk()
        .list_channels()
        .into_iter()
        .find(|c| c.user_channel_id.0 == id)
        .and_then(|c| c.short_channel_id)
        .expect("the new channel's short id");
    let from_id = ldk_node::lightning::routing::gossip::NodeId::from_pubkey(&from.node_id());
    for node in seen_by {
        node.wait_for(WAIT, "the channel's fee in the network graph", |n| {
            let channel = n.ldk().network_graph().channel(scid)?;
            let update = if channel.node_one == from_id {
                channel.one_to_two
            } else {
                channel.two_to_one
            }?;
            (update.fees.base_msat == fee.base_msat
                && update.fees.proportional_millionths == fee.proportional_millionths)
                .then_some(())
        })
        .expect("the fee gossiped");
    }
    id
}

fn open_and_wait(
    env: &Regtest,
    from: &LightningNode,
    to: &LightningNode,
    open: impl FnOnce() -> crate::Result<u128>,
) -> u128 {
    let before = [from, to].map(|n| n.channels().iter().filter(|c| c.is_usable).count());
    let id = open().expect("open the channel");
    mine(env, 6, &[from, to]);
    for (node, usable) in [from, to].into_iter().zip(before) {
        node.wait_for(WAIT, "the new channel to be usable", |n| {
            (n.channels().iter().filter(|c| c.is_usable).count() > usable).then_some(())
        })
        .expect("usable");
    }
    id
}

/// A node on paper, for unit tests of the layers above that need only part of a
/// [`crate::PaymentRail`]: it makes and reads test invoices (`lnbcrt` and the payment hash in
/// hex, no real BOLT11), answers with the payment records a test gives it, and sends the
/// events a test sends. It pays, holds and reports balances never: a test that reaches one of
/// those asked more of it than it is for, and panics saying so.
#[derive(Debug)]
pub struct PaperRail {
    records: std::sync::Mutex<Vec<crate::PaymentRecord>>,
    events: tokio::sync::broadcast::Sender<crate::LightningEvent>,
}

impl Default for PaperRail {
    fn default() -> PaperRail {
        PaperRail {
            records: std::sync::Mutex::default(),
            events: tokio::sync::broadcast::channel(64).0,
        }
    }
}

impl PaperRail {
    /// Adds `record`, or replaces the record of the same payment hash.
    pub fn set_record(&self, record: crate::PaymentRecord) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.retain(|r| r.payment_hash != record.payment_hash);
        records.push(record);
    }

    /// Sends `event` to every subscriber of [`crate::PaymentRail::events`].
    pub fn send_event(&self, event: crate::LightningEvent) {
        let _ = self.events.send(event);
    }

    /// A test invoice for `payment_hash`, as [`crate::PaymentRail::decode_invoice`] reads it.
    pub fn invoice_for(payment_hash: crate::PaymentHash) -> String {
        format!("lnbcrt{payment_hash}")
    }

    fn on_paper(what: &str) -> ! {
        panic!("a PaperRail does not {what}: this test needs a real node")
    }
}

#[async_trait::async_trait]
impl crate::PaymentRail for PaperRail {
    async fn create_invoice(
        &self,
        amount_msat: Option<u64>,
        _description: &str,
        expiry_secs: u32,
    ) -> crate::Result<crate::Invoice> {
        let payment_hash = crate::Preimage::random().payment_hash();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(crate::Invoice {
            bolt11: PaperRail::invoice_for(payment_hash),
            payment_hash,
            amount_msat,
            expires_at: now + u64::from(expiry_secs),
            min_final_cltv_expiry_delta: 18,
        })
    }

    async fn pay(&self, _request: crate::PayRequest) -> crate::Result<crate::PaymentOutcome> {
        PaperRail::on_paper("pay")
    }

    async fn create_hold_invoice(
        &self,
        _payment_hash: crate::PaymentHash,
        _amount_msat: u64,
        _description: &str,
        _expiry_secs: u32,
    ) -> crate::Result<crate::Invoice> {
        PaperRail::on_paper("make hold invoices")
    }

    async fn settle_hold_invoice(&self, _preimage: crate::Preimage) -> crate::Result<()> {
        PaperRail::on_paper("settle hold invoices")
    }

    async fn cancel_hold_invoice(&self, _payment_hash: crate::PaymentHash) -> crate::Result<()> {
        PaperRail::on_paper("cancel hold invoices")
    }

    async fn balance(&self) -> crate::Result<crate::Balance> {
        PaperRail::on_paper("hold a balance")
    }

    fn decode_invoice(&self, invoice: &str) -> crate::Result<crate::Invoice> {
        let payment_hash = invoice
            .strip_prefix("lnbcrt")
            .and_then(|hash| hash.parse::<crate::PaymentHash>().ok())
            .ok_or_else(|| crate::LightningError::Malformed {
                what: "invoice",
                reason: "not a PaperRail test invoice".into(),
            })?;
        Ok(crate::Invoice {
            bolt11: invoice.to_owned(),
            payment_hash,
            amount_msat: None,
            expires_at: u64::MAX,
            min_final_cltv_expiry_delta: 18,
        })
    }

    async fn payments(&self) -> crate::Result<Vec<crate::PaymentRecord>> {
        Ok(self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
    }

    async fn payment_by_hash(
        &self,
        payment_hash: crate::PaymentHash,
    ) -> crate::Result<Option<crate::PaymentRecord>> {
        Ok(self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|r| r.payment_hash == Some(payment_hash))
            .cloned())
    }

    fn node_info(&self) -> crate::NodeInfo {
        PaperRail::on_paper("have a node id")
    }

    fn events(&self) -> tokio::sync::broadcast::Receiver<crate::LightningEvent> {
        self.events.subscribe()
    }
}
