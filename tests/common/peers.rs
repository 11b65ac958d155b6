//! Real servers from `$BUILDLOG_PEERS/peer` (see the peers README): found, or skipped with a
//! message, or, with `CI` set, a test failure.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};

/// The executable of peer `name`, unpacked by `peer path NAME`.
pub fn peer_path(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("BUILDLOG_PEERS").and_then(|dir| {
        let out = Command::new(PathBuf::from(dir).join("peer"))
            .args(["path", name])
            .output()
            .ok()?;
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        (out.status.success() && p.is_file()).then_some(p)
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but the {name} peer is missing (set BUILDLOG_PEERS to the directory holding `peer`)");
        }
        eprintln!(
            "SKIPPED: {name} peer not found (set BUILDLOG_PEERS to the directory holding `peer`)"
        );
    }
    found
}

/// Kills the child by its PID when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `addr` (panics after 30 s).
pub fn wait_for_port(addr: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {addr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
