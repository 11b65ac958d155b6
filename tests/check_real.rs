//! `buildlog check` against real servers: Loki and VictoriaLogs from the peers directory, the
//! test Elasticsearch of `tests/test_es` (templates, credentials), and refused ports.

mod peers;
mod test_es;

use assert_cmd::Command;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::cargo_bin("buildlog").unwrap();
    for (k, _) in std::env::vars() {
        if k.starts_with("BUILDLOG_") || k.starts_with("LOKI_") || k.starts_with("ELASTICSEARCH_") {
            c.env_remove(k);
        }
    }
    c
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn check(args: &[&str], config: Option<&Path>) -> Run {
    let mut c = bin();
    c.arg("check").args(args);
    if let Some(p) = config {
        c.arg("--config").arg(p);
    }
    let out = c.output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn check_against_a_real_loki() {
    let Some(script) = peers::peer_script("check_against_a_real_loki") else {
        return;
    };
    let loki = peers::start_loki(&script);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("buildlog.toml");
    std::fs::write(
        &cfg,
        format!(
            "[loki]\nurl = \"{}\"\nlabel = [\"env=ci\"]\ntenant = \"builds\"\nretry-max = \"infinite\"\n",
            loki.url
        ),
    )
    .unwrap();
    let r = check(&[], Some(&cfg));
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("loki {}: ok", loki.url)),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("reachable: /ready answered 200"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("credentials: accepted"), "{}", r.stdout);
    // job, host, feature, level and env: 5 of Loki's default 15
    assert!(
        r.stdout.contains("limits: 5 of 15 label names per stream"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("lines cut at 262144 bytes, max_line_size 262144"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("buildlog.toml: valid"), "{}", r.stderr);
    // A line limit above the server's: found before anything is sent.
    let r = check(&["--loki-max-line-bytes", "1000000"], Some(&cfg));
    assert_eq!(r.code, Some(3), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("--loki-max-line-bytes 1000000 is above this Loki's max_line_size 262144"),
        "{}",
        r.stdout
    );
    // Nothing was pushed: the server has no labels at all.
    let (status, body) = peers::http_get(&format!("{}/loki/api/v1/labels", loki.url)).unwrap();
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["data"].as_array().is_none_or(|a| a.is_empty()),
        "check sent something: {body}"
    );
}

struct Vl {
    child: std::process::Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Drop for Vl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn victoria_logs(test: &str) -> Option<Vl> {
    let exe = peers::peer_path(test, "victoria-logs")?;
    let port = peers::free_port();
    let data = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(exe)
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", data.path().display()))
        .arg("-retentionPeriod=100y")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let vl = Vl {
        child,
        port,
        _data: data,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while peers::http_get(&format!("http://127.0.0.1:{port}/health")).map(|r| r.1)
        != Some("OK".into())
    {
        assert!(
            Instant::now() < deadline,
            "VictoriaLogs did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(vl)
}

#[test]
fn check_against_real_victorialogs_as_elasticsearch_and_loki() {
    let Some(vl) = victoria_logs("check_against_real_victorialogs") else {
        return;
    };
    let es = format!(
        "http://127.0.0.1:{}/insert/elasticsearch/_bulk?_msg_field=message&_time_field=@timestamp",
        vl.port
    );
    let r = check(&["--elasticsearch", &es], None);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "elasticsearch http://127.0.0.1:{}/insert/elasticsearch: ok",
            vl.port
        )),
        "{}",
        r.stdout
    );
    // VictoriaLogs answers GET / as Elasticsearch 8.9.0 but keeps no templates.
    assert!(r.stdout.contains("Elasticsearch 8.9.0"), "{}", r.stdout);
    assert!(
        r.stdout.contains("the server lists no index templates"),
        "{}",
        r.stdout
    );
    // Its Loki push endpoint has no /ready or /config of Loki's: reachable, limits unknown.
    let r = check(
        &["--loki", &format!("http://127.0.0.1:{}/insert", vl.port)],
        None,
    );
    assert!(r.stdout.contains("loki http://127.0.0.1:"), "{}", r.stdout);
    assert!(!r.stdout.contains("unreachable"), "{}", r.stdout);
}

#[test]
fn check_finds_a_missing_template_and_refused_credentials() {
    let es = test_es::TestEs::start();
    let r = check(&["--elasticsearch", &es.url()], None);
    assert_eq!(r.code, Some(3), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Elasticsearch 8"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "index template container-build-stream: missing; run `buildlog es setup {}`",
            es.url()
        )),
        "{}",
        r.stdout
    );
    // After `es setup` the same check passes, and with --index the dated template is checked.
    bin().args(["es", "setup", &es.url()]).assert().success();
    let r = check(&["--elasticsearch", &es.url()], None);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert!(r
        .stdout
        .contains("index template container-build-stream: installed"));
    let r = check(
        &["--elasticsearch", &es.url(), "--index", "build-logs-%Y"],
        None,
    );
    assert!(
        r.stdout
            .contains("index template container-build-dated: installed"),
        "{}",
        r.stdout
    );
    let docs_before = es.state.lock().unwrap().docs.len();
    // Credentials the server refuses.
    es.state.lock().unwrap().expect_auth = Some("Basic eDp5".into());
    let r = {
        let mut c = bin();
        c.args(["check", "--elasticsearch", &es.url(), "--es-user", "x"])
            .env("ELASTICSEARCH_PASSWORD", "wrong");
        let out = c.output().unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::new(),
        }
    };
    assert_eq!(r.code, Some(3), "{}", r.stdout);
    assert!(
        r.stdout.contains("credentials: refused (401"),
        "{}",
        r.stdout
    );
    let mut c = bin();
    c.args(["check", "--elasticsearch", &es.url(), "--es-user", "x"])
        .env("ELASTICSEARCH_PASSWORD", "y")
        .assert()
        .code(0);
    assert_eq!(
        es.state.lock().unwrap().docs.len(),
        docs_before,
        "check stored documents"
    );
}

#[test]
fn check_names_every_refused_sink() {
    let (a, b, c, d) = (
        refused_port(),
        refused_port(),
        refused_port(),
        refused_port(),
    );
    let r = check(
        &[
            "--loki",
            &format!("http://127.0.0.1:{a}"),
            "--elasticsearch",
            &format!("http://127.0.0.1:{b}"),
            "--forward",
            &format!("127.0.0.1:{c}"),
            "--otlp",
            &format!("http://127.0.0.1:{d}"),
        ],
        None,
    );
    assert_eq!(r.code, Some(3), "{}{}", r.stdout, r.stderr);
    for (sink, port) in [
        ("loki", a),
        ("elasticsearch", b),
        ("forward", c),
        ("otlp", d),
    ] {
        let head = r
            .stdout
            .lines()
            .position(|l| l.starts_with(sink) && l.contains(&port.to_string()))
            .unwrap_or_else(|| panic!("{sink}: {}", r.stdout));
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert!(lines[head].ends_with(": FAILED"), "{}", lines[head]);
        assert!(
            lines[head + 1]
                .to_lowercase()
                .contains("connection refused"),
            "{sink}: {}",
            lines[head + 1]
        );
    }
    // No sink at all is no failure, but said.
    let r = check(&[], None);
    assert_eq!(r.code, Some(0));
    assert!(r.stderr.contains("no sink is configured"), "{}", r.stderr);
}

/// The summary on stderr says why events were dead-lettered, not only how many.
#[test]
fn ship_says_why_events_were_dead_lettered() {
    let es = test_es::TestEs::start();
    es.fail_requests(&[404]);
    let dir = tempfile::tempdir().unwrap();
    let dl = dir.path().join("dl.jsonl");
    let log = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/corpus/build-01-success/master-summary.log");
    let out = bin()
        .args(["ship", "--elasticsearch", &es.url(), "--dead-letter"])
        .arg(&dl)
        .arg(&log)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let n = std::fs::read_to_string(&dl).unwrap().lines().count();
    assert!(n > 0);
    let line = err
        .lines()
        .find(|l| l.starts_with("buildlog: elasticsearch:") && l.contains(" dead-lettered: "))
        .unwrap_or_else(|| panic!("no reason on stderr: {err}"));
    assert!(line.contains(&format!("{n} dead-lettered: ")), "{line}");
    assert!(line.contains("404"), "{line}");
    // The same reason as in the file.
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&dl)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(line.ends_with(first["reason"].as_str().unwrap()), "{line}");
}
