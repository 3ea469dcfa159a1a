//! `moip verify-supply` as its own process against the embedded chain's Electrum server: a
//! commitment covered by the guardians' collateral passes, one beyond it fails with the
//! figures, and a transaction that is no commitment is refused with the reason.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bip39::Mnemonic;
use bitcoin::{Amount, FeeRate, Network, Txid};
use moip_assets::commitment::SupplyCommitment;
use moip_assets::ledger::{
    AccountId, CollateralSource, Ledger, MemoryJournal, TokenInfo, TokenLedger,
};
use moip_assets::reserves::commit_supply;
use moip_testenv::Regtest;
use moip_testkit::wait_until;
use moip_wallet::collateral::collateral_key;
use moip_wallet::{CollateralPolicy, Fee, KdfParams, Keys, MoipWallet, Server, Trust, WalletKind};

const WAIT: Duration = Duration::from_secs(60);

fn mnemonic(byte: u8) -> Mnemonic {
    Mnemonic::from_entropy(&[byte; 16]).expect("entropy")
}

fn verify(env: &Regtest, dir: &std::path::Path, descriptor: &str, txid: Txid) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moip"))
        .args(["verify-supply", "--network", "regtest", "--server"])
        .arg(env.electrum_url())
        .arg("--collateral")
        .arg(descriptor)
        .arg("--commitment")
        .arg(txid.to_string())
        .arg("--data-dir")
        .arg(dir.join("verify"))
        .env("MOIP_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run moip verify-supply")
}

#[test]
fn verify_supply_passes_fails_and_refuses_from_the_command_line() {
    let env = Regtest::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::new(env.electrum_url(), Trust::Community);
    let key = |b: u8| {
        collateral_key(&mnemonic(b), "", Network::Regtest)
            .expect("key")
            .0
            .to_string()
    };
    let policy = CollateralPolicy {
        threshold: 2,
        guardians: vec![key(61), key(62), key(63)],
        recovery: key(64),
        recovery_blocks: 144,
    };
    let descriptor = policy.descriptor().expect("descriptor");
    let wallet = |name: &str, kind: WalletKind, byte: u8| {
        MoipWallet::create(
            &dir.path().join(name),
            Network::Regtest,
            kind,
            Keys::Seed {
                mnemonic: mnemonic(byte),
                passphrase: String::new(),
                password: "pw".into(),
            },
            server.clone(),
            KdfParams::INSECURE_FAST,
        )
        .expect("wallet")
    };
    let mut guardian = wallet("guardian", WalletKind::Collateral { policy }, 61);
    let mut ops = wallet("ops", WalletKind::Bip86, 70);
    let deposit = env.send_to(
        &guardian.receive().expect("address").address,
        Amount::from_sat(300_000),
    );
    env.send_to(
        &ops.receive().expect("address").address,
        Amount::from_sat(100_000),
    );
    env.mine_burn(1);
    wait_until(WAIT, "funds", || {
        ops.sync().expect("sync");
        guardian.sync().expect("sync");
        (ops.balance().confirmed > Amount::ZERO
            && guardian.balance().confirmed == Amount::from_sat(300_000))
        .then_some(())
    });

    let mut ledger = Ledger::create(
        MemoryJournal::default(),
        TokenInfo {
            id: "bakery".into(),
            name: "Bakery hours".into(),
            symbol: "BKH".into(),
        },
    )
    .expect("ledger");
    let coin = guardian
        .coins()
        .into_iter()
        .find(|c| c.outpoint.txid == deposit)
        .expect("the deposit");
    ledger
        .deposit(
            300_000,
            CollateralSource::OnChain {
                outpoint: coin.outpoint.to_string(),
            },
        )
        .expect("deposit");
    ledger
        .mint(&AccountId::from_bytes([1; 32]), 250_000)
        .expect("mint");
    let rate = Fee::Rate(FeeRate::from_sat_per_vb(2).expect("rate"));
    let covered = commit_supply(&mut ops, &ledger.supply_root().into(), rate).expect("commit");
    env.mine_burn(1);
    let out = wait_until(WAIT, "a passing check", || {
        let out = verify(&env, dir.path(), &descriptor, covered);
        out.status.success().then_some(out)
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("supply:      250000 tokens"), "{stdout}");
    assert!(stdout.contains("collateral:  300000 sat"), "{stdout}");
    assert!(stdout.contains("covered:     yes"), "{stdout}");

    // 400 000 committed against 300 000: the check fails, saying so.
    let over = SupplyCommitment {
        root: ledger.supply_root().hash,
        sum: 400_000,
    };
    let uncovered = commit_supply(&mut ops, &over, rate).expect("commit");
    env.mine_burn(1);
    let out = wait_until(WAIT, "a failing check", || {
        let out = verify(&env, dir.path(), &descriptor, uncovered);
        String::from_utf8_lossy(&out.stderr)
            .contains("NOT COVERED")
            .then_some(out)
    });
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("400000 tokens committed against 300000 sat")
    );

    // The deposit is no commitment.
    let out = verify(&env, dir.path(), &descriptor, deposit);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("carries no supply commitment"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
