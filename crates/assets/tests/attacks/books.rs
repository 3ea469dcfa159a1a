//! **The books balance**, whatever honest and hostile members do.
//!
//! A seeded random run over real ldk-nodes on the embedded chain: Lightning deposits minted to
//! members, transfers, honest redemptions, hostile ones (tiny, through the attacker's 49-sat
//! hop, to a hold invoice held and later settled or failed, to an unroutable node), the queue
//! processed, and restarts (the pool and its ledger rebuilt from the journal on disk, then
//! `recover`). After **every** step the ledger is compared with the community node's own
//! payment records — what really came in and what really left:
//!
//! - collateral = what came in − (payout + routing fee) of every payout the ledger has
//!   concluded, to the sat (fees rounded up);
//! - every succeeded payout belongs to a redemption the ledger recorded paid — never one it
//!   returned the tokens of — and no invoice is paid twice;
//! - collateral ≥ supply; and the attacker never gets more out (payouts to them and fees
//!   to their router) than the tokens they burned.
//!
//! At the end the attacker fails every held payment; every honest member's redemption must
//! have ended by then. The attacker's own may stay locked: a payout recovered after a restart
//! that the node refuses to send is no answer (an earlier attempt may still be out), so its
//! tokens wait for the node's final word — theirs alone, since one payout per account is out.
//!
//! An app (an NWC connection's sub-account, the same ledger ops and the same charge/refund code
//! as `moip up`: `Ledger::charge_app`, `Ledger::conclude_app_payment`,
//! `AppPaymentOutcome::from_record`) is funded from free collateral (refused beyond it, nothing
//! changed), is paid for its invoices, pays honest invoices, tries to overspend (refused,
//! nothing changed), and pays the attacker through the 49-sat hop or to a hold invoice held
//! past the wait and later settled or failed. Before each check the app's open charges are
//! concluded from the node's records, as `moip up`'s resolver does. The checks add:
//!
//! - collateral also goes down by every `AppFund`;
//! - each app's balance = funded + received − spent + refunded, from the journal;
//! - a concluded charge kept exactly what the node's record says left (amount + fee when it
//!   succeeded, nothing when it failed); an open one was charged at least what left;
//! - the app never had more in the ledger than really came in for it less what really left,
//!   and never spent more than it had (nothing below zero);
//! - the node's real Lightning balance covers the collateral and every app's sub-account.
//!
//! The on-chain treasury is not in this run: `moip up` holds no collateral on chain (issue 22).
//! `MOIP_BOOKS_SEED=<n>` replays a run.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use moip_assets::collateral::credit_lightning_deposit;
use moip_assets::ledger::{
    fee_sats, AccountId, AppChargeError, AppPaymentOutcome, CollateralSource, Ledger, LedgerError,
    Op, SqliteJournal, TokenInfo, TokenLedger,
};
use moip_assets::pool::{PoolConfig, RedemptionPool};
use moip_lightning::testing::{fund, open_usable, open_usable_charging, start_node};
use moip_lightning::{
    ForwardingFee, LightningError, LightningNode, PaymentHash, PaymentRail, PaymentState,
    PaymentType, Preimage, RouteLimits,
};
use moip_testenv::Regtest;
use moip_testkit::wait_until;
use rand::{Rng, SeedableRng};

use crate::{account, runtime, WAIT};

type Pool = RedemptionPool<SqliteJournal>;

const INITIAL: u64 = 100_000;

/// The app's account, named like an NWC connection's client key.
fn app() -> String {
    "ab".repeat(32)
}

/// How long the app's payment is waited for, as the NWC service waits (shorter here).
const APP_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Concludes the app's open charges from the community node's own records, as `moip up`'s
/// `LedgerApps::resolve` does: the same ledger calls.
fn resolve_apps(rt: &tokio::runtime::Runtime, pool: &Pool, rail: &Arc<dyn PaymentRail>) {
    let open = pool.ledger().lock().expect("l").open_app_charges();
    for (hash, _) in open {
        let record = rt
            .block_on(rail.payment_by_hash(hash.parse().expect("a hash")))
            .expect("the node's record");
        if let Some(record) = record.filter(|r| !r.inbound) {
            pool.ledger()
                .lock()
                .expect("l")
                .conclude_app_payment(&hash, AppPaymentOutcome::from_record(&record))
                .expect("concluded");
        }
    }
}

/// The app pays `bolt11` (`amount_msat`) as the NWC service does: charged the amount and fee
/// cap first, refused when short (nothing changes then), concluded by the answer when it says
/// what happened, left open for [`resolve_apps`] when the wait ran out.
fn app_pays(
    pool: &Pool,
    community: &LightningNode,
    bolt11: &str,
    amount_msat: u64,
    app_payments: &mut HashSet<PaymentHash>,
) -> &'static str {
    let hash = moip_lightning::read_invoice(bolt11)
        .expect("an invoice")
        .payment_hash;
    let max_fee_msat = amount_msat / 100 + 10_000;
    let charged = amount_msat + max_fee_msat;
    {
        let mut ledger = pool.ledger().lock().expect("l");
        let (before, len) = (ledger.state().app_balance_msat(&app()), ledger.len());
        match ledger.charge_app(&app(), charged, &hash.to_string()) {
            Ok(()) => {}
            Err(AppChargeError::Insufficient { .. }) => {
                assert!(charged > before, "refused with {before} msat for {charged}");
                assert_eq!(
                    (ledger.state().app_balance_msat(&app()), ledger.len()),
                    (before, len),
                    "a refused payment changed the books"
                );
                return "refused";
            }
            Err(e) => panic!("the app's charge: {e}"),
        }
    }
    app_payments.insert(hash);
    let outcome = match community.pay(bolt11, None, RouteLimits::max_fee(max_fee_msat), APP_WAIT) {
        Ok(paid) => AppPaymentOutcome::Paid {
            spent_msat: paid.amount_msat.unwrap_or(amount_msat) + paid.fee_paid_msat.unwrap_or(0),
        },
        Err(LightningError::Timeout { .. }) => AppPaymentOutcome::Pending,
        Err(_) => AppPaymentOutcome::Failed,
    };
    pool.ledger()
        .lock()
        .expect("l")
        .conclude_app_payment(&hash.to_string(), outcome)
        .expect("concluded");
    match outcome {
        AppPaymentOutcome::Paid { .. } => "paid",
        AppPaymentOutcome::Failed => "failed",
        AppPaymentOutcome::Pending => "pending",
    }
}

/// The app's part of the checks, against the community node's records.
fn check_app(
    step: &str,
    ledger: &Ledger<SqliteJournal>,
    entries: &[moip_assets::ledger::Entry],
    records: &[moip_lightning::PaymentRecord],
) -> u64 {
    let app = app();
    let (mut funded_msat, mut received_msat, mut spent_msat, mut refunded_msat) = (0, 0, 0, 0);
    let mut funded_sats = 0;
    for entry in entries {
        match &entry.op {
            Op::AppFund { app: a, sats } if *a == app => {
                funded_sats += sats;
                funded_msat += sats * 1000;
            }
            Op::AppReceived { app: a, msat, hash } if *a == app => {
                received_msat += msat;
                let record = records.iter().find(|r| {
                    r.inbound && r.payment_hash.map(|h| h.to_string()) == Some(hash.clone())
                });
                assert_eq!(
                    record.map(|r| (r.state, r.amount_msat)),
                    Some((PaymentState::Succeeded, Some(*msat))),
                    "{step}: the app credited {msat} msat for {hash} the node did not receive"
                );
            }
            Op::AppSpent { app: a, msat, .. } if *a == app => spent_msat += msat,
            Op::AppRefunded { app: a, msat, .. } if *a == app => refunded_msat += msat,
            _ => {}
        }
    }
    let balance = ledger.state().app_balance_msat(&app);
    assert_eq!(
        balance,
        funded_msat + received_msat - spent_msat + refunded_msat,
        "{step}: the app's balance against its entries"
    );
    // What really left for the app, charge by charge.
    let mut really_spent_msat = 0;
    for entry in entries {
        let Op::AppSpent { hash, .. } = &entry.op else {
            continue;
        };
        let charge = ledger.state().app_charge(hash).expect("a charge");
        let left_msat = records
            .iter()
            .filter(|r| !r.inbound && r.state == PaymentState::Succeeded)
            .find(|r| r.payment_hash.map(|h| h.to_string()) == Some(hash.clone()))
            .map_or(0, |r| {
                r.amount_msat.unwrap_or(0) + r.fee_paid_msat.unwrap_or(0)
            });
        let kept_msat = charge.charged_msat - charge.refunded_msat;
        if charge.concluded {
            assert_eq!(kept_msat, left_msat, "{step}: app payment {hash} kept");
        } else {
            assert!(
                left_msat <= kept_msat,
                "{step}: app payment {hash} cost more than charged"
            );
        }
        really_spent_msat += left_msat;
    }
    let really_had_msat = funded_msat + received_msat;
    assert!(
        really_spent_msat <= really_had_msat,
        "{step}: the app spent {really_spent_msat} msat of {really_had_msat}"
    );
    assert!(
        balance <= really_had_msat - really_spent_msat,
        "{step}: the app holds {balance} msat, {} really its",
        really_had_msat - really_spent_msat
    );
    funded_sats
}

fn open_books(path: &Path, config: &PoolConfig, rail: &Arc<dyn PaymentRail>) -> Arc<Pool> {
    let existed = path.exists();
    let journal = SqliteJournal::open(path).expect("journal");
    let ledger = if existed {
        Ledger::open(journal).expect("ledger")
    } else {
        let mut ledger = Ledger::create(
            journal,
            TokenInfo {
                id: "bakery".into(),
                name: "Bakery hours".into(),
                symbol: "BKH".into(),
            },
        )
        .expect("ledger");
        ledger
            .deposit(
                INITIAL,
                CollateralSource::Lightning {
                    payment_hash: "00".repeat(32),
                },
            )
            .expect("deposit");
        ledger
    };
    let ledger = Arc::new(Mutex::new(ledger));
    Arc::new(RedemptionPool::new(ledger, Arc::clone(rail), config.clone()).expect("pool"))
}

/// Payment hashes by whose they are.
#[derive(Default)]
struct Hashes {
    /// Deposits' invoices.
    deposits: HashSet<PaymentHash>,
    /// The attacker's invoices that redemptions pay.
    attackers_invoices: HashSet<PaymentHash>,
    /// The app's payments.
    app_payments: HashSet<PaymentHash>,
}

/// The invariants, against the community node's payment records.
fn check_books(
    rt: &tokio::runtime::Runtime,
    step: &str,
    pool: &Pool,
    community: &LightningNode,
    attacker: &AccountId,
    hashes: &Hashes,
) {
    let Hashes {
        deposits,
        attackers_invoices,
        app_payments,
    } = hashes;
    let records = rt
        .block_on((community as &dyn PaymentRail).payments())
        .expect("payments");
    let mut ledger = pool.ledger().lock().expect("ledger");
    let entries = ledger.entries(0).expect("entries");
    // Each redemption's invoice, and how the ledger ended it.
    let mut invoice_of = HashMap::new();
    let mut paid = HashMap::new();
    let mut cancelled = HashSet::new();
    let mut burned_by_attacker = 0;
    let mut amount_of = HashMap::new();
    for entry in &entries {
        match &entry.op {
            Op::Redeem {
                id,
                payout,
                from,
                amount,
                ..
            } => {
                let hash = moip_lightning::read_invoice(payout)
                    .expect("a Lightning payout")
                    .payment_hash;
                invoice_of.insert(hash, *id);
                amount_of.insert(*id, (*from, *amount));
            }
            Op::Redeemed { id, fee_msat } => {
                paid.insert(*id, *fee_msat);
                if amount_of.get(id).is_some_and(|(f, _)| f == attacker) {
                    burned_by_attacker += amount_of[id].1;
                }
            }
            Op::RedeemCancelled { id } => {
                cancelled.insert(*id);
            }
            _ => {}
        }
    }
    let received: u64 = records
        .iter()
        .filter(|r| r.inbound && r.state == PaymentState::Succeeded)
        .filter(|r| r.payment_hash.is_some_and(|h| deposits.contains(&h)))
        .map(|r| r.amount_msat.expect("amount") / 1000)
        .sum();
    let mut left = 0;
    let mut concluded = 0;
    let mut to_attacker_msat = 0;
    let mut seen = HashSet::new();
    for r in records
        .iter()
        .filter(|r| !r.inbound && r.kind != PaymentType::Onchain)
    {
        if r.state != PaymentState::Succeeded {
            continue;
        }
        let hash = r.payment_hash.expect("hash");
        assert!(seen.insert(hash), "{step}: an invoice paid twice");
        if app_payments.contains(&hash) {
            continue;
        }
        let id = invoice_of
            .get(&hash)
            .unwrap_or_else(|| panic!("{step}: a payment that is no redemption's"));
        assert!(
            !cancelled.contains(id),
            "{step}: redemption {id} was paid and its tokens returned"
        );
        let fee = r.fee_paid_msat.unwrap_or(0);
        if attackers_invoices.contains(&hash) {
            to_attacker_msat += r.amount_msat.unwrap_or(0) + fee;
        }
        if let Some(recorded) = paid.get(id) {
            concluded += 1;
            assert_eq!(*recorded, fee, "{step}: redemption {id}'s fee as recorded");
            left += r.amount_msat.expect("amount") / 1000 + fee_sats(fee);
        }
    }
    assert_eq!(
        concluded,
        paid.len(),
        "{step}: every redemption recorded paid was paid"
    );
    let funded = check_app(step, &ledger, &entries, &records);
    assert_eq!(
        ledger.collateral(),
        INITIAL + received - left - funded,
        "{step}: collateral against what came in and went out, and what apps were given"
    );
    assert!(ledger.collateral() >= ledger.supply(), "{step}");
    let apps_sats: u64 = ledger
        .state()
        .apps()
        .values()
        .map(|m| m.div_ceil(1000))
        .sum();
    let really_sats = community.balance().lightning_sats;
    assert!(
        really_sats >= ledger.collateral() + apps_sats,
        "{step}: the node holds {really_sats} sat for {} of collateral and {apps_sats} of apps",
        ledger.collateral()
    );
    // A payout the node saw succeed may not be concluded yet: its tokens are locked, spent.
    let locked_by_attacker: u64 = ledger
        .state()
        .redemptions()
        .values()
        .filter(|r| r.from == *attacker)
        .map(|r| r.amount)
        .sum();
    let spent = burned_by_attacker + locked_by_attacker;
    assert!(
        to_attacker_msat <= spent * 1000,
        "{step}: the attacker got {to_attacker_msat} msat for {spent} tokens burned or locked"
    );
}

#[test]
fn the_books_balance_after_every_step_of_a_random_run() {
    let seed = std::env::var("MOIP_BOOKS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("books: MOIP_BOOKS_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let env = Regtest::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let community = start_node(&env, dir.path(), "community");
    let depositor = start_node(&env, dir.path(), "depositor");
    let honests = start_node(&env, dir.path(), "honests");
    let router = start_node(&env, dir.path(), "router");
    let attackers = start_node(&env, dir.path(), "attackers");
    let stranger = start_node(&env, dir.path(), "stranger");
    fund(
        &env,
        &community,
        &[&depositor, &honests, &router, &attackers],
    );
    fund(
        &env,
        &depositor,
        &[&community, &honests, &router, &attackers],
    );
    fund(
        &env,
        &router,
        &[&community, &depositor, &honests, &attackers],
    );
    open_usable(&env, &community, &honests, 1_000_000, None);
    open_usable(&env, &community, &router, 1_000_000, None);
    open_usable(&env, &depositor, &community, 1_000_000, None);
    open_usable_charging(
        &env,
        &router,
        &attackers,
        500_000,
        ForwardingFee {
            base_msat: 49_000,
            proportional_millionths: 0,
        },
        &[&community],
    );

    let rail: Arc<dyn PaymentRail> = Arc::new(community.clone());
    let config = PoolConfig {
        payout_wait_secs: 2,
        ..PoolConfig::default()
    };
    let books = dir.path().join("ledger.sqlite");
    let mut pool = open_books(&books, &config, &rail);
    let members: Vec<AccountId> = (1..=3).map(account).collect();
    let attacker = account(9);
    let mut hashes = Hashes::default();
    let mut held: Vec<(Preimage, PaymentHash)> = Vec::new();
    let mut holds = Vec::new();
    let mut app_held: Vec<PaymentHash> = Vec::new();
    let balance = |pool: &Pool, who: &AccountId| pool.ledger().lock().expect("l").balance(who);

    for step in 0..60 {
        let action = rng.random_range(0..14);
        let what = match action {
            0 | 1 => {
                // A deposit over Lightning, minted to a member or the attacker.
                let sats = rng.random_range(5_000..40_000);
                let invoice = community
                    .create_invoice(Some(sats * 1000), "deposit", 3_600)
                    .expect("invoice");
                depositor
                    .pay(&invoice.bolt11, None, Default::default(), WAIT)
                    .expect("deposit paid");
                hashes.deposits.insert(invoice.payment_hash);
                wait_until(WAIT, "the deposit credited", || {
                    rt.block_on(credit_lightning_deposit(
                        &*rail,
                        pool.ledger(),
                        invoice.payment_hash,
                    ))
                    .expect("credit")
                });
                let to = if rng.random_bool(0.3) {
                    attacker
                } else {
                    members[rng.random_range(0..3)]
                };
                pool.ledger()
                    .lock()
                    .expect("l")
                    .mint(&to, sats)
                    .expect("mint");
                format!("deposit {sats}")
            }
            2 => {
                let (from, to) = (
                    members[rng.random_range(0..3)],
                    members[rng.random_range(0..3)],
                );
                let have = balance(&pool, &from);
                if from != to && have > 0 {
                    let amount = rng.random_range(1..=have);
                    pool.ledger()
                        .lock()
                        .expect("l")
                        .transfer(&from, &to, amount)
                        .expect("transfer");
                }
                "transfer".into()
            }
            3 => {
                let from = members[rng.random_range(0..3)];
                let have = balance(&pool, &from);
                if have >= 1_000 {
                    let amount = rng.random_range(1_000..=have.min(20_000));
                    let invoice = honests
                        .create_invoice(Some((amount - pool.fee(amount)) * 1000), "out", 3_600)
                        .expect("invoice");
                    let _ = rt.block_on(pool.redeem(&from, amount, &invoice.bolt11, 1.0));
                }
                "honest redemption".into()
            }
            4 | 5 => {
                // Hostile: tiny, or through the 49-sat hop, or to a node nobody reaches.
                let have = balance(&pool, &attacker);
                if have >= 2 {
                    let amount = if rng.random_bool(0.2) {
                        2
                    } else {
                        rng.random_range(1..=have.min(30_000))
                    };
                    let sats_out = amount - pool.fee(amount);
                    let payee = if rng.random_bool(0.8) {
                        &attackers
                    } else {
                        &stranger
                    };
                    if let Ok(invoice) =
                        payee.create_invoice(Some(sats_out.max(1) * 1000), "mine", 3_600)
                    {
                        hashes.attackers_invoices.insert(invoice.payment_hash);
                        let _ = rt.block_on(pool.redeem(&attacker, amount, &invoice.bolt11, 1.0));
                    }
                }
                "hostile redemption".into()
            }
            6 => {
                // Hostile: a hold invoice, held.
                let have = balance(&pool, &attacker);
                if have >= 1_000 && held.len() < 2 {
                    let amount = rng.random_range(1_000..=have.min(20_000));
                    let preimage = Preimage::random();
                    let invoice = attackers
                        .create_hold_invoice(
                            preimage.payment_hash(),
                            (amount - pool.fee(amount)) * 1000,
                            "held",
                            3_600,
                        )
                        .expect("invoice");
                    hashes.attackers_invoices.insert(invoice.payment_hash);
                    if rt
                        .block_on(pool.redeem(&attacker, amount, &invoice.bolt11, 1.0))
                        .is_ok()
                    {
                        held.push((preimage, invoice.payment_hash));
                        holds.push(invoice.payment_hash);
                    }
                }
                "held redemption".into()
            }
            7 => {
                // The attacker ends a held payment: settles it or fails it.
                if !held.is_empty() {
                    let (preimage, hash) = held.remove(rng.random_range(0..held.len()));
                    // Settled if the payment arrived and the coin says so; failed otherwise.
                    let settled =
                        rng.random_bool(0.5) && attackers.settle_hold_invoice(preimage).is_ok();
                    if !settled {
                        let _ = attackers.cancel_hold_invoice(hash);
                    }
                }
                "a hold ended".into()
            }
            9 => {
                // The operator funds the app from free collateral; beyond it, refused.
                let sats = rng.random_range(5_000..40_000);
                let mut ledger = pool.ledger().lock().expect("l");
                let (free, len) = (ledger.state().free_collateral(), ledger.len());
                let funded = ledger.commit(Op::AppFund { app: app(), sats });
                if sats <= free {
                    funded.expect("funded from free collateral");
                    format!("app funded {sats}")
                } else {
                    assert!(
                        matches!(funded, Err(LedgerError::InsufficientCollateral { .. })),
                        "{funded:?}"
                    );
                    assert_eq!(ledger.len(), len, "a refused funding changed the books");
                    format!("app funding {sats} refused")
                }
            }
            10 => {
                // A customer pays an invoice the app made: its own money.
                let sats = rng.random_range(1_000..20_000);
                let invoice = community
                    .create_invoice(Some(sats * 1000), "sale", 3_600)
                    .expect("invoice");
                depositor
                    .pay(&invoice.bolt11, None, Default::default(), WAIT)
                    .expect("the sale paid");
                pool.ledger()
                    .lock()
                    .expect("l")
                    .commit(Op::AppReceived {
                        app: app(),
                        msat: sats * 1000,
                        hash: invoice.payment_hash.to_string(),
                    })
                    .expect("received");
                format!("app received {sats}")
            }
            11 => {
                // The app pays an honest invoice, or tries to spend more than it has.
                let have = pool
                    .ledger()
                    .lock()
                    .expect("l")
                    .state()
                    .app_balance_msat(&app());
                let amount_msat = if rng.random_bool(0.3) {
                    have + 1_000
                } else {
                    rng.random_range(1_000_000..=(have / 2).max(1_000_000))
                };
                let invoice = honests
                    .create_invoice(Some(amount_msat), "bill", 3_600)
                    .expect("invoice");
                let how = app_pays(
                    &pool,
                    &community,
                    &invoice.bolt11,
                    amount_msat,
                    &mut hashes.app_payments,
                );
                format!("app pays {amount_msat} msat: {how}")
            }
            12 => {
                // Hostile payee: through the 49-sat hop, or a hold invoice held past the wait.
                // Below 3,900 sat the fee cap (1 % + 10 sat) is short of the hop's 49 sat.
                let have = pool
                    .ledger()
                    .lock()
                    .expect("l")
                    .state()
                    .app_balance_msat(&app());
                let least_msat = if rng.random_bool(0.3) {
                    1_000_000
                } else {
                    4_000_000
                };
                let amount_msat = rng.random_range(least_msat..=(have / 2).max(least_msat));
                if rng.random_bool(0.5) || app_held.len() >= 2 {
                    let invoice = attackers
                        .create_invoice(Some(amount_msat), "mine", 3_600)
                        .expect("invoice");
                    let how = app_pays(
                        &pool,
                        &community,
                        &invoice.bolt11,
                        amount_msat,
                        &mut hashes.app_payments,
                    );
                    format!("app pays the attacker {amount_msat} msat: {how}")
                } else {
                    let preimage = Preimage::random();
                    let invoice = attackers
                        .create_hold_invoice(preimage.payment_hash(), amount_msat, "held", 3_600)
                        .expect("invoice");
                    let how = app_pays(
                        &pool,
                        &community,
                        &invoice.bolt11,
                        amount_msat,
                        &mut hashes.app_payments,
                    );
                    if how != "refused" {
                        held.push((preimage, invoice.payment_hash));
                        app_held.push(invoice.payment_hash);
                        holds.push(invoice.payment_hash);
                    }
                    format!("app pays the attacker's hold invoice {amount_msat} msat: {how}")
                }
            }
            _ => {
                // A restart: the pool and its ledger rebuilt from the journal on disk.
                drop(pool);
                pool = open_books(&books, &config, &rail);
                rt.block_on(pool.recover());
                "restart".into()
            }
        };
        rt.block_on(pool.process());
        resolve_apps(&rt, &pool, &rail);
        let step = format!("step {step} ({what})");
        eprintln!("books: {step}");
        check_books(&rt, &step, &pool, &community, &attacker, &hashes);
    }

    // The end: the attacker gives up and fails every payment to their hold invoices as it
    // arrives (a retry after a restart sends one again). Every honest member's redemption
    // ends — whatever the attacker left locked of their own — and the books balance.
    wait_until(WAIT, "the honest members' redemptions to end", || {
        for hash in &holds {
            let _ = attackers.cancel_hold_invoice(*hash);
        }
        rt.block_on(pool.process());
        resolve_apps(&rt, &pool, &rail);
        let ledger = pool.ledger().lock().expect("l");
        let state = ledger.state();
        (!state
            .redemptions()
            .values()
            .any(|r| members.contains(&r.from))
            && state.open_app_charges().next().is_none())
        .then_some(())
    });
    check_books(&rt, "the end", &pool, &community, &attacker, &hashes);

    for node in [community, depositor, honests, router, attackers, stranger] {
        node.stop().expect("stop");
    }
}
