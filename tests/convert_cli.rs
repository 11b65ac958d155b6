//! `buildlog convert` as a user runs it: inputs of every kind, bad input, exit codes.

mod common;

use buildlog::{EventType, Level};
use common::{bin, convert_dir, corpus, parse_events};
use std::io::Write;
use std::process::{Command, Stdio};

fn run_stdin(args: &[&str], input: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = bin()
        .arg("convert")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const HEADER: &str =
    "================================================================================
Feature Installation Log: Demo
Version: 1.2.3
Start Time: 2026-01-02 03:04:05
================================================================================

";

#[test]
fn converting_twice_is_byte_identical() {
    for build in [
        "build-01-success",
        "build-11-masked-abort-2026-03",
        "build-14-chicago-dst",
    ] {
        let run = || {
            bin()
                .args(["convert", "--quiet"])
                .arg(corpus().join(build))
                .output()
                .unwrap()
                .stdout
        };
        let a = run();
        assert!(!a.is_empty());
        assert_eq!(a, run(), "{build}");
    }
}

#[test]
fn every_build_gets_one_id_and_different_builds_different_ids() {
    let mut ids = std::collections::BTreeSet::new();
    let shape = regex::Regex::new(r"^build-\d+-[a-z0-9]{6}$").unwrap();
    for build in common::corpus_builds() {
        let events = convert_dir(&build, &[]);
        let mine: std::collections::BTreeSet<_> =
            events.iter().map(|e| e.correlation_id.clone()).collect();
        assert_eq!(mine.len(), 1, "{}: {:?}", build.display(), mine);
        let id = mine.into_iter().next().unwrap();
        assert!(shape.is_match(&id), "{id}");
        assert!(ids.insert(id), "{} shares an id", build.display());
        // Event ids are unique within a build.
        let eids: std::collections::HashSet<_> =
            events.iter().map(|e| e.event_id.clone()).collect();
        assert_eq!(eids.len(), events.len(), "{}", build.display());
    }
}

#[test]
fn a_build_with_one_logger_id_per_feature_keeps_them_as_logger_ids() {
    // Build 13 has 19 logger ids for 19 features: the build takes its first feature's (the
    // earliest Start Time, Python), each other feature keeps its own as logger_correlation_id,
    // so a search by any of the 19 finds its feature.
    let events = convert_dir(&corpus().join("build-13-large"), &[]);
    let build_id: &str = &events[0].correlation_id;
    assert!(events.iter().all(|e| &*e.correlation_id == build_id));
    let first_json =
        std::fs::read_to_string(corpus().join("build-13-large/json/python.jsonl")).unwrap();
    assert!(
        first_json.lines().next().unwrap().contains(build_id),
        "{build_id}"
    );
    let logger_ids: std::collections::BTreeSet<_> = events
        .iter()
        .filter_map(|e| e.logger_correlation_id.clone())
        .collect();
    assert_eq!(logger_ids.len(), 18);
    assert!(!logger_ids.contains(build_id));
    for e in events.iter().filter(|e| e.feature == "Python") {
        assert_eq!(e.logger_correlation_id, None, "{e:?}");
    }
}

#[test]
fn explicit_correlation_id_wins() {
    let out = bin()
        .args(["convert", "--correlation-id", "build-1-abcdef"])
        .arg(corpus().join("build-01-success"))
        .output()
        .unwrap();
    let events = parse_events(&out.stdout);
    assert!(events
        .iter()
        .all(|e| &*e.correlation_id == "build-1-abcdef"));
    let env = bin()
        .args(["convert"])
        .env("BUILD_CORRELATION_ID", "build-2-zzzzzz")
        .arg(corpus().join("build-05-legacy-2025"))
        .output()
        .unwrap();
    assert!(parse_events(&env.stdout)
        .iter()
        .all(|e| &*e.correlation_id == "build-2-zzzzzz"));
}

#[test]
fn missing_path_is_named_others_still_converted_exit_1() {
    let out = bin()
        .args(["convert", "/nonexistent/build-logs"])
        .arg(corpus().join("build-05-legacy-2025"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/build-logs"), "{err}");
    let events = parse_events(&out.stdout);
    assert!(events
        .iter()
        .any(|e| e.feature == "Docker" && e.event_type == EventType::FeatureEnd));
}

#[test]
fn usage_errors_exit_2() {
    let out = bin()
        .args(["convert", "--timezone", "Mars/Olympus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Mars/Olympus"));
    assert_eq!(
        bin()
            .args(["convert", "--bogus"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn stdin_install_log_with_crlf_nul_ansi_and_invalid_utf8() {
    let mut log = HEADER.replace('\n', "\r\n").into_bytes();
    log.extend_from_slice(b"[03:04:05] COMMAND #1: Weird output\r\nExecuting: weird\r\n");
    log.extend_from_slice(
        b"--------------------------------------------------------------------------------\r\n",
    );
    log.extend_from_slice(b"\x1b[31mred error\x1b[0m\r\n");
    log.extend_from_slice(b"nul\0byte\r\n");
    log.extend_from_slice(b"caf\xe9 latin1\r\n");
    log.extend_from_slice(
        b"--------------------------------------------------------------------------------\r\n",
    );
    log.extend_from_slice(b"Exit code: 0 (Duration: 1s)\r\n");
    let (code, stdout, err) = run_stdin(&["-"], &log);
    assert_eq!(code, 0, "{err}");
    let events = parse_events(&stdout);
    let out: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == EventType::Output)
        .collect();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].message, "red error");
    assert_eq!(out[0].raw.as_deref(), Some("\u{1b}[31mred error\u{1b}[0m"));
    assert_eq!(out[0].level, Level::Error);
    assert_eq!(out[1].message, "nul\0byte");
    assert!(out[2].invalid_utf8);
    assert_eq!(out[2].message, "caf\u{fffd} latin1");
    let cmd = events
        .iter()
        .find(|e| e.event_type == EventType::Command)
        .unwrap();
    assert_eq!(cmd.metadata["exit_code"], 0);
    assert_eq!(cmd.timestamp.to_rfc3339(), "2026-01-02T03:04:06.500Z");
    // NUL and ESC survive JSON encoding as escapes, and the output is valid JSON lines.
    let text = String::from_utf8(stdout).unwrap();
    assert!(text.contains("nul\\u0000byte"));
}

#[test]
fn huge_lines_are_cut_and_flagged() {
    let mut log = HEADER.as_bytes().to_vec();
    log.extend_from_slice(b"[03:04:05] COMMAND #1: Big\nExecuting: big\n");
    log.extend_from_slice(
        b"--------------------------------------------------------------------------------\n",
    );
    log.extend(std::iter::repeat_n(b'x', 5_000_000));
    log.extend_from_slice(b"\nafter\n");
    let (code, stdout, err) = run_stdin(&["--max-line-bytes", "65536", "-"], &log);
    assert_eq!(code, 0, "{err}");
    let events = parse_events(&stdout);
    let big = events.iter().find(|e| e.truncated).unwrap();
    assert_eq!(big.original_length, Some(5_000_000));
    assert_eq!(big.message.len(), 65536);
    assert!(events.iter().any(|e| e.message == "after"));
    // Cut mid-command: the command and the feature are incomplete, not lost.
    let cmd = events
        .iter()
        .find(|e| e.event_type == EventType::Command)
        .unwrap();
    assert!(cmd.incomplete);
    assert!(events
        .iter()
        .any(|e| e.event_type == EventType::FeatureEnd && e.incomplete));
}

#[test]
fn gzip_files_and_truncated_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    let src = std::fs::read(corpus().join("build-01-success/python-install.log")).unwrap();
    let gz = tmp.path().join("python-install.log.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&src).unwrap();
    let bytes = enc.finish().unwrap();
    std::fs::write(&gz, &bytes).unwrap();
    let plain = bin()
        .args(["convert"])
        .arg(corpus().join("build-01-success/python-install.log"))
        .output()
        .unwrap();
    let zipped = bin().args(["convert"]).arg(&gz).output().unwrap();
    assert!(zipped.status.success());
    let a = parse_events(&plain.stdout);
    let b = parse_events(&zipped.stdout);
    assert_eq!(a.len(), b.len());
    assert_eq!(
        a.iter().map(|e| &e.message).collect::<Vec<_>>(),
        b.iter().map(|e| &e.message).collect::<Vec<_>>()
    );
    // A truncated .gz: what could be read is converted, the error names the file, exit 1.
    let cut = tmp.path().join("cut-install.log.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = bin().args(["convert"]).arg(&cut).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cut-install.log.gz"));
    assert!(!parse_events(&out.stdout).is_empty());
}

#[test]
fn directory_of_builds_and_build_log_dir_env() {
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir_without(
        &corpus().join("build-01-success"),
        &tmp.path().join("a"),
        "json",
    );
    common::copy_dir_without(
        &corpus().join("build-05-legacy-2025"),
        &tmp.path().join("b"),
        "none",
    );
    let events = convert_dir(tmp.path(), &[]);
    let ids: std::collections::BTreeSet<_> =
        events.iter().map(|e| e.correlation_id.clone()).collect();
    assert_eq!(ids.len(), 2);
    let env = bin()
        .arg("convert")
        .env("BUILD_LOG_DIR", tmp.path().join("b"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let from_env = parse_events(&env.stdout);
    assert!(from_env.iter().any(|e| e.feature == "Kubernetes Tools"));
}

#[test]
fn aborted_features_end_incomplete_and_the_sentinel_links_them() {
    let events = convert_dir(&corpus().join("build-02-failure"), &[]);
    let end = events
        .iter()
        .find(|e| e.event_type == EventType::FeatureEnd && e.feature == "Java Development")
        .unwrap();
    assert!(end.incomplete);
    assert_eq!(end.metadata["status"], "failed");
    assert_eq!(end.metadata["commands_executed"], 2);
    let cmd = events
        .iter()
        .find(|e| {
            e.event_type == EventType::Command
                && e.feature == "Java Development"
                && e.command_num == Some(2)
        })
        .unwrap();
    assert!(cmd.incomplete);
    // The exit code the text lacks comes from build-failure.log.
    assert_eq!(cmd.metadata["exit_code"], 22);
    let fail = events
        .iter()
        .find(|e| e.event_type == EventType::BuildFailure)
        .unwrap();
    assert_eq!(fail.feature, "Java Development");
    assert_eq!(fail.metadata["command_num"], 2);
    assert_eq!(fail.metadata["exit_code"], 22);
    assert_eq!(fail.span_id, end.span_id);
    // master-summary.log has no line for the aborted feature.
    let summaries: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == EventType::BuildSummary)
        .collect();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].feature, "Golang");
}

#[test]
fn dst_build_times_keep_increasing_in_utc() {
    let events = convert_dir(
        &corpus().join("build-14-chicago-dst"),
        &["--timezone", "America/Chicago"],
    );
    let warning = events
        .iter()
        .find(|e| e.event_type == EventType::Warning)
        .unwrap();
    assert_eq!(warning.timestamp.to_rfc3339(), "2026-11-01T07:00:50.898Z");
    let rust: Vec<_> = events
        .iter()
        .filter(|e| e.feature == "Rust" && e.event_type != EventType::Output)
        .collect();
    assert!(rust
        .windows(2)
        .all(|w| w[0].timestamp <= w[1].timestamp || w[1].event_type == EventType::CommandStart));
}

#[test]
fn follow_friendly_events_come_out_before_stdin_closes() {
    let mut child = bin()
        .args(["convert", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(HEADER.as_bytes()).unwrap();
    stdin
        .write_all(b"[03:04:05] COMMAND #1: x\nExecuting: x\n--------------------------------------------------------------------------------\nhello\n--------------------------------------------------------------------------------\nExit code: 0 (Duration: 0s)\n")
        .unwrap();
    stdin.flush().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    use std::io::BufRead;
    // build_start, feature_start, command_start, output, command: all before stdin is closed
    // (the build_end comes once it is).
    for _ in 0..5 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let e: buildlog::Event = serde_json::from_str(&line).unwrap();
        seen.push(e.event_type);
    }
    assert_eq!(
        seen,
        [
            EventType::BuildStart,
            EventType::FeatureStart,
            EventType::CommandStart,
            EventType::Output,
            EventType::Command
        ]
    );
    drop(stdin);
    let mut rest = String::new();
    use std::io::Read;
    stdout.read_to_string(&mut rest).unwrap();
    let last: buildlog::Event = serde_json::from_str(rest.lines().last().unwrap()).unwrap();
    assert_eq!(last.event_type, EventType::BuildEnd);
    assert!(child.wait().unwrap().success());
}

#[test]
fn broken_pipe_is_not_an_error() {
    let mut child = bin()
        .arg("convert")
        .arg(corpus().join("build-07-config-summary-2025-11"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn no_scrub_says_so() {
    let out = bin()
        .args(["convert", "--no-scrub"])
        .arg(corpus().join("build-05-legacy-2025"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("scrubbing is OFF"));
}

#[test]
fn help_has_examples() {
    for args in [
        vec!["--help"],
        vec!["convert", "--help"],
        vec!["ship", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_buildlog"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Examples:"),
            "{args:?}"
        );
    }
}

#[test]
fn without_its_install_log_a_feature_comes_from_its_errors_and_summary_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    common::copy_dir_without(&corpus().join("build-01-success"), &dir, "json");
    std::fs::remove_file(dir.join("rust-install.log")).unwrap();
    let events = convert_dir(&dir, &[]);
    let rust: Vec<_> = events.iter().filter(|e| e.feature == "Rust").collect();
    let lines: Vec<_> = rust
        .iter()
        .filter(|e| e.event_type == EventType::Output)
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0].message, "warning: unused variable: `x`");
    assert_eq!(lines[0].level, Level::Warn);
    assert_eq!(lines[3].message, "0 errors, 0 failures");
    assert_eq!(lines[3].level, Level::Error);
    let end = rust
        .iter()
        .find(|e| e.event_type == EventType::FeatureEnd)
        .unwrap();
    assert_eq!(end.metadata["errors"], 2);
    assert_eq!(end.metadata["warnings"], 3);
    assert_eq!(end.details["from"], "summary log");
    // Features with install logs do not get their errors log twice.
    assert!(!events
        .iter()
        .any(|e| e.feature == "Python" && e.details.get("from").is_some()));
}

#[test]
fn a_private_key_printed_over_several_lines_is_redacted() {
    let mut log = HEADER.as_bytes().to_vec();
    log.extend_from_slice(b"[03:04:05] COMMAND #1: Show key\nExecuting: cat id_rsa\n");
    log.extend_from_slice(
        b"--------------------------------------------------------------------------------\n",
    );
    log.extend_from_slice(b"-----BEGIN OPENSSH PRIVATE KEY-----\n");
    log.extend_from_slice(
        b"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n",
    );
    log.extend_from_slice(
        b"QyNTUxOQAAACDxK2VwZ2Fpbm9ubHlmYWtlZmFrZWZha2VmYWtlZmFrZWZha2VmYQAAAJg=\n",
    );
    log.extend_from_slice(b"-----END OPENSSH PRIVATE KEY-----\n");
    log.extend_from_slice(b"done\n");
    let (code, stdout, err) = run_stdin(&["-"], &log);
    assert_eq!(code, 0, "{err}");
    let text = String::from_utf8(stdout).unwrap();
    assert!(
        !text.contains("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"),
        "{text}"
    );
    assert!(
        !text.contains("QyNTUxOQAAACDxK2VwZ2Fpbm9ubHlmYWtl"),
        "{text}"
    );
    assert!(text.contains("\"message\":\"done\""));
    // --no-scrub passes it through (and says so).
    let (_, raw, _) = run_stdin(&["--no-scrub", "-"], &log);
    assert!(String::from_utf8(raw)
        .unwrap()
        .contains("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"));
}

#[test]
fn every_console_log_is_a_build_with_its_own_id() {
    let mut ids = std::collections::BTreeSet::new();
    let mut n = 0;
    for f in std::fs::read_dir(corpus()).unwrap() {
        let p = f.unwrap().path();
        if !p.is_file() || p.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let events = convert_dir(&p, &[]);
        let mine: std::collections::BTreeSet<_> =
            events.iter().map(|e| e.correlation_id.clone()).collect();
        assert_eq!(mine.len(), 1, "{}", p.display());
        ids.extend(mine);
        n += 1;
    }
    assert_eq!(ids.len(), n, "two console logs share an id");
    assert!(n >= 15);
}
