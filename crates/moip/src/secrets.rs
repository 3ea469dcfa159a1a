//! Keys the node keeps at rest, each sealed with the node's password.

use std::path::Path;

use bitcoin::hashes::Hash as _;
use moip_nwc::Keys;
use moip_wallet::keystore::SeedFile;

/// A Nostr key of its own, kept as a mnemonic sealed in `path` (created on first use). Each
/// service (NWC, Work) has its own file, so rotating one key touches nothing else.
///
/// # Errors
/// When the file cannot be read, written or opened with `password`.
pub(crate) fn sealed_nostr_keys(path: &Path, password: &str) -> anyhow::Result<Keys> {
    let mnemonic = if path.exists() {
        SeedFile::open(path, password)?
    } else {
        let mnemonic = moip_lightning::ldk_node::generate_entropy_mnemonic(None);
        SeedFile::create(path, &mnemonic, password)?;
        mnemonic
    };
    let digest = bitcoin::hashes::sha256::Hash::hash(&mnemonic.to_entropy());
    Ok(Keys::parse(&digest.to_string())?)
}
