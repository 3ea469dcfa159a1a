//! The supply commitment on the embedded regtest chain, checked through moip's Electrum server:
//! collateral deposited to the guardians' 2-of-3 taproot multisig, tokens minted against it,
//! the ledger's root committed from the community's wallet, and `verify_supply` — from the
//! chain alone — finding the commitment confirmed and covered, a holder's balance proven
//! against the committed root; a ledger that minted beyond its on-chain collateral caught; a
//! transaction that is no commitment, and one not yet confirmed, refused.

use std::time::Duration;

use bip39::Mnemonic;
use bitcoin::{Amount, FeeRate, Network};
use moip_assets::commitment::{CommitmentError, SupplyCommitment};
use moip_assets::ledger::{
    AccountId, CollateralSource, Ledger, SqliteJournal, TokenInfo, TokenLedger,
};
use moip_assets::reserves::{commit_supply, verify_supply, ReservesError};
use moip_testenv::Regtest;
use moip_testkit::wait_until;
use moip_wallet::collateral::collateral_key;
use moip_wallet::{CollateralPolicy, Fee, KdfParams, Keys, MoipWallet, Server, Trust, WalletKind};

const WAIT: Duration = Duration::from_secs(60);

fn mnemonic(byte: u8) -> Mnemonic {
    Mnemonic::from_entropy(&[byte; 16]).expect("entropy")
}

fn key(byte: u8) -> String {
    collateral_key(&mnemonic(byte), "", Network::Regtest)
        .expect("key")
        .0
        .to_string()
}

#[test]
fn committed_supply_is_verified_against_collateral_from_the_chain() {
    let env = Regtest::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::new(env.electrum_url(), Trust::Community);
    let policy = CollateralPolicy {
        threshold: 2,
        guardians: vec![key(21), key(22), key(23)],
        recovery: key(24),
        recovery_blocks: 144,
    };
    let descriptor = policy.descriptor().expect("descriptor");
    let mut guardian = MoipWallet::create(
        &dir.path().join("guardian"),
        Network::Regtest,
        WalletKind::Collateral {
            policy: policy.clone(),
        },
        Keys::Seed {
            mnemonic: mnemonic(21),
            passphrase: String::new(),
            password: "pw".into(),
        },
        server.clone(),
        KdfParams::INSECURE_FAST,
    )
    .expect("guardian wallet");
    let mut ops = MoipWallet::create(
        &dir.path().join("ops"),
        Network::Regtest,
        WalletKind::Bip86,
        Keys::Seed {
            mnemonic: mnemonic(30),
            passphrase: String::new(),
            password: "pw".into(),
        },
        server.clone(),
        KdfParams::INSECURE_FAST,
    )
    .expect("ops wallet");

    // An employer deposits 1 M sat of collateral on chain; the community wallet gets fee money.
    let deposit_address = guardian.receive().expect("address").address;
    let deposit = env.send_to(&deposit_address, Amount::from_sat(1_000_000));
    let ops_address = ops.receive().expect("address").address;
    env.send_to(&ops_address, Amount::from_sat(200_000));
    env.mine_burn(1);

    let token = TokenInfo {
        id: "bakery".into(),
        name: "Bakery hours".into(),
        symbol: "BKH".into(),
    };
    let mut ledger = Ledger::create(
        SqliteJournal::open(&dir.path().join("ledger.sqlite")).expect("journal"),
        token,
    )
    .expect("ledger");
    let vout = {
        wait_until(WAIT, "the deposit", || {
            guardian.sync().expect("sync");
            (guardian.balance().confirmed == Amount::from_sat(1_000_000)).then_some(())
        });
        guardian
            .coins()
            .into_iter()
            .find(|c| c.outpoint.txid == deposit)
            .expect("the deposit coin")
            .outpoint
            .vout
    };
    ledger
        .deposit(
            1_000_000,
            CollateralSource::OnChain {
                outpoint: format!("{deposit}:{vout}"),
            },
        )
        .expect("collateral");
    let (employer, worker) = (
        AccountId::from_bytes([1; 32]),
        AccountId::from_bytes([2; 32]),
    );
    ledger.mint(&employer, 600_000).expect("mint");
    ledger
        .transfer(&employer, &worker, 250_000)
        .expect("pay the worker");

    // Commit the root from the community wallet; before it confirms, it does not count.
    wait_until(WAIT, "the fee money", || {
        ops.sync().expect("sync");
        (ops.balance().confirmed > Amount::ZERO).then_some(())
    });
    let committed = SupplyCommitment::from(ledger.supply_root());
    let rate = Fee::Rate(FeeRate::from_sat_per_vb(2).expect("rate"));
    let txid = commit_supply(&mut ops, &committed, rate).expect("commit");
    let verify = |txid| verify_supply(&server, Network::Regtest, &descriptor, txid, dir.path());
    wait_until(WAIT, "the commitment in the mempool", || {
        match verify(txid) {
            Err(ReservesError::Unconfirmed(t)) if t == txid => Some(()),
            _ => None,
        }
    });
    env.mine_burn(1);
    let report = wait_until(WAIT, "the confirmed commitment", || verify(txid).ok());
    assert_eq!(report.commitment, committed);
    assert_eq!(report.commitment.sum, 600_000);
    assert_eq!(report.collateral, Amount::from_sat(1_000_000));
    assert!(report.covered);

    // The worker proves their balance against the root read from the chain.
    let (leaf, proof) = ledger.supply_proof(&worker);
    let root = moip_assets::mssmt::ComputedNode::new(report.commitment.root, report.commitment.sum);
    proof
        .verify_inclusion(&root, &worker.leaf_key(), &leaf)
        .expect("the worker's balance is in the committed supply");
    assert_eq!(leaf.sum, 250_000);

    // Collateral recorded off chain (a Lightning deposit still in a channel) lets the ledger mint
    // more than the chain holds: the next commitment is caught uncovered.
    ledger
        .deposit(
            900_000,
            CollateralSource::Lightning {
                payment_hash: "ee".repeat(32),
            },
        )
        .expect("lightning collateral");
    ledger.mint(&employer, 900_000).expect("mint");
    let over = SupplyCommitment::from(ledger.supply_root());
    let txid = commit_supply(&mut ops, &over, rate).expect("commit");
    env.mine_burn(1);
    let report = wait_until(WAIT, "the second commitment", || verify(txid).ok());
    assert_eq!(report.commitment.sum, 1_500_000);
    assert!(!report.covered, "1.5 M committed against 1 M on chain");

    // The deposit transaction is no commitment.
    assert!(matches!(
        verify(deposit),
        Err(ReservesError::Commitment(CommitmentError::Missing))
    ));
}
