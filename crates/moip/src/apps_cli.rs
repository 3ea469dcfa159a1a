//! `moip apps`: the NWC apps of a running `moip up` — funding an app's own account from the
//! community's free collateral — through its API, as the operator (the token in `api.token`).

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::operator_cli::Operator;

#[derive(Args)]
pub(crate) struct AppsArgs {
    /// The node's API (`moip up` prints it; plain HTTP, e.g. on loopback)
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// The node's data directory, where `api.token` is (default: ~/.moip)
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: AppsCommand,
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Moves free collateral (none that backs tokens) to an app's own account, which is all
    /// the app may spend
    Fund {
        /// The app's NWC client key (hex), as the connection list shows it
        client: String,
        /// Satoshis to move
        sats: u64,
    },
}

pub(crate) fn run(args: AppsArgs) -> anyhow::Result<()> {
    let operator = Operator::new(args.api, args.data_dir)?;
    let AppsCommand::Fund { client, sats } = args.command;
    if client.len() != 64 || !client.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("an app's client key is 64 hex digits");
    }
    let body = operator.call(
        "POST",
        &format!("/api/pairing/nwc/{client}/fund"),
        Some(&json!({ "sats": sats })),
    )?;
    println!(
        "app {client}: {} msat; collateral {} sat",
        body["balance_msat"], body["collateral"]
    );
    Ok(())
}
