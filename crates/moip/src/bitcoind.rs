//! The flags that point a command at a user's bitcoind instead of the embedded node, shared by
//! `moip electrum` and `moip up`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use moip_chain::{BitcoindAuth, BitcoindRpc};

#[derive(Args, Clone, Debug, Default)]
pub(crate) struct BitcoindArgs {
    /// Use this bitcoind instead of the embedded node, e.g. http://127.0.0.1:8332
    #[arg(long, env = "MOIP_BITCOIND_RPC")]
    pub bitcoind_rpc: Option<String>,
    /// bitcoind's cookie file [default: ~/.bitcoin/.cookie when no user is given]
    #[arg(long)]
    pub bitcoind_cookie: Option<PathBuf>,
    /// bitcoind RPC user
    #[arg(long, requires = "bitcoind_password")]
    pub bitcoind_user: Option<String>,
    /// bitcoind RPC password (prefer the environment variable)
    #[arg(long, env = "MOIP_BITCOIND_PASSWORD", hide_env_values = true)]
    pub bitcoind_password: Option<String>,
}

impl BitcoindArgs {
    fn auth(&self) -> BitcoindAuth {
        match (
            &self.bitcoind_user,
            &self.bitcoind_password,
            &self.bitcoind_cookie,
        ) {
            (Some(user), Some(password), _) => {
                BitcoindAuth::UserPass(user.clone(), password.clone())
            }
            (_, _, Some(cookie)) => BitcoindAuth::Cookie(cookie.clone()),
            _ => BitcoindAuth::Cookie(
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_default()
                    .join(".bitcoin/.cookie"),
            ),
        }
    }

    /// The bitcoind asked for, connected; `None` when none was.
    ///
    /// # Errors
    /// When bitcoind cannot be reached or refuses the credentials.
    pub async fn connect(&self) -> anyhow::Result<Option<BitcoindRpc>> {
        let Some(url) = self.bitcoind_rpc.clone() else {
            return Ok(None);
        };
        let auth = self.auth();
        let rpc = tokio::task::spawn_blocking(move || BitcoindRpc::connect(&url, auth))
            .await?
            .context("connecting to bitcoind")?;
        Ok(Some(rpc))
    }
}
