//! `moip relay`: the Moneysocket pairing relay (crates/moneysocket), with the limits the
//! reference relay lacks on by default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use moip_moneysocket::relay::{self, RateLimit, Relay, RelayConfig, RelayMetrics};

#[derive(Args)]
pub(crate) struct RelayArgs {
    /// Address to listen on (loopback unless you choose otherwise; port 0 picks one)
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], relay::DEFAULT_PORT)))]
    bind: SocketAddr,
    /// Serve ws:// beyond loopback (behind a proxy that terminates TLS); else beyond loopback
    /// the relay needs --tls-cert
    #[arg(long)]
    allow_plain: bool,
    /// PEM certificate chain: serve wss:// instead of ws://
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest frame accepted, in bytes
    #[arg(long, default_value_t = RelayConfig::default().max_frame_len)]
    max_frame_bytes: usize,
    /// Seconds a socket may wait for its peer
    #[arg(long, default_value_t = RelayConfig::default().unpaired_timeout.as_secs())]
    unpaired_timeout_secs: u64,
    /// Open connections allowed from one IP address
    #[arg(long, default_value_t = RelayConfig::default().max_connections_per_ip)]
    max_per_ip: usize,
    /// Open connections allowed in all
    #[arg(long, default_value_t = RelayConfig::default().max_connections)]
    max_connections: usize,
    /// Sustained messages per second per connection (0: no limit)
    #[arg(long, default_value_t = RateLimit::default().per_second)]
    rate: f64,
    /// Messages a connection may send in a burst above the rate
    #[arg(long, default_value_t = RateLimit::default().burst)]
    burst: u32,
    /// Seconds between metrics lines in the log (0: only at shutdown)
    #[arg(long, default_value_t = 60)]
    metrics_secs: u64,
}

fn metrics_line(m: &RelayMetrics) -> String {
    format!(
        "connections {} open / {} total, pairs {} active / {} total, forwarded {} frames / {} bytes, rejected {:?}",
        m.connections_open,
        m.connections_total,
        m.pairs_active,
        m.pairs_total,
        m.frames_forwarded,
        m.bytes_forwarded,
        m.rejected
    )
}

pub(crate) async fn run(args: RelayArgs) -> anyhow::Result<()> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(relay::server_tls_config_from_pem_files(cert, key)?),
        _ => None,
    };
    if tls.is_none() && !args.allow_plain && !args.bind.ip().is_loopback() {
        anyhow::bail!(
            "{} is beyond loopback: give --tls-cert and --tls-key to serve wss://, or \
             --allow-plain behind a proxy that terminates TLS",
            args.bind
        );
    }
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let config = RelayConfig {
        bind: args.bind,
        tls,
        max_frame_len: args.max_frame_bytes,
        unpaired_timeout: Duration::from_secs(args.unpaired_timeout_secs),
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_per_ip,
        rate_limit: (args.rate > 0.0).then_some(RateLimit {
            per_second: args.rate,
            burst: args.burst,
        }),
        ..RelayConfig::default()
    };
    let relay = Relay::bind(config).await.context("starting the relay")?;
    // Scripts and tests read this line for the address actually bound.
    println!("relay listening on {scheme}://{}", relay.local_addr());
    let mut tick = tokio::time::interval(Duration::from_secs(args.metrics_secs.max(1)));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick(), if args.metrics_secs > 0 => {
                tracing::info!("{}", metrics_line(&relay.metrics()));
            }
        }
    }
    tracing::info!("stopping: {}", metrics_line(&relay.metrics()));
    relay.shutdown().await;
    Ok(())
}
