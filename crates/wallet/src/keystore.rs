//! The seed file: a BIP39 mnemonic encrypted at rest.
//!
//! A wallet's only secret is its mnemonic (and the optional BIP39 passphrase, which is never
//! stored). On disk it is sealed with ChaCha20-Poly1305 under a key stretched from the user's
//! password by Argon2id, so a stolen file costs an attacker a memory-hard guess per password.
//! The file is small and self-describing:
//!
//! ```text
//! magic "MOIPSEED" | version u8 = 1 | m_cost u32 LE (KiB) | t_cost u32 LE | p_cost u32 LE
//! | salt [16] | nonce [12] | ciphertext (entropy, 16..=32 bytes) | tag [16]
//! ```
//!
//! The header is the AEAD's associated data: changing the KDF parameters in the file breaks
//! the tag instead of silently weakening the key. Secrets are zeroized when dropped.

use std::fs;
use std::io::Write;
use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use bip39::Mnemonic;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::{Zeroize, Zeroizing};

const MAGIC: &[u8; 8] = b"MOIPSEED";
const VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = MAGIC.len() + 1 + 12 + SALT_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Refuse KDF parameters above these when reading, so a crafted file cannot make `open`
/// allocate gigabytes or spin for hours.
const MAX_M_COST_KIB: u32 = 1 << 20;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 8;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Passes over the memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// The defaults: 64 MiB, 3 passes, 1 lane (OWASP's second Argon2id recommendation);
    /// about a third of a second on the project's machines.
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    /// Cheap parameters for tests, where the KDF's cost is not what is tested.
    pub const INSECURE_FAST: KdfParams = KdfParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };
}

/// Why a seed file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("the seed file {0} already exists; refusing to overwrite a seed")]
    Exists(String),
    #[error("cannot access the seed file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a moip seed file (bad magic or truncated)")]
    NotASeedFile,
    #[error("seed file version {0} is not supported")]
    UnsupportedVersion(u8),
    #[error("the seed file's key-derivation parameters are out of bounds")]
    BadParams,
    #[error("wrong password, or the seed file was modified")]
    WrongPassword,
    #[error("the decrypted seed is not a valid BIP39 entropy")]
    BadEntropy,
}

/// A mnemonic sealed under a password, on disk.
pub struct SeedFile;

impl SeedFile {
    /// Writes `mnemonic` to `path`, encrypted under `password` with the default KDF cost.
    /// Never overwrites an existing file.
    pub fn create(path: &Path, mnemonic: &Mnemonic, password: &str) -> Result<(), KeystoreError> {
        SeedFile::create_with(path, mnemonic, password, KdfParams::DEFAULT)
    }

    /// [`SeedFile::create`] with explicit KDF parameters.
    pub fn create_with(
        path: &Path,
        mnemonic: &Mnemonic,
        password: &str,
        params: KdfParams,
    ) -> Result<(), KeystoreError> {
        let sealed = seal(mnemonic, password, params)?;
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeystoreError::Exists(path.display().to_string()),
            _ => KeystoreError::Io(e),
        })?;
        file.write_all(&sealed)?;
        file.sync_all()?;
        Ok(())
    }

    /// Reads and decrypts the mnemonic at `path`.
    pub fn open(path: &Path, password: &str) -> Result<Mnemonic, KeystoreError> {
        let bytes = Zeroizing::new(fs::read(path)?);
        unseal(&bytes, password)
    }
}

/// Encrypts a mnemonic's entropy into the file format above.
pub fn seal(
    mnemonic: &Mnemonic,
    password: &str,
    params: KdfParams,
) -> Result<Vec<u8>, KeystoreError> {
    let salt: [u8; SALT_LEN] = rand::random();
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut out = Vec::with_capacity(HEADER_LEN + 32 + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&params.m_cost.to_le_bytes());
    out.extend_from_slice(&params.t_cost.to_le_bytes());
    out.extend_from_slice(&params.p_cost.to_le_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    let key = derive_key(password, &salt, params)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key[..]));
    let entropy = Zeroizing::new(mnemonic.to_entropy());
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &entropy,
                aad: &out,
            },
        )
        .map_err(|_| KeystoreError::BadParams)?;
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Decrypts bytes in the file format above. Every malformed input is a typed error.
pub fn unseal(bytes: &[u8], password: &str) -> Result<Mnemonic, KeystoreError> {
    if bytes.len() < HEADER_LEN + 16 + TAG_LEN || bytes.len() > HEADER_LEN + 32 + TAG_LEN {
        return Err(KeystoreError::NotASeedFile);
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(KeystoreError::NotASeedFile);
    }
    let version = bytes[MAGIC.len()];
    if version != VERSION {
        return Err(KeystoreError::UnsupportedVersion(version));
    }
    let word = |i: usize| {
        let at = MAGIC.len() + 1 + 4 * i;
        u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    };
    let params = KdfParams {
        m_cost: word(0),
        t_cost: word(1),
        p_cost: word(2),
    };
    if params.m_cost > MAX_M_COST_KIB || params.t_cost > MAX_T_COST || params.p_cost > MAX_P_COST {
        return Err(KeystoreError::BadParams);
    }
    let salt_at = MAGIC.len() + 1 + 12;
    let salt = &bytes[salt_at..salt_at + SALT_LEN];
    let nonce = &bytes[salt_at + SALT_LEN..HEADER_LEN];
    let key = derive_key(password, salt, params)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key[..]));
    let mut entropy = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: &bytes[HEADER_LEN..],
                aad: &bytes[..HEADER_LEN],
            },
        )
        .map_err(|_| KeystoreError::WrongPassword)?;
    let mnemonic = Mnemonic::from_entropy(&entropy).map_err(|_| KeystoreError::BadEntropy);
    entropy.zeroize();
    mnemonic
}

fn derive_key(
    password: &str,
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let params = Params::new(params.m_cost, params.t_cost, params.p_cost, Some(32))
        .map_err(|_| KeystoreError::BadParams)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(password.as_bytes(), salt, &mut key[..])
        .map_err(|_| KeystoreError::BadParams)?;
    Ok(key)
}

/// A fresh mnemonic of `words` words (12, 15, 18, 21 or 24) from the OS's randomness.
pub fn generate_mnemonic(words: usize) -> Result<Mnemonic, bip39::Error> {
    let len = match words {
        12 => 16,
        15 => 20,
        18 => 24,
        21 => 28,
        24 => 32,
        _ => return Err(bip39::Error::BadWordCount(words)),
    };
    let mut entropy = Zeroizing::new([0u8; 32]);
    rand::fill(&mut entropy[..len]);
    Mnemonic::from_entropy(&entropy[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mnemonic() -> Mnemonic {
        generate_mnemonic(12).expect("12 words")
    }

    #[test]
    fn seals_and_opens() {
        let m = mnemonic();
        let sealed = seal(&m, "pw", KdfParams::INSECURE_FAST).expect("seal");
        assert_eq!(unseal(&sealed, "pw").expect("open"), m);
        assert!(matches!(
            unseal(&sealed, "other"),
            Err(KeystoreError::WrongPassword)
        ));
    }

    #[test]
    fn every_flipped_byte_is_rejected_without_panic() {
        let m = generate_mnemonic(24).expect("24 words");
        let sealed = seal(&m, "pw", KdfParams::INSECURE_FAST).expect("seal");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(unseal(&bad, "pw").is_err(), "byte {i} flipped was accepted");
        }
        for len in 0..sealed.len() {
            assert!(unseal(&sealed[..len], "pw").is_err());
        }
    }

    #[test]
    fn crafted_costs_are_refused_before_hashing() {
        let m = mnemonic();
        let mut sealed = seal(&m, "pw", KdfParams::INSECURE_FAST).expect("seal");
        sealed[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            unseal(&sealed, "pw"),
            Err(KeystoreError::BadParams)
        ));
    }

    #[test]
    fn file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seed");
        let m = mnemonic();
        SeedFile::create_with(&path, &m, "pw", KdfParams::INSECURE_FAST).expect("create");
        assert!(matches!(
            SeedFile::create_with(&path, &mnemonic(), "pw", KdfParams::INSECURE_FAST),
            Err(KeystoreError::Exists(_))
        ));
        assert_eq!(SeedFile::open(&path, "pw").expect("open"), m);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "seed file readable by others");
        }
        let bytes = fs::read(&path).expect("read");
        let entropy = m.to_entropy();
        assert!(
            !bytes
                .windows(entropy.len())
                .any(|w| w == entropy.as_slice()),
            "the seed's entropy is on disk in the clear"
        );
    }
}
