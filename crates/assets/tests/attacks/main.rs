//! Attacks on the redemption pool, each run against real ldk-nodes on the embedded regtest
//! chain by a member with bad intent. One module per attack; each test was seen to fail with
//! its defence taken out. The table in `docs/reliability.md` lists them.

mod books;
mod fee_drain;
mod frozen_queue;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moip_assets::ledger::{
    AccountId, CollateralSource, Ledger, MemoryJournal, TokenInfo, TokenLedger,
};
use moip_lightning::{LightningNode, PaymentRail, PaymentState, PaymentType};

/// Generous bound for anything that waits on the chain or a peer.
pub const WAIT: Duration = Duration::from_secs(120);

pub type SharedLedger = Arc<Mutex<Ledger<MemoryJournal>>>;

pub fn account(byte: u8) -> AccountId {
    AccountId::from_bytes([byte; 32])
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A community ledger holding `collateral` sats (as settled over Lightning to the community's
/// node) and `tokens` minted to each of `members`.
pub fn ledger(collateral: u64, members: &[(AccountId, u64)]) -> SharedLedger {
    let mut ledger = Ledger::create(
        MemoryJournal::default(),
        TokenInfo {
            id: "bakery".into(),
            name: "Bakery hours".into(),
            symbol: "BKH".into(),
        },
    )
    .expect("ledger");
    ledger
        .deposit(
            collateral,
            CollateralSource::Lightning {
                payment_hash: "00".repeat(32),
            },
        )
        .expect("deposit");
    for (member, tokens) in members {
        ledger.mint(member, *tokens).expect("mint");
    }
    Arc::new(Mutex::new(ledger))
}

/// What really left `node` over Lightning for its succeeded outgoing payments, routing fees
/// included, in msat.
pub fn really_sent_msat(rt: &tokio::runtime::Runtime, node: &LightningNode) -> u64 {
    rt.block_on((node as &dyn PaymentRail).payments())
        .expect("payments")
        .into_iter()
        .filter(|p| !p.inbound && p.kind != PaymentType::Onchain)
        .filter(|p| p.state == PaymentState::Succeeded)
        .map(|p| p.amount_msat.unwrap_or(0) + p.fee_paid_msat.unwrap_or(0))
        .sum()
}
