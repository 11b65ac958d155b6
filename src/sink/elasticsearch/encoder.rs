//! Events to `_bulk` NDJSON: one action line and one document line per event.
//!
//! The `_id` is the event's deterministic `event_id`, which is what makes re-importing the
//! same logs a no-op (a `create` of an existing `_id` is answered 409). No `_type` is ever
//! written: Elasticsearch 8 and OpenSearch 2 have no mapping types.

use crate::event::{civil_from_days, write_json_string, Event, EventType, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};

/// The shape of the documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Schema {
    /// The event exactly as `buildlog convert` writes it, with `@timestamp` added.
    #[default]
    Native,
    /// Elastic Common Schema fields; the build's own fields under `container_build`.
    Ecs,
}

/// The bulk action for each document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Action {
    /// Store only if the `_id` is new (409 otherwise): idempotent. Data streams accept only this.
    #[default]
    Create,
    /// Store or replace the document with that `_id`.
    Index,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Index => "index",
        }
    }
}

/// Where documents go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A data stream (`create` only, `@timestamp` required).
    DataStream(String),
    /// An index name, possibly with a date pattern rendered from each event's time.
    Index(IndexPattern),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Year,
    Month,
    Day,
    Hour,
}

/// An index name with `strftime`-like date fields (`%Y %m %d %H %%`), rendered in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPattern {
    parts: Vec<Part>,
}

impl IndexPattern {
    /// Parses and validates a pattern. Index names must be lower case and must not hold
    /// `\ / * ? " < > | , # :` or spaces, nor start with `-`, `_` or `+`.
    pub fn parse(pattern: &str) -> Result<IndexPattern, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                if c.is_uppercase() || "\\/*?\"<>|,#: ".contains(c) {
                    return Err(format!(
                        "index name {pattern:?}: {c:?} is not allowed in an index name (lower case, no \\ / * ? \" < > | , # : or space)"
                    ));
                }
                lit.push(c);
                continue;
            }
            let part = match chars.next() {
                Some('Y') => Part::Year,
                Some('m') => Part::Month,
                Some('d') => Part::Day,
                Some('H') => Part::Hour,
                Some('%') => {
                    return Err(format!(
                        "index name {pattern:?}: '%' is not allowed in an index name"
                    ))
                }
                other => {
                    return Err(format!(
                        "index name {pattern:?}: unknown date field %{} (use %Y, %m, %d, %H)",
                        other.map(String::from).unwrap_or_default()
                    ))
                }
            };
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(part);
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        match parts.first() {
            None => return Err("the index name is empty".into()),
            Some(Part::Lit(l)) if l.starts_with(['-', '_', '+']) || l == "." || l == ".." => {
                return Err(format!(
                    "index name {pattern:?} must not start with '-', '_' or '+'"
                ))
            }
            _ => {}
        }
        Ok(IndexPattern { parts })
    }

    /// True when the name does not depend on the event's time.
    pub fn is_fixed(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// The index name for an event at `ts` (UTC).
    pub fn render(&self, ts: Timestamp, out: &mut String) {
        let secs = ts.seconds();
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let h = secs.rem_euclid(86_400) / 3600;
        use std::fmt::Write;
        for p in &self.parts {
            let _ = match p {
                Part::Lit(l) => {
                    out.push_str(l);
                    Ok(())
                }
                Part::Year => write!(out, "{y:04}"),
                Part::Month => write!(out, "{m:02}"),
                Part::Day => write!(out, "{d:02}"),
                Part::Hour => write!(out, "{h:02}"),
            };
        }
    }
}

/// Turns events into bulk lines. Cheap to share: it holds only configuration.
#[derive(Debug, Clone)]
pub struct Encoder {
    target: Target,
    action: Action,
    schema: Schema,
    service_name: String,
    /// `(type, dataset, namespace)` of a data stream named `type-dataset-namespace`, for ECS.
    data_stream: Option<(String, String, String)>,
    /// ECS `host.name`: the machine the shipper runs on (the build host when following).
    host_name: Option<String>,
    /// `{"create":{"_index":` and, for a data stream, its name: the same bytes at the head of
    /// every action line, escaped once.
    action_head: Vec<u8>,
}

impl Encoder {
    /// Sets ECS `host.name`.
    pub fn with_host_name(mut self, host: Option<String>) -> Self {
        self.host_name = host.filter(|h| !h.is_empty());
        self
    }

    pub fn new(target: Target, action: Action, schema: Schema, service_name: String) -> Self {
        let data_stream = match &target {
            Target::DataStream(name) => {
                let mut it = name.splitn(3, '-');
                match (it.next(), it.next(), it.next()) {
                    (Some(t), Some(d), Some(n))
                        if !t.is_empty() && !d.is_empty() && !n.is_empty() =>
                    {
                        Some((t.to_string(), d.to_string(), n.to_string()))
                    }
                    _ => None,
                }
            }
            Target::Index(_) => None,
        };
        let mut action_head = format!("{{\"{}\":{{\"_index\":", action.as_str()).into_bytes();
        if let Target::DataStream(name) = &target {
            write_json_string(&mut action_head, name);
        }
        Encoder {
            target,
            action,
            schema,
            service_name,
            data_stream,
            host_name: None,
            action_head,
        }
    }

    pub fn action(&self) -> Action {
        self.action
    }

    /// Appends the action line and the document line (both newline-terminated) to `out`.
    pub fn encode(&self, event: &Event, out: &mut Vec<u8>) {
        self.encode_action(event, out);
        self.encode_document(event, out);
    }

    /// `{"create":{"_index":"...","_id":"..."}}` and a newline.
    pub fn encode_action(&self, event: &Event, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.action_head);
        if let Target::Index(pattern) = &self.target {
            // Named by the event's date: rendered per event.
            let mut name = String::with_capacity(32);
            pattern.render(event.timestamp, &mut name);
            write_json_string(out, &name);
        }
        // An event without an id (hand-made input) gets one from the server: not idempotent.
        if !event.event_id.is_empty() {
            out.extend_from_slice(b",\"_id\":");
            write_json_string(out, &event.event_id);
        }
        out.extend_from_slice(b"}}\n");
    }

    /// The document and a newline.
    pub fn encode_document(&self, event: &Event, out: &mut Vec<u8>) {
        match self.schema {
            Schema::Native => {
                // `{"@timestamp":"...",` followed by the event's own JSON without its `{`:
                // one serialisation, no intermediate `Value`.
                out.extend_from_slice(b"{\"@timestamp\":\"");
                event.timestamp.write_rfc3339_bytes(out);
                out.push(b'"');
                let start = out.len();
                event.write_json_line(out);
                // The event's JSON is an object with fields: its `{` becomes the `,` after
                // `@timestamp`, in place.
                out[start] = b',';
            }
            Schema::Ecs => {
                let doc = EcsDoc::new(
                    event,
                    &self.service_name,
                    self.data_stream.as_ref(),
                    self.host_name.as_deref(),
                );
                serde_json::to_writer(&mut *out, &doc).expect("an ECS document always serialises");
                out.push(b'\n');
            }
        }
    }
}

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "8.11.0";

#[derive(Serialize)]
struct EcsDoc<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: Timestamp,
    message: &'a str,
    ecs: EcsVersion,
    log: EcsLog<'a>,
    event: EcsEvent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<EcsId<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span: Option<EcsId<'a>>,
    service: EcsService<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<EcsHost<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<EcsProcess<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_stream: Option<EcsDataStream<'a>>,
    labels: EcsLabels<'a>,
    container_build: BuildFields<'a>,
}

#[derive(Serialize)]
struct EcsVersion {
    version: &'static str,
}

#[derive(Serialize)]
struct EcsLog<'a> {
    level: &'static str,
    file: EcsFile<'a>,
}

#[derive(Serialize)]
struct EcsFile<'a> {
    path: &'a str,
}

#[derive(Serialize)]
struct EcsEvent<'a> {
    id: &'a str,
    kind: &'static str,
    dataset: &'a str,
    action: &'static str,
    #[serde(rename = "type")]
    types: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    /// Nanoseconds, as ECS wants.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<u64>,
    sequence: u64,
    /// The log line as it was written (control bytes kept, secrets scrubbed).
    original: &'a str,
}

#[derive(Serialize)]
struct EcsId<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct EcsHost<'a> {
    name: &'a str,
}

/// ECS `process`: the command a `command_start` or `command` event is about.
#[derive(Serialize)]
struct EcsProcess<'a> {
    command_line: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i64>,
}

#[derive(Serialize)]
struct EcsService<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct EcsDataStream<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    dataset: &'a str,
    namespace: &'a str,
}

/// ECS `labels`: low-cardinality keywords only.
#[derive(Serialize)]
struct EcsLabels<'a> {
    feature: &'a str,
    event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'a str>,
}

#[derive(Serialize)]
struct BuildFields<'a> {
    correlation_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    logger_correlation_id: Option<&'a str>,
    event_type: &'static str,
    feature: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_num: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning_count: Option<u64>,
    seq: u64,
    #[serde(skip_serializing_if = "Map::is_empty")]
    metadata: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    details: &'a Map<String, Value>,
    source: &'a crate::event::SourceRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_length: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    invalid_utf8: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    incomplete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    diagnostic: Option<&'static str>,
}

/// The dataset when the target is not a data stream.
const DATASET: &str = "container_build";

impl<'a> EcsDoc<'a> {
    fn new(
        e: &'a Event,
        service_name: &'a str,
        data_stream: Option<&'a (String, String, String)>,
        host_name: Option<&'a str>,
    ) -> Self {
        EcsDoc {
            timestamp: e.timestamp,
            message: &e.message,
            ecs: EcsVersion {
                version: ECS_VERSION,
            },
            log: EcsLog {
                level: e.level.as_lower(),
                file: EcsFile {
                    path: &e.source.file,
                },
            },
            event: EcsEvent {
                id: &e.event_id,
                kind: "event",
                dataset: data_stream.map_or(DATASET, |d| d.1.as_str()),
                action: e.event_type.as_str(),
                types: [ecs_type(e.event_type)],
                outcome: outcome(e),
                duration: duration_ms(e).map(|ms| ms.saturating_mul(1_000_000)),
                sequence: e.seq,
                original: e.raw.as_deref().unwrap_or(&e.message),
            },
            host: host_name.map(|name| EcsHost { name }),
            process: process(e),
            trace: e.trace_id.as_deref().map(|id| EcsId { id }),
            span: e.span_id.as_deref().map(|id| EcsId { id }),
            service: EcsService { name: service_name },
            data_stream: data_stream.map(|(t, d, n)| EcsDataStream {
                kind: t,
                dataset: d,
                namespace: n,
            }),
            labels: EcsLabels {
                feature: &e.feature,
                event_type: e.event_type.as_str(),
                stage: e.stage.as_deref(),
            },
            container_build: BuildFields {
                correlation_id: &e.correlation_id,
                logger_correlation_id: e.logger_correlation_id.as_deref(),
                event_type: e.event_type.as_str(),
                feature: &e.feature,
                version: e.version.as_deref(),
                stage: e.stage.as_deref(),
                command_num: e.command_num,
                duration_ms: e.duration_ms,
                command_count: e.command_count,
                error_count: e.error_count,
                warning_count: e.warning_count,
                seq: e.seq,
                metadata: &e.metadata,
                details: &e.details,
                source: &e.source,
                raw: e.raw.as_deref(),
                truncated: e.truncated,
                original_length: e.original_length,
                invalid_utf8: e.invalid_utf8,
                incomplete: e.incomplete,
                diagnostic: e.diagnostic.map(|d| d.as_str()),
            },
        }
    }
}

/// The command of a command event: `metadata.command` (`command_start`, as the logger
/// writes it) or `details.command` (`command`), with the exit code where known.
fn process(e: &Event) -> Option<EcsProcess<'_>> {
    if !matches!(e.event_type, EventType::CommandStart | EventType::Command) {
        return None;
    }
    let command_line = e
        .metadata
        .get("command")
        .or_else(|| e.details.get("command"))
        .and_then(Value::as_str)?;
    Some(EcsProcess {
        command_line,
        exit_code: e.metadata.get("exit_code").and_then(Value::as_i64),
    })
}

/// ECS `event.type` (an allowed value) for each event type.
fn ecs_type(t: EventType) -> &'static str {
    match t {
        EventType::FeatureStart | EventType::CommandStart | EventType::BuildStart => "start",
        EventType::FeatureEnd
        | EventType::Command
        | EventType::BuildSummary
        | EventType::BuildEnd => "end",
        EventType::Error | EventType::BuildFailure => "error",
        _ => "info",
    }
}

/// `success`/`failure` where the event says how something ended.
fn outcome(e: &Event) -> Option<&'static str> {
    let ok = match e.event_type {
        EventType::Command => e.metadata.get("success").and_then(Value::as_bool)?,
        EventType::FeatureEnd | EventType::BuildSummary | EventType::BuildEnd => {
            e.metadata.get("status").and_then(Value::as_str)? == "success"
        }
        EventType::BuildFailure => false,
        _ => return None,
    };
    Some(if ok { "success" } else { "failure" })
}

/// The event's duration: `duration_ms`, else the logger's `duration_seconds`.
fn duration_ms(e: &Event) -> Option<u64> {
    e.duration_ms.or_else(|| {
        let s = e.metadata.get("duration_seconds")?;
        s.as_u64().map(|s| s.saturating_mul(1000)).or_else(|| {
            s.as_f64()
                .filter(|f| *f >= 0.0)
                .map(|f| (f * 1000.0) as u64)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Level, SourceRef};
    use serde_json::json;

    fn event() -> Event {
        let mut e = Event::new(
            EventType::Command,
            Level::Info,
            "Python",
            "Installing pip\n\"x\"",
        )
        .with_meta("command_num", 3)
        .with_meta("exit_code", 0)
        .with_meta("duration_seconds", 2)
        .with_meta("success", true);
        e.timestamp = Timestamp::parse_rfc3339("2025-11-16T23:59:59.123Z").unwrap();
        e.correlation_id = "build-1763321440-abc123".into();
        e.event_id = "ev-0001".into();
        e.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        e.span_id = Some("00f067aa0ba902b7".into());
        e.command_num = Some(3);
        e.duration_ms = Some(2000);
        e.seq = 42;
        e.source = SourceRef {
            file: "python-install.log".into(),
            line: 17,
        };
        e
    }

    fn lines(out: &[u8]) -> Vec<Value> {
        std::str::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn data_stream_create_with_event_id() {
        let enc = Encoder::new(
            Target::DataStream("logs-container_build-default".into()),
            Action::Create,
            Schema::Native,
            "container-build".into(),
        );
        let mut out = Vec::new();
        enc.encode(&event(), &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 2);
        assert!(out.ends_with(b"\n"));
        let l = lines(&out);
        assert_eq!(
            l[0],
            json!({"create": {"_index": "logs-container_build-default", "_id": "ev-0001"}})
        );
        // Native: the event as convert writes it, plus @timestamp.
        let mut expected: Value = serde_json::from_str(&event().to_json()).unwrap();
        expected["@timestamp"] = json!("2025-11-16T23:59:59.123Z");
        assert_eq!(l[1], expected);
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .contains("{\"@timestamp\":\"2025-11-16T23:59:59.123Z\",\"timestamp\":"));
    }

    #[test]
    fn dated_index_from_event_time_in_utc() {
        let p = IndexPattern::parse("build-logs-%Y.%m.%d").unwrap();
        assert!(!p.is_fixed());
        let enc = Encoder::new(Target::Index(p), Action::Index, Schema::Native, "s".into());
        let mut out = Vec::new();
        enc.encode(&event(), &mut out);
        assert_eq!(
            lines(&out)[0],
            json!({"index": {"_index": "build-logs-2025.11.16", "_id": "ev-0001"}})
        );
        let mut s = String::new();
        IndexPattern::parse("x-%Y%m%d%H").unwrap().render(
            Timestamp::parse_rfc3339("2026-01-02T03:04:05Z").unwrap(),
            &mut s,
        );
        assert_eq!(s, "x-2026010203");
    }

    #[test]
    fn bad_index_names_are_refused() {
        for bad in [
            "Build-Logs",
            "a b",
            "a/b",
            "_x",
            "-x",
            "logs-%q",
            "logs-%",
            "",
            "a*",
        ] {
            assert!(IndexPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(IndexPattern::parse("build-logs").unwrap().is_fixed());
    }

    #[test]
    fn ecs_document_fields() {
        let enc = Encoder::new(
            Target::DataStream("logs-container_build-default".into()),
            Action::Create,
            Schema::Ecs,
            "container-build".into(),
        );
        let mut out = Vec::new();
        enc.encode(&event(), &mut out);
        let doc = &lines(&out)[1];
        assert_eq!(doc["@timestamp"], "2025-11-16T23:59:59.123Z");
        assert_eq!(doc["message"], "Installing pip\n\"x\"");
        assert_eq!(doc["log"]["level"], "info");
        assert_eq!(doc["event"]["dataset"], "container_build");
        assert_eq!(doc["event"]["kind"], "event");
        assert_eq!(doc["event"]["action"], "command");
        assert_eq!(doc["event"]["outcome"], "success");
        assert_eq!(doc["event"]["duration"], 2_000_000_000u64);
        assert_eq!(doc["event"]["id"], "ev-0001");
        assert_eq!(doc["trace"]["id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(doc["span"]["id"], "00f067aa0ba902b7");
        assert_eq!(doc["service"]["name"], "container-build");
        assert_eq!(doc["labels"]["feature"], "Python");
        assert_eq!(
            doc["data_stream"],
            json!({"type": "logs", "dataset": "container_build", "namespace": "default"})
        );
        assert_eq!(
            doc["container_build"]["correlation_id"],
            "build-1763321440-abc123"
        );
        assert_eq!(doc["container_build"]["command_num"], 3);
        assert_eq!(doc["container_build"]["metadata"]["exit_code"], 0);
        assert_eq!(doc["container_build"]["source"]["line"], 17);
        // no host given: no host.name; no command text: no process
        assert!(doc.get("host").is_none() && doc.get("process").is_none());
        assert_eq!(doc["event"]["original"], "Installing pip\n\"x\"");
        // Nothing of ours at the top level besides ECS fields.
        let keys: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in &keys {
            assert!(
                [
                    "@timestamp",
                    "message",
                    "ecs",
                    "log",
                    "event",
                    "trace",
                    "span",
                    "service",
                    "host",
                    "process",
                    "data_stream",
                    "labels",
                    "container_build"
                ]
                .contains(k),
                "{k}"
            );
        }
    }

    #[test]
    fn ecs_original_host_and_process() {
        let enc = Encoder::new(
            Target::DataStream("logs-container_build-default".into()),
            Action::Create,
            Schema::Ecs,
            "container-build".into(),
        )
        .with_host_name(Some("ci-runner-7".into()));
        let mut e = event().with_meta("exit_code", 2);
        e.details
            .insert("command".into(), "pip install -r requirements.txt".into());
        e.raw = Some("\u{1b}[31mInstalling pip\u{1b}[0m".into());
        let mut out = Vec::new();
        enc.encode(&e, &mut out);
        let doc = &lines(&out)[1];
        assert_eq!(doc["host"]["name"], "ci-runner-7");
        assert_eq!(
            doc["process"]["command_line"],
            "pip install -r requirements.txt"
        );
        assert_eq!(doc["process"]["exit_code"], 2);
        assert_eq!(
            doc["event"]["original"],
            "\u{1b}[31mInstalling pip\u{1b}[0m"
        );
        // a command_start carries the command in metadata, and no exit code yet
        let mut s = Event::new(
            EventType::CommandStart,
            Level::Info,
            "Python",
            "Installing pip",
        )
        .with_meta("command", "bash -c 'pip install x'");
        s.event_id = "y".into();
        let mut out = Vec::new();
        enc.encode(&s, &mut out);
        let doc = &lines(&out)[1];
        assert_eq!(doc["process"]["command_line"], "bash -c 'pip install x'");
        assert!(doc["process"].get("exit_code").is_none());
        // other events have no process
        let o = Event::new(EventType::Output, Level::Info, "Python", "Collecting pip");
        let mut out = Vec::new();
        enc.encode(&o, &mut out);
        assert!(lines(&out)[1].get("process").is_none());
    }

    #[test]
    fn ecs_build_end_and_diagnostics() {
        let enc = Encoder::new(
            Target::Index(IndexPattern::parse("build-logs").unwrap()),
            Action::Create,
            Schema::Ecs,
            "svc".into(),
        );
        let mut e = Event::new(EventType::BuildEnd, Level::Error, "", "Build failed")
            .with_meta("status", "failed");
        e.event_id = "b".into();
        e.duration_ms = Some(2051);
        let mut out = Vec::new();
        enc.encode(&e, &mut out);
        let doc = &lines(&out)[1];
        assert_eq!(doc["event"]["outcome"], "failure");
        assert_eq!(doc["event"]["type"], json!(["end"]));
        assert_eq!(doc["event"]["action"], "build_end");
        assert_eq!(doc["event"]["duration"], 2_051_000_000u64);
        let mut o = Event::new(EventType::Output, Level::Info, "Java", "E: jdtls archive");
        o.event_id = "o".into();
        o.diagnostic = Some(crate::event::Diagnostic::Error);
        let mut out = Vec::new();
        enc.encode(&o, &mut out);
        assert_eq!(lines(&out)[1]["container_build"]["diagnostic"], "error");
    }

    #[test]
    fn ecs_duration_from_logger_seconds_and_failed_outcome() {
        let mut e = Event::new(EventType::FeatureEnd, Level::Error, "Golang", "done")
            .with_meta("duration_seconds", 7)
            .with_meta("status", "failed");
        e.event_id = "x".into();
        let enc = Encoder::new(
            Target::Index(IndexPattern::parse("build-logs").unwrap()),
            Action::Create,
            Schema::Ecs,
            "svc".into(),
        );
        let mut out = Vec::new();
        enc.encode(&e, &mut out);
        let doc = &lines(&out)[1];
        assert_eq!(doc["event"]["duration"], 7_000_000_000u64);
        assert_eq!(doc["event"]["outcome"], "failure");
        assert_eq!(doc["event"]["type"], json!(["end"]));
        assert_eq!(doc["log"]["level"], "error");
        assert!(doc.get("trace").is_none());
        assert!(doc.get("data_stream").is_none());
        assert_eq!(doc["event"]["dataset"], "container_build");
    }

    #[test]
    fn control_bytes_stay_on_one_line() {
        let mut e = event();
        e.message = "a\nb\r\u{0}\u{1b}[31m".into();
        e.raw = Some("x\ny".into());
        for schema in [Schema::Native, Schema::Ecs] {
            let enc = Encoder::new(
                Target::DataStream("logs-container_build-default".into()),
                Action::Create,
                schema,
                "s".into(),
            );
            let mut out = Vec::new();
            enc.encode(&e, &mut out);
            let l = lines(&out);
            assert_eq!(l.len(), 2);
            assert_eq!(l[1]["message"], "a\nb\r\u{0}\u{1b}[31m");
        }
    }

    #[test]
    fn event_without_id_gets_no_id() {
        let e = Event::new(EventType::Output, Level::Info, "F", "m");
        let enc = Encoder::new(
            Target::DataStream("logs-a-b".into()),
            Action::Create,
            Schema::Native,
            "s".into(),
        );
        let mut out = Vec::new();
        enc.encode_action(&e, &mut out);
        assert_eq!(out, b"{\"create\":{\"_index\":\"logs-a-b\"}}\n");
    }
}
