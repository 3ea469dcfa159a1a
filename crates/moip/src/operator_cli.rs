//! The operator's side of a running `moip up`'s API, for the CLI commands that drive it
//! (`moip apps`, `moip beacons`): the token from `api.token`, one request per call over plain
//! HTTP (loopback), the API's refusal as an error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

/// The API of a running `moip up`, called as its operator.
pub(crate) struct Operator {
    api: String,
    token: String,
}

impl Operator {
    /// The API at `api`, with the operator token of the data directory `data_dir` (default
    /// ~/.moip).
    pub(crate) fn new(api: String, data_dir: Option<PathBuf>) -> anyhow::Result<Operator> {
        let dir = data_dir.unwrap_or_else(crate::default_data_dir);
        let token_file = dir.join("api.token");
        let token = std::fs::read_to_string(&token_file)
            .with_context(|| format!("reading the operator token {}", token_file.display()))?;
        Ok(Operator {
            api,
            token: token.trim().to_owned(),
        })
    }

    /// `method path` with an optional JSON body: the JSON answer, or the API's refusal (its
    /// status and reason) as an error.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let Some(rest) = self.api.trim_end_matches('/').strip_prefix("http://") else {
            bail!("the API must be given as http://host:port (use the dashboard over HTTPS)");
        };
        let host = rest.split('/').next().unwrap_or(rest);
        let mut stream =
            TcpStream::connect(host).with_context(|| format!("connecting to the API at {host}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let (kind, body) = match body {
            Some(body) => ("Content-Type: application/json\r\n", body.to_string()),
            None => ("", String::new()),
        };
        // HTTP/1.0: the answer ends with the connection, never chunked.
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
             {kind}Content-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("the API's answer has no status")?;
        let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
        if status != 200 {
            let why = body["error"]
                .as_str()
                .map_or(body.to_string(), str::to_owned);
            bail!("the API refused ({status}): {why}");
        }
        Ok(body)
    }
}
