//! `buildlog ship --loki` end to end against the test Loki: every corpus build round trips,
//! shipping twice stores once, failures are retried, refusals are dead-lettered (exit code 3)
//! and the dead-letter file replays, and a big input ships in bounded memory.

mod common;
mod test_loki;

use common::{bin as buildlog, corpus};

use buildlog::sink::dead_letter::parse_record;
use buildlog::Event;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use test_loki::{Fault, TestLoki};

fn builds() -> Vec<PathBuf> {
    let v = common::corpus_builds();
    assert!(v.len() >= 13, "corpus builds: {v:?}");
    v
}

fn convert(path: &Path) -> Vec<Event> {
    common::convert_dir(path, &[])
}

fn ship(loki: &TestLoki, extra: &[&str], path: &Path, dead_letter: &Path) -> Output {
    buildlog()
        .args([
            "ship",
            "-q",
            "--loki",
            &loki.url,
            "--label",
            "host=ci-runner",
        ])
        .args(["--loki-min-backoff", "0.05", "--loki-max-backoff", "0.2"])
        .arg("--dead-letter")
        .arg(dead_letter)
        .args(extra)
        .arg(path)
        .output()
        .unwrap()
}

/// The counts of the Loki summary line ship prints on stderr.
fn summary(out: &Output) -> HashMap<String, u64> {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("buildlog: loki: "))
        .unwrap_or_else(|| panic!("no loki summary in {err}"));
    let words: Vec<&str> = line
        .split([' ', ',', '(', ')'])
        .filter(|w| !w.is_empty())
        .collect();
    let mut m = HashMap::new();
    for w in words.windows(2) {
        if let Ok(n) = w[0].parse::<u64>() {
            m.insert(w[1].to_string(), n);
        }
    }
    m
}

#[test]
fn every_corpus_build_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for build in builds() {
        let name = build.file_name().unwrap().to_string_lossy().to_string();
        let expected = convert(&build);
        assert!(!expected.is_empty(), "{name}");
        let loki = TestLoki::start();
        let out = ship(&loki, &[], &build, &dir.path().join(format!("{name}.dl")));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = summary(&out);
        assert_eq!(s["events"], expected.len() as u64, "{name}");
        assert_eq!(s["delivered"], expected.len() as u64, "{name}");

        let stored = loki.entries();
        assert_eq!(
            stored.len(),
            expected.len(),
            "{name}: every event arrives once"
        );
        let by_id: HashMap<&str, &Event> =
            expected.iter().map(|e| (e.event_id.as_str(), e)).collect();
        assert_eq!(by_id.len(), expected.len(), "{name}: event ids are unique");
        let mut seen = std::collections::HashSet::new();
        let mut cut = 0;
        for s in &stored {
            let got: Event = serde_json::from_str(&s.line)
                .unwrap_or_else(|e| panic!("{name}: line is not an event ({e}): {:.200}", s.line));
            let want = by_id[got.event_id.as_str()];
            assert!(
                seen.insert(got.event_id.clone()),
                "{name}: {} twice",
                got.event_id
            );
            if want.to_json().len() > 262_144 {
                // cut to Loki's line limit, still a valid event, flagged
                cut += 1;
                assert!(got.truncated && s.line.len() <= 262_144, "{name}");
                assert_eq!((got.seq, &got.feature), (want.seq, &want.feature));
            } else {
                assert_eq!(&got, want, "{name}");
            }
            let mut labels = BTreeMap::new();
            labels.insert("host".to_string(), "ci-runner".to_string());
            labels.insert("job".to_string(), "container-build".to_string());
            labels.insert("level".to_string(), want.level.as_lower().to_string());
            if !want.feature.is_empty() {
                labels.insert("feature".to_string(), want.feature.clone());
            }
            assert_eq!(s.labels, labels, "{name}");
            let sm = &s.structured_metadata;
            assert_eq!(sm["correlation_id"], *want.correlation_id, "{name}");
            assert_eq!(sm["event_type"], want.event_type.as_str());
            assert_eq!(sm["event_id"], want.event_id);
            assert_eq!(
                sm.get("command_num").cloned(),
                want.command_num.map(|n| n.to_string())
            );
            assert_eq!(
                sm.get("trace_id").map(String::as_str),
                want.trace_id.as_deref()
            );
            assert_eq!(
                sm.get("span_id").map(String::as_str),
                want.span_id.as_deref()
            );
            assert_eq!(
                s.ts,
                want.timestamp.millis() as i128 * 1_000_000 + (want.seq % 1_000_000) as i128
            );
        }
        if name.starts_with("build-15") {
            assert_eq!(cut, 1, "the 300 KB terraform line is cut to fit");
        }
        assert_eq!(loki.counts().1, 0, "{name}: nothing deduplicated away");
    }
}

#[test]
fn shipping_twice_stores_once() {
    let dir = tempfile::tempdir().unwrap();
    let build = corpus().join("build-02-failure");
    let n = convert(&build).len() as u64;
    let loki = TestLoki::start();
    for _ in 0..2 {
        let out = ship(
            &loki,
            &["--loki-encoding", "json"],
            &build,
            &dir.path().join("dl"),
        );
        assert_eq!(out.status.code(), Some(0));
    }
    assert_eq!(loki.counts(), (n, n));
}

#[test]
fn retries_through_errors_and_dropped_connections() {
    let dir = tempfile::tempdir().unwrap();
    let build = corpus().join("build-09-log-levels-2026-01");
    let n = convert(&build).len();
    let loki = TestLoki::start();
    loki.fail_next(1, Fault::Close);
    loki.fail_next(1, Fault::Status(429, None));
    loki.fail_next(1, Fault::Hang);
    loki.fail_next(1, Fault::Status(502, None));
    let out = ship(
        &loki,
        &["--request-timeout", "1"],
        &build,
        &dir.path().join("dl"),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out);
    assert_eq!(
        (s["delivered"], s["retries"], s["dead-lettered"]),
        (n as u64, 4, 0)
    );
    assert_eq!(loki.entries().len(), n);
    assert!(!dir.path().join("dl").exists());
}

#[test]
fn refusals_are_dead_lettered_with_exit_3_and_the_file_replays() {
    let dir = tempfile::tempdir().unwrap();
    let dl = dir.path().join("dead-letter.jsonl");
    let build = corpus().join("build-15-control-bytes");
    let events = convert(&build);
    // A Loki with a 4 KiB max_line_size refuses the long lines buildlog cuts only at 256 KiB.
    let strict = TestLoki::start_with(4096, true);
    let out = ship(&strict, &[], &build, &dl);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("max entry size '4096' bytes exceeded"),
        "{err}"
    );
    let s = summary(&out);
    let records: Vec<_> = std::fs::read_to_string(&dl)
        .unwrap()
        .lines()
        .map(|l| parse_record(l).expect("a dead-letter record"))
        .collect();
    assert!(!records.is_empty());
    assert_eq!(s["dead-lettered"], records.len() as u64);
    assert_eq!(s["delivered"] + s["dead-lettered"], events.len() as u64);
    assert!(records
        .iter()
        .all(|r| r.sink == "loki" && r.reason.starts_with("Loki answered HTTP 400: ")));
    // every refused (too long) event is in the file
    let long: Vec<&Event> = events.iter().filter(|e| e.to_json().len() > 4096).collect();
    assert!(!long.is_empty());
    for e in &long {
        assert!(
            records.iter().any(|r| r.event.event_id == e.event_id),
            "{}",
            e.event_id
        );
    }

    // Replaying the file into a Loki that takes them delivers every record.
    let good = TestLoki::start();
    let out = ship(&good, &[], &dl, &dir.path().join("dl2"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = good.entries();
    for r in &records {
        // The record of the 300 KB terraform line is longer than the default --max-line-bytes
        // (256 KiB) of the input: replay must read event JSON lines whole.
        let len = serde_json::to_string(&r.event).unwrap().len();
        assert!(
            stored
                .iter()
                .any(|s| s.structured_metadata["event_id"] == r.event.event_id),
            "event {} ({len} bytes of JSON) was not replayed",
            r.event.event_id
        );
    }
    assert_eq!(stored.len(), records.len());
}

/// A realistic install log of `lines` output lines in a few commands.
fn big_install_log(path: &Path, lines: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let rule = "-".repeat(80);
    let eq = "=".repeat(80);
    writeln!(f, "{eq}\nFeature Installation Log: Big\nVersion: 1.0.0\nStart Time: 2026-01-05 10:00:00\n{eq}\n\n").unwrap();
    let per_cmd = lines / 4;
    for c in 1..=4 {
        writeln!(f, "[10:0{c}:00] COMMAND #{c}: Installing packages part {c}").unwrap();
        writeln!(f, "Executing: apt-get install -y big-{c}\n{rule}").unwrap();
        for i in 0..per_cmd {
            match i % 4 {
                0 => writeln!(f, "Get:{i} http://deb.debian.org/debian trixie/main amd64 libpkg{i} amd64 1.{i}-1 [{i} kB]"),
                1 => writeln!(f, "Unpacking libpkg{i}:amd64 (1.{i}-1) ..."),
                2 => writeln!(f, "Setting up libpkg{i}:amd64 (1.{i}-1) ..."),
                _ => writeln!(f, "Processing triggers for man-db (2.13.0-1) ..."),
            }
            .unwrap();
        }
        writeln!(f, "{rule}\nExit code: 0 (Duration: 50s)\n").unwrap();
    }
}

/// The process's anonymous resident memory (heap, stacks), in KiB: what events piling up
/// would grow. Not VmHWM: that counts the pages of the binary's own code too, which are
/// 27 MB of a debug build and have nothing to do with the input.
fn anon_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("RssAnon:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn a_big_input_ships_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big-install.log");
    let lines = 520_000;
    big_install_log(&log, lines);
    let input_mb = std::fs::metadata(&log).unwrap().len() / (1 << 20);
    let loki = TestLoki::start_with(262_144, false);
    let mut child = buildlog()
        .args(["ship", "-q", "--loki", &loki.url, "--dead-letter"])
        .arg(dir.path().join("dl"))
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = anon_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    let (stored, dups) = loki.counts();
    // output lines plus the feature, command and end events
    assert!(stored >= lines as u64 && dups == 0, "{stored} {dups}");
    // The events' JSON alone is several times the input; none of it may pile up. What may
    // be held: the queue (4096 events), four requests in flight with their events, the
    // batch being filled (31-35 MB measured, debug or release).
    assert!(input_mb >= 25, "{input_mb} MB");
    assert!(
        peak > 0 && peak < 48 * 1024,
        "peak anonymous RSS {peak} KiB for {input_mb} MB of input"
    );
    eprintln!(
        "shipped {stored} entries from {input_mb} MB with peak anonymous RSS {} MiB",
        peak / 1024
    );
}
