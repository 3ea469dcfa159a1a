//! `moip apps`: the NWC apps of a running `moip up` — funding an app's own account from the
//! community's free collateral — through its API, as the operator (the token in `api.token`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

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

/// `POST path` with a JSON body to the API as the operator: the status and the JSON answer.
fn post(api: &str, token: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let Some(rest) = api.trim_end_matches('/').strip_prefix("http://") else {
        bail!("the API must be given as http://host:port (use the dashboard over HTTPS)");
    };
    let host = rest.split('/').next().unwrap_or(rest);
    let mut stream =
        TcpStream::connect(host).with_context(|| format!("connecting to the API at {host}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.to_string();
    // HTTP/1.0: the answer ends with the connection, never chunked.
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the API's answer has no status")?;
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    Ok((status, body))
}

pub(crate) fn run(args: AppsArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.unwrap_or_else(crate::default_data_dir);
    let token_file = dir.join("api.token");
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("reading the operator token {}", token_file.display()))?;
    let token = token.trim();
    let AppsCommand::Fund { client, sats } = args.command;
    if client.len() != 64 || !client.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("an app's client key is 64 hex digits");
    }
    let (status, body) = post(
        &args.api,
        token,
        &format!("/api/pairing/nwc/{client}/fund"),
        &json!({ "sats": sats }),
    )?;
    if status != 200 {
        let why = body["error"]
            .as_str()
            .map_or(body.to_string(), str::to_owned);
        bail!("the API refused ({status}): {why}");
    }
    println!(
        "app {client}: {} msat; collateral {} sat",
        body["balance_msat"], body["collateral"]
    );
    Ok(())
}
