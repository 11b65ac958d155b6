//! The report's model: builds, their features and commands, folded from events in one pass.
//!
//! Every figure comes from an event: a feature's duration is its `feature_end`'s
//! `duration_seconds` (the logger's, from its epoch clock), a command's its `command` event's,
//! a build's status and wall time its `build_end`'s. Events without a `build_end` (an events
//! file converted before there were build events) get one folded here the same way.

use crate::enrich::build_events::{command_failed, BuildTracker};
use crate::event::{Diagnostic, Event, EventType};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};

/// How many of a failed command's last output lines are kept.
pub const LAST_LINES: usize = 8;
/// How many diagnostic lines are kept per feature (for `--compare`'s "new diagnostics").
pub const MAX_DIAGNOSTIC_LINES: usize = 200;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub builds: Vec<BuildReport>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BuildReport {
    pub correlation_id: String,
    /// `success` or `failed`: `build_end.metadata.status`.
    pub status: String,
    pub duration_seconds: f64,
    /// RFC 3339: the build's first and last times.
    pub start: String,
    pub end: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub failed_because: Vec<String>,
    pub features: Vec<FeatureReport>,
    /// Every command that did not succeed, in the order they ended.
    pub failures: Vec<Failure>,
    /// The logger's own totals (its substring counts), for comparison.
    pub logger_errors: u64,
    pub logger_warnings: u64,
    pub diagnostic_errors: u64,
    pub diagnostic_warnings: u64,
    #[serde(skip)]
    pub start_ms: i64,
    #[serde(skip)]
    pub end_ms: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FeatureReport {
    pub feature: String,
    /// The feature's real result: `failed` when it was aborted or the build's failure
    /// sentinel names it, else `success`.
    pub status: String,
    /// The logger's `status` in its summary (`failed` whenever it counted an "error").
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub logger_status: Option<String>,
    /// `feature_end.metadata.duration_seconds`; absent when the feature never ended.
    pub duration_seconds: Option<f64>,
    /// Offset of its start from the build's start, seconds.
    pub start_offset_seconds: f64,
    pub commands: Vec<CommandReport>,
    pub diagnostic_errors: u64,
    pub diagnostic_warnings: u64,
    /// The first diagnostic lines (`error: ...`), for `--compare`; not in the JSON.
    #[serde(skip)]
    pub diagnostic_lines: Vec<String>,
    #[serde(skip)]
    pub start_ms: Option<i64>,
    #[serde(skip)]
    pub end_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CommandReport {
    pub command_num: u32,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub command: Option<String>,
    /// `success`, `failed` or `aborted`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outcome: Option<String>,
    /// The `command` event's `duration_seconds`; absent for an aborted command.
    pub duration_seconds: Option<f64>,
    pub start_offset_seconds: f64,
    pub diagnostic_errors: u64,
    pub diagnostic_warnings: u64,
    #[serde(skip)]
    pub start_ms: Option<i64>,
    #[serde(skip)]
    pub end_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Failure {
    pub feature: String,
    pub command_num: u32,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_code: Option<i64>,
    pub outcome: String,
    /// The command's last output lines.
    pub last_output: Vec<String>,
}

impl CommandReport {
    pub fn failed(&self) -> bool {
        self.status != "success"
    }
}

impl FeatureReport {
    pub fn failed(&self) -> bool {
        self.status != "success"
    }
}

impl BuildReport {
    pub fn failed(&self) -> bool {
        self.status != "success"
    }
    pub fn feature(&self, name: &str) -> Option<&FeatureReport> {
        self.features.iter().find(|f| f.feature == name)
    }
}

#[derive(Default)]
struct OpenCommand {
    start_ms: Option<i64>,
    description: String,
    command: Option<String>,
    last: VecDeque<String>,
    diag: (u64, u64),
}

#[derive(Default)]
struct BuildAcc {
    report: BuildReport,
    tracker: BuildTracker,
    build_end: Option<Event>,
    /// (feature, command_num) of commands begun and not yet ended.
    open: HashMap<(String, u32), OpenCommand>,
    feature_index: HashMap<String, usize>,
    sentinel_features: Vec<String>,
    min_ms: Option<i64>,
    max_ms: Option<i64>,
}

impl BuildAcc {
    fn feature(&mut self, name: &str) -> &mut FeatureReport {
        let i = match self.feature_index.get(name) {
            Some(&i) => i,
            None => {
                self.report.features.push(FeatureReport {
                    feature: name.to_string(),
                    status: "success".into(),
                    ..Default::default()
                });
                let i = self.report.features.len() - 1;
                self.feature_index.insert(name.to_string(), i);
                i
            }
        };
        &mut self.report.features[i]
    }
}

/// Folds events into a report, one at a time.
#[derive(Default)]
pub struct ReportBuilder {
    builds: Vec<BuildAcc>,
    index: HashMap<String, usize>,
    last: Option<(crate::event::SharedStr, usize)>,
}

impl ReportBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn observe(&mut self, e: &Event) {
        let bi = match &self.last {
            Some((c, i)) if **c == *e.correlation_id => *i,
            _ => {
                let i = match self.index.get(&*e.correlation_id) {
                    Some(&i) => i,
                    None => {
                        self.builds.push(BuildAcc::default());
                        let i = self.builds.len() - 1;
                        self.builds[i].report.correlation_id = e.correlation_id.to_string();
                        self.index.insert(e.correlation_id.to_string(), i);
                        i
                    }
                };
                self.last = Some((e.correlation_id.clone(), i));
                i
            }
        };
        let b = &mut self.builds[bi];
        b.tracker.observe(e);
        let ts = e.timestamp.millis();
        if ts != 0 && !matches!(e.event_type, EventType::BuildStart | EventType::BuildEnd) {
            b.min_ms = Some(b.min_ms.map_or(ts, |m| m.min(ts)));
            b.max_ms = Some(b.max_ms.map_or(ts, |m| m.max(ts)));
        }
        let num = e.command_num.unwrap_or(0);
        match e.event_type {
            EventType::BuildEnd => b.build_end = Some(e.clone()),
            EventType::BuildStart => {}
            EventType::FeatureStart => {
                let f = b.feature(&e.feature);
                f.start_ms = Some(f.start_ms.map_or(ts, |s| s.min(ts)));
            }
            EventType::FeatureEnd => {
                let aborted =
                    e.incomplete || e.details.get("aborted").and_then(Value::as_bool) == Some(true);
                let f = b.feature(&e.feature);
                f.end_ms = Some(ts);
                f.duration_seconds = e
                    .metadata
                    .get("duration_seconds")
                    .and_then(Value::as_f64)
                    .or(e.duration_ms.map(|d| d as f64 / 1000.0));
                f.logger_status = e
                    .metadata
                    .get("status")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if aborted {
                    f.status = "failed".into();
                }
            }
            EventType::BuildFailure => {
                b.sentinel_features.push(e.feature.clone());
                if !e.feature.is_empty() {
                    b.feature(&e.feature).status = "failed".into();
                }
            }
            EventType::CommandStart => {
                let c = b.open.entry((e.feature.clone(), num)).or_default();
                c.start_ms = Some(ts);
                c.description.clone_from(&e.message);
                c.command = e
                    .metadata
                    .get("command")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            EventType::Output => {
                if e.command_num.is_some() {
                    let c = b.open.entry((e.feature.clone(), num)).or_default();
                    if c.last.len() == LAST_LINES {
                        c.last.pop_front();
                    }
                    c.last.push_back(e.message.clone());
                    match e.diagnostic {
                        Some(Diagnostic::Error) => c.diag.0 += 1,
                        Some(Diagnostic::Warning) => c.diag.1 += 1,
                        None => {}
                    }
                }
                if let Some(d) = e.diagnostic {
                    let f = b.feature(&e.feature);
                    match d {
                        Diagnostic::Error => f.diagnostic_errors += 1,
                        Diagnostic::Warning => f.diagnostic_warnings += 1,
                    }
                    if f.diagnostic_lines.len() < MAX_DIAGNOSTIC_LINES {
                        f.diagnostic_lines.push(format!("{d}: {}", e.message));
                    }
                }
            }
            EventType::Command => {
                let open = b.open.remove(&(e.feature.clone(), num)).unwrap_or_default();
                let exit_code = e.metadata.get("exit_code").and_then(Value::as_i64);
                let failed = command_failed(e);
                let outcome = e
                    .details
                    .get("outcome")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let aborted = e.incomplete || outcome.as_deref() == Some("aborted the build");
                let status = match (failed, aborted) {
                    (false, _) => "success",
                    (true, true) => "aborted",
                    (true, false) => "failed",
                };
                let duration = e
                    .metadata
                    .get("duration_seconds")
                    .and_then(Value::as_f64)
                    .or(e.duration_ms.map(|d| d as f64 / 1000.0));
                let description = if e.message.is_empty() {
                    open.description.clone()
                } else {
                    e.message.clone()
                };
                let cmd = CommandReport {
                    command_num: num,
                    description: description.clone(),
                    command: e
                        .details
                        .get("command")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .or(open.command),
                    status: status.into(),
                    exit_code,
                    outcome: outcome.clone(),
                    duration_seconds: duration,
                    start_offset_seconds: 0.0,
                    diagnostic_errors: open.diag.0,
                    diagnostic_warnings: open.diag.1,
                    start_ms: open.start_ms.or(Some(ts)),
                    end_ms: Some(ts),
                };
                if failed {
                    b.report.failures.push(Failure {
                        feature: e.feature.clone(),
                        command_num: num,
                        description,
                        exit_code,
                        outcome: outcome.unwrap_or_else(|| match exit_code {
                            Some(c) => format!("failed (exit {c})"),
                            None => "did not finish".into(),
                        }),
                        last_output: open.last.into_iter().collect(),
                    });
                }
                b.feature(&e.feature).commands.push(cmd);
            }
            _ => {}
        }
    }

    /// The report, in the order the builds were first seen.
    pub fn finish(self) -> Report {
        let mut builds = Vec::with_capacity(self.builds.len());
        for mut b in self.builds {
            let end = b.build_end.take().or_else(|| b.tracker.finish());
            let start_ms = b.min_ms.unwrap_or(0);
            let mut r = b.report;
            r.start_ms = start_ms;
            r.end_ms = b.max_ms.unwrap_or(start_ms);
            if let Some(end) = &end {
                let m = &end.metadata;
                let u = |k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0);
                r.status = m
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("success")
                    .to_string();
                r.duration_seconds = m
                    .get("duration_seconds")
                    .and_then(Value::as_f64)
                    .unwrap_or((r.end_ms - r.start_ms) as f64 / 1000.0);
                r.logger_errors = u("errors");
                r.logger_warnings = u("warnings");
                r.diagnostic_errors = u("diagnostic_errors");
                r.diagnostic_warnings = u("diagnostic_warnings");
                r.failed_because = end
                    .details
                    .get("failed_because")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
            } else {
                r.status = "success".into();
            }
            r.start = crate::event::Timestamp(r.start_ms).to_rfc3339();
            r.end = crate::event::Timestamp(r.end_ms).to_rfc3339();
            // Commands begun and never ended (the source stopped mid-command).
            let mut open: Vec<_> = b.open.into_iter().collect();
            open.sort_by(|a, b| a.0.cmp(&b.0));
            for ((feature, num), c) in open {
                if c.start_ms.is_none() {
                    continue;
                }
                let i = match r.features.iter().position(|f| f.feature == feature) {
                    Some(i) => i,
                    None => continue,
                };
                r.failures.push(Failure {
                    feature: feature.clone(),
                    command_num: num,
                    description: c.description.clone(),
                    exit_code: None,
                    outcome: "did not finish".into(),
                    last_output: c.last.iter().cloned().collect(),
                });
                r.features[i].status = "failed".into();
                r.features[i].commands.push(CommandReport {
                    command_num: num,
                    description: c.description,
                    command: c.command,
                    status: "aborted".into(),
                    outcome: Some("did not finish".into()),
                    start_ms: c.start_ms,
                    diagnostic_errors: c.diag.0,
                    diagnostic_warnings: c.diag.1,
                    ..Default::default()
                });
            }
            for f in &mut r.features {
                // A feature that started and never ended was cut short.
                if f.start_ms.is_some() && f.end_ms.is_none() && r.status == "failed" {
                    f.status = "failed".into();
                }
                f.start_offset_seconds = secs(f.start_ms.unwrap_or(start_ms) - start_ms);
                f.commands.sort_by_key(|c| c.command_num);
                for c in &mut f.commands {
                    c.start_offset_seconds = secs(c.start_ms.unwrap_or(start_ms) - start_ms);
                }
            }
            builds.push(r);
        }
        Report { builds }
    }
}

fn secs(ms: i64) -> f64 {
    (ms.max(0) as f64) / 1000.0
}

/// The report of these events.
pub fn build_report<'a>(events: impl IntoIterator<Item = &'a Event>) -> Report {
    let mut b = ReportBuilder::new();
    for e in events {
        b.observe(e);
    }
    b.finish()
}
