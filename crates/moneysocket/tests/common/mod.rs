//! Helpers shared by the vector tests: the vectors are read from the shared reference folder at
//! run time, never copied.

#![allow(dead_code)]

use serde_json::Value;

/// Reads `tests/vectors/moneysocket/<file>` (an unmodified copy of the reference vectors) as JSON.
pub fn load_vectors(file: &str) -> Vec<Value> {
    let path = format!(
        "{}/../../tests/vectors/moneysocket/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    match serde_json::from_str(&text) {
        Ok(Value::Array(cases)) => cases,
        other => panic!("{path}: expected a JSON array, got {other:?}"),
    }
}

/// Decodes hex (either case).
pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("hex {s:?}: {e}")))
        .collect()
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A string field of a vector case.
pub fn str_field<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("case field {key} is not a string: {case}"))
}

/// Collects per-case failures so one run reports every failing case, then asserts the number
/// of cases seen (so a vector file cannot silently shrink or be skipped).
pub struct Report {
    file: &'static str,
    seen: usize,
    failures: Vec<String>,
}

impl Report {
    pub fn new(file: &'static str) -> Self {
        Report {
            file,
            seen: 0,
            failures: Vec::new(),
        }
    }

    pub fn check(&mut self, name: &str, result: Result<(), String>) {
        self.seen += 1;
        if let Err(why) = result {
            self.failures.push(format!("{name}: {why}"));
        }
    }

    pub fn finish(self, expected_cases: usize) {
        assert!(
            self.failures.is_empty(),
            "{}: failing cases:\n{}",
            self.file,
            self.failures.join("\n")
        );
        assert_eq!(self.seen, expected_cases, "{}: number of cases", self.file);
        println!("{}: {} passed, 0 failed", self.file, self.seen);
    }
}
