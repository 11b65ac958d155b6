//! What a sink reads of a server's answer is capped (issue 13, item 8): a Loki or a
//! remote-write endpoint that answers 500 with 256 MiB, an Elasticsearch whose `_bulk` answer
//! is 256 MiB, cost the shipper bounded memory, and the events still arrive on the retry.
//! Peak memory is the child's maximum resident set size as GNU time reports it; the bound is
//! generous (a correctness check, not a benchmark).

mod common;
mod test_es;
mod test_loki;

use common::corpus;
use std::path::Path;
use test_es::TestEs;
use test_loki::{Fault, TestLoki};

const HUGE: usize = 256 << 20;
/// The shipper's peak RSS with a capped read: far below the answer's size.
const BOUND_KIB: u64 = 160 * 1024;

/// Runs `buildlog args...` under /usr/bin/time; (exit code, stderr, peak RSS in KiB).
/// None (the test then says it skipped, or fails with CI set) without GNU time.
fn run_measured(args: &[&str], dir: &Path) -> Option<(i32, String, u64)> {
    let time = Path::new("/usr/bin/time");
    if !time.is_file() {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set and /usr/bin/time is missing (apt-get install -y time)");
        }
        eprintln!("SKIPPED: /usr/bin/time is missing (apt-get install -y time)");
        return None;
    }
    let rss_file = dir.join("rss.txt");
    let out = std::process::Command::new(time)
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(env!("CARGO_BIN_EXE_buildlog"))
        .args(args)
        .output()
        .unwrap();
    let rss: u64 = std::fs::read_to_string(&rss_file)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        rss,
    ))
}

#[test]
fn a_huge_loki_error_body_costs_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let build = corpus().join("build-01-success");
    let want = common::convert_dir(&build, &[]).len();
    let loki = TestLoki::start();
    loki.fail_next(1, Fault::Huge(500, HUGE));
    let dl = dir.path().join("dl.jsonl");
    let Some((code, err, rss)) = run_measured(
        &[
            "ship",
            "-q",
            "--loki",
            &loki.url,
            "--loki-min-backoff",
            "0.01",
            "--loki-max-backoff",
            "0.05",
            "--dead-letter",
            dl.to_str().unwrap(),
            build.to_str().unwrap(),
        ],
        dir.path(),
    ) else {
        return;
    };
    eprintln!("loki, 500 with {HUGE} bytes: peak RSS {rss} KiB");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        loki.entries().len(),
        want,
        "every event arrives on the retry"
    );
    assert!(
        rss < BOUND_KIB,
        "peak RSS {rss} KiB for a {HUGE}-byte answer"
    );
}

#[test]
fn a_huge_bulk_answer_costs_bounded_memory_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let build = corpus().join("build-01-success");
    let want = common::convert_dir(&build, &[]).len();
    for status in [200u16, 500] {
        let es = TestEs::start();
        es.huge_answers(&[(status, HUGE)]);
        let dl = dir.path().join(format!("dl-{status}.jsonl"));
        let Some((code, err, rss)) = run_measured(
            &[
                "ship",
                "-q",
                "--elasticsearch",
                &es.url(),
                "--es-backoff-min",
                "0.01",
                "--es-backoff-max",
                "0.05",
                "--dead-letter",
                dl.to_str().unwrap(),
                build.to_str().unwrap(),
            ],
            dir.path(),
        ) else {
            return;
        };
        eprintln!("elasticsearch, {status} with {HUGE} bytes: peak RSS {rss} KiB");
        assert_eq!(code, 0, "HTTP {status}: {err}");
        assert_eq!(es.doc_count(), want, "HTTP {status}: every event arrives");
        assert!(
            rss < BOUND_KIB,
            "HTTP {status}: peak RSS {rss} KiB for a {HUGE}-byte answer"
        );
    }
}
