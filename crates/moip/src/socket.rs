//! `moip socket`: a Moneysocket consumer from the terminal — connect to a wallet through the
//! beacon it gave you, see its balance, ask for an invoice, or have it pay one.

use std::num::NonZeroU64;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use moip_moneysocket::client::ClientConfig;
use moip_moneysocket::consumer::Consumer;
use moip_moneysocket::v0::beacon::Beacon;
use moip_moneysocket::v0::location::Location;

/// Payments wait this long for the provider's answer.
const WAIT: Duration = Duration::from_secs(90);

#[derive(Args)]
pub(crate) struct SocketArgs {
    /// The wallet's beacon (`moneysocket1…`, as `moip ln beacon` prints it)
    #[arg(long, env = "MOIP_BEACON", hide_env_values = true)]
    beacon: String,
    #[command(subcommand)]
    command: SocketCommand,
}

#[derive(Subcommand)]
enum SocketCommand {
    /// The account and its balance
    Info,
    /// An invoice paying into the wallet
    Invoice { amount_msat: u64 },
    /// Has the wallet pay an invoice; prints the preimage
    Pay { bolt11: String },
}

/// The relay URL of a beacon: its first location, which must be a WebSocket.
pub(crate) fn beacon_url(beacon: &Beacon) -> anyhow::Result<String> {
    match beacon.locations.first() {
        Some(Location::WebSocket(ws)) => Ok(ws.url()),
        Some(_) => bail!("the beacon's first location is not a WebSocket relay"),
        None => bail!("the beacon has no location"),
    }
}

pub(crate) async fn run(args: SocketArgs) -> anyhow::Result<()> {
    let beacon = Beacon::from_bech32(args.beacon.trim()).context("reading the beacon")?;
    let url = beacon_url(&beacon)?;
    let consumer = Consumer::connect(&url, beacon.shared_seed, &ClientConfig::default(), WAIT)
        .await
        .with_context(|| format!("connecting through {url}"))?;
    match args.command {
        SocketCommand::Info => {
            let info = consumer.provider().await?;
            println!("account {}", info.account_uuid);
            println!("payer {}, payee {}", info.payer, info.payee);
            if let Some(wad) = info.wad {
                println!(
                    "balance {} msat ({} {})",
                    wad.msats(),
                    wad.asset_units(),
                    wad.code()
                );
            }
        }
        SocketCommand::Invoice { amount_msat } => {
            let msats = NonZeroU64::new(amount_msat).context("the amount must not be zero")?;
            println!("{}", consumer.invoice(msats).await?);
        }
        SocketCommand::Pay { bolt11 } => {
            let preimage = consumer.pay(&bolt11).await?;
            let hex: String = preimage.iter().map(|b| format!("{b:02x}")).collect();
            println!("paid: preimage {hex}");
        }
    }
    Ok(())
}
