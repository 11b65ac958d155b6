//! Shared helpers of the integration tests: the corpus in the repo and the built binary.
#![allow(dead_code)]

pub mod replay;

use buildlog::Event;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The corpus of real build logs, copied into the repo.
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus")
}

/// Every build directory of the corpus, sorted.
pub fn corpus_builds() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_buildlog"))
}

/// Runs `buildlog convert` on `path` and parses its events.
pub fn convert_dir(path: &Path, extra: &[&str]) -> Vec<Event> {
    let out = bin()
        .arg("convert")
        .arg("--quiet")
        .args(extra)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "convert {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_events(&out.stdout)
}

pub fn parse_events(stdout: &[u8]) -> Vec<Event> {
    stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(l)))
        })
        .collect()
}

/// Copies a directory tree, leaving out the entries named `skip`.
pub fn copy_dir_without(from: &Path, to: &Path, skip: &str) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() == skip {
            continue;
        }
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir_without(&e.path(), &target, skip);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Appends `bytes` to `path` (created if missing), as a build writing its log does.
pub fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The events of a build (as `buildlog convert` gives them) moved in time so that its last
/// event happened at `end_ms` (Unix milliseconds): the build as if it had just run, for
/// servers that judge by the current time (alert rules, dashboards over the last hour).
/// Every other field, ids included, stays as converted.
pub fn build_moved_to(path: &Path, end_ms: i64) -> Vec<Event> {
    let mut events = convert_dir(path, &[]);
    let last = events
        .iter()
        .map(|e| e.timestamp.millis())
        .max()
        .unwrap_or_else(|| panic!("{}: no events", path.display()));
    let shift = end_ms - last;
    for e in &mut events {
        e.timestamp.0 += shift;
    }
    events
}

/// Writes events as JSON lines, the form `buildlog ship` reads back unchanged.
pub fn write_events(path: &Path, events: &[Event]) {
    let mut out = Vec::new();
    for e in events {
        serde_json::to_writer(&mut out, e).unwrap();
        out.push(b'\n');
    }
    std::fs::write(path, out).unwrap();
}
