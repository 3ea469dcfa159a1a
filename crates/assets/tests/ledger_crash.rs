//! Crash consistency: a writer process is killed with SIGKILL at random points while it
//! commits, many times, and after each kill the journal must still verify and replay, hold
//! every entry the writer had acknowledged (and at most the one in flight beyond), replay to
//! exactly the balances and escrows the writer saw after each acknowledged commit (every one
//! since the first round, not only the last), and keep the invariants — collateral covers
//! supply, balances plus escrows are the supply, no token lost or doubled. Run against SQLite
//! and PostgreSQL. A writer that dies on its own (a panic) or goes silent fails the test.
//!
//! The writer is this test binary itself, re-run with `--ignored --exact crash_writer` and the
//! store in `MOIP_LEDGER_CRASH_STORE`; after each commit returns it prints
//! `acked <seq> <entry hash> <balances and escrows>`. The kill points come from a seed printed
//! at the start; `MOIP_CRASH_SEED=<n>` replays them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moip_assets::ledger::{
    entry_hash, AccountId, CollateralSource, Entry, JournalStore, Ledger, LedgerError,
    PostgresJournal, SqliteJournal, State, TaskId, TokenInfo, TokenLedger,
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

/// How long the writer may stay silent before the test fails rather than wait.
const SILENCE: Duration = Duration::from_secs(30);

/// xorshift64*: different kill points each run, replayable from the printed seed.
struct Rng(u64);

impl Rng {
    /// From `MOIP_CRASH_SEED`, or the clock.
    fn seeded() -> (Rng, u64) {
        let seed = std::env::var("MOIP_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        (Rng(seed | 1), seed)
    }
    fn new() -> Rng {
        Rng::seeded().0
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
    fn all_entries(&mut self) -> Vec<Entry>;
}

/// The balances of the test's accounts and the escrows of its tasks, as one line.
fn digest(balance: impl Fn(&AccountId) -> u64, escrow: impl Fn(&TaskId) -> Option<u64>) -> String {
    let balances: Vec<String> = (0..ACCOUNTS)
        .map(|n| balance(&account(n)).to_string())
        .collect();
    let escrows: Vec<String> = (0..8)
        .map(|t| {
            escrow(&TaskId(format!("task-{t}")))
                .unwrap_or(0)
                .to_string()
        })
        .collect();
    format!("{}|{}", balances.join(","), escrows.join(","))
}

fn ledger_digest(ledger: &dyn Writer) -> String {
    digest(
        |a| ledger.balance(a),
        |t| ledger.escrow(t).map(|e| e.amount),
    )
}

fn state_digest(state: &State) -> String {
    digest(|a| state.balance(a), |t| state.escrow(t).map(|e| e.amount))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl<S: JournalStore> Writer for Ledger<S> {
    fn len(&self) -> u64 {
        Ledger::len(self)
    }
    fn all_entries(&mut self) -> Vec<Entry> {
        self.entries(0).expect("the journal reads back")
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
                Ok(receipt) => println!(
                    "acked {} {} {}",
                    receipt.seq,
                    hex(&receipt.hash),
                    ledger_digest(ledger)
                ),
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
    let (mut rng, seed) = Rng::seeded();
    println!("kill points from MOIP_CRASH_SEED={seed}");
    let mut violations = Vec::new();
    // Every commit ever acknowledged: its entry's hash and the balances the writer saw after it.
    let mut acked: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let logs = tempfile::tempdir().expect("tempdir");
    for round in 0..rounds {
        let stderr_path = logs.path().join(format!("writer-{round}.log"));
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
            .stderr(std::fs::File::create(&stderr_path).expect("writer log"))
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("stdout");
        let (lines_tx, lines) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    return;
                }
            }
        });
        let kill_after = 1 + rng.below(40);
        let mut last_acked = None;
        let mut seen = 0;
        let mut record = |line: &str, last: &mut Option<u64>| -> bool {
            let Some(rest) = line.strip_prefix("acked ") else {
                return false;
            };
            let mut parts = rest.split(' ');
            let (Some(seq), Some(hash), Some(state)) = (parts.next(), parts.next(), parts.next())
            else {
                panic!("round {round}: a malformed acknowledgement: {line}");
            };
            let seq: u64 = seq.parse().expect("a sequence number");
            acked.insert(seq, (hash.to_owned(), state.to_owned()));
            *last = Some(seq);
            true
        };
        loop {
            match lines.recv_timeout(SILENCE) {
                Ok(line) => {
                    if record(&line, &mut last_acked) {
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
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("round {round}: the writer went silent for {SILENCE:?}");
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait().expect("wait");
                    panic!(
                        "round {round}: the writer ended on its own ({status}) before the kill:\n{}",
                        std::fs::read_to_string(&stderr_path).unwrap_or_default()
                    );
                }
            }
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        reader.join().expect("reader thread");
        // What the writer acknowledged before it died is still in the pipe.
        for line in lines.try_iter() {
            record(&line, &mut last_acked);
        }
        let last_acked = last_acked.unwrap_or_else(|| panic!("round {round}: nothing acked"));

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
            // Replayed from the start, the journal passes through every acknowledged state.
            let mut state = State::default();
            let mut checked = 0;
            for entry in ledger.all_entries() {
                let hash = hex(&entry_hash(&entry.body()));
                if let Err(e) = state.apply(&entry.op) {
                    violations.push(format!("round {round}: entry {} replays: {e}", entry.seq));
                    break;
                }
                if let Some((acked_hash, acked_state)) = acked.get(&entry.seq) {
                    checked += 1;
                    if *acked_hash != hash {
                        violations.push(format!(
                            "round {round}: entry {} is not the one acknowledged",
                            entry.seq
                        ));
                    }
                    let replayed = state_digest(&state);
                    if *acked_state != replayed {
                        violations.push(format!(
                            "round {round}: after entry {} the writer saw {acked_state}, the \
                             replay gives {replayed}",
                            entry.seq
                        ));
                    }
                }
            }
            if checked != acked.len() {
                violations.push(format!(
                    "round {round}: {} acknowledged entries are missing",
                    acked.len() - checked
                ));
            }
        });
    }
    println!(
        "{} rounds, {} commits acknowledged and replayed to the same balances, {} invariant \
         violations",
        rounds,
        acked.len(),
        violations.len()
    );
    assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
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
