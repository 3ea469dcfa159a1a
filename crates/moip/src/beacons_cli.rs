//! `moip beacons`: the Moneysocket beacons a running `moip up` has handed out — made with a
//! limit renewing by calendar period and an expiry, listed with their budgets and balances,
//! funded, and revoked — through its API, as the operator (the token in `api.token`).

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::operator_cli::Operator;

#[derive(Args)]
pub(crate) struct BeaconsArgs {
    /// The node's API (`moip up` prints it; plain HTTP, e.g. on loopback)
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// The node's data directory, where `api.token` is (default: ~/.moip)
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: BeaconsCommand,
}

#[derive(Subcommand)]
enum BeaconsCommand {
    /// A new beacon: prints the beacon (a bearer secret, shown once) and its id
    New {
        /// Most its apps may spend per period, in sat (omit: no limit)
        #[arg(long)]
        limit_sat: Option<u64>,
        /// When the limit renews, at the start of the UTC calendar period: daily, weekly
        /// (Monday), monthly, yearly or never (a lifetime limit)
        #[arg(long, default_value = "never")]
        budget_renewal: moip_nwc::Renewal,
        /// When the beacon stops being served, Unix seconds (omit: until revoked)
        #[arg(long)]
        expires_at: Option<u64>,
    },
    /// Every beacon: id, limit, renewal, left this period, spent, reserved, balance (sat),
    /// expiry, and whether it was revoked or has expired
    List,
    /// Moves free collateral to a beacon's own account, which its apps spend
    Fund {
        /// The beacon's id, as `list` shows it
        id: String,
        /// Satoshis to move (collateral backing tokens is never moved)
        sats: u64,
    },
    /// Revokes a beacon: it spends nothing more and is no longer served
    Revoke {
        /// The beacon's id, as `list` shows it
        id: String,
    },
}

fn sat(msat: &Value) -> String {
    msat.as_u64()
        .map_or_else(|| "none".to_owned(), |m| (m / 1_000).to_string())
}

fn line(beacon: &Value) -> String {
    let until = beacon["expires_at"]
        .as_u64()
        .map_or_else(String::new, |at| format!("  expires {at}"));
    format!(
        "{}  limit {} {}  left {}  spent {}  reserved {}  balance {}{until}  {}",
        beacon["id"].as_str().unwrap_or("?"),
        sat(&beacon["limit_msat"]),
        beacon["budget_renewal"].as_str().unwrap_or("never"),
        sat(&beacon["left_msat"]),
        sat(&beacon["spent_msat"]),
        sat(&beacon["reserved_msat"]),
        sat(&beacon["balance_msat"]),
        if !beacon["revoked_at"].is_null() {
            "revoked"
        } else if beacon["expired"] == Value::Bool(true) {
            "expired"
        } else {
            "in service"
        }
    )
}

pub(crate) fn run(args: BeaconsArgs) -> anyhow::Result<()> {
    let operator = Operator::new(args.api, args.data_dir)?;
    if let BeaconsCommand::Revoke { id } | BeaconsCommand::Fund { id, .. } = &args.command {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("a beacon's id is hex digits, as `moip beacons list` shows it");
        }
    }
    let body = match &args.command {
        BeaconsCommand::New {
            limit_sat,
            budget_renewal,
            expires_at,
        } => operator.call(
            "POST",
            "/api/pairing/beacon",
            Some(&serde_json::json!({
                "limit_sat": limit_sat,
                "budget_renewal": budget_renewal.to_string(),
                "expires_at": expires_at,
            })),
        )?,
        BeaconsCommand::List => operator.call("GET", "/api/pairing/beacons", None)?,
        BeaconsCommand::Revoke { id } => {
            operator.call("DELETE", &format!("/api/pairing/beacons/{id}"), None)?
        }
        BeaconsCommand::Fund { id, sats } => operator.call(
            "POST",
            &format!("/api/pairing/beacons/{id}/fund"),
            Some(&serde_json::json!({ "sats": sats })),
        )?,
    };
    match args.command {
        BeaconsCommand::New { .. } => {
            println!("{}", body["uri"].as_str().unwrap_or_default());
            println!("id {}", body["id"].as_str().unwrap_or_default());
        }
        BeaconsCommand::List => {
            for beacon in body.as_array().map(Vec::as_slice).unwrap_or_default() {
                println!("{}", line(beacon));
            }
        }
        BeaconsCommand::Revoke { .. } | BeaconsCommand::Fund { .. } => {
            println!("{}", line(&body));
        }
    }
    Ok(())
}
