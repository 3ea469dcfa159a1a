//! Ledger transfers per second (issue 7) on SQLite and on PostgreSQL, in the same run: each
//! transfer is checked, appended to the journal as its own durable transaction (SQLite WAL with
//! `synchronous = FULL`; PostgreSQL with `fsync` and synchronous commit on, its defaults) and
//! applied to the supply tree, one after another — as a community's ledger commits them.
//!
//! PostgreSQL runs in a throwaway cluster from Debian's packages (`moip_testkit::postgres`).
//! Run: `cargo bench -p moip-assets --bench ledger`; `LEDGER_BENCH_TRANSFERS` (default 2 000)
//! changes the count, `LEDGER_BENCH_ACCOUNTS` (default 1 000) the number of accounts.

use std::time::Instant;

use moip_assets::ledger::{
    AccountId, CollateralSource, JournalStore, Ledger, PostgresJournal, SqliteJournal, TokenInfo,
    TokenLedger,
};
use moip_testkit::postgres::TempPostgres;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn account(i: u64) -> AccountId {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&i.to_be_bytes());
    bytes[31] = 1;
    AccountId::from_bytes(bytes)
}

fn run<S: JournalStore>(name: &str, store: S, transfers: u64, accounts: u64) -> f64 {
    let token = TokenInfo {
        id: "bench".into(),
        name: "Bench".into(),
        symbol: "BEN".into(),
    };
    let mut ledger = Ledger::create(store, token).expect("ledger");
    ledger
        .deposit(
            accounts * 1_000_000,
            CollateralSource::Lightning {
                payment_hash: "11".repeat(32),
            },
        )
        .expect("deposit");
    for i in 0..accounts {
        ledger.mint(&account(i), 1_000_000).expect("mint");
    }
    let started = Instant::now();
    for t in 0..transfers {
        let from = account(t % accounts);
        let to = account((t * 7 + 3) % accounts);
        if from != to {
            ledger.transfer(&from, &to, 1 + t % 100).expect("transfer");
        }
    }
    let elapsed = started.elapsed();
    let rate = transfers as f64 / elapsed.as_secs_f64();
    println!(
        "{name}: {transfers} transfers among {accounts} accounts in {:.2} s: {rate:.0} transfers/s \
         ({:.2} ms each)",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / transfers as f64
    );
    rate
}

fn main() {
    let transfers = env_or("LEDGER_BENCH_TRANSFERS", 2_000);
    let accounts = env_or("LEDGER_BENCH_ACCOUNTS", 1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = run(
        "sqlite",
        SqliteJournal::open(&dir.path().join("ledger.sqlite")).expect("sqlite"),
        transfers,
        accounts,
    );
    let server = TempPostgres::start();
    let postgres = run(
        "postgres",
        PostgresJournal::connect(&server.url(), "bench").expect("postgres"),
        transfers,
        accounts,
    );
    println!("ratio sqlite/postgres: {:.2}", sqlite / postgres);
}
