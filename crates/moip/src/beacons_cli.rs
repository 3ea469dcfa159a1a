//! `moip beacons`: the Moneysocket beacons a running `moip up` has handed out — listed with
//! their budgets, and revoked — through its API, as the operator (the token in `api.token`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;

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
    /// Every beacon: id, limit, spent, reserved (sat), and whether it was revoked
    List,
    /// Revokes a beacon: it spends nothing more and is no longer served
    Revoke {
        /// The beacon's id, as `list` shows it
        id: String,
    },
}

/// One request to the API as the operator: the status and the JSON body.
fn call(api: &str, token: &str, method: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let Some(rest) = api.trim_end_matches('/').strip_prefix("http://") else {
        bail!("the API must be given as http://host:port (use the dashboard over HTTPS)");
    };
    let host = rest.split('/').next().unwrap_or(rest);
    let mut stream =
        TcpStream::connect(host).with_context(|| format!("connecting to the API at {host}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    // HTTP/1.0: the answer ends with the connection, never chunked.
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 0\r\n\r\n"
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

fn sat(msat: &Value) -> String {
    msat.as_u64()
        .map_or_else(|| "none".to_owned(), |m| (m / 1_000).to_string())
}

fn line(beacon: &Value) -> String {
    format!(
        "{}  limit {}  spent {}  reserved {}  {}",
        beacon["id"].as_str().unwrap_or("?"),
        sat(&beacon["limit_msat"]),
        sat(&beacon["spent_msat"]),
        sat(&beacon["reserved_msat"]),
        if beacon["revoked_at"].is_null() {
            "in service"
        } else {
            "revoked"
        }
    )
}

pub(crate) fn run(args: BeaconsArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.unwrap_or_else(crate::default_data_dir);
    let token_file = dir.join("api.token");
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("reading the operator token {}", token_file.display()))?;
    let token = token.trim();
    if let BeaconsCommand::Revoke { id } = &args.command {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("a beacon's id is hex digits, as `moip beacons list` shows it");
        }
    }
    let (status, body) = match &args.command {
        BeaconsCommand::List => call(&args.api, token, "GET", "/api/pairing/beacons")?,
        BeaconsCommand::Revoke { id } => call(
            &args.api,
            token,
            "DELETE",
            &format!("/api/pairing/beacons/{id}"),
        )?,
    };
    if status != 200 {
        let why = body["error"]
            .as_str()
            .map_or(body.to_string(), str::to_owned);
        bail!("the API refused ({status}): {why}");
    }
    match args.command {
        BeaconsCommand::List => {
            for beacon in body.as_array().map(Vec::as_slice).unwrap_or_default() {
                println!("{}", line(beacon));
            }
        }
        BeaconsCommand::Revoke { .. } => println!("{}", line(&body)),
    }
    Ok(())
}
