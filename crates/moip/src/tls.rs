//! TLS for a community node reachable from other machines: when to use it, and the one
//! certificate every public listener presents.
//!
//! A node that listens beyond loopback serves its dashboard over HTTPS, Electrum over SSL and
//! WSS, and its Moneysocket and Nostr relays over `wss://`; the node's own services keep
//! reaching them over plain listeners on loopback, which never leave the machine. The
//! certificate is the operator's (from files) or a self-signed one made at first start, whose
//! fingerprint `moip up` prints so users can check what their wallet is shown. Renewed files
//! are picked up within seconds, without a restart (as the Electrum server does with them).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bitcoin::hashes::{sha256, Hash};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Deserialize;

/// How often, at most, a handshake checks whether the certificate files changed.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// Whether the public listeners speak TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS when the node listens beyond loopback, or when a certificate is given.
    #[default]
    Auto,
    /// Always (also on loopback).
    On,
    /// Never: only behind a proxy that terminates TLS for the node.
    Off,
}

impl TlsMode {
    /// Whether a node bound to `bind` serves TLS; `certificate` says whether the operator gave
    /// one (which asks for TLS, on loopback too).
    pub fn applies(self, bind: IpAddr, certificate: bool) -> bool {
        match self {
            TlsMode::Auto => certificate || !bind.is_loopback(),
            TlsMode::On => true,
            TlsMode::Off => false,
        }
    }
}

/// Where a listener that cannot speak TLS binds when the others bind to `bind`: there, on
/// loopback or when the operator allows plain listeners beyond it; else on `127.0.0.1`, so
/// nothing leaves the machine in clear by default.
pub fn plain_bind(bind: IpAddr, allow_plain: bool) -> IpAddr {
    if bind.is_loopback() || allow_plain {
        bind
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

/// The certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate without its key, or the other way round.
    #[error("give both tls_cert and tls_key, or neither for a self-signed certificate")]
    Half,
    /// The files could not be made, read or used.
    #[error("tls: {0}")]
    Certificate(String),
}

/// The certificate the public listeners present.
pub struct NodeCert {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// The server configuration, presenting the files' current pair.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate at start, as colon-separated hex (what browsers show).
    pub fingerprint: String,
    resolver: Arc<Reloading>,
}

impl NodeCert {
    /// The operator's `cert` and `key`, or else `<data_dir>/tls/{cert,key}.pem`, made
    /// self-signed for `localhost`, `127.0.0.1` and `names` when missing.
    ///
    /// # Errors
    /// [`TlsError::Half`] for one file without the other; [`TlsError::Certificate`] when the
    /// files cannot be made, read or used.
    pub fn open(
        data_dir: &Path,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        names: Vec<String>,
    ) -> Result<NodeCert, TlsError> {
        let (cert, key) = match (cert, key) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) => {
                let dir = data_dir.join("tls");
                let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
                if !(cert.exists() && key.exists()) {
                    moip_electrum::server::tls::self_signed(&cert, &key, names)
                        .map_err(|e| TlsError::Certificate(e.to_string()))?;
                    tracing::info!(cert = %cert.display(), "made a self-signed TLS certificate");
                }
                (cert, key)
            }
            _ => return Err(TlsError::Half),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = Arc::new(Reloading::open(
            cert.clone(),
            key.clone(),
            Arc::clone(&provider),
        )?);
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Certificate(format!("protocol versions: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        let fingerprint = fingerprint(&resolver.current().cert[0]);
        Ok(NodeCert {
            cert,
            key,
            config: Arc::new(config),
            fingerprint,
            resolver,
        })
    }

    /// The leaf certificate presented now (after a reload check).
    pub fn presented(&self) -> CertificateDer<'static> {
        self.resolver.refresh(Duration::ZERO);
        self.resolver.current().cert[0].clone()
    }
}

/// The pair in two files, reloaded when either file changes; a bad new pair is refused and
/// the old one kept, with a warning.
#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    /// The pair, the files' newest modification time when it was read, the last check.
    state: RwLock<(Arc<CertifiedKey>, Option<SystemTime>, Instant)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Reloading {
    fn open(cert: PathBuf, key: PathBuf, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let stamp = modified(&cert).max(modified(&key));
        let pair = load(&cert, &key, &provider)?;
        Ok(Reloading {
            cert,
            key,
            provider,
            state: RwLock::new((pair, stamp, Instant::now())),
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.state.read().unwrap_or_else(|e| e.into_inner()).0)
    }

    /// Reloads when the last check is older than `every` and the files changed since.
    fn refresh(&self, every: Duration) {
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if state.2.elapsed() < every {
                return;
            }
        }
        let stamp = modified(&self.cert).max(modified(&self.key));
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.2 = Instant::now();
        if stamp == state.1 {
            return;
        }
        match load(&self.cert, &self.key, &self.provider) {
            Ok(pair) => {
                *state = (pair, stamp, Instant::now());
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                // Not again until the files change once more.
                state.1 = stamp;
                tracing::warn!(
                    "the TLS certificate changed but cannot be used, keeping the old one: {e}"
                );
            }
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh(RELOAD_INTERVAL);
        Some(self.current())
    }
}

/// The chain and key in `cert` and `key`, checked to belong together.
fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let bad = |what: &Path, e: &dyn std::fmt::Display| {
        TlsError::Certificate(format!("{}: {e}", what.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, &e))?;
    if chain.is_empty() {
        return Err(bad(cert, &"no certificate"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let pair = CertifiedKey::from_der(chain, key_der, provider).map_err(|e| bad(key, &e))?;
    Ok(Arc::new(pair))
}

/// SHA-256 of a DER certificate as `AB:CD:…`.
fn fingerprint(der: &[u8]) -> String {
    sha256::Hash::hash(der)
        .to_byte_array()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn auto_means_tls_beyond_loopback() {
        let lan = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 5));
        for (mode, bind, wanted) in [
            (TlsMode::Auto, IpAddr::V4(Ipv4Addr::LOCALHOST), false),
            (
                TlsMode::Auto,
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                false,
            ),
            (TlsMode::Auto, IpAddr::V6(Ipv6Addr::LOCALHOST), false),
            (TlsMode::Auto, IpAddr::V4(Ipv4Addr::UNSPECIFIED), true),
            (TlsMode::Auto, IpAddr::V6(Ipv6Addr::UNSPECIFIED), true),
            (TlsMode::Auto, lan, true),
            (TlsMode::On, IpAddr::V4(Ipv4Addr::LOCALHOST), true),
            (TlsMode::Off, lan, false),
        ] {
            assert_eq!(mode.applies(bind, false), wanted, "{mode:?} on {bind}");
        }
    }

    #[test]
    fn plain_listeners_stay_home_unless_allowed() {
        let lan = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 5));
        let home = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(plain_bind(lan, false), home);
        assert_eq!(plain_bind(lan, true), lan);
        assert_eq!(plain_bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED), false), home);
        let other_loopback = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(plain_bind(other_loopback, false), other_loopback);
    }

    #[test]
    fn makes_a_certificate_once_and_keeps_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first =
            NodeCert::open(dir.path(), None, None, vec!["node.example".into()]).expect("made");
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let again = NodeCert::open(dir.path(), None, None, vec![]).expect("read");
        assert_eq!(first.fingerprint, again.fingerprint, "the same certificate");
        // The operator's files are used as given.
        let theirs = NodeCert::open(
            Path::new("/nonexistent"),
            Some(first.cert.clone()),
            Some(first.key.clone()),
            vec![],
        )
        .expect("given files");
        assert_eq!(theirs.fingerprint, first.fingerprint);
    }

    #[test]
    fn a_renewed_certificate_is_presented_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = NodeCert::open(dir.path(), None, None, vec![]).expect("made");
        let first = node.presented();
        // Renewal: a new pair in the same files (and a later modification time, as a
        // renewal on a real clock gives).
        let later = SystemTime::now() + Duration::from_secs(60);
        moip_electrum::server::tls::self_signed(&node.cert, &node.key, vec![]).expect("renewed");
        for path in [&node.cert, &node.key] {
            let file = std::fs::File::options()
                .append(true)
                .open(path)
                .expect("open");
            file.set_modified(later).expect("touch");
        }
        let renewed = node.presented();
        assert_ne!(renewed, first, "the renewed certificate is presented");
        // A broken renewal keeps the pair that works.
        std::fs::write(&node.key, "not a key").expect("write");
        let file = std::fs::File::options()
            .append(true)
            .open(&node.key)
            .expect("open");
        file.set_modified(later + Duration::from_secs(60))
            .expect("touch");
        assert_eq!(node.presented(), renewed);
    }

    #[test]
    fn refuses_half_a_pair_and_bad_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        assert!(matches!(
            NodeCert::open(dir.path(), Some(cert.clone()), None, vec![]),
            Err(TlsError::Half)
        ));
        std::fs::write(&cert, "not a certificate").expect("write");
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "not a key").expect("write");
        assert!(matches!(
            NodeCert::open(dir.path(), Some(cert), Some(key), vec![]),
            Err(TlsError::Certificate(_))
        ));
    }
}
