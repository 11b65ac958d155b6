//! The fidelity bar of issue #2: for every corpus build that has `json/`, converting the text
//! logs alone yields `feature_start`, `command`, `warning`, `error` and `feature_end` events
//! whose feature, message and metadata equal what the JSON logger wrote in the same run,
//! with timestamps within one second of the logger's.
//!
//! The logger's lines are read here with a repair of our own (stray `}`, raw control bytes,
//! double escaping), independent of the library's reader.

mod common;

use buildlog::{Event, EventType};
use common::{convert_dir, copy_dir_without, corpus, corpus_builds};
use serde_json::Value;
use std::path::Path;

/// The JSON logger's events of a build, repaired by hand.
fn logger_events(build: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let dir = build.join("json");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".jsonl") || name == "build-summary.jsonl" {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let mut text = String::from_utf8(line.to_vec()).unwrap();
            // The stray closing brace after the metadata object.
            assert!(text.ends_with("}}}"), "{name}: {text}");
            text.pop();
            // Raw control bytes inside strings.
            let text = escape_controls(&text);
            let mut v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"));
            // Messages were escaped twice.
            let m = v["message"].as_str().unwrap().to_string();
            let once: String =
                serde_json::from_str(&format!("\"{}\"", escape_controls(&m))).unwrap_or(m);
            v["message"] = once.into();
            out.push(v);
        }
    }
    out
}

/// Raw control characters are not allowed inside JSON strings: `\u00XX` them.
fn escape_controls(s: &str) -> String {
    s.chars()
        .map(|c| {
            if (c as u32) < 0x20 {
                format!("\\u{:04x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

const COMPARED: [EventType; 5] = [
    EventType::FeatureStart,
    EventType::Command,
    EventType::Warning,
    EventType::Error,
    EventType::FeatureEnd,
];

#[test]
fn text_logs_alone_reproduce_the_json_logger() {
    let mut checked_builds = 0;
    let mut checked_events = 0;
    for build in corpus_builds() {
        if !build.join("json").is_dir() {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let text_only = tmp.path().join("build");
        copy_dir_without(&build, &text_only, "json");
        // Build 14 ran in Chicago: its local times need the zone.
        let tz = if build.ends_with("build-14-chicago-dst") {
            "America/Chicago"
        } else {
            "UTC"
        };
        let ours: Vec<Event> = convert_dir(&text_only, &["--timezone", tz]);
        let theirs = logger_events(&build);
        assert!(!theirs.is_empty());

        for feature in theirs
            .iter()
            .map(|v| v["feature"].as_str().unwrap())
            .collect::<std::collections::BTreeSet<_>>()
        {
            let want: Vec<&Value> = theirs
                .iter()
                .filter(|v| v["feature"] == feature)
                .filter(|v| COMPARED.iter().any(|t| v["event_type"] == t.as_str()))
                .collect();
            // Incomplete events (an aborted command, a feature with no summary) have no twin
            // in the logger's output: they are what the text shows beyond it.
            let got: Vec<&Event> = ours
                .iter()
                .filter(|e| {
                    e.feature == feature && COMPARED.contains(&e.event_type) && !e.incomplete
                })
                .collect();
            let name = build.file_name().unwrap().to_string_lossy();
            assert_eq!(
                got.len(),
                want.len(),
                "{name}/{feature}: {:?} vs {:?}",
                got.iter()
                    .map(|e| e.event_type.as_str())
                    .collect::<Vec<_>>(),
                want.iter()
                    .map(|v| v["event_type"].as_str().unwrap())
                    .collect::<Vec<_>>()
            );
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.event_type.as_str(), w["event_type"], "{name}/{feature}");
                assert_eq!(
                    g.message,
                    w["message"].as_str().unwrap(),
                    "{name}/{feature}"
                );
                assert_eq!(
                    Value::Object(g.metadata.clone().into_map()),
                    w["metadata"],
                    "{name}/{feature}: {}",
                    g.message
                );
                let theirs_ms =
                    buildlog::Timestamp::parse_rfc3339(w["timestamp"].as_str().unwrap())
                        .unwrap()
                        .millis();
                let delta = theirs_ms - g.timestamp.millis();
                assert!(
                    delta.abs() < 1000,
                    "{name}/{feature} {} {}: ours {} theirs {}",
                    g.event_type,
                    g.message,
                    g.timestamp,
                    w["timestamp"]
                );
                checked_events += 1;
            }
        }
        checked_builds += 1;
    }
    // Builds 01, 02 and 08-16 have json/.
    assert_eq!(checked_builds, 11);
    assert!(checked_events > 250, "{checked_events}");
}

#[test]
fn with_json_present_its_ids_and_milliseconds_are_adopted_and_nothing_is_doubled() {
    let build = corpus().join("build-01-success");
    let ours = convert_dir(&build, &[]);
    let theirs = logger_events(&build);
    for e in ours.iter().filter(|e| COMPARED.contains(&e.event_type)) {
        assert_eq!(&*e.correlation_id, "build-1763290245-q7m2xa");
        let twins = theirs
            .iter()
            .filter(|v| {
                v["event_type"] == e.event_type.as_str()
                    && v["feature"] == e.feature.as_str()
                    && v["message"] == e.message.as_str()
            })
            .count();
        assert_eq!(twins, 1, "{} {}", e.event_type, e.message);
    }
    let commands = ours
        .iter()
        .filter(|e| e.event_type == EventType::Command)
        .count();
    assert_eq!(
        commands,
        theirs
            .iter()
            .filter(|v| v["event_type"] == "command")
            .count()
    );
    let cmd1 = ours
        .iter()
        .find(|e| e.event_type == EventType::Command)
        .unwrap();
    assert_eq!(cmd1.timestamp.to_rfc3339(), "2025-11-16T19:30:40.393Z");
}

#[test]
fn per_feature_counts_reproduce_the_loggers_summaries_everywhere() {
    // The recount (the logger's grep windows, multi-line Executing records, the NUL quirk)
    // must equal `Errors Found` / `Warnings Found` for every finished feature of every build.
    let mut features = 0;
    for build in corpus_builds() {
        let events = convert_dir(&build, &[]);
        for e in events
            .iter()
            .filter(|e| e.event_type == EventType::FeatureEnd && !e.incomplete)
        {
            assert!(
                !e.details.contains_key("recount"),
                "{}: {} recount {:?} vs summary {:?}",
                build.display(),
                e.feature,
                e.details.get("recount"),
                e.metadata
            );
            features += 1;
        }
    }
    assert!(features >= 40, "{features}");
}

#[test]
fn the_nul_quirk_of_build_15() {
    let events = convert_dir(&corpus().join("build-15-control-bytes"), &[]);
    let end = events
        .iter()
        .find(|e| e.event_type == EventType::FeatureEnd && e.feature == "Terraform")
        .unwrap();
    assert_eq!(end.metadata["errors"], 2);
    assert_eq!(end.metadata["warnings"], 5);
    // The command counted over the whole file once it held NUL bytes.
    let cmd4 = events
        .iter()
        .find(|e| {
            e.event_type == EventType::Command
                && e.feature == "Terraform"
                && e.command_num == Some(4)
        })
        .unwrap();
    assert_eq!(cmd4.details["new_errors"], 2);
    assert_eq!(cmd4.details["new_warnings"], 3);
    // The warning with ESC, TAB, 0x01 and 0x1f keeps every byte in the event.
    let w = events
        .iter()
        .find(|e| e.event_type == EventType::Warning && e.message.starts_with("tflint"))
        .unwrap();
    assert_eq!(
        w.message,
        "tflint reported \u{1b}[33m2 issues\u{1b}[0m\ttab\u{1}soh\u{1f}us"
    );
    assert_eq!(w.metadata["warning_count"], 5);
}
