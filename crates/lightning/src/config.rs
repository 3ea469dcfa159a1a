//! A node's configuration, validated before anything touches the disk or the network.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ldk_node::bitcoin::Network;

use crate::error::{LightningError, Result};

/// The Lightning port of BOLT 1; bound to loopback unless the user says otherwise.
pub const DEFAULT_PORT: u16 = 9735;

/// ldk-node never syncs in the background more often than this, whatever it is told.
pub const MIN_SYNC_INTERVAL: Duration = Duration::from_secs(10);

/// The longest alias BOLT 7 allows in a node announcement.
const MAX_ALIAS_BYTES: usize = 32;

/// Where the node learns about the chain.
#[derive(Clone, PartialEq, Eq)]
pub enum ChainSourceConfig {
    /// An Electrum server, e.g. moip's own (`tcp://127.0.0.1:50001`), or `ssl://host:port`.
    Electrum {
        /// The server's URL.
        url: String,
    },
    /// An Esplora HTTP API, e.g. `https://blockstream.info/api`.
    Esplora {
        /// The API's base URL.
        url: String,
    },
    /// A bitcoind (or moip's embedded node) over JSON-RPC.
    BitcoindRpc {
        /// RPC host.
        host: String,
        /// RPC port.
        port: u16,
        /// RPC user (for a cookie file: `__cookie__`).
        user: String,
        /// RPC password.
        password: String,
    },
}

impl fmt::Debug for ChainSourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainSourceConfig::Electrum { url } => write!(f, "Electrum({url})"),
            ChainSourceConfig::Esplora { url } => write!(f, "Esplora({url})"),
            ChainSourceConfig::BitcoindRpc {
                host, port, user, ..
            } => write!(f, "BitcoindRpc({user}@{host}:{port}, password redacted)"),
        }
    }
}

/// Where the node's keys come from.
#[derive(Clone)]
pub enum SeedSource {
    /// A BIP39 mnemonic in a moip seed file (Argon2id + ChaCha20-Poly1305, the wallet's format),
    /// opened with this password. The production choice.
    EncryptedFile {
        /// The seed file.
        path: PathBuf,
        /// Its password.
        password: String,
    },
    /// A mnemonic the caller already holds (tests, benchmarks, or a caller with its own keystore).
    Mnemonic(bip39::Mnemonic),
}

/// Never prints the password or the words.
impl fmt::Debug for SeedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeedSource::EncryptedFile { path, .. } => {
                write!(f, "EncryptedFile({}, password redacted)", path.display())
            }
            SeedSource::Mnemonic(_) => write!(f, "Mnemonic(redacted)"),
        }
    }
}

/// Everything needed to run a node.
#[derive(Clone, Debug)]
pub struct LightningConfig {
    /// The chain (regtest for the embedded community, signet/mainnet with a real bitcoind).
    pub network: Network,
    /// ldk-node's SQLite database, its log and its wallet live here.
    pub data_dir: PathBuf,
    /// Addresses to accept peers on. Loopback by default: exposing a node is the user's choice.
    pub listen: Vec<SocketAddr>,
    /// The alias announced to the network. A node needs one (and a listening address) to
    /// announce channels and so to route for others.
    pub alias: Option<String>,
    /// Where chain data comes from.
    pub chain: ChainSourceConfig,
    /// Where the keys come from.
    pub seed: SeedSource,
    /// How often to sync the wallets in the background; `None` keeps ldk-node's defaults
    /// (80 s on-chain, 30 s Lightning). Callers can always sync at once with
    /// [`LightningNode::sync`](crate::LightningNode::sync).
    pub sync_interval: Option<Duration>,
}

impl LightningConfig {
    /// A node on `network` syncing from an Electrum server (moip's own by default), listening on
    /// 127.0.0.1:9735.
    pub fn new(
        network: Network,
        data_dir: impl Into<PathBuf>,
        electrum_url: impl Into<String>,
        seed: SeedSource,
    ) -> LightningConfig {
        LightningConfig {
            network,
            data_dir: data_dir.into(),
            listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT))],
            alias: None,
            chain: ChainSourceConfig::Electrum {
                url: electrum_url.into(),
            },
            seed,
            sync_interval: None,
        }
    }

    /// Checks what can be checked without I/O.
    pub fn validate(&self) -> Result<()> {
        if let Some(alias) = &self.alias {
            if alias.len() > MAX_ALIAS_BYTES {
                return Err(LightningError::Config(format!(
                    "the alias is {} bytes; at most {MAX_ALIAS_BYTES} are allowed",
                    alias.len()
                )));
            }
        }
        if self.alias.is_some() && self.listen.is_empty() {
            return Err(LightningError::Config(
                "an announced node (one with an alias) needs a listening address".into(),
            ));
        }
        if let Some(interval) = self.sync_interval {
            if interval < MIN_SYNC_INTERVAL {
                return Err(LightningError::Config(format!(
                    "the sync interval must be at least {MIN_SYNC_INTERVAL:?}"
                )));
            }
        }
        let url = match &self.chain {
            ChainSourceConfig::Electrum { url } => {
                if !(url.starts_with("tcp://") || url.starts_with("ssl://")) {
                    return Err(LightningError::Config(format!(
                        "an Electrum URL starts with tcp:// or ssl://, not {url:?}"
                    )));
                }
                url
            }
            ChainSourceConfig::Esplora { url } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(LightningError::Config(format!(
                        "an Esplora URL starts with http:// or https://, not {url:?}"
                    )));
                }
                url
            }
            ChainSourceConfig::BitcoindRpc { host, .. } => host,
        };
        if url.is_empty() {
            return Err(LightningError::Config("the chain source is empty".into()));
        }
        Ok(())
    }
}
