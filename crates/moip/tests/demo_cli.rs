//! `moip demo` as its own process: the scripted community runs Flow 2 and Flow 1 on the
//! embedded stack and proves its supply on chain, within a time limit, and its summary adds up —
//! sats deposited are the tokens minted, the sats redeemed are the reward less the fee, the
//! supply proof is verified.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Far more than a run takes (seconds on a laptop), for a loaded CI machine.
const LIMIT: Duration = Duration::from_secs(240);

/// Waits for `child` to exit, killing it after `limit`; returns its stdout and stderr.
fn finish(mut child: Child, limit: Duration) -> (std::process::ExitStatus, String, String) {
    // Drain both pipes while waiting, so a chatty child never blocks on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).expect("read the pipe");
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for moip demo") {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill().expect("kill moip demo");
            let _ = child.wait();
            let out = stdout.join().expect("stdout reader");
            let err = stderr.join().expect("stderr reader");
            panic!("moip demo took more than {limit:?}\n--- stdout\n{out}\n--- stderr\n{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = stdout.join().expect("stdout reader");
    let err = stderr.join().expect("stderr reader");
    (status, out, err)
}

/// The first number after `label` on the summary line that starts with it.
fn figure(stdout: &str, label: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in\n{stdout}"));
    line.trim_start()[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure on {line:?}"))
}

#[test]
fn the_demo_runs_both_flows_and_proves_its_supply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_moip"))
        .arg("demo")
        .arg("--data-dir")
        .arg(&data)
        .env("MOIP_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run moip demo");
    let (status, stdout, stderr) = finish(child, LIMIT);
    eprintln!("moip demo ran in {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        status.success(),
        "moip demo failed ({status})\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );

    let deposited = figure(&stdout, "sats deposited:");
    let minted = figure(&stdout, "tokens minted:");
    let attestations = figure(&stdout, "attestations:");
    let reward = figure(&stdout, "reward:");
    let fee = figure(&stdout, "fee:");
    let redeemed = figure(&stdout, "sats redeemed:");
    let supply = figure(&stdout, "supply:");
    assert!(deposited > 0, "{stdout}");
    assert_eq!(deposited, minted, "tokens are minted 1:1:\n{stdout}");
    assert_eq!(attestations, 3, "{stdout}");
    assert!(fee > 0 && fee < reward, "{stdout}");
    assert_eq!(redeemed, reward - fee, "{stdout}");
    assert_eq!(
        supply,
        minted - reward,
        "the redeemed tokens are burned:\n{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("supply proof:    verified")),
        "{stdout}"
    );
    assert!(stdout.contains("moip demo: done in"), "{stdout}");
    for secret in ["nsec1", "tprv", "xprv"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a key was printed"
        );
    }

    // A second run into the same directory is refused: it would meet the first one's chain.
    let again = Command::new(env!("CARGO_BIN_EXE_moip"))
        .arg("demo")
        .arg("--data-dir")
        .arg(&data)
        .env("MOIP_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run moip demo again");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
