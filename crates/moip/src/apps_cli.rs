//! `moip apps`: the NWC apps of a running `moip up` — pairing one with its budget, renewal and
//! expiry, listing them, funding an app's own account from the community's free collateral —
//! through its API, as the operator (the token in `api.token`).

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

/// An NWC connection's terms, as `moip apps pair` and `moip ln nwc-connect` take them (the
/// latter sends them, flattened, to its running node).
#[derive(Args, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct NwcTerms {
    /// Most the app may spend per period, in sat (omit: no budget)
    #[arg(long)]
    pub budget_sat: Option<u64>,
    /// When the budget renews, at the start of the UTC calendar period: daily, weekly
    /// (Monday), monthly, yearly or never
    #[arg(long, default_value = "daily")]
    pub budget_renewal: moip_nwc::Renewal,
    /// When the connection stops working, Unix seconds (omit: until revoked)
    #[arg(long)]
    pub expires_at: Option<u64>,
    /// What the app may do, comma-separated: pay, receive, read, sign (sign lets it sign as
    /// the node: never granted unless named). Omit: pay,receive,read
    #[arg(long)]
    #[serde(default)]
    pub permissions: Option<String>,
}

impl NwcTerms {
    /// The permissions asked for: the names given, or `pay`, `receive`, `read`.
    pub fn permissions(&self) -> anyhow::Result<std::collections::BTreeSet<moip_nwc::Permission>> {
        let Some(list) = &self.permissions else {
            return Ok(moip_nwc::default_permissions());
        };
        let permissions = moip_nwc::parse_permissions(list)?;
        if permissions.is_empty() {
            bail!("--permissions: at least one of pay, receive, read, sign");
        }
        Ok(permissions)
    }
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Connects an app over NWC; prints its connection URI (a bearer secret, shown once)
    Pair {
        /// A name for the app
        name: String,
        #[command(flatten)]
        terms: NwcTerms,
    },
    /// Lists the apps: budget, renewal, what is left this period, permissions, expiry,
    /// revocation, balance
    List,
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
    let (client, sats) = match args.command {
        AppsCommand::Pair { name, terms } => {
            let body = json!({
                "name": name,
                "budget_sat": terms.budget_sat,
                "budget_renewal": terms.budget_renewal.to_string(),
                "expires_at": terms.expires_at,
                "permissions": terms.permissions()?.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            let paired = operator.call("POST", "/api/pairing/nwc", Some(&body))?;
            println!("{}", paired["uri"].as_str().unwrap_or_default());
            return Ok(());
        }
        AppsCommand::List => {
            let apps = operator.call("GET", "/api/pairing/nwc", None)?;
            for app in apps.as_array().into_iter().flatten() {
                println!("{}", list_line(app));
            }
            return Ok(());
        }
        AppsCommand::Fund { client, sats } => (client, sats),
    };
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

/// One app of `GET /api/pairing/nwc` as a line: key, name, budget, left, balance, state.
fn list_line(app: &serde_json::Value) -> String {
    let msat = |field: &str| app[field].as_u64().map(|m| m / 1_000);
    let budget = match msat("budget_msat") {
        Some(sat) => format!(
            "budget {sat} sat {}, left {} sat",
            app["budget_renewal"].as_str().unwrap_or_default(),
            msat("left_msat").unwrap_or(0)
        ),
        None => "no budget".to_owned(),
    };
    let state = if app["revoked"].as_bool().unwrap_or(false) {
        "revoked".to_owned()
    } else if app["expired"].as_bool().unwrap_or(false) {
        "expired".to_owned()
    } else {
        app["expires_at"]
            .as_u64()
            .map_or_else(|| "active".to_owned(), |at| format!("active until {at}"))
    };
    let permissions: Vec<&str> = app["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .collect();
    format!(
        "{} {}: {budget}; balance {} sat; may {}; {state}",
        app["client"].as_str().unwrap_or_default(),
        app["name"].as_str().unwrap_or_default(),
        msat("balance_msat").unwrap_or(0),
        permissions.join(","),
    )
}
