//! TLS for the SSL and WSS ports: a certificate from files, or a self-signed one made at first
//! start; reloaded when the files change, so renewing a certificate needs no restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::ServerError;

/// How often the certificate files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// The current TLS configuration, swapped when the files change.
pub struct TlsState {
    cert: PathBuf,
    key: PathBuf,
    config: RwLock<(Arc<ServerConfig>, Option<SystemTime>)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ServerError> {
    let tls_err = |what: &str, e: &dyn std::fmt::Display| ServerError::Tls(format!("{what}: {e}"));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(&format!("reading {}", cert.display()), &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(&format!("parsing {}", cert.display()), &e))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "no certificate in {}",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_err(&format!("reading {}", key.display()), &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("protocol versions", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_err("certificate and key", &e))?;
    Ok(Arc::new(config))
}

/// Writes a self-signed certificate for `localhost` (and the given names) with its key, the
/// key readable by this user only.
pub fn self_signed(cert: &Path, key: &Path, names: Vec<String>) -> Result<(), ServerError> {
    let err = |e: &dyn std::fmt::Display| ServerError::Tls(format!("self-signed certificate: {e}"));
    let mut sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    sans.extend(names);
    let generated = rcgen::generate_simple_self_signed(sans).map_err(|e| err(&e))?;
    if let Some(dir) = cert.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    }
    std::fs::write(cert, generated.cert.pem()).map_err(|e| err(&e))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options
        .open(key)
        .and_then(|mut f| f.write_all(generated.key_pair.serialize_pem().as_bytes()))
        .map_err(|e| err(&e))?;
    Ok(())
}

impl TlsState {
    /// Loads `cert` and `key`, creating a self-signed pair first when `generate` and they are
    /// missing.
    pub fn open(
        cert: PathBuf,
        key: PathBuf,
        generate: bool,
        names: Vec<String>,
    ) -> Result<TlsState, ServerError> {
        if generate && !(cert.exists() && key.exists()) {
            self_signed(&cert, &key, names)?;
            tracing::info!(cert = %cert.display(), "created a self-signed TLS certificate");
        }
        let config = load(&cert, &key)?;
        let stamp = modified(&cert).max(modified(&key));
        Ok(TlsState {
            cert,
            key,
            config: RwLock::new((config, stamp)),
        })
    }

    /// The configuration to accept the next connection with.
    pub fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config.read().expect("tls lock").0)
    }

    /// Reloads if either file changed; keeps the old configuration if the new files are bad.
    pub fn reload_if_changed(&self) -> bool {
        let stamp = modified(&self.cert).max(modified(&self.key));
        if stamp == self.config.read().expect("tls lock").1 {
            return false;
        }
        match load(&self.cert, &self.key) {
            Ok(config) => {
                *self.config.write().expect("tls lock") = (config, stamp);
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(
                    "TLS certificate changed but could not be loaded, keeping the old one: {e}"
                );
                false
            }
        }
    }
}
