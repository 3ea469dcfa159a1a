//! BDK (`bdk_wallet` + `bdk_electrum`) against the server on the embedded chain: full scan,
//! receive, send with a fee rate from the server, broadcast, sync to the confirmation.

mod common;

use bdk_electrum::BdkElectrumClient;
use bdk_wallet::bitcoin::bip32::Xpriv;
use bdk_wallet::bitcoin::{Amount, FeeRate, Network};
use bdk_wallet::{KeychainKind, SignOptions, Wallet};
use common::{wait_until, Env, Key, Kind, WAIT};
use electrum_client::ElectrumApi;

fn wallet(seed: u8) -> Wallet {
    let xprv = Xpriv::new_master(Network::Regtest, &[seed; 32]).expect("master key");
    Wallet::create(
        format!("tr({xprv}/86h/1h/0h/0/*)"),
        format!("tr({xprv}/86h/1h/0h/1/*)"),
    )
    .network(Network::Regtest)
    .create_wallet_no_persist()
    .expect("wallet")
}

fn full_scan(wallet: &mut Wallet, client: &BdkElectrumClient<electrum_client::Client>) {
    let update = client
        .full_scan(wallet.start_full_scan().build(), 10, 5, false)
        .expect("full scan");
    wallet.apply_update(update).expect("apply");
}

fn sync(wallet: &mut Wallet, client: &BdkElectrumClient<electrum_client::Client>) {
    let update = client
        .sync(wallet.start_sync_with_revealed_spks().build(), 5, false)
        .expect("sync");
    wallet.apply_update(update).expect("apply");
}

#[test]
fn bdk_wallets_scan_receive_send_and_confirm() {
    let env = Env::new();
    let miner = Key::new(9, Kind::P2wpkh);
    let client = BdkElectrumClient::new(
        electrum_client::Client::new(&format!("tcp://{}", env.tcp())).expect("client"),
    );
    let mut alice = wallet(1);
    let mut bob = wallet(2);

    // Mine to Alice's third address (a gap inside the stop gap), then mature it.
    let _ = alice.reveal_next_address(KeychainKind::External);
    let _ = alice.reveal_next_address(KeychainKind::External);
    let target = alice.reveal_next_address(KeychainKind::External).address;
    let fresh = wallet(1); // a restore from the same seed finds it by scanning
    env.node
        .generate(1, &target.script_pubkey())
        .expect("mine to alice");
    env.mine(100, &miner);
    let mut alice = fresh;
    full_scan(&mut alice, &client);
    assert_eq!(
        alice.balance().confirmed,
        Amount::from_btc(50.0).expect("amount")
    );
    assert_eq!(alice.latest_checkpoint().height(), 101);

    // Pay Bob at the server's fee estimate.
    let fee_btc_per_kvb = client.inner.estimate_fee(2).expect("estimatefee");
    let rate =
        FeeRate::from_sat_per_vb((fee_btc_per_kvb * 1e8 / 1000.0).ceil() as u64).expect("rate");
    let bob_address = bob.reveal_next_address(KeychainKind::External).address;
    let mut builder = alice.build_tx();
    builder
        .add_recipient(bob_address.script_pubkey(), Amount::from_sat(1_234_567))
        .fee_rate(rate);
    let mut psbt = builder.finish().expect("build");
    assert!(
        alice.sign(&mut psbt, SignOptions::default()).expect("sign"),
        "finalized"
    );
    let tx = psbt.extract_tx().expect("extract");
    let txid = client
        .transaction_broadcast(&tx)
        .expect("broadcast through the server");
    wait_until(WAIT, "the payment in Bob's view", || {
        full_scan(&mut bob, &client);
        (bob.balance().untrusted_pending == Amount::from_sat(1_234_567)).then_some(())
    });
    sync(&mut alice, &client);
    assert!(
        alice.balance().trusted_pending > Amount::ZERO,
        "change is trusted pending"
    );

    // Confirm and sync both.
    env.mine(1, &miner);
    sync(&mut bob, &client);
    sync(&mut alice, &client);
    assert_eq!(bob.balance().confirmed, Amount::from_sat(1_234_567));
    let expected_alice = Amount::from_btc(50.0).expect("amount")
        - Amount::from_sat(1_234_567)
        - alice.calculate_fee(&tx).expect("fee");
    assert_eq!(alice.balance().confirmed, expected_alice);
    let seen = bob.get_tx(txid).expect("bob knows the tx");
    assert!(seen.chain_position.is_confirmed());
}
