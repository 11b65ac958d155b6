//! `buildlog ship --otlp` against a scripted OTLP/HTTP receiver (axum), for what a real
//! Tempo never does on demand: 429 with Retry-After, 503, partial success, slow answers,
//! refusals; and for what leaves the client: gzip, headers, batching, JSON.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver answers, one entry per request; the last entry repeats.
#[derive(Clone)]
enum Reply {
    Ok,
    Status(u16, Option<&'static str>),
    Partial(i64, &'static str),
    Slow(Duration),
}

struct Received {
    at: Instant,
    headers: HeaderMap,
    /// The body after gzip, as sent before compression.
    raw: Vec<u8>,
    spans: Vec<Span>,
}

#[derive(Clone)]
struct Receiver {
    script: Arc<Vec<Reply>>,
    log: Arc<Mutex<Vec<Received>>>,
}

async fn traces(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let raw = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body.to_vec()
    };
    let json = headers
        .get("content-type")
        .is_some_and(|v| v == "application/json");
    let req: ExportTraceServiceRequest = if json {
        serde_json::from_slice(&raw).expect("OTLP JSON")
    } else {
        ExportTraceServiceRequest::decode(&raw[..]).expect("OTLP protobuf")
    };
    let spans: Vec<Span> = req
        .resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| ss.spans.clone()))
        .collect();
    let n = {
        let mut log = r.log.lock().unwrap();
        log.push(Received {
            at: Instant::now(),
            headers,
            raw,
            spans,
        });
        log.len()
    };
    let reply = r.script[(n - 1).min(r.script.len() - 1)].clone();
    match reply {
        Reply::Ok => StatusCode::OK.into_response(),
        Reply::Status(code, retry_after) => {
            let mut resp = (StatusCode::from_u16(code).unwrap(), "try later").into_response();
            if let Some(ra) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", ra.parse().unwrap());
            }
            resp
        }
        Reply::Partial(rejected, msg) => {
            let body = ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: msg.into(),
                }),
            }
            .encode_to_vec();
            ([("content-type", "application/x-protobuf")], body).into_response()
        }
        Reply::Slow(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
    }
}

/// A receiver on 127.0.0.1 running on its own runtime for the life of the test.
struct Server {
    url: String,
    log: Arc<Mutex<Vec<Received>>>,
    _rt: tokio::runtime::Runtime,
}

fn serve(script: Vec<Reply>) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let state = Receiver {
        script: Arc::new(script),
        log: log.clone(),
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .with_state(state);
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        url: format!("http://{addr}"),
        log,
        _rt: rt,
    }
}

struct Run {
    code: i32,
    stderr: String,
    dead_letter: Vec<serde_json::Value>,
    dead_letter_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn ship(url: &str, input: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let dl = dir.path().join("dead.jsonl");
    let mut cmd = common::bin();
    cmd.args(["ship", "--quiet", "--otlp", url, "--otlp-backoff-ms", "10"])
        .arg("--dead-letter")
        .arg(&dl)
        .args(extra)
        .arg(input);
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "TRACEPARENT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let dead_letter = std::fs::read_to_string(&dl)
        .map(|t| {
            t.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .unwrap_or_default();
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dead_letter,
        dead_letter_path: dl,
        _dir: dir,
    }
}

fn build02() -> std::path::PathBuf {
    common::corpus().join("build-02-failure")
}

/// build-02-failure: 1 build + 2 features + 4 commands.
const BUILD02_SPANS: usize = 7;

fn span_ids(server: &Server) -> Vec<String> {
    let mut v: Vec<String> = server
        .log
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r.spans.iter().map(|s| hex::encode(&s.span_id)))
        .collect();
    v.sort();
    v
}

#[test]
fn gzip_protobuf_with_headers_and_resource_from_the_environment() {
    let server = serve(vec![Reply::Ok]);
    let run = ship(
        &server.url,
        &build02(),
        &[],
        &[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "X-Scope-OrgID=builds,Authorization=Bearer%20t0k",
            ),
            ("OTEL_SERVICE_NAME", "image-builds"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stderr.contains("t0k"),
        "credentials leaked: {}",
        run.stderr
    );
    let log = server.log.lock().unwrap();
    assert_eq!(log.len(), 1);
    let r = &log[0];
    assert_eq!(r.headers["content-type"], "application/x-protobuf");
    assert_eq!(r.headers["content-encoding"], "gzip");
    assert_eq!(r.headers["x-scope-orgid"], "builds");
    assert_eq!(r.headers["authorization"], "Bearer t0k");
    assert_eq!(r.spans.len(), BUILD02_SPANS);
    let req = ExportTraceServiceRequest::decode(&r.raw[..]).unwrap();
    let attrs = &req.resource_spans[0].resource.as_ref().unwrap().attributes;
    let get = |k: &str| {
        attrs
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.clone())
            .map(|v| format!("{:?}", v.value.unwrap()))
    };
    assert_eq!(
        get("service.name").unwrap(),
        "StringValue(\"image-builds\")"
    );
    assert_eq!(
        get("deployment.environment").unwrap(),
        "StringValue(\"ci\")"
    );
    assert!(run.dead_letter.is_empty());
}

#[test]
fn http_json_when_asked_by_the_environment() {
    let server = serve(vec![Reply::Ok]);
    let run = ship(
        &server.url,
        &build02(),
        &["--otlp-compression", "none"],
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = server.log.lock().unwrap();
    assert_eq!(log[0].headers["content-type"], "application/json");
    assert!(log[0].headers.get("content-encoding").is_none());
    assert_eq!(log[0].spans.len(), BUILD02_SPANS);
    let v: serde_json::Value = serde_json::from_slice(&log[0].raw).unwrap();
    let id = v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
        .as_str()
        .unwrap();
    assert_eq!(id.len(), 32, "ids are hex in OTLP JSON");
}

#[test]
fn retry_after_of_a_429_is_honoured() {
    let server = serve(vec![Reply::Status(429, Some("1")), Reply::Ok]);
    let run = ship(&server.url, &build02(), &[], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = server.log.lock().unwrap();
    assert_eq!(log.len(), 2);
    // The backoff alone would wait 10 ms; the server asked for 1 s.
    let gap = log[1].at - log[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    assert_eq!(log[1].spans.len(), BUILD02_SPANS);
    assert!(run.stderr.contains("1 retries"), "{}", run.stderr);
}

#[test]
fn a_503_is_retried_then_dead_lettered_and_the_file_replays_to_the_same_spans() {
    let server = serve(vec![Reply::Status(503, None)]);
    let run = ship(&server.url, &build02(), &["--otlp-retries", "2"], &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(
        server.log.lock().unwrap().len(),
        3,
        "one try and two retries"
    );
    // The dead-letter file holds the events that make the spans, not the output lines.
    let events = common::convert_dir(&build02(), &[]);
    let making: Vec<&str> = events
        .iter()
        .filter(|e| {
            e.event_type != buildlog::event::EventType::Output
                || e.level >= buildlog::event::Level::Warn
        })
        .map(|e| e.event_id.as_str())
        .collect();
    assert_eq!(run.dead_letter.len(), making.len());
    for rec in &run.dead_letter {
        assert_eq!(rec["sink"], "otlp");
        assert!(rec["reason"].as_str().unwrap().contains("503"), "{rec}");
        assert!(making.contains(&rec["event"]["event_id"].as_str().unwrap()));
    }
    assert!(run.stderr.contains("dead-lettered"), "{}", run.stderr);

    // Replaying the dead-letter file once the server is back gives the very same spans.
    let good = serve(vec![Reply::Ok]);
    let replay = ship(&good.url, &run.dead_letter_path, &[], &[]);
    assert_eq!(replay.code, 0, "{}", replay.stderr);
    let first = span_ids(&server);
    let mut first_unique = first.clone();
    first_unique.dedup();
    assert_eq!(first_unique.len(), BUILD02_SPANS);
    assert_eq!(span_ids(&good), first_unique);
}

#[test]
fn a_400_is_not_retried() {
    let server = serve(vec![Reply::Status(400, None)]);
    let run = ship(&server.url, &build02(), &[], &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(server.log.lock().unwrap().len(), 1);
    assert!(run.dead_letter[0]["reason"]
        .as_str()
        .unwrap()
        .contains("400"));
}

#[test]
fn partial_success_is_reported_and_its_events_dead_lettered() {
    let server = serve(vec![Reply::Partial(2, "spans too old")]);
    let run = ship(&server.url, &build02(), &[], &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("rejected 2 of 7 spans") && run.stderr.contains("spans too old"),
        "{}",
        run.stderr
    );
    assert!(!run.dead_letter.is_empty());
    assert!(run.dead_letter[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("partial success"));
    assert_eq!(
        server.log.lock().unwrap().len(),
        1,
        "a partial success is not retried"
    );
}

#[test]
fn a_server_slower_than_the_timeout_is_retried_then_dead_lettered() {
    let server = serve(vec![Reply::Slow(Duration::from_secs(5))]);
    let run = ship(
        &server.url,
        &build02(),
        &["--otlp-retries", "1"],
        &[("OTEL_EXPORTER_OTLP_TIMEOUT", "300")],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(server.log.lock().unwrap().len(), 2);
    assert!(
        run.dead_letter[0]["reason"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{:?}",
        run.dead_letter[0]
    );
}

#[test]
fn nothing_listening_is_dead_lettered_with_exit_code_3() {
    let run = ship(
        "http://127.0.0.1:9",
        &build02(),
        &["--otlp-retries", "0"],
        &[],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.dead_letter[0]["reason"]
        .as_str()
        .unwrap()
        .contains("cannot connect"));
}

#[test]
fn batches_are_bounded_by_spans_and_by_bytes() {
    let build = common::corpus().join("build-01-success");
    let server = serve(vec![Reply::Ok]);
    let run = ship(&server.url, &build, &["--otlp-batch-spans", "5"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let by_count: Vec<usize> = server
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.spans.len())
        .collect();
    assert!(by_count.len() > 1 && by_count.iter().all(|&n| (1..=5).contains(&n)));
    let total: usize = by_count.iter().sum();

    let server2 = serve(vec![Reply::Ok]);
    let run = ship(&server2.url, &build, &["--otlp-batch-bytes", "2048"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = server2.log.lock().unwrap();
    assert!(log.len() > 1);
    for r in log.iter() {
        assert!(
            r.raw.len() <= 2048 || r.spans.len() == 1,
            "{} bytes, {} spans",
            r.raw.len(),
            r.spans.len()
        );
    }
    assert_eq!(log.iter().map(|r| r.spans.len()).sum::<usize>(), total);
    drop(log);
    assert_eq!(span_ids(&server), span_ids(&server2));
}

#[test]
fn bad_configuration_is_a_usage_error() {
    let run = ship(
        "http://127.0.0.1:9",
        &build02(),
        &[],
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = ship(
        "http://127.0.0.1:9",
        &build02(),
        &[],
        &[("TRACEPARENT", "00-nope")],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
}
