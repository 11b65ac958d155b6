//! `buildlog ship --follow` against the test Loki and the test Elasticsearch: crashes
//! (SIGKILL at random moments) and restarts lose and duplicate nothing, a graceful shutdown
//! checkpoints everything, an outage is ridden out, rotation and truncation are followed.

mod common;
mod test_es;
mod test_loki;

use buildlog::checkpoint::Positions;
use buildlog::Event;
use common::{append, bin, corpus};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use test_es::TestEs;
use test_loki::{Fault, TestLoki};

const DS: &str = "logs-container_build-default";

/// A running `ship --follow`, killed when dropped. Its stderr goes to a file (a pipe nobody
/// reads could fill up with retry warnings and block it).
struct Shipper(Child, PathBuf);

impl Drop for Shipper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Shipper {
    fn start(
        dir: &Path,
        state: &Path,
        loki: &TestLoki,
        es: Option<&TestEs>,
        extra: &[&str],
    ) -> Shipper {
        let mut c = bin();
        c.args([
            "ship",
            "-q",
            "--follow",
            "--poll-interval",
            "20",
            "--checkpoint-interval",
            "30",
        ])
        .arg("--state-dir")
        .arg(state)
        .arg("--dead-letter")
        .arg(state.join("dead-letter.jsonl"))
        .args(["--loki", &loki.url, "--loki-batch-wait", "0.05"])
        .args(["--loki-min-backoff", "0.05", "--loki-max-backoff", "0.2"]);
        if let Some(es) = es {
            c.args(["--elasticsearch", &es.url(), "--es-flush-interval", "0.05"]);
        }
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = state.with_extension(format!("stderr-{n}"));
        let child = c
            .args(extra)
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Shipper(child, log)
    }

    /// SIGTERM, then the exit code and stderr.
    fn terminate(mut self) -> (i32, String) {
        signal(self.0.id(), "TERM");
        let code = wait_exit(&mut self.0, Duration::from_secs(30));
        (code, std::fs::read_to_string(&self.1).unwrap())
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "the shipper did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// The logger files of a corpus build (no `json/`, no repeated `-errors`/`-summary` logs).
fn logger_files(build: &str) -> Vec<(String, Vec<u8>)> {
    let src = corpus().join(build);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with("-install.log"))
        .map(|n| {
            let b = std::fs::read(src.join(&n)).unwrap();
            (n, b)
        })
        .collect();
    v.sort();
    v
}

/// What `convert` makes of the finished directory: what every sink must hold while the build
/// is followed (`build_end` comes only once the build is over, after `--idle-end`).
fn expected(dir: &Path) -> Vec<Event> {
    common::convert_dir(dir, &[])
        .into_iter()
        .filter(|e| !matches!(e.event_type, buildlog::EventType::BuildEnd))
        .collect()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Loki holds every expected event exactly once, exactly as a one-shot `ship` of the finished
/// build stores it: same streams, same timestamps (so the same order in each stream), same lines.
fn assert_loki_exactly_once(loki: &TestLoki, want: &[Event], dir: &Path) {
    let got = loki.entries();
    let mut ids = HashMap::new();
    for s in &got {
        let id = s.structured_metadata["event_id"].clone();
        assert!(
            ids.insert(id.clone(), s).is_none(),
            "event {id} stored twice in Loki"
        );
    }
    assert_eq!(got.len(), want.len(), "Loki entries vs events");
    for e in want {
        assert!(
            ids.contains_key(&e.event_id),
            "event {} ({:?}) missing in Loki",
            e.event_id,
            e.message
        );
    }
    let reference = TestLoki::start();
    let out = bin()
        .args(["ship", "-q", "--loki", &reference.url])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without `build_end`: the followed build is not over (see `expected`).
    let want_entries: Vec<_> = reference
        .entries()
        .into_iter()
        .filter(|s| {
            !matches!(
                s.structured_metadata.get("event_type").map(String::as_str),
                Some("build_end")
            )
        })
        .collect();
    assert_eq!(want_entries.len(), got.len());
    for (g, w) in got.iter().zip(&want_entries) {
        assert_eq!(g, w);
    }
}

fn assert_es_exactly_once(es: &TestEs, want: &[Event]) {
    let docs = es.docs(DS);
    assert_eq!(docs.len(), want.len(), "Elasticsearch documents vs events");
    for e in want {
        let d = docs
            .get(&e.event_id)
            .unwrap_or_else(|| panic!("event {} missing in Elasticsearch", e.event_id));
        assert_eq!(d["message"], e.message.as_str());
    }
}

fn positions(state: &Path) -> Positions {
    serde_json::from_slice(&std::fs::read(state.join("positions.json")).unwrap()).unwrap()
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let files = logger_files("build-09-log-levels-2026-01");
    assert_eq!(files.len(), 3);
    let (_tmp, dir, state) = scene();
    let loki = TestLoki::start();
    let es = TestEs::start();

    // The build: appends pieces cut anywhere (mid-line too) to its install logs, interleaved.
    let writer = {
        let dir = dir.clone();
        let files = files.clone();
        std::thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(7);
            let mut at = vec![0usize; files.len()];
            while at.iter().zip(&files).any(|(a, f)| *a < f.1.len()) {
                // Features start in order (the build's id comes from the first one's header),
                // then their logs grow interleaved.
                let started = at.iter().take_while(|a| **a > 0).count();
                let i = rng.usize(..(started + 1).min(files.len()));
                let (name, bytes) = &files[i];
                if at[i] == bytes.len() {
                    continue;
                }
                let end = (at[i] + rng.usize(1..900)).min(bytes.len());
                append(&dir.join(name), &bytes[at[i]..end]);
                at[i] = end;
                std::thread::sleep(Duration::from_millis(rng.u64(5..35)));
            }
            let summary =
                std::fs::read(corpus().join("build-09-log-levels-2026-01/master-summary.log"))
                    .unwrap();
            append(&dir.join("master-summary.log"), &summary);
        })
    };

    let mut rng = fastrand::Rng::with_seed(42);
    let mut kills = 0;
    while kills < 20 || !writer.is_finished() {
        let mut s = Shipper::start(&dir, &state, &loki, Some(&es), &[]);
        std::thread::sleep(Duration::from_millis(rng.u64(30..400)));
        s.0.kill().unwrap(); // SIGKILL
        s.0.wait().unwrap();
        kills += 1;
    }
    writer.join().unwrap();

    let want = expected(&dir);
    assert_eq!(want.len(), 942);
    let s = Shipper::start(&dir, &state, &loki, Some(&es), &[]);
    // Past its start-up (a SIGTERM before the handlers are installed kills it).
    std::thread::sleep(Duration::from_millis(500));
    wait_for(
        "every event in Loki and Elasticsearch",
        Duration::from_secs(40),
        || loki.counts().0 as usize >= want.len() && es.doc_count() >= want.len(),
    );
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    eprintln!(
        "{kills} kills; Loki dropped {} resent duplicates",
        loki.counts().1
    );
    assert_loki_exactly_once(&loki, &want, &dir);
    assert_es_exactly_once(&es, &want);
    assert!(!state.join("dead-letter.jsonl").exists());

    // The final checkpoint covers every file to its end.
    let pos = positions(&state);
    for (name, bytes) in &files {
        let p = &pos.files[&dir.join(name).display().to_string()];
        assert_eq!(p.offset, bytes.len() as u64, "{name}");
        let n = want
            .iter()
            .filter(|e| e.source.file.ends_with(name.as_str()))
            .count();
        assert_eq!(p.seq, n as u64, "{name}");
    }
}

/// (event_type, feature, message) of each event: what must arrive when ids cannot be compared.
fn contents(
    events: impl IntoIterator<Item = (String, String, String)>,
) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = events.into_iter().collect();
    v.sort();
    v
}

fn loki_contents(loki: &TestLoki) -> Vec<(String, String, String)> {
    contents(loki.entries().into_iter().map(|s| {
        let v: serde_json::Value = serde_json::from_str(&s.line).unwrap();
        (
            s.structured_metadata["event_type"].clone(),
            v["feature"].as_str().unwrap().to_string(),
            v["message"].as_str().unwrap().to_string(),
        )
    }))
}

fn event_contents(events: &[Event]) -> Vec<(String, String, String)> {
    contents(events.iter().map(|e| {
        (
            e.event_type.to_string(),
            e.feature.clone(),
            e.message.clone(),
        )
    }))
}

/// A fresh temporary place: the build directory `dir` (created) and the state directory.
fn scene() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    std::fs::create_dir(&dir).unwrap();
    let state = tmp.path().join("state");
    (tmp, dir, state)
}

/// A scene whose build holds the legacy build's docker feature log.
fn docker_scene() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (tmp, dir, state) = scene();
    std::fs::write(dir.join("docker-install.log"), legacy("docker-install.log")).unwrap();
    (tmp, dir, state)
}

fn legacy(name: &str) -> Vec<u8> {
    std::fs::read(corpus().join("build-05-legacy-2025").join(name)).unwrap()
}

#[test]
fn graceful_shutdown_checkpoints_and_a_restart_sends_only_what_is_new() {
    let (_tmp, dir, state) = scene();
    let docker = legacy("docker-install.log");
    let k8s = legacy("kubernetes-tools-install.log");
    // The second feature's log is only half written when the shipper stops.
    let cut = k8s.len() / 2 + 13;
    std::fs::write(dir.join("docker-install.log"), &docker).unwrap();
    std::fs::write(dir.join("kubernetes-tools-install.log"), &k8s[..cut]).unwrap();
    let loki = TestLoki::start();
    let es = TestEs::start();

    let s = Shipper::start(&dir, &state, &loki, Some(&es), &[]);
    // The last complete line of the half-written file, not into the partial one.
    let boundary = k8s[..cut].iter().rposition(|b| *b == b'\n').unwrap() as u64 + 1;
    let (dkey, kkey) = (
        dir.join("docker-install.log").display().to_string(),
        dir.join("kubernetes-tools-install.log")
            .display()
            .to_string(),
    );
    // Checkpointed while running, once both sinks acknowledged everything read.
    wait_for(
        "the checkpoint of the first part",
        Duration::from_secs(30),
        || {
            std::fs::read(state.join("positions.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Positions>(&b).ok())
                .is_some_and(|p| {
                    p.files
                        .get(&dkey)
                        .is_some_and(|d| d.offset == docker.len() as u64)
                        && p.files.get(&kkey).is_some_and(|k| k.offset == boundary)
                })
        },
    );
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("checkpoints written"), "{err}");
    let pos = positions(&state);
    assert_eq!(pos.files[&kkey].offset, boundary);
    let first_ids: Vec<String> = es.docs(DS).keys().cloned().collect();
    assert_eq!(first_ids.len() as u64, loki.counts().0);
    assert!(pos.builds.contains_key(&dir.display().to_string()));
    let (stored, dups) = loki.counts();
    assert_eq!(dups, 0);

    // The rest of the feature is written while the shipper is down; the restart sends it, and
    // nothing it had sent before.
    append(&dir.join("kubernetes-tools-install.log"), &k8s[cut..]);
    let want = expected(&dir);
    assert!(want.len() > stored as usize);
    let requests_before = es.bulk_ids().len();
    let s = Shipper::start(&dir, &state, &loki, Some(&es), &[]);
    std::thread::sleep(Duration::from_millis(500));
    wait_for("the rest", Duration::from_secs(30), || {
        loki.counts().0 as usize >= want.len() && es.doc_count() >= want.len()
    });
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        loki.counts().1,
        0,
        "the restart sent to Loki again what it had delivered"
    );
    let resent: usize = es.bulk_ids()[requests_before..]
        .iter()
        .flatten()
        .filter(|id| first_ids.contains(id))
        .count();
    assert_eq!(resent, 0, "{resent} events sent again to Elasticsearch");
    assert!(err.contains("skipped as delivered before"), "{err}");
    assert_loki_exactly_once(&loki, &want, &dir);
    assert_es_exactly_once(&es, &want);
}

#[test]
fn a_second_signal_exits_at_once_and_the_checkpoint_keeps_it_safe() {
    let (_tmp, dir, state) = docker_scene();
    let loki = TestLoki::start();
    // Loki never answers: the flush cannot finish.
    loki.fail_next(1000, Fault::Hang);
    let s = Shipper::start(&dir, &state, &loki, None, &["--shutdown-timeout", "60"]);
    std::thread::sleep(Duration::from_millis(800));
    signal(s.pid(), "TERM");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (code, _) = s.terminate();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_ne!(code, 0);
    // Nothing was acknowledged, so nothing is checkpointed as delivered.
    if state.join("positions.json").exists() {
        for p in positions(&state).files.values() {
            assert_eq!(p.seq, 0, "{p:?}");
        }
    }
}

#[test]
fn shutdown_timeout_bounds_the_flush_and_undelivered_events_are_sent_after_a_restart() {
    let (_tmp, dir, state) = docker_scene();
    let want = expected(&dir);
    let loki = TestLoki::start();
    loki.fail_next(10_000, Fault::Status(503, None));
    let s = Shipper::start(
        &dir,
        &state,
        &loki,
        None,
        &["--shutdown-timeout", "1", "--loki-max-retries", "1000"],
    );
    std::thread::sleep(Duration::from_millis(800));
    let started = Instant::now();
    let (code, err) = s.terminate();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("not done after --shutdown-timeout"), "{err}");
    assert_eq!(loki.counts().0, 0);
    // Loki is back: everything arrives, once, and nothing went to the dead-letter file.
    let loki = TestLoki::start();
    let s = Shipper::start(&dir, &state, &loki, None, &[]);
    std::thread::sleep(Duration::from_millis(500));
    wait_for("the events", Duration::from_secs(30), || {
        loki.counts().0 as usize >= want.len()
    });
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    assert_loki_exactly_once(&loki, &want, &dir);
    assert!(!state.join("dead-letter.jsonl").exists());
}

/// Peak resident memory of a process, in bytes (VmHWM).
fn peak_rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn an_outage_is_ridden_out_with_bounded_memory_and_the_backlog_drains() {
    let (_tmp, dir, state) = scene();
    for (name, bytes) in logger_files("build-09-log-levels-2026-01") {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let want = expected(&dir);
    let loki = TestLoki::start();
    // Loki refuses (503, then 429 with Retry-After) for a while, then recovers.
    loki.fail_next(25, Fault::Status(503, None));
    loki.fail_next(3, Fault::Status(429, Some(1)));
    let s = Shipper::start(
        &dir,
        &state,
        &loki,
        None,
        &["--loki-max-retries", "1000", "--loki-batch-bytes", "4096"],
    );
    // More of the build is written during the outage.
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        loki.counts().0 < want.len() as u64,
        "the outage did not hold anything back"
    );
    wait_for("the backlog to drain", Duration::from_secs(40), || {
        loki.counts().0 as usize >= want.len()
    });
    let rss = peak_rss(s.pid());
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    assert!(rss < 64 << 20, "peak RSS {rss} bytes");
    let failed = loki
        .requests()
        .iter()
        .filter(|r| r.status != 204 && r.status != 200)
        .count();
    assert!(failed >= 28, "only {failed} refused requests");
    assert_loki_exactly_once(&loki, &want, &dir);
    assert!(!state.join("dead-letter.jsonl").exists());
}

#[test]
fn rename_rotation_and_copy_truncate_are_followed() {
    let (tmp, dir, state) = scene();
    let docker = legacy("docker-install.log");
    let k8s = legacy("kubernetes-tools-install.log");
    let log = dir.join("docker-install.log");
    let loki = TestLoki::start();
    let s = Shipper::start(&dir, &state, &loki, None, &[]);

    // Half the feature, then the file is renamed away while its writer still appends to it,
    // and a new file takes its name.
    let half = docker.len() / 2;
    std::fs::write(&log, &docker[..half]).unwrap();
    let mut old = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    wait_for("the first half", Duration::from_secs(30), || {
        loki.counts().0 > 0
    });
    std::fs::rename(&log, dir.join("docker-install.log.1")).unwrap();
    old.write_all(&docker[half..]).unwrap();
    drop(old);
    std::fs::write(&log, &k8s).unwrap();

    // Each file on its own is what must arrive.
    let one = tmp.path().join("one");
    std::fs::create_dir(&one).unwrap();
    std::fs::write(one.join("docker-install.log"), &docker).unwrap();
    let two = tmp.path().join("two");
    std::fs::create_dir(&two).unwrap();
    std::fs::write(two.join("docker-install.log"), &k8s).unwrap();
    // One followed directory is one build: one build_start, before the first file's events.
    let file_events = |d: &Path| {
        expected(d)
            .into_iter()
            .filter(|e| e.event_type != buildlog::EventType::BuildStart)
    };
    let mut want = expected(&one);
    want.extend(file_events(&two));
    wait_for("both files", Duration::from_secs(30), || {
        loki.counts().0 as usize >= want.len()
    });

    // Copy-truncate: the file is emptied and written again from its start.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&log, &docker).unwrap();
    want.extend(file_events(&one));
    wait_for("the rewritten file", Duration::from_secs(30), || {
        loki.counts().0 as usize >= want.len()
    });
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    // After this copy-truncate the same lines come again as new events (new seq numbers),
    // so Loki stores them again: the file did start over.
    assert_eq!(loki_contents(&loki), event_contents(&want));
    let pos = positions(&state);
    assert_eq!(
        pos.files[&log.display().to_string()].offset,
        docker.len() as u64
    );
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn metrics_listen_reports_reads_acknowledgements_backlog_and_checkpoint_age() {
    let (_tmp, dir, state) = docker_scene();
    let want = expected(&dir).len() as f64;
    let loki = TestLoki::start();
    let es = TestEs::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let s = Shipper::start(&dir, &state, &loki, Some(&es), &["--metrics-listen", &addr]);
    let mut body = String::new();
    wait_for(
        "every event acknowledged in /metrics",
        Duration::from_secs(30),
        || {
            body = http_get(&addr, "/metrics").unwrap_or_default();
            sample(
                &body,
                "buildlog_sink_events_acknowledged_total{sink=\"loki\"}",
            ) == Some(want)
                && sample(
                    &body,
                    "buildlog_sink_events_acknowledged_total{sink=\"elasticsearch\"}",
                ) == Some(want)
                && sample(&body, "buildlog_checkpoint_age_seconds").is_some()
        },
    );
    assert_eq!(
        sample(&body, "buildlog_follow_events_read_total"),
        Some(want)
    );
    assert_eq!(
        sample(&body, "buildlog_sink_events_queued_total{sink=\"loki\"}"),
        Some(want)
    );
    assert_eq!(
        sample(&body, "buildlog_sink_events_outstanding{sink=\"loki\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &body,
            "buildlog_sink_delivery_lag_seconds{sink=\"elasticsearch\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&body, "buildlog_events_dead_lettered_total"),
        Some(0.0)
    );
    assert!(sample(&body, "buildlog_checkpoints_written_total").unwrap() >= 1.0);
    assert!(sample(&body, "buildlog_checkpoint_age_seconds").unwrap() < 30.0);
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn follow_refuses_stdin_and_state_dir_needs_follow() {
    let out = bin()
        .args(["ship", "--follow", "--stdout", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not stdin"));
    let out = bin()
        .args(["ship", "--stdout", "--state-dir", "x"])
        .arg(corpus().join("build-05-legacy-2025"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .args(["ship", "--stdout", "--buffer-dir", "x"])
        .arg(corpus().join("build-05-legacy-2025"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("need --follow"));
}

/// Events spooled in a disk buffer directory (all sinks).
fn spooled(buffer: &Path) -> (usize, u64) {
    let mut lines = 0;
    let mut bytes = 0;
    for sink in std::fs::read_dir(buffer).into_iter().flatten().flatten() {
        for seg in std::fs::read_dir(sink.path()).unwrap().flatten() {
            // A segment the feeder finished may be deleted between listing and reading.
            let Ok(b) = std::fs::read(seg.path()) else {
                continue;
            };
            bytes += b.len() as u64;
            lines += b.iter().filter(|c| **c == b'\n').count();
        }
    }
    (lines, bytes)
}

/// Two big feature logs: more events than the sinks' in-memory queues hold.
fn big_build(dir: &Path) -> Vec<Event> {
    std::fs::create_dir_all(dir).unwrap();
    for name in ["python-install.log", "r-install.log"] {
        let b = std::fs::read(corpus().join("build-13-large").join(name)).unwrap();
        std::fs::write(dir.join(name), b).unwrap();
    }
    expected(dir)
}

#[test]
fn the_disk_buffer_takes_the_backlog_while_loki_is_down_and_drains_after_a_restart() {
    let (tmp, dir, state) = scene();
    let buffer = tmp.path().join("buffer");
    let want = big_build(&dir);
    assert!(want.len() > 10_000);
    let down = TestLoki::start();
    down.fail_next(1_000_000, Fault::Status(503, None));
    let buf = [
        "--buffer-dir",
        buffer.to_str().unwrap(),
        "--loki-max-retries",
        "100000",
        "--loki-batch-bytes",
        "4096",
    ];
    let s = Shipper::start(&dir, &state, &down, None, &buf);
    // The follower read on: what the queue (4096 events) and the sink (the events it took
    // at its last wake-up, and the batch being retried) cannot hold is on disk.
    let in_memory = buildlog::pipeline::QUEUE_EVENTS + buildlog::sink::TAKE_AT_ONCE + 200;
    wait_for("the backlog in the buffer", Duration::from_secs(60), || {
        spooled(&buffer).0 + in_memory >= want.len()
    });
    let rss = peak_rss(s.pid());
    assert!(rss < 64 << 20, "peak RSS {rss} bytes");
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("bytes left for the next run"), "{err}");
    let (left, _) = spooled(&buffer);
    assert!(left > 0);
    assert_eq!(down.counts().0, 0);

    // Loki is back: the buffer is sent first and emptied; everything arrives exactly once.
    let up = TestLoki::start();
    let s = Shipper::start(&dir, &state, &up, None, &buf);
    wait_for("every event", Duration::from_secs(60), || {
        up.counts().0 as usize >= want.len() && spooled(&buffer).0 == 0
    });
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 bytes left"), "{err}");
    assert_loki_exactly_once(&up, &want, &dir);
    // The buffered copies were sent, and Loki dropped the re-parsed ones (or the reverse).
    assert!(up.counts().1 as usize >= left, "{:?} {left}", up.counts());
}

#[test]
fn a_full_buffer_drops_the_oldest_events_with_a_count_and_a_warning() {
    let (tmp, dir, state) = scene();
    let buffer = tmp.path().join("buffer");
    let want = big_build(&dir);
    let down = TestLoki::start();
    down.fail_next(1_000_000, Fault::Status(503, None));
    let s = Shipper::start(
        &dir,
        &state,
        &down,
        None,
        &[
            "--buffer-dir",
            buffer.to_str().unwrap(),
            "--buffer-max-bytes",
            "65536",
            "--buffer-when-full",
            "drop-oldest",
            "--loki-max-retries",
            "100000",
            "--loki-batch-bytes",
            "4096",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    wait_for(
        "the follower to read everything",
        Duration::from_secs(60),
        || {
            let (lines, bytes) = spooled(&buffer);
            assert!(bytes <= 65536, "{bytes} bytes spooled");
            lines > 0 && lines < 1000
        },
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("dropping the oldest spooled events"), "{err}");
    let read: usize = err
        .split("files: ")
        .nth(1)
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(read, want.len(), "{err}");
    let dropped: usize = err
        .split("bytes left for the next run, ")
        .nth(1)
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(dropped > 5000, "{err}");
    assert!(spooled(&buffer).1 <= 65536);
}

#[test]
fn events_skipped_after_a_restart_show_in_the_live_metric() {
    let (_tmp, dir, state) = docker_scene();
    let want = expected(&dir).len();
    let loki = TestLoki::start();
    let s = Shipper::start(&dir, &state, &loki, None, &[]);
    wait_for("every event delivered", Duration::from_secs(30), || {
        loki.counts().0 as usize >= want
    });
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");

    // The restart reads the same files: every event was delivered before, so skipped, and
    // the metric says so while the shipper runs (it said 0 until the exit summary).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let s = Shipper::start(&dir, &state, &loki, None, &["--metrics-listen", &addr]);
    let mut body = String::new();
    wait_for(
        "the skipped events in /metrics",
        Duration::from_secs(30),
        || {
            body = http_get(&addr, "/metrics").unwrap_or_default();
            sample(&body, "buildlog_follow_events_skipped_total") == Some(want as f64)
        },
    );
    assert_eq!(
        sample(&body, "buildlog_follow_events_read_total"),
        Some(0.0)
    );
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "0 events read, {want} skipped as delivered before"
        )),
        "{err}"
    );
    assert_eq!(loki.counts().1, 0, "nothing sent twice");
}

/// A tmpfs of `size` mounted at `at` (options `opts`), unmounted on drop. None when this
/// machine cannot mount one (not root, no permission): the caller skips, or fails with CI set.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, opts: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set and a tmpfs cannot be mounted (needs root): the full-disk test cannot run");
            }
            eprintln!("SKIPPED: cannot mount a tmpfs (needs root) to fill a disk");
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_buffer_disk_is_an_error_naming_the_file_and_keeps_what_was_delivered() {
    let (tmp, dir, state) = docker_scene();
    let first = expected(&dir);
    let loki = TestLoki::start();
    // The first part is delivered and checkpointed.
    let s = Shipper::start(&dir, &state, &loki, None, &[]);
    wait_for("the first part", Duration::from_secs(30), || {
        loki.counts().0 as usize >= first.len()
    });
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    let delivered = positions(&state);

    // A big feature log arrives while Loki hangs: everything goes to the disk buffer, on a
    // 64 KiB file system that fills up.
    let Some(_fs) = Tmpfs::mount(&tmp.path().join("small"), "size=64k") else {
        return;
    };
    let buffer = tmp.path().join("small/buffer");
    // More events than the sink's queue and its batches in flight hold.
    let big = [
        "aws-cli-v2-install.log",
        "rust-development-tools-install.log",
        "python-install.log",
    ];
    for f in big {
        std::fs::copy(corpus().join("build-13-large").join(f), dir.join(f)).unwrap();
    }
    loki.fail_next(100_000, Fault::Hang);
    let mut s = Shipper::start(
        &dir,
        &state,
        &loki,
        None,
        &[
            "--buffer-dir",
            buffer.to_str().unwrap(),
            "--shutdown-timeout",
            "1",
        ],
    );
    // It stops by itself, non-zero, naming the file it could not write.
    let code = wait_exit(&mut s.0, Duration::from_secs(60));
    let err = std::fs::read_to_string(&s.1).unwrap();
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains(&format!("{}/loki/", buffer.display())),
        "the error names the file: {err}"
    );
    // The checkpoint still holds what was delivered, and no more.
    let after = positions(&state);
    for (k, p) in &delivered.files {
        assert_eq!(after.files[k].offset, p.offset, "{k}");
    }
    for f in big {
        let k = dir.join(f).display().to_string();
        assert!(
            after.files.get(&k).is_none_or(|p| p.offset == 0),
            "{k}: {after:?}"
        );
    }
}

#[test]
fn a_read_only_buffer_dir_is_an_error_naming_it() {
    let (tmp, dir, state) = docker_scene();
    let Some(_fs) = Tmpfs::mount(&tmp.path().join("ro"), "ro,size=64k") else {
        return;
    };
    let buffer = tmp.path().join("ro/buffer");
    let loki = TestLoki::start();
    let mut s = Shipper::start(
        &dir,
        &state,
        &loki,
        None,
        &["--buffer-dir", buffer.to_str().unwrap()],
    );
    let code = wait_exit(&mut s.0, Duration::from_secs(30));
    let err = std::fs::read_to_string(&s.1).unwrap();
    assert_ne!(code, 0, "{err}");
    assert!(err.contains(&buffer.display().to_string()), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
}
