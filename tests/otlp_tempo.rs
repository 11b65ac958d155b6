//! `buildlog ship --otlp` against a real Grafana Tempo: every corpus build, sent over
//! OTLP/HTTP protobuf, OTLP/HTTP JSON and OTLP/gRPC, is found by its trace id with exactly
//! the span tree its events describe; and `TRACEPARENT` parents the build span.
//!
//! Needs `BUILDLOG_PEERS` (the directory holding the `peer` script). Without it the test is
//! skipped, saying so, unless `CI` is set: then it fails. One Tempo serves every assertion.

mod common;

use base64::Engine as _;
use buildlog::enrich::ids;
use buildlog::event::{Event, EventType};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn peers() -> Option<PathBuf> {
    match std::env::var_os("BUILDLOG_PEERS").filter(|p| !p.is_empty()) {
        Some(dir) if Path::new(&dir).join("peer").exists() => Some(PathBuf::from(dir)),
        other => {
            let why = match other {
                Some(d) => format!(
                    "BUILDLOG_PEERS={} has no `peer` script",
                    Path::new(&d).display()
                ),
                None => "BUILDLOG_PEERS is not set".to_string(),
            };
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but the real Tempo is missing: {why}");
            }
            // Written to stderr directly: the test harness would swallow an eprintln!.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED otlp_tempo: {why}; set it to the directory holding `peer` to run against a real Tempo"
            );
            None
        }
    }
}

/// Tempo, stopped when dropped: SIGTERM, then SIGKILL if it is still up after a few seconds.
struct Tempo {
    child: Child,
    http: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Tempo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(4);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A base port with the three after it free too (Tempo's config takes four).
fn free_port_block() -> u16 {
    for _ in 0..200 {
        let base = 20_000 + fastrand::u16(0..40_000);
        let held: Vec<_> = (0..4)
            .map_while(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if held.len() == 4 {
            return base;
        }
    }
    panic!("no block of 4 free ports found");
}

fn start_tempo(peers: &Path) -> Tempo {
    let peer = peers.join("peer");
    let out = Command::new(&peer)
        .args(["path", "tempo"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "peer path tempo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_block();
    let config = Command::new(&peer)
        .arg("tempo-config")
        .arg(dir.path())
        .arg(port.to_string())
        .output()
        .unwrap();
    assert!(config.status.success());
    let cfg_path = dir.path().join("tempo.yaml");
    std::fs::write(&cfg_path, &config.stdout).unwrap();
    let child = Command::new(exe)
        .arg(format!("-config.file={}", cfg_path.display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("tempo.log")).unwrap())
        .spawn()
        .unwrap();
    let tempo = Tempo {
        child,
        http: port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(body) = get(&format!("http://127.0.0.1:{port}/ready")) {
            if body.trim() == "ready" {
                break;
            }
        }
        assert!(Instant::now() < deadline, "Tempo not ready within 90 s");
        std::thread::sleep(Duration::from_millis(300));
    }
    tempo
}

fn get(url: &str) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        resp.text().await.map_err(|e| e.to_string())
    })
}

/// The spans Tempo holds for a trace, by span id (hex).
fn tempo_spans(tempo: &Tempo, trace_id: &str) -> BTreeMap<String, Value> {
    let Ok(body) = get(&format!(
        "http://127.0.0.1:{}/api/v2/traces/{trace_id}",
        tempo.http
    )) else {
        return BTreeMap::new();
    };
    let v: Value = serde_json::from_str(&body).unwrap();
    let mut out = BTreeMap::new();
    for rs in v["trace"]["resourceSpans"].as_array().into_iter().flatten() {
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for s in ss["spans"].as_array().into_iter().flatten() {
                out.insert(b64_hex(s["spanId"].as_str().unwrap()), s.clone());
            }
        }
    }
    out
}

fn b64_hex(s: &str) -> String {
    hex::encode(base64::engine::general_purpose::STANDARD.decode(s).unwrap())
}

/// What a span must look like, from the events alone.
#[derive(Debug)]
struct Expected {
    parent: String,
    start: Option<u64>,
    end: Option<u64>,
    error: bool,
}

fn nanos(e: &Event) -> u64 {
    e.timestamp.millis() as u64 * 1_000_000
}

/// The span tree the events of one build describe: the build span, a span per feature
/// (`feature_start` .. `feature_end`), a span per command (start .. start + logged duration).
fn expected_tree(events: &[Event], parent: &str) -> (String, BTreeMap<String, Expected>) {
    let corr = &events[0].correlation_id;
    let build = ids::build_span_id(corr);
    let mut spans = BTreeMap::new();
    let mut build_failed = false;
    for e in events {
        let id = e.span_id.as_deref().unwrap().to_string();
        match e.event_type {
            EventType::FeatureStart | EventType::FeatureEnd => {
                let s = spans.entry(id).or_insert(Expected {
                    parent: build.clone(),
                    start: None,
                    end: None,
                    error: false,
                });
                if e.event_type == EventType::FeatureStart {
                    s.start = Some(nanos(e));
                } else {
                    s.end = Some(nanos(e));
                    s.error = e.metadata["status"] == "failed" || e.incomplete;
                    build_failed |= s.error;
                }
            }
            EventType::CommandStart | EventType::Command => {
                let s = spans.entry(id).or_insert(Expected {
                    parent: ids::feature_span_id(corr, &e.feature),
                    start: None,
                    end: None,
                    error: false,
                });
                if e.event_type == EventType::CommandStart {
                    s.start = Some(nanos(e));
                } else {
                    let code = e.metadata["exit_code"].as_i64().unwrap_or(0);
                    s.error = code != 0 || e.incomplete;
                    if let (Some(start), Some(d), false) = (s.start, e.duration_ms, e.incomplete) {
                        s.end = Some(start + d * 1_000_000);
                    }
                }
            }
            EventType::BuildFailure => build_failed = true,
            _ => {}
        }
    }
    // The build span's status is the build's real one where the build has a `build_end`.
    if let Some(end) = events.iter().find(|e| e.event_type == EventType::BuildEnd) {
        build_failed = end.metadata["status"] == "failed";
    }
    spans.insert(
        build.clone(),
        Expected {
            parent: parent.to_string(),
            start: events.iter().map(nanos).min(),
            end: None,
            error: build_failed,
        },
    );
    (build, spans)
}

fn ship(
    tempo_port: u16,
    protocol: &str,
    build: &Path,
    corr: &str,
    env: &[(&str, &str)],
) -> Vec<Event> {
    let (port, url_path) = match protocol {
        "grpc" => (tempo_port + 3, ""),
        _ => (tempo_port + 2, ""),
    };
    let dir = tempfile::tempdir().unwrap();
    let out = common::bin()
        .args(["ship", "--quiet", "--stdout", "--correlation-id", corr])
        .arg("--otlp")
        .arg(format!("http://127.0.0.1:{port}{url_path}"))
        .args(["--otlp-protocol", protocol])
        .arg("--dead-letter")
        .arg(dir.path().join("dead.jsonl"))
        .arg(build)
        .env_remove("TRACEPARENT")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{protocol} {}: {}",
        build.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    common::parse_events(&out.stdout)
}

fn check(tempo: &Tempo, what: &str, trace_id: &str, expected: &BTreeMap<String, Expected>) {
    // Tempo makes a pushed trace findable within moments; wait a bounded time for all spans.
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let got = tempo_spans(tempo, trace_id);
        if got.len() >= expected.len() || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let got_ids: BTreeSet<_> = got.keys().cloned().collect();
    let want_ids: BTreeSet<_> = expected.keys().cloned().collect();
    assert_eq!(got_ids, want_ids, "{what}: span ids in Tempo");
    for (id, want) in expected {
        let s = &got[id];
        let parent = s["parentSpanId"].as_str().map(b64_hex).unwrap_or_default();
        assert_eq!(
            parent, want.parent,
            "{what}: parent of {id} ({})",
            s["name"]
        );
        let num = |k: &str| s[k].as_str().unwrap().parse::<u64>().unwrap();
        if let Some(t) = want.start {
            assert_eq!(
                num("startTimeUnixNano"),
                t,
                "{what}: start of {}",
                s["name"]
            );
        }
        if let Some(t) = want.end {
            assert_eq!(num("endTimeUnixNano"), t, "{what}: end of {}", s["name"]);
        }
        let is_error = s["status"]["code"] == "STATUS_CODE_ERROR";
        assert_eq!(
            is_error, want.error,
            "{what}: status of {} {}",
            s["name"], s["status"]
        );
    }
}

#[test]
fn corpus_builds_become_the_same_traces_over_every_protocol() {
    let Some(peers) = peers() else { return };
    let tempo = start_tempo(&peers);
    let builds = common::corpus_builds();
    assert!(builds.len() >= 13);
    for build in &builds {
        let name = build.file_name().unwrap().to_string_lossy().into_owned();
        for protocol in ["http/protobuf", "http/json", "grpc"] {
            // A correlation id of its own per protocol, so each send is a trace of its own.
            let corr = format!("{name}-{}", protocol.replace('/', "-"));
            let events = ship(tempo.http, protocol, build, &corr, &[]);
            assert!(events.iter().all(|e| *e.correlation_id == *corr));
            let trace_id = events[0].trace_id.as_deref().unwrap().to_string();
            assert_eq!(trace_id, ids::trace_id(&corr));
            let (_, expected) = expected_tree(&events, "");
            check(
                &tempo,
                &format!("{name} over {protocol}"),
                &trace_id,
                &expected,
            );
        }
    }

    // TRACEPARENT: the build span goes under the CI job's span, in the CI job's trace.
    let outer_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let outer_span = "00f067aa0ba902b7";
    let tp = format!("00-{outer_trace}-{outer_span}-01");
    let build = common::corpus().join("build-02-failure");
    let events = ship(
        tempo.http,
        "http/protobuf",
        &build,
        "traceparent-test",
        &[("TRACEPARENT", &tp)],
    );
    // The events keep their own trace id (derived from the correlation id): documented.
    assert_eq!(
        events[0].trace_id.as_deref(),
        Some(ids::trace_id("traceparent-test").as_str())
    );
    let (build_span, expected) = expected_tree(&events, outer_span);
    check(&tempo, "TRACEPARENT", outer_trace, &expected);
    assert!(tempo_spans(&tempo, &ids::trace_id("traceparent-test")).is_empty());
    // `buildlog traceparent` names that same build span.
    let out = common::bin()
        .args(["traceparent", "--correlation-id", "traceparent-test"])
        .env("TRACEPARENT", &tp)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("00-{outer_trace}-{build_span}-01")
    );
}
