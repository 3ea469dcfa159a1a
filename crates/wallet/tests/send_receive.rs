//! Two wallets on the embedded chain: funded by mining, paying each other, bumping fees with
//! RBF and CPFP, and refusing bad requests with typed errors.

mod common;

use bitcoin::{Amount, FeeRate};
use common::*;
use moip_wallet::{Fee, MoipWallet, SendRequest, WalletError, WalletKind};

fn pay(to: &str, sats: u64, rate: u64) -> SendRequest {
    SendRequest {
        recipients: vec![(to.to_owned(), Amount::from_sat(sats))],
        drain_to: None,
        fee: Fee::Rate(FeeRate::from_sat_per_vb_u32(rate as u32)),
        coins: vec![],
        data: None,
    }
}

#[test]
fn mine_send_receive_bump_and_cpfp() {
    let env = Regtest::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut alice = seed_wallet(&env, &dir.path().join("alice"), WalletKind::Bip86, 1);
    let mut bob = seed_wallet(&env, &dir.path().join("bob"), WalletKind::Bip84, 2);
    assert!(alice.can_sign());

    // Mined coins are immature for 100 blocks, then confirmed.
    let address = alice.receive().expect("address").address;
    env.mine_to(1, &address.script_pubkey());
    sync_until(&mut alice, "the coinbase, immature", |w| {
        w.balance().immature > Amount::ZERO
    });
    assert_eq!(alice.balance().confirmed, Amount::ZERO);
    env.mine_burn(100);
    sync_until(&mut alice, "the coinbase to mature", |w| {
        w.balance().confirmed == Amount::from_btc(50.0).expect("amount")
    });

    // Alice pays Bob; nothing leaves before broadcast.
    let bob_address = bob.receive().expect("address").address.to_string();
    let prepared = alice
        .prepare_send(&pay(&bob_address, 1_000_000, 2))
        .expect("prepare");
    assert!(prepared.finalized);
    assert_eq!(prepared.payments.len(), 1);
    assert_eq!(prepared.payments[0].1, Amount::from_sat(1_000_000));
    bob.sync().expect("sync");
    assert_eq!(bob.balance().total(), Amount::ZERO, "paid before broadcast");
    let first = alice.broadcast(&prepared.psbt).expect("broadcast");
    sync_until(&mut bob, "the payment, pending", |w| {
        w.balance().untrusted_pending == Amount::from_sat(1_000_000)
    });

    // RBF: a higher fee replaces it; the replacement confirms and the original never does.
    let bumped = alice
        .bump_fee(first, FeeRate::from_sat_per_vb_u32(10))
        .expect("bump");
    assert!(
        bumped.fee > prepared.fee,
        "{} vs {}",
        bumped.fee,
        prepared.fee
    );
    let second = alice
        .broadcast(&bumped.psbt)
        .expect("broadcast replacement");
    assert_ne!(first, second);
    env.mine_burn(1);
    sync_until(&mut bob, "the replacement confirmed", |w| {
        w.balance().confirmed == Amount::from_sat(1_000_000)
    });
    sync_until(&mut alice, "alice's change confirmed", |w| {
        w.history()
            .iter()
            .any(|e| e.txid == second && e.height.is_some())
    });
    let history = alice.history();
    assert!(
        !history.iter().any(|e| e.txid == first),
        "the replaced tx is still listed"
    );
    let entry = history.iter().find(|e| e.txid == second).expect("entry");
    assert_eq!(entry.fee, Some(bumped.fee));
    assert_eq!(
        alice.balance().total(),
        Amount::from_btc(50.0).expect("amount") - Amount::from_sat(1_000_000) - bumped.fee
    );

    // CPFP: a low-fee payment to Bob, and Bob's child lifts the pair.
    let low = alice
        .prepare_send(&pay(&bob_address, 500_000, 1))
        .expect("prepare");
    let parent = alice.broadcast(&low.psbt).expect("broadcast");
    sync_until(&mut bob, "the low-fee payment", |w| {
        w.balance().untrusted_pending == Amount::from_sat(500_000)
    });
    let child = bob
        .cpfp(parent, FeeRate::from_sat_per_vb_u32(20))
        .expect("cpfp");
    let child_vsize = child.psbt.clone().extract_tx().expect("tx").vsize() as u64;
    let parent_vsize = low.psbt.clone().extract_tx().expect("tx").vsize() as u64;
    let package_rate = (child.fee + low.fee).to_sat() as f64 / (child_vsize + parent_vsize) as f64;
    assert!(package_rate >= 19.5, "package rate {package_rate}");
    let child_txid = bob.broadcast(&child.psbt).expect("broadcast child");
    env.mine_burn(1);
    sync_until(&mut bob, "parent and child confirmed", |w| {
        w.history()
            .iter()
            .filter(|e| e.txid == parent || e.txid == child_txid)
            .all(|e| e.height.is_some())
            && w.history().len() >= 3
    });
    assert_eq!(bob.balance().untrusted_pending, Amount::ZERO);
}

#[test]
fn bad_requests_get_typed_errors_and_change_nothing() {
    let env = Regtest::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("w");
    let mut wallet = seed_wallet(&env, &path, WalletKind::Bip86, 3);
    let address = wallet.receive().expect("address").address;
    env.fund_mature(&address);
    sync_until(&mut wallet, "funds", |w| {
        w.balance().confirmed > Amount::ZERO
    });
    let before = wallet.balance();

    let mainnet = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";
    assert!(matches!(
        wallet.prepare_send(&pay(mainnet, 10_000, 1)),
        Err(WalletError::WrongNetwork { .. })
    ));
    assert!(matches!(
        wallet.prepare_send(&pay("not-an-address", 10_000, 1)),
        Err(WalletError::BadAddress(_))
    ));
    let own = address.to_string();
    assert!(matches!(
        wallet.prepare_send(&pay(&own, 100, 1)),
        Err(WalletError::Dust { .. })
    ));
    match wallet.prepare_send(&pay(&own, 100 * 100_000_000, 1)) {
        Err(WalletError::InsufficientFunds { needed, available }) => {
            assert!(needed > available);
            assert_eq!(available, before.confirmed);
        }
        other => panic!("expected insufficient funds, got {other:?}"),
    }
    assert_eq!(wallet.balance(), before);
    drop(wallet);

    // Wrong password, wrong mnemonic for this wallet, and no wallet at all.
    assert!(matches!(
        MoipWallet::open(
            &path,
            Some(moip_wallet::Unlock {
                password: "wrong",
                passphrase: ""
            })
        ),
        Err(WalletError::Keystore(_))
    ));
    assert!(matches!(
        MoipWallet::open(
            &path,
            Some(moip_wallet::Unlock {
                password: PASSWORD,
                passphrase: "a passphrase it never had"
            })
        ),
        Err(WalletError::BadMnemonic(_))
    ));
    assert!(matches!(
        MoipWallet::open(&dir.path().join("nothing"), None),
        Err(WalletError::NotFound(_))
    ));
    // Watch-only opening syncs but cannot sign.
    let mut watch = MoipWallet::open(&path, None).expect("watch-only");
    watch.sync().expect("sync");
    assert_eq!(watch.balance(), before);
    let unsigned = watch.prepare_send(&pay(&own, 10_000, 1)).expect("psbt");
    assert!(!unsigned.finalized);
    assert!(matches!(
        watch.broadcast(&unsigned.psbt),
        Err(WalletError::NotFinal(_))
    ));

    // An unreachable server.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    watch
        .set_server(moip_wallet::Server::new(
            format!("tcp://127.0.0.1:{port}"),
            moip_wallet::Trust::ThirdParty,
        ))
        .expect("set server");
    assert!(matches!(
        watch.sync(),
        Err(WalletError::ServerUnreachable { .. })
    ));
    assert_eq!(watch.balance(), before);
}

#[test]
fn restore_from_mnemonic_finds_all_history() {
    let env = Regtest::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wallet = seed_wallet(&env, &dir.path().join("first"), WalletKind::Bip84, 4);
    // Payments to addresses 0, 15 and 33: each within the 20-address gap of the one before.
    let addresses = wallet.reveal(34).expect("addresses");
    let payments: Vec<_> = [0usize, 15, 33]
        .iter()
        .map(|&i| {
            (
                addresses[i].address.clone(),
                Amount::from_sat(100_000 + i as u64),
            )
        })
        .collect();
    env.send_many(&payments);
    env.mine_burn(1);
    sync_until(&mut wallet, "the payments", |w| w.history().len() == 1);
    let expected = wallet.balance();
    drop(wallet);

    let mut restored = seed_wallet(&env, &dir.path().join("restored"), WalletKind::Bip84, 4);
    restored.sync().expect("sync");
    assert_eq!(restored.history().len(), 1);
    assert_eq!(restored.coins().len(), 3);
    assert_eq!(restored.balance(), expected);
    assert_eq!(restored.balance().confirmed, Amount::from_sat(300_000 + 48));
}

#[test]
fn coin_control_server_fee_estimates_and_tls() {
    let env = Regtest::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wallet = seed_wallet(&env, &dir.path().join("w"), WalletKind::Bip86, 5);
    let addresses = wallet.reveal(3).expect("addresses");
    env.send_many(&[
        (addresses[0].address.clone(), Amount::from_sat(300_000)),
        (addresses[1].address.clone(), Amount::from_sat(700_000)),
        (addresses[2].address.clone(), Amount::from_sat(900_000)),
    ]);
    env.mine_burn(1);

    // Over TLS: a self-signed certificate is refused unless the user accepts it.
    let mut tls = moip_wallet::Server::new(env.electrum_tls_url(), moip_wallet::Trust::MyNode);
    wallet.set_server(tls.clone()).expect("server");
    assert!(matches!(
        wallet.sync(),
        Err(WalletError::ServerUnreachable { .. })
    ));
    tls.accept_invalid_certs = true;
    wallet.set_server(tls).expect("server");
    sync_until(&mut wallet, "three coins over TLS", |w| {
        w.coins().len() == 3
    });

    // The fee rate comes from the server (or the relay floor when it has no estimate yet).
    let (rate, _source) = wallet.estimate_fee(6).expect("estimate");
    assert!(rate >= FeeRate::BROADCAST_MIN);

    // Coin control: spend exactly the 300,000 coin, although coin selection would prefer others.
    let small = wallet
        .coins()
        .into_iter()
        .find(|c| c.txout.value == Amount::from_sat(300_000))
        .expect("the small coin")
        .outpoint;
    let to = env.burn_address().to_string();
    let prepared = wallet
        .prepare_send(&SendRequest {
            recipients: vec![(to.clone(), Amount::from_sat(100_000))],
            drain_to: None,
            fee: Fee::Target(6),
            coins: vec![small],
            data: None,
        })
        .expect("prepare");
    let inputs: Vec<_> = prepared
        .psbt
        .unsigned_tx
        .input
        .iter()
        .map(|i| i.previous_output)
        .collect();
    assert_eq!(inputs, vec![small]);
    // The selected coin alone cannot pay more than it holds.
    assert!(matches!(
        wallet.prepare_send(&SendRequest {
            recipients: vec![(to, Amount::from_sat(500_000))],
            drain_to: None,
            fee: Fee::Target(6),
            coins: vec![small],
            data: None,
        }),
        Err(WalletError::InsufficientFunds { .. })
    ));
}
