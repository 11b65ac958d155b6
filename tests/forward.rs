//! `buildlog ship --forward`: against the test forward server (round trips in both modes,
//! lost acks, dropped connections, an unreachable server) and, when available, the real
//! Fluent Bit `forward` input.

mod common;
#[path = "common/forward_server.rs"]
mod forward_server;
mod peers;

use buildlog::Event;
use common::{bin, convert_dir, corpus};
use forward_server::{Entry, ForwardServer};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;

fn ship(addr: &str, build: &Path, extra: &[&str], dead: &Path) -> std::process::Output {
    let timeout: &[&str] = if extra.contains(&"--forward-timeout") {
        &[]
    } else {
        &["--forward-timeout", "2"]
    };
    bin()
        .args(["ship", "--quiet", "--forward", addr])
        .args(timeout)
        .args(["--forward-retry-min-ms", "10", "--dead-letter"])
        .arg(dead)
        .args(extra)
        .arg(build)
        .output()
        .unwrap()
}

/// Every event once, in order, with its record equal to its JSON form and its time exact.
fn assert_entries_are_events(entries: &[Entry], events: &[Event]) {
    assert_eq!(entries.len(), events.len());
    for (entry, ev) in entries.iter().zip(events) {
        assert_eq!(entry.tag, "buildlog");
        assert_eq!(
            entry.secs as i64 * 1000 + entry.nanos as i64 / 1_000_000,
            ev.timestamp.millis()
        );
        assert_eq!(entry.nanos % 1_000_000, 0);
        let json: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
        assert_eq!(entry.record, json);
    }
}

/// Entries by event id, for servers that may have seen a message twice.
fn by_id(entries: &[Entry]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in entries {
        *m.entry(e.record["event_id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    m
}

#[test]
fn forward_mode_with_acks_delivers_every_event_of_the_corpus_once() {
    let server = ForwardServer::start();
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    for build in [
        "build-01-success",
        "build-02-failure",
        "build-14-chicago-dst",
    ] {
        let path = corpus().join(build);
        let events = convert_dir(&path, &[]);
        let before = server.entries().len();
        let out = ship(
            &server.addr,
            &path,
            &["--forward-ack", "--forward-batch", "50"],
            &dead,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let entries = server.entries()[before..].to_vec();
        assert_entries_are_events(&entries, &events);
        assert!(entries
            .iter()
            .all(|e| e.mode == "forward" && e.chunk.is_some()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expect = format!(
            "forward: {n} events, {n} delivered (0 already stored), 0 retries, 0 dead-lettered",
            n = events.len()
        );
        assert!(stderr.contains(&expect), "{stderr}");
    }
    assert!(server.state.errors.lock().unwrap().is_empty());
    assert!(!dead.exists());
}

#[test]
fn packed_forward_without_acks() {
    let server = ForwardServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = corpus().join("build-08-json-2025-11");
    let events = convert_dir(&path, &[]);
    let out = ship(
        &server.addr,
        &path,
        &[
            "--forward-mode",
            "packed-forward",
            "--forward-tag",
            "buildlog",
        ],
        &dir.path().join("dead.jsonl"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without acks the client closes right after writing; the server may still be reading.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.entries().len() < events.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let entries = server.entries();
    assert_entries_are_events(&entries, &events);
    assert!(entries
        .iter()
        .all(|e| e.mode == "packed_forward" && e.chunk.is_none()));
}

#[test]
fn a_lost_ack_resends_the_message_and_nothing_is_missing() {
    let server = ForwardServer::start();
    server.state.drop_acks.store(1, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let path = corpus().join("build-01-success");
    let events = convert_dir(&path, &[]);
    let out = ship(
        &server.addr,
        &path,
        &[
            "--forward-ack",
            "--forward-batch",
            "40",
            "--forward-timeout",
            "0.5",
        ],
        &dir.path().join("dead.jsonl"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{n} delivered (0 already stored), 1 retries, 0 dead-lettered",
            n = events.len()
        )),
        "{stderr}"
    );
    // At least once: the first message (its ack lost) arrived twice, everything else once.
    let ids = by_id(&server.entries());
    assert_eq!(ids.len(), events.len());
    // A message holds what was queued, up to 40 events: the resent one is a prefix.
    let twice = events.iter().filter(|e| ids[&e.event_id] == 2).count();
    assert!((1..=40).contains(&twice), "{twice}");
    assert!(events[..twice].iter().all(|e| ids[&e.event_id] == 2));
    assert!(events[twice..].iter().all(|e| ids[&e.event_id] == 1));
}

#[test]
fn closed_connections_are_retried() {
    let server = ForwardServer::start();
    server.state.close_on_message.store(2, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let path = corpus().join("build-02-failure");
    let events = convert_dir(&path, &[]);
    let out = ship(
        &server.addr,
        &path,
        &["--forward-ack"],
        &dir.path().join("dead.jsonl"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(", 2 retries, 0 dead-lettered"));
    let entries = server.entries();
    assert_entries_are_events(&entries, &events);
    // The two refused messages came again; nothing else was sent twice.
    let chunks: std::collections::BTreeSet<_> = entries.iter().map(|e| e.chunk.clone()).collect();
    assert_eq!(
        server.state.messages.load(Ordering::SeqCst),
        chunks.len() + 2
    );
}

#[test]
fn undeliverable_events_go_to_the_dead_letter_file() {
    // A port nobody listens on.
    let addr = format!("127.0.0.1:{}", peers::free_port());
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let path = corpus().join("build-01-success");
    let events = convert_dir(&path, &[]);
    let out = ship(&addr, &path, &["--forward-retries", "1"], &dead);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&dead).unwrap();
    let recs: Vec<buildlog::sink::dead_letter::DeadLetterRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), events.len());
    assert!(recs.iter().all(|r| r.sink == "forward"
        && r.reason.starts_with("gave up after ")
        && r.reason.contains(" attempts: connecting to 127.0.0.1:")));
    assert_eq!(
        recs.iter()
            .map(|r| r.event.event_id.as_str())
            .collect::<Vec<_>>(),
        events
            .iter()
            .map(|e| e.event_id.as_str())
            .collect::<Vec<_>>()
    );
}

#[test]
fn bad_forward_flags_are_usage_errors() {
    for args in [
        &["--forward", "no-port"][..],
        &["--forward", "127.0.0.1:1", "--forward-batch", "0"],
        &["--forward", "127.0.0.1:1", "--forward-timeout", "0"],
    ] {
        let out = bin()
            .args(["ship", "--quiet"])
            .args(args)
            .arg(corpus().join("build-01-success"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--forward"));
    }
}

/// Lines of Fluent Bit's `stdout` output in `json_lines` format.
fn json_records(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn real_fluent_bit_forward_input_gets_records_at_their_times() {
    let Some(fb) = peers::peer_path(
        "real_fluent_bit_forward_input_gets_records_at_their_times",
        "fluent-bit",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = peers::free_port();
    let out_file = dir.path().join("fb.out");
    let child = std::process::Command::new(&fb)
        .args(["-f", "1", "-i", "forward", "-p", "listen=127.0.0.1"])
        .arg("-p")
        .arg(format!("port={port}"))
        .args([
            "-o",
            "stdout",
            "-p",
            "format=json_lines",
            "-p",
            "json_date_format=epoch_ms",
            "-m",
            "*",
        ])
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _guard = peers::KillOnDrop(child);
    let addr = format!("127.0.0.1:{port}");
    peers::wait_for_port(&addr);
    let path = corpus().join("build-02-failure");
    let events = convert_dir(&path, &[]);
    for mode in ["forward", "packed-forward"] {
        let out = ship(
            &addr,
            &path,
            &["--forward-ack", "--forward-mode", mode],
            &dir.path().join("dead.jsonl"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut records = Vec::new();
    while std::time::Instant::now() < deadline {
        records = json_records(&std::fs::read_to_string(&out_file).unwrap());
        if records.len() >= 2 * events.len() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(records.len(), 2 * events.len());
    for (rec, ev) in records.iter().zip(events.iter().chain(events.iter())) {
        assert_eq!(rec["date"].as_i64(), Some(ev.timestamp.millis()), "{rec}");
        let mut rec = rec.clone();
        rec.as_object_mut().unwrap().remove("date");
        let json: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
        assert_eq!(rec, json);
    }
}
