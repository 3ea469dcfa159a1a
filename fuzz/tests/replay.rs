//! Every committed input of every fuzz target, run through the target as an ordinary test: the
//! seeds of `fuzz/corpus/<target>/` and the inputs of past findings in
//! `fuzz/regressions/<target>/`. No libFuzzer and no sanitizer: the same function the target's
//! binary calls, on each file, asserting what the target asserts. One test per target.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// A target: its name (the folder of its inputs and its binary), its function, and its binary
/// (`env!` makes this test fail to compile if the binary is not built alongside it).
type Target = (&'static str, fn(&[u8]), &'static str);

/// Every target.
const TARGETS: &[Target] = &[
    (
        "api_bodies",
        moip_fuzz::api_bodies,
        env!("CARGO_BIN_EXE_api_bodies"),
    ),
    (
        "chain_rpc",
        moip_fuzz::chain_rpc,
        env!("CARGO_BIN_EXE_chain_rpc"),
    ),
    (
        "electrum_request",
        moip_fuzz::electrum_request,
        env!("CARGO_BIN_EXE_electrum_request"),
    ),
    (
        "moneysocket_secure",
        moip_fuzz::moneysocket_secure,
        env!("CARGO_BIN_EXE_moneysocket_secure"),
    ),
    (
        "moneysocket_v0",
        moip_fuzz::moneysocket_v0,
        env!("CARGO_BIN_EXE_moneysocket_v0"),
    ),
    (
        "moneysocket_v1",
        moip_fuzz::moneysocket_v1,
        env!("CARGO_BIN_EXE_moneysocket_v1"),
    ),
    (
        "mssmt_proof",
        moip_fuzz::mssmt_proof,
        env!("CARGO_BIN_EXE_mssmt_proof"),
    ),
    (
        "nwc_request",
        moip_fuzz::nwc_request,
        env!("CARGO_BIN_EXE_nwc_request"),
    ),
    (
        "work_event",
        moip_fuzz::work_event,
        env!("CARGO_BIN_EXE_work_event"),
    ),
];

/// Where the inputs are kept: the seeds, and the findings.
const FOLDERS: [&str; 2] = ["corpus", "regressions"];

fn fuzz_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn files(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every committed input of `target`; fails naming each input that panicked.
fn replay(target: &str) {
    let (_, run, _) = TARGETS
        .iter()
        .find(|(name, _, _)| *name == target)
        .expect("a listed target");
    let mut count = 0;
    let mut failed = Vec::new();
    for folder in FOLDERS {
        for file in files(&fuzz_dir().join(folder).join(target)) {
            let data = fs::read(&file).expect("read input");
            count += 1;
            if panic::catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(count > 0, "no input for {target}");
    assert!(
        failed.is_empty(),
        "{target}: {} of {count} inputs failed: {failed:#?}",
        failed.len()
    );
}

#[test]
fn api_bodies() {
    replay("api_bodies");
}

#[test]
fn chain_rpc() {
    replay("chain_rpc");
}

#[test]
fn electrum_request() {
    replay("electrum_request");
}

#[test]
fn moneysocket_secure() {
    replay("moneysocket_secure");
}

#[test]
fn moneysocket_v0() {
    replay("moneysocket_v0");
}

#[test]
fn moneysocket_v1() {
    replay("moneysocket_v1");
}

#[test]
fn mssmt_proof() {
    replay("mssmt_proof");
}

#[test]
fn nwc_request() {
    replay("nwc_request");
}

#[test]
fn work_event() {
    replay("work_event");
}

/// The list above is every target: each file of `fuzz_targets/` and each folder of inputs is
/// one of them, and each binary was built.
#[test]
fn every_target_is_replayed() {
    let names: Vec<&str> = TARGETS.iter().map(|(name, _, _)| *name).collect();
    let mut sources: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    sources.sort();
    assert_eq!(sources, names, "fuzz_targets/ and TARGETS differ");
    for folder in FOLDERS {
        let Ok(entries) = fs::read_dir(fuzz_dir().join(folder)) else {
            continue;
        };
        for entry in entries {
            let name = entry.expect("directory entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                names.contains(&name.as_ref()),
                "{folder}/{name} is not a target's folder"
            );
        }
    }
    for (name, _, binary) in TARGETS {
        assert!(Path::new(binary).is_file(), "{name}: {binary} not built");
    }
}
