//! The Elasticsearch sink against the test Elasticsearch of `tests/test_es`: documents and
//! ids, idempotent re-import, retries of only the failed items, dead-lettering, batching,
//! auth, and the fidelity of the test server itself.

mod test_es;

use buildlog::sink::dead_letter::{parse_record, DeadLetter};
use buildlog::sink::elasticsearch::ElasticsearchArgs;
use buildlog::sink::http::TransportArgs;
use buildlog::sink::{Sink, SinkReport};
use buildlog::{Event, EventType, Level, SourceRef, Timestamp};
use clap::Parser;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use test_es::{Flavour, TestEs};

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    es: ElasticsearchArgs,
    #[command(flatten)]
    transport: TransportArgs,
}

/// Fast retries, so that the tests do not wait.
const FAST: &[&str] = &["--es-backoff-min", "0.01", "--es-backoff-max", "0.05"];

fn sink(url: &str, extra: &[&str], dl: &DeadLetter) -> Box<dyn Sink> {
    let mut args = vec!["t", "--elasticsearch", url];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    let f = Flags::try_parse_from(args).unwrap();
    f.es.build(&f.transport, dl.clone()).unwrap().unwrap()
}

fn ship(sink: Box<dyn Sink>, events: &[Event]) -> SinkReport {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let task = tokio::spawn(sink.run(rx));
        for e in events {
            tx.send(Arc::new(e.clone())).await.unwrap();
        }
        drop(tx);
        task.await.unwrap().unwrap()
    })
}

/// Events made from the JSON logger's files of the corpus (their lines carry a stray `}`,
/// repaired here), with ids as the parser would give them: unique and deterministic.
fn corpus_events() -> Vec<Event> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus");
    let mut events = Vec::new();
    let mut builds: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("json").is_dir())
        .collect();
    builds.sort();
    for build in builds {
        let mut files: Vec<_> = std::fs::read_dir(build.join("json"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "jsonl") && !p.ends_with("build-summary.jsonl")
            })
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim_end();
                // Lines with raw control bytes are the parser's business; skip them here.
                let Ok(v) = serde_json::from_str::<Value>(line)
                    .or_else(|_| serde_json::from_str(&line[..line.len() - 1]))
                else {
                    continue;
                };
                let level = match v["level"].as_str().unwrap() {
                    "DEBUG" => Level::Debug,
                    "WARN" | "WARNING" => Level::Warn,
                    "ERROR" => Level::Error,
                    "FATAL" => Level::Fatal,
                    _ => Level::Info,
                };
                let et: EventType = serde_json::from_value(v["event_type"].clone()).unwrap();
                let mut e = Event::new(
                    et,
                    level,
                    v["feature"].as_str().unwrap(),
                    v["message"].as_str().unwrap(),
                );
                e.timestamp = Timestamp::parse_rfc3339(v["timestamp"].as_str().unwrap()).unwrap();
                e.correlation_id = v["correlation_id"].as_str().unwrap().into();
                e.metadata = v["metadata"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
                    .into();
                let rel = file.strip_prefix(&root).unwrap().display().to_string();
                e.event_id = format!("{:016x}", xxh(&format!("{rel}:{n}")));
                e.seq = n as u64;
                e.source = SourceRef {
                    file: rel.into(),
                    line: n as u64 + 1,
                };
                events.push(e);
            }
        }
    }
    assert!(events.len() > 100, "{}", events.len());
    events
}

fn xxh(s: &str) -> u64 {
    // FNV-1a: a stable id for the test's hand-made events.
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

fn native(e: &Event) -> Value {
    let mut v: Value = serde_json::from_str(&e.to_json()).unwrap();
    v["@timestamp"] = json!(e.timestamp.to_rfc3339());
    v
}

const DS: &str = "logs-container_build-default";

#[test]
fn every_event_is_stored_by_event_id_in_the_data_stream() {
    let es = TestEs::start();
    let events = corpus_events();
    let dl = DeadLetter::new(None);
    let r = ship(sink(&es.url(), &[], &dl), &events);
    assert_eq!(
        (
            r.received,
            r.delivered,
            r.dead_lettered,
            r.already_present,
            r.retried
        ),
        (events.len() as u64, events.len() as u64, 0, 0, 0)
    );
    let docs = es.docs(DS);
    assert_eq!(docs.len(), events.len());
    for e in &events {
        assert_eq!(docs[&e.event_id], native(e), "{}", e.event_id);
    }
    for req in es.requests() {
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/_bulk");
        assert_eq!(req.content_type.as_deref(), Some("application/x-ndjson"));
        assert_eq!(req.content_encoding.as_deref(), Some("gzip"));
        assert!(req.query.as_deref().unwrap().contains("filter_path="));
        assert_eq!(req.status, 200);
        let body = String::from_utf8(req.body.clone()).unwrap();
        assert!(!body.contains("\"_type\""));
        for action in body.lines().step_by(2) {
            let a: Value = serde_json::from_str(action).unwrap();
            assert_eq!(a["create"]["_index"], DS);
        }
    }
}

#[test]
fn importing_again_stores_nothing_new_and_counts_already_present() {
    let es = TestEs::start();
    let events = corpus_events();
    let dl = DeadLetter::new(None);
    ship(sink(&es.url(), &[], &dl), &events);
    let before = es.docs(DS);
    let r = ship(sink(&es.url(), &[], &dl), &events);
    assert_eq!(r.delivered, events.len() as u64);
    assert_eq!(r.already_present, events.len() as u64);
    assert_eq!(r.dead_lettered, 0);
    assert!(r.all_delivered());
    assert_eq!(es.docs(DS), before);
    assert_eq!(dl.count(), 0);
}

#[test]
fn only_items_failed_with_429_or_5xx_are_sent_again() {
    let es = TestEs::start();
    let events: Vec<Event> = corpus_events().into_iter().take(20).collect();
    let a = events[3].event_id.clone();
    let b = events[11].event_id.clone();
    es.fail_item(&a, 429, 2);
    es.fail_item(&b, 503, 1);
    let dl = DeadLetter::new(None);
    let r = ship(sink(&es.url(), &[], &dl), &events);
    assert_eq!(r.delivered, 20);
    assert_eq!(r.dead_lettered, 0);
    assert_eq!(r.retried, 3, "a twice, b once");
    let ids = es.bulk_ids();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0].len(), 20);
    assert_eq!(ids[1], vec![a.clone(), b.clone()]);
    assert_eq!(ids[2], vec![a]);
    assert_eq!(es.docs(DS).len(), 20);
}

#[test]
fn items_rejected_with_400_go_to_the_dead_letter_file_with_the_reason() {
    let es = TestEs::start();
    let events: Vec<Event> = corpus_events().into_iter().take(10).collect();
    let bad = events[4].clone();
    es.fail_item(&bad.event_id, 400, 100);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.jsonl");
    let dl = DeadLetter::new(Some(&path));
    let r = ship(sink(&es.url(), &[], &dl), &events);
    assert_eq!((r.delivered, r.dead_lettered, r.retried), (9, 1, 0));
    assert!(!r.all_delivered());
    assert_eq!(es.bulk_ids().len(), 1, "a 400 is not retried");
    let text = std::fs::read_to_string(&path).unwrap();
    let recs: Vec<_> = text.lines().map(|l| parse_record(l).unwrap()).collect();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].sink, "elasticsearch");
    assert_eq!(recs[0].event, bad);
    assert!(
        recs[0].reason.starts_with(
            "400 document_parsing_exception: [1:42] failed to parse field [metadata.exit_code]"
        ),
        "{}",
        recs[0].reason
    );
    assert_eq!(es.docs(DS).len(), 9);
}

#[test]
fn whole_requests_failing_with_429_or_5xx_are_retried() {
    let es = TestEs::start();
    let events: Vec<Event> = corpus_events().into_iter().take(7).collect();
    es.fail_requests(&[429, 503, 500]);
    let dl = DeadLetter::new(None);
    let r = ship(sink(&es.url(), &[], &dl), &events);
    assert_eq!((r.delivered, r.dead_lettered, r.retried), (7, 0, 21));
    let statuses: Vec<u16> = es.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 503, 500, 200]);
    assert_eq!(es.docs(DS).len(), 7);
}

#[test]
fn retries_are_bounded_and_then_dead_lettered() {
    let es = TestEs::start();
    let events: Vec<Event> = corpus_events().into_iter().take(5).collect();
    es.fail_item(&events[0].event_id, 429, 100);
    es.fail_requests(&[503; 3]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.jsonl");
    let dl = DeadLetter::new(Some(&path));
    let r = ship(sink(&es.url(), &["--es-max-retries", "4"], &dl), &events);
    // 3 whole-request retries, then the item's own retries share the same budget of 4.
    assert_eq!((r.delivered, r.dead_lettered), (4, 1));
    let rec = parse_record(
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rec.event.event_id, events[0].event_id);
    assert!(
        rec.reason
            .starts_with("gave up after 5 attempts: 429 es_rejected_execution_exception"),
        "{}",
        rec.reason
    );
    assert_eq!(es.requests().len(), 5, "1 + 4 retries");
}

#[test]
fn an_unreachable_server_is_retried_then_dead_lettered() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let events: Vec<Event> = corpus_events().into_iter().take(3).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.jsonl");
    let dl = DeadLetter::new(Some(&path));
    let r = ship(
        sink(
            &format!("http://127.0.0.1:{port}"),
            &["--es-max-retries", "2"],
            &dl,
        ),
        &events,
    );
    assert_eq!((r.delivered, r.dead_lettered, r.retried), (0, 3, 6));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(
        text.contains("gave up after 3 attempts: request failed"),
        "{text}"
    );
}

#[test]
fn a_413_splits_the_request() {
    let es = TestEs::start();
    let events: Vec<Event> = corpus_events().into_iter().take(6).collect();
    es.fail_requests(&[413]);
    let dl = DeadLetter::new(None);
    let r = ship(sink(&es.url(), &[], &dl), &events);
    assert_eq!((r.delivered, r.dead_lettered), (6, 0));
    let ids = es.bulk_ids();
    assert_eq!(ids.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3]);
}

#[test]
fn requests_are_cut_by_document_count_and_by_bytes() {
    let es = TestEs::start();
    let events: Vec<Event> = corpus_events().into_iter().take(35).collect();
    let dl = DeadLetter::new(None);
    ship(
        sink(
            &es.url(),
            &["--es-max-docs", "10", "--es-concurrency", "1"],
            &dl,
        ),
        &events,
    );
    let sizes: Vec<usize> = es.bulk_ids().iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 10, 5]);

    let es = TestEs::start();
    ship(
        sink(
            &es.url(),
            &["--es-max-bytes", "2048", "--es-compression", "none"],
            &dl,
        ),
        &events,
    );
    let reqs = es.requests();
    assert!(reqs.len() > 3);
    for r in &reqs {
        assert!(r.content_encoding.is_none());
        let docs = r.body.iter().filter(|&&b| b == b'\n').count() / 2;
        assert!(
            r.body.len() <= 2048 || docs == 1,
            "{} bytes, {docs} docs",
            r.body.len()
        );
    }
    let total: usize = es.bulk_ids().iter().map(Vec::len).sum();
    assert_eq!(total, 35);
    assert_eq!(es.docs(DS).len(), 35);
}

#[test]
fn several_requests_are_in_flight_at_once() {
    let es = TestEs::start();
    es.state.lock().unwrap().delay = std::time::Duration::from_millis(100);
    let events: Vec<Event> = corpus_events().into_iter().take(24).collect();
    let dl = DeadLetter::new(None);
    let r = ship(
        sink(
            &es.url(),
            &["--es-max-docs", "2", "--es-concurrency", "3"],
            &dl,
        ),
        &events,
    );
    assert_eq!(r.delivered, 24);
    assert_eq!(es.bulk_ids().len(), 12);
    assert_eq!(
        es.state.lock().unwrap().max_inflight,
        3,
        "never more than --es-concurrency"
    );
}

#[test]
fn a_partial_batch_is_sent_after_the_flush_interval_while_following() {
    let es = TestEs::start();
    let events: Vec<Event> = corpus_events().into_iter().take(3).collect();
    let dl = DeadLetter::new(None);
    let sink = sink(&es.url(), &["--es-flush-interval", "0.05"], &dl);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let task = tokio::spawn(sink.run(rx));
        for e in &events {
            tx.send(Arc::new(e.clone())).await.unwrap();
        }
        // The input stays open (like `tail -F`), yet the documents arrive.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while es.doc_count() < 3 {
            assert!(tokio::time::Instant::now() < deadline, "not flushed");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        drop(tx);
        let r = task.await.unwrap().unwrap();
        assert_eq!(r.delivered, 3);
    });
    assert_eq!(es.bulk_ids().len(), 1);
}

#[test]
fn dated_indices_with_index_actions_and_ecs_documents() {
    let es = TestEs::start();
    let events = corpus_events();
    let dl = DeadLetter::new(None);
    let args = [
        "--index",
        "build-logs-%Y.%m.%d",
        "--es-action",
        "index",
        "--schema",
        "ecs",
    ];
    let r = ship(sink(&es.url(), &args, &dl), &events);
    assert_eq!(r.delivered, events.len() as u64);
    let indices = es.state.lock().unwrap().docs.clone();
    for e in &events {
        let ts = e.timestamp.to_rfc3339();
        let index = format!("build-logs-{}.{}.{}", &ts[0..4], &ts[5..7], &ts[8..10]);
        let doc = &indices[&index][&e.event_id];
        assert_eq!(doc["@timestamp"], ts.as_str());
        assert_eq!(doc["message"], e.message.as_str());
        assert_eq!(doc["log"]["level"], e.level.as_lower());
        assert_eq!(doc["event"]["dataset"], "container_build");
        assert_eq!(doc["event"]["action"], e.event_type.as_str());
        assert_eq!(doc["container_build"]["correlation_id"], &*e.correlation_id);
        assert_eq!(doc["labels"]["feature"], e.feature.as_str());
        assert_eq!(doc["service"]["name"], "container-build");
    }
    // `index` replaces: a second run is delivered again (200), not "already present".
    let r = ship(sink(&es.url(), &args, &dl), &events);
    assert_eq!((r.delivered, r.already_present), (events.len() as u64, 0));
    assert_eq!(es.doc_count(), events.len());
}

#[test]
fn api_key_is_sent_and_a_refusal_is_dead_lettered() {
    let es = TestEs::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "aWQ6c2VjcmV0\n").unwrap();
    es.state.lock().unwrap().expect_auth = Some("ApiKey aWQ6c2VjcmV0".into());
    let events: Vec<Event> = corpus_events().into_iter().take(4).collect();
    let dl = DeadLetter::new(None);
    let r = ship(
        sink(
            &es.url(),
            &["--es-api-key-file", key.to_str().unwrap()],
            &dl,
        ),
        &events,
    );
    assert_eq!(r.delivered, 4);
    es.state.lock().unwrap().expect_auth = Some("ApiKey other".into());
    let r = ship(
        sink(
            &es.url(),
            &["--es-api-key-file", key.to_str().unwrap()],
            &dl,
        ),
        &events,
    );
    assert_eq!((r.delivered, r.dead_lettered, r.retried), (0, 4, 0));
    assert_eq!(dl.count(), 4);
}

#[test]
fn a_bulk_path_in_the_url_is_used_as_given() {
    let es = TestEs::start();
    let events: Vec<Event> = corpus_events().into_iter().take(2).collect();
    let dl = DeadLetter::new(None);
    let url = format!(
        "{}/insert/elasticsearch/_bulk?_msg_field=message&_time_field=@timestamp",
        es.url()
    );
    let r = ship(sink(&url, &[], &dl), &events);
    assert_eq!(r.delivered, 2);
    let req = &es.requests()[0];
    assert_eq!(req.path, "/insert/elasticsearch/_bulk");
    assert!(
        req.query
            .as_deref()
            .unwrap()
            .starts_with("_msg_field=message&_time_field=%40timestamp&filter_path=")
            || req
                .query
                .as_deref()
                .unwrap()
                .starts_with("_msg_field=message&_time_field=@timestamp&filter_path="),
        "{:?}",
        req.query
    );
}

// The test server itself must follow Elasticsearch's rules, or the tests above prove little.

fn post(es: &TestEs, path: &str, ct: &str, body: &str) -> (u16, Value) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", es.url()))
            .header("content-type", ct)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            serde_json::from_slice(&r.bytes().await.unwrap()).unwrap(),
        )
    })
}

#[test]
fn test_server_enforces_data_stream_and_bulk_rules() {
    let es = TestEs::start();
    let nd = "application/x-ndjson";
    let body = concat!(
        "{\"index\":{\"_index\":\"logs-container_build-default\",\"_id\":\"1\"}}\n{\"@timestamp\":\"2025-11-16T00:00:00Z\"}\n",
        "{\"create\":{\"_index\":\"logs-container_build-default\",\"_id\":\"2\"}}\n{\"message\":\"no time\"}\n",
        "{\"create\":{\"_index\":\"logs-container_build-default\",\"_id\":\"3\"}}\n{\"@timestamp\":\"2025-11-16T00:00:00Z\"}\n",
        "{\"create\":{\"_index\":\"logs-container_build-default\",\"_id\":\"3\"}}\n{\"@timestamp\":\"2025-11-16T00:00:00Z\"}\n",
        "{\"index\":{\"_index\":\"plain\",\"_id\":\"3\"}}\n{\"no_timestamp\":true}\n",
    );
    let (status, v) = post(&es, "/_bulk", nd, body);
    assert_eq!(status, 200);
    assert_eq!(v["errors"], true);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items[0]["index"]["status"], 400);
    assert_eq!(
        items[0]["index"]["error"]["reason"],
        "only write ops with an op_type of create are allowed in data streams"
    );
    assert_eq!(items[1]["create"]["status"], 400);
    assert_eq!(
        items[1]["create"]["error"]["type"],
        "document_parsing_exception"
    );
    assert_eq!(items[2]["create"]["status"], 201);
    assert_eq!(
        items[2]["create"]["_index"],
        ".ds-logs-container_build-default-2026.11.27-000001"
    );
    assert_eq!(items[3]["create"]["status"], 409);
    assert_eq!(
        items[3]["create"]["error"]["type"],
        "version_conflict_engine_exception"
    );
    assert_eq!(items[4]["index"]["status"], 201);

    let (status, v) = post(
        &es,
        "/_bulk",
        nd,
        "{\"create\":{\"_index\":\"x\",\"_type\":\"_doc\",\"_id\":\"1\"}}\n{}\n",
    );
    assert_eq!(status, 400);
    assert_eq!(
        v["error"]["reason"],
        "Action/metadata line [1] contains an unknown parameter [_type]"
    );
    let (status, _) = post(&es, "/_bulk", nd, "{\"create\":{\"_index\":\"x\"}}\n{}");
    assert_eq!(status, 400, "not terminated by a newline");
    let (status, _) = post(
        &es,
        "/_bulk",
        "text/plain",
        "{\"create\":{\"_index\":\"x\"}}\n{}\n",
    );
    assert_eq!(status, 406);
    es.fail_requests(&[429]);
    let (status, v) = post(&es, "/_bulk", nd, "{\"create\":{\"_index\":\"x\"}}\n{}\n");
    assert_eq!(status, 429);
    assert_eq!(v["error"]["type"], "es_rejected_execution_exception");
    assert_eq!(v["status"], 429);
}

#[test]
fn test_server_answers_each_products_version() {
    for (flavour, distribution) in [
        (Flavour::Elasticsearch8, Value::Null),
        (Flavour::OpenSearch2, json!("opensearch")),
    ] {
        let es = TestEs::start_as(flavour);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let body =
            rt.block_on(async { reqwest::get(es.url()).await.unwrap().bytes().await.unwrap() });
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["version"]["distribution"], distribution);
        assert!(v["version"]["number"].as_str().unwrap().starts_with(
            if flavour == Flavour::OpenSearch2 {
                "2."
            } else {
                "8."
            }
        ));
    }
}
