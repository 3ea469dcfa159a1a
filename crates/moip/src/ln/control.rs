//! The control socket of `moip ln run`.
//!
//! ldk-node holds its data directory for itself, so while `moip ln run` is up the other
//! commands cannot start a second node there. Instead `run` listens on a Unix socket in the data
//! directory and carries the commands out for them, on the node that is already running.
//!
//! The socket file is made readable and writable by its owner only, inside the node's
//! directory: whoever can connect to it could as well read the seed file and the database, so
//! it asks for no password of its own.
//!
//! One request per connection, one JSON line each way: the request is the subcommand, the reply
//! `{"output": "…", "error": null | "…"}`. Requests are bounded in size and in the time a client
//! may take to send them, and at most [`MAX_CLIENTS`] commands run at once.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde::{Deserialize, Serialize};

use super::{Ctx, LnCommand};

/// The socket's file name in the node's data directory.
pub(super) const SOCKET: &str = "control.sock";

/// A command is a few hundred bytes; an invoice or offer in it a few thousand.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// The payment history of a busy node can be long.
const MAX_REPLY_BYTES: u64 = 64 * 1024 * 1024;
/// Commands carried out at once; more connections are told to retry.
const MAX_CLIENTS: usize = 16;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client waits for the reply: payments and closes wait up to a minute for their
/// outcome and for peers, after syncing.
const REPLY_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Serialize, Deserialize, Debug)]
struct Reply {
    /// What the command printed.
    output: String,
    /// Why it failed, if it did.
    error: Option<String>,
}

impl Reply {
    fn error(message: impl Into<String>) -> Reply {
        Reply {
            output: String::new(),
            error: Some(message.into()),
        }
    }
}

/// Whether a running node answers on `path`.
pub(super) fn is_live(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}

/// Removes the socket file (on shutdown, or one left behind by a node that crashed).
pub(super) fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Listens on `path` and carries out each request on the running node of `ctx`, on threads
/// of its own, until the process exits.
pub(super) fn serve(path: &Path, ctx: Arc<Ctx>) -> io::Result<()> {
    if path.exists() && !is_live(path) {
        remove(path);
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let running = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("ln-control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if running.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                    running.fetch_sub(1, Ordering::SeqCst);
                    let _ = write_reply(&stream, &Reply::error("the node is busy; try again"));
                    continue;
                }
                let (ctx, done) = (Arc::clone(&ctx), Arc::clone(&running));
                let spawned =
                    std::thread::Builder::new()
                        .name("ln-command".into())
                        .spawn(move || {
                            handle(&stream, &ctx);
                            done.fetch_sub(1, Ordering::SeqCst);
                        });
                if spawned.is_err() {
                    // The closure (and its stream) is dropped: the client sees no reply, and
                    // the slot it took is free again.
                    running.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })?;
    Ok(())
}

fn handle(stream: &UnixStream, ctx: &Ctx) {
    let reply = match read_request(stream) {
        Err(message) => Reply::error(message),
        Ok(command) => {
            let mut output = String::new();
            let error = super::command(ctx, command, &mut output)
                .err()
                .map(|e| format!("{e:#}"));
            Reply { output, error }
        }
    };
    let _ = write_reply(stream, &reply);
}

fn read_request(stream: &UnixStream) -> Result<LnCommand, String> {
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream.take(MAX_REQUEST_BYTES))
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the request: {e}"))?;
    if !line.ends_with('\n') {
        return Err(format!(
            "the request is incomplete or longer than {MAX_REQUEST_BYTES} bytes"
        ));
    }
    serde_json::from_str(&line).map_err(|e| format!("malformed request: {e}"))
}

fn write_reply(mut stream: &UnixStream, reply: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_string(reply).map_err(io::Error::other)?;
    line.push('\n');
    stream.write_all(line.as_bytes())
}

/// Hands `command` to the node running on `path`. `Ok(None)` when no node runs there; the
/// command's output when it succeeded.
///
/// # Errors
/// The command's own error, or a broken exchange with the running node.
pub(super) fn forward(path: &Path, command: &LnCommand) -> anyhow::Result<Option<String>> {
    let Ok(mut stream) = UnixStream::connect(path) else {
        return Ok(None);
    };
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    let mut request = serde_json::to_string(command)?;
    request.push('\n');
    stream
        .write_all(request.as_bytes())
        .context("sending the command to the running node")?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REPLY_BYTES))
        .read_line(&mut line)
        .context("waiting for the running node's reply")?;
    if line.is_empty() {
        return Err(anyhow!(
            "the running node closed the connection without a reply"
        ));
    }
    let reply: Reply =
        serde_json::from_str(&line).context("malformed reply from the running node")?;
    match reply.error {
        None => Ok(Some(reply.output)),
        Some(error) => {
            print!("{}", reply.output);
            Err(anyhow!(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_cross_the_socket_as_json() {
        let command = LnCommand::Close {
            user_channel_id: u128::MAX,
            force: true,
        };
        let json = serde_json::to_string(&command).expect("encode");
        let back: LnCommand = serde_json::from_str(&json).expect("decode");
        assert!(matches!(
            back,
            LnCommand::Close {
                user_channel_id: u128::MAX,
                force: true
            }
        ));
    }

    #[test]
    fn bad_requests_get_an_error_reply() {
        for bad in [&b"{\"Nope\":1}\n"[..], b"not json\n", b"{\"Pay\":", b""] {
            let (mut client, server) = UnixStream::pair().expect("pair");
            client.write_all(bad).expect("write");
            client
                .shutdown(std::net::Shutdown::Write)
                .expect("shutdown");
            let err = read_request(&server).expect_err("refused");
            assert!(
                err.contains("malformed") || err.contains("incomplete"),
                "{err}"
            );
        }
        let (mut client, server) = UnixStream::pair().expect("pair");
        let long = vec![b'x'; MAX_REQUEST_BYTES as usize + 10];
        let writer = std::thread::spawn(move || {
            let _ = client.write_all(&long);
        });
        let err = read_request(&server).expect_err("too long");
        assert!(err.contains("longer than"), "{err}");
        drop(server);
        writer.join().expect("writer");
    }
}
