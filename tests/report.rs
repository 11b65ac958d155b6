//! Build events, diagnostics and `buildlog report` on the real corpus: the build's real
//! status, the report in its three forms agreeing with the events, and `--compare` as a CI
//! gate.

mod common;

use buildlog::event::Diagnostic;
use buildlog::{Event, EventType};
use common::{bin, convert_dir, corpus};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn build_end(events: &[Event]) -> &Event {
    let ends: Vec<&Event> = events
        .iter()
        .filter(|e| e.event_type == EventType::BuildEnd)
        .collect();
    assert_eq!(ends.len(), 1, "one build_end per build");
    ends[0]
}

fn check_build_events(events: &[Event]) -> &Event {
    let starts: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.event_type == EventType::BuildStart)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts, vec![0], "one build_start, first");
    let end = build_end(events);
    assert_eq!(
        events.last().unwrap().event_type,
        EventType::BuildEnd,
        "build_end last"
    );
    // Both carry the build's identity.
    let corr = &events[1].correlation_id;
    assert_eq!(&events[0].correlation_id, corr);
    assert_eq!(&end.correlation_id, corr);
    assert_eq!(events[0].timestamp, events[1].timestamp);
    assert_eq!(
        end.timestamp,
        events[..events.len() - 1]
            .iter()
            .map(|e| e.timestamp)
            .max()
            .unwrap()
    );
    end
}

fn meta_u64(e: &Event, k: &str) -> u64 {
    e.metadata[k].as_u64().unwrap_or_else(|| panic!("{k}"))
}

#[test]
fn build_end_says_what_really_happened() {
    // Build 01: a clean build.
    let ev = convert_dir(&corpus().join("build-01-success"), &[]);
    let end = check_build_events(&ev);
    assert_eq!(end.metadata["status"], "success");
    assert_eq!(meta_u64(end, "features"), 4);
    assert_eq!(meta_u64(end, "commands"), 11);
    assert_eq!(meta_u64(end, "failed_commands"), 0);

    // Build 13: two tolerated failures, 8,209 logger "errors", ten features the logger calls
    // `failed`: a success.
    let ev = convert_dir(&corpus().join("build-13-large"), &[]);
    let end = check_build_events(&ev);
    assert_eq!(end.metadata["status"], "success");
    assert_eq!(meta_u64(end, "features"), 19);
    assert_eq!(meta_u64(end, "commands"), 85);
    assert_eq!(meta_u64(end, "failed_commands"), 2);
    let logger_failed = ev
        .iter()
        .filter(|e| e.event_type == EventType::FeatureEnd && e.metadata["status"] == "failed")
        .count();
    assert_eq!(logger_failed, 10, "the logger's own verdicts are kept");
    let logger_errors: u64 = ev
        .iter()
        .filter(|e| e.event_type == EventType::BuildSummary)
        .map(|e| meta_u64(e, "errors"))
        .sum();
    assert_eq!(meta_u64(end, "errors"), logger_errors);
    assert!(logger_errors > 8000, "{logger_errors}");
    // Its wall time: first to last event.
    let first = ev[1..].iter().map(|e| e.timestamp.millis()).min().unwrap();
    let last = ev[..ev.len() - 1]
        .iter()
        .map(|e| e.timestamp.millis())
        .max()
        .unwrap();
    assert_eq!(
        end.metadata["duration_seconds"].as_f64().unwrap(),
        (last - first) as f64 / 1000.0
    );

    // Build 02: the sentinel and an aborted feature.
    let ev = convert_dir(&corpus().join("build-02-failure"), &[]);
    let end = check_build_events(&ev);
    assert_eq!(end.metadata["status"], "failed");
    assert_eq!(end.level, buildlog::Level::Error);
    assert_eq!(meta_u64(end, "failed_commands"), 2);
    let why: Vec<&str> = end.details["failed_because"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        why,
        [
            "build failure sentinel: feature 'Java Development' command #2 exit 22",
            "feature 'Java Development' was aborted"
        ]
    );

    // Aborted console logs (no sentinel event: the build just stops).
    for f in [
        "build-02-failure.console.log",
        "build-16-github-actions.console.log",
        "build-16-github-actions.github-actions.log",
    ] {
        let ev = convert_dir(&corpus().join(f), &[]);
        let end = check_build_events(&ev);
        assert_eq!(end.metadata["status"], "failed", "{f}");
    }
    let ev = convert_dir(&corpus().join("build-01-success.console.log"), &[]);
    assert_eq!(check_build_events(&ev).metadata["status"], "success");
}

#[test]
fn failed_commands_say_how_they_failed_and_keep_the_loggers_message() {
    let ev = convert_dir(&corpus().join("build-02-failure"), &[]);
    let failed: Vec<(&str, &str, &str, &str)> = ev
        .iter()
        .filter(|e| e.event_type == EventType::Command && e.metadata["success"] == false)
        .map(|e| {
            (
                e.feature.as_str(),
                e.message.as_str(),
                e.level.as_str(),
                e.details["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        [
            ("Golang", "Installing gopls", "ERROR", "failed (exit 1)"),
            (
                "Java Development",
                "Installing jdtls",
                "ERROR",
                "aborted the build"
            )
        ]
    );
    assert!(ev
        .iter()
        .filter(|e| e.event_type == EventType::Command && e.metadata["success"] == true)
        .all(|e| !e.details.contains_key("outcome")));
}

#[test]
fn diagnostics_on_the_corpus() {
    let ev = convert_dir(&corpus().join("build-13-large"), &[]);
    let errors: Vec<&str> = ev
        .iter()
        .filter(|e| e.diagnostic == Some(Diagnostic::Error))
        .map(|e| e.message.as_str())
        .collect();
    assert!(
        !errors.is_empty() && errors.len() <= 6,
        "at most a handful: {errors:#?}"
    );
    assert!(errors.iter().all(|l| l.starts_with("npm error ")
        || l.starts_with("go: github.com/acme/internal-linter@latest: ")));
    let logger_error_lines = ev
        .iter()
        .filter(|e| e.event_type == EventType::Output && e.level == buildlog::Level::Error)
        .count();
    assert!(logger_error_lines > 8000, "{logger_error_lines}");
    // Flags, names and downloads holding "error" never are.
    for e in ev.iter().filter(|e| e.event_type == EventType::Output) {
        if e.message.contains("-Werror=")
            || e.message.contains("error_prone")
            || e.message.contains("thiserror")
            || e.message.contains("go-errorlint")
        {
            assert_ne!(e.diagnostic, Some(Diagnostic::Error), "{}", e.message);
        }
    }
    // Only output events carry it.
    assert!(ev
        .iter()
        .filter(|e| e.event_type != EventType::Output)
        .all(|e| e.diagnostic.is_none()));

    let ev = convert_dir(&corpus().join("build-02-failure"), &[]);
    let of = |prefix: &str| {
        ev.iter()
            .find(|e| e.event_type == EventType::Output && e.message.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix}"))
            .diagnostic
    };
    assert_eq!(of("curl: (22)"), Some(Diagnostic::Error));
    assert_eq!(of("E: jdtls"), Some(Diagnostic::Error));
    assert_eq!(of("Checksum OK"), None);
    assert_eq!(meta_u64(build_end(&ev), "diagnostic_errors"), 3);
}

fn report(args: &[&str]) -> (i32, String, String) {
    let out = bin().arg("report").arg("-q").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn report_json(path: &Path) -> Value {
    let (code, out, err) = report(&["--json", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The JSON report agrees with the events: per-feature durations and statuses, commands,
/// failures.
fn json_agrees_with_events(dir: &Path) -> Value {
    let events = convert_dir(dir, &[]);
    let j = report_json(dir);
    let builds = j["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 1);
    let b = &builds[0];
    let end = build_end(&events);
    assert_eq!(b["correlation_id"], &*end.correlation_id);
    assert_eq!(b["status"], end.metadata["status"]);
    assert_eq!(b["duration_seconds"], end.metadata["duration_seconds"]);
    let ends: BTreeMap<&str, &Event> = events
        .iter()
        .filter(|e| e.event_type == EventType::FeatureEnd)
        .map(|e| (e.feature.as_str(), e))
        .collect();
    let features = b["features"].as_array().unwrap();
    assert_eq!(features.len(), ends.len());
    for f in features {
        let name = f["feature"].as_str().unwrap();
        let fe = ends[name];
        assert_eq!(
            f["duration_seconds"].as_f64(),
            fe.metadata["duration_seconds"].as_f64(),
            "{name}"
        );
        let commands: Vec<&Event> = events
            .iter()
            .filter(|e| e.event_type == EventType::Command && e.feature == name)
            .collect();
        let cs = f["commands"].as_array().unwrap();
        assert_eq!(cs.len(), commands.len(), "{name}");
        for (c, e) in cs.iter().zip(&commands) {
            assert_eq!(c["command_num"], e.metadata["command_num"]);
            assert_eq!(
                c["duration_seconds"].as_f64(),
                e.metadata["duration_seconds"].as_f64()
            );
            assert_eq!(c["exit_code"], e.metadata["exit_code"]);
            assert_eq!(c["status"] == "success", e.metadata["success"] == true);
        }
    }
    let failed: Vec<(String, u64)> = events
        .iter()
        .filter(|e| e.event_type == EventType::Command && e.metadata["success"] == false)
        .map(|e| {
            (
                e.feature.clone(),
                e.metadata["command_num"].as_u64().unwrap(),
            )
        })
        .collect();
    let failures: Vec<(String, u64)> = b["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["feature"].as_str().unwrap().to_string(),
                f["command_num"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(failures, failed);
    j
}

#[test]
fn report_json_on_builds_02_and_13() {
    let j = json_agrees_with_events(&corpus().join("build-02-failure"));
    let b = &j["builds"][0];
    assert_eq!(b["status"], "failed");
    let java = &b["features"][1];
    assert_eq!(java["feature"], "Java Development");
    assert_eq!(java["status"], "failed");
    let f = &b["failures"][1];
    assert_eq!(f["outcome"], "aborted the build");
    assert_eq!(f["exit_code"], 22);
    assert_eq!(
        f["last_output"],
        serde_json::json!([
            "curl: (22) The requested URL returned error: 404",
            "E: jdtls archive could not be downloaded"
        ])
    );

    let j = json_agrees_with_events(&corpus().join("build-13-large"));
    let b = &j["builds"][0];
    assert_eq!(b["status"], "success");
    assert_eq!(b["failures"].as_array().unwrap().len(), 2);
    let real_failed: Vec<&Value> = b["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] != "success")
        .collect();
    assert!(real_failed.is_empty(), "{real_failed:?}");
}

#[test]
fn report_reads_an_events_file_as_convert_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let st = bin()
        .args(["convert", "-q", "-o"])
        .arg(&events)
        .arg(corpus().join("build-02-failure"))
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        report_json(&events),
        report_json(&corpus().join("build-02-failure"))
    );
}

#[test]
fn report_text_on_builds_02_and_13() {
    let (code, out, err) = report(&[corpus().join("build-02-failure").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains('\x1b'), "no colour off a terminal");
    assert!(out.starts_with("Build build-"), "{out}");
    assert!(
        out.lines().next().unwrap().contains("FAILED  1.8s"),
        "{out}"
    );
    assert!(out.contains(
        "failed because: build failure sentinel: feature 'Java Development' command #2 exit 22"
    ));
    assert!(out.contains("  Golang #2 Installing gopls: failed (exit 1)\n"));
    assert!(out.contains("  Java Development #2 Installing jdtls: aborted the build (exit 22)\n"));
    assert!(out.contains("│ E: jdtls archive could not be downloaded"));
    // The timeline: one bar per feature, the aborted one flagged.
    let java = out
        .lines()
        .find(|l| l.starts_with("  Java Development |"))
        .unwrap();
    assert!(java.ends_with("FAILED"), "{java}");

    let (code, out, _) = report(&[corpus().join("build-13-large").to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.lines().next().unwrap().contains("success  26m48s"),
        "{out}"
    );
    assert!(out.contains("      4m01s  Python #7 Building Python (this may take several minutes)"));
    let bars = out
        .lines()
        .filter(|l| l.contains(" |") && l.ends_with('s'))
        .count();
    assert_eq!(bars, 19, "{out}");
    assert!(out.contains(
        "  Node.js Development Tools #3 Installing shared eslint config: failed (exit 1)"
    ));
    assert!(out.contains("the logger counted 8209 errors"));
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn report_html_on_builds_02_and_13() {
    let dir = tempfile::tempdir().unwrap();
    for build in ["build-02-failure", "build-13-large"] {
        let path = corpus().join(build);
        let j = report_json(&path);
        let html_path = dir.path().join(format!("{build}.html"));
        let (code, _, err) = report(&[
            "--html",
            html_path.to_str().unwrap(),
            path.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        let html = std::fs::read_to_string(&html_path).unwrap();
        let features = j["builds"][0]["features"].as_array().unwrap();
        assert_eq!(count(&html, " data-feature=\""), features.len());
        let commands: usize = features
            .iter()
            .map(|f| f["commands"].as_array().unwrap().len())
            .sum();
        assert_eq!(count(&html, " data-command=\""), commands);
        for f in features {
            let name = f["feature"].as_str().unwrap();
            for c in f["commands"].as_array().unwrap() {
                let id = format!("data-command=\"{}#{}\"", name, c["command_num"]);
                assert_eq!(count(&html, &id), 1, "{id}");
            }
        }
        let failed = j["builds"][0]["failures"].as_array().unwrap().len();
        assert_eq!(count(&html, "class=\"bar command failed\""), failed);
        // Self-contained: nothing fetched.
        for bad in ["src=\"http", "href=\"http", "@import", "url("] {
            assert!(!html.contains(bad), "{bad}");
        }
        assert!(html.contains("Content-Security-Policy"));
    }
    // Several builds: a trend view.
    let html_path = dir.path().join("trend.html");
    let (code, _, _) = report(&[
        "--html",
        html_path.to_str().unwrap(),
        corpus().join("build-01-success").to_str().unwrap(),
        corpus().join("build-02-failure").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("1 of 2 builds succeeded (50%)"));
    assert_eq!(count(&html, "<section class=\"build\""), 2);
}

/// `convert`s build 13 into a file; returns its lines.
fn converted(dir: &Path, build: &str) -> (std::path::PathBuf, Vec<Value>) {
    let path = dir.join(format!("{build}.jsonl"));
    let st = bin()
        .args(["convert", "-q", "-o"])
        .arg(&path)
        .arg(corpus().join(build))
        .status()
        .unwrap();
    assert!(st.success());
    let lines = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (path, lines)
}

#[test]
fn compare_finds_a_slower_feature_and_nothing_in_a_build_against_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (old, lines) = converted(dir.path(), "build-13-large");
    // Self-compare: no change, exit 0, even with a zero tolerance.
    let (code, out, err) = report(&[
        "--compare",
        old.to_str().unwrap(),
        old.to_str().unwrap(),
        "--max-regression",
        "0",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No change."), "{out}");

    // A copy where Ruby's commands took twice as long (and so did Ruby).
    let slower: Vec<String> = lines
        .into_iter()
        .map(|mut v| {
            if v["feature"] == "Ruby"
                && (v["event_type"] == "command" || v["event_type"] == "feature_end")
            {
                let d = v["metadata"]["duration_seconds"].as_u64().unwrap();
                v["metadata"]["duration_seconds"] = (d * 2).into();
                v["duration_ms"] = (d * 2000).into();
            }
            v.to_string()
        })
        .collect();
    let new = dir.path().join("slower.jsonl");
    std::fs::write(&new, slower.join("\n") + "\n").unwrap();
    let (code, out, _) = report(&[
        "--compare",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--max-regression",
        "10",
    ]);
    assert_eq!(code, 5, "{out}");
    assert!(
        out.contains("Slower by more than 10%:\n  Ruby: 1m32s -> 3m04s (+100.0%, limit 10%)"),
        "{out}"
    );
    assert!(out.contains("    #2   Installing gems"), "{out}");
    // Within a looser limit it passes; the JSON form says the same.
    let (code, _, _) = report(&[
        "--compare",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--max-regression",
        "150",
    ]);
    assert_eq!(code, 0);
    let (_, out, _) = report(&[
        "--json",
        "--compare",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    let ruby = j["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == "Ruby")
        .unwrap();
    assert_eq!(ruby["delta_percent"], 100.0);
    assert_eq!(ruby["delta_seconds"], 92.0);
    let others_moved = j["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["feature"] != "Ruby" && f["delta_seconds"] != 0.0)
        .count();
    assert_eq!(others_moved, 0);
}

#[test]
fn compare_reports_new_failures_and_diagnostics() {
    let (code, out, _) = report(&[
        "--compare",
        corpus().join("build-01-success").to_str().unwrap(),
        corpus().join("build-02-failure").to_str().unwrap(),
        "--max-regression",
        "10",
    ]);
    assert_eq!(code, 0, "different features: nothing to regress: {out}");
    assert!(out.contains("build: success -> failed"), "{out}");
    assert!(out.contains("New failures\n  Golang #2 Installing gopls: failed (exit 1)\n  Java Development #2 Installing jdtls: aborted the build\n"), "{out}");
    assert!(
        out.contains("  Java Development: error: E: jdtls archive could not be downloaded"),
        "{out}"
    );
}

#[test]
fn report_usage_errors() {
    let (code, _, err) = report(&["--max-regression", "10"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = report(&[
        "--compare",
        corpus().join("build-01-success").to_str().unwrap(),
        "/nonexistent/build",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no build found"), "{err}");
}
