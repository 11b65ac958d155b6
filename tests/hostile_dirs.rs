//! Build directories as they are found on real disks: links that loop or name a build twice,
//! FIFOs and devices under the logger's file names, huge sentinel files, an unreadable
//! `json/`. Each is converted once, refused with a message naming it, or read in bounded
//! memory; nothing hangs.

mod common;

use common::{bin, copy_dir_without, corpus};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Runs `cmd` with a bound: a hang is a failure, not a stuck test run. Its output is read while
/// it runs (a child blocked on a full pipe would look like a hang).
fn run_bounded(mut cmd: Command, secs: u64) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("still running after {secs} s");
        }
    }
}

fn convert(path: &Path) -> Output {
    let mut c = bin();
    c.args(["convert", "--quiet"]).arg(path);
    // Generous: the machine may be busy; a hang is what this catches.
    run_bounded(c, 120)
}

fn lines(o: &Output) -> usize {
    o.stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
}

#[test]
fn links_back_up_and_second_names_are_read_once() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let build = archive.join("build-2026-01");
    copy_dir_without(&corpus().join("build-05-legacy-2025"), &build, "");
    let once = lines(&convert(&build));
    assert!(once > 10);
    symlink(".", build.join("self")).unwrap();
    symlink(".", build.join("self2")).unwrap();
    symlink("build-2026-01", archive.join("latest")).unwrap();
    let out = convert(&archive);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&out), once, "the build was converted more than once");
}

#[test]
fn a_fifo_or_a_device_under_a_logger_name_is_refused_not_waited_on() {
    let tmp = tempfile::tempdir().unwrap();
    let build = tmp.path().join("b");
    copy_dir_without(
        &corpus().join("build-02-failure"),
        &build,
        "build-failure.log",
    );
    let fifo = build.join("zz-install.log");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    symlink("/dev/zero", build.join("build-failure.log")).unwrap();
    let out = convert(&build);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("zz-install.log: not a regular file"), "{err}");
    assert!(
        err.contains("build-failure.log: not a regular file"),
        "{err}"
    );
    // The rest of the build is still converted.
    assert!(lines(&out) > 10);
}

#[test]
fn a_huge_sentinel_file_is_read_as_lines_cut_at_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let build = tmp.path().join("b");
    copy_dir_without(&corpus().join("build-02-failure"), &build, "");
    // 128 MB of NUL bytes and no newline after the real sentinel line: a sparse file.
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(build.join("build-failure.log"))
        .unwrap();
    f.set_len(f.metadata().unwrap().len() + 128 * 1024 * 1024)
        .unwrap();
    let out = convert(&build);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"event_type\":\"build_failure\""));
}

#[test]
fn an_unreadable_json_dir_falls_back_to_the_text_logs_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let build = tmp.path().join("b");
    copy_dir_without(&corpus().join("build-01-success"), &build, "json");
    let text_only = lines(&convert(&build));
    // A json/ that cannot be opened (as root, permissions do not stop a read: a dangling
    // link is what cannot be read here).
    symlink("nowhere", build.join("json")).unwrap();
    let out = convert(&build);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/json:") && err.contains("text logs alone"),
        "{err}"
    );
    assert_eq!(lines(&out), text_only);
}
