//! ElectrumX 2.0, the reference Electrum server, as a child process over a node's JSON-RPC —
//! the peer moip's Electrum server and wallet are compared against. `make test` installs it in
//! `.venv`; `MOIP_ELECTRUMX` may point elsewhere.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where `electrumx_server` is: `$MOIP_ELECTRUMX`, else the workspace's `.venv`.
pub fn electrumx_path() -> PathBuf {
    std::env::var_os("MOIP_ELECTRUMX")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/electrumx_server")
        })
}

/// A running ElectrumX, killed on drop.
pub struct ElectrumX {
    child: Child,
    pub addr: SocketAddr,
}

impl ElectrumX {
    /// Starts ElectrumX on a free loopback port, indexing into `db` from `daemon_url`
    /// (`http://user:password@127.0.0.1:port/`). Cost throttling is off, as in Electrum's own
    /// regtest CI, and the daemon is polled every 100 ms.
    pub fn spawn(daemon_url: &str, db: &Path) -> std::io::Result<ElectrumX> {
        let path = electrumx_path();
        if !path.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "ElectrumX not found at {}: run `make test` (it creates .venv) or set MOIP_ELECTRUMX",
                    path.display()
                ),
            ));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(path)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("COIN", "Bitcoin")
            .env("NET", "regtest")
            .env("DB_ENGINE", "leveldb")
            .env("DB_DIRECTORY", db)
            .env("DAEMON_URL", daemon_url)
            .env("SERVICES", format!("tcp://127.0.0.1:{port}"))
            .env("PEER_DISCOVERY", "off")
            .env("PEER_ANNOUNCE", "")
            .env("ALLOW_ROOT", "1")
            .env(
                "LOG_LEVEL",
                std::env::var("MOIP_ELECTRUMX_LOG").unwrap_or_else(|_| "warning".into()),
            )
            .env("COST_SOFT_LIMIT", "0")
            .env("COST_HARD_LIMIT", "0")
            .env("MAX_SEND", "100000000")
            .env("DAEMON_POLL_INTERVAL_BLOCKS", "100")
            .env("DAEMON_POLL_INTERVAL_MEMPOOL", "100")
            .stdout(if std::env::var_os("MOIP_ELECTRUMX_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(ElectrumX {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }
}

impl Drop for ElectrumX {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
