//! Attack 9 of issue 21: the web dashboard and the HTTP API of `moip up`, attacked over HTTP
//! against the real binary. The data directory and the operator's token are the owner's alone
//! whatever the umask.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::NodeProcess;

const WAIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "correct horse";

/// A running `moip up`, with its dashboard's address and its operator token.
struct Up {
    node: NodeProcess,
    base: String,
    data: PathBuf,
    token: String,
}

/// `moip up` in `dir/node` on loopback (every port free, no mining), started by a shell that
/// first sets `umask`, so files are made as the operator's shell would make them.
fn up_with_umask(dir: &Path, umask: &str) -> Up {
    let config = dir.join("moip.toml");
    std::fs::write(
        &config,
        "mine_every_secs = 0\n[ports]\nrpc = 0\nelectrum_tcp = 0\nelectrum_ws = 0\n\
         electrum_ssl = 0\nelectrum_wss = 0\nlightning = 0\nmoneysocket = 0\nnostr = 0\napi = 0\n",
    )
    .expect("settings");
    let data = dir.join("node");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_moip"))
        .args(["up", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .env("MOIP_PASSWORD", PASSWORD);
    let (node, lines) = NodeProcess::spawn_command(command, &data, &["  dashboard: "]);
    let base = lines[0].trim_end_matches('/').to_owned();
    let token = std::fs::read_to_string(data.join("api.token"))
        .expect("the operator's token")
        .trim()
        .to_owned();
    Up {
        node,
        base,
        data,
        token,
    }
}

/// `moip up` as an operator with the usual umask starts it.
fn start(dir: &Path) -> Up {
    up_with_umask(dir, "022")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(WAIT))
        .build()
        .into()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Under a umask that hides nothing (000), a fresh data directory is still 0700 and the
/// operator's token 0600 (made so, never written first and narrowed after), as are the
/// state documents and local users' directory; a directory and token left open by an older
/// node are tightened on the next start.
#[cfg(unix)]
#[test]
fn the_data_directory_and_its_secrets_are_the_owner_s_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let up = up_with_umask(dir.path(), "000");
    let agent = agent();
    assert_eq!(mode(&up.data), 0o700, "the data directory");
    assert_eq!(
        mode(&up.data.join("api.token")),
        0o600,
        "the operator's token"
    );
    // A local user's key is sealed in `users/`; an app's NWC secret lands in a state document.
    let login = agent
        .post(format!("{}/login", up.base))
        .content_type("application/x-www-form-urlencoded")
        .send("name=ana&password=ana-password")
        .expect("login");
    assert_eq!(login.status().as_u16(), 303, "a local user logs in");
    assert_eq!(mode(&up.data.join("users")), 0o700, "local users' keys");
    assert_eq!(mode(&up.data.join("users/ana.seed")), 0o600);
    let paired = agent
        .post(format!("{}/api/pairing/nwc", up.base))
        .header("Authorization", &format!("Bearer {}", up.token))
        .send(r#"{"name":"phone"}"#)
        .expect("pair");
    assert_eq!(paired.status().as_u16(), 200);
    assert_eq!(mode(&up.data.join("nwc-connections.json")), 0o600);
    let data = up.data.clone();
    up.node.stop();

    // An older node left them open: the next start closes them.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let token = data.join("api.token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let up = start(dir.path());
    assert_eq!(mode(&up.data), 0o700, "the data directory, tightened");
    assert_eq!(mode(&token), 0o600, "the operator's token, tightened");
    up.node.stop();
}
