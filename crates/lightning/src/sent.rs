//! Outbound payments that succeeded while ldk-node's payment store had no record of them.
//!
//! ldk-node asks LDK to send a BOLT11 payment first and writes the payment's record after. A
//! crash in between leaves LDK with the payment in flight (restored from the channel monitors
//! at the next start) and the store without a record; when that payment succeeds, ldk-node's
//! update finds nothing to update, and only the event knows. The event pump writes such
//! successes here before it marks the event handled, so "was this invoice paid?" keeps its
//! answer across any crash — which is what a caller that pays from a journal (the redemption
//! pool) needs to never pay twice, nor count a paid invoice as unpaid.
//!
//! One line per payment, `<payment hash> <preimage>` in hex, synced to disk before the event is
//! marked handled. A line that does not parse, or whose preimage does not hash to its hash (a
//! write torn by a crash, whose event is then delivered again), is skipped.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::rail::{PaymentHash, Preimage};

/// The file's name in the node's data directory.
pub(crate) const FILE_NAME: &str = "moip_sent";

/// The successes ldk-node's store may lack, read at start and appended to as they happen.
pub(crate) struct SentLog {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    entries: HashMap<PaymentHash, Preimage>,
    /// The file may end in a torn line (found so at start, or a write failed): the next line
    /// starts on a fresh one, or the torn rest would swallow it.
    torn: bool,
}

impl SentLog {
    /// Reads the log in `dir` (none yet is an empty log).
    pub(crate) fn open(dir: &Path) -> io::Result<SentLog> {
        let path = dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let state = State {
            entries: parse(&text),
            torn: !text.is_empty() && !text.ends_with('\n'),
        };
        Ok(SentLog {
            path,
            state: Mutex::new(state),
        })
    }

    /// Records that the payment for `preimage`'s hash succeeded; durable when this returns.
    pub(crate) fn record(&self, preimage: Preimage) -> io::Result<()> {
        let hash = preimage.payment_hash();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.entries.contains_key(&hash) {
            return Ok(());
        }
        let lead = if state.torn { "\n" } else { "" };
        let line = format!("{lead}{hash} {preimage}\n");
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut file| {
                file.write_all(line.as_bytes())?;
                file.sync_data()
            });
        // A failed write may have left part of a line.
        state.torn = written.is_err();
        written?;
        state.entries.insert(hash, preimage);
        Ok(())
    }

    /// The preimage of a payment recorded here.
    pub(crate) fn preimage(&self, hash: &PaymentHash) -> Option<Preimage> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .get(hash)
            .copied()
    }
}

/// The valid lines of a log: each a preimage that proves its hash.
fn parse(text: &str) -> HashMap<PaymentHash, Preimage> {
    text.lines()
        .filter_map(|line| {
            let (hash, preimage) = line.split_once(' ')?;
            let hash: PaymentHash = hash.parse().ok()?;
            let preimage: Preimage = preimage.parse().ok()?;
            (preimage.payment_hash() == hash).then_some((hash, preimage))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reopen_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = SentLog::open(dir.path()).expect("open");
        let paid = Preimage([7; 32]);
        log.record(paid).expect("record");
        log.record(paid).expect("a second record is a no-op");
        // A crash tore the next write; the reopened log skips it and appends after it.
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE_NAME))
            .expect("open");
        file.write_all(b"0123ab").expect("torn");
        drop(file);

        let log = SentLog::open(dir.path()).expect("reopen");
        assert_eq!(log.preimage(&paid.payment_hash()), Some(paid));
        let later = Preimage([9; 32]);
        log.record(later).expect("record after the torn line");
        let log = SentLog::open(dir.path()).expect("reopen");
        assert_eq!(log.preimage(&later.payment_hash()), Some(later));
        assert_eq!(log.preimage(&Preimage([1; 32]).payment_hash()), None);
    }

    #[test]
    fn a_preimage_that_does_not_prove_its_hash_is_refused() {
        let hash = Preimage([1; 32]).payment_hash();
        let text = format!("{hash} {}\n", Preimage([2; 32]));
        assert!(parse(&text).is_empty());
        assert!(parse("not a line\n\n").is_empty());
    }
}
