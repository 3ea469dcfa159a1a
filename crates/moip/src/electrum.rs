//! `moip electrum`: the Electrum server over the embedded node (in the same process, with its
//! RPC so tests and users can mine) or over a user's bitcoind.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use moip_chain::rpc::{RpcAuth, RpcConfig, RpcServer};
use moip_chain::{ChainSource, EmbeddedNode, NodeConfig};
use moip_electrum::{ElectrumServer, ServerConfig};

use crate::bitcoind::BitcoindArgs;

#[derive(Args)]
pub(crate) struct ElectrumArgs {
    /// Data directory: the index in <dir>/electrum, the embedded chain in <dir>/chain [default: ~/.moip]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address the listeners bind to; beyond loopback only TLS and WSS do, the plain ones (TCP,
    /// WS, metrics, the node's RPC) staying on 127.0.0.1 unless --allow-plain
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Bind the plain listeners to --bind too (behind a proxy that terminates TLS, or on a
    /// network you trust)
    #[arg(long)]
    allow_plain: bool,
    /// Electrum over TCP (0 picks a free port)
    #[arg(long, default_value_t = 50001)]
    tcp_port: u16,
    /// Electrum over TLS
    #[arg(long, default_value_t = 50002)]
    tls_port: u16,
    /// Electrum over WebSocket
    #[arg(long, default_value_t = 50003)]
    ws_port: u16,
    /// Electrum over secure WebSocket
    #[arg(long, default_value_t = 50004)]
    wss_port: u16,
    /// Prometheus metrics over HTTP (off unless given)
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Addresses not limited (connections per address, subscriptions, cost), comma-separated
    /// [default: none, loopback included: a Tor hidden service or a reverse proxy delivers
    /// strangers from 127.0.0.1]
    #[arg(long, value_delimiter = ',')]
    exempt: Vec<IpAddr>,
    /// A plain TCP listener on 127.0.0.1 for this machine's own services (a Lightning node, a
    /// wallet): its sessions are not limited; advertised nowhere (off unless given)
    #[arg(long)]
    own_port: Option<u16>,
    /// PEM certificate chain for TLS/WSS (a self-signed one is made when absent)
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS/WSS
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    bitcoind: BitcoindArgs,
    /// Port of the embedded node's bitcoind-compatible RPC (0 picks a free one)
    #[arg(long, default_value_t = 18443)]
    rpc_port: u16,
    /// Text of server.banner
    #[arg(long)]
    banner: Option<String>,
    /// Host name advertised in server.features
    #[arg(long)]
    public_host: Option<String>,
    /// .onion host advertised in server.features and server.peers.subscribe
    #[arg(long)]
    onion_host: Option<String>,
    /// Make the server private: clients must present this token
    #[arg(long, env = "MOIP_ELECTRUM_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
}

pub(crate) async fn run(args: ElectrumArgs) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::default_data_dir);
    let plain = moip::tls::plain_bind(args.bind, args.allow_plain);
    if plain != args.bind {
        tracing::info!(
            "beyond loopback only TLS and WSS listen on {}; plain listeners on {plain}",
            args.bind
        );
    }
    let mut node_parts = None;
    let source: Arc<dyn ChainSource> = match args.bitcoind.connect().await? {
        Some(rpc) => Arc::new(rpc),
        None => {
            let dir = data_dir.join("chain");
            let node =
                tokio::task::spawn_blocking(move || EmbeddedNode::open(NodeConfig::new(dir)))
                    .await?
                    .context("opening the embedded node")?;
            let rpc_config = RpcConfig {
                bind: SocketAddr::new(plain, args.rpc_port),
                auth: RpcAuth::Cookie {
                    path: node.data_dir().join(".cookie"),
                },
                rest: true,
            };
            let rpc = RpcServer::start(node.clone(), rpc_config)
                .await
                .context("starting the node's RPC server")?;
            println!("RPC and REST: {}", rpc.url());
            if let Some(cookie) = rpc.cookie_path() {
                println!("cookie: {}", cookie.display());
            }
            node_parts = Some((node.clone(), rpc));
            Arc::new(node)
        }
    };

    let addr = |port: u16| Some(SocketAddr::new(args.bind, port));
    let plain_addr = |port: u16| Some(SocketAddr::new(plain, port));
    let mut config = ServerConfig::new(data_dir.join("electrum"));
    config.tcp = plain_addr(args.tcp_port);
    config.tls = addr(args.tls_port);
    config.ws = plain_addr(args.ws_port);
    config.wss = addr(args.wss_port);
    config.metrics = args.metrics_port.and_then(plain_addr);
    config.limits.exempt = args.exempt;
    config.own_tcp = args
        .own_port
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
    config.tls_cert = args.tls_cert;
    config.tls_key = args.tls_key;
    config.public_host = args.public_host;
    config.onion_host = args.onion_host;
    config.auth_token = args.auth_token;
    if let Some(banner) = args.banner {
        config.banner = banner;
    }
    let server = ElectrumServer::start(source, config)
        .await
        .context("starting the Electrum server")?;
    let a = server.addresses();
    for (name, addr) in [
        ("TCP", a.tcp),
        ("TLS", a.tls),
        ("WS", a.ws),
        ("WSS", a.wss),
        ("own TCP (unlimited)", a.own_tcp),
        ("metrics", a.metrics),
    ] {
        if let Some(addr) = addr {
            println!("Electrum {name}: {addr}");
        }
    }
    if let Some(cert) = server.tls_certificate() {
        println!("TLS certificate: {}", cert.display());
    }
    match &node_parts {
        Some((_, rpc)) => tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: stopping"),
            _ = rpc.stop_requested() => tracing::info!("stop requested over RPC"),
        },
        None => {
            tokio::signal::ctrl_c().await?;
        }
    }
    server.shutdown().await;
    if let Some((node, rpc)) = node_parts {
        rpc.shutdown().await;
        tokio::task::spawn_blocking(move || node.shutdown()).await??;
    }
    Ok(())
}
