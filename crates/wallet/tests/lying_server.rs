//! A wallet pointed at a server that forges merkle proofs, or serves headers that do not
//! chain, refuses what it says: the sync fails with the lie named and nothing is applied.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use bitcoin::Amount;
use common::*;
use moip_wallet::verify::ServerLie;
use moip_wallet::{Server, Trust, WalletError, WalletKind};
use serde_json::Value;

/// A line proxy in front of the honest server that rewrites replies to `method`.
fn lying_proxy(upstream: SocketAddr, method: &'static str, forge: fn(&mut Value)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(upstream) else {
                return;
            };
            let methods: Arc<Mutex<HashMap<String, String>>> = Arc::default();
            // Client to server: remember each request's method by id.
            {
                let (mut to_server, from_client) = (
                    server.try_clone().expect("clone"),
                    client.try_clone().expect("clone"),
                );
                let methods = Arc::clone(&methods);
                std::thread::spawn(move || {
                    for line in BufReader::new(from_client).lines() {
                        let Ok(line) = line else { return };
                        if let Ok(v) = serde_json::from_str::<Value>(&line) {
                            let requests = match &v {
                                Value::Array(items) => items.clone(),
                                other => vec![other.clone()],
                            };
                            for r in requests {
                                if let (Some(id), Some(m)) = (r.get("id"), r["method"].as_str()) {
                                    methods
                                        .lock()
                                        .expect("lock")
                                        .insert(id.to_string(), m.to_owned());
                                }
                            }
                        }
                        if to_server.write_all(format!("{line}\n").as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
            // Server to client: forge the replies to `method`.
            std::thread::spawn(move || {
                let mut to_client = client;
                for line in BufReader::new(server).lines() {
                    let Ok(line) = line else { return };
                    let mut v: Value = serde_json::from_str(&line).expect("server JSON");
                    let methods = methods.lock().expect("lock");
                    let mut touch = |reply: &mut Value| {
                        let id = reply.get("id").map(|i| i.to_string()).unwrap_or_default();
                        if methods.get(&id).map(String::as_str) == Some(method)
                            && reply.get("result").is_some()
                        {
                            forge(&mut reply["result"]);
                        }
                    };
                    match &mut v {
                        Value::Array(items) => items.iter_mut().for_each(&mut touch),
                        other => touch(other),
                    }
                    drop(methods);
                    if to_client.write_all(format!("{v}\n").as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn funded_wallet_behind(
    env: &Regtest,
    dir: &std::path::Path,
    proxy: SocketAddr,
) -> moip_wallet::MoipWallet {
    let mut wallet = seed_wallet(env, dir, WalletKind::Bip86, 9);
    let address = wallet.receive().expect("address").address;
    env.send_to(&address, Amount::from_sat(250_000));
    env.mine_burn(1);
    wallet
        .set_server(Server::new(format!("tcp://{proxy}"), Trust::ThirdParty))
        .expect("server");
    wallet
}

#[test]
fn forged_merkle_proof_is_refused() {
    let env = Regtest::new();
    let proxy = lying_proxy(
        env.electrum_addr(),
        "blockchain.transaction.get_merkle",
        |r| {
            r["merkle"][0] = Value::String("11".repeat(32));
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wallet = funded_wallet_behind(&env, dir.path(), proxy);
    match wallet.sync() {
        Err(WalletError::ServerLied {
            lie: ServerLie::BadMerkleProof { .. },
            ..
        }) => {}
        other => panic!("expected a forged-proof error, got {other:?}"),
    }
    assert!(wallet.history().is_empty(), "a lie reached the wallet");
    assert_eq!(wallet.balance().total(), Amount::ZERO);

    // The honest server proves the same payment, and it is accepted.
    wallet.set_server(server(&env)).expect("server");
    wallet.sync().expect("honest sync");
    assert_eq!(wallet.balance().confirmed, Amount::from_sat(250_000));
}

#[test]
fn headers_that_do_not_chain_are_refused() {
    let env = Regtest::new();
    let proxy = lying_proxy(env.electrum_addr(), "blockchain.block.headers", |r| {
        // Change a byte of the second header's merkle root: its hash changes, so the third
        // header no longer links to it (or the second no longer meets its target).
        let hex = r["hex"].as_str().expect("hex").to_owned();
        if hex.len() >= 3 * 160 {
            let mut bytes: Vec<u8> = hex.into_bytes();
            let at = 160 + 2 * 40;
            bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
            r["hex"] = Value::String(String::from_utf8(bytes).expect("ascii"));
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wallet = funded_wallet_behind(&env, dir.path(), proxy);
    match wallet.sync() {
        Err(WalletError::ServerLied { lie, .. }) => assert!(
            matches!(
                lie,
                ServerLie::HeadersDoNotChain { .. } | ServerLie::BadProofOfWork { .. }
            ),
            "{lie:?}"
        ),
        other => panic!("expected a broken-chain error, got {other:?}"),
    }
    assert!(wallet.history().is_empty());
}
