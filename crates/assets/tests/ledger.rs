//! The token ledger against each of its stores — SQLite (a file), PostgreSQL (a real server in
//! a throwaway cluster) and memory — with the same checks: the rules (mint only against free
//! collateral, no spending beyond a balance, escrows, redemptions, deposits counted once), the
//! supply tree and its proofs, reopening, and replayed, reordered, conflicting and corrupt
//! journal entries.

use moip_assets::ledger::{
    AccountId, CollateralSource, Entry, JournalStore, Ledger, LedgerError, MemoryJournal, Op,
    PostgresJournal, Settlement, SqliteJournal, StoreError, TaskId, TokenInfo, TokenLedger,
};
use moip_assets::mssmt::LeafNode;
use moip_testkit::postgres::TempPostgres;

fn token() -> TokenInfo {
    TokenInfo {
        id: "bakery".into(),
        name: "Bakery hours".into(),
        symbol: "BKH".into(),
    }
}

fn account(n: u8) -> AccountId {
    AccountId::from_bytes([n; 32])
}

fn ln(n: u8) -> CollateralSource {
    CollateralSource::Lightning {
        payment_hash: format!("{n:02x}").repeat(32),
    }
}

/// Every rule, on a fresh ledger in `store`; returns the ledger for the reopen checks.
fn exercise<S: JournalStore>(store: S) -> Ledger<S> {
    let mut ledger = Ledger::create(store, token()).expect("create");
    let (alice, bob, carol) = (account(1), account(2), account(3));
    assert_eq!(ledger.token(), Some(token()));

    // Nothing to mint against yet.
    assert!(matches!(
        ledger.mint(&alice, 1),
        Err(LedgerError::InsufficientCollateral { free: 0, wanted: 1 })
    ));
    ledger.deposit(100_000, ln(1)).expect("deposit");
    assert!(matches!(
        ledger.deposit(100_000, ln(1)),
        Err(LedgerError::DuplicateDeposit(_))
    ));
    ledger
        .deposit(
            50_000,
            CollateralSource::OnChain {
                outpoint: format!("{}:0", "cd".repeat(32)),
            },
        )
        .expect("on-chain deposit");
    assert_eq!(ledger.collateral(), 150_000);

    ledger.mint(&alice, 120_000).expect("mint");
    assert!(matches!(
        ledger.mint(&bob, 30_001),
        Err(LedgerError::InsufficientCollateral {
            free: 30_000,
            wanted: 30_001
        })
    ));
    assert!(matches!(ledger.mint(&bob, 0), Err(LedgerError::ZeroAmount)));

    ledger.transfer(&alice, &bob, 20_000).expect("transfer");
    assert!(matches!(
        ledger.transfer(&bob, &carol, 20_001),
        Err(LedgerError::InsufficientBalance {
            balance: 20_000,
            wanted: 20_001,
            ..
        })
    ));
    assert!(matches!(
        ledger.transfer(&bob, &bob, 1),
        Err(LedgerError::Invalid(_))
    ));

    // Escrow: locked tokens leave the balance but stay in the supply.
    let (paint, fix) = (
        TaskId("paint-the-hall".into()),
        TaskId("fix-the-roof".into()),
    );
    ledger.lock_escrow(&paint, &alice, 30_000).expect("lock");
    ledger.lock_escrow(&fix, &alice, 10_000).expect("lock");
    assert!(matches!(
        ledger.lock_escrow(&paint, &alice, 1),
        Err(LedgerError::EscrowExists(_))
    ));
    assert_eq!(ledger.balance(&alice), 60_000);
    assert_eq!(ledger.supply(), 120_000);
    ledger.release(&paint, &carol).expect("release");
    ledger.refund(&fix).expect("refund");
    assert!(matches!(
        ledger.release(&paint, &carol),
        Err(LedgerError::UnknownEscrow(_))
    ));
    assert_eq!(ledger.balance(&carol), 30_000);
    assert_eq!(ledger.balance(&alice), 70_000);
    // Each ended escrow says how it ended (what a node replaying its Work log checks against).
    assert_eq!(
        ledger.settled(&paint).map(|s| s.settlement),
        Some(Settlement::Released(carol))
    );
    assert_eq!(
        ledger
            .settled(&fix)
            .map(|s| (s.escrow.amount, s.settlement)),
        Some((10_000, Settlement::Refunded))
    );
    assert_eq!(ledger.settled(&TaskId("never".into())), None);

    // Redemption: 10 000 tokens burned for 9 900 sat; the fee stays as free collateral.
    ledger.burn(&carol, 10_000, 9_900).expect("burn");
    assert!(matches!(
        ledger.burn(&carol, 100, 101),
        Err(LedgerError::Invalid(_))
    ));
    assert_eq!(ledger.supply(), 110_000);
    assert_eq!(ledger.collateral(), 140_100);
    assert!(matches!(
        ledger.withdraw(30_101),
        Err(LedgerError::InsufficientCollateral { free: 30_100, .. })
    ));
    ledger.withdraw(100).expect("withdraw free collateral");
    assert!(ledger.collateral() >= ledger.supply());

    // The supply tree: its sum is the supply; holders prove their balance, others its absence,
    // and a forged leaf does not verify.
    let root = ledger.supply_root();
    assert_eq!(root.sum, ledger.supply());
    let (leaf, proof) = ledger.supply_proof(&bob);
    assert_eq!(leaf.sum, 20_000);
    proof
        .verify_inclusion(&root, &bob.leaf_key(), &leaf)
        .expect("bob's balance is in the committed supply");
    let forged = LeafNode::new(leaf.value.clone(), 2_000_000);
    assert!(proof
        .verify_inclusion(&root, &bob.leaf_key(), &forged)
        .is_err());
    let (empty, absent) = ledger.supply_proof(&account(9));
    assert!(empty.is_empty());
    absent
        .verify_exclusion(&root, &account(9).leaf_key())
        .expect("a stranger holds nothing");

    // Entries from elsewhere must be the next one and link to the end.
    let entries = ledger.entries(0).expect("entries");
    let last = entries.last().expect("an entry").clone();
    assert!(matches!(
        ledger.apply_entry(last.clone()),
        Err(LedgerError::Replayed { .. })
    ));
    let ahead = Entry {
        seq: last.seq + 2,
        ..last.clone()
    };
    assert!(matches!(
        ledger.apply_entry(ahead),
        Err(LedgerError::OutOfOrder { .. })
    ));
    let unlinked = Entry {
        seq: last.seq + 1,
        op: Op::Transfer {
            from: alice,
            to: bob,
            amount: 1,
        },
        ..last.clone()
    };
    assert!(matches!(
        ledger.apply_entry(unlinked),
        Err(LedgerError::BrokenChain { .. })
    ));
    let linked = Entry {
        seq: last.seq + 1,
        prev: ledger.head().iter().map(|b| format!("{b:02x}")).collect(),
        time: last.time,
        op: Op::Transfer {
            from: alice,
            to: bob,
            amount: 1,
        },
    };
    ledger.apply_entry(linked).expect("the next entry applies");
    assert_eq!(ledger.balance(&bob), 20_001);
    ledger
}

fn reopens_to_the_same_state<S: JournalStore>(ledger: Ledger<S>, reopen: impl FnOnce(S) -> S) {
    let (root, len, balance) = (
        ledger.supply_root(),
        ledger.len(),
        ledger.balance(&account(1)),
    );
    let store = reopen(ledger.into_store());
    let again = Ledger::open(store).expect("reopen");
    assert_eq!(again.supply_root(), root);
    assert_eq!(again.len(), len);
    assert_eq!(again.balance(&account(1)), balance);
    // The same token again is fine; another is refused.
    let store = again.into_store();
    let again = Ledger::create(store, token()).expect("same token");
    let other = TokenInfo {
        id: "other".into(),
        ..token()
    };
    assert!(matches!(
        Ledger::create(again.into_store(), other),
        Err(LedgerError::AlreadyCreated)
    ));
}

#[test]
fn memory() {
    let ledger = exercise(MemoryJournal::default());
    reopens_to_the_same_state(ledger, |s| s);
}

#[test]
fn sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.sqlite");
    let ledger = exercise(SqliteJournal::open(&path).expect("open"));
    reopens_to_the_same_state(ledger, |s| {
        drop(s);
        SqliteJournal::open(&path).expect("reopen")
    });

    // Two writers on one file: the second one's append at a taken position is refused.
    let mut first = Ledger::open(SqliteJournal::open(&path).expect("open")).expect("ledger");
    let mut second = Ledger::open(SqliteJournal::open(&path).expect("open")).expect("ledger");
    first.transfer(&account(1), &account(2), 5).expect("first");
    assert!(matches!(
        second.transfer(&account(1), &account(3), 5),
        Err(LedgerError::Store(StoreError::Conflict(_)))
    ));
    drop((first, second));

    // An edited entry: the chain no longer verifies and the ledger refuses to open.
    let conn = rusqlite_edit(&path);
    drop(conn);
    assert!(matches!(
        Ledger::open(SqliteJournal::open(&path).expect("open")),
        Err(LedgerError::Corrupt { .. })
    ));
}

/// Raises the first mint's amount behind the ledger's back.
fn rusqlite_edit(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open");
    let body: String = conn
        .query_row(
            "SELECT body FROM journal WHERE body LIKE '%\"op\":\"mint\"%' ORDER BY seq LIMIT 1",
            [],
            |row| row.get(0),
        )
        .expect("a mint");
    let edited = body.replace("120000", "900000");
    assert_ne!(body, edited);
    conn.execute(
        "UPDATE journal SET body = ?1 WHERE body = ?2",
        rusqlite::params![edited, body],
    )
    .expect("edit");
    conn
}

#[test]
fn postgres() {
    let server = TempPostgres::start();
    let url = server.url();
    let ledger = exercise(PostgresJournal::connect(&url, "bakery").expect("connect"));
    reopens_to_the_same_state(ledger, |s| {
        drop(s);
        PostgresJournal::connect(&url, "bakery").expect("reconnect")
    });
    // Ledgers of one database are independent.
    let other = Ledger::create(
        PostgresJournal::connect(&url, "farm").expect("connect"),
        TokenInfo {
            id: "farm".into(),
            name: "Farm days".into(),
            symbol: "FRM".into(),
        },
    )
    .expect("a second ledger");
    assert_eq!(other.len(), 1);

    let mut first = Ledger::open(PostgresJournal::connect(&url, "bakery").expect("c")).expect("l");
    let mut second = Ledger::open(PostgresJournal::connect(&url, "bakery").expect("c")).expect("l");
    first.transfer(&account(1), &account(2), 5).expect("first");
    assert!(matches!(
        second.transfer(&account(1), &account(3), 5),
        Err(LedgerError::Store(StoreError::Conflict(_)))
    ));
}
