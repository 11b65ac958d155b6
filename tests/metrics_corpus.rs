//! The metrics of every corpus build agree with the build's own records: the `feature_end`
//! events of the parse, and the lines of `master-summary.log` read the way the bash exporter
//! read them (its regex, its label sanitising, its status rule).

mod common;
mod metrics_support;

use buildlog::event::{Event, EventType};
use buildlog::metrics::{render, sanitize_label, ExpositionFormat, Family, MetricsState, Value};
use metrics_support::{corpus, events, master_lines};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn builds() -> Vec<PathBuf> {
    let v = metrics_support::corpus_builds();
    assert!(v.len() >= 13, "corpus incomplete: {v:?}");
    v
}

/// `name{labels}` -> value, from the families.
fn samples(families: &[Family]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for f in families {
        for s in &f.series {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let key = format!("{}{{{}}}", f.sample_name(), labels.join(","));
            let v = match &s.value {
                Value::Counter(n) => *n as f64,
                Value::Gauge(g) => *g,
                Value::Histogram { count, .. } => *count as f64,
            };
            out.insert(key, v);
        }
    }
    out
}

fn meta_f64(e: &Event, k: &str) -> f64 {
    e.metadata[k]
        .as_f64()
        .unwrap_or_else(|| panic!("{k} in {:?}", e.metadata))
}

#[test]
fn per_feature_figures_equal_feature_end_events_and_master_summary_lines() {
    for dir in builds() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let evs = events(&dir);
        let mut state = MetricsState::new();
        evs.iter().for_each(|e| state.observe(e));
        let got = samples(&state.families());

        let ends: Vec<&Event> = evs
            .iter()
            .filter(|e| e.event_type == EventType::FeatureEnd)
            .collect();
        assert!(!ends.is_empty(), "{name}: no feature_end events");
        let mut expected_series = 0;
        for e in &ends {
            let label = sanitize_label(&e.feature);
            let status = e.metadata["status"].as_str().unwrap();
            assert_eq!(
                got.get(&format!(
                    "container_build_duration_seconds{{feature={label},status={status}}}"
                )),
                Some(&meta_f64(e, "duration_seconds")),
                "{name}: duration of {label} ({status})"
            );
            assert_eq!(
                got.get(&format!("container_build_errors_total{{feature={label}}}")),
                Some(&meta_f64(e, "errors")),
                "{name}: errors of {label}"
            );
            assert_eq!(
                got.get(&format!(
                    "container_build_warnings_total{{feature={label}}}"
                )),
                Some(&meta_f64(e, "warnings")),
                "{name}: warnings of {label}"
            );
            expected_series += 1;
        }
        // Nothing but those features.
        let n = got
            .keys()
            .filter(|k| k.starts_with("container_build_duration_seconds{"))
            .count();
        assert_eq!(n, expected_series, "{name}: {got:#?}");

        // The bash exporter's view of master-summary.log: same values, same status rule.
        let lines = master_lines(&dir);
        assert!(!lines.is_empty(), "{name}: no master-summary lines");
        for l in &lines {
            let status = if l.errors == 0 { "success" } else { "failed" };
            assert_eq!(
                got.get(&format!(
                    "container_build_duration_seconds{{feature={},status={status}}}",
                    l.label
                )),
                Some(&l.duration),
                "{name}: {l:?}"
            );
            assert_eq!(
                got.get(&format!(
                    "container_build_errors_total{{feature={}}}",
                    l.label
                )),
                Some(&(l.errors as f64))
            );
            assert_eq!(
                got.get(&format!(
                    "container_build_warnings_total{{feature={}}}",
                    l.label
                )),
                Some(&(l.warnings as f64))
            );
        }
        assert_eq!(
            got["container_features_installed{}"],
            lines.len() as f64,
            "{name}"
        );
        // Totals are the sum of the per-feature series exposed (aborted features included).
        let sum = |prefix: &str| -> f64 {
            got.iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v)
                .sum()
        };
        assert_eq!(
            got["container_build_errors_total_all{}"],
            sum("container_build_errors_total{"),
            "{name}"
        );
        assert_eq!(
            got["container_build_warnings_total_all{}"],
            sum("container_build_warnings_total{"),
            "{name}"
        );
        let aborted = ends.iter().filter(|e| e.incomplete).count();
        if aborted == 0 {
            let master_errors: u64 = lines.iter().map(|l| l.errors).sum();
            assert_eq!(
                got["container_build_errors_total_all{}"], master_errors as f64,
                "{name}"
            );
        }

        // Derived figures agree with the events too.
        let count = |pred: &dyn Fn(&Event) -> bool| evs.iter().filter(|e| pred(e)).count() as f64;
        let is = |t: EventType| move |e: &Event| e.event_type == t;
        assert_eq!(
            sum("container_build_commands_total{"),
            count(&is(EventType::Command)),
            "{name}"
        );
        let failed = count(&|e| {
            e.event_type == EventType::Command
                && e.metadata
                    .get("exit_code")
                    .and_then(|c| c.as_i64())
                    .is_some_and(|c| c != 0)
        });
        assert_eq!(
            sum("container_build_command_failures_total{"),
            failed,
            "{name}"
        );
        assert_eq!(
            sum("container_build_failures_total{"),
            count(&is(EventType::BuildFailure)),
            "{name}"
        );
        let line_events = count(&|e| {
            matches!(
                e.event_type,
                EventType::Output
                    | EventType::Message
                    | EventType::Debug
                    | EventType::Warning
                    | EventType::Error
            )
        });
        assert_eq!(
            sum("container_build_log_lines_total{"),
            line_events,
            "{name}"
        );
        let start = evs
            .iter()
            .filter(|e| e.event_type == EventType::FeatureStart)
            .map(|e| e.timestamp.0)
            .min()
            .unwrap();
        assert_eq!(
            got["container_build_last_start_timestamp_seconds{}"],
            start as f64 / 1000.0,
            "{name}"
        );
    }
}

/// The exposition carries every sample line the bash exporter printed for the same logs,
/// byte for byte (names, label order, sanitising, integer values).
#[test]
fn text_exposition_contains_the_bash_exporters_sample_lines() {
    for dir in builds() {
        let mut state = MetricsState::new();
        events(&dir).iter().for_each(|e| state.observe(e));
        let text = render(&state.families(), ExpositionFormat::Text);
        let lines = master_lines(&dir);
        let (mut errs, mut warns) = (0, 0);
        for l in &lines {
            let status = if l.errors == 0 { "success" } else { "failed" };
            for want in [
                format!(
                    "container_build_duration_seconds{{feature=\"{}\",status=\"{status}\"}} {}\n",
                    l.label, l.duration
                ),
                format!(
                    "container_build_errors_total{{feature=\"{}\"}} {}\n",
                    l.label, l.errors
                ),
                format!(
                    "container_build_warnings_total{{feature=\"{}\"}} {}\n",
                    l.label, l.warnings
                ),
            ] {
                assert!(
                    text.contains(&want),
                    "{}: missing {want:?} in\n{text}",
                    dir.display()
                );
            }
            errs += l.errors;
            warns += l.warnings;
        }
        assert!(text.contains(&format!("\ncontainer_features_installed {}\n", lines.len())));
        for (name, help) in [
            (
                "container_build_duration_seconds",
                "Time taken to build container feature",
            ),
            (
                "container_build_errors_total",
                "Total errors during container build",
            ),
            (
                "container_build_warnings_total",
                "Total warnings during container build",
            ),
            (
                "container_features_installed",
                "Total number of features installed",
            ),
            (
                "container_build_errors_total_all",
                "Total errors across all features",
            ),
            (
                "container_build_warnings_total_all",
                "Total warnings across all features",
            ),
        ] {
            assert!(text.contains(&format!("# HELP {name} {help}\n")), "{name}");
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}"
            );
        }
        assert!(text.contains("# TYPE container_build_errors_total counter\n"));
        assert!(text.contains("# TYPE container_build_duration_seconds gauge\n"));
        // Totals equal the bash exporter's where no aborted feature adds its own counts.
        let aborted = events(&dir)
            .iter()
            .any(|e| e.event_type == EventType::FeatureEnd && e.incomplete);
        if !aborted {
            assert!(text.contains(&format!("\ncontainer_build_errors_total_all {errs}\n")));
            assert!(text.contains(&format!("\ncontainer_build_warnings_total_all {warns}\n")));
        }
    }
}

/// A directory holding several builds exposes the latest one (by start time), whatever the
/// order they are read in, while the derived counters add up over both.
#[test]
fn several_builds_expose_the_latest() {
    let a = corpus().join("build-01-success"); // 2025-11-16
    let b = corpus().join("build-14-chicago-dst"); // 2026-11-01
    for order in [[&a, &b], [&b, &a]] {
        let mut state = MetricsState::new();
        for d in order {
            events(d).iter().for_each(|e| state.observe(e));
        }
        assert_eq!(state.builds().len(), 2);
        let got = samples(&state.families());
        assert_eq!(got["container_features_installed{}"], 2.0);
        assert_eq!(
            got.get("container_build_errors_total{feature=golang}"),
            Some(&2.0)
        );
        assert_eq!(
            got.get("container_build_errors_total{feature=python}"),
            None
        );
        assert_eq!(got["container_build_commands_total{feature=python}"], 4.0);
        assert_eq!(got["container_build_commands_total{feature=golang}"], 5.0);
    }
}

/// The real-failure metrics: the build's status from `build_end`, diagnostics per feature
/// equal to the output events that carry `diagnostic`.
#[test]
fn build_status_and_diagnostics_per_feature_follow_the_events() {
    for dir in builds() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let evs = events(&dir);
        let mut state = MetricsState::new();
        evs.iter().for_each(|e| state.observe(e));
        let got = samples(&state.families());
        let end = evs
            .iter()
            .find(|e| e.event_type == EventType::BuildEnd)
            .unwrap_or_else(|| panic!("{name}: no build_end"));
        let ok = end.metadata["status"] == "success";
        assert_eq!(got["container_build_success{}"], ok as u8 as f64, "{name}");
        let status = if ok { "success" } else { "failed" };
        assert_eq!(
            got[&format!("container_build_builds_total{{status={status}}}")],
            1.0,
            "{name}"
        );
        let mut want: BTreeMap<String, f64> = BTreeMap::new();
        for e in evs.iter().filter(|e| e.diagnostic.is_some()) {
            let sev = e.diagnostic.unwrap().as_str();
            *want
                .entry(format!(
                    "container_build_diagnostics_total{{feature={},diagnostic={sev}}}",
                    sanitize_label(&e.feature)
                ))
                .or_default() += 1.0;
        }
        let have: BTreeMap<String, f64> = got
            .iter()
            .filter(|(k, _)| k.starts_with("container_build_diagnostics_total{"))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        assert_eq!(have, want, "{name}");
    }
    // Build 13 succeeded; its only diagnostic errors are its two tolerated failures'.
    let evs = events(&corpus().join("build-13-large"));
    let mut state = MetricsState::new();
    evs.iter().for_each(|e| state.observe(e));
    let got = samples(&state.families());
    let errors: BTreeMap<&String, &f64> = got
        .iter()
        .filter(|(k, _)| {
            k.starts_with("container_build_diagnostics_total{") && k.ends_with("diagnostic=error}")
        })
        .collect();
    assert_eq!(
        errors.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
        [
            "container_build_diagnostics_total{feature=golang_development_tools,diagnostic=error}",
            "container_build_diagnostics_total{feature=nodejs_development_tools,diagnostic=error}"
        ]
    );
    assert_eq!(got["container_build_success{}"], 1.0);
}
