//! moip's L2 transport: Lightning nodes on LDK ([`ldk_node`]), synced through moip's own
//! Electrum server by default, and the [`PaymentRail`] trait that the layers above use.
//!
//! A [`LightningNode`] is an ldk-node with moip's choices made: keys from a BIP39 mnemonic kept
//! in the wallet's encrypted seed file, SQLite storage in the node's data directory, a loopback
//! listening address unless told otherwise, gossip learnt from peers (no rapid-gossip server),
//! and one event pump that fans ldk-node's events out to any number of subscribers. Errors are
//! typed ([`LightningError`]); everything that can be checked before a payment is sent (the
//! invoice's format, network and expiry, the amount, the balance) is checked first, so such an
//! error means that nothing happened.
//!
//! ```no_run
//! use moip_lightning::{LightningConfig, LightningNode, SeedSource};
//! # fn main() -> Result<(), moip_lightning::LightningError> {
//! let seed = SeedSource::EncryptedFile { path: "ln.seed".into(), password: "…".into() };
//! let config = LightningConfig::new(
//!     moip_lightning::Network::Regtest, "ln-data", "tcp://127.0.0.1:50001", seed);
//! let node = LightningNode::start(config)?;
//! let invoice = node.create_invoice(Some(21_000), "coffee", 3600)?;
//! println!("{}", invoice.bolt11);
//! # Ok(()) }
//! ```

mod config;
mod error;
mod node;
mod rail;
mod rail_impl;
mod sent;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{ChainSourceConfig, LightningConfig, SeedSource, DEFAULT_PORT, MIN_SYNC_INTERVAL};
pub use error::{LightningError, NodeError, Result};
pub use ldk_node;
pub use ldk_node::bitcoin::secp256k1::PublicKey;
pub use ldk_node::bitcoin::Network;
pub use node::{
    parse_node_id, peer_address, read_invoice, ChannelInfo, ForwardingFee, LightningNode,
    PeerAddress,
};
pub use rail::{
    Balance, ChannelRef, Invoice, KeysendRequest, LightningEvent, NodeInfo, PayRequest,
    PaymentHash, PaymentId, PaymentOutcome, PaymentRail, PaymentRecord, PaymentState, PaymentType,
    Preimage, RouteLimits,
};

/// Creates a fresh 24-word mnemonic and seals it in a seed file under `password` (the wallet's
/// format). Refuses to overwrite an existing file.
pub fn create_seed_file(path: &std::path::Path, password: &str) -> Result<()> {
    let mnemonic = ldk_node::generate_entropy_mnemonic(None);
    moip_wallet::keystore::SeedFile::create(path, &mnemonic, password)?;
    Ok(())
}
