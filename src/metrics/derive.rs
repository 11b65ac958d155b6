//! The fold: events in, one at a time, per-build and per-feature figures out.
//!
//! `MetricsState::observe` takes each event as it comes (the live server, `metrics`, the
//! backfill all feed it the same way); `families` turns the state into metric families.
//!
//! The exporter's metrics (`container_build_duration_seconds`, `container_build_errors_total`,
//! ...) describe one build: the latest one read (greatest start time). Per feature they come
//! from the `build_summary` event (a `master-summary.log` line, the bash exporter's source)
//! and, before that line exists or for an aborted feature that never gets one, from the
//! `feature_end` event. The derived counters (commands, failures, log lines, build failures)
//! add up over everything read.

use super::{sanitize_label, Family, Kind, Value};
use crate::event::{Diagnostic, Event, EventType, Level, Timestamp};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};

/// Upper bounds (seconds) of the command duration histogram. Commands take from under a
/// second (`apt-get update` on a warm cache) to an hour (a CPython build on a slow machine).
pub const COMMAND_DURATION_BUCKETS: [f64; 11] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

const LEVELS: [Level; 5] = [
    Level::Debug,
    Level::Info,
    Level::Warn,
    Level::Error,
    Level::Fatal,
];

/// Duration, errors, warnings and status of one feature, as one source reported them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub duration_seconds: f64,
    pub errors: u64,
    pub warnings: u64,
    pub failed: bool,
}

impl Figures {
    /// Reads the figures of a `feature_end` or `build_summary` event: its metadata first
    /// (the JSON logger's keys), then the event's own count fields.
    fn from_event(e: &Event) -> Figures {
        let m = &e.metadata;
        let errors = meta_u64(m, "errors").or(e.error_count).unwrap_or(0);
        let warnings = meta_u64(m, "warnings").or(e.warning_count).unwrap_or(0);
        let duration_seconds = meta_f64(m, "duration_seconds")
            .or(e.duration_ms.map(|ms| ms as f64 / 1000.0))
            .unwrap_or(0.0);
        // The logger's status is `failed` whenever errors were counted; an aborted feature
        // is `failed` with whatever it counted. Without a status, the bash exporter's rule.
        let failed = match m.get("status").and_then(Json::as_str) {
            Some(s) => !s.eq_ignore_ascii_case("success"),
            None => errors > 0,
        };
        Figures {
            duration_seconds,
            errors,
            warnings,
            failed,
        }
    }

    pub fn status(&self) -> &'static str {
        if self.failed {
            "failed"
        } else {
            "success"
        }
    }
}

/// What one build says about one feature.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureState {
    /// The name as logged (`Node.js`); the label is its sanitised form.
    pub name: String,
    pub from_end: Option<Figures>,
    pub from_summary: Option<Figures>,
    /// The feature's `feature_end` was flagged `incomplete` (it aborted).
    pub incomplete: bool,
}

impl FeatureState {
    /// The figures to expose: the master summary's when there is a line for the feature.
    pub fn figures(&self) -> Option<Figures> {
        self.from_summary.or(self.from_end)
    }
    /// Finished: it has a master summary line, or a complete summary block.
    pub fn installed(&self) -> bool {
        self.from_summary.is_some() || (self.from_end.is_some() && !self.incomplete)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildState {
    pub correlation_id: String,
    /// Earliest `feature_start`, else earliest event.
    first_feature_start: Option<Timestamp>,
    first_event: Option<Timestamp>,
    /// By label, in order of first appearance.
    pub features: BTreeMap<String, FeatureState>,
    order: Vec<String>,
    /// `build_end.metadata.status`, once the build has ended.
    pub status: Option<String>,
}

impl BuildState {
    pub fn start(&self) -> Option<Timestamp> {
        self.first_feature_start.or(self.first_event)
    }
    /// Features in the order they first appeared.
    pub fn features_in_order(&self) -> impl Iterator<Item = (&String, &FeatureState)> {
        self.order
            .iter()
            .filter_map(|l| self.features.get_key_value(l))
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
struct LastSeen {
    correlation_id: Option<String>,
    build: usize,
    feature: Option<String>,
    label: String,
    /// The label's entry in `log_lines`, once it has one.
    lines: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct CommandStats {
    executed: u64,
    failed: u64,
    /// Non-cumulative counts per bucket of `COMMAND_DURATION_BUCKETS`, then `+Inf`.
    buckets: [u64; COMMAND_DURATION_BUCKETS.len() + 1],
    /// Commands with a duration (the histogram's count).
    timed: u64,
    sum: f64,
}

/// The whole fold. Cheap to clone (a few maps keyed by bounded label values).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsState {
    builds: Vec<BuildState>,
    build_index: HashMap<String, usize>,
    commands: BTreeMap<String, CommandStats>,
    /// Per feature label, counts by level (`LEVELS` order).
    /// `(label, counts)`, in order of first appearance; sorted by label when exposed.
    log_lines: Vec<(String, [u64; 5])>,
    /// What the previous event resolved to: consecutive events share their build and feature,
    /// so most events skip the hashing and sanitising (folding runs once per output line).
    last: LastSeen,
    build_failures: BTreeMap<String, u64>,
    /// Per feature label: (error, warning) diagnostic output lines.
    diagnostics: BTreeMap<String, [u64; 2]>,
    /// Ended builds by `build_end` status.
    ended: BTreeMap<String, u64>,
    events: u64,
}

impl MetricsState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Events folded so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Folds one event in.
    pub fn observe(&mut self, e: &Event) {
        self.events += 1;
        if self.last.correlation_id.as_deref() != Some(&*e.correlation_id) {
            self.last.build = self.build_index_of(&e.correlation_id);
            self.last.correlation_id = Some(e.correlation_id.to_string());
        }
        if self.last.feature.as_deref() != Some(e.feature.as_str()) {
            self.last.label = sanitize_label(&e.feature);
            self.last.feature = Some(e.feature.clone());
            let label = &self.last.label;
            self.last.lines = self.log_lines.iter().position(|(l, _)| l == label);
        }
        let (bi, label) = (self.last.build, self.last.label.as_str());
        let build = &mut self.builds[bi];
        if e.timestamp.0 != 0 {
            build.first_event = Some(
                build
                    .first_event
                    .map_or(e.timestamp, |t| t.min(e.timestamp)),
            );
        }
        match e.event_type {
            EventType::FeatureStart => {
                if e.timestamp.0 != 0 {
                    build.first_feature_start = Some(
                        build
                            .first_feature_start
                            .map_or(e.timestamp, |t| t.min(e.timestamp)),
                    );
                }
                build.feature(label, &e.feature);
            }
            EventType::FeatureEnd => {
                let f = build.feature(label, &e.feature);
                f.from_end = Some(Figures::from_event(e));
                f.incomplete = e.incomplete;
            }
            EventType::BuildSummary => {
                build.feature(label, &e.feature).from_summary = Some(Figures::from_event(e));
            }
            EventType::BuildFailure => {
                build.feature(label, &e.feature);
                *self.build_failures.entry(label.to_string()).or_default() += 1;
            }
            EventType::Command => {
                let stats = self.commands.entry(label.to_string()).or_default();
                stats.executed += 1;
                let exit = meta_i64(&e.metadata, "exit_code");
                let success = e.metadata.get("success").and_then(Json::as_bool);
                if exit.map_or(success == Some(false), |c| c != 0) {
                    stats.failed += 1;
                }
                let duration = meta_f64(&e.metadata, "duration_seconds")
                    .or(e.duration_ms.map(|ms| ms as f64 / 1000.0));
                if let Some(d) = duration.filter(|d| d.is_finite() && *d >= 0.0) {
                    let i = COMMAND_DURATION_BUCKETS
                        .iter()
                        .position(|b| d <= *b)
                        .unwrap_or(COMMAND_DURATION_BUCKETS.len());
                    stats.buckets[i] += 1;
                    stats.timed += 1;
                    stats.sum += d;
                }
            }
            EventType::Output
            | EventType::Message
            | EventType::Debug
            | EventType::Warning
            | EventType::Error => {
                let i = LEVELS.iter().position(|l| *l == e.level).unwrap_or(1);
                let slot = match self.last.lines {
                    Some(slot) => slot,
                    None => {
                        self.log_lines.push((label.to_string(), [0; 5]));
                        self.last.lines = Some(self.log_lines.len() - 1);
                        self.log_lines.len() - 1
                    }
                };
                self.log_lines[slot].1[i] += 1;
                if let Some(d) = e.diagnostic {
                    let c = self.diagnostics.entry(label.to_string()).or_default();
                    c[(d == Diagnostic::Warning) as usize] += 1;
                }
            }
            EventType::BuildEnd => {
                if let Some(st) = e.metadata.get("status").and_then(Json::as_str) {
                    build.status = Some(st.to_string());
                    *self.ended.entry(st.to_string()).or_default() += 1;
                }
            }
            EventType::CommandStart | EventType::FeatureSummary | EventType::BuildStart => {}
        }
    }

    fn build_index_of(&mut self, correlation_id: &str) -> usize {
        match self.build_index.get(correlation_id) {
            Some(&i) => i,
            None => {
                self.builds.push(BuildState {
                    correlation_id: correlation_id.to_string(),
                    ..Default::default()
                });
                self.build_index
                    .insert(correlation_id.to_string(), self.builds.len() - 1);
                self.builds.len() - 1
            }
        }
    }

    /// Every build read, in order of first appearance.
    pub fn builds(&self) -> &[BuildState] {
        &self.builds
    }

    /// The build the exporter's metrics describe: the greatest start time; of equals, the
    /// one read last.
    pub fn latest_build(&self) -> Option<&BuildState> {
        self.builds
            .iter()
            .enumerate()
            .max_by_key(|(i, b)| (b.start(), *i))
            .map(|(_, b)| b)
    }

    /// The metric families, in a fixed order; families without series are left out.
    pub fn families(&self) -> Vec<Family> {
        let mut out = Vec::new();
        let mut duration = Family::new(
            "container_build_duration_seconds",
            "Time taken to build container feature",
            Kind::Gauge,
        );
        let mut errors = Family::new(
            "container_build_errors",
            "Total errors during container build",
            Kind::Counter,
        );
        let mut warnings = Family::new(
            "container_build_warnings",
            "Total warnings during container build",
            Kind::Counter,
        );
        let mut installed = Family::new(
            "container_features_installed",
            "Total number of features installed",
            Kind::Gauge,
        );
        // Gauges, not counters: a counter's name must end in `_total`, and these never did.
        let mut errors_all = Family::new(
            "container_build_errors_total_all",
            "Total errors across all features",
            Kind::Gauge,
        );
        let mut warnings_all = Family::new(
            "container_build_warnings_total_all",
            "Total warnings across all features",
            Kind::Gauge,
        );
        let mut success = Family::new(
            "container_build_success",
            "1 when the latest build succeeded, 0 when it failed (its build_end status)",
            Kind::Gauge,
        );
        let mut start = Family::new(
            "container_build_last_start_timestamp_seconds",
            "Unix time the latest build started (its first feature's start)",
            Kind::Gauge,
        );
        if let Some(b) = self.latest_build() {
            let (mut n, mut errs, mut warns) = (0u64, 0u64, 0u64);
            for (label, f) in b.features_in_order() {
                let Some(fig) = f.figures() else { continue };
                duration.push(
                    vec![("feature", label.clone()), ("status", fig.status().into())],
                    Value::Gauge(fig.duration_seconds),
                );
                errors.push(vec![("feature", label.clone())], Value::Counter(fig.errors));
                warnings.push(
                    vec![("feature", label.clone())],
                    Value::Counter(fig.warnings),
                );
                errs += fig.errors;
                warns += fig.warnings;
                n += f.installed() as u64;
            }
            installed.push(vec![], Value::Gauge(n as f64));
            errors_all.push(vec![], Value::Gauge(errs as f64));
            warnings_all.push(vec![], Value::Gauge(warns as f64));
            if let Some(t) = b.start() {
                start.push(vec![], Value::Gauge(t.0 as f64 / 1000.0));
            }
            if let Some(st) = &b.status {
                success.push(vec![], Value::Gauge((st == "success") as u8 as f64));
            }
        }
        out.extend([
            duration,
            errors,
            warnings,
            installed,
            errors_all,
            warnings_all,
            start,
            success,
        ]);

        let mut hist = Family::new(
            "container_build_command_duration_seconds",
            "Duration of the commands run by each feature",
            Kind::Histogram,
        );
        let mut commands = Family::new(
            "container_build_commands",
            "Commands run by each feature",
            Kind::Counter,
        );
        let mut failures = Family::new(
            "container_build_command_failures",
            "Commands that exited with a non-zero code, by feature",
            Kind::Counter,
        );
        for (label, s) in &self.commands {
            let feature = vec![("feature", label.clone())];
            let mut buckets: Vec<(f64, u64)> = COMMAND_DURATION_BUCKETS
                .iter()
                .copied()
                .zip(s.buckets.iter().copied())
                .collect();
            buckets.push((f64::MAX, s.buckets[COMMAND_DURATION_BUCKETS.len()]));
            hist.push(
                feature.clone(),
                Value::Histogram {
                    sum: s.sum,
                    count: s.timed,
                    buckets,
                },
            );
            commands.push(feature.clone(), Value::Counter(s.executed));
            failures.push(feature, Value::Counter(s.failed));
        }
        let mut lines = Family::new(
            "container_build_log_lines",
            "Log lines (output, messages, debug, warnings, errors) by feature and level",
            Kind::Counter,
        );
        let mut by_label: Vec<&(String, [u64; 5])> = self.log_lines.iter().collect();
        by_label.sort_by(|a, b| a.0.cmp(&b.0));
        for (label, counts) in by_label {
            for (level, n) in LEVELS.iter().zip(counts).filter(|(_, n)| **n > 0) {
                lines.push(
                    vec![
                        ("feature", label.clone()),
                        ("level", level.as_lower().into()),
                    ],
                    Value::Counter(*n),
                );
            }
        }
        let mut build_failures = Family::new(
            "container_build_failures",
            "Build failures (the >>> BUILD FAILURE sentinel), by the feature that failed",
            Kind::Counter,
        );
        for (label, n) in &self.build_failures {
            build_failures.push(vec![("feature", label.clone())], Value::Counter(*n));
        }
        let mut diagnostics = Family::new(
            "container_build_diagnostics",
            "Output lines that are errors or warnings by their tool's own format, by feature",
            Kind::Counter,
        );
        for (label, [errs, warns]) in &self.diagnostics {
            for (severity, n) in [("error", errs), ("warning", warns)] {
                if *n > 0 {
                    diagnostics.push(
                        vec![("feature", label.clone()), ("diagnostic", severity.into())],
                        Value::Counter(*n),
                    );
                }
            }
        }
        let mut builds = Family::new(
            "container_build_builds",
            "Builds that ended, by their real status (build_end)",
            Kind::Counter,
        );
        for (status, n) in &self.ended {
            builds.push(vec![("status", status.clone())], Value::Counter(*n));
        }
        out.extend([
            hist,
            commands,
            failures,
            lines,
            build_failures,
            diagnostics,
            builds,
        ]);
        out.retain(|f| !f.series.is_empty());
        out
    }
}

impl BuildState {
    fn feature(&mut self, label: &str, name: &str) -> &mut FeatureState {
        if !self.features.contains_key(label) {
            self.order.push(label.to_string());
            self.features.insert(
                label.to_string(),
                FeatureState {
                    name: name.to_string(),
                    ..Default::default()
                },
            );
        }
        self.features.get_mut(label).expect("inserted above")
    }
}

fn meta_f64(m: &Map<String, Json>, key: &str) -> Option<f64> {
    match m.get(key)? {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().trim_end_matches('s').parse().ok(),
        _ => None,
    }
    .filter(|v: &f64| v.is_finite())
}

fn meta_u64(m: &Map<String, Json>, key: &str) -> Option<u64> {
    meta_f64(m, key).filter(|v| *v >= 0.0).map(|v| v as u64)
}

fn meta_i64(m: &Map<String, Json>, key: &str) -> Option<i64> {
    meta_f64(m, key).map(|v| v as i64)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn ev(t: EventType, feature: &str, ts: i64, meta: serde_json::Value) -> Event {
        let level = match t {
            EventType::Warning => Level::Warn,
            EventType::Error => Level::Error,
            _ => Level::Info,
        };
        let mut e = Event::new(t, level, feature, "m");
        e.timestamp = Timestamp(ts);
        e.correlation_id = "build-1763290245-q7m2xa".into();
        if let serde_json::Value::Object(m) = meta {
            e.metadata = m.into();
        }
        e
    }

    fn find<'a>(fams: &'a [Family], name: &str) -> &'a Family {
        fams.iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no family {name}"))
    }

    fn value(fams: &[Family], name: &str, labels: &[(&str, &str)]) -> Option<Value> {
        find(fams, name)
            .series
            .iter()
            .find(|s| {
                s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(k2, v2)| k2 == k && v2 == v))
            })
            .map(|s| s.value.clone())
    }

    #[test]
    fn summary_lines_win_over_feature_end_and_aborted_features_show_as_failed() {
        let mut s = MetricsState::new();
        let t0 = 1_763_321_440_000;
        s.observe(&ev(
            EventType::FeatureStart,
            "Python",
            t0,
            serde_json::json!({}),
        ));
        s.observe(&ev(
            EventType::Command,
            "Python",
            t0 + 100,
            serde_json::json!({"command_num":1,"exit_code":0,"duration_seconds":3,"success":true}),
        ));
        s.observe(&ev(
            EventType::Command,
            "Python",
            t0 + 200,
            serde_json::json!({"command_num":2,"exit_code":22,"duration_seconds":70,"success":false}),
        ));
        s.observe(&ev(
            EventType::Warning,
            "Python",
            t0 + 300,
            serde_json::json!({}),
        ));
        s.observe(&ev(
            EventType::FeatureEnd,
            "Python",
            t0 + 400,
            serde_json::json!({"duration_seconds":5,"commands_executed":2,"errors":2,"warnings":1,"status":"failed"}),
        ));
        // Only the feature_end so far: its figures are exposed.
        let f = s.families();
        assert_eq!(
            value(
                &f,
                "container_build_duration_seconds",
                &[("feature", "python"), ("status", "failed")]
            ),
            Some(Value::Gauge(5.0))
        );
        // The master summary line then rules (here it disagrees, to show which wins).
        s.observe(&ev(
            EventType::BuildSummary,
            "Python",
            t0 + 500,
            serde_json::json!({"errors":0,"warnings":1,"duration_seconds":6,"status":"success"}),
        ));
        // An aborted feature: incomplete feature_end plus the sentinel.
        s.observe(&ev(
            EventType::FeatureStart,
            "Java Development",
            t0 + 600,
            serde_json::json!({}),
        ));
        let mut end = ev(
            EventType::FeatureEnd,
            "Java Development",
            t0 + 700,
            serde_json::json!({"duration_seconds":1,"commands_executed":2,"errors":1,"warnings":0,"status":"failed"}),
        );
        end.incomplete = true;
        s.observe(&end);
        s.observe(&ev(
            EventType::BuildFailure,
            "Java Development",
            t0 + 700,
            serde_json::json!({"exit_code":22}),
        ));

        let f = s.families();
        assert_eq!(
            value(
                &f,
                "container_build_duration_seconds",
                &[("feature", "python"), ("status", "success")]
            ),
            Some(Value::Gauge(6.0))
        );
        assert_eq!(
            value(
                &f,
                "container_build_duration_seconds",
                &[("feature", "python"), ("status", "failed")]
            ),
            None
        );
        assert_eq!(
            value(&f, "container_build_errors", &[("feature", "python")]),
            Some(Value::Counter(0))
        );
        assert_eq!(
            value(
                &f,
                "container_build_duration_seconds",
                &[("feature", "java_development"), ("status", "failed")]
            ),
            Some(Value::Gauge(1.0))
        );
        assert_eq!(
            value(&f, "container_features_installed", &[]),
            Some(Value::Gauge(1.0))
        );
        assert_eq!(
            value(&f, "container_build_errors_total_all", &[]),
            Some(Value::Gauge(1.0))
        );
        assert_eq!(
            value(&f, "container_build_warnings_total_all", &[]),
            Some(Value::Gauge(1.0))
        );
        assert_eq!(
            value(&f, "container_build_last_start_timestamp_seconds", &[]),
            Some(Value::Gauge(1_763_321_440.0))
        );
        assert_eq!(
            value(&f, "container_build_commands", &[("feature", "python")]),
            Some(Value::Counter(2))
        );
        assert_eq!(
            value(
                &f,
                "container_build_command_failures",
                &[("feature", "python")]
            ),
            Some(Value::Counter(1))
        );
        assert_eq!(
            value(
                &f,
                "container_build_failures",
                &[("feature", "java_development")]
            ),
            Some(Value::Counter(1))
        );
        assert_eq!(
            value(
                &f,
                "container_build_log_lines",
                &[("feature", "python"), ("level", "warn")]
            ),
            Some(Value::Counter(1))
        );
        let Some(Value::Histogram {
            sum,
            count,
            buckets,
        }) = value(
            &f,
            "container_build_command_duration_seconds",
            &[("feature", "python")],
        )
        else {
            panic!("no histogram")
        };
        assert_eq!((sum, count), (73.0, 2));
        assert_eq!(buckets[1], (5.0, 1)); // 3 s
        assert_eq!(buckets[5], (120.0, 1)); // 70 s
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 2);
        assert_eq!(buckets.last().unwrap().0, f64::MAX);
    }

    #[test]
    fn the_latest_build_is_exposed_and_counters_add_up_over_builds() {
        let mut s = MetricsState::new();
        let mut newer = ev(
            EventType::BuildSummary,
            "Rust",
            2_000_000,
            serde_json::json!({"errors":3,"warnings":0,"duration_seconds":9}),
        );
        newer.correlation_id = "build-2".into();
        let mut older = ev(
            EventType::BuildSummary,
            "Go",
            1_000_000,
            serde_json::json!({"errors":0,"warnings":4,"duration_seconds":2}),
        );
        older.correlation_id = "build-1".into();
        let mut cmd = ev(
            EventType::Command,
            "Go",
            999_000,
            serde_json::json!({"exit_code":1}),
        );
        cmd.correlation_id = "build-1".into();
        // Read out of order: the newer build is still the one exposed.
        s.observe(&newer);
        s.observe(&cmd);
        s.observe(&older);
        assert_eq!(s.builds().len(), 2);
        assert_eq!(s.latest_build().unwrap().correlation_id, "build-2");
        let f = s.families();
        assert_eq!(
            value(
                &f,
                "container_build_duration_seconds",
                &[("feature", "rust"), ("status", "failed")]
            ),
            Some(Value::Gauge(9.0)),
            "no status in the metadata: failed because errors > 0, as the bash exporter did"
        );
        assert_eq!(
            value(&f, "container_build_errors", &[("feature", "go")]),
            None
        );
        assert_eq!(
            value(&f, "container_build_command_failures", &[("feature", "go")]),
            Some(Value::Counter(1))
        );
        // A command without a duration is counted, not observed.
        let Some(Value::Histogram { count, .. }) = value(
            &f,
            "container_build_command_duration_seconds",
            &[("feature", "go")],
        ) else {
            panic!()
        };
        assert_eq!(count, 0);
    }

    #[test]
    fn labels_that_sanitise_alike_share_one_series_and_nothing_is_unbounded() {
        let mut s = MetricsState::new();
        for name in ["Node.js", "NodeJS", "node js"] {
            s.observe(&ev(
                EventType::BuildSummary,
                name,
                5,
                serde_json::json!({"errors":1,"warnings":0,"duration_seconds":1}),
            ));
        }
        for i in 0..1000 {
            let mut e = ev(EventType::Output, "Node.js", 10 + i, serde_json::json!({}));
            e.message = format!("line {i} with a unique message");
            e.correlation_id = "build-1763290245-q7m2xa".into();
            s.observe(&e);
        }
        let f = s.families();
        assert_eq!(find(&f, "container_build_errors").series.len(), 2); // nodejs, node_js
        assert_eq!(find(&f, "container_build_log_lines").series.len(), 1);
        assert_eq!(
            value(
                &f,
                "container_build_log_lines",
                &[("feature", "nodejs"), ("level", "info")]
            ),
            Some(Value::Counter(1000))
        );
    }

    #[test]
    fn no_events_no_build_families() {
        let s = MetricsState::new();
        assert!(s.families().is_empty());
    }

    #[test]
    fn odd_metadata_does_not_panic() {
        let mut s = MetricsState::new();
        s.observe(&ev(
            EventType::FeatureEnd,
            "X",
            0,
            serde_json::json!({"duration_seconds":"12s","errors":-3,"warnings":"many","status":7}),
        ));
        s.observe(&ev(
            EventType::Command,
            "X",
            0,
            serde_json::json!({"duration_seconds":f64::MAX,"exit_code":"1"}),
        ));
        let f = s.families();
        assert_eq!(
            value(
                &f,
                "container_build_duration_seconds",
                &[("feature", "x"), ("status", "success")]
            ),
            Some(Value::Gauge(12.0))
        );
        assert_eq!(
            value(&f, "container_build_command_failures", &[("feature", "x")]),
            Some(Value::Counter(1))
        );
    }
}
