//! The JSON logger's files, read leniently.
//!
//! As written, its lines are not valid JSON: the metadata object is followed by a stray `}`,
//! messages are escaped twice (`Provider \\\"aws\\\"`, a tab as `\\t`), and control bytes
//! other than newline, CR and tab are written raw. Every line is repaired, never dropped:
//! one that cannot be repaired becomes a `message` event flagged `unparsed` with its text.

use super::FormatParser;
use crate::event::{Event, EventType, Level, Timestamp};
use crate::source::Line;
use serde_json::{Map, Value};

/// One line of `json/<feature>.jsonl` or `json/build-summary.jsonl`, or buildlog's own output.
pub fn parse_line(bytes: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Some(v);
    }
    let repaired = escape_raw_controls(text);
    // The first complete value; what follows may only be the logger's stray braces.
    let mut it = serde_json::Deserializer::from_str(&repaired).into_iter::<Value>();
    match it.next() {
        Some(Ok(v)) => {
            let rest = &repaired[it.byte_offset()..];
            rest.chars()
                .all(|c| c == '}' || c.is_whitespace())
                .then_some(v)
        }
        _ => None,
    }
}

/// Raw control bytes are legal nowhere in JSON text; inside strings they must be `\u00XX`.
fn escape_raw_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.bytes().any(|b| b < 0x20) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if (c as u32) < 0x20 {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Undoes the logger's second round of escaping, where there was one.
pub fn unescape_twice_escaped(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let quoted = format!("\"{}\"", escape_raw_controls(s));
    serde_json::from_str::<String>(&quoted).unwrap_or_else(|_| s.to_string())
}

fn level_of(s: &str) -> Level {
    match s {
        "DEBUG" => Level::Debug,
        "WARN" | "WARNING" => Level::Warn,
        "ERROR" => Level::Error,
        "FATAL" => Level::Fatal,
        _ => Level::Info,
    }
}

fn event_type_of(s: &str) -> Option<EventType> {
    EventType::ALL.into_iter().find(|t| t.as_str() == s)
}

/// The keys of the logger's `build-metadata.json` (`log_build_metadata`).
const METADATA_KEYS: &[&str] = &[
    "correlation_id",
    "timestamp",
    "base_image",
    "project_name",
    "platform",
    "architecture",
    "build_args",
];

/// Whether an object without `event_type` is the logger's build metadata: its
/// `correlation_id` and nothing but the metadata keys. Any other object is not the logger's,
/// and its line becomes an `unparsed` event rather than vanish.
fn is_build_metadata(obj: &Map<String, Value>) -> bool {
    obj.get("correlation_id").is_some_and(Value::is_string)
        && obj.keys().all(|k| METADATA_KEYS.contains(&k.as_str()))
}

/// What a JSON line is.
pub enum JsonRecord {
    /// A logger event (or one of buildlog's own): with the logger's correlation id.
    Event(Event, Option<String>),
    /// A `build-summary.jsonl` line.
    Summary(Event, Option<String>),
    /// `build-metadata.json`-like object: its correlation id.
    Metadata(Option<String>),
}

/// Converts one parsed JSON value. Events written by buildlog itself (they have `event_id`)
/// come back exactly as they were, so a dead-letter file or an earlier output can be replayed.
/// `None` when the value is not the logger's (an array, another program's object): the caller
/// keeps its line as an `unparsed` event.
pub fn to_record(v: Value) -> Option<JsonRecord> {
    let obj = v.as_object()?;
    if obj.contains_key("event_id") && obj.contains_key("seq") {
        let e: Event = serde_json::from_value(v.clone()).ok()?;
        let id = Some(e.correlation_id.to_string());
        return Some(JsonRecord::Event(e, id));
    }
    if let (Some(_), Some(ev)) = (obj.get("sink"), obj.get("event")) {
        // A dead-letter record: replay its event.
        return to_record(ev.clone());
    }
    let corr = obj
        .get("correlation_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let ts = obj
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(Timestamp::parse_rfc3339);
    let Some(et) = obj.get("event_type").and_then(Value::as_str) else {
        if obj.contains_key("commands") && obj.contains_key("feature") {
            let feature = obj
                .get("feature")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let num = |k: &str| obj.get(k).and_then(Value::as_u64);
            let errors = num("errors").unwrap_or(0);
            let mut e = Event::new(
                EventType::BuildSummary,
                if errors == 0 {
                    Level::Info
                } else {
                    Level::Warn
                },
                feature.clone(),
                format!(
                    "{}: {} errors, {} warnings ({}s)",
                    feature,
                    errors,
                    num("warnings").unwrap_or(0),
                    num("duration_seconds").unwrap_or(0)
                ),
            );
            for k in ["errors", "warnings", "duration_seconds"] {
                if let Some(n) = num(k) {
                    e.metadata.insert(k.into(), n.into());
                }
            }
            if let Some(s) = obj.get("status") {
                e.metadata.insert("status".into(), s.clone());
            }
            e.error_count = num("errors");
            e.warning_count = num("warnings");
            e.command_count = num("commands");
            e.duration_ms = num("duration_seconds").map(|s| s * 1000);
            e.timestamp = ts.unwrap_or_default();
            return Some(JsonRecord::Summary(e, corr));
        }
        return is_build_metadata(obj).then_some(JsonRecord::Metadata(corr));
    };
    let event_type = event_type_of(et).unwrap_or(EventType::Message);
    let feature = obj
        .get("feature")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let message = obj
        .get("message")
        .and_then(Value::as_str)
        .map(unescape_twice_escaped)
        .unwrap_or_default();
    let mut e = Event::new(
        event_type,
        level_of(obj.get("level").and_then(Value::as_str).unwrap_or("INFO")),
        feature,
        message,
    );
    e.timestamp = ts.unwrap_or_default();
    e.metadata = obj
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(Map::new)
        .into();
    let m = &e.metadata;
    let num = |k: &str| m.get(k).and_then(Value::as_u64);
    e.command_num = num("command_num").map(|n| n as u32);
    match event_type {
        EventType::FeatureStart => {
            e.version = m
                .get("version")
                .and_then(Value::as_str)
                .filter(|v| *v != "unknown")
                .map(str::to_string)
        }
        EventType::Command => e.duration_ms = num("duration_seconds").map(|s| s * 1000),
        EventType::FeatureEnd => {
            e.duration_ms = num("duration_seconds").map(|s| s * 1000);
            e.command_count = num("commands_executed");
            e.error_count = num("errors");
            e.warning_count = num("warnings");
        }
        EventType::Warning => e.warning_count = num("warning_count"),
        EventType::Error => e.error_count = num("error_count"),
        _ => {}
    }
    if event_type_of(et).is_none() {
        e.details.insert("logger_event_type".into(), et.into());
    }
    Some(JsonRecord::Event(e, corr))
}

/// A pretty-printed object longer than this is not one (`build-metadata.json` is about 1 KiB):
/// what was collected is given back as `unparsed` lines.
const MAX_PENDING: usize = 1 << 20;

/// A stream of JSON lines as events (used for `--format json` and stdin).
#[derive(Default)]
pub struct JsonParser {
    /// Lines of a pretty-printed object (`build-metadata.json`) being collected.
    pending: Vec<u8>,
    pending_line: u64,
}

impl JsonParser {
    /// The collected lines of a pretty-printed object that is not the logger's metadata.
    fn flush_pending(&mut self, incomplete: bool, out: &mut Vec<Event>) {
        if self.pending.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.pending);
        let text = text.strip_suffix(b"\n").unwrap_or(&text);
        match serde_json::from_slice::<Value>(text).ok().map(to_record) {
            Some(Some(JsonRecord::Metadata(_))) => {}
            Some(Some(JsonRecord::Event(mut e, corr) | JsonRecord::Summary(mut e, corr))) => {
                if e.correlation_id.is_empty() {
                    e.logger_correlation_id = corr;
                }
                if e.event_id.is_empty() {
                    e.source.line = self.pending_line;
                }
                out.push(e);
            }
            _ => {
                let (decoded, invalid) = super::text::decode(text);
                let mut e = Event::new(EventType::Message, Level::Warn, "", decoded.to_string());
                e.metadata.insert("unparsed".into(), true.into());
                e.incomplete = incomplete;
                e.invalid_utf8 = invalid;
                e.source.line = self.pending_line;
                out.push(e);
            }
        }
    }
}

impl FormatParser for JsonParser {
    fn line(&mut self, line: &Line<'_>, out: &mut Vec<Event>) {
        if !self.pending.is_empty() || line.bytes == b"{" {
            if self.pending.is_empty() {
                self.pending_line = line.number;
            }
            self.pending.extend_from_slice(line.bytes);
            self.pending.push(b'\n');
            if line.bytes == b"}" {
                self.flush_pending(false, out);
            } else if self.pending.len() > MAX_PENDING {
                self.flush_pending(true, out);
            }
            return;
        }
        match parse_line(line.bytes).and_then(to_record) {
            Some(JsonRecord::Event(mut e, corr)) | Some(JsonRecord::Summary(mut e, corr)) => {
                if e.correlation_id.is_empty() {
                    if let Some(c) = corr {
                        e.logger_correlation_id = Some(c);
                    }
                }
                if e.event_id.is_empty() {
                    e.source.line = line.number;
                }
                out.push(e);
            }
            Some(JsonRecord::Metadata(_)) => {}
            None if line.bytes.iter().all(|b| b.is_ascii_whitespace()) => {}
            None => {
                let (text, invalid) = super::text::decode(line.bytes);
                let mut e = Event::new(EventType::Message, Level::Warn, "", text.to_string());
                e.metadata.insert("unparsed".into(), true.into());
                super::text::mark_line(&mut e, line, invalid);
                out.push(e);
            }
        }
    }
    fn finish(&mut self, out: &mut Vec<Event>) {
        self.flush_pending(true, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_the_stray_brace_and_double_escaping() {
        let line = br#"{"timestamp":"2026-10-21T13:37:00.999Z","level":"WARN","correlation_id":"build-1792589820-odenp9","event_type":"warning","feature":"Terraform","message":"Provider \\\"hashicorp/aws\\\" constraint","metadata":{"warning_count":4}}}"#;
        let v = parse_line(line).unwrap();
        let Some(JsonRecord::Event(e, corr)) = to_record(v) else {
            panic!()
        };
        assert_eq!(e.message, "Provider \"hashicorp/aws\" constraint");
        assert_eq!(e.metadata["warning_count"], 4);
        assert_eq!(corr.as_deref(), Some("build-1792589820-odenp9"));
        assert_eq!(e.timestamp.to_rfc3339(), "2026-10-21T13:37:00.999Z");
    }

    #[test]
    fn raw_control_bytes_survive() {
        let line = b"{\"event_type\":\"warning\",\"message\":\"tflint \x1b[33m2\x1b[0m\\\\ttab\x01soh\",\"metadata\":{}}}";
        let Some(JsonRecord::Event(e, _)) = to_record(parse_line(line).unwrap()) else {
            panic!()
        };
        assert_eq!(e.message, "tflint \x1b[33m2\x1b[0m\ttab\x01soh");
    }

    #[test]
    fn objects_that_are_not_the_loggers_are_kept_as_unparsed_lines() {
        let mut p = JsonParser::default();
        let mut out = Vec::new();
        let lines: [&[u8]; 7] = [
            br#"{"level":"info","msg":"x"}"#,
            b"[1,2]",
            br#"{"password":"p"}"#,
            br#"{"correlation_id":"build-1-abcdef","base_image":"debian"}"#,
            b"{",
            br#"  "token": "t""#,
            b"}",
        ];
        for (i, l) in lines.iter().enumerate() {
            p.line(
                &Line {
                    bytes: l,
                    number: i as u64 + 1,
                    original_len: None,
                    unterminated: false,
                },
                &mut out,
            );
        }
        p.finish(&mut out);
        let got: Vec<(&str, u64)> = out
            .iter()
            .map(|e| (e.message.as_str(), e.source.line))
            .collect();
        assert_eq!(
            got,
            [
                (r#"{"level":"info","msg":"x"}"#, 1),
                ("[1,2]", 2),
                (r#"{"password":"p"}"#, 3),
                ("{\n  \"token\": \"t\"\n}", 5),
            ]
        );
        assert!(out.iter().all(|e| e.metadata["unparsed"] == true));
    }

    #[test]
    fn garbage_is_not_json() {
        assert!(parse_line(b"{\"a\":").is_none());
        assert!(parse_line(b"{\"a\":1} x").is_none());
    }
}
