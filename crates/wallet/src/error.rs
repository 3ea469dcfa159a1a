//! The wallet's errors: each one says what went wrong in words a user can act on.

use bitcoin::{Amount, Network, Txid};

use crate::keystore::KeystoreError;
use crate::verify::ServerLie;

/// Everything a wallet operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("not a valid BIP39 mnemonic: {0}")]
    BadMnemonic(String),
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error("{address} is not a valid address for {expected}")]
    WrongNetwork { address: String, expected: Network },
    #[error("not a Bitcoin address: {0}")]
    BadAddress(String),
    #[error("insufficient funds: {needed} needed, {available} available")]
    InsufficientFunds { needed: Amount, available: Amount },
    #[error("{amount} is below the dust limit of {limit} for that address; nobody could spend it")]
    Dust { amount: Amount, limit: Amount },
    #[error("cannot reach the Electrum server {url}: {reason}")]
    ServerUnreachable { url: String, reason: String },
    #[error("the Electrum server {url} lied: {lie}; nothing from it was applied")]
    ServerLied { url: String, lie: ServerLie },
    #[error("the Electrum server failed: {0}")]
    Server(String),
    #[error("the server refused the transaction: {0}")]
    Broadcast(String),
    #[error("this wallet is watch-only: it holds no key to sign with")]
    WatchOnly,
    #[error("the transaction is not fully signed yet ({0})")]
    NotFinal(String),
    #[error("no transaction {0} in this wallet")]
    UnknownTx(Txid),
    #[error("{0} is already confirmed; only unconfirmed transactions can be bumped")]
    AlreadyConfirmed(Txid),
    #[error("the recovery path opens at height {opens_at} (the chain is at {tip}); until then only the guardians can spend")]
    RecoveryLocked { opens_at: u32, tip: u32 },
    #[error("the wallet has no coins the recovery key can spend")]
    NothingToRecover,
    #[error("a wallet already exists in {0}")]
    Exists(String),
    #[error("no wallet in {0}")]
    NotFound(String),
    #[error("bad descriptor: {0}")]
    Descriptor(String),
    #[error("bad PSBT: {0}")]
    Psbt(String),
    #[error("cannot build the transaction: {0}")]
    Build(String),
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("wallet storage: {0}")]
    Storage(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<std::io::Error> for WalletError {
    fn from(e: std::io::Error) -> WalletError {
        WalletError::Storage(e.to_string())
    }
}

impl From<bdk_wallet::rusqlite::Error> for WalletError {
    fn from(e: bdk_wallet::rusqlite::Error) -> WalletError {
        WalletError::Storage(e.to_string())
    }
}
