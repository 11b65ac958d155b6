//! `buildlog ship --elasticsearch` against a real `_bulk` server: VictoriaLogs, which speaks
//! Elasticsearch's bulk protocol at `/insert/elasticsearch/_bulk`. The events are queried
//! back with LogsQL and counted per feature.
//!
//! The server comes from `$BUILDLOG_PEERS/peer path victoria-logs`. Without BUILDLOG_PEERS
//! the test says what it skipped and passes; with `CI` set it must run.

use assert_cmd::Command;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn victoria_logs() -> Option<Server> {
    let peers = std::env::var_os("BUILDLOG_PEERS").map(PathBuf::from);
    let peer = peers
        .as_ref()
        .map(|p| p.join("peer"))
        .filter(|p| p.exists());
    let Some(peer) = peer else {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but BUILDLOG_PEERS does not hold the `peer` script: cannot run VictoriaLogs");
        }
        eprintln!("skipped: set BUILDLOG_PEERS to the directory holding `peer` to run this test against VictoriaLogs");
        return None;
    };
    let out = std::process::Command::new(&peer)
        .args(["path", "victoria-logs"])
        .output()
        .expect("running peer");
    assert!(
        out.status.success(),
        "peer path victoria-logs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(exe)
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", data.path().display()))
        .arg("-retentionPeriod=100y")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting victoria-logs");
    let server = Server {
        child,
        port,
        _data: data,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(port, "/health").as_deref() != Some("OK") {
        assert!(
            Instant::now() < deadline,
            "VictoriaLogs did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(server)
}

fn get(port: u16, path: &str) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .ok()?;
        r.text().await.ok()
    })
}

/// Runs a LogsQL query and returns its JSON lines.
fn logsql(port: u16, query: &str) -> Vec<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let text = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/select/logsql/query"))
            .form(&[("query", query), ("start", "2000-01-01T00:00:00Z")])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn corpus(build: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/corpus")
        .join(build)
}

#[test]
fn corpus_builds_shipped_to_victorialogs_are_found_again() {
    let Some(vl) = victoria_logs() else { return };
    let paths = [corpus("build-01-success"), corpus("build-08-json-2025-11")];
    let out = Command::cargo_bin("buildlog")
        .unwrap()
        .args(["convert", "-q"])
        .args(&paths)
        .output()
        .unwrap();
    assert!(out.status.success());
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        *expected
            .entry(e["feature"].as_str().unwrap().to_string())
            .or_default() += 1;
    }

    let url = format!(
        "http://127.0.0.1:{}/insert/elasticsearch/_bulk?_msg_field=message&_time_field=@timestamp&_stream_fields=feature",
        vl.port
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("buildlog")
        .unwrap()
        .args(["ship", "-q", "--elasticsearch", &url, "--dead-letter"])
        .arg(dir.path().join("dead.jsonl"))
        .args(&paths)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let n = events.len();
    assert!(
        stderr.contains(&format!("{n} events, {n} delivered")),
        "{stderr}"
    );

    // VictoriaLogs makes new entries searchable within a few seconds.
    let _ = get(vl.port, "/internal/force_flush");
    let deadline = Instant::now() + Duration::from_secs(30);
    let counted = loop {
        let rows = logsql(vl.port, "* | stats by (feature) count() n");
        let got: BTreeMap<String, u64> = rows
            .iter()
            .map(|r| {
                (
                    // Build-level events have no feature; VictoriaLogs stores no empty fields.
                    r["feature"].as_str().unwrap_or("").to_string(),
                    r["n"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        if got == expected || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(counted, expected);

    // One event found by its id, with its message and time.
    let e = events
        .iter()
        .find(|e| e["event_type"] == "command")
        .unwrap();
    let rows = logsql(
        vl.port,
        &format!("event_id:=\"{}\"", e["event_id"].as_str().unwrap()),
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["_msg"], e["message"]);
    assert_eq!(rows[0]["correlation_id"], e["correlation_id"]);
    let t = rows[0]["_time"].as_str().unwrap();
    assert_eq!(
        buildlog::Timestamp::parse_rfc3339(t),
        buildlog::Timestamp::parse_rfc3339(e["timestamp"].as_str().unwrap())
    );
}
