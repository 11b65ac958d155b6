//! The Loki sink against the test Loki, fed with hand-made events through the library
//! (the `ship` command over the corpus is in `loki_ship.rs`), and the test Loki's own
//! fidelity to Loki's answers.

mod test_loki;

use buildlog::sink::dead_letter::{parse_record, DeadLetter};
use buildlog::sink::http::TransportArgs;
use buildlog::sink::loki::LokiArgs;
use buildlog::sink::SinkReport;
use buildlog::{Event, EventType, Level, Timestamp};
use clap::Parser;
use std::path::Path;
use std::sync::Arc;
use test_loki::{Fault, TestLoki};

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    transport: TransportArgs,
    #[command(flatten)]
    loki: LokiArgs,
}

fn event(feature: &str, msg: &str, ms: i64, seq: u64) -> Event {
    let mut e = Event::new(EventType::Output, Level::Info, feature, msg);
    e.timestamp = Timestamp(ms);
    e.seq = seq;
    e.correlation_id = "build-1763321440-k3x9qa".into();
    e.event_id = format!("{feature}-{seq}");
    e.command_num = Some(2);
    e
}

/// Ships `events` through the Loki sink configured by `flags`, as `ship` would.
fn ship(loki: &TestLoki, flags: &[&str], events: &[Event], dead_letter: &Path) -> SinkReport {
    let mut argv = vec![
        "t",
        "--loki",
        loki.url.as_str(),
        "--label",
        "host=test-host",
    ];
    argv.extend_from_slice(flags);
    let f = Flags::try_parse_from(argv).unwrap();
    let sink = f
        .loki
        .build(&f.transport, DeadLetter::new(Some(dead_letter)))
        .unwrap()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let events: Vec<Arc<Event>> = events.iter().cloned().map(Arc::new).collect();
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let task = tokio::spawn(sink.run(rx));
        for e in events {
            tx.send(e).await.unwrap();
        }
        drop(tx);
        task.await.unwrap().unwrap()
    })
}

const FAST_RETRY: [&str; 6] = [
    "--loki-min-backoff",
    "0.05",
    "--loki-max-backoff",
    "0.2",
    "--loki-batch-wait",
    "0.1",
];

#[test]
fn repeated_identical_lines_are_all_stored() {
    let loki = TestLoki::start();
    let dir = tempfile::tempdir().unwrap();
    // 50 identical output lines within the same second: only seq tells them apart.
    let events: Vec<Event> = (0..50)
        .map(|i| event("Python", "Collecting numpy", 1_763_321_440_000, 100 + i))
        .collect();
    for fmt in ["raw", "json"] {
        let loki = TestLoki::start();
        let r = ship(
            &loki,
            &["--line-format", fmt],
            &events,
            &dir.path().join("dl"),
        );
        assert_eq!((r.received, r.delivered, r.dead_lettered), (50, 50, 0));
        let stored = loki.entries();
        assert_eq!(stored.len(), 50, "{fmt}");
        let ts: std::collections::BTreeSet<i128> = stored.iter().map(|s| s.ts).collect();
        assert_eq!(ts.len(), 50, "every entry has its own timestamp");
        assert_eq!(*ts.first().unwrap(), 1_763_321_440_000_000_100);
        if fmt == "raw" {
            assert!(stored.iter().all(|s| s.line == "Collecting numpy"));
        }
    }
    drop(loki);
}

#[test]
fn shipping_twice_stores_once_and_labels_and_metadata_are_right() {
    let loki = TestLoki::start();
    let dir = tempfile::tempdir().unwrap();
    let mut events = vec![
        event("Python", "a", 1_000, 1),
        event("Node.js", "b", 2_000, 2),
    ];
    events[1].level = Level::Warn;
    events[1].trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    for round in 1..=2 {
        let r = ship(&loki, &[], &events, &dir.path().join("dl"));
        assert_eq!(r.delivered, 2, "round {round}");
    }
    assert_eq!(
        loki.counts(),
        (2, 2),
        "second round deduplicated by Loki's rule"
    );
    let stored = loki.entries();
    assert_eq!(stored.len(), 2);
    let labels: Vec<(&str, &str)> = stored[1]
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        vec![
            ("feature", "Node.js"),
            ("host", "test-host"),
            ("job", "container-build"),
            ("level", "warn"),
        ]
    );
    let sm = &stored[1].structured_metadata;
    assert_eq!(sm["correlation_id"], "build-1763321440-k3x9qa");
    assert_eq!(sm["event_type"], "output");
    assert_eq!(sm["command_num"], "2");
    assert_eq!(sm["event_id"], "Node.js-2");
    assert_eq!(sm["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(!sm.contains_key("span_id"), "absent ids are not sent");
    let back: Event = serde_json::from_str(&stored[1].line).unwrap();
    assert_eq!(back, events[1]);
    assert_eq!(stored[1].ts, 2_000_000_002);
    let reqs = loki.requests();
    assert!(reqs
        .iter()
        .all(|r| r.status == 204 && r.content_type.as_deref() == Some("application/x-protobuf")));
}

#[test]
fn json_encoding_with_gzip_tenant_and_bearer_token() {
    let loki = TestLoki::start();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-abc\n").unwrap();
    let events: Vec<Event> = (0..10)
        .map(|i| event("Rust", "cargo build", 5_000, i))
        .collect();
    let r = ship(
        &loki,
        &[
            "--loki-encoding",
            "json",
            "--loki-gzip",
            "--loki-tenant",
            "team-a",
            "--loki-bearer-token-file",
            token.to_str().unwrap(),
        ],
        &events,
        &dir.path().join("dl"),
    );
    assert_eq!(r.delivered, 10);
    let req = &loki.requests()[0];
    assert_eq!(req.content_type.as_deref(), Some("application/json"));
    assert_eq!(req.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(req.tenant.as_deref(), Some("team-a"));
    assert_eq!(req.authorization.as_deref(), Some("Bearer tok-abc"));
    let stored = loki.entries();
    assert_eq!(stored.len(), 10);
    assert_eq!(stored[3].structured_metadata["event_id"], "Rust-3");
}

#[test]
fn retries_until_loki_recovers() {
    let loki = TestLoki::start();
    let dir = tempfile::tempdir().unwrap();
    loki.fail_next(2, Fault::Status(500, None));
    loki.fail_next(1, Fault::Status(429, Some(1)));
    loki.fail_next(1, Fault::Close);
    loki.fail_next(1, Fault::Hang);
    loki.fail_next(1, Fault::Status(503, None));
    let events: Vec<Event> = (0..20)
        .map(|i| event("Go", "go: downloading", 9_000, i))
        .collect();
    let mut flags = FAST_RETRY.to_vec();
    flags.extend(["--request-timeout", "1"]);
    let r = ship(&loki, &flags, &events, &dir.path().join("dl"));
    assert_eq!((r.delivered, r.dead_lettered, r.retried), (20, 0, 6));
    assert_eq!(loki.entries().len(), 20);
    let statuses: Vec<u16> = loki.requests().iter().map(|r| r.status).collect();
    // the hung request never answered; the closed one is recorded as 0
    assert_eq!(statuses, vec![500, 500, 429, 0, 503, 204]);
    assert!(!dir.path().join("dl").exists());
}

#[test]
fn gives_up_after_max_retries_into_the_dead_letter_file() {
    let loki = TestLoki::start();
    let dir = tempfile::tempdir().unwrap();
    let dl = dir.path().join("dead.jsonl");
    loki.fail_next(3, Fault::Status(500, None));
    let events: Vec<Event> = (0..5).map(|i| event("Java", "mvn", 9_000, i)).collect();
    let mut flags = FAST_RETRY.to_vec();
    flags.extend(["--loki-max-retries", "2"]);
    let r = ship(&loki, &flags, &events, &dl);
    assert_eq!((r.delivered, r.dead_lettered, r.retried), (0, 5, 2));
    let recs: Vec<_> = std::fs::read_to_string(&dl)
        .unwrap()
        .lines()
        .map(|l| parse_record(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 5);
    assert!(
        recs[0]
            .reason
            .starts_with("gave up after 3 attempts: HTTP 500"),
        "{}",
        recs[0].reason
    );
    assert_eq!(recs[4].event, events[4]);
    assert_eq!(loki.entries().len(), 0);
}

#[test]
fn a_400_dead_letters_only_the_refused_stream_with_lokis_reason() {
    // A Loki whose max_line_size is 1 KiB, shipped to with our 256 KiB default: Loki refuses
    // the long line, stores the rest of the request (a 400 is a partial success).
    let loki = TestLoki::start_with(1024, true);
    let dir = tempfile::tempdir().unwrap();
    let dl = dir.path().join("dead.jsonl");
    let mut events: Vec<Event> = (0..6).map(|i| event("Python", "ok", 1_000, i)).collect();
    events.push(event("Rust", &"x".repeat(5000), 1_000, 7));
    events.push(event("Rust", "short", 1_000, 8));
    let r = ship(&loki, &["--line-format", "raw"], &events, &dl);
    assert_eq!((r.received, r.delivered, r.dead_lettered), (8, 6, 2));
    let recs: Vec<_> = std::fs::read_to_string(&dl)
        .unwrap()
        .lines()
        .map(|l| parse_record(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].sink, "loki");
    assert_eq!(
        recs[0].reason,
        "Loki answered HTTP 400: max entry size '1024' bytes exceeded for stream \
         '{feature=\"Rust\", host=\"test-host\", job=\"container-build\", level=\"info\", \
         service_name=\"container-build\"}' while adding an entry with length '5000' bytes"
    );
    assert_eq!(recs[0].event.seq, 7);
    // the Rust stream's valid entry was stored by the first request; replaying is harmless
    let stored = loki.entries();
    assert_eq!(stored.len(), 7);
    // each stream was sent again on its own to find the refused one: Loki's deduplication
    // made the resent 6 + 1 valid entries harmless
    assert_eq!(loki.counts(), (7, 7));
}

#[test]
fn test_loki_answers_like_loki() {
    let loki = TestLoki::start();
    let post = |body: String| raw_post(&loki, "application/json", body);
    let labels16: serde_json::Map<String, serde_json::Value> =
        (0..16).map(|i| (format!("l{i}"), "v".into())).collect();
    let (code, text) = post(
        serde_json::json!({"streams":[{"stream": labels16, "values":[["1","a"]]}]}).to_string(),
    );
    assert_eq!(code, 400);
    assert!(
        text.starts_with("entry for stream '{l0=\"v\", l1=\"v\", l10=\"v\""),
        "{text}"
    );
    assert!(
        text.ends_with("service_name=\"unknown_service\"}' has 16 label names; limit 15\n"),
        "{text}"
    );
    let (code, text) = post(r#"{"streams":[{"stream":{"a-b":"x"},"values":[["1","a"]]}]}"#.into());
    assert_eq!(
        (code, text.as_str()),
        (
            400,
            "couldn't parse labels: 1:3: parse error: unexpected character inside braces: '-'\n"
        )
    );
    assert_eq!(post(r#"{"streams":[]}"#.into()).0, 422);
    let big = "y".repeat(262_145);
    let (code, text) = post(
        serde_json::json!({"streams":[{"stream":{"job":"t1"},"values":[["1", big],["2", big],["3","ok"]]},
                                      {"stream":{"job":"t2"},"values":[["1","fine"]]}]})
        .to_string(),
    );
    assert_eq!(code, 400);
    assert!(text.starts_with("2 errors like: max entry size '262144' bytes exceeded for stream '{job=\"t1\", service_name=\"t1\"}'"), "{text}");
    assert_eq!(
        loki.counts(),
        (2, 0),
        "the valid entries of a refused request are stored"
    );
    let exact = "z".repeat(262_144);
    assert_eq!(
        post(
            serde_json::json!({"streams":[{"stream":{"job":"t1"},"values":[["4", exact]]}]})
                .to_string()
        )
        .0,
        204
    );
    // an entry more than an hour behind its stream's newest
    let (code, text) = post(
        serde_json::json!({"streams":[{"stream":{"job":"t3"},"values":[["7200000000000","new"],["1","old"]]}]})
            .to_string(),
    );
    assert_eq!(code, 400);
    assert!(text.contains("entry too far behind"), "{text}");
    // protobuf that is not snappy
    assert_eq!(
        raw_post(&loki, "application/x-protobuf", "garbage".into()),
        (400, "snappy: corrupt input\n".to_string())
    );
    assert_eq!(
        test_loki::parse_labels(r#"{a="b\"c", d="e\\f"}"#).unwrap(),
        vec![("a".into(), "b\"c".into()), ("d".into(), "e\\f".into())]
    );
    assert!(test_loki::parse_labels(r#"{a="b""#).is_err());
}

fn raw_post(loki: &TestLoki, content_type: &str, body: String) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(loki.push_url())
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}
