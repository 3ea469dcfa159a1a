//! Helpers for tests that run the real `moip` binary as a separate process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// A `moip node` process on a free loopback port.
pub struct NodeProcess {
    pub child: Child,
    pub url: String,
    pub user: String,
    pub password: String,
    pub data_dir: PathBuf,
    agent: ureq::Agent,
}

impl NodeProcess {
    /// Starts `moip node` in `data_dir` and waits for it to print its RPC address.
    pub fn start(data_dir: &Path) -> NodeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_moip"))
            .args(["node", "--rpc-port", "0", "--data-dir"])
            .arg(data_dir)
            .env("MOIP_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn moip node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut url = None;
        let mut cookie = None;
        while url.is_none() || cookie.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("moip node printed its endpoints");
            if let Some(u) = line.strip_prefix("RPC and REST: ") {
                url = Some(u.to_owned());
            }
            if let Some(c) = line.strip_prefix("cookie: ") {
                cookie = Some(PathBuf::from(c));
            }
        }
        let text = std::fs::read_to_string(cookie.expect("cookie")).expect("read cookie");
        let (user, password) = text.trim().split_once(':').expect("user:password");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        NodeProcess {
            child,
            url: url.expect("url"),
            user: user.to_owned(),
            password: password.to_owned(),
            data_dir: data_dir.to_owned(),
            agent,
        }
    }

    /// `host:port` of the RPC server.
    pub fn host_port(&self) -> (String, u16) {
        let rest = self.url.trim_start_matches("http://");
        let (host, port) = rest.rsplit_once(':').expect("host:port");
        (host.to_owned(), port.parse().expect("port"))
    }

    pub fn try_call(&self, method: &str, params: Value) -> Result<Value, ChainCallError> {
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.user, self.password));
        let body =
            json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": params}).to_string();
        let mut resp = self
            .agent
            .post(&self.url)
            .header("Authorization", &format!("Basic {auth}"))
            .send(body)
            .map_err(|e| ChainCallError::Transport(e.to_string()))?;
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| ChainCallError::Transport(e.to_string()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|_| ChainCallError::Transport(text.clone()))?;
        match v.get("error") {
            Some(e) if !e.is_null() => Err(ChainCallError::Rpc(
                e["code"].as_i64().unwrap_or(0),
                e["message"].to_string(),
            )),
            _ => Ok(v["result"].clone()),
        }
    }

    pub fn call(&self, method: &str, params: Value) -> Value {
        self.try_call(method, params.clone())
            .unwrap_or_else(|e| panic!("{method} {params}: {e:?}"))
    }

    pub fn height(&self) -> u64 {
        self.call("getblockcount", json!([]))
            .as_u64()
            .expect("height")
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
    }

    /// Clean stop over RPC, waiting for the process to exit.
    pub fn stop(mut self) {
        self.call("stop", json!([]));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "moip node exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "moip node did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub enum ChainCallError {
    Transport(String),
    Rpc(i64, String),
}

/// Polls with backoff until `check` yields, panicking after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(20);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// A regtest address owned by nobody in particular (mining rewards go there).
pub const BURN_ADDRESS: &str = "bcrt1qq2yshcmzdlznnpxx258xswqlmqcxjs4dssfxt2";

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
