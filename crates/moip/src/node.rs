//! `moip node`: the embedded regtest node with its RPC server, until Ctrl-C or `stop`.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use moip_chain::rpc::{RpcAuth, RpcConfig, RpcServer};
use moip_chain::{ChainSource, EmbeddedNode, NodeConfig};

#[derive(Args)]
pub(crate) struct NodeArgs {
    /// Directory for the chainstate, index, mempool and cookie [default: ~/.moip/chain]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Port of the JSON-RPC and REST interface (0 picks a free one)
    #[arg(long, default_value_t = 18443)]
    rpc_port: u16,
    /// Address to listen on; anything but loopback exposes the node to the network, in clear
    /// (bitcoind's RPC has no TLS), so it needs --allow-plain
    #[arg(long, default_value = "127.0.0.1")]
    rpc_bind: IpAddr,
    /// Allow --rpc-bind beyond loopback (on a network you trust, or behind a TLS proxy)
    #[arg(long)]
    allow_plain: bool,
    /// RPC user; without it a cookie file in the data directory is used
    #[arg(long, requires = "rpc_password")]
    rpc_user: Option<String>,
    /// RPC password (prefer the environment variable to keep it out of `ps`)
    #[arg(
        long,
        env = "MOIP_RPC_PASSWORD",
        hide_env_values = true,
        requires = "rpc_user"
    )]
    rpc_password: Option<String>,
    /// Do not serve the read-only REST interface
    #[arg(long)]
    no_rest: bool,
}

pub(crate) async fn run(args: NodeArgs) -> anyhow::Result<()> {
    if !args.rpc_bind.is_loopback() && !args.allow_plain {
        anyhow::bail!(
            "--rpc-bind {} is beyond loopback and the RPC has no TLS: reach it over SSH, or give \
             --allow-plain on a network you trust",
            args.rpc_bind
        );
    }
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| crate::default_data_dir().join("chain"));
    let node = tokio::task::spawn_blocking({
        let dir = data_dir.clone();
        move || EmbeddedNode::open(NodeConfig::new(dir))
    })
    .await?
    .with_context(|| format!("opening the node in {}", data_dir.display()))?;
    let auth = match (args.rpc_user, args.rpc_password) {
        (Some(user), Some(password)) => RpcAuth::UserPass { user, password },
        _ => RpcAuth::Cookie {
            path: data_dir.join(".cookie"),
        },
    };
    let config = RpcConfig {
        bind: (args.rpc_bind, args.rpc_port).into(),
        auth,
        rest: !args.no_rest,
    };
    let server = RpcServer::start(node.clone(), config)
        .await
        .context("starting the RPC server")?;
    let tip = node.tip()?;
    println!(
        "moip node: regtest chain at height {} in {}",
        tip.height,
        data_dir.display()
    );
    println!("RPC and REST: {}", server.url());
    match server.cookie_path() {
        Some(cookie) => println!("cookie: {}", cookie.display()),
        None => println!("auth: user and password as given"),
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: stopping"),
        _ = server.stop_requested() => tracing::info!("stop requested over RPC"),
    }
    server.shutdown().await;
    tokio::task::spawn_blocking(move || node.shutdown()).await??;
    Ok(())
}
