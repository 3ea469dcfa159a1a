//! Keys the node keeps at rest, each sealed with a password: the services' keys with the
//! node's, a local user's key with that user's own.

use std::path::Path;

use bitcoin::hashes::Hash as _;
use moip_nwc::Keys;
use moip_wallet::keystore::{KeystoreError, SeedFile};

/// Why a sealed key could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The file could not be read or written, or the password does not open it.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The sealed seed does not make a key (cannot happen for a seed this module wrote).
    #[error("the sealed seed makes no Nostr key: {0}")]
    Key(String),
}

/// A Nostr key of its own, kept as a mnemonic sealed in `path` (created on first use). Each
/// service (NWC, Work) has its own file, so rotating one key touches nothing else.
///
/// # Errors
/// When the file cannot be read, written or opened with `password`.
pub fn sealed_nostr_keys(path: &Path, password: &str) -> Result<Keys, SecretError> {
    let mnemonic = if path.exists() {
        SeedFile::open(path, password)?
    } else {
        let mnemonic = moip_lightning::ldk_node::generate_entropy_mnemonic(None);
        SeedFile::create(path, &mnemonic, password)?;
        mnemonic
    };
    let digest = bitcoin::hashes::sha256::Hash::hash(&mnemonic.to_entropy());
    Keys::parse(&digest.to_string()).map_err(|e| SecretError::Key(e.to_string()))
}
