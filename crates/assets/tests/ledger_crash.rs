//! Crash consistency: a writer process is killed with SIGKILL at random points while it
//! commits, many times, and after each kill the journal must still verify and replay, hold
//! every entry the writer had acknowledged (and at most the one in flight beyond), and keep the
//! invariants — collateral covers supply, balances plus escrows are the supply, no token lost or
//! doubled. Run against SQLite and PostgreSQL.
//!
//! The writer is this test binary itself, re-run with `--ignored --exact crash_writer` and the
//! store in `MOIP_LEDGER_CRASH_STORE`; it prints `acked <seq>` after each commit returns.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moip_assets::ledger::{
    AccountId, CollateralSource, JournalStore, Ledger, LedgerError, PostgresJournal, SqliteJournal,
    TaskId, TokenInfo, TokenLedger,
};
use moip_testkit::postgres::TempPostgres;

const SUPPLY: u64 = 1_000_000;
const ACCOUNTS: u8 = 4;

fn token() -> TokenInfo {
    TokenInfo {
        id: "crash".into(),
        name: "Crash test".into(),
        symbol: "CRS".into(),
    }
}

fn account(n: u8) -> AccountId {
    AccountId::from_bytes([n + 1; 32])
}

/// xorshift64*, seeded from the clock: different kill points each run, no dependency.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

enum Store {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Store {
    fn spec(&self) -> String {
        match self {
            Store::Sqlite(path) => format!("sqlite:{}", path.display()),
            Store::Postgres(url) => format!("postgres:{url}"),
        }
    }
}

fn with_ledger<T>(spec: &str, f: impl FnOnce(&mut dyn Writer) -> T) -> T {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        let mut ledger = Ledger::create(
            SqliteJournal::open(std::path::Path::new(path)).expect("open"),
            token(),
        )
        .expect("ledger");
        f(&mut ledger)
    } else if let Some(url) = spec.strip_prefix("postgres:") {
        let mut ledger = Ledger::create(
            PostgresJournal::connect(url, "crash").expect("connect"),
            token(),
        )
        .expect("ledger");
        f(&mut ledger)
    } else {
        panic!("unknown store {spec}")
    }
}

/// What the crash test needs of a ledger, whatever its store.
trait Writer: TokenLedger {
    fn len(&self) -> u64;
    fn escrowed(&self) -> u64;
    fn held(&self) -> u64;
}

impl<S: JournalStore> Writer for Ledger<S> {
    fn len(&self) -> u64 {
        Ledger::len(self)
    }
    fn escrowed(&self) -> u64 {
        (0..8)
            .filter_map(|t| self.escrow(&TaskId(format!("task-{t}"))).map(|e| e.amount))
            .sum()
    }
    fn held(&self) -> u64 {
        self.state().balances().values().sum()
    }
}

/// The child: commits random transfers and escrow moves until it is killed.
#[test]
#[ignore = "run by the crash tests as their writer process"]
fn crash_writer() {
    let spec = std::env::var("MOIP_LEDGER_CRASH_STORE").expect("MOIP_LEDGER_CRASH_STORE");
    with_ledger(&spec, |ledger| {
        let mut rng = Rng::new();
        loop {
            let from = account(rng.below(u64::from(ACCOUNTS)) as u8);
            let to = account(rng.below(u64::from(ACCOUNTS)) as u8);
            let task = TaskId(format!("task-{}", rng.below(8)));
            let balance = ledger.balance(&from);
            let result = match rng.below(10) {
                0 if ledger.escrow(&task).is_none() && balance > 0 => {
                    ledger.lock_escrow(&task, &from, 1 + rng.below(balance))
                }
                1 if ledger.escrow(&task).is_some() => ledger.release(&task, &to),
                2 if ledger.escrow(&task).is_some() => ledger.refund(&task),
                _ if balance > 0 && from != to => {
                    ledger.transfer(&from, &to, 1 + rng.below(balance))
                }
                _ => continue,
            };
            match result {
                Ok(receipt) => println!("acked {}", receipt.seq),
                Err(e) => panic!("the writer's own checks should prevent {e}"),
            }
        }
    });
}

fn check_invariants(ledger: &dyn Writer) -> Vec<String> {
    let mut violations = Vec::new();
    if ledger.collateral() < ledger.supply() {
        violations.push(format!(
            "collateral {} < supply {}",
            ledger.collateral(),
            ledger.supply()
        ));
    }
    if ledger.supply() != SUPPLY {
        violations.push(format!("supply {} != {SUPPLY}", ledger.supply()));
    }
    if ledger.held() + ledger.escrowed() != ledger.supply() {
        violations.push(format!(
            "held {} + escrowed {} != supply {}",
            ledger.held(),
            ledger.escrowed(),
            ledger.supply()
        ));
    }
    if ledger.supply_root().sum != ledger.supply() {
        violations.push("the tree's sum is not the supply".into());
    }
    violations
}

/// Seeds the ledger, then kills the writer `rounds` times at random points.
fn kill_9_rounds(store: Store, rounds: usize) {
    let spec = store.spec();
    with_ledger(&spec, |ledger| {
        ledger
            .deposit(
                SUPPLY,
                CollateralSource::Lightning {
                    payment_hash: "00".repeat(32),
                },
            )
            .expect("deposit");
        for n in 0..ACCOUNTS {
            ledger
                .mint(&account(n), SUPPLY / u64::from(ACCOUNTS))
                .expect("mint");
        }
    });
    let mut rng = Rng::new();
    let mut violations = Vec::new();
    let mut acked_total = 0;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--ignored",
                "--exact",
                "crash_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MOIP_LEDGER_CRASH_STORE", &spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("stdout");
        let kill_after = 1 + rng.below(40);
        let mut last_acked = None;
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut lines = BufReader::new(stdout).lines();
        let ack = |line: &str, last: &mut Option<u64>| {
            if let Some(seq) = line.strip_prefix("acked ") {
                *last = seq.trim().parse::<u64>().ok();
                true
            } else {
                false
            }
        };
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if ack(&line, &mut last_acked) {
                seen += 1;
                if seen >= kill_after {
                    // Up to 2 ms more, so the kill lands at different points of a commit.
                    let spin = Instant::now() + Duration::from_micros(rng.below(2_000));
                    while Instant::now() < spin {
                        std::hint::spin_loop();
                    }
                    break;
                }
            }
            assert!(Instant::now() < deadline, "the writer stalled");
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        // What the writer acknowledged before it died is still in the pipe.
        for line in lines.map_while(Result::ok) {
            if ack(&line, &mut last_acked) {
                seen += 1;
            }
        }
        let last_acked = last_acked.unwrap_or_else(|| panic!("round {round}: nothing acked"));
        acked_total += seen;

        with_ledger(&spec, |ledger| {
            // Everything acknowledged is there, plus at most the entry in flight.
            let len = ledger.len();
            if len < last_acked + 1 || len > last_acked + 2 {
                violations.push(format!(
                    "round {round}: {len} entries after acking entry {last_acked}"
                ));
            }
            for v in check_invariants(ledger) {
                violations.push(format!("round {round}: {v}"));
            }
        });
    }
    println!(
        "{} rounds, {acked_total} commits acknowledged, {} invariant violations",
        rounds,
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn sqlite_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    kill_9_rounds(Store::Sqlite(dir.path().join("ledger.sqlite")), 30);
}

#[test]
fn postgres_survives_kill_9() {
    let server = TempPostgres::start();
    kill_9_rounds(Store::Postgres(server.url()), 15);
}

#[test]
fn a_refused_change_is_never_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = Store::Sqlite(dir.path().join("ledger.sqlite")).spec();
    let len = with_ledger(&spec, |ledger| {
        let before = ledger.len();
        assert!(matches!(
            ledger.transfer(&account(0), &account(1), 1),
            Err(LedgerError::InsufficientBalance { .. })
        ));
        assert_eq!(ledger.len(), before);
        before
    });
    with_ledger(&spec, |ledger| assert_eq!(ledger.len(), len));
}
