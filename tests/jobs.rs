//! `--jobs N`: many builds read on N threads give exactly the bytes, the messages and the exit
//! code of `--jobs 1`, in the same order, whatever the inputs hold (build directories, an
//! archive of them, loose files, a missing path, a link loop).

mod common;

use common::{bin, corpus};
use std::path::{Path, PathBuf};
use std::process::Output;

fn run(args: &[&str], paths: &[PathBuf], jobs: u32) -> Output {
    bin()
        .args(args)
        .arg("--jobs")
        .arg(jobs.to_string())
        .args(paths)
        .env_remove("BUILDLOG_LOG")
        .output()
        .unwrap()
}

/// Runs `args` with `--jobs 1` and with more, and asserts identical results; returns the
/// output of `--jobs 1`.
fn same_with_any_jobs(args: &[&str], paths: &[PathBuf]) -> Output {
    let one = run(args, paths, 1);
    for jobs in [2, 8] {
        let many = run(args, paths, jobs);
        assert_eq!(
            many.status.code(),
            one.status.code(),
            "{args:?} --jobs {jobs}: exit code"
        );
        assert!(
            many.stdout == one.stdout,
            "{args:?} --jobs {jobs}: {} bytes on stdout, {} with --jobs 1",
            many.stdout.len(),
            one.stdout.len()
        );
        assert_eq!(
            String::from_utf8_lossy(&many.stderr),
            String::from_utf8_lossy(&one.stderr),
            "{args:?} --jobs {jobs}: stderr"
        );
    }
    one
}

/// Two large builds: the second is read while the first is written and cannot all wait in
/// memory.
fn two_large_builds() -> Vec<PathBuf> {
    let c = corpus();
    vec![
        c.join("build-13-large"),
        c.join("build-13-large.console.log"),
    ]
}

fn events(out: &Output) -> usize {
    out.stdout.iter().filter(|&&b| b == b'\n').count()
}

#[test]
fn the_whole_corpus_converts_to_the_same_bytes_on_any_number_of_threads() {
    let one = same_with_any_jobs(&["convert", "--quiet"], &[corpus()]);
    assert_eq!(one.status.code(), Some(0));
    // Every build of the corpus is in it: build 13 alone has 226,933 events.
    let n = events(&one);
    assert!(n > 230_000, "{n} events");
    let text = String::from_utf8_lossy(&one.stdout);
    for build in common::corpus_builds() {
        let name = build.file_name().unwrap().to_string_lossy().to_string();
        assert!(text.contains(&name), "no event of {name}");
    }
}

#[test]
fn mixed_inputs_keep_their_order_their_errors_and_their_exit_code() {
    let c = corpus();
    let dir = tempfile::tempdir().unwrap();
    // An archive with a link back to itself and a second name for a build.
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    for b in ["build-02-failure", "build-01-success"] {
        copy_dir(&c.join(b), &archive.join(b));
    }
    std::os::unix::fs::symlink(".", archive.join("self")).unwrap();
    std::os::unix::fs::symlink("build-01-success", archive.join("latest")).unwrap();
    std::fs::create_dir(archive.join("empty")).unwrap();
    let paths = vec![
        c.join("build-14-chicago-dst"),
        dir.path().join("missing"),
        c.join("build-01-success.console.log"),
        archive,
        c.join("build-13-large/python-install.log"),
    ];
    let one = same_with_any_jobs(&["convert"], &paths);
    // The missing path and the empty directory are errors: exit 1, named on stderr, in order.
    assert_eq!(one.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&one.stderr);
    let missing = stderr
        .find("missing: No such file")
        .expect("missing path named");
    let empty = stderr
        .find("empty: no build logs found")
        .expect("empty dir named");
    assert!(missing < empty, "{stderr}");
    // Order: the inputs' order, an archive's builds sorted by name.
    let text = String::from_utf8_lossy(&one.stdout);
    let markers = [
        "build-14-chicago-dst/",
        "build-01-success.console.log",
        "archive/build-01-success/",
        "archive/build-02-failure/",
        "build-13-large/python-install.log",
    ];
    let at: Vec<usize> = markers
        .iter()
        .map(|m| text.find(m).unwrap_or_else(|| panic!("no event of {m}")))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{markers:?} at {at:?}");
    // Each build once: the link loop and the second name read nothing again.
    let starts = text.matches(r#""event_type":"build_start""#).count();
    assert_eq!(starts, 5, "build_start events");
}

#[test]
fn a_build_read_ahead_waits_in_a_temporary_file_and_comes_out_in_its_turn() {
    let paths = two_large_builds();
    let one = same_with_any_jobs(&["convert", "--quiet"], &paths);
    assert_eq!(one.status.code(), Some(0));
    let traced = bin()
        .args(["convert", "--quiet", "--jobs", "2"])
        .args(&paths)
        .env("BUILDLOG_LOG", "buildlog=debug")
        .output()
        .unwrap();
    assert!(traced.stdout == one.stdout);
    let stderr = String::from_utf8_lossy(&traced.stderr);
    assert!(
        stderr.contains("waited in a temporary file"),
        "the second build did not spill: {stderr}"
    );
    // The temporary file is handed to the kernel to copy out: to a pipe above, and here to
    // a file as `-o` and as stdout (other system calls, the same bytes).
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("o.jsonl");
    let status = bin()
        .args(["convert", "--quiet", "--jobs", "2", "-o"])
        .arg(&o)
        .args(&paths)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(std::fs::read(&o).unwrap() == one.stdout, "-o differs");
    let redirected = dir.path().join("stdout.jsonl");
    let status = bin()
        .args(["convert", "--quiet", "--jobs", "2"])
        .args(&paths)
        .stdout(std::fs::File::create(&redirected).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        std::fs::read(&redirected).unwrap() == one.stdout,
        "stdout to a file differs"
    );
}

#[test]
fn without_a_temporary_directory_a_build_read_ahead_waits_instead() {
    let paths = two_large_builds();
    let one = run(&["convert", "--quiet"], &paths, 1);
    assert_eq!(one.status.code(), Some(0));
    let missing = tempfile::tempdir().unwrap().path().join("gone");
    let two = bin()
        .args(["convert", "--quiet", "--jobs", "2"])
        .args(&paths)
        .env("TMPDIR", &missing)
        .env("BUILDLOG_LOG", "buildlog=debug")
        .output()
        .unwrap();
    assert_eq!(two.status.code(), Some(0));
    assert!(two.stdout == one.stdout, "the bytes differ without $TMPDIR");
    let stderr = String::from_utf8_lossy(&two.stderr);
    assert!(
        stderr.contains("no temporary file for reading ahead"),
        "the second build did not wait: {stderr}"
    );
}

#[test]
fn report_and_metrics_agree_on_any_number_of_threads() {
    let builds = common::corpus_builds();
    let one = same_with_any_jobs(&["report", "--json"], &builds);
    let report: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(report["builds"].as_array().unwrap().len(), builds.len());
    let one = same_with_any_jobs(&["metrics"], &builds);
    let text = String::from_utf8_lossy(&one.stdout);
    assert!(
        text.contains("container_build_builds_total{status=\"failed\"} 3"),
        "{text}"
    );
}

#[test]
fn a_closed_pipe_stops_every_thread() {
    use std::io::Read;
    let mut child = bin()
        .args(["convert", "--jobs", "4"])
        .arg(corpus())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 4096];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    // A closed pipe is the reader's choice: no error.
    assert_eq!(status.code(), Some(0));
}

#[test]
fn jobs_zero_is_refused() {
    let out = bin()
        .args(["convert", "--jobs", "0"])
        .arg(corpus())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--jobs"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
