//! The real servers of the peers directory (`$BUILDLOG_PEERS`, holding the `peer` script).
//! Without it a test is skipped with a note, unless `CI` is set: then it fails.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The `peer` script, or `None` (after saying so) when the test should be skipped.
pub fn peer_script(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("BUILDLOG_PEERS").filter(|d| !d.is_empty());
    let script = dir
        .map(|d| PathBuf::from(d).join("peer"))
        .filter(|p| p.exists());
    if script.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: CI is set but $BUILDLOG_PEERS/peer is missing");
        }
        eprintln!("SKIPPED {test}: set BUILDLOG_PEERS to the directory holding `peer` to run it");
    }
    script
}

/// Runs a command that must succeed; its stdout, trimmed.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Output of `peer ARGS...` (its stdout, trimmed).
pub fn peer(script: &PathBuf, args: &[&str]) -> String {
    run_ok(Command::new(script).args(args))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A spawned server, killed by its PID when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http_get(url: &str) -> Option<(u16, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .ok()?;
        Some((r.status().as_u16(), r.text().await.ok()?))
    })
}

/// A real Loki on 127.0.0.1 with a fresh data directory, ready to take pushes.
pub fn start_loki(script: &PathBuf) -> Server {
    let exe = peer(script, &["path", "loki"]);
    let dir = tempfile::tempdir().unwrap();
    let (http, grpc) = (free_port(), free_port());
    let config = peer(
        script,
        &[
            "loki-config",
            dir.path().to_str().unwrap(),
            &http.to_string(),
            &grpc.to_string(),
        ],
    );
    let cfg = dir.path().join("loki.yaml");
    std::fs::write(&cfg, config).unwrap();
    let log = std::fs::File::create(dir.path().join("loki.log")).unwrap();
    let child = Command::new(exe)
        .arg(format!("-config.file={}", cfg.display()))
        .current_dir(dir.path())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{http}"),
        _dir: dir,
    };
    let start = Instant::now();
    loop {
        if let Some((200, body)) = http_get(&format!("{}/ready", server.url)) {
            if body.trim() == "ready" {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "Loki did not become ready"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    server
}

/// Percent-encodes a query parameter value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The executable of peer `name` (`peer path NAME`), for a test that spawns it itself;
/// `None` (after saying so) when the test should be skipped.
pub fn peer_path(test: &str, name: &str) -> Option<PathBuf> {
    let script = peer_script(test)?;
    Some(PathBuf::from(peer(&script, &["path", name])))
}

/// A spawned process, killed by its PID when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts connections on `addr` (panics after 30 s).
pub fn wait_for_port(addr: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing listens on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
