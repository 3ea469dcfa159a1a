//! moip-wallet: the L1 client SDK.
//!
//! A consuming application talks to a Bitcoin Server (any Electrum server) through this crate:
//! keys from a BIP39 mnemonic sealed at rest ([`keystore`]), wallets on BDK with SQLite
//! persistence, every server answer verified against a header chain ([`verify`]), the
//! server's trust level shown to the user ([`trust`]), PSBTs for multi-party signing, and the
//! community collateral: a k-of-n taproot multisig of guardians with a timelocked recovery key
//! ([`collateral`]).

pub mod error;
pub mod keystore;
pub mod trust;
pub mod verify;

pub use error::WalletError;
pub use trust::{Server, Trust};
pub mod bip21;
pub mod collateral;
pub mod wallet;

pub use collateral::CollateralPolicy;
pub use keystore::{generate_mnemonic, KdfParams, SeedFile};
pub use wallet::{
    combine_psbts, connect, parse_address, psbt_from_base64, verifying_client, Fee, FeeSource,
    HistoryEntry, Keys, MoipWallet, Prepared, SendRequest, SyncReport, Unlock, WalletKind,
};
