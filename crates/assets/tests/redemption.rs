//! The redemption pool end to end on the embedded regtest chain, with real ldk-nodes: collateral
//! deposited to the guardians' multisig and over Lightning, credited once confirmed or settled
//! (and only once), tokens minted and paid to a worker, the supply committed
//! and verified from the chain; the worker redeems over a real Lightning payment, and the
//! supply verifies again. Then the pool's other paths: a redemption held by the account cap
//! (queued, paid in the next epoch), one whose payment fails (cancelled, tokens back), an
//! amountless invoice, refusals that lock nothing, a crash between paying and recording
//! (recovered from the node's payment record, paid once), a crash whose retry the node cannot
//! send yet (held, not cancelled, then paid once); and an on-chain payout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bip39::Mnemonic;
use bitcoin::{Amount, FeeRate, Network};
use moip_assets::collateral::{credit_lightning_deposit, credit_onchain_deposits};
use moip_assets::commitment::SupplyCommitment;
use moip_assets::ledger::{
    AccountId, JournalStore, Ledger, LedgerError, Op, SqliteJournal, TokenInfo, TokenLedger,
};
use moip_assets::pool::{onchain_tag, Hold, PoolConfig, PoolError, RedemptionPool, Status};
use moip_assets::reserves::{commit_supply, verify_supply};
use moip_lightning::testing::{fund, open_usable, start_node};
use moip_lightning::{PaymentRail, PaymentState};
use moip_testenv::Regtest;
use moip_testkit::wait_until;
use moip_wallet::collateral::collateral_key;
use moip_wallet::{
    CollateralPolicy, Fee, KdfParams, Keys, MoipWallet, SendRequest, Server, Trust, WalletKind,
};

const WAIT: Duration = Duration::from_secs(60);

fn mnemonic(byte: u8) -> Mnemonic {
    Mnemonic::from_entropy(&[byte; 16]).expect("entropy")
}

fn seed_wallet(dir: &std::path::Path, kind: WalletKind, byte: u8, server: &Server) -> MoipWallet {
    MoipWallet::create(
        dir,
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
}

/// A redemption written to the journal with nothing paid yet: what a crash right after the
/// journal write leaves.
fn journal_redemption<S: JournalStore>(
    ledger: &Mutex<Ledger<S>>,
    from: AccountId,
    amount: u64,
    sats_out: u64,
    payout: &str,
) -> u64 {
    let mut l = ledger.lock().expect("ledger");
    let id = l.state().next_redemption();
    l.commit(Op::Redeem {
        id,
        from,
        amount,
        sats_out,
        payout: payout.to_owned(),
    })
    .expect("redeem");
    id
}

#[test]
fn workers_redeem_over_lightning_and_the_supply_still_verifies() {
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
        guardians: vec![key(41), key(42), key(43)],
        recovery: key(44),
        recovery_blocks: 144,
    };
    let descriptor = policy.descriptor().expect("descriptor");
    let mut guardian = seed_wallet(
        &dir.path().join("guardian"),
        WalletKind::Collateral { policy },
        41,
        &server,
    );
    let mut ops = seed_wallet(&dir.path().join("ops"), WalletKind::Bip86, 50, &server);

    // The community's pool node has a channel to the worker's node; a third node is unreachable.
    let pool_node = start_node(&env, dir.path(), "pool");
    let worker_node = start_node(&env, dir.path(), "worker");
    let stranger = start_node(&env, dir.path(), "stranger");
    fund(&env, &pool_node, &[&worker_node, &stranger]);
    open_usable(&env, &pool_node, &worker_node, 1_000_000, Some(100_000_000));

    // Flow 2: an employer deposits on chain; it becomes collateral once confirmed.
    let deposit_to = guardian.receive().expect("address").address;
    let deposit = env.send_to(&deposit_to, Amount::from_sat(500_000));
    let ops_address = ops.receive().expect("address").address;
    env.send_to(&ops_address, Amount::from_sat(100_000));
    env.mine_burn(1);
    wait_until(WAIT, "the deposit", || {
        guardian.sync().expect("sync");
        (guardian.balance().confirmed == Amount::from_sat(500_000)).then_some(())
    });
    let ledger = Ledger::create(
        SqliteJournal::open(&dir.path().join("ledger.sqlite")).expect("journal"),
        TokenInfo {
            id: "bakery".into(),
            name: "Bakery hours".into(),
            symbol: "BKH".into(),
        },
    )
    .expect("ledger");
    let ledger = Arc::new(Mutex::new(ledger));
    let (employer, worker) = (
        AccountId::from_bytes([1; 32]),
        AccountId::from_bytes([2; 32]),
    );
    let credited = credit_onchain_deposits(&mut guardian, &ledger, 1).expect("credit");
    assert_eq!(credited.len(), 1);
    assert!(credited[0].0.starts_with(&deposit.to_string()));
    assert_eq!(credited[0].1, 500_000);
    // Crediting again finds nothing new: each coin counts once.
    assert!(credit_onchain_deposits(&mut guardian, &ledger, 1)
        .expect("credit")
        .is_empty());
    // A Lightning deposit to the pool node, once settled.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let rail: Arc<dyn PaymentRail> = Arc::new(pool_node.clone());
    let ln_deposit = pool_node
        .create_invoice(Some(20_000_000), "deposit", 3600)
        .expect("invoice");
    assert!(rt
        .block_on(credit_lightning_deposit(
            &*rail,
            &ledger,
            ln_deposit.payment_hash
        ))
        .expect("not paid yet")
        .is_none());
    worker_node
        .pay(&ln_deposit.bolt11, None, Default::default(), WAIT)
        .expect("the employer pays");
    let receipt = wait_until(WAIT, "the settled deposit", || {
        rt.block_on(credit_lightning_deposit(
            &*rail,
            &ledger,
            ln_deposit.payment_hash,
        ))
        .expect("credit")
    });
    assert!(receipt.seq > 0);
    assert!(rt
        .block_on(credit_lightning_deposit(
            &*rail,
            &ledger,
            ln_deposit.payment_hash
        ))
        .expect("credit")
        .is_none());
    {
        let mut l = ledger.lock().expect("ledger");
        assert_eq!(l.collateral(), 520_000);
        l.mint(&employer, 400_000).expect("mint");
        l.transfer(&employer, &worker, 300_000)
            .expect("pay the worker");
    }

    // Commit and verify from the chain.
    wait_until(WAIT, "fee money", || {
        ops.sync().expect("sync");
        (ops.balance().confirmed > Amount::ZERO).then_some(())
    });
    let rate = Fee::Rate(FeeRate::from_sat_per_vb(2).expect("rate"));
    let commit_and_verify = |ops: &mut MoipWallet, expected_sum: u64| {
        let root = SupplyCommitment::from(ledger.lock().expect("ledger").supply_root());
        assert_eq!(root.sum, expected_sum);
        let txid = commit_supply(ops, &root, rate).expect("commit");
        env.mine_burn(1);
        let report = wait_until(WAIT, "the commitment", || {
            verify_supply(&server, Network::Regtest, &descriptor, txid, dir.path()).ok()
        });
        assert_eq!(report.commitment, root);
        assert!(report.covered, "{report:?}");
    };
    commit_and_verify(&mut ops, 400_000);

    // Flow 1's last step: the worker redeems 100 000 tokens over Lightning.
    let config = PoolConfig {
        fee_ppm: 10_000, // 1 %
        account_cap: 150_000,
        ..PoolConfig::default()
    };
    let pool =
        RedemptionPool::new(Arc::clone(&ledger), Arc::clone(&rail), config.clone()).expect("pool");
    assert_eq!(pool.fee(100_000), 1_000);
    let invoice = worker_node
        .create_invoice(Some(99_000_000), "redeem", 3600)
        .expect("invoice");
    let before = worker_node.balance().lightning_sats;
    let ticket = rt
        .block_on(pool.redeem(&worker, 100_000, &invoice.bolt11, 1.0))
        .expect("redeem");
    // The request only queues it: paying is the pool's `process`, run in the background.
    assert_eq!(
        ticket.status,
        Status::Queued {
            position: 0,
            hold: None
        }
    );
    assert_eq!((ticket.sats_out, ticket.fee), (99_000, 1_000));
    assert_eq!(rt.block_on(pool.process()), vec![(ticket.id, Status::Paid)]);
    worker_node
        .wait_for(WAIT, "the payout", |n| {
            (n.balance().lightning_sats >= before + 99_000).then_some(())
        })
        .expect("received");
    {
        let l = ledger.lock().expect("ledger");
        assert_eq!(l.balance(&worker), 200_000);
        assert_eq!(l.supply(), 300_000);
        assert_eq!(l.collateral(), 421_000, "the fee stays as collateral");
    }
    commit_and_verify(&mut ops, 300_000);

    // Refusals lock nothing: an invoice for the wrong amount, more tokens than the worker holds.
    let wrong = worker_node
        .create_invoice(Some(5_000_000), "wrong", 3600)
        .expect("invoice");
    assert!(matches!(
        rt.block_on(pool.redeem(&worker, 10_000, &wrong.bolt11, 1.0)),
        Err(PoolError::AmountMismatch { .. })
    ));
    let any = worker_node
        .create_invoice(None, "any amount", 3600)
        .expect("invoice");
    assert!(matches!(
        rt.block_on(pool.redeem(&worker, 1_000_000, &any.bolt11, 1.0)),
        Err(PoolError::Ledger(LedgerError::InsufficientBalance { .. }))
    ));
    assert!(matches!(
        rt.block_on(pool.redeem(&worker, 10_000, "lnbcrt1garbage", 1.0)),
        Err(PoolError::Invoice(_))
    ));
    assert_eq!(ledger.lock().expect("ledger").balance(&worker), 200_000);

    // The account cap (150 000 a day at full trust; 100 000 used): a second 60 000 waits in the
    // queue with its tokens locked. An amountless invoice is paid the amount after the fee.
    let ticket = rt
        .block_on(pool.redeem(&worker, 60_000, &any.bolt11, 1.0))
        .expect("queued");
    assert_eq!(rt.block_on(pool.process()), vec![]);
    let status = pool.status(ticket.id);
    assert!(
        matches!(
            status,
            Some(Status::Queued {
                position: 0,
                hold: Some(Hold::AccountCap { .. })
            })
        ),
        "{status:?}"
    );
    assert_eq!(ledger.lock().expect("ledger").balance(&worker), 140_000);
    assert_eq!(pool.queue(), (60_000, 1));
    // The next epoch (a pool rebuilt with a new clock would see it; here: a pool whose epoch is
    // one second long, rebuilt from the same journal) pays it.
    let next_epoch = RedemptionPool::new(
        Arc::clone(&ledger),
        Arc::clone(&rail),
        PoolConfig {
            epoch_secs: 1,
            ..config.clone()
        },
    )
    .expect("pool");
    wait_until(WAIT, "the queued redemption", || {
        let outcomes = rt.block_on(next_epoch.process());
        outcomes
            .iter()
            .any(|(id, s)| *id == ticket.id && *s == Status::Paid)
            .then_some(())
    });
    let received = worker_node
        .payment_by_hash(any.payment_hash)
        .expect("received");
    assert_eq!(received.amount_msat, Some(59_400_000));
    assert_eq!(pool.queue(), (0, 0));

    // A payment that cannot be routed: cancelled, the tokens come back.
    let unreachable = stranger
        .create_invoice(Some(9_900_000), "nowhere", 3600)
        .expect("invoice");
    let ticket = rt
        .block_on(next_epoch.redeem(&worker, 10_000, &unreachable.bolt11, 1.0))
        .expect("taken");
    let outcomes = rt.block_on(next_epoch.process());
    assert!(
        matches!(outcomes.as_slice(), [(id, Status::Cancelled { .. })] if *id == ticket.id),
        "{outcomes:?}"
    );
    assert_eq!(ledger.lock().expect("ledger").balance(&worker), 140_000);

    // A crash between paying and recording: the redemption is in the journal, the node paid
    // it, the pool died before writing `Redeemed`. A new pool recovers it from the node's
    // record, and does not pay again.
    let crash = worker_node
        .create_invoice(Some(19_800_000), "crash", 3600)
        .expect("invoice");
    let id = journal_redemption(&ledger, worker, 20_000, 19_800, &crash.bolt11);
    pool_node
        .pay(&crash.bolt11, None, Default::default(), WAIT)
        .expect("paid before the crash");
    let restarted =
        RedemptionPool::new(Arc::clone(&ledger), Arc::clone(&rail), config.clone()).expect("pool");
    let outcomes = rt.block_on(restarted.recover());
    assert!(outcomes.contains(&(id, Status::Paid)), "{outcomes:?}");
    let payments: Vec<_> = rt
        .block_on(rail.payments())
        .expect("payments")
        .into_iter()
        .filter(|p| {
            p.payment_hash == Some(crash.payment_hash) && p.state == PaymentState::Succeeded
        })
        .collect();
    assert_eq!(payments.len(), 1, "paid exactly once");
    {
        let l = ledger.lock().expect("ledger");
        assert_eq!(l.balance(&worker), 120_000);
        assert!(l.collateral() >= l.supply());
        assert!(l.state().redemptions().is_empty());
    }
    commit_and_verify(&mut ops, 220_000);

    // A crash after the journal write, and after the restart the node cannot send (no route
    // to the stranger yet). That refusal is no answer — the crash may have come after an HTLC
    // left, whose record the node had not written — so the tokens stay locked, and a second
    // redemption to the same invoice is refused. Once a route exists the retry pays it, once.
    let later = stranger
        .create_invoice(Some(9_900_000), "later", 3600)
        .expect("invoice");
    let id = journal_redemption(&ledger, worker, 10_000, 9_900, &later.bolt11);
    let retrying = RedemptionPool::new(
        Arc::clone(&ledger),
        Arc::clone(&rail),
        // A recovered redemption has no caller's trust (the floor, a tenth of the cap): a
        // cap that is not the point here.
        PoolConfig {
            account_cap: 10_000_000,
            ..config.clone()
        },
    )
    .expect("pool");
    let outcomes = rt.block_on(retrying.recover());
    assert!(outcomes.contains(&(id, Status::InFlight)), "{outcomes:?}");
    assert_eq!(ledger.lock().expect("ledger").balance(&worker), 110_000);
    assert!(matches!(
        rt.block_on(retrying.redeem(&worker, 10_000, &later.bolt11, 1.0)),
        Err(PoolError::Invoice(_))
    ));
    open_usable(&env, &pool_node, &stranger, 500_000, None);
    wait_until(WAIT, "the retry to pay", || {
        let outcomes = rt.block_on(retrying.process());
        outcomes.contains(&(id, Status::Paid)).then_some(())
    });
    let received = stranger
        .payment_by_hash(later.payment_hash)
        .expect("received");
    assert_eq!(
        (received.state, received.amount_msat),
        (PaymentState::Succeeded, Some(9_900_000))
    );
    {
        let l = ledger.lock().expect("ledger");
        assert_eq!(l.balance(&worker), 110_000);
        assert!(l.state().redemptions().is_empty());
    }

    // An on-chain payout, from a payout wallet given to the pool: the address receives the
    // amount after the fee, and a pool without such a wallet refuses `bitcoin:` payouts.
    let mut payout = seed_wallet(&dir.path().join("payout"), WalletKind::Bip86, 51, &server);
    env.send_to(
        &payout.receive().expect("address").address,
        Amount::from_sat(100_000),
    );
    env.mine_burn(1);
    wait_until(WAIT, "payout funds", || {
        payout.sync().expect("sync");
        (payout.balance().confirmed > Amount::ZERO).then_some(())
    });
    let mut receiver = seed_wallet(&dir.path().join("receiver"), WalletKind::Bip86, 52, &server);
    let destination = receiver.receive().expect("address").address;
    let uri = format!("bitcoin:{destination}");
    assert!(matches!(
        rt.block_on(restarted.redeem(&worker, 10_000, &uri, 1.0)),
        Err(PoolError::NoOnchainWallet)
    ));
    let onchain = RedemptionPool::new(
        Arc::clone(&ledger),
        Arc::clone(&rail),
        PoolConfig {
            // 5 %: the redemption's fee pays the payout transaction's, 500 sat here.
            fee_ppm: 50_000,
            // The worker has redeemed much over Lightning this epoch; recovered redemptions
            // below carry no caller's trust (the floor).
            account_cap: 10_000_000,
            ..PoolConfig::default()
        },
    )
    .expect("pool")
    .with_onchain(payout);
    let ticket = rt
        .block_on(onchain.redeem(&worker, 10_000, &uri, 1.0))
        .expect("redeem on chain");
    assert_eq!(ticket.sats_out, 9_500);
    let collateral = ledger.lock().expect("ledger").collateral();
    assert_eq!(
        rt.block_on(onchain.process()),
        vec![(ticket.id, Status::Paid)]
    );
    // Collateral falls by the payout and the transaction's fee, which the redemption's covers.
    let fell = collateral - ledger.lock().expect("ledger").collateral();
    assert!(
        (9_501..=10_000).contains(&fell),
        "collateral fell by {fell}"
    );
    env.mine_burn(1);
    wait_until(WAIT, "the on-chain payout", || {
        receiver.sync().expect("sync");
        (receiver.balance().confirmed == Amount::from_sat(9_500)).then_some(())
    });
    assert_eq!(ledger.lock().expect("ledger").balance(&worker), 100_000);

    // A crash between an on-chain payout and its record, replayed: the payout went out (here
    // from a twin of the payout wallet, as the pool's own attempt would have, tagged) and the
    // ledger still has the redemption pending. Beside it, a pending redemption that never got
    // as far as paying. Recovery pays the second and finds the first's payout by its tag:
    // nothing is paid twice.
    let token = ledger
        .lock()
        .expect("ledger")
        .token()
        .expect("a token")
        .id
        .clone();
    let went_out = journal_redemption(&ledger, worker, 10_000, 9_500, &uri);
    let mut twin = seed_wallet(
        &dir.path().join("payout-twin"),
        WalletKind::Bip86,
        51,
        &server,
    );
    twin.sync().expect("sync");
    let prepared = twin
        .prepare_send(&SendRequest {
            recipients: vec![(destination.to_string(), Amount::from_sat(9_500))],
            drain_to: None,
            fee: Fee::Target(6),
            coins: vec![],
            data: Some(onchain_tag(&token, went_out)),
        })
        .expect("the payout before the crash");
    twin.broadcast(&prepared.psbt).expect("broadcast");
    let never_paid = journal_redemption(&ledger, worker, 10_000, 9_500, &uri);
    let outcomes = rt.block_on(onchain.recover());
    assert_eq!(
        outcomes,
        vec![(went_out, Status::Paid), (never_paid, Status::Paid)]
    );
    env.mine_burn(1);
    wait_until(WAIT, "the payouts", || {
        receiver.sync().expect("sync");
        (receiver.balance().confirmed == Amount::from_sat(3 * 9_500)).then_some(())
    });
    env.mine_burn(1);
    receiver.sync().expect("sync");
    assert_eq!(
        receiver.balance().total(),
        Amount::from_sat(3 * 9_500),
        "each redemption paid once"
    );
    let l = ledger.lock().expect("ledger");
    assert_eq!(l.balance(&worker), 80_000);
    assert!(l.state().redemptions().is_empty());
    drop(l);

    for node in [pool_node, worker_node, stranger] {
        node.stop().expect("stop");
    }
}
