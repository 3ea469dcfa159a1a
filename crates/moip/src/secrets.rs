//! Keys the node keeps at rest, each sealed with a password: the services' keys with the
//! node's, a local user's key with that user's own; and the way the node's private files and
//! directories are made, readable by its owner only whatever the umask.

use std::io::Write as _;
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

/// Makes `dir` (and its missing parents) readable by the owner only (0700), whatever the
/// umask; an existing `dir` open to others is tightened to 0700 (it holds the node's money:
/// its ledger, its seeds, the operator's token).
///
/// # Errors
/// When it cannot be made, or its mode cannot be set (say, another user owns it).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "{} was open to other users (mode {:o}): tightened to 0700",
                dir.display(),
                mode & 0o777
            );
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Replaces `path` with `bytes`, atomically and readable by the owner only: the bytes go to a
/// file beside it created with mode 0600 (never written first and narrowed after, so no other
/// user can open it in between), synced, then renamed over `path`.
///
/// # Errors
/// When the file cannot be written or renamed.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    // A temporary file left by a crash may have another mode: make it anew.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_files_and_directories_are_the_owner_s_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a/b");
        private_dir(&dir).expect("made");
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        private_dir(&dir).expect("tightened");
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("api.token");
        write_private(&file, b"one").expect("written");
        write_private(&file, b"two").expect("replaced");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).expect("read"), b"two");
        assert!(!dir.join("api.token.tmp").exists());
    }
}
