//! `moip socket`: a Moneysocket consumer from the terminal — connect to a wallet through the
//! beacon it gave you, see its balance, ask for an invoice, or have it pay one.

use std::num::NonZeroU64;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use moip_moneysocket::client::{ClientConfig, Security};
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
    /// The authenticated-encryption layer: offer it and fall back to v0 for apps that lack it,
    /// require it, or speak plain v0
    #[arg(long, value_enum, default_value_t = SecurityArg::Prefer)]
    security: SecurityArg,
    #[command(subcommand)]
    command: SocketCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum SecurityArg {
    Prefer,
    Require,
    Legacy,
}

impl From<SecurityArg> for Security {
    fn from(arg: SecurityArg) -> Security {
        match arg {
            SecurityArg::Prefer => Security::Prefer,
            SecurityArg::Require => Security::Require,
            SecurityArg::Legacy => Security::Legacy,
        }
    }
}

#[derive(Subcommand)]
enum SocketCommand {
    /// Connects and shows the account, its balance and the encryption in use
    #[command(alias = "connect")]
    Info,
    /// An invoice paying into the wallet
    Invoice {
        amount_msat: u64,
        /// What the payer sees (moip providers; others ignore it)
        #[arg(long)]
        description: Option<String>,
    },
    /// Has the wallet pay an invoice; prints the preimage and the routing fee
    Pay {
        bolt11: String,
        /// The amount for an invoice that has none (moip providers)
        #[arg(long)]
        amount_msat: Option<u64>,
    },
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
    let config = ClientConfig {
        security: args.security.into(),
        ..ClientConfig::default()
    };
    let consumer = Consumer::connect(&url, beacon.shared_seed, &config, WAIT)
        .await
        .with_context(|| format!("connecting through {url}"))?;
    match args.command {
        SocketCommand::Info => {
            let info = consumer.provider().await?;
            println!("account {}", info.account_uuid);
            println!(
                "encryption {}",
                if consumer.is_secure() {
                    "authenticated (ECDH + ChaCha20-Poly1305)"
                } else {
                    "v0 (AES-256-CBC, no integrity)"
                }
            );
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
        SocketCommand::Invoice {
            amount_msat,
            description,
        } => {
            let msats = NonZeroU64::new(amount_msat).context("the amount must not be zero")?;
            println!("{}", consumer.invoice(msats, description.as_deref()).await?);
        }
        SocketCommand::Pay {
            bolt11,
            amount_msat,
        } => {
            let msats = match amount_msat {
                Some(a) => Some(NonZeroU64::new(a).context("the amount must not be zero")?),
                None => None,
            };
            let paid = consumer.pay(&bolt11, msats).await?;
            let hex: String = paid.preimage.iter().map(|b| format!("{b:02x}")).collect();
            match paid.fee_msat {
                Some(fee) => println!("paid: preimage {hex}, routing fee {fee} msat"),
                None => println!("paid: preimage {hex}"),
            }
        }
    }
    Ok(())
}
