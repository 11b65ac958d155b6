//! Helpers of the metrics integration tests: finding Prometheus, free ports, processes that
//! are killed by PID when the test ends, polling with a deadline.
#![allow(dead_code)]

//! Test crates using it declare `mod common;` too.

#[allow(unused_imports)]
pub use crate::common::{bin as buildlog, copy_dir_without, corpus, corpus_builds};
use buildlog::build::parse_inputs;
use buildlog::event::Event;
use buildlog::metrics::sanitize_label;
use buildlog::parse::ParseOptions;
use buildlog::source::{Input, Progress};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The events of one build directory, parsed in process.
pub fn events(dir: &Path) -> Vec<Event> {
    let mut out = Vec::new();
    let report = parse_inputs(
        &[Input::from_path(dir.to_path_buf())],
        &ParseOptions::default(),
        &mut Progress::hidden(),
        &mut |e| {
            out.push(e.take());
            Ok(())
        },
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    out
}

/// One line of `master-summary.log` as the bash exporter's regex read it:
/// `^([^:]+):[[:space:]]([0-9]+)[[:space:]]errors,[[:space:]]([0-9]+)[[:space:]]warnings[[:space:]]\(([0-9.]+)s\)`
#[derive(Debug, PartialEq)]
pub struct MasterLine {
    pub label: String,
    pub errors: u64,
    pub warnings: u64,
    pub duration: f64,
}

impl MasterLine {
    /// The bash exporter's status rule.
    pub fn status(&self) -> &'static str {
        if self.errors == 0 {
            "success"
        } else {
            "failed"
        }
    }
}

pub fn master_lines(dir: &Path) -> Vec<MasterLine> {
    let re = regex::Regex::new(r"^([^:]+):\s([0-9]+)\serrors,\s([0-9]+)\swarnings\s\(([0-9.]+)s\)")
        .unwrap();
    let text = std::fs::read_to_string(dir.join("master-summary.log")).unwrap_or_default();
    text.lines()
        .filter_map(|l| re.captures(l))
        .map(|c| MasterLine {
            label: sanitize_label(&c[1]),
            errors: c[2].parse().unwrap(),
            warnings: c[3].parse().unwrap(),
            duration: c[4].parse().unwrap(),
        })
        .collect()
}

/// Both tools of the `prometheus` package, or `None` (after `tool`'s skip message).
pub fn prometheus_and_promtool() -> Option<(PathBuf, PathBuf)> {
    Some((tool("prometheus")?, tool("promtool")?))
}

/// Starts `buildlog serve` for `dir` on a free port (refresh every second) and waits for
/// `/healthz`. Returns the process and its base URL.
pub async fn start_serve(
    dir: &Path,
    tmp: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Proc, String) {
    let port = free_port();
    let mut cmd = buildlog();
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg(dir)
        .args(extra)
        .env("METRICS_REFRESH_INTERVAL", "1")
        .env_remove("METRICS_BEARER_TOKEN")
        .env_remove("METRICS_BASIC_AUTH_USER")
        .env_remove("METRICS_BASIC_AUTH_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let proc = Proc::spawn("buildlog serve", cmd, tmp.join(format!("serve-{port}.log")));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(30), "serve /healthz", || {
        let (c, u) = (client.clone(), format!("{base}/healthz"));
        async move {
            c.get(u)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        }
    })
    .await;
    (proc, base)
}

/// A tool from Debian's `prometheus` package on PATH. Missing: the test fails when `CI` is
/// set, else it says what it skipped and the caller returns.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set and `{name}` is not on PATH (apt-get install -y prometheus)");
        }
        eprintln!("SKIPPED: `{name}` is not on PATH (apt-get install -y prometheus)");
    }
    found
}

/// Runs `cmd` to its end and asserts it succeeded; the output names the command and what it said.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (by its PID, through the handle) and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr into `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 200 ms until it gives `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("gave up after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Prometheus server on 127.0.0.1 with its data in `dir/data`.
pub struct Prometheus {
    pub proc: Proc,
    pub url: String,
}

impl Prometheus {
    pub async fn start(bin: &Path, dir: &Path, config: &str, extra: &[&str]) -> Prometheus {
        let port = free_port();
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, config).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=100y")
            .args(extra);
        let proc = Proc::spawn("prometheus", cmd, dir.join("prometheus.log"));
        let p = Prometheus {
            proc,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let ready = format!("{}/-/ready", p.url);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(&ready).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if Instant::now() > deadline {
                panic!("prometheus not ready:\n{}", p.proc.log_text());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        p
    }

    /// An instant query (at `time`, Unix seconds, when given): the result vector as
    /// (labels, sample time, value).
    pub async fn query(
        &self,
        q: &str,
        time: Option<f64>,
    ) -> Result<Vec<(serde_json::Map<String, serde_json::Value>, f64, f64)>, String> {
        let mut params = vec![("query", q.to_string())];
        if let Some(t) = time {
            params.push(("time", format!("{t:.3}")));
        }
        let resp = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&params)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let body: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if body["status"] != "success" {
            return Err(format!("{q}: {body}"));
        }
        let data = &body["data"];
        let as_f64 = |v: &serde_json::Value| -> f64 {
            match v {
                serde_json::Value::String(s) => s.parse().unwrap_or(f64::NAN),
                v => v.as_f64().unwrap_or(f64::NAN),
            }
        };
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["metric"].as_object().cloned().unwrap_or_default(),
                        as_f64(&r["value"][0]),
                        as_f64(&r["value"][1]),
                    )
                })
                .collect()),
            Some("scalar") => Ok(vec![(
                Default::default(),
                as_f64(&data["result"][0]),
                as_f64(&data["result"][1]),
            )]),
            other => Err(format!("unexpected result type {other:?}")),
        }
    }

    /// The single value of `q`, if it has exactly one series.
    pub async fn value(&self, q: &str, time: Option<f64>) -> Option<f64> {
        match self.query(q, time).await {
            Ok(v) if v.len() == 1 => Some(v[0].2),
            _ => None,
        }
    }
}
