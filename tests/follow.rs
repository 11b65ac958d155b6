//! `buildlog convert --follow DIR`: a build written while it is followed gives the same
//! events as converting it afterwards, partial lines held until complete.

mod common;

use common::{append, bin, corpus};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Follow {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follow {
    fn start(dir: &std::path::Path) -> Follow {
        Follow::start_with(dir, &[])
    }

    fn start_with(dir: &std::path::Path, extra: &[&str]) -> Follow {
        let mut child = bin()
            .args(["convert", "--follow", "--poll-interval", "20"])
            .args(extra)
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                if tx.send(l.unwrap()).is_err() {
                    break;
                }
            }
        });
        Follow { child, lines: rx }
    }

    /// Waits (bounded) until `n` lines have come.
    fn take(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(_) => panic!("only {} of {n} events arrived", got.len()),
            }
        }
        got
    }

    fn stop(mut self) -> i32 {
        signal(self.child.id(), "TERM");
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

#[test]
fn a_build_written_while_followed_equals_the_build_converted_afterwards() {
    let src = corpus().join("build-05-legacy-2025");
    let want = bin()
        .args(["convert", "--quiet"])
        .arg(&src)
        .output()
        .unwrap()
        .stdout;
    // Following gives `build_start` at the first event; `build_end` only once the build is
    // over (here the follower is stopped before its idle end), so it is left out.
    let want: Vec<String> = String::from_utf8(want)
        .unwrap()
        .lines()
        .filter(|l| !l.contains(r#""event_type":"build_end""#))
        .map(str::to_string)
        .collect();

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("container-build");
    // The directory does not exist yet when the follower starts.
    let f = Follow::start(&dir);
    std::thread::sleep(Duration::from_millis(100));
    std::fs::create_dir(&dir).unwrap();
    for name in [
        "docker-install.log",
        "kubernetes-tools-install.log",
        "master-summary.log",
    ] {
        let bytes = std::fs::read(src.join(name)).unwrap();
        // Written in pieces cut mid-line, as a running build writes.
        for piece in bytes.chunks(bytes.len() / 3 + 7) {
            append(&dir.join(name), piece);
            std::thread::sleep(Duration::from_millis(60));
        }
    }
    let got = f.take(want.len());
    // Identical but for where the files were read from.
    let unsourced = |l: &str| {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["source"]["file"] = "".into();
        v
    };
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(unsourced(g), unsourced(w));
    }
    assert_eq!(f.stop(), 0);
}

#[test]
fn nothing_is_emitted_for_a_partial_line_until_its_newline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // An explicit id and no wait for JSON twins: this is about lines, not about waiting.
    let f = Follow::start_with(
        &dir,
        &["--correlation-id", "build-1-abcdef", "--twin-wait", "0"],
    );
    let header = "================================================================================\nFeature Installation Log: Demo\nStart Time: 2026-01-02 03:04:05\n================================================================================\n";
    append(&dir.join("demo-install.log"), header.as_bytes());
    let first = f.take(2);
    assert!(first[0].contains("\"build_start\""), "{}", first[0]);
    assert!(first[1].contains("\"feature_start\""), "{}", first[1]);
    append(
        &dir.join("demo-install.log"),
        b"[03:04:06] WARNING: half a li",
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(f.lines.try_recv().is_err(), "a partial line was emitted");
    append(&dir.join("demo-install.log"), b"ne\n");
    let w = f.take(1);
    assert!(w[0].contains("\"message\":\"half a line\""), "{}", w[0]);
    // Truncated and rewritten (copy-truncate rotation): read again from the start.
    std::fs::write(dir.join("demo-install.log"), header.as_bytes()).unwrap();
    let again = f.take(1);
    assert!(again[0].contains("\"feature_start\""));
    assert_eq!(f.stop(), 0);
}

#[test]
fn follow_needs_a_directory() {
    let out = bin()
        .args(["convert", "--follow"])
        .arg(corpus().join("build-05-legacy-2025/docker-install.log"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
