//! Folds the event stream into OpenTelemetry spans: one root span per build, a child per
//! feature, a grandchild per command. The ids are the `trace_id`/`span_id` the events carry
//! (DESIGN.md), so the logs in Loki or Elasticsearch and the spans in Tempo link both ways.
//!
//! A command span is complete when its `command` event arrives and is handed out at once;
//! a finished feature's span as its `feature_end` arrives; an aborted feature's span and the
//! build span wait for the end of their build (end of input, idle timeout, or too many builds
//! open), because the build-failure sentinel of an aborted feature is read after it.
//! Only the events that make a span (boundaries and span events) are kept: they are what
//! goes to the dead-letter file when a span is refused, and replaying them rebuilds it.

use super::config::ParentContext;
use crate::enrich::ids;
use crate::event::{Event, EventType, Level};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A finished span and the events it was made from.
#[derive(Debug, Clone)]
pub struct SpanOut {
    pub span: Span,
    pub events: Vec<Arc<Event>>,
}

/// Builds open at once before the least recently active one is ended (bounded memory when
/// years of builds are imported in one run).
pub const MAX_OPEN_BUILDS: usize = 16;

pub struct SpanBuilder {
    max_span_events: usize,
    parent: Option<ParentContext>,
    pipeline_name: String,
    builds: Vec<BuildState>,
}

/// What is common to every span under construction.
#[derive(Default)]
struct Acc {
    kept: Vec<Arc<Event>>,
    span_events: Vec<span::Event>,
    dropped_events: u32,
    first: Option<i64>,
    last: Option<i64>,
}

impl Acc {
    /// Span events past the bound, as an attribute (the OTLP field says it too).
    fn count_dropped(&self, attrs: &mut Vec<KeyValue>) {
        if self.dropped_events > 0 {
            attrs.push(kv_int(
                "build.span_events.dropped",
                self.dropped_events.into(),
            ));
        }
    }
    fn see(&mut self, ts: i64) {
        self.first = Some(self.first.map_or(ts, |f| f.min(ts)));
        self.last = Some(self.last.map_or(ts, |l| l.max(ts)));
    }
}

#[derive(Default)]
struct FeatureState {
    span_id: [u8; 8],
    name: String,
    acc: Acc,
    start: Option<i64>,
    end: Option<Arc<Event>>,
    version: Option<String>,
    sentinel: bool,
}

#[derive(Default)]
struct CommandState {
    span_id: [u8; 8],
    parent: [u8; 8],
    feature: String,
    num: u32,
    acc: Acc,
    start: Option<Arc<Event>>,
}

struct BuildState {
    correlation_id: String,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    acc: Acc,
    features: Vec<FeatureState>,
    commands: HashMap<[u8; 8], CommandState>,
    /// Command spans already handed out; late events for them are not made into a second span.
    done_commands: std::collections::HashSet<[u8; 8]>,
    last_active: Instant,
    /// Set by any feature or build-level event: a replay of command events alone (from a
    /// dead-letter file) must not send a build span with made-up totals.
    has_build_facts: bool,
    max_child_end: i64,
    commands_seen: u64,
    feature_ids: HashMap<String, [u8; 8]>,
    /// Feature spans already handed out (finished features go out as they end).
    done_features: std::collections::HashSet<[u8; 8]>,
    /// What the handed-out feature spans add to the build span's totals.
    sent: SentFeatures,
    /// The build's `build_end` event: its status is the build span's.
    build_end: Option<Arc<Event>>,
}

#[derive(Default)]
struct SentFeatures {
    count: u64,
    failed: u64,
    errors: u64,
    warnings: u64,
}

impl SpanBuilder {
    pub fn new(max_span_events: usize, parent: Option<ParentContext>, pipeline_name: &str) -> Self {
        SpanBuilder {
            max_span_events,
            parent,
            pipeline_name: pipeline_name.to_string(),
            builds: Vec::new(),
        }
    }

    /// Number of builds with spans not yet handed out.
    pub fn open_builds(&self) -> usize {
        self.builds.len()
    }

    /// Folds one event in; finished spans are appended to `out`. Returns true when the event
    /// is kept as part of a span (its fate is then that of the span), false when it carries
    /// nothing a trace needs (an output line, a debug message).
    pub fn push(&mut self, e: &Arc<Event>, now: Instant, out: &mut Vec<SpanOut>) -> bool {
        let idx = match self
            .builds
            .iter()
            .position(|b| *b.correlation_id == *e.correlation_id)
        {
            Some(i) => i,
            None => {
                if self.builds.len() >= MAX_OPEN_BUILDS {
                    let oldest = (0..self.builds.len())
                        .min_by_key(|&i| self.builds[i].last_active)
                        .unwrap_or(0);
                    let b = self.builds.swap_remove(oldest);
                    self.finish_build(b, out);
                }
                self.builds.push(BuildState::new(e, self.parent.as_ref()));
                self.builds.len() - 1
            }
        };
        let max_events = self.max_span_events;
        let b = &mut self.builds[idx];
        b.last_active = now;
        b.push(e, max_events, out)
    }

    /// Ends the builds that got no event for `idle`.
    pub fn flush_idle(&mut self, now: Instant, idle: Duration, out: &mut Vec<SpanOut>) {
        let mut i = 0;
        while i < self.builds.len() {
            if now.duration_since(self.builds[i].last_active) >= idle {
                let b = self.builds.swap_remove(i);
                self.finish_build(b, out);
            } else {
                i += 1;
            }
        }
    }

    /// Ends every open build (end of input).
    pub fn finish(&mut self, out: &mut Vec<SpanOut>) {
        let builds = std::mem::take(&mut self.builds);
        for b in builds {
            self.finish_build(b, out);
        }
    }

    fn finish_build(&self, mut b: BuildState, out: &mut Vec<SpanOut>) {
        // Commands that never got their `command` event: aborted, ended at their last known time.
        let mut open: Vec<_> = b.commands.drain().map(|(_, c)| c).collect();
        open.sort_by_key(|c| (c.feature.clone(), c.num));
        for c in open {
            let s = command_span(&b, c, None);
            b.max_child_end = b.max_child_end.max(s.span.end_time_unix_nano as i64);
            out.push(s);
        }
        let mut sentinel = false;
        let features = std::mem::take(&mut b.features);
        for f in features {
            sentinel |= f.sentinel;
            b.send_feature(f, out);
        }
        let SentFeatures {
            count: feature_count,
            failed,
            errors,
            warnings,
        } = std::mem::take(&mut b.sent);
        if b.has_build_facts {
            out.push(self.build_span(b, feature_count, failed, errors, warnings, sentinel));
        }
    }

    fn build_span(
        &self,
        b: BuildState,
        features: u64,
        failed: u64,
        errors: u64,
        warnings: u64,
        sentinel: bool,
    ) -> SpanOut {
        // The build's own verdict where it has one; else the features' and the sentinel's.
        let end_status = b
            .build_end
            .as_ref()
            .and_then(|e| e.metadata.get("status"))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let ok = match &end_status {
            Some(s) => s == "success",
            None => failed == 0 && !sentinel,
        };
        let start = b.acc.first.unwrap_or(0);
        let end = b.acc.last.unwrap_or(start).max(b.max_child_end / 1_000_000);
        let mut attrs = vec![
            kv_str("cicd.pipeline.name", &self.pipeline_name),
            kv_str("cicd.pipeline.run.id", &b.correlation_id),
            kv_str("cicd.pipeline.action.name", "BUILD"),
            kv_str(
                "cicd.pipeline.result",
                if ok { "success" } else { "failure" },
            ),
            kv_str("build.correlation_id", &b.correlation_id),
            kv_str("build.status", if ok { "success" } else { "failed" }),
            kv_int("build.feature.count", features as i64),
            kv_int("build.feature.failed", failed as i64),
            kv_int("build.command.count", b.commands_seen as i64),
            kv_int("build.error.count", errors as i64),
            kv_int("build.warning.count", warnings as i64),
        ];
        if let Some(m) = b.build_end.as_ref().map(|e| &e.metadata) {
            for (k, attr) in [
                ("failed_commands", "build.command.failed"),
                ("diagnostic_errors", "build.diagnostic.errors"),
                ("diagnostic_warnings", "build.diagnostic.warnings"),
            ] {
                if let Some(n) = m.get(k).and_then(|v| v.as_i64()) {
                    attrs.push(kv_int(attr, n));
                }
            }
        }
        if !ok {
            attrs.push(kv_str(
                "error.type",
                if sentinel {
                    "build_failure"
                } else {
                    "feature_failed"
                },
            ));
        }
        b.acc.count_dropped(&mut attrs);
        let why = b
            .build_end
            .as_ref()
            .and_then(|e| e.details.get("failed_because"))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|s| !s.is_empty());
        let status = if ok {
            Status::default()
        } else {
            error_status(why.unwrap_or_else(|| format!("{failed} of {features} features failed")))
        };
        let parent = self.parent.map(|p| p.span_id.to_vec()).unwrap_or_default();
        SpanOut {
            span: Span {
                trace_id: b.trace_id.to_vec(),
                span_id: b.span_id.to_vec(),
                parent_span_id: parent,
                name: format!("BUILD {}", self.pipeline_name),
                kind: span::SpanKind::Server as i32,
                start_time_unix_nano: nanos(start),
                end_time_unix_nano: nanos(end),
                attributes: attrs,
                events: b.acc.span_events,
                dropped_events_count: b.acc.dropped_events,
                status: Some(status),
                ..Default::default()
            },
            events: b.acc.kept,
        }
    }
}

impl BuildState {
    /// With a `TRACEPARENT`, the build's spans go into the parent's trace (their span ids stay).
    fn new(e: &Event, parent: Option<&ParentContext>) -> Self {
        let trace_id = parent.map(|p| p.trace_id).unwrap_or_else(|| {
            e.trace_id
                .as_deref()
                .and_then(hex16)
                .unwrap_or_else(|| hex16(&ids::trace_id(&e.correlation_id)).unwrap_or([1; 16]))
        });
        BuildState {
            correlation_id: e.correlation_id.to_string(),
            trace_id,
            span_id: hex8(&ids::build_span_id(&e.correlation_id)).unwrap_or([1; 8]),
            acc: Acc::default(),
            features: Vec::new(),
            commands: HashMap::new(),
            done_commands: Default::default(),
            last_active: Instant::now(),
            has_build_facts: false,
            max_child_end: 0,
            commands_seen: 0,
            feature_ids: HashMap::new(),
            done_features: Default::default(),
            sent: SentFeatures::default(),
            build_end: None,
        }
    }

    fn push(&mut self, e: &Arc<Event>, max_events: usize, out: &mut Vec<SpanOut>) -> bool {
        let ts = e.timestamp.millis();
        self.acc.see(ts);
        let span_id = e
            .span_id
            .as_deref()
            .and_then(hex8)
            .unwrap_or_else(|| self.derive_span_id(e));
        // Build-level events, and events of no feature (a logger message outside any feature),
        // belong to the build span: a feature span named "" would be made up.
        if span_id == self.span_id || (e.feature.is_empty() && e.command_num.is_none()) {
            self.has_build_facts = true;
            if e.event_type == EventType::BuildEnd {
                self.build_end = Some(e.clone());
            }
            return add_span_event(&mut self.acc, e, max_events)
                || keep_if(
                    &mut self.acc,
                    e,
                    matches!(
                        e.event_type,
                        EventType::BuildSummary | EventType::BuildStart | EventType::BuildEnd
                    ),
                );
        }
        let feature_id = self.feature_id(&e.feature);
        if Some(span_id) == feature_id
            || (e.command_num.is_none()
                && !matches!(e.event_type, EventType::CommandStart | EventType::Command))
        {
            self.has_build_facts = true;
            if self.done_features.contains(&span_id) {
                // A late event of a feature whose span is out: it goes on the build span.
                return add_span_event(&mut self.acc, e, max_events);
            }
            let i = match self.features.iter().position(|f| f.span_id == span_id) {
                Some(i) => i,
                None => {
                    self.features.push(FeatureState {
                        span_id,
                        name: e.feature.clone(),
                        ..Default::default()
                    });
                    self.features.len() - 1
                }
            };
            let f = &mut self.features[i];
            f.acc.see(ts);
            match e.event_type {
                EventType::FeatureStart => {
                    f.start = Some(f.start.map_or(ts, |s| s.min(ts)));
                    f.version = f.version.take().or_else(|| e.version.clone());
                    return keep_if(&mut f.acc, e, true);
                }
                EventType::FeatureEnd => {
                    f.end = Some(e.clone());
                    f.version = f.version.take().or_else(|| e.version.clone());
                    let kept = keep_if(&mut f.acc, e, true);
                    if !e.incomplete {
                        // A finished feature's span goes out as it ends, so a followed build
                        // shows it live. Only an aborted feature's span waits for the build's
                        // end: the failure sentinel that marks it is read after it.
                        let f = self.features.remove(i);
                        self.done_features.insert(f.span_id);
                        self.send_feature(f, out);
                    }
                    return kept;
                }
                EventType::BuildFailure => f.sentinel = true,
                _ => {}
            }
            return add_span_event(&mut f.acc, e, max_events);
        }
        // A command's span.
        if self.done_commands.contains(&span_id) {
            return false;
        }
        let parent = feature_id.unwrap_or(self.span_id);
        let c = self
            .commands
            .entry(span_id)
            .or_insert_with(|| CommandState {
                span_id,
                parent,
                feature: e.feature.clone(),
                num: e.command_num.unwrap_or(0),
                ..Default::default()
            });
        c.acc.see(ts);
        match e.event_type {
            EventType::CommandStart => {
                c.start = Some(e.clone());
                keep_if(&mut c.acc, e, true)
            }
            EventType::Command => {
                let mut c = self.commands.remove(&span_id).expect("inserted above");
                keep_if(&mut c.acc, e, true);
                self.commands_seen += 1;
                self.done_commands.insert(span_id);
                let s = command_span(self, c, Some(e));
                self.max_child_end = self.max_child_end.max(s.span.end_time_unix_nano as i64);
                out.push(s);
                true
            }
            _ => add_span_event(&mut c.acc, e, max_events),
        }
    }

    /// Hands out a feature's span and keeps what it adds to the build span's totals.
    fn send_feature(&mut self, f: FeatureState, out: &mut Vec<SpanOut>) {
        if let Some(end) = &f.end {
            self.sent.errors += end.error_count.unwrap_or(0);
            self.sent.warnings += end.warning_count.unwrap_or(0);
        }
        let (s, ok) = feature_span(self, f);
        self.sent.count += 1;
        self.sent.failed += u64::from(!ok);
        self.max_child_end = self.max_child_end.max(s.span.end_time_unix_nano as i64);
        out.push(s);
    }

    /// A feature's span id, cached: hashing and formatting it for every output line would
    /// cost more than all the rest of folding an event.
    fn feature_id(&mut self, feature: &str) -> Option<[u8; 8]> {
        if let Some(id) = self.feature_ids.get(feature) {
            return Some(*id);
        }
        let id = hex8(&ids::feature_span_id(&self.correlation_id, feature))?;
        self.feature_ids.insert(feature.to_string(), id);
        Some(id)
    }

    /// Span ids for events that lack one (hand-made input): the same derivation as `enrich`.
    fn derive_span_id(&self, e: &Event) -> [u8; 8] {
        let id = match (e.event_type, e.command_num) {
            (EventType::BuildSummary, _) => ids::build_span_id(&self.correlation_id),
            (EventType::BuildFailure, _) if e.feature.is_empty() => {
                ids::build_span_id(&self.correlation_id)
            }
            (t, Some(n)) if t != EventType::BuildFailure => {
                ids::command_span_id(&self.correlation_id, &e.feature, n)
            }
            _ => ids::feature_span_id(&self.correlation_id, &e.feature),
        };
        hex8(&id).unwrap_or([1; 8])
    }
}

fn keep_if(acc: &mut Acc, e: &Arc<Event>, keep: bool) -> bool {
    if keep {
        acc.kept.push(e.clone());
    }
    keep
}

/// Warnings, errors and the failure sentinel (and output lines the logger counts as warnings
/// or errors) become span events, at most `max` per span; the rest are counted.
fn add_span_event(acc: &mut Acc, e: &Arc<Event>, max: usize) -> bool {
    let name = match (e.event_type, e.level) {
        (EventType::Warning, _) => "warning",
        (EventType::Error, _) => "error",
        (EventType::BuildFailure, _) => "build_failure",
        (EventType::Output, Level::Warn) => "warning",
        (EventType::Output, Level::Error | Level::Fatal) => "error",
        _ => return false,
    };
    if acc.span_events.len() >= max {
        acc.dropped_events += 1;
        return false;
    }
    let mut attrs = vec![
        kv_str("log.record.uid", &e.event_id),
        kv_str("build.event_type", e.event_type.as_str()),
        kv_str("build.level", e.level.as_str()),
        kv_str("build.message", &e.message),
        kv_str("build.source.file", &e.source.file),
        kv_int("build.source.line", e.source.line as i64),
    ];
    if e.event_type == EventType::BuildFailure {
        if let Some(n) = e.command_num {
            attrs.push(kv_int("build.command.number", n.into()));
        }
        if let Some(code) = e.metadata.get("exit_code").and_then(|v| v.as_i64()) {
            attrs.push(kv_int("process.exit.code", code));
        }
        if let Some(cmd) = e.metadata.get("command").and_then(|v| v.as_str()) {
            attrs.push(kv_str("process.command_line", cmd));
        }
    }
    acc.span_events.push(span::Event {
        time_unix_nano: nanos(e.timestamp.millis()),
        name: name.to_string(),
        attributes: attrs,
        dropped_attributes_count: 0,
    });
    acc.kept.push(e.clone());
    true
}

/// A command span: from its `command_start` to start + the logged duration; an aborted
/// command (no duration, or flagged `incomplete`) ends at its last known time.
fn command_span(b: &BuildState, c: CommandState, end: Option<&Arc<Event>>) -> SpanOut {
    let start_ev = c.start.as_ref();
    let duration = end.and_then(|e| e.duration_ms);
    let start = match (start_ev, end) {
        (Some(s), _) => s.timestamp.millis(),
        (None, Some(e)) => e.timestamp.millis() - duration.unwrap_or(0) as i64,
        (None, None) => c.acc.first.unwrap_or(0),
    };
    let incomplete = end.is_none_or(|e| e.incomplete || e.duration_ms.is_none());
    let end_ms = match duration {
        Some(d) if !incomplete => start + d as i64,
        _ => c.acc.last.unwrap_or(start).max(start),
    };
    let description = start_ev
        .map(|s| s.message.as_str())
        .or(end.map(|e| e.message.as_str()))
        .filter(|d| !d.is_empty());
    let command_line = end
        .and_then(|e| e.details.get("command"))
        .or_else(|| start_ev.and_then(|s| s.metadata.get("command")))
        .and_then(|v| v.as_str());
    let exit_code = end
        .and_then(|e| e.metadata.get("exit_code"))
        .and_then(|v| v.as_i64());
    let mut attrs = vec![
        kv_str("build.feature", &c.feature),
        kv_int("build.command.number", c.num.into()),
    ];
    if let Some(d) = description {
        attrs.push(kv_str("build.command.description", d));
    }
    if let Some(cmd) = command_line {
        attrs.push(kv_str("process.command_line", cmd));
    }
    if let Some(code) = exit_code {
        attrs.push(kv_int("process.exit.code", code));
    }
    if let Some(d) = duration {
        attrs.push(kv_int("build.command.duration_ms", d as i64));
    }
    let failed = exit_code.is_some_and(|c| c != 0);
    let outcome = end
        .and_then(|e| e.details.get("outcome"))
        .and_then(|v| v.as_str());
    if let Some(o) = outcome {
        attrs.push(kv_str("build.command.outcome", o));
    }
    let status = if failed {
        attrs.push(kv_str("error.type", &exit_code.unwrap_or(0).to_string()));
        error_status(match outcome {
            Some(o) => format!("{o}, exit code {}", exit_code.unwrap_or(0)),
            None => format!("exit code {}", exit_code.unwrap_or(0)),
        })
    } else if incomplete {
        error_status(outcome.unwrap_or("command did not finish").to_string())
    } else {
        Status::default()
    };
    if incomplete {
        attrs.push(kv_bool("build.incomplete", true));
        if !failed {
            attrs.push(kv_str("error.type", "incomplete"));
        }
    }
    c.acc.count_dropped(&mut attrs);
    let name = description
        .map(str::to_string)
        .unwrap_or_else(|| format!("command {}", c.num));
    SpanOut {
        span: Span {
            trace_id: b.trace_id.to_vec(),
            span_id: c.span_id.to_vec(),
            parent_span_id: c.parent.to_vec(),
            name,
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: nanos(start),
            end_time_unix_nano: nanos(end_ms),
            attributes: attrs,
            events: c.acc.span_events,
            dropped_events_count: c.acc.dropped_events,
            status: Some(status),
            ..Default::default()
        },
        events: c.acc.kept,
    }
}

/// A feature span, `feature_start` to `feature_end`. Returns whether the feature succeeded.
fn feature_span(b: &BuildState, f: FeatureState) -> (SpanOut, bool) {
    let start = f.start.or(f.acc.first).unwrap_or(0);
    let end_ev = f.end.as_ref();
    let incomplete = end_ev.is_none_or(|e| e.incomplete);
    let end = match end_ev {
        Some(e) => e.timestamp.millis(),
        None => f.acc.last.unwrap_or(start),
    };
    let status_text = end_ev
        .and_then(|e| e.metadata.get("status"))
        .and_then(|v| v.as_str())
        .unwrap_or(if incomplete { "failed" } else { "success" });
    let ok = !incomplete && status_text != "failed" && !f.sentinel;
    let mut attrs = vec![
        kv_str("cicd.pipeline.task.name", &f.name),
        kv_str("cicd.pipeline.task.type", "build"),
        kv_str(
            "cicd.pipeline.task.run.id",
            &format!("{}/{}", b.correlation_id, f.name),
        ),
        kv_str(
            "cicd.pipeline.task.run.result",
            if ok { "success" } else { "failure" },
        ),
        kv_str("build.feature", &f.name),
        kv_str("build.status", if ok { "success" } else { "failed" }),
    ];
    if let Some(v) = &f.version {
        attrs.push(kv_str("build.feature.version", v));
    }
    if let Some(e) = end_ev {
        for (key, v) in [
            ("build.command.count", e.command_count),
            ("build.error.count", e.error_count),
            ("build.warning.count", e.warning_count),
            ("build.duration_ms", e.duration_ms),
        ] {
            if let Some(v) = v {
                attrs.push(kv_int(key, v as i64));
            }
        }
    }
    if incomplete {
        attrs.push(kv_bool("build.incomplete", true));
    }
    f.acc.count_dropped(&mut attrs);
    let status = if ok {
        Status::default()
    } else {
        let why = if f.sentinel {
            "build_failure"
        } else if incomplete {
            "incomplete"
        } else {
            "feature_failed"
        };
        attrs.push(kv_str("error.type", why));
        error_status(format!("feature {}: {why}", f.name))
    };
    let out = SpanOut {
        span: Span {
            trace_id: b.trace_id.to_vec(),
            span_id: f.span_id.to_vec(),
            parent_span_id: b.span_id.to_vec(),
            name: f.name.clone(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: nanos(start),
            end_time_unix_nano: nanos(end.max(start)),
            attributes: attrs,
            events: f.acc.span_events,
            dropped_events_count: f.acc.dropped_events,
            status: Some(status),
            ..Default::default()
        },
        events: f.acc.kept,
    };
    (out, ok)
}

fn error_status(message: String) -> Status {
    Status {
        message,
        code: status::StatusCode::Error as i32,
    }
}

/// Milliseconds since the epoch to OTLP's unsigned nanoseconds (times before 1970 clamp to 0).
fn nanos(ms: i64) -> u64 {
    (ms.max(0) as u64).saturating_mul(1_000_000)
}

fn hex16(s: &str) -> Option<[u8; 16]> {
    let mut b = [0u8; 16];
    hex::decode_to_slice(s, &mut b).ok()?;
    Some(b)
}

fn hex8(s: &str) -> Option<[u8; 8]> {
    let mut b = [0u8; 8];
    hex::decode_to_slice(s, &mut b).ok()?;
    Some(b)
}

pub fn kv_str(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_string())),
        }),
    }
}

fn kv_int(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
    }
}

fn kv_bool(key: &str, v: bool) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::BoolValue(v)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus_events(build: &str) -> Vec<Arc<Event>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/corpus")
            .join(build);
        let opts = crate::parse::ParseOptions::default();
        let mut events = Vec::new();
        let mut progress = crate::source::Progress::new(true);
        crate::build::parse_inputs(
            &[crate::source::Input::from_path(dir)],
            &opts,
            &mut progress,
            &mut |e| {
                events.push(Arc::new(e.take()));
                Ok(())
            },
        );
        events
    }

    fn build_all(events: &[Arc<Event>], max: usize, parent: Option<ParentContext>) -> Vec<SpanOut> {
        let mut b = SpanBuilder::new(max, parent, "container-build");
        let mut out = Vec::new();
        let now = Instant::now();
        for e in events {
            b.push(e, now, &mut out);
        }
        b.finish(&mut out);
        out
    }

    fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a any_value::Value> {
        s.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn the_build_span_status_follows_build_end() {
        // Build 13 succeeded although the logger marks 10 of its 19 features `failed`.
        let events = corpus_events("build-13-large");
        let corr = &events[0].correlation_id;
        let spans = build_all(&events, 8, None);
        let root = find(&spans, &ids::build_span_id(corr));
        assert_eq!(
            root.status.as_ref().unwrap().code,
            status::StatusCode::Unset as i32
        );
        assert!(matches!(
            attr(root, "build.status"),
            Some(any_value::Value::StringValue(s)) if s == "success"
        ));
        assert!(matches!(
            attr(root, "build.command.failed"),
            Some(any_value::Value::IntValue(2))
        ));
        // Build 02 failed: the status says why, and the tolerated command says how it failed.
        let events = corpus_events("build-02-failure");
        let corr = &events[0].correlation_id;
        let spans = build_all(&events, 8, None);
        let root = find(&spans, &ids::build_span_id(corr));
        let st = root.status.as_ref().unwrap();
        assert_eq!(st.code, status::StatusCode::Error as i32);
        assert!(
            st.message
                .contains("build failure sentinel: feature 'Java Development' command #2 exit 22"),
            "{}",
            st.message
        );
        let gopls = find(&spans, &ids::command_span_id(corr, "Golang", 2));
        assert_eq!(
            gopls.status.as_ref().unwrap().message,
            "failed (exit 1), exit code 1"
        );
    }

    fn find<'a>(spans: &'a [SpanOut], id: &str) -> &'a Span {
        &spans
            .iter()
            .find(|s| hex::encode(&s.span.span_id) == id)
            .unwrap_or_else(|| panic!("no span {id}"))
            .span
    }

    #[test]
    fn failure_build_has_the_logged_tree_times_and_statuses() {
        let events = corpus_events("build-02-failure");
        let spans = build_all(&events, 64, None);
        // 1 build + 2 features + 4 commands.
        assert_eq!(spans.len(), 7);
        let root = spans.last().unwrap();
        let corr = &events[0].correlation_id;
        assert_eq!(hex::encode(&root.span.span_id), ids::build_span_id(corr));
        assert_eq!(
            hex::encode(&root.span.trace_id),
            &*events[0].trace_id.clone().unwrap()
        );
        assert!(root.span.parent_span_id.is_empty());
        assert_eq!(
            root.span.status.as_ref().unwrap().code,
            status::StatusCode::Error as i32
        );
        assert_eq!(
            attr(&root.span, "build.feature.count"),
            Some(&any_value::Value::IntValue(2))
        );
        assert_eq!(
            attr(&root.span, "build.warning.count"),
            Some(&any_value::Value::IntValue(1))
        );
        assert_eq!(
            attr(&root.span, "build.error.count"),
            Some(&any_value::Value::IntValue(1))
        );
        assert_eq!(
            attr(&root.span, "cicd.pipeline.result"),
            Some(&any_value::Value::StringValue("failure".into()))
        );

        for e in &events {
            let id = e.span_id.as_deref().unwrap();
            match e.event_type {
                EventType::FeatureStart => {
                    let s = find(&spans, id);
                    assert_eq!(s.start_time_unix_nano, nanos(e.timestamp.millis()));
                    assert_eq!(s.parent_span_id, root.span.span_id);
                    assert_eq!(s.name, e.feature);
                }
                EventType::FeatureEnd => {
                    let s = find(&spans, id);
                    assert_eq!(s.end_time_unix_nano, nanos(e.timestamp.millis()));
                    let failed = e.metadata["status"] == "failed";
                    assert_eq!(
                        s.status.as_ref().unwrap().code == 2,
                        failed,
                        "{}",
                        e.feature
                    );
                    assert_eq!(attr(s, "build.incomplete").is_some(), e.incomplete);
                }
                EventType::CommandStart => {
                    let s = find(&spans, id);
                    assert_eq!(s.start_time_unix_nano, nanos(e.timestamp.millis()));
                    assert_eq!(
                        hex::encode(&s.parent_span_id),
                        ids::feature_span_id(corr, &e.feature)
                    );
                    assert_eq!(s.name, e.message);
                }
                EventType::Command => {
                    let s = find(&spans, id);
                    let code = e.metadata["exit_code"].as_i64().unwrap();
                    assert_eq!(
                        attr(s, "process.exit.code"),
                        Some(&any_value::Value::IntValue(code))
                    );
                    assert_eq!(s.status.as_ref().unwrap().code == 2, code != 0);
                    assert_eq!(
                        attr(s, "process.command_line"),
                        Some(&any_value::Value::StringValue(
                            e.details["command"].as_str().unwrap().into()
                        ))
                    );
                    if !e.incomplete {
                        assert_eq!(
                            s.end_time_unix_nano - s.start_time_unix_nano,
                            e.duration_ms.unwrap() * 1_000_000
                        );
                    } else {
                        assert_eq!(
                            attr(s, "build.incomplete"),
                            Some(&any_value::Value::BoolValue(true))
                        );
                    }
                }
                EventType::Warning => {
                    let s = find(&spans, id);
                    assert!(s.events.iter().any(|ev| ev.name == "warning"
                        && ev.time_unix_nano == nanos(e.timestamp.millis())));
                }
                EventType::BuildFailure => {
                    let s = find(&spans, id);
                    let ev = s
                        .events
                        .iter()
                        .find(|ev| ev.name == "build_failure")
                        .unwrap();
                    assert_eq!(
                        ev.attributes
                            .iter()
                            .find(|a| a.key == "log.record.uid")
                            .unwrap()
                            .value,
                        Some(AnyValue {
                            value: Some(any_value::Value::StringValue(e.event_id.clone()))
                        })
                    );
                    assert_eq!(
                        attr(s, "error.type"),
                        Some(&any_value::Value::StringValue("build_failure".into()))
                    );
                }
                _ => {}
            }
        }
        // The kept events are exactly the boundaries and span events: output lines are not kept.
        let kept: usize = spans.iter().map(|s| s.events.len()).sum();
        let expected = events
            .iter()
            .filter(|e| !matches!(e.event_type, EventType::Output) || e.level >= Level::Warn)
            .count();
        assert_eq!(kept, expected);
    }

    #[test]
    fn every_corpus_build_gives_one_span_per_feature_and_command() {
        for build in [
            "build-01-success",
            "build-11-masked-abort-2026-03",
            "build-13-large",
            "build-14-chicago-dst",
        ] {
            let events = corpus_events(build);
            let spans = build_all(&events, 64, None);
            let features: std::collections::BTreeSet<_> = events
                .iter()
                .filter(|e| e.event_type == EventType::FeatureStart)
                .map(|e| e.span_id.clone().unwrap())
                .collect();
            let commands: std::collections::BTreeSet<_> = events
                .iter()
                .filter(|e| matches!(e.event_type, EventType::CommandStart | EventType::Command))
                .map(|e| e.span_id.clone().unwrap())
                .collect();
            let ids: Vec<String> = spans.iter().map(|s| hex::encode(&s.span.span_id)).collect();
            let unique: std::collections::BTreeSet<_> = ids.iter().cloned().collect();
            assert_eq!(unique.len(), ids.len(), "{build}: duplicate span ids");
            assert_eq!(ids.len(), 1 + features.len() + commands.len(), "{build}");
            for s in &spans {
                assert!(
                    s.span.end_time_unix_nano >= s.span.start_time_unix_nano,
                    "{build}: {}",
                    s.span.name
                );
                assert!(s.span.events.len() <= 64);
            }
        }
    }

    #[test]
    fn span_events_are_bounded_and_counted() {
        let events = corpus_events("build-09-log-levels-2026-01");
        let unbounded = build_all(&events, usize::MAX, None);
        let bounded = build_all(&events, 1, None);
        let total = |spans: &[SpanOut]| -> u64 {
            spans
                .iter()
                .map(|s| s.span.events.len() as u64 + u64::from(s.span.dropped_events_count))
                .sum()
        };
        assert!(
            unbounded.iter().any(|s| s.span.events.len() > 1),
            "the build has spans with several warnings"
        );
        assert_eq!(total(&unbounded), total(&bounded));
        for s in &bounded {
            assert!(s.span.events.len() <= 1);
            if s.span.dropped_events_count > 0 {
                assert_eq!(
                    attr(&s.span, "build.span_events.dropped"),
                    Some(&any_value::Value::IntValue(
                        s.span.dropped_events_count.into()
                    ))
                );
            }
        }
    }

    #[test]
    fn traceparent_moves_the_trace_and_parents_the_build_span() {
        let events = corpus_events("build-01-success");
        let p = ParentContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .unwrap();
        let plain = build_all(&events, 64, None);
        let spans = build_all(&events, 64, Some(p));
        assert_eq!(plain.len(), spans.len());
        for (a, b) in plain.iter().zip(&spans) {
            assert_eq!(b.span.trace_id, p.trace_id.to_vec());
            assert_eq!(
                a.span.span_id, b.span.span_id,
                "span ids stay those of the events"
            );
        }
        assert_eq!(
            spans.last().unwrap().span.parent_span_id,
            p.span_id.to_vec()
        );
    }

    #[test]
    fn replaying_command_events_alone_sends_no_made_up_build_span() {
        let events = corpus_events("build-02-failure");
        let commands: Vec<_> = events
            .iter()
            .filter(|e| matches!(e.event_type, EventType::CommandStart | EventType::Command))
            .cloned()
            .collect();
        let spans = build_all(&commands, 64, None);
        assert_eq!(spans.len(), 4);
        assert!(spans
            .iter()
            .all(|s| attr(&s.span, "build.command.number").is_some()));
    }

    #[test]
    fn events_of_no_feature_go_to_the_build_span() {
        let events = corpus_events("build-02-failure");
        let mut stray = Event::new(EventType::Error, Level::Error, "", "registry unreachable");
        stray.correlation_id = events[0].correlation_id.clone();
        stray.timestamp = events[0].timestamp;
        let mut with_stray = events.clone();
        with_stray.push(Arc::new(stray));
        let spans = build_all(&with_stray, 64, None);
        assert_eq!(spans.len(), 7, "no extra span for an event of no feature");
        let root = &spans.last().unwrap().span;
        assert_eq!(root.events.len(), 1);
        assert_eq!(root.events[0].name, "error");
    }

    #[test]
    fn a_finished_features_span_goes_out_as_it_ends_an_aborted_ones_at_the_build_end() {
        // build-02: Golang finishes, Java Development aborts (its sentinel comes last).
        let events = corpus_events("build-02-failure");
        let mut b = SpanBuilder::new(64, None, "container-build");
        let mut out = Vec::new();
        let now = Instant::now();
        let golang_end = events
            .iter()
            .position(|e| e.event_type == EventType::FeatureEnd && e.feature == "Golang")
            .unwrap();
        for e in &events[..=golang_end] {
            b.push(e, now, &mut out);
        }
        let golang_id = hex8(events[golang_end].span_id.as_deref().unwrap()).unwrap();
        assert!(
            out.iter().any(|s| s.span.span_id == golang_id),
            "Golang's span waited"
        );
        for e in &events[golang_end + 1..] {
            b.push(e, now, &mut out);
        }
        let java = events
            .iter()
            .find(|e| e.event_type == EventType::FeatureStart && e.feature == "Java Development")
            .unwrap();
        let java_id = hex8(java.span_id.as_deref().unwrap()).unwrap();
        assert!(
            !out.iter().any(|s| s.span.span_id == java_id),
            "the aborted feature went out early"
        );
        b.finish(&mut out);
        let java_span = out.iter().find(|s| s.span.span_id == java_id).unwrap();
        assert_eq!(
            java_span.span.status.as_ref().unwrap().code,
            2,
            "error status from the sentinel"
        );
        // Each span once; the build span counts both features.
        let mut ids: Vec<_> = out.iter().map(|s| s.span.span_id.clone()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
        let build = out
            .iter()
            .find(|s| s.span.parent_span_id.is_empty())
            .unwrap();
        let features = build
            .span
            .attributes
            .iter()
            .find(|kv| kv.key.contains("feature"))
            .map(|kv| format!("{:?}", kv.value));
        assert!(
            features.is_some_and(|v| v.contains('2')),
            "{:?}",
            build.span.attributes
        );
    }

    #[test]
    fn idle_and_too_many_builds_end_builds() {
        let events = corpus_events("build-01-success");
        let mut b = SpanBuilder::new(8, None, "x");
        let mut out = Vec::new();
        let t0 = Instant::now();
        for e in &events {
            b.push(e, t0, &mut out);
        }
        let commands_only = out.len();
        b.flush_idle(
            t0 + Duration::from_secs(1),
            Duration::from_secs(5),
            &mut out,
        );
        assert_eq!((out.len(), b.open_builds()), (commands_only, 1));
        b.flush_idle(
            t0 + Duration::from_secs(6),
            Duration::from_secs(5),
            &mut out,
        );
        assert_eq!(b.open_builds(), 0);
        assert!(out.len() > commands_only);
        // Many builds at once: never more than MAX_OPEN_BUILDS open.
        let mut b = SpanBuilder::new(8, None, "x");
        for i in 0..(MAX_OPEN_BUILDS + 3) {
            let mut e = (*events[0]).clone();
            e.correlation_id = format!("build-{i}-aaaaaa").into();
            e.trace_id = None;
            e.span_id = None;
            b.push(&Arc::new(e), t0, &mut out);
        }
        assert_eq!(b.open_builds(), MAX_OPEN_BUILDS);
    }
}
