//! `buildlog ship --follow` against the test Loki and the test Elasticsearch: crashes
//! (SIGKILL at random moments) and restarts lose and duplicate nothing, a graceful shutdown
//! checkpoints everything, an outage is ridden out, rotation and truncation are followed.

mod common;
mod test_es;
mod test_loki;

use buildlog::checkpoint::Positions;
use buildlog::Event;
use common::{bin, corpus};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use test_es::TestEs;
use test_loki::{Fault, TestLoki};

const DS: &str = "logs-container_build-default";

/// A running `ship --follow`, killed when dropped.
struct Shipper(Child);

impl Drop for Shipper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
        let child = c
            .args(extra)
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Shipper(child)
    }

    /// SIGTERM, then the exit code and stderr.
    fn terminate(mut self) -> (i32, String) {
        signal(self.0.id(), "TERM");
        wait_output(&mut self.0, Duration::from_secs(30))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

fn wait_output(child: &mut Child, limit: Duration) -> (i32, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (st.code().unwrap_or(-1), err);
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

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
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

/// What `convert` makes of the finished directory: what every sink must hold.
fn expected(dir: &Path) -> Vec<Event> {
    common::convert_dir(dir, &[])
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
    let want_entries = reference.entries();
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
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("container-build");
    let state = tmp.path().join("state");
    std::fs::create_dir(&dir).unwrap();
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
    assert_eq!(want.len(), 941);
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
