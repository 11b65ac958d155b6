//! Events to Loki push bodies: streams by label set, one entry per event with a nanosecond
//! timestamp, a line and structured metadata; then protobuf + snappy or JSON (+ gzip).
//!
//! Timestamps: the event's millisecond time plus its `seq` (mod 10^6) as nanoseconds. Loki
//! keeps one of several entries with the same timestamp and line in a stream, so the
//! tiebreak keeps repeated output lines apart, while the same input always gives the same
//! timestamps: shipping a file twice stores it once.

use super::config::{LabelValue, LineFormat, LokiConfig, LokiEncoding, MAX_LABEL_VALUE_LEN};
use super::proto::{EntryAdapter, LabelPairAdapter, StreamAdapter, Timestamp};
use crate::event::Event;
use bytes::Bytes;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// Turns one event into a stream key and an entry. Stateless, so the same event always gives
/// the same entry (what idempotent re-shipping relies on).
#[derive(Debug, Clone)]
pub struct Encoder {
    labels: Vec<(String, LabelValue)>,
    structured_metadata: bool,
    /// Only these identifiers as structured metadata (the others go into the line); `None`:
    /// all of them.
    sm_keys: Option<Vec<String>>,
    line_format: LineFormat,
    max_line_bytes: usize,
}

/// The nanosecond timestamp of an event in Loki: its millisecond time and `seq` as tiebreak.
pub fn entry_timestamp(e: &Event) -> Timestamp {
    Timestamp::from_nanos(e.timestamp.nanos() + (e.seq % 1_000_000) as i128)
}

/// Appends `v` as a double-quoted label value (Prometheus text syntax).
fn quote_into(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}

/// Cuts `line` to at most `max` bytes, ending it with a marker that gives the original length.
pub fn cut_line(line: &mut String, max: usize) {
    if line.len() <= max {
        return;
    }
    let marker = format!(" …[cut by buildlog: {} bytes]", line.len());
    let keep = prefix(line, max.saturating_sub(marker.len())).len();
    line.truncate(keep);
    line.push_str(&marker);
}

const FIELD_MARKER: &str = " …[cut by buildlog]";

/// The JSON event, made to fit `max` bytes by cutting its longest text fields (so it stays
/// valid JSON, flagged `truncated`); a hard cut with a marker only if that cannot work.
fn json_line(e: &Event, max: usize) -> String {
    let line = e.to_json();
    if line.len() <= max {
        return line;
    }
    let mut e = e.clone();
    e.truncated = true;
    if e.original_length.is_none() {
        let longest = e.message.len().max(e.raw.as_ref().map_or(0, String::len));
        e.original_length = Some(longest as u64);
    }
    let mut len = line.len();
    for _ in 0..8 {
        let over = len - max + FIELD_MARKER.len();
        let field = match &mut e.raw {
            Some(raw) if raw.len() > e.message.len() => raw,
            _ => &mut e.message,
        };
        if field.len() <= FIELD_MARKER.len() {
            break;
        }
        let keep = prefix(field, field.len().saturating_sub(over)).len();
        field.truncate(keep);
        field.push_str(FIELD_MARKER);
        let line = e.to_json();
        if line.len() <= max {
            return line;
        }
        len = line.len();
    }
    let mut line = e.to_json();
    cut_line(&mut line, max);
    line
}

/// logfmt value: bare when safe, else quoted with `\"`, `\\` and control characters escaped.
fn logfmt_value(out: &mut String, v: &str) {
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| c > ' ' && c != '"' && c != '=' && c != '\\' && c != '\u{7f}');
    if bare {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn logfmt_pair(out: &mut String, k: &str, v: &str) {
    if !out.is_empty() && !out.ends_with('\t') {
        out.push(' ');
    }
    out.push_str(k);
    out.push('=');
    logfmt_value(out, v);
}

/// The identifiers that go as structured metadata (or into the line without it), in a
/// fixed order; absent or empty values are left out.
fn identifiers(e: &Event) -> impl Iterator<Item = (&'static str, std::borrow::Cow<'_, str>)> {
    use std::borrow::Cow;
    [
        (
            "correlation_id",
            Some(Cow::Borrowed(e.correlation_id.as_str())),
        ),
        ("event_type", Some(Cow::Borrowed(e.event_type.as_str()))),
        (
            "command_num",
            e.command_num.map(|n| Cow::Owned(n.to_string())),
        ),
        ("event_id", Some(Cow::Borrowed(e.event_id.as_str()))),
        ("trace_id", e.trace_id.as_deref().map(Cow::Borrowed)),
        ("span_id", e.span_id.as_deref().map(Cow::Borrowed)),
        (
            "logger_correlation_id",
            e.logger_correlation_id.as_deref().map(Cow::Borrowed),
        ),
        (
            "diagnostic",
            e.diagnostic.map(|d| Cow::Borrowed(d.as_str())),
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
}

impl Encoder {
    pub fn new(cfg: &LokiConfig) -> Self {
        Encoder {
            labels: cfg.labels.clone(),
            structured_metadata: cfg.structured_metadata,
            sm_keys: cfg.structured_metadata_keys.clone(),
            line_format: cfg.line_format,
            max_line_bytes: cfg.max_line_bytes,
        }
    }

    /// Writes the event's label set (`{a="x", b="y"}`, sorted by name) into `out`; labels
    /// whose value is empty are left out, as Loki drops them.
    pub fn labels_into(&self, e: &Event, out: &mut String) {
        out.clear();
        out.push('{');
        for (name, v) in &self.labels {
            let value = match v {
                LabelValue::Static(s) => std::borrow::Cow::Borrowed(s.as_str()),
                LabelValue::Field(f) => f.value(e),
            };
            if value.is_empty() {
                continue;
            }
            if out.len() > 1 {
                out.push_str(", ");
            }
            out.push_str(name);
            out.push('=');
            quote_into(out, prefix(&value, MAX_LABEL_VALUE_LEN));
        }
        out.push('}');
    }

    /// The label pairs of a label set, for the JSON body.
    pub fn label_pairs(&self, e: &Event) -> Vec<(String, String)> {
        self.labels
            .iter()
            .filter_map(|(name, v)| {
                let value = match v {
                    LabelValue::Static(s) => s.clone(),
                    LabelValue::Field(f) => f.value(e).into_owned(),
                };
                (!value.is_empty()).then(|| {
                    (
                        name.clone(),
                        prefix(&value, MAX_LABEL_VALUE_LEN).to_string(),
                    )
                })
            })
            .collect()
    }

    /// True when identifier `k` goes as structured metadata (else into the line).
    fn in_sm(&self, k: &str) -> bool {
        self.structured_metadata
            && self
                .sm_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|x| x == k))
    }

    pub fn line(&self, e: &Event) -> String {
        let mut line = match self.line_format {
            LineFormat::Json => return json_line(e, self.max_line_bytes),
            LineFormat::Raw => {
                let mut l = e.raw.clone().unwrap_or_else(|| e.message.clone());
                let mut rest = identifiers(e).filter(|(k, _)| !self.in_sm(k)).peekable();
                if rest.peek().is_some() {
                    l.push('\t');
                    for (k, v) in rest {
                        logfmt_pair(&mut l, k, &v);
                    }
                }
                l
            }
            LineFormat::Logfmt => {
                let mut l = String::with_capacity(e.message.len() + 128);
                logfmt_pair(&mut l, "ts", &e.timestamp.to_rfc3339());
                logfmt_pair(&mut l, "level", e.level.as_lower());
                logfmt_pair(&mut l, "feature", &e.feature);
                if self.in_sm("event_type") {
                    logfmt_pair(&mut l, "event_type", e.event_type.as_str());
                }
                for (k, v) in identifiers(e).filter(|(k, _)| !self.in_sm(k)) {
                    logfmt_pair(&mut l, k, &v);
                }
                for (k, v) in &e.metadata {
                    match v {
                        serde_json::Value::String(s) => logfmt_pair(&mut l, k, s),
                        v => logfmt_pair(&mut l, k, &v.to_string()),
                    }
                }
                if let Some(o) = e.details.get("outcome").and_then(|v| v.as_str()) {
                    logfmt_pair(&mut l, "outcome", o);
                }
                if let (true, Some(d)) = (self.structured_metadata, e.diagnostic) {
                    // Without structured metadata it is among the identifiers above.
                    logfmt_pair(&mut l, "diagnostic", d.as_str());
                }
                if e.truncated {
                    logfmt_pair(&mut l, "truncated", "true");
                }
                logfmt_pair(&mut l, "msg", &e.message);
                l
            }
        };
        cut_line(&mut line, self.max_line_bytes);
        line
    }

    pub fn entry(&self, e: &Event) -> EntryAdapter {
        let structured_metadata = if self.structured_metadata {
            identifiers(e)
                .filter(|(k, _)| self.in_sm(k))
                .map(|(k, v)| LabelPairAdapter {
                    name: k.to_string(),
                    value: v.into_owned(),
                })
                .collect()
        } else {
            Vec::new()
        };
        EntryAdapter {
            timestamp: Some(entry_timestamp(e)),
            line: self.line(e),
            structured_metadata,
        }
    }
}

fn entry_size(e: &EntryAdapter) -> usize {
    16 + e.line.len()
        + e.structured_metadata
            .iter()
            .map(|p| p.name.len() + p.value.len() + 4)
            .sum::<usize>()
}

/// One stream of a request, with the events behind its entries (for the dead-letter file).
#[derive(Debug, Clone)]
pub struct StreamBatch {
    pub stream: StreamAdapter,
    pub label_pairs: Vec<(String, String)>,
    pub events: Vec<Arc<Event>>,
}

impl StreamBatch {
    /// The stream with its entries made again from its events (the encoder is deterministic).
    pub fn rebuild(&self, enc: &Encoder) -> StreamBatch {
        // `events` are in time order already (`Batch::finish`), so the entries are too.
        StreamBatch {
            stream: StreamAdapter {
                labels: self.stream.labels.clone(),
                entries: self.events.iter().map(|e| enc.entry(e)).collect(),
                hash: 0,
            },
            label_pairs: self.label_pairs.clone(),
            events: self.events.clone(),
        }
    }

    /// Oldest and newest entry, in nanoseconds.
    pub fn time_range(&self) -> (i128, i128) {
        let ts = |e: &EntryAdapter| e.timestamp.map_or(0, |t| t.as_nanos());
        let first = self.stream.entries.first().map_or(0, ts);
        let last = self.stream.entries.last().map_or(0, ts);
        (first, last)
    }
}

/// A stream being filled: its labels (text form and pairs) and its entries with their events.
struct Pending {
    labels: String,
    label_pairs: Vec<(String, String)>,
    entries: Vec<(EntryAdapter, Arc<Event>)>,
}

/// Entries gathered for one request, grouped by stream.
#[derive(Default)]
pub struct Batch {
    streams: Vec<Pending>,
    index: HashMap<String, usize>,
    bytes: usize,
    entries: usize,
    key: String,
}

impl Batch {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    pub fn len(&self) -> usize {
        self.entries
    }
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn push(&mut self, enc: &Encoder, event: Arc<Event>) {
        enc.labels_into(&event, &mut self.key);
        let i = match self.index.get(self.key.as_str()) {
            Some(&i) => i,
            None => {
                let i = self.streams.len();
                self.bytes += self.key.len();
                self.streams.push(Pending {
                    labels: self.key.clone(),
                    label_pairs: enc.label_pairs(&event),
                    entries: Vec::new(),
                });
                self.index.insert(self.key.clone(), i);
                i
            }
        };
        let entry = enc.entry(&event);
        self.bytes += entry_size(&entry);
        self.entries += 1;
        self.streams[i].entries.push((entry, event));
    }

    /// The streams, each with its entries in time order (Loki wants them so per stream).
    pub fn finish(self) -> Vec<StreamBatch> {
        self.streams
            .into_iter()
            .map(|p| {
                let Pending {
                    labels,
                    label_pairs,
                    mut entries,
                } = p;
                entries.sort_by_key(|(e, _)| e.timestamp);
                let (entries, events): (Vec<_>, Vec<_>) = entries.into_iter().unzip();
                StreamBatch {
                    stream: StreamAdapter {
                        labels,
                        entries,
                        hash: 0,
                    },
                    label_pairs,
                    events,
                }
            })
            .collect()
    }
}

/// A request body, ready to send (and to send again on retry).
#[derive(Debug, Clone)]
pub struct Body {
    pub bytes: Bytes,
    pub content_type: &'static str,
    pub content_encoding: Option<&'static str>,
}

/// Encodes streams as one push request.
pub fn encode(streams: &[&StreamBatch], encoding: LokiEncoding, gzip: bool) -> Body {
    match encoding {
        LokiEncoding::Protobuf => {
            // The outer PushRequest is `repeated StreamAdapter streams = 1`: encoding each
            // stream as field 1 gives its wire form without copying the streams into one.
            let len: usize = streams
                .iter()
                .map(|s| prost::encoding::message::encoded_len(1, &s.stream))
                .sum();
            let mut buf = Vec::with_capacity(len);
            for s in streams {
                prost::encoding::message::encode(1, &s.stream, &mut buf);
            }
            let compressed = crate::sink::compression::snappy(&buf)
                .expect("snappy accepts any input below 4 GiB");
            Body {
                bytes: compressed.into(),
                content_type: "application/x-protobuf",
                content_encoding: None,
            }
        }
        LokiEncoding::Json => {
            let json = json_body(streams);
            if gzip {
                Body {
                    bytes: crate::sink::compression::gzip(&json)
                        .expect("writing to memory")
                        .into(),
                    content_type: "application/json",
                    content_encoding: Some("gzip"),
                }
            } else {
                Body {
                    bytes: json.into(),
                    content_type: "application/json",
                    content_encoding: None,
                }
            }
        }
    }
}

/// Loki's JSON push form: `{"streams":[{"stream":{...},"values":[["<ns>","line",{sm}]]}]}`.
fn json_body(streams: &[&StreamBatch]) -> Vec<u8> {
    use serde_json::{Map, Value};
    let streams: Vec<Value> = streams
        .iter()
        .map(|s| {
            let labels: Map<String, Value> = s
                .label_pairs
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let values: Vec<Value> = s
                .stream
                .entries
                .iter()
                .map(|e| {
                    let ns = e.timestamp.map_or(0, |t| t.as_nanos()).to_string();
                    let mut v = vec![Value::String(ns), Value::String(e.line.clone())];
                    if !e.structured_metadata.is_empty() {
                        v.push(Value::Object(
                            e.structured_metadata
                                .iter()
                                .map(|p| (p.name.clone(), Value::String(p.value.clone())))
                                .collect(),
                        ));
                    }
                    Value::Array(v)
                })
                .collect();
            serde_json::json!({"stream": labels, "values": values})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "streams": streams })).expect("JSON values serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventType, Level, Timestamp as Ts};
    use crate::sink::loki::config::LokiArgs;
    use crate::sink::loki::proto::PushRequest;
    use clap::Parser;
    use prost::Message;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        loki: LokiArgs,
    }

    fn encoder(extra: &[&str]) -> Encoder {
        let mut v = vec![
            "t",
            "--loki",
            "http://127.0.0.1:3100",
            "--label",
            "host=ci-1",
        ];
        v.extend_from_slice(extra);
        Encoder::new(
            &T::try_parse_from(v)
                .unwrap()
                .loki
                .config()
                .unwrap()
                .unwrap(),
        )
    }

    fn event(feature: &str, level: Level, msg: &str, ms: i64, seq: u64) -> Event {
        let mut e = Event::new(EventType::Output, level, feature, msg);
        e.timestamp = Ts(ms);
        e.seq = seq;
        e.correlation_id = "build-1763321440-abc123".into();
        e.event_id = format!("ev{seq}");
        e.trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
        e.span_id = Some("b7ad6b7169203331".into());
        e.command_num = Some(3);
        e
    }

    #[test]
    fn labels_are_sorted_quoted_and_skip_empty_values() {
        let enc = encoder(&["--label", "team=a\"b\\c"]);
        let mut out = String::new();
        enc.labels_into(&event("Node.js", Level::Warn, "x", 0, 0), &mut out);
        assert_eq!(
            out,
            r#"{feature="Node.js", host="ci-1", job="container-build", level="warn", team="a\"b\\c"}"#
        );
        enc.labels_into(&event("", Level::Info, "x", 0, 0), &mut out);
        assert_eq!(
            out,
            r#"{host="ci-1", job="container-build", level="info", team="a\"b\\c"}"#
        );
    }

    #[test]
    fn timestamps_use_seq_as_a_tiebreak() {
        let a = entry_timestamp(&event("P", Level::Info, "same", 1_763_321_440_000, 41));
        let b = entry_timestamp(&event("P", Level::Info, "same", 1_763_321_440_000, 42));
        assert_eq!(a.as_nanos(), 1_763_321_440_000_000_041);
        assert_eq!(b.as_nanos(), 1_763_321_440_000_000_042);
        assert_eq!(
            entry_timestamp(&event("P", Level::Info, "x", 5, 1_000_007)).as_nanos(),
            5_000_007
        );
    }

    #[test]
    fn structured_metadata_or_ids_in_the_line() {
        let e = event("Python", Level::Info, "Collecting numpy", 1000, 7);
        let entry = encoder(&[]).entry(&e);
        let sm: Vec<(&str, &str)> = entry
            .structured_metadata
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            sm,
            vec![
                ("correlation_id", "build-1763321440-abc123"),
                ("event_type", "output"),
                ("command_num", "3"),
                ("event_id", "ev7"),
                ("trace_id", "0af7651916cd43dd8448eb211c80319c"),
                ("span_id", "b7ad6b7169203331"),
            ]
        );
        assert_eq!(entry.line, e.to_json());

        let raw = encoder(&["--no-structured-metadata", "--line-format", "raw"]).entry(&e);
        assert!(raw.structured_metadata.is_empty());
        assert_eq!(
            raw.line,
            "Collecting numpy\tcorrelation_id=build-1763321440-abc123 event_type=output command_num=3 \
             event_id=ev7 trace_id=0af7651916cd43dd8448eb211c80319c span_id=b7ad6b7169203331"
        );
        // A diagnostic travels with the identifiers, so a rule can select it.
        let mut d = e.clone();
        d.diagnostic = Some(crate::event::Diagnostic::Error);
        let entry = encoder(&[]).entry(&d);
        assert_eq!(
            entry
                .structured_metadata
                .last()
                .map(|p| (p.name.as_str(), p.value.as_str())),
            Some(("diagnostic", "error"))
        );
    }

    #[test]
    fn a_structured_metadata_key_list_keeps_the_rest_in_the_line() {
        let e = event("Python", Level::Info, "Collecting numpy", 1000, 7);
        let enc = encoder(&[
            "--loki-structured-metadata",
            "correlation_id,trace_id",
            "--line-format",
            "raw",
        ]);
        let entry = enc.entry(&e);
        let sm: Vec<&str> = entry
            .structured_metadata
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(sm, vec!["correlation_id", "trace_id"]);
        assert_eq!(
            entry.line,
            "Collecting numpy\tevent_type=output command_num=3 event_id=ev7 span_id=b7ad6b7169203331"
        );
        let logfmt = encoder(&[
            "--loki-structured-metadata",
            "event_id",
            "--line-format",
            "logfmt",
        ])
        .line(&e);
        assert!(
            logfmt.contains("correlation_id=build-1763321440-abc123"),
            "{logfmt}"
        );
        assert!(!logfmt.contains("event_id="), "{logfmt}");
        assert!(logfmt.contains("event_type=output"), "{logfmt}");
    }

    #[test]
    fn logfmt_lines_escape_values() {
        let e = event("Python", Level::Warn, "say \"hi\"\tnow", 1000, 7).with_meta("exit_code", 2);
        let line = encoder(&["--line-format", "logfmt"]).line(&e);
        assert_eq!(
            line,
            r#"ts=1970-01-01T00:00:01.000Z level=warn feature=Python event_type=output exit_code=2 msg="say \"hi\"\tnow""#
        );
    }

    #[test]
    fn logfmt_lines_say_how_a_command_failed_and_what_a_line_is() {
        let mut e = event("Go", Level::Error, "Installing gopls", 1000, 8)
            .with_meta("exit_code", 1)
            .with_detail("outcome", "failed (exit 1)");
        e.event_type = crate::event::EventType::Command;
        let line = encoder(&["--line-format", "logfmt"]).line(&e);
        assert_eq!(
            line,
            r#"ts=1970-01-01T00:00:01.000Z level=error feature=Go event_type=command exit_code=1 outcome="failed (exit 1)" msg="Installing gopls""#
        );
        let mut o = event(
            "Java",
            Level::Info,
            "E: jdtls archive could not be downloaded",
            1000,
            9,
        );
        o.diagnostic = Some(crate::event::Diagnostic::Error);
        let line = encoder(&["--line-format", "logfmt"]).line(&o);
        assert!(line.contains(" diagnostic=error msg="), "{line}");
    }

    #[test]
    fn long_lines_are_cut_with_a_marker_and_json_stays_valid() {
        let big = "é".repeat(200_000); // 400,000 bytes
        let mut e = event("Terraform", Level::Info, &big, 1000, 1);
        e.raw = Some(format!("\u{1b}[0m{big}"));
        let enc = encoder(&[]);
        let line = enc.line(&e);
        assert!(line.len() <= 262_144, "{}", line.len());
        let back: Event = serde_json::from_str(&line).unwrap();
        assert!(back.truncated);
        assert_eq!(back.original_length, Some(400_004));
        assert!(back.message.ends_with(FIELD_MARKER) || back.raw.unwrap().ends_with(FIELD_MARKER));

        let raw = encoder(&["--line-format", "raw", "--loki-max-line-bytes", "2000"]).line(&e);
        assert!(raw.len() <= 2000);
        assert!(
            raw.ends_with(" …[cut by buildlog: 400004 bytes]"),
            "{}",
            &raw[1900..]
        );

        let mut s = "x".repeat(100);
        cut_line(&mut s, 100);
        assert_eq!(s.len(), 100, "exactly the limit is not cut");
    }

    #[test]
    fn batches_group_streams_and_sort_entries_in_time() {
        let enc = encoder(&[]);
        let mut b = Batch::default();
        for (i, (f, ms)) in [
            ("Python", 3000),
            ("Rust", 1000),
            ("Python", 2000),
            ("Python", 2000),
        ]
        .into_iter()
        .enumerate()
        {
            b.push(
                &enc,
                Arc::new(event(f, Level::Info, "same line", ms, i as u64)),
            );
        }
        assert_eq!(b.len(), 4);
        assert!(b.bytes() > 4 * "same line".len());
        let streams = b.finish();
        assert_eq!(streams.len(), 2);
        let py = &streams[0];
        assert!(py.stream.labels.contains("feature=\"Python\""));
        let ns: Vec<i128> = py
            .stream
            .entries
            .iter()
            .map(|e| e.timestamp.unwrap().as_nanos())
            .collect();
        assert_eq!(ns, vec![2_000_000_002, 2_000_000_003, 3_000_000_000]);
        assert_eq!(
            py.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![2, 3, 0]
        );
        assert_eq!(py.time_range(), (2_000_000_002, 3_000_000_000));

        let refs: Vec<&StreamBatch> = streams.iter().collect();
        let body = encode(&refs, LokiEncoding::Protobuf, false);
        assert_eq!(body.content_type, "application/x-protobuf");
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body.bytes)
            .unwrap();
        let req = PushRequest::decode(&raw[..]).unwrap();
        assert_eq!(req.streams.len(), 2);
        assert_eq!(req.streams[0], streams[0].stream);

        let body = encode(&refs, LokiEncoding::Json, true);
        assert_eq!(body.content_encoding, Some("gzip"));
        let mut json = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&body.bytes[..]),
            &mut json,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["streams"][0]["stream"]["feature"], "Python");
        assert_eq!(v["streams"][0]["values"][0][0], "2000000002");
        assert_eq!(v["streams"][0]["values"][0][2]["event_id"], "ev2");
        assert_eq!(v["streams"][1]["values"].as_array().unwrap().len(), 1);
    }
}
