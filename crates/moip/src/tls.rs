//! TLS for a community node reachable from other machines: when to use it, and the one
//! certificate every public listener presents.
//!
//! A node that listens beyond loopback serves its dashboard over HTTPS, Electrum over SSL and
//! WSS, and its Moneysocket and Nostr relays over `wss://`; the node's own services keep
//! reaching them over plain listeners on loopback, which never leave the machine. The
//! certificate is the operator's (from files) or a self-signed one made at first start, whose
//! fingerprint `moip up` prints so users can check what their wallet is shown.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitcoin::hashes::{sha256, Hash};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;

/// Whether the public listeners speak TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS when the node listens beyond loopback.
    #[default]
    Auto,
    /// Always (also on loopback).
    On,
    /// Never: only behind a proxy that terminates TLS for the node.
    Off,
}

impl TlsMode {
    /// Whether a node bound to `bind` serves TLS.
    pub fn applies(self, bind: IpAddr) -> bool {
        match self {
            TlsMode::Auto => !bind.is_loopback(),
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
    /// The server configuration built from them.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate, as colon-separated hex (what browsers show).
    pub fingerprint: String,
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
        let config = moip_moneysocket::relay::server_tls_config_from_pem_files(&cert, &key)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        let leaf = CertificateDer::pem_file_iter(&cert)
            .ok()
            .and_then(|mut certs| certs.next())
            .and_then(Result::ok)
            .ok_or_else(|| {
                TlsError::Certificate(format!("no certificate in {}", cert.display()))
            })?;
        Ok(NodeCert {
            cert,
            key,
            config,
            fingerprint: fingerprint(&leaf),
        })
    }
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
            assert_eq!(mode.applies(bind), wanted, "{mode:?} on {bind}");
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
