//! The console parser over the corpus's `docker build` console logs: the plain console of
//! every build, build 01 as BuildKit prints it, and build 16 as a GitHub Actions job log.
//! What it finds is checked against what the JSON logger and `master-summary.log` wrote in
//! the same runs.

use buildlog::event::{Event, EventType, Level};
use buildlog::parse::console::ConsoleParser;
use buildlog::parse::FormatParser;
use buildlog::source::{Line, LineSplitter};
use jiff::tz::TimeZone;
use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/corpus")
        .join(name)
}

/// Parses `bytes` cut at the given chunk boundaries (offsets), lines capped at `max` bytes.
fn parse_cut(bytes: &[u8], cuts: &[usize], max: usize, tz: TimeZone) -> Vec<Event> {
    let mut parser = ConsoleParser::new(tz);
    let mut splitter = LineSplitter::new(max);
    let mut out = Vec::new();
    let mut f = |l: Line<'_>| -> Result<(), ()> {
        parser.line(&l, &mut out);
        Ok(())
    };
    let mut at = 0;
    for &c in cuts {
        let c = c.clamp(at, bytes.len());
        splitter.push(&bytes[at..c], &mut f).unwrap();
        at = c;
    }
    splitter.push(&bytes[at..], &mut f).unwrap();
    splitter.finish(&mut f).unwrap();
    parser.finish(&mut out);
    out
}

fn parse_bytes(bytes: &[u8]) -> Vec<Event> {
    parse_cut(bytes, &[], 256 * 1024, TimeZone::UTC)
}

fn parse_file(name: &str) -> Vec<Event> {
    parse_bytes(&std::fs::read(corpus(name)).unwrap())
}

fn of_type(evs: &[Event], t: EventType) -> Vec<&Event> {
    evs.iter().filter(|e| e.event_type == t).collect()
}

/// The JSON logger's events of a build, per feature file, read with serde_json after
/// removing the stray `}` the logger writes at the end of each line.
fn json_events(build: &str) -> Vec<Value> {
    let dir = corpus(build).join("json");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "jsonl")
                && p.file_name().is_some_and(|n| n != "build-summary.jsonl")
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            if line.trim().is_empty() {
                continue;
            }
            // Control bytes are written raw (build 15): escape them as JSON wants.
            let line: String = line
                .chars()
                .map(|c| match c {
                    '\u{0}'..='\u{1f}' => format!("\\u{:04x}", c as u32),
                    c => c.to_string(),
                })
                .collect();
            let line = line.as_str();
            let v: Value = serde_json::from_str(line)
                .or_else(|_| serde_json::from_str(line.strip_suffix('}').unwrap_or(line)))
                .unwrap_or_else(|e| panic!("{}: {e}: {line}", f.display()));
            out.push(v);
        }
    }
    out
}

/// `(feature, message, command_num, exit_code, duration_seconds, success)` of the command
/// events, sorted (the JSON files are per feature, the console is in time order).
type CommandKey = (String, String, i64, i64, i64, bool);

fn command_keys_json(json: &[Value]) -> Vec<CommandKey> {
    let mut v: Vec<CommandKey> = json
        .iter()
        .filter(|e| e["event_type"] == "command")
        .map(|e| {
            let m = &e["metadata"];
            (
                e["feature"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
                m["command_num"].as_i64().unwrap(),
                m["exit_code"].as_i64().unwrap(),
                m["duration_seconds"].as_i64().unwrap(),
                m["success"].as_bool().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The same keys of our complete `command` events, read through their JSON form.
fn command_keys(evs: &[Event]) -> Vec<CommandKey> {
    let json: Vec<Value> = of_type(evs, EventType::Command)
        .into_iter()
        .filter(|e| !e.incomplete)
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    command_keys_json(&json)
}

/// `master-summary.log`: `Name: n errors, n warnings (ns)` -> (name, errors, warnings, secs).
fn master_summary(build: &str) -> Vec<(String, u64, u64, u64)> {
    std::fs::read_to_string(corpus(build).join("master-summary.log"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, rest) = l.rsplit_once(": ").unwrap();
            let nums: Vec<u64> = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            (name.to_string(), nums[0], nums[1], nums[2])
        })
        .collect()
}

fn feature_end_keys(evs: &[Event]) -> Vec<(String, u64, u64, u64)> {
    of_type(evs, EventType::FeatureEnd)
        .into_iter()
        .filter(|e| !e.incomplete)
        .map(|e| {
            let m = &e.metadata;
            (
                e.feature.clone(),
                m["errors"].as_u64().unwrap(),
                m["warnings"].as_u64().unwrap(),
                m["duration_seconds"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every complete `feature_end` has the JSON logger's metadata, key for key.
fn assert_feature_ends_equal_json(evs: &[Event], json: &[Value]) {
    let ours: Vec<(String, Value)> = of_type(evs, EventType::FeatureEnd)
        .into_iter()
        .filter(|e| !e.incomplete)
        .map(|e| {
            (
                e.feature.clone(),
                Value::Object(e.metadata.clone().into_map()),
            )
        })
        .collect();
    let theirs: Vec<(String, Value)> = json
        .iter()
        .filter(|e| e["event_type"] == "feature_end")
        .map(|e| {
            (
                e["feature"].as_str().unwrap().to_string(),
                e["metadata"].clone(),
            )
        })
        .collect();
    let mut a = ours.clone();
    let mut b = theirs.clone();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(a, b);
}

/// The corpus builds that have the JSON logger's files and a console log.
const BUILDS_WITH_JSON: [&str; 11] = [
    "build-01-success",
    "build-02-failure",
    "build-08-json-2025-11",
    "build-09-log-levels-2026-01",
    "build-10-scrubbing-2026-03",
    "build-11-masked-abort-2026-03",
    "build-12-token-patterns-2026-05",
    "build-13-large",
    "build-14-chicago-dst",
    "build-15-control-bytes",
    "build-16-github-actions",
];

fn ms(v: &Value) -> i64 {
    buildlog::Timestamp::parse_rfc3339(v.as_str().unwrap())
        .unwrap()
        .millis()
}

#[test]
fn build_01_console_has_the_runs_features_commands_and_ends() {
    let evs = parse_file("build-01-success.console.log");
    let starts: Vec<(&str, Option<&str>)> = of_type(&evs, EventType::FeatureStart)
        .iter()
        .map(|e| (e.feature.as_str(), e.version.as_deref()))
        .collect();
    assert_eq!(
        starts,
        [
            ("Python", Some("3.13.5")),
            ("Node.js", Some("22.11.0")),
            ("Rust", Some("1.83.0")),
            ("Development Tools", None),
        ]
    );
    let json = json_events("build-01-success");
    let cmds = command_keys(&evs);
    assert_eq!(cmds.len(), 11);
    assert_eq!(cmds, command_keys_json(&json));
    let ends = feature_end_keys(&evs);
    assert_eq!(ends, master_summary("build-01-success"));
    assert_feature_ends_equal_json(&evs, &json);

    // The same metadata as the logger for feature_start, and times within a second of its.
    for j in json.iter() {
        let ty = j["event_type"].as_str().unwrap();
        if !["feature_start", "command", "feature_end"].contains(&ty) {
            continue;
        }
        let ours = evs
            .iter()
            .find(|e| {
                e.event_type.as_str() == ty
                    && e.feature == j["feature"]
                    && e.message == j["message"]
            })
            .unwrap_or_else(|| panic!("no event for {j}"));
        if ty == "feature_start" {
            assert_eq!(
                Value::Object(ours.metadata.clone().into_map()),
                j["metadata"]
            );
        }
        let d = (ours.timestamp.millis() - ms(&j["timestamp"])).abs();
        assert!(
            d < 1000,
            "{ty} {}: {} vs {}",
            ours.message,
            ours.timestamp,
            j["timestamp"]
        );
    }

    // A command's details, as the install-log parser gives them.
    let deps = evs
        .iter()
        .find(|e| {
            e.event_type == EventType::Command && e.message == "Installing build dependencies"
        })
        .unwrap();
    assert_eq!(deps.details["output_lines"], 6);
    assert_eq!(deps.details["new_errors"], 2); // `libgpg-error0`, twice: the logger's count
    assert_eq!(deps.details["new_warnings"], 0);
    assert_eq!(deps.details["start_line"], 21);
    assert!(deps.details["command"]
        .as_str()
        .unwrap()
        .starts_with("bash -c echo \"Reading package lists...\""));

    // Messages and debug lines between commands; nothing carries an inferred time.
    let msg = of_type(&evs, EventType::Message);
    assert_eq!(msg.len(), 1);
    assert_eq!(msg[0].message, "Creating cache directories...");
    assert_eq!(msg[0].source.line, 33);
    let dbg = of_type(&evs, EventType::Debug);
    assert_eq!(dbg[0].message, "PIP_CACHE_DIR=/cache/pip");
    assert!(evs.iter().all(|e| !e.details.contains_key("time_inferred")));

    // The configuration summary is structured.
    let sum = of_type(&evs, EventType::FeatureSummary);
    assert_eq!(sum.len(), 1);
    assert_eq!(sum[0].feature, "Python");
    assert_eq!(
        sum[0].metadata["tools"],
        serde_json::json!(["pip", "poetry", "pipx"])
    );
    assert_eq!(sum[0].metadata["env"]["GITHUB_TOKEN"], "ghp_****");
    assert_eq!(
        sum[0].metadata["paths"],
        serde_json::json!(["/cache/pip", "/cache/poetry"])
    );

    // The summary's first-errors list is kept with the feature_end, not re-emitted.
    let dev_end = evs
        .iter()
        .find(|e| e.event_type == EventType::FeatureEnd && e.feature == "Development Tools")
        .unwrap();
    assert_eq!(
        dev_end.details["first_errors"],
        serde_json::json!(["[19:30:44] ERROR: Failed to install optional tool: delta"])
    );
    assert!(of_type(&evs, EventType::Error).is_empty());
}

/// Output lines of each feature's commands, as its install log holds them (the console
/// shows them through `tee`): after `Executing:`, between the first two `-` rules.
fn install_log_output_lines(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let rule = [b'-'; 80];
    let (mut n, mut state) = (0u64, 0u8);
    for l in bytes.split(|&b| b == b'\n') {
        let trimmed: &[u8] = {
            let mut t = l;
            while let [0, rest @ ..] = t {
                t = rest;
            }
            t
        };
        match state {
            0 if l.starts_with(b"Executing: ") => state = 1,
            1 if trimmed == rule => state = 2,
            2 if trimmed == rule => state = 0,
            2 => n += 1,
            _ => {}
        }
    }
    n
}

#[test]
fn output_lines_equal_the_install_logs() {
    for (console, build, features) in [
        (
            "build-01-success.console.log",
            "build-01-success",
            &[
                ("Python", "python"),
                ("Node.js", "nodejs"),
                ("Rust", "rust"),
                ("Development Tools", "development-tools"),
            ][..],
        ),
        (
            "build-15-control-bytes.console.log",
            "build-15-control-bytes",
            &[("Terraform", "terraform")][..],
        ),
    ] {
        let evs = parse_file(console);
        for (feature, slug) in features {
            let ours = evs
                .iter()
                .filter(|e| {
                    e.event_type == EventType::Output
                        && e.feature == *feature
                        && e.command_num.is_some()
                })
                .count() as u64;
            let log = corpus(build).join(format!("{slug}-install.log"));
            assert_eq!(ours, install_log_output_lines(&log), "{console} {feature}");
        }
    }
}

#[test]
fn every_console_log_agrees_with_its_json_logger_and_master_summary() {
    let mask = regex::Regex::new(r"https://[^@\s]+@").unwrap();
    for build in BUILDS_WITH_JSON {
        let evs = parse_file(&format!("{build}.console.log"));
        let json = json_events(build);
        let mut ours = command_keys(&evs);
        let mut theirs = command_keys_json(&json);
        // The logger scrubs credentials in JSON messages but not in descriptions
        // (build 12); compare with the credentials masked on both sides.
        for k in ours.iter_mut().chain(theirs.iter_mut()) {
            k.1 = mask
                .replace_all(&k.1, "https://***CREDENTIALS***@")
                .into_owned();
        }
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "{build}: command events");
        assert_eq!(feature_end_keys(&evs), master_summary(build), "{build}");
        assert_feature_ends_equal_json(&evs, &json);
        let starts = of_type(&evs, EventType::FeatureStart).len();
        let json_starts = json
            .iter()
            .filter(|e| e["event_type"] == "feature_start")
            .count();
        assert_eq!(starts, json_starts, "{build}: feature_start events");
        // Features that started and never finished end `incomplete` and `failed`.
        let incomplete: Vec<&Event> = of_type(&evs, EventType::FeatureEnd)
            .into_iter()
            .filter(|e| e.incomplete)
            .collect();
        assert_eq!(
            incomplete.len(),
            starts - master_summary(build).len(),
            "{build}: aborted features"
        );
        assert!(incomplete.iter().all(|e| e.metadata["status"] == "failed"));
    }
}

#[test]
fn build_02_sentinel_becomes_the_build_failure_of_the_aborted_feature() {
    let evs = parse_file("build-02-failure.console.log");
    let fails = of_type(&evs, EventType::BuildFailure);
    assert_eq!(fails.len(), 1);
    let f = fails[0];
    assert_eq!(f.feature, "Java Development");
    assert_eq!(f.command_num, Some(2));
    assert_eq!(f.metadata["exit_code"], 22);
    assert_eq!(f.metadata["description"], "Installing jdtls");
    assert_eq!(f.level, Level::Fatal);
    assert_eq!(f.timestamp.to_rfc3339(), "2026-02-03T08:15:02.500Z");
    // The aborted command gets its exit code from the sentinel.
    let cmd = evs
        .iter()
        .find(|e| e.event_type == EventType::Command && e.message == "Installing jdtls")
        .unwrap();
    assert!(cmd.incomplete);
    assert_eq!(cmd.metadata["exit_code"], 22);
    assert_eq!(cmd.metadata["success"], false);
    // The tolerated failure before it is a normal failed command.
    let gopls = evs
        .iter()
        .find(|e| e.event_type == EventType::Command && e.message == "Installing gopls")
        .unwrap();
    assert!(!gopls.incomplete);
    assert_eq!(gopls.metadata["exit_code"], 1);
    assert_eq!(gopls.level, Level::Error);
}

#[test]
fn buildkit_log_is_the_same_run_with_its_steps() {
    let evs = parse_file("build-01-success.buildkit.log");
    let json = json_events("build-01-success");
    assert_eq!(command_keys(&evs), command_keys_json(&json));
    assert_eq!(feature_end_keys(&evs), master_summary("build-01-success"));
    assert_feature_ends_equal_json(&evs, &json);

    let step = |e: &Event| e.details.get("buildkit_step").and_then(Value::as_u64);
    let status = |e: &Event| {
        e.details
            .get("buildkit_status")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let done: Vec<(u64, u64)> = evs
        .iter()
        .filter(|e| status(e).as_deref() == Some("done"))
        .map(|e| (step(e).unwrap(), e.duration_ms.unwrap()))
        .collect();
    assert_eq!(
        done,
        [
            (1, 0),
            (2, 900),
            (3, 0),
            (5, 19_100),
            (6, 8_100),
            (7, 15_400),
            (8, 9_800),
            (9, 3_300)
        ]
    );
    let cached: Vec<u64> = evs
        .iter()
        .filter(|e| status(e).as_deref() == Some("cached"))
        .map(|e| step(e).unwrap())
        .collect();
    assert_eq!(cached, [4]);
    // Every event of a feature carries its step's name as `stage`.
    for (feature, title) in [
        (
            "Python",
            "[stage-1 2/5] RUN /tmp/build-scripts/features/python.sh",
        ),
        (
            "Rust",
            "[stage-1 4/5] RUN /tmp/build-scripts/features/rust.sh",
        ),
    ] {
        let of_feature: Vec<&Event> = evs.iter().filter(|e| e.feature == feature).collect();
        assert!(of_feature.len() > 10);
        assert!(of_feature.iter().all(|e| e.stage.as_deref() == Some(title)));
    }
    // Python starts at its `Start Time:` (no runner clock here), refined by the step's offsets.
    let py = of_type(&evs, EventType::FeatureStart)[0];
    assert_eq!(py.timestamp.to_rfc3339(), "2025-11-16T19:30:40.886Z");
    // Steps before any date in the input are at the epoch date and say so.
    let first = &evs[0];
    assert_eq!(first.timestamp.to_rfc3339(), "1970-01-01T00:00:00.000Z");
    assert_eq!(first.details["time_inferred"], true);
    assert!(!py.details.contains_key("time_inferred"));
}

#[test]
fn github_actions_log_uses_the_runner_clock_and_reports_the_abort_once() {
    let evs = parse_file("build-16-github-actions.github-actions.log");
    let starts: Vec<(&str, Option<&str>, String)> = of_type(&evs, EventType::FeatureStart)
        .iter()
        .map(|e| {
            (
                e.feature.as_str(),
                e.version.as_deref(),
                e.timestamp.to_rfc3339(),
            )
        })
        .collect();
    // The runner's timestamps, not the logger's `Start Time:` (09:14:08 for Rust).
    assert_eq!(
        starts,
        [
            (
                "Python",
                Some("3.13.9"),
                "2026-10-27T09:14:05.219Z".to_string()
            ),
            (
                "Rust",
                Some("1.91.0"),
                "2026-10-27T09:14:30.186Z".to_string()
            ),
            (
                "Rust Development Tools",
                None,
                "2026-10-27T09:14:34.724Z".to_string()
            ),
        ]
    );
    let fails = of_type(&evs, EventType::BuildFailure);
    assert_eq!(fails.len(), 1, "{fails:?}");
    let f = fails[0];
    assert_eq!(f.feature, "Rust Development Tools");
    assert_eq!(f.command_num, Some(2));
    assert_eq!(f.metadata["command_num"], 2);
    assert_eq!(f.metadata["exit_code"], 101);
    assert_eq!(
        f.metadata["command"],
        "cargo install cargo-nextest --locked"
    );
    assert_eq!(f.timestamp.to_rfc3339(), "2026-10-27T09:14:36.525Z");
    assert_eq!(f.source.line, 1570);
    assert_eq!(
        f.stage
            .as_deref()
            .map(|s| s.starts_with("[stage-1 11/31] RUN")),
        Some(true)
    );
    // Its other reports are errors that point at it.
    let pointing: Vec<u64> = of_type(&evs, EventType::Message)
        .iter()
        .filter(|e| e.details.get("build_failure_line") == Some(&Value::from(1570)))
        .map(|e| e.source.line)
        .collect();
    assert_eq!(pointing, [1572, 1593, 1599]);
    let step_err = evs
        .iter()
        .find(|e| e.details.get("buildkit_status") == Some(&Value::from("error")))
        .unwrap();
    assert_eq!(step_err.details["buildkit_step"], 11);
    assert_eq!(step_err.details["exit_code"], 101);
    // CI and BuildKit errors are messages at ERROR level: `error` events are the logger's.
    assert!(of_type(&evs, EventType::Message)
        .iter()
        .any(|e| e.message == "Process completed with exit code 1." && e.level == Level::Error));
    assert!(of_type(&evs, EventType::Error).is_empty());

    let json = json_events("build-16-github-actions");
    assert_eq!(command_keys(&evs), command_keys_json(&json));
    assert_eq!(
        feature_end_keys(&evs),
        master_summary("build-16-github-actions")
    );
    let aborted: Vec<&Event> = of_type(&evs, EventType::FeatureEnd)
        .into_iter()
        .filter(|e| e.incomplete)
        .collect();
    assert_eq!(aborted.len(), 1);
    assert_eq!(aborted[0].feature, "Rust Development Tools");
    assert_eq!(aborted[0].metadata["commands_executed"], 2);
    // BuildKit's repeat of the failed step's last lines stays output, marked as such.
    let repeats = evs
        .iter()
        .filter(|e| e.details.contains_key("buildkit_error_context"))
        .count();
    assert_eq!(repeats, 11);
    // Every line has a runner timestamp, so times never go back and none is guessed.
    assert!(evs.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    assert!(evs.iter().all(|e| !e.details.contains_key("time_inferred")));
    let first = evs.iter().find(|e| e.source.line == 1).unwrap();
    assert_eq!(first.timestamp.to_rfc3339(), "2026-10-27T09:13:34.782Z");
    assert_eq!(first.details["ci_marker"], "group");
}

#[test]
fn plain_github_console_reports_the_abort() {
    let evs = parse_file("build-16-github-actions.console.log");
    let fails = of_type(&evs, EventType::BuildFailure);
    assert_eq!(fails.len(), 1);
    assert_eq!(fails[0].feature, "Rust Development Tools");
    assert_eq!(fails[0].metadata["exit_code"], 101);
    let groups: Vec<&str> = evs
        .iter()
        .filter(|e| e.details.get("ci_marker") == Some(&Value::from("group")))
        .map(|e| e.details["ci_group"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        [
            "Install Python (3.13.9)",
            "Install Rust (1.91.0)",
            "Install Rust Development Tools"
        ]
    );
}

#[test]
fn chicago_fall_back_keeps_utc_increasing() {
    let bytes = std::fs::read(corpus("build-14-chicago-dst.console.log")).unwrap();
    let tz = TimeZone::get("America/Chicago").unwrap();
    let evs = parse_cut(&bytes, &[], 256 * 1024, tz);
    let rust_end = evs
        .iter()
        .find(|e| e.event_type == EventType::FeatureEnd && e.feature == "Rust")
        .unwrap();
    // `End Time: 2026-11-01 01:00:52` is after the fall-back: CST, 07:00:52Z (mid-second).
    assert_eq!(rust_end.timestamp.to_rfc3339(), "2026-11-01T07:00:52.500Z");
    let json = json_events("build-14-chicago-dst");
    let j = json
        .iter()
        .find(|e| e["event_type"] == "feature_end" && e["feature"] == "Rust")
        .unwrap();
    assert!((rust_end.timestamp.millis() - ms(&j["timestamp"])).abs() < 1000);
}

#[test]
fn converting_twice_is_identical_and_chunking_does_not_matter() {
    let bytes = std::fs::read(corpus("build-16-github-actions.github-actions.log")).unwrap();
    let whole = parse_bytes(&bytes);
    assert_eq!(whole, parse_bytes(&bytes));
    for step in [1usize, 7, 4096] {
        let cuts: Vec<usize> = (step..bytes.len()).step_by(step).collect();
        assert_eq!(
            parse_cut(&bytes, &cuts, 256 * 1024, TimeZone::UTC),
            whole,
            "{step}"
        );
    }
}

#[test]
fn crlf_input_gives_the_same_events() {
    let bytes = std::fs::read(corpus("build-01-success.buildkit.log")).unwrap();
    let crlf: Vec<u8> = bytes
        .split(|&b| b == b'\n')
        .collect::<Vec<_>>()
        .join(&b"\r\n"[..]);
    assert_eq!(parse_bytes(&crlf), parse_bytes(&bytes));
}

/// build-01's console with `extra` inserted after the line that starts with `after`.
fn with_line_after(after: &str, extra: &[u8]) -> Vec<u8> {
    let bytes = std::fs::read(corpus("build-01-success.console.log")).unwrap();
    let at = bytes
        .windows(after.len())
        .position(|w| w == after.as_bytes())
        .unwrap();
    let eol = at + bytes[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut v = bytes[..eol].to_vec();
    v.extend_from_slice(extra);
    v.push(b'\n');
    v.extend_from_slice(&bytes[eol..]);
    v
}

#[test]
fn invalid_utf8_is_replaced_and_flagged() {
    let bytes = with_line_after("Get:1 http", b"caf\xe9 \xff error in mirror");
    let evs = parse_bytes(&bytes);
    let bad: Vec<&Event> = evs.iter().filter(|e| e.invalid_utf8).collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].event_type, EventType::Output);
    assert_eq!(bad[0].message, "caf\u{fffd} \u{fffd} error in mirror");
    assert_eq!(bad[0].level, Level::Error);
    assert_eq!(bad[0].command_num, Some(1));
    // The rest of the run is untouched.
    let json = json_events("build-01-success");
    assert_eq!(command_keys(&evs), command_keys_json(&json));
}

#[test]
fn a_line_of_a_megabyte_is_cut_and_flagged() {
    let long = vec![b'x'; 1 << 20];
    let bytes = with_line_after("Get:1 http", &long);
    let evs = parse_cut(&bytes, &[], 256 * 1024, TimeZone::UTC);
    let cut: Vec<&Event> = evs.iter().filter(|e| e.truncated).collect();
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].original_length, Some(1 << 20));
    assert_eq!(cut[0].message.len(), 256 * 1024);
    assert_eq!(cut[0].feature, "Python");
    assert_eq!(
        command_keys(&evs),
        command_keys_json(&json_events("build-01-success"))
    );
}

#[test]
fn input_cut_mid_command_still_yields_its_events() {
    let bytes = std::fs::read(corpus("build-02-failure.console.log")).unwrap();
    let at = bytes
        .windows(b"\ncurl: (22)".len())
        .position(|w| w == b"\ncurl: (22)")
        .unwrap();
    // Cut in the middle of the jdtls command's output, mid-line, before the sentinel.
    let evs = parse_bytes(&bytes[..at + 7]);
    let last_cmd = of_type(&evs, EventType::Command).pop().unwrap().clone();
    assert_eq!(last_cmd.message, "Installing jdtls");
    assert!(last_cmd.incomplete);
    assert_eq!(last_cmd.metadata["exit_code"], Value::Null);
    let end = of_type(&evs, EventType::FeatureEnd).pop().unwrap().clone();
    assert_eq!(end.feature, "Java Development");
    assert!(end.incomplete);
    assert_eq!(end.metadata["commands_executed"], 2);
    assert!(of_type(&evs, EventType::BuildFailure).is_empty());
    // The partial last line is output, not lost.
    let last_out = evs
        .iter()
        .rfind(|e| e.event_type == EventType::Output)
        .unwrap();
    assert_eq!(last_out.message, "curl: ");
}

/// Lines that exercise every branch: prefixes, the logger's shapes, BuildKit and runner lines.
const FRAGMENTS: &[&str] = &[
    "2026-10-27T09:14:05.1850000Z ",
    "#9 0.145 ",
    "#9 ",
    "#11 ERROR: process \"x\" did not complete successfully: exit code: 101",
    "#9 DONE 24.8s",
    "#9 CACHED",
    "#9 ...",
    "#10 [stage-1 10/31] RUN x",
    "------",
    "1.773 ✓ x completed successfully",
    "================================================================================",
    "--------------------------------------------------------------------------------",
    "\0--------------------------------------------------------------------------------",
    "Feature Installation Log: Rust",
    "Version: 1.0",
    "Start Time: 2026-11-01 01:59:58",
    "End Time: 2026-11-01 01:00:52",
    "=== Installing Rust version 1.0 ===",
    "=== Installing Rust ===",
    "[01:59:59] COMMAND #1: build",
    "[23:00:00] COMMAND #",
    "Executing: cargo build",
    "Exit code: 3 (Duration: 2s)",
    "✓ build completed successfully",
    "✗ build failed with exit code 3",
    "[00:00:01] WARNING: careful",
    "[00:00:01] ERROR: broken",
    "[00:00:01] DEBUG: x=1",
    "Installation Summary: Rust",
    "Rust Configuration Summary",
    "--- First 10 Errors/Warnings ---",
    "Errors Found: 2",
    "=== Rust installation complete ===",
    "Errors: 1, Warnings: 2",
    "Full log: /x",
    "  - PATH=/bin",
    ">>> BUILD FAILURE: feature='Rust' command=#1 desc='build' cmd='cargo build' exit=3",
    ">>> BUILD FAILURE: garbage",
    "::group::Install Rust (1.0)",
    "::endgroup::",
    "::error title=Build failed in Rust::COMMAND #1 'build' failed (exit 3): cargo build",
    "::error::",
    "##[error]",
    "##[group]Run x",
    "ERROR: failed to solve: exit code: 1",
    "\x1b[31merror\x1b[0m",
];

fn line_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        (
            prop::sample::select(FRAGMENTS),
            prop::sample::select(FRAGMENTS)
        )
            .prop_map(|(a, b)| [a.as_bytes(), b.as_bytes()].concat()),
        prop::sample::select(FRAGMENTS).prop_map(|a| a.as_bytes().to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_input_never_panics_and_chunks_do_not_matter(
        lines in prop::collection::vec(line_strategy(), 0..60),
        crlf in any::<bool>(),
        cuts in prop::collection::vec(0usize..4000, 0..12),
        max in prop::sample::select(vec![8usize, 64, 4096]),
    ) {
        let sep: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let bytes = lines.join(sep);
        let whole = parse_cut(&bytes, &[], max, TimeZone::UTC);
        let mut cuts = cuts;
        cuts.sort();
        let chunked = parse_cut(&bytes, &cuts, max, TimeZone::UTC);
        prop_assert_eq!(&whole, &chunked);
        // Every event points at a line of the input.
        let n = bytes.split(|&b| b == b'\n').count() as u64;
        for e in &whole {
            prop_assert!(e.source.line <= n);
            prop_assert!(e.to_json().len() > 2);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let tz = TimeZone::get("America/Chicago").unwrap();
        let _ = parse_cut(&bytes, &[bytes.len() / 2], 256, tz);
    }
}

/// Every feature_start, command and feature_end is within two seconds of the JSON logger's
/// (the console's stamps have whole seconds, and build 13's clock runs at ten times speed).
#[test]
fn times_agree_with_the_json_logger() {
    for build in BUILDS_WITH_JSON {
        let bytes = std::fs::read(corpus(&format!("{build}.console.log"))).unwrap();
        let tz = match build {
            "build-14-chicago-dst" => TimeZone::get("America/Chicago").unwrap(),
            _ => TimeZone::UTC,
        };
        let evs = parse_cut(&bytes, &[], 256 * 1024, tz);
        let mut used = vec![false; evs.len()];
        let mut compared = 0;
        for j in json_events(build) {
            let ty = j["event_type"].as_str().unwrap();
            if !["feature_start", "command", "feature_end"].contains(&ty) {
                continue;
            }
            let (i, ours) = evs
                .iter()
                .enumerate()
                .find(|(i, e)| {
                    !used[*i]
                        && e.event_type.as_str() == ty
                        && e.feature == j["feature"]
                        && (ty != "command"
                            || e.metadata["command_num"] == j["metadata"]["command_num"])
                })
                .unwrap_or_else(|| panic!("{build}: no event for {j}"));
            used[i] = true;
            let d = (ours.timestamp.millis() - ms(&j["timestamp"])).abs();
            assert!(
                d < 2000,
                "{build}: {ty} {}: {} vs {}",
                ours.message,
                ours.timestamp,
                j["timestamp"]
            );
            compared += 1;
        }
        assert!(compared >= 6, "{build}: {compared}");
    }
}
