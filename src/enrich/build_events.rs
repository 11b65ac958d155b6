//! Build events: the truth about one build, folded from all of its events.
//!
//! `BuildTracker` sees every event of one build, in the order they are emitted. Before the
//! first one it gives a `build_start` event (`before`), and once the build is over a
//! `build_end` event (`finish`) whose `metadata.status` is the build's real result:
//!
//! - `failed` when the logger's sentinel (`build_failure`) was seen, when a feature was
//!   aborted (its `feature_end` is `incomplete` or `details.aborted`, or it never ended), or
//!   when the master summary has no line for a feature that started (the logger writes one
//!   per finished feature);
//! - `success` otherwise. Commands that exited non-zero inside a build that went on do not
//!   fail it (`log_command ... || log_warning`): they are counted in `failed_commands`.
//!
//! Beside the status, `build_end` carries the duration, the feature and command counts and
//! the logger's own error and warning totals (its substring counts, for comparison), and the
//! diagnostic counts (`enrich::diagnostic`). The events are made without identity: the
//! enricher gives them their correlation, trace and event ids like any other event.

use crate::event::{Diagnostic, Event, EventType, Level, Timestamp};
use serde_json::{json, Map, Value};

#[derive(Debug, Default, Clone)]
struct FeatureSeen {
    name: String,
    started: bool,
    ended: bool,
    aborted: bool,
    in_master: bool,
    /// The logger's counts: the master summary's line, else the feature's summary block.
    errors_end: Option<(u64, u64)>,
    errors_master: Option<(u64, u64)>,
}

/// Folds the events of one build into its `build_start` and `build_end` events.
#[derive(Debug, Default, Clone)]
pub struct BuildTracker {
    started: bool,
    /// The build already carries its build events (replayed output): add none.
    passive: bool,
    first: Option<Timestamp>,
    min: Option<Timestamp>,
    max: Option<Timestamp>,
    features: Vec<FeatureSeen>,
    commands: u64,
    failed_commands: u64,
    sentinels: u64,
    /// `(feature, command_num, exit_code)` of the sentinel(s).
    sentinel_commands: Vec<(String, Option<i64>, Option<i64>)>,
    master_seen: bool,
    diagnostic_errors: u64,
    diagnostic_warnings: u64,
    events: u64,
    /// The first event's correlation and trace ids, for `stamp`.
    ids: Option<(crate::event::SharedStr, Option<std::sync::Arc<str>>)>,
}

impl BuildTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The `build_start` event to emit before `e`, when `e` is the build's first event.
    /// It also observes `e`; call it for every event, in order.
    pub fn before(&mut self, e: &Event) -> Option<Event> {
        let first = !self.started;
        self.started = true;
        self.observe(e);
        if !first || self.passive {
            return None;
        }
        let mut s = Event::new(EventType::BuildStart, Level::Info, "", "Build started");
        s.timestamp = e.timestamp;
        s.source.line = 0;
        Some(s)
    }

    /// Folds one event in (`before` calls it; call it directly when no `build_start` is wanted).
    pub fn observe(&mut self, e: &Event) {
        self.events += 1;
        if self.ids.is_none() && !e.correlation_id.is_empty() {
            self.ids = Some((e.correlation_id.clone(), e.trace_id.clone()));
        }
        if matches!(e.event_type, EventType::BuildStart | EventType::BuildEnd) {
            self.passive = true;
            return;
        }
        if e.timestamp.0 != 0 {
            self.first.get_or_insert(e.timestamp);
            self.min = Some(self.min.map_or(e.timestamp, |t| t.min(e.timestamp)));
            self.max = Some(self.max.map_or(e.timestamp, |t| t.max(e.timestamp)));
        }
        match e.event_type {
            EventType::FeatureStart => self.feature(&e.feature).started = true,
            EventType::FeatureEnd => {
                let aborted =
                    e.incomplete || e.details.get("aborted").and_then(Value::as_bool) == Some(true);
                let counts = (
                    meta_u64(&e.metadata, "errors")
                        .or(e.error_count)
                        .unwrap_or(0),
                    meta_u64(&e.metadata, "warnings")
                        .or(e.warning_count)
                        .unwrap_or(0),
                );
                let f = self.feature(&e.feature);
                f.ended = true;
                f.aborted |= aborted;
                f.errors_end = Some(counts);
            }
            EventType::BuildSummary => {
                self.master_seen = true;
                let counts = (
                    meta_u64(&e.metadata, "errors")
                        .or(e.error_count)
                        .unwrap_or(0),
                    meta_u64(&e.metadata, "warnings")
                        .or(e.warning_count)
                        .unwrap_or(0),
                );
                let f = self.feature(&e.feature);
                f.in_master = true;
                f.errors_master = Some(counts);
            }
            EventType::BuildFailure => {
                self.sentinels += 1;
                self.sentinel_commands.push((
                    e.feature.clone(),
                    meta_i64(&e.metadata, "command_num").or(e.command_num.map(i64::from)),
                    meta_i64(&e.metadata, "exit_code"),
                ));
            }
            EventType::Command => {
                self.commands += 1;
                if command_failed(e) {
                    self.failed_commands += 1;
                }
            }
            EventType::Output => match e.diagnostic {
                Some(Diagnostic::Error) => self.diagnostic_errors += 1,
                Some(Diagnostic::Warning) => self.diagnostic_warnings += 1,
                None => {}
            },
            _ => {}
        }
    }

    fn feature(&mut self, name: &str) -> &mut FeatureSeen {
        match self.features.iter().position(|f| f.name == name) {
            Some(i) => &mut self.features[i],
            None => {
                self.features.push(FeatureSeen {
                    name: name.to_string(),
                    ..Default::default()
                });
                self.features.last_mut().expect("pushed")
            }
        }
    }

    /// Why the build failed, one sentence per reason; empty when it succeeded.
    pub fn failure_reasons(&self) -> Vec<String> {
        let mut why = Vec::new();
        for (feature, num, exit) in &self.sentinel_commands {
            let mut s = format!("build failure sentinel: feature '{feature}'");
            if let Some(n) = num {
                s.push_str(&format!(" command #{n}"));
            }
            if let Some(x) = exit {
                s.push_str(&format!(" exit {x}"));
            }
            why.push(s);
        }
        for f in self.features.iter().filter(|f| !f.name.is_empty()) {
            if f.aborted {
                why.push(format!("feature '{}' was aborted", f.name));
            } else if f.started && !f.ended && !f.in_master {
                why.push(format!("feature '{}' never finished", f.name));
            } else if self.master_seen && f.started && !f.in_master {
                why.push(format!(
                    "feature '{}' has no line in the master summary",
                    f.name
                ));
            }
        }
        why
    }

    /// `success` or `failed` as things stand.
    pub fn status(&self) -> &'static str {
        if self.failure_reasons().is_empty() {
            "success"
        } else {
            "failed"
        }
    }

    /// The `build_end` event, after the build's last event. `None` when no event was seen
    /// or the build already carried its own build events.
    pub fn finish(&self) -> Option<Event> {
        if self.passive || self.events == 0 {
            return None;
        }
        let why = self.failure_reasons();
        let failed = !why.is_empty();
        let status = if failed { "failed" } else { "success" };
        let duration_ms = match (self.min, self.max) {
            (Some(a), Some(b)) => (b.0 - a.0).max(0) as u64,
            _ => 0,
        };
        let features = self.features.iter().filter(|f| !f.name.is_empty()).count() as u64;
        let (mut errors, mut warnings) = (0u64, 0u64);
        for f in &self.features {
            if let Some((e, w)) = f.errors_master.or(f.errors_end) {
                errors += e;
                warnings += w;
            }
        }
        // The message names no time: the same build read with or without the JSON logger's
        // millisecond times says the same thing (the duration is in `metadata`).
        let message = format!(
            "Build {}: {features} features, {} commands ({} failed)",
            if failed { "failed" } else { "succeeded" },
            self.commands,
            self.failed_commands,
        );
        let mut e = Event::new(
            EventType::BuildEnd,
            if failed { Level::Error } else { Level::Info },
            "",
            message,
        );
        e.timestamp = self.max.unwrap_or_default();
        let mut m = Map::new();
        m.insert("status".into(), status.into());
        m.insert(
            "duration_seconds".into(),
            json!((duration_ms as f64 / 1000.0 * 1000.0).round() / 1000.0),
        );
        m.insert("features".into(), features.into());
        m.insert("commands".into(), self.commands.into());
        m.insert("failed_commands".into(), self.failed_commands.into());
        m.insert("errors".into(), errors.into());
        m.insert("warnings".into(), warnings.into());
        m.insert("diagnostic_errors".into(), self.diagnostic_errors.into());
        m.insert(
            "diagnostic_warnings".into(),
            self.diagnostic_warnings.into(),
        );
        e.metadata = m.into();
        e.duration_ms = Some(duration_ms);
        e.command_count = Some(self.commands);
        e.error_count = Some(errors);
        e.warning_count = Some(warnings);
        if failed {
            e.details.insert("failed_because".into(), json!(why));
        }
        e.details.insert(
            "start".into(),
            self.min.unwrap_or_default().to_rfc3339().into(),
        );
        Some(e)
    }
}

impl BuildTracker {
    /// Gives a build event the identity of the build it was folded from (the first observed
    /// event's correlation and trace ids, the build's root span, an id of its own), for
    /// callers that have no enricher at hand.
    pub fn stamp(&self, e: &mut Event) {
        if let Some((c, t)) = &self.ids {
            e.correlation_id.clone_from(c);
            e.trace_id.clone_from(t);
            e.span_id = Some(super::ids::build_span_id(c).into());
            e.event_id = super::ids::event_id(c, "", 0, 0, e.event_type.as_str(), "");
        }
    }
}

/// A `command` event that did not succeed: exit code other than 0, or `success: false`
/// (an aborted command has no exit code).
pub fn command_failed(e: &Event) -> bool {
    let exit = meta_i64(&e.metadata, "exit_code");
    let success = e.metadata.get("success").and_then(Value::as_bool);
    exit.map_or(success == Some(false) || e.incomplete, |c| c != 0)
}

/// How a failed command failed, for `details.outcome`: `failed (exit 1)` for one the build
/// went on after, `aborted the build` for the one that ended it. `None` when it succeeded.
pub fn command_outcome(exit_code: Option<i64>, aborted: bool) -> Option<String> {
    match (exit_code, aborted) {
        (_, true) => Some("aborted the build".to_string()),
        (Some(c), false) if c != 0 => Some(format!("failed (exit {c})")),
        _ => None,
    }
}

fn meta_u64(m: &Map<String, Value>, k: &str) -> Option<u64> {
    m.get(k).and_then(Value::as_u64)
}

fn meta_i64(m: &Map<String, Value>, k: &str) -> Option<i64> {
    m.get(k).and_then(Value::as_i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: EventType, feature: &str, ms: i64) -> Event {
        let mut e = Event::new(t, Level::Info, feature, "x");
        e.timestamp = Timestamp(ms);
        e
    }

    fn cmd(feature: &str, n: u32, exit: Option<i64>, ms: i64) -> Event {
        let mut e = ev(EventType::Command, feature, ms);
        e.command_num = Some(n);
        e.metadata.insert("exit_code".into(), json!(exit));
        e.metadata.insert("success".into(), json!(exit == Some(0)));
        e
    }

    fn run(events: &[Event]) -> (Option<Event>, Event) {
        let mut t = BuildTracker::new();
        let mut start = None;
        for e in events {
            if let Some(s) = t.before(e) {
                assert!(start.is_none(), "one build_start");
                start = Some(s);
            }
        }
        (start, t.finish().expect("a build_end"))
    }

    #[test]
    fn a_tolerated_failure_is_counted_not_failing() {
        let evs = [
            ev(EventType::FeatureStart, "Go", 1_000),
            cmd("Go", 1, Some(0), 2_000),
            cmd("Go", 2, Some(1), 3_000),
            ev(EventType::FeatureEnd, "Go", 4_500),
        ];
        let (start, end) = run(&evs);
        let start = start.unwrap();
        assert_eq!(start.event_type, EventType::BuildStart);
        assert_eq!(start.timestamp, Timestamp(1_000));
        assert_eq!(end.metadata["status"], "success");
        assert_eq!(end.metadata["commands"], 2);
        assert_eq!(end.metadata["failed_commands"], 1);
        assert_eq!(end.metadata["features"], 1);
        assert_eq!(end.metadata["duration_seconds"], 3.5);
        assert_eq!(end.timestamp, Timestamp(4_500));
        assert_eq!(end.level, Level::Info);
        assert!(!end.details.contains_key("failed_because"));
    }

    #[test]
    fn a_sentinel_fails_the_build() {
        let mut s = ev(EventType::BuildFailure, "Java", 5_000);
        s.metadata.insert("command_num".into(), 2.into());
        s.metadata.insert("exit_code".into(), 22.into());
        let evs = [ev(EventType::FeatureStart, "Java", 1_000), s];
        let (_, end) = run(&evs);
        assert_eq!(end.metadata["status"], "failed");
        assert_eq!(end.level, Level::Error);
        let why = end.details["failed_because"].as_array().unwrap();
        assert!(
            why.iter()
                .any(|w| w == "build failure sentinel: feature 'Java' command #2 exit 22"),
            "{why:?}"
        );
    }

    #[test]
    fn an_aborted_feature_fails_the_build() {
        let mut end_ev = ev(EventType::FeatureEnd, "Rust", 3_000);
        end_ev.incomplete = true;
        let (_, end) = run(&[ev(EventType::FeatureStart, "Rust", 1_000), end_ev]);
        assert_eq!(end.metadata["status"], "failed");
        let (_, end) = run(&[ev(EventType::FeatureStart, "Rust", 1_000)]);
        assert_eq!(end.metadata["status"], "failed", "never finished");
    }

    #[test]
    fn a_feature_missing_from_the_master_summary_fails_the_build() {
        let evs = [
            ev(EventType::FeatureStart, "A", 1_000),
            ev(EventType::FeatureEnd, "A", 2_000),
            ev(EventType::FeatureStart, "B", 3_000),
            ev(EventType::FeatureEnd, "B", 4_000),
            ev(EventType::BuildSummary, "A", 4_100),
        ];
        let (_, end) = run(&evs);
        assert_eq!(end.metadata["status"], "failed");
        assert_eq!(
            end.details["failed_because"][0],
            "feature 'B' has no line in the master summary"
        );
    }

    #[test]
    fn replayed_output_with_build_events_gets_none_added() {
        let mut t = BuildTracker::new();
        assert!(t.before(&ev(EventType::BuildStart, "", 1)).is_none());
        t.observe(&ev(EventType::FeatureStart, "A", 2));
        t.observe(&ev(EventType::BuildEnd, "", 3));
        assert!(t.finish().is_none());
        assert!(BuildTracker::new().finish().is_none());
    }

    #[test]
    fn outcomes() {
        assert_eq!(command_outcome(Some(1), false).unwrap(), "failed (exit 1)");
        assert_eq!(
            command_outcome(Some(22), true).unwrap(),
            "aborted the build"
        );
        assert_eq!(command_outcome(None, true).unwrap(), "aborted the build");
        assert_eq!(command_outcome(Some(0), false), None);
        assert_eq!(command_outcome(None, false), None);
    }
}
