//! Helpers for tests that run the real `moip` binary as a separate process.
#![allow(dead_code)]

pub mod payer;
pub mod webdriver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
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
        let args = [
            "node".to_owned(),
            "--rpc-port".into(),
            "0".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        Self::spawn(&args, data_dir, &[]).0
    }

    /// Runs `moip` with `args` and waits until it has printed the node's RPC address and every
    /// line starting with one of `wanted`; returns those lines' values too.
    pub fn spawn(args: &[String], data_dir: &Path, wanted: &[&str]) -> (NodeProcess, Vec<String>) {
        Self::spawn_with_env(args, &[], data_dir, wanted)
    }

    /// [`NodeProcess::spawn`] with extra environment variables.
    pub fn spawn_with_env(
        args: &[String],
        envs: &[(&str, &str)],
        data_dir: &Path,
        wanted: &[&str],
    ) -> (NodeProcess, Vec<String>) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_moip"));
        command.args(args).envs(envs.iter().copied());
        Self::spawn_command(command, data_dir, wanted)
    }

    /// [`NodeProcess::spawn`] of a command already made (another program may start `moip`,
    /// say a shell that sets the umask first).
    pub fn spawn_command(
        mut command: Command,
        data_dir: &Path,
        wanted: &[&str],
    ) -> (NodeProcess, Vec<String>) {
        let mut child = command
            .env("MOIP_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn moip");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut url = None;
        let mut cookie = None;
        let mut found: Vec<Option<String>> = vec![None; wanted.len()];
        while url.is_none() || cookie.is_none() || found.iter().any(Option::is_none) {
            let line = rx
                .recv_timeout(Duration::from_secs(120))
                .expect("moip printed its endpoints");
            if let Some(u) = line.strip_prefix("RPC and REST: ") {
                url = Some(u.to_owned());
            }
            if let Some(c) = line.strip_prefix("cookie: ") {
                cookie = Some(PathBuf::from(c));
            }
            for (i, prefix) in wanted.iter().enumerate() {
                if let Some(v) = line.strip_prefix(prefix) {
                    found[i] = Some(v.to_owned());
                }
            }
        }
        let text = std::fs::read_to_string(cookie.expect("cookie")).expect("read cookie");
        let (user, password) = text.trim().split_once(':').expect("user:password");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        let node = NodeProcess {
            child,
            url: url.expect("url"),
            user: user.to_owned(),
            password: password.to_owned(),
            data_dir: data_dir.to_owned(),
            agent,
        };
        (node, found.into_iter().map(|v| v.expect("found")).collect())
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

pub use moip_testkit::wait_until;

/// The random source of a crash test: seeded from `MOIP_CRASH_SEED` when set, else at random,
/// and the seed printed so a failing run can be replayed.
pub fn crash_rng(test: &str) -> (rand::rngs::StdRng, u64) {
    use rand::SeedableRng;
    let seed: u64 = std::env::var("MOIP_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("{test}: MOIP_CRASH_SEED={seed}");
    (rand::rngs::StdRng::seed_from_u64(seed), seed)
}

/// A regtest address owned by nobody in particular (mining rewards go there).
pub const BURN_ADDRESS: &str = "bcrt1qq2yshcmzdlznnpxx258xswqlmqcxjs4dssfxt2";

/// A loopback port that was free a moment ago.
pub use moip_testkit::free_port;

/// `moip relay` on a free loopback port; returns the process and the `ws://` URL it printed.
pub fn spawn_relay() -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_moip"))
        .args(["relay", "--bind", "127.0.0.1:0", "--metrics-secs", "0"])
        .env("MOIP_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn moip relay");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let url = line
        .trim()
        .strip_prefix("relay listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, url)
}

/// A newline-delimited JSON-RPC client for Electrum servers (ours and ElectrumX).
pub struct ElectrumClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    id: u64,
}

impl ElectrumClient {
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.id += 1;
        let line = json!({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params})
            .to_string()
            + "\n";
        self.writer.write_all(line.as_bytes()).expect("write");
        loop {
            let mut reply = String::new();
            self.reader.read_line(&mut reply).expect("read");
            let v: Value = serde_json::from_str(&reply).expect("json line");
            if v.get("id") != Some(&json!(self.id)) {
                continue; // a notification
            }
            return match v.get("error") {
                Some(e) => Err(e.clone()),
                None => Ok(v["result"].clone()),
            };
        }
    }

    pub fn ok(&mut self, method: &str, params: Value) -> Value {
        self.call(method, params.clone())
            .unwrap_or_else(|e| panic!("{method} {params}: {e}"))
    }
}

impl ElectrumClient {
    /// Sends one batch of calls of `method` and returns the results in order (errors as `Err`).
    pub fn batch(&mut self, method: &str, params: &[Value]) -> Vec<Result<Value, Value>> {
        let first = self.id + 1;
        let calls: Vec<Value> = params
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"jsonrpc": "2.0", "id": first + i as u64, "method": method, "params": p}))
            .collect();
        self.id += params.len() as u64;
        let line = Value::Array(calls).to_string() + "\n";
        self.writer.write_all(line.as_bytes()).expect("write");
        loop {
            let mut reply = String::new();
            self.reader.read_line(&mut reply).expect("read");
            let v: Value = serde_json::from_str(&reply).expect("json line");
            let Some(items) = v.as_array() else { continue }; // a notification
            let mut out: Vec<Option<Result<Value, Value>>> = vec![None; params.len()];
            for item in items {
                let at = item["id"]
                    .as_u64()
                    .and_then(|id| id.checked_sub(first))
                    .map(|i| i as usize);
                if let Some(slot) = at.and_then(|i| out.get_mut(i)) {
                    *slot = Some(match item.get("error") {
                        Some(e) => Err(e.clone()),
                        None => Ok(item["result"].clone()),
                    });
                }
            }
            return out
                .into_iter()
                .map(|r| r.expect("every call answered"))
                .collect();
        }
    }

    /// Connects, negotiating `version`, retrying until the server listens.
    pub fn connect(addr: std::net::SocketAddr, version: &str, timeout: Duration) -> ElectrumClient {
        wait_until(timeout, "the Electrum server to listen", || {
            let stream = std::net::TcpStream::connect(addr).ok()?;
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .ok()?;
            let mut client = ElectrumClient {
                reader: BufReader::new(stream.try_clone().ok()?),
                writer: stream,
                id: 0,
            };
            client
                .call("server.version", json!(["moip-test", version]))
                .ok()?;
            Some(client)
        })
    }
}

/// The Electrum script hash of a script.
pub fn scripthash(script: &bitcoin::Script) -> String {
    use bitcoin::hashes::{sha256, Hash};
    let mut hash = sha256::Hash::hash(script.as_bytes()).to_byte_array();
    hash.reverse();
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// An ElectrumX 2.0 process over a node's RPC (testenv's launcher), with its database in a
/// temporary directory; both go on drop.
pub struct ElectrumX {
    process: moip_testenv::electrumx::ElectrumX,
    _db: tempfile::TempDir,
}

impl ElectrumX {
    pub fn start(node: &NodeProcess) -> ElectrumX {
        let db = tempfile::tempdir().expect("tempdir");
        let (host, rpc_port) = node.host_port();
        let daemon = format!("http://{}:{}@{host}:{rpc_port}/", node.user, node.password);
        let process = moip_testenv::electrumx::ElectrumX::spawn(&daemon, db.path())
            .expect("spawn electrumx_server");
        ElectrumX { process, _db: db }
    }

    pub fn connect(&self) -> ElectrumClient {
        ElectrumClient::connect(self.process.addr, "1.6", Duration::from_secs(120))
    }
}

/// Whether the server closed `stream` (reading gives EOF or a reset) before `deadline`.
pub fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// `moip up` in `dir/node` (returned with the node) on loopback, every port picked free and no
/// mining, with `extra` settings (top-level TOML lines); the lines starting with each of `wanted`
/// as [`NodeProcess::spawn`] gives them.
pub fn spawn_up(dir: &Path, extra: &str, wanted: &[&str]) -> (NodeProcess, Vec<String>, PathBuf) {
    let config = dir.join("moip.toml");
    std::fs::write(
        &config,
        format!(
            "mine_every_secs = 0\n{extra}[ports]\nrpc = 0\nelectrum_tcp = 0\nelectrum_ws = 0\n\
             electrum_ssl = 0\nelectrum_wss = 0\nlightning = 0\nmoneysocket = 0\nnostr = 0\n\
             api = 0\n"
        ),
    )
    .expect("settings");
    let data = dir.join("node");
    let args = [
        "up".to_owned(),
        "--config".into(),
        config.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    let (node, lines) =
        NodeProcess::spawn_with_env(&args, &[("MOIP_PASSWORD", "correct horse")], &data, wanted);
    (node, lines, data)
}

/// `host:port` of a printed `scheme://host:port[/]`, whatever follows it on the line.
pub fn addr(line: &str) -> std::net::SocketAddr {
    let rest = line.split_once("://").expect("a URL").1;
    let hostport = rest.split_whitespace().next().expect("an address");
    hostport
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}
