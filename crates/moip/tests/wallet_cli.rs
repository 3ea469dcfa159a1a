//! `moip wallet` across processes: three guardians' wallets in three directories spend their
//! 2-of-3 collateral by passing PSBT files, and nothing is broadcast without a yes.

use std::path::Path;
use std::process::{Command, Output};

use bitcoin::{Amount, Txid};
use moip_testenv::{wait_until, Regtest};
use std::time::Duration;

const PASSWORD: &str = "guardian password";

/// A fixed mnemonic per byte (the CLI reads it from the environment).
fn words(byte: u8) -> String {
    bip39::Mnemonic::from_entropy(&[byte; 16])
        .expect("entropy")
        .to_string()
}

/// Runs `moip wallet <args>` as its own process.
fn moip(args: &[&str], mnemonic: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moip"));
    cmd.arg("wallet")
        .args(args)
        .env("MOIP_WALLET_PASSWORD", PASSWORD)
        .env_remove("MOIP_WALLET_MNEMONIC")
        .env("MOIP_LOG", "warn")
        .stdin(std::process::Stdio::null());
    if let Some(m) = mnemonic {
        cmd.env("MOIP_WALLET_MNEMONIC", m);
    }
    cmd.output().expect("run moip")
}

fn ok(args: &[&str], mnemonic: Option<&str>) -> String {
    let out = moip(args, mnemonic);
    assert!(
        out.status.success(),
        "moip wallet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn dir_arg(dir: &Path) -> String {
    dir.to_string_lossy().into_owned()
}

#[test]
fn two_of_three_collateral_spend_through_psbt_files() {
    let env = Regtest::new();
    let url = env.electrum_url();
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = |byte: u8| ok(&["key"], Some(&words(byte))).trim().to_owned();
    let (k1, k2, k3, kr) = (key(21), key(22), key(23), key(24));
    assert_ne!(k1, k2);

    let guardians: Vec<_> = [21u8, 22, 23]
        .iter()
        .map(|&byte| {
            let dir = tmp.path().join(format!("g{byte}"));
            ok(
                &[
                    "create",
                    "--dir",
                    &dir_arg(&dir),
                    "--restore",
                    "--server",
                    &url,
                    "--guardian",
                    &k1,
                    "--guardian",
                    &k2,
                    "--guardian",
                    &k3,
                    "--threshold",
                    "2",
                    "--recovery",
                    &kr,
                    "--recovery-blocks",
                    "144",
                ],
                Some(&words(byte)),
            );
            dir
        })
        .collect();
    let [g1, g2, g3] = [&guardians[0], &guardians[1], &guardians[2]].map(|d| dir_arg(d));
    // The seed is sealed: its words are not in any file of the wallet.
    let seed = std::fs::read(guardians[0].join("seed")).expect("seed file");
    assert!(!String::from_utf8_lossy(&seed).contains(words(21).split(' ').next().expect("w")));

    let deposit = ok(&["receive", "--dir", &g1, "--no-qr"], None);
    let deposit = deposit.lines().next().expect("address").to_owned();
    let address = moip_wallet::parse_address(&deposit, bitcoin::Network::Regtest).expect("ok");
    env.send_to(&address, Amount::from_sat(4_000_000));
    env.mine_burn(1);
    for g in [&g1, &g2, &g3] {
        ok(&["sync", "--dir", g], None);
    }
    let balance = ok(&["balance", "--dir", &g1], None);
    assert!(
        balance.contains("confirmed          0.04000000 BTC"),
        "{balance}"
    );

    // g1 proposes (watch-only: no password asked), g2 and g3 sign in their own processes.
    let file = |name: &str| dir_arg(&tmp.path().join(name));
    let payee = env.burn_address().to_string();
    ok(
        &[
            "psbt",
            "create",
            "--dir",
            &g1,
            "--to",
            &payee,
            "--amount",
            "1500000",
            "--fee-rate",
            "2",
            "--out",
            &file("proposal.psbt"),
        ],
        None,
    );
    ok(
        &[
            "psbt",
            "sign",
            "--dir",
            &g2,
            "--in",
            &file("proposal.psbt"),
            "--out",
            &file("g2.psbt"),
        ],
        None,
    );
    ok(
        &[
            "psbt",
            "sign",
            "--dir",
            &g3,
            "--in",
            &file("proposal.psbt"),
            "--out",
            &file("g3.psbt"),
        ],
        None,
    );
    // One signature is not enough to finalize.
    let early = moip(
        &[
            "psbt",
            "finalize",
            "--dir",
            &g1,
            "--in",
            &file("g2.psbt"),
            "--out",
            &file("x.psbt"),
        ],
        None,
    );
    assert!(!early.status.success());
    ok(
        &[
            "psbt",
            "combine",
            &file("g2.psbt"),
            &file("g3.psbt"),
            "--out",
            &file("both.psbt"),
        ],
        None,
    );
    ok(
        &[
            "psbt",
            "finalize",
            "--dir",
            &g1,
            "--in",
            &file("both.psbt"),
            "--out",
            &file("final.psbt"),
        ],
        None,
    );

    // Without a yes (and no terminal to ask on), nothing is broadcast.
    let refused = moip(
        &[
            "psbt",
            "broadcast",
            "--dir",
            &g1,
            "--in",
            &file("final.psbt"),
        ],
        None,
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not broadcast"));
    let final_tx =
        moip_wallet::psbt_from_base64(&std::fs::read_to_string(file("final.psbt")).expect("read"))
            .expect("psbt")
            .extract_tx()
            .expect("tx");
    let mempool = env.node.mempool_txids();
    assert!(
        !mempool.contains(&final_tx.compute_txid()),
        "broadcast without a yes"
    );

    let txid: Txid = ok(
        &[
            "psbt",
            "broadcast",
            "--dir",
            &g1,
            "--in",
            &file("final.psbt"),
            "--yes",
        ],
        None,
    )
    .trim()
    .parse()
    .expect("txid");
    assert_eq!(txid, final_tx.compute_txid());
    env.mine_burn(1);
    wait_until(Duration::from_secs(60), "the spend in g3's history", || {
        ok(&["sync", "--dir", &g3], None);
        let history = ok(&["history", "--dir", &g3], None);
        history
            .lines()
            .any(|l| l.starts_with(&txid.to_string()) && l.contains("height"))
            .then_some(())
    });

    // A mainnet address is refused with the reason, before anything is signed.
    let wrong = moip(
        &[
            "send",
            "--dir",
            &g2,
            "--to",
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            "--amount",
            "10000",
            "--fee-rate",
            "1",
            "--yes",
        ],
        None,
    );
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("not a valid address for regtest"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
}
