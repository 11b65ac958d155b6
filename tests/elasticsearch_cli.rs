//! `buildlog ship --elasticsearch` and `buildlog es setup` end to end, against the test
//! Elasticsearch of `tests/test_es`, with the real corpus.

mod test_es;

use assert_cmd::Command;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use test_es::{Flavour, TestEs};

const DS: &str = "logs-container_build-default";

fn corpus(build: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/corpus")
        .join(build)
}

/// Every corpus build but the 16 MB one (its own test would only be slower).
fn builds() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.ends_with("build-13-large"))
        .collect();
    v.sort();
    assert!(v.len() >= 12);
    v
}

fn convert(paths: &[PathBuf]) -> Vec<Value> {
    let out = Command::cargo_bin("buildlog")
        .unwrap()
        .arg("convert")
        .arg("-q")
        .args(paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

struct Run {
    code: i32,
    stderr: String,
}

fn buildlog(args: &[&str], more: impl IntoIterator<Item = impl AsRef<std::ffi::OsStr>>) -> Run {
    let out = Command::cargo_bin("buildlog")
        .unwrap()
        .args(args)
        .args(more)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ship(url: &str, extra: &[&str], paths: &[PathBuf], dead_letter: &Path) -> Run {
    let mut args = vec![
        "ship",
        "-q",
        "--elasticsearch",
        url,
        "--es-backoff-min",
        "0.01",
    ];
    args.extend([
        "--es-backoff-max",
        "0.05",
        "--dead-letter",
        dead_letter.to_str().unwrap(),
    ]);
    args.extend_from_slice(extra);
    buildlog(&args, paths)
}

#[test]
fn corpus_round_trip_then_idempotent_reimport() {
    let es = TestEs::start();
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let paths = builds();
    let events = convert(&paths);
    assert!(events.len() > 5000, "{}", events.len());

    let run = ship(&es.url(), &[], &paths, &dead);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let n = events.len();
    assert!(
        run.stderr.contains(&format!("elasticsearch: {n} events, {n} delivered (0 already stored), 0 retries, 0 dead-lettered")),
        "{}",
        run.stderr
    );
    let docs = es.docs(DS);
    assert_eq!(docs.len(), n, "event ids are unique, one document each");
    for e in &events {
        let mut expected = e.clone();
        expected["@timestamp"] = e["timestamp"].clone();
        assert_eq!(docs[e["event_id"].as_str().unwrap()], expected);
    }
    assert!(!dead.exists());

    // Second run: the same documents, all answered 409, counted as already stored.
    let run = ship(&es.url(), &[], &paths, &dead);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "{n} delivered ({n} already stored), 0 retries, 0 dead-lettered"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(es.docs(DS), docs);
}

#[test]
fn ecs_documents_of_a_corpus_build_carry_every_event_field() {
    let es = TestEs::start();
    let dir = tempfile::tempdir().unwrap();
    let paths = vec![corpus("build-07-config-summary-2025-11")];
    let events = convert(&paths);
    let args = ["--schema", "ecs", "--index", "build-logs-%Y.%m"];
    let run = ship(&es.url(), &args, &paths, &dir.path().join("dead.jsonl"));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut with_details = 0;
    let indices = es.state.lock().unwrap().docs.clone();
    for e in &events {
        let ts = e["timestamp"].as_str().unwrap();
        let index = format!("build-logs-{}.{}", &ts[0..4], &ts[5..7]);
        let doc = &indices[&index][e["event_id"].as_str().unwrap()];
        assert_eq!(doc["@timestamp"], e["timestamp"]);
        assert_eq!(doc["message"], e["message"]);
        assert_eq!(doc["event"]["id"], e["event_id"]);
        assert_eq!(doc["event"]["action"], e["event_type"]);
        assert_eq!(
            doc["log"]["level"],
            e["level"].as_str().unwrap().to_lowercase()
        );
        assert_eq!(doc["trace"]["id"], e["trace_id"]);
        let b = &doc["container_build"];
        for f in [
            "correlation_id",
            "feature",
            "seq",
            "source",
            "command_num",
            "duration_ms",
            "version",
            "raw",
        ] {
            assert_eq!(b.get(f), e.get(f), "{f}");
        }
        if e["metadata"].as_object().is_some_and(|m| !m.is_empty()) {
            assert_eq!(b["metadata"], e["metadata"]);
        }
        if let Some(d) = e.get("details") {
            assert_eq!(&b["details"], d);
            with_details += 1;
        }
    }
    assert!(with_details > 0, "build-07 has events with details");
}

#[test]
fn rejected_documents_are_dead_lettered_with_exit_code_3() {
    let es = TestEs::start();
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let paths = vec![corpus("build-02-failure")];
    let events = convert(&paths);
    let failure = events
        .iter()
        .find(|e| e["event_type"] == "build_failure")
        .expect("build-02 has a build_failure event");
    let id = failure["event_id"].as_str().unwrap();
    es.fail_item(id, 400, 1000);
    let retried = events[0]["event_id"].as_str().unwrap();
    es.fail_item(retried, 429, 1);

    let run = ship(&es.url(), &[], &paths, &dead);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let n = events.len();
    assert!(
        run.stderr.contains(&format!(
            "{n} events, {} delivered (0 already stored), 1 retries, 1 dead-lettered",
            n - 1
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("1 events could not be delivered"),
        "{}",
        run.stderr
    );
    let text = std::fs::read_to_string(&dead).unwrap();
    let recs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["sink"], "elasticsearch");
    assert_eq!(&recs[0]["event"], failure);
    assert!(recs[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("400 document_parsing_exception"));
    assert_eq!(es.docs(DS).len(), n - 1);
    assert!(es.docs(DS).contains_key(retried));
}

#[test]
fn credentials_from_the_environment_are_sent_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let paths = [corpus("build-01-success")];
    let cases = [
        (
            vec![
                ("ELASTICSEARCH_USERNAME", "elastic"),
                ("ELASTICSEARCH_PASSWORD", "s3cr3t-pw"),
            ],
            "Basic ZWxhc3RpYzpzM2NyM3QtcHc=",
        ),
        (
            vec![("ELASTICSEARCH_API_KEY", "s3cr3t-key")],
            "ApiKey s3cr3t-key",
        ),
        (
            vec![("ELASTICSEARCH_BEARER_TOKEN", "s3cr3t-tok")],
            "Bearer s3cr3t-tok",
        ),
    ];
    for (env, header) in cases {
        let es = TestEs::start();
        es.state.lock().unwrap().expect_auth = Some(header.to_string());
        let run_with = |es: &TestEs| {
            let out = Command::cargo_bin("buildlog")
                .unwrap()
                .args([
                    "ship",
                    "-q",
                    "--es-max-retries",
                    "0",
                    "--elasticsearch",
                    &es.url(),
                    "--dead-letter",
                ])
                .arg(dir.path().join("dead.jsonl"))
                .args(&paths)
                .envs(env.iter().copied())
                .output()
                .unwrap();
            (
                out.status.code().unwrap(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (code, stderr) = run_with(&es);
        assert_eq!(code, 0, "{header}: {stderr}");
        assert!(es
            .requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some(header)));
        // Refused credentials: dead-lettered, and the secret is nowhere in the output.
        es.state.lock().unwrap().expect_auth = Some("Basic bm9wZQ==".into());
        let (code, stderr) = run_with(&es);
        assert_eq!(code, 3, "{stderr}");
        assert!(
            stderr.contains("security_exception") || stderr.contains("dead-lettered"),
            "{stderr}"
        );
        assert!(!stderr.contains("s3cr3t"), "{stderr}");
        let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
        assert!(dead.contains("HTTP 401: security_exception"));
        assert!(!dead.contains("s3cr3t"));
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    for extra in [
        &["--es-action", "index"][..],
        &["--index", "Build-Logs"],
        &["--es-max-docs", "0"],
    ] {
        let run = ship(
            "http://127.0.0.1:9",
            extra,
            &[corpus("build-01-success")],
            &dead,
        );
        assert_eq!(run.code, 2, "{extra:?}: {}", run.stderr);
    }
    let run = ship(
        "http://user:pw@127.0.0.1:9",
        &[],
        &[corpus("build-01-success")],
        &dead,
    );
    assert_eq!(run.code, 2);
    assert!(
        !run.stderr.contains("pw@"),
        "credentials never echoed: {}",
        run.stderr
    );
}

fn setup(url: &str, extra: &[&str]) -> Run {
    buildlog(&["es", "setup", url], extra)
}

#[test]
fn es_setup_installs_policies_and_templates_idempotently() {
    let es = TestEs::start();
    let run = setup(&es.url(), &["--delete-after", "30d"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let installed = es.installed();
    let keys: Vec<&str> = installed.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "_component_template/container-build-mappings-ecs",
            "_component_template/container-build-mappings-native",
            "_component_template/container-build-settings",
            "_ilm/policy/container-build",
            "_ilm/policy/container-build-dated",
            "_index_template/container-build-dated",
            "_index_template/container-build-stream",
        ]
    );
    assert_eq!(
        installed["_ilm/policy/container-build"]["policy"]["phases"]["delete"]["min_age"],
        "30d"
    );
    let stream = &installed["_index_template/container-build-stream"];
    assert_eq!(stream["index_patterns"], json!(["logs-container_build-*"]));
    assert_eq!(stream["data_stream"], json!({}));
    let native = &installed["_component_template/container-build-mappings-native"]["template"]
        ["mappings"]["properties"];
    assert_eq!(native["event_id"]["type"], "keyword");
    assert_eq!(native["message"]["type"], "text");
    assert_eq!(native["@timestamp"]["type"], "date");
    assert_eq!(native["duration_ms"]["type"], "long");
    let first: Vec<(String, Vec<u8>)> = es
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.body.clone()))
        .collect();
    assert_eq!(first[0].0, "/", "the version is asked first");
    assert!(es.requests().iter().all(|r| r.status < 300));

    // Again: the same requests, the same result.
    let run = setup(&es.url(), &["--delete-after", "30d"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(es.installed(), installed);
    let second: Vec<(String, Vec<u8>)> = es.requests()[first.len()..]
        .iter()
        .map(|r| (r.path.clone(), r.body.clone()))
        .collect();
    assert_eq!(second, first);

    // The data stream now follows the installed template, and the sink writes to it.
    let dir = tempfile::tempdir().unwrap();
    let run = ship(
        &es.url(),
        &[],
        &[corpus("build-01-success")],
        &dir.path().join("d"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        es.docs(DS).len(),
        convert(&[corpus("build-01-success")]).len()
    );
}

#[test]
fn es_setup_on_opensearch_uses_ism_and_its_sequence_numbers() {
    let es = TestEs::start_as(Flavour::OpenSearch2);
    let run = setup(&es.url(), &["--pipeline"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("OpenSearch 2.17.0"), "{}", run.stderr);
    let installed = es.installed();
    assert!(installed.contains_key("_plugins/_ism/policies/container-build"));
    assert!(installed.contains_key("_ingest/pipeline/container-build"));
    assert!(!installed.keys().any(|k| k.starts_with("_ilm")));
    let ecs = &installed["_component_template/container-build-mappings-ecs"];
    assert_eq!(
        ecs["template"]["mappings"]["properties"]["container_build"]["properties"]["metadata"]
            ["type"],
        "flat_object"
    );
    assert_eq!(
        installed["_index_template/container-build-stream"]["template"]["settings"]
            ["index.default_pipeline"],
        "container-build"
    );

    // Unchanged policies are left alone; a new retention updates them with if_seq_no.
    let run = setup(&es.url(), &["--pipeline"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("_plugins/_ism/policies/container-build: unchanged"),
        "{}",
        run.stderr
    );
    let run = setup(&es.url(), &["--delete-after", "7d"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("_plugins/_ism/policies/container-build: updated"),
        "{}",
        run.stderr
    );
    let puts: Vec<_> = es
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path == "/_plugins/_ism/policies/container-build")
        .collect();
    assert_eq!(puts.len(), 2);
    assert_eq!(
        puts[1].query.as_deref(),
        Some("if_seq_no=0&if_primary_term=1")
    );
    let policy = &es.installed()["_plugins/_ism/policies/container-build"];
    assert_eq!(
        policy["policy"]["states"][0]["transitions"][0]["conditions"]["min_index_age"],
        "7d"
    );
}

#[test]
fn es_setup_failures_are_reported() {
    // Nothing listens: a clear error, exit 4.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = setup(&format!("http://127.0.0.1:{port}"), &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("GET"), "{}", run.stderr);
    let es = TestEs::start();
    let run = setup(&es.url(), &["--delete-after", "soon"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    es.state.lock().unwrap().expect_auth = Some("Basic eDp5".into());
    let run = setup(&es.url(), &[]);
    assert_eq!(run.code, 4);
    assert!(run.stderr.contains("security_exception"), "{}", run.stderr);
}
