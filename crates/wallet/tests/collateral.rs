//! The community collateral: a 2-of-3 taproot multisig of guardians with a recovery key that
//! works only after its delay — spent by guardians through a PSBT round trip, and by the
//! recovery key exactly when the chain allows it.

mod common;

use bitcoin::{Amount, FeeRate, Network};
use common::*;
use moip_wallet::collateral::collateral_key;
use moip_wallet::{
    psbt_from_base64, CollateralPolicy, Fee, KdfParams, Keys, MoipWallet, SendRequest, WalletError,
    WalletKind,
};

const DELAY: u16 = 10;

fn key(byte: u8) -> String {
    collateral_key(&mnemonic(byte), "", Network::Regtest)
        .expect("key")
        .0
        .to_string()
}

fn member(env: &Regtest, dir: &std::path::Path, policy: &CollateralPolicy, byte: u8) -> MoipWallet {
    MoipWallet::create(
        dir,
        Network::Regtest,
        WalletKind::Collateral {
            policy: policy.clone(),
        },
        Keys::Seed {
            mnemonic: mnemonic(byte),
            passphrase: String::new(),
            password: PASSWORD.into(),
        },
        server(env),
        KdfParams::INSECURE_FAST,
    )
    .expect("collateral wallet")
}

#[test]
fn guardians_spend_by_psbt_and_recovery_waits_its_blocks() {
    let env = Regtest::new();
    let policy = CollateralPolicy {
        threshold: 2,
        guardians: vec![key(11), key(12), key(13)],
        recovery: key(14),
        recovery_blocks: DELAY,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g1 = member(&env, &dir.path().join("g1"), &policy, 11);
    let mut g2 = member(&env, &dir.path().join("g2"), &policy, 12);
    let mut recovery = member(&env, &dir.path().join("r"), &policy, 14);
    // A mnemonic holding none of the keys cannot open a member's wallet.
    let outsider = MoipWallet::create(
        &dir.path().join("x"),
        Network::Regtest,
        WalletKind::Collateral {
            policy: policy.clone(),
        },
        Keys::Seed {
            mnemonic: mnemonic(15),
            passphrase: String::new(),
            password: PASSWORD.into(),
        },
        server(&env),
        KdfParams::INSECURE_FAST,
    );
    assert!(matches!(outsider, Err(WalletError::BadMnemonic(_))));

    // Fund the collateral twice.
    let deposit = g1.receive().expect("address").address;
    assert_eq!(
        g2.receive().expect("address").address,
        deposit,
        "same descriptor"
    );
    env.send_many(&[
        (deposit.clone(), Amount::from_sat(2_000_000)),
        (deposit.clone(), Amount::from_sat(3_000_000)),
    ]);
    env.mine_burn(1);
    let funded_at = env.height();
    sync_until(&mut g1, "deposits", |w| {
        w.balance().confirmed == Amount::from_sat(5_000_000)
    });

    // Guardians: g1 proposes with one signature, g2 adds the second from the file.
    let payee = env.burn_address().to_string();
    let proposal = g1
        .prepare_send(&SendRequest {
            recipients: vec![(payee.clone(), Amount::from_sat(1_000_000))],
            drain_to: None,
            fee: Fee::Rate(FeeRate::from_sat_per_vb_u32(2)),
            coins: vec![],
            data: None,
        })
        .expect("proposal");
    assert!(!proposal.finalized, "one guardian must not be enough");
    assert!(matches!(
        g1.broadcast(&proposal.psbt),
        Err(WalletError::NotFinal(_))
    ));
    let file = dir.path().join("proposal.psbt");
    std::fs::write(&file, proposal.psbt.to_string()).expect("write");
    let mut psbt = psbt_from_base64(&std::fs::read_to_string(&file).expect("read")).expect("psbt");
    g2.sync().expect("sync");
    g2.sign_psbt(&mut psbt).expect("sign");
    assert!(g2.finalize_psbt(&mut psbt).expect("finalize"));
    let spent = g2.broadcast(&psbt).expect("broadcast");
    env.mine_burn(1);
    sync_until(&mut g1, "the guardians' spend", |w| {
        w.history()
            .iter()
            .any(|e| e.txid == spent && e.height.is_some())
    });

    // Recovery: refused until the coins have waited DELAY blocks, then accepted by the node.
    recovery.sync().expect("sync");
    let rate = FeeRate::from_sat_per_vb_u32(2);
    let opens_at = match recovery.prepare_recovery(&payee, rate) {
        Err(WalletError::RecoveryLocked { opens_at, .. }) => opens_at,
        other => panic!("expected the recovery path locked, got {other:?}"),
    };
    assert_eq!(opens_at, funded_at + DELAY as u32);
    // The recovery transaction may enter the block at `opens_at`: mine to one below it.
    let still_locked = opens_at - 2 - env.height();
    env.mine_burn(still_locked);
    recovery.sync().expect("sync");
    assert!(matches!(
        recovery.prepare_recovery(&payee, rate),
        Err(WalletError::RecoveryLocked { .. })
    ));
    env.mine_burn(1);
    recovery.sync().expect("sync");
    let swept = recovery.prepare_recovery(&payee, rate).expect("recovery");
    assert!(swept.finalized, "the recovery key alone must suffice");
    let txid = recovery
        .broadcast(&swept.psbt)
        .expect("the node accepts it");
    env.mine_burn(1);
    sync_until(&mut recovery, "the recovery sweep", |w| {
        w.history()
            .iter()
            .any(|e| e.txid == txid && e.height.is_some())
    });
    // The guardians' change confirmed a block after the deposits, so it opens a block later;
    // sweep it too.
    let left = recovery.balance().total();
    assert!(left > Amount::ZERO && left < Amount::from_sat(3_000_000));
    env.mine_burn(1);
    recovery.sync().expect("sync");
    let rest = recovery.prepare_recovery(&payee, rate).expect("recovery");
    let txid = recovery.broadcast(&rest.psbt).expect("the node accepts it");
    env.mine_burn(1);
    sync_until(&mut recovery, "the second sweep", |w| {
        w.history()
            .iter()
            .any(|e| e.txid == txid && e.height.is_some())
    });
    assert_eq!(recovery.balance().total(), Amount::ZERO);
}
