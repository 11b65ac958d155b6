//! Events to Loki push bodies: streams by label set, one entry per event with a nanosecond
//! timestamp, a line and structured metadata; then protobuf + snappy or JSON (+ gzip).
//!
//! Timestamps: the event's millisecond time plus its `seq` (mod 10^6) as nanoseconds. Loki
//! keeps one of several entries with the same timestamp and line in a stream, so the
//! tiebreak keeps repeated output lines apart, while the same input always gives the same
//! timestamps: shipping a file twice stores it once.

use super::config::{LabelValue, LineFormat, LokiConfig, LokiEncoding, MAX_LABEL_VALUE_LEN};
use super::proto::{EntryAdapter, LabelPairAdapter, Timestamp};
use super::wire;
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
/// fixed order; absent or empty values are left out. `num` holds the command number's digits.
fn identifiers<'a>(
    e: &'a Event,
    num: &'a mut itoa::Buffer,
) -> impl Iterator<Item = (&'static str, &'a str)> {
    let command_num = e.command_num.map(|n| num.format(n));
    [
        ("correlation_id", Some(&*e.correlation_id)),
        ("event_type", Some(e.event_type.as_str())),
        ("command_num", command_num),
        ("event_id", Some(e.event_id.as_str())),
        ("trace_id", e.trace_id.as_deref()),
        ("span_id", e.span_id.as_deref()),
        ("logger_correlation_id", e.logger_correlation_id.as_deref()),
        ("diagnostic", e.diagnostic.map(|d| d.as_str())),
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

    /// True when `a` and `b` have the same label set: every label's source field is equal
    /// (a cheaper question than making both sets).
    pub fn same_labels(&self, a: &Event, b: &Event) -> bool {
        self.labels.iter().all(|(_, v)| match v {
            LabelValue::Static(_) => true,
            LabelValue::Field(f) => f.same(a, b),
        })
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
        let mut line = String::new();
        self.write_line(e, &mut line);
        line
    }

    /// Writes the event's line into the empty `l`, cut to `max_line_bytes`.
    fn write_line(&self, e: &Event, l: &mut String) {
        match self.line_format {
            LineFormat::Json => *l = json_line(e, self.max_line_bytes),
            LineFormat::Raw => {
                l.push_str(e.raw.as_deref().unwrap_or(&e.message));
                let mut num = itoa::Buffer::new();
                let mut rest = identifiers(e, &mut num)
                    .filter(|(k, _)| !self.in_sm(k))
                    .peekable();
                if rest.peek().is_some() {
                    l.push('\t');
                    for (k, v) in rest {
                        logfmt_pair(l, k, v);
                    }
                }
            }
            LineFormat::Logfmt => {
                l.reserve(e.message.len() + 128);
                // `ts` first, bare (a time has nothing to quote), as `logfmt_pair` writes it.
                l.push_str("ts=");
                e.timestamp.push_rfc3339(l);
                logfmt_pair(l, "level", e.level.as_lower());
                logfmt_pair(l, "feature", &e.feature);
                if self.in_sm("event_type") {
                    logfmt_pair(l, "event_type", e.event_type.as_str());
                }
                let mut num = itoa::Buffer::new();
                for (k, v) in identifiers(e, &mut num).filter(|(k, _)| !self.in_sm(k)) {
                    logfmt_pair(l, k, v);
                }
                for (k, v) in &e.metadata {
                    match v {
                        serde_json::Value::String(s) => logfmt_pair(l, k, s),
                        v => logfmt_pair(l, k, &v.to_string()),
                    }
                }
                if let Some(o) = e.details.get("outcome").and_then(|v| v.as_str()) {
                    logfmt_pair(l, "outcome", o);
                }
                if let (true, Some(d)) = (self.structured_metadata, e.diagnostic) {
                    // Without structured metadata it is among the identifiers above.
                    logfmt_pair(l, "diagnostic", d.as_str());
                }
                if e.truncated {
                    logfmt_pair(l, "truncated", "true");
                }
                logfmt_pair(l, "msg", &e.message);
            }
        }
        cut_line(l, self.max_line_bytes);
    }

    /// The event's entry as a message (the JSON body and tests use it; the protobuf body is
    /// written by `write_entry`).
    pub fn entry(&self, e: &Event) -> EntryAdapter {
        let mut num = itoa::Buffer::new();
        let structured_metadata = if self.structured_metadata {
            identifiers(e, &mut num)
                .filter(|(k, _)| self.in_sm(k))
                .map(|(k, v)| LabelPairAdapter {
                    name: k.to_string(),
                    value: v.to_string(),
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

    /// Appends the event's entry in its wire form to `out`, as field 2 of a `StreamAdapter`:
    /// the bytes prost writes for `entry(e)`, with no allocation on the way. A JSON line is
    /// written straight into `out` (the lengths before it filled in after); the other line
    /// formats are made in `line`, scratch space. Returns the entry's timestamp.
    pub fn write_entry(&self, e: &Event, line: &mut Vec<u8>, out: &mut Vec<u8>) -> Timestamp {
        let mut num = itoa::Buffer::new();
        let mut pairs = [("", ""); 8];
        let mut n = 0;
        if self.structured_metadata {
            for pair in identifiers(e, &mut num).filter(|(k, _)| self.in_sm(k)) {
                pairs[n] = pair;
                n += 1;
            }
        }
        let ts = entry_timestamp(e);
        let entry = wire::open_len(out, 0x12);
        wire::message_header(out, 0x0a, wire::timestamp_len(ts.seconds, ts.nanos));
        wire::timestamp(out, ts.seconds, ts.nanos);
        match self.line_format {
            LineFormat::Json => {
                // Never empty, so always written (proto3 leaves out only empty strings).
                let start = wire::open_len(out, 0x12);
                e.write_json(out);
                if out.len() - start > self.max_line_bytes {
                    out.truncate(start);
                    out.extend_from_slice(json_line(e, self.max_line_bytes).as_bytes());
                }
                wire::close_len(out, start);
            }
            LineFormat::Raw | LineFormat::Logfmt => {
                // The scratch space, cleared, lent as a `String`.
                line.clear();
                let mut text = String::from_utf8(std::mem::take(line)).expect("empty");
                self.write_line(e, &mut text);
                *line = text.into_bytes();
                wire::string_field(out, 0x12, line);
            }
        }
        for (k, v) in &pairs[..n] {
            wire::label_pair(out, 0x1a, k.as_bytes(), v.as_bytes());
        }
        wire::close_len(out, entry);
        ts
    }
}

/// One stream of a request, with the events behind its entries (for the dead-letter file).
#[derive(Debug, Clone)]
pub struct StreamBatch {
    /// The label set in Prometheus text form (the stream's key in Loki).
    pub labels: String,
    pub label_pairs: Vec<(String, String)>,
    /// The entries in time order, in their wire form (`Encoder::write_entry`).
    entries: Vec<u8>,
    /// Oldest and newest entry, in nanoseconds.
    range: (i128, i128),
    /// The events in the order of the entries.
    pub events: Vec<Arc<Event>>,
}

impl StreamBatch {
    /// The stream with its entries made again from its events (the encoder is deterministic).
    pub fn rebuild(&self, enc: &Encoder) -> StreamBatch {
        let mut entries = Vec::new();
        let mut line = Vec::new();
        for e in &self.events {
            enc.write_entry(e, &mut line, &mut entries);
        }
        StreamBatch {
            labels: self.labels.clone(),
            label_pairs: self.label_pairs.clone(),
            entries,
            range: self.range,
            events: self.events.clone(),
        }
    }

    /// Frees the encoded entries (a request in flight keeps its body and the events only);
    /// `rebuild` makes them again.
    pub fn drop_entries(&mut self) {
        self.entries = Vec::new();
    }

    /// Oldest and newest entry, in nanoseconds.
    pub fn time_range(&self) -> (i128, i128) {
        self.range
    }

    /// The `StreamAdapter` content: the labels, then the entries.
    fn wire_len(&self) -> usize {
        wire::string_field_len(self.labels.len()) + self.entries.len()
    }
}

/// A stream being filled: its labels (text form and pairs) and its entries, encoded one
/// after the other, with their events.
struct Pending {
    labels: String,
    label_pairs: Vec<(String, String)>,
    wire: Vec<u8>,
    /// Each entry's timestamp (ns) and where it is in `wire`.
    entries: Vec<(i128, std::ops::Range<usize>)>,
    events: Vec<Arc<Event>>,
}

impl Pending {
    /// The stream with its entries in time order (Loki wants them so per stream); events
    /// mostly come in order already, and then nothing moves.
    fn finish(self) -> StreamBatch {
        let Pending {
            labels,
            label_pairs,
            wire,
            entries,
            events,
        } = self;
        let range = (
            entries.iter().map(|e| e.0).min().unwrap_or(0),
            entries.iter().map(|e| e.0).max().unwrap_or(0),
        );
        let (wire, events) = if entries.is_sorted_by_key(|e| e.0) {
            (wire, events)
        } else {
            let mut order: Vec<usize> = (0..entries.len()).collect();
            order.sort_by_key(|&i| entries[i].0); // stable: equal times keep their order
            let mut sorted = Vec::with_capacity(wire.len());
            for &i in &order {
                sorted.extend_from_slice(&wire[entries[i].1.clone()]);
            }
            (sorted, order.iter().map(|&i| events[i].clone()).collect())
        };
        StreamBatch {
            labels,
            label_pairs,
            entries: wire,
            range,
            events,
        }
    }
}

/// Entries gathered for one request, grouped by stream.
#[derive(Default)]
pub struct Batch {
    streams: Vec<Pending>,
    index: HashMap<String, usize>,
    bytes: usize,
    entries: usize,
    key: String,
    /// Scratch space for an entry's line.
    line: Vec<u8>,
    /// The stream of the last event pushed: the next event, most often of the same stream,
    /// is compared with that one before its label set is made and looked up.
    last_stream: Option<usize>,
    /// The room the batch's first stream is given at once (the request's size): a build's
    /// events come a feature at a time, so one stream takes most of a batch, and growing it
    /// by doubling copied its bytes again and again.
    first_stream_room: usize,
}

impl Batch {
    /// A batch sent once it holds about `bytes` bytes.
    pub fn with_room(bytes: usize) -> Self {
        Batch {
            first_stream_room: bytes,
            ..Batch::default()
        }
    }

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
        let same_as_last = self.last_stream.filter(|&i| {
            let last = self.streams[i]
                .events
                .last()
                .expect("a stream holds an event");
            enc.same_labels(last, &event)
        });
        let i = match same_as_last {
            Some(i) => i,
            None => self.stream_of(enc, &event),
        };
        self.last_stream = Some(i);
        let p = &mut self.streams[i];
        let start = p.wire.len();
        let ts = enc.write_entry(&event, &mut self.line, &mut p.wire);
        self.bytes += p.wire.len() - start;
        self.entries += 1;
        p.entries.push((ts.as_nanos(), start..p.wire.len()));
        p.events.push(event);
    }

    /// The index of the stream of `event`'s label set, opened when it is new.
    fn stream_of(&mut self, enc: &Encoder, event: &Event) -> usize {
        enc.labels_into(event, &mut self.key);
        match self.index.get(self.key.as_str()) {
            Some(&i) => i,
            None => {
                let i = self.streams.len();
                self.bytes += self.key.len();
                let wire = match i {
                    // Room for the request, and for the entry that takes it past its size.
                    0 => Vec::with_capacity(self.first_stream_room + self.first_stream_room / 16),
                    _ => Vec::new(),
                };
                self.streams.push(Pending {
                    labels: self.key.clone(),
                    label_pairs: enc.label_pairs(event),
                    wire,
                    entries: Vec::new(),
                    events: Vec::new(),
                });
                self.index.insert(self.key.clone(), i);
                i
            }
        }
    }

    /// The streams, each with its entries in time order.
    pub fn finish(self) -> Vec<StreamBatch> {
        self.streams.into_iter().map(Pending::finish).collect()
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
pub fn encode(enc: &Encoder, streams: &[&StreamBatch], encoding: LokiEncoding, gzip: bool) -> Body {
    match encoding {
        LokiEncoding::Protobuf => {
            // `PushRequest { repeated StreamAdapter streams = 1 }`, each stream its labels
            // (field 1) and its entries, already in wire form (field 2 each). The entries are
            // compressed where they lie, each stream's after its header: not copied into one
            // body first (`snappy_parts`).
            let mut heads = Vec::with_capacity(streams.len() * 128);
            let mut ends = Vec::with_capacity(streams.len());
            for s in streams {
                wire::message_header(&mut heads, 0x0a, s.wire_len());
                wire::string_field(&mut heads, 0x0a, s.labels.as_bytes());
                ends.push(heads.len());
            }
            let mut parts: Vec<&[u8]> = Vec::with_capacity(2 * streams.len());
            let mut start = 0;
            for (s, &end) in streams.iter().zip(&ends) {
                parts.push(&heads[start..end]);
                parts.push(&s.entries);
                start = end;
            }
            let compressed = crate::sink::compression::snappy_parts(&parts)
                .expect("snappy accepts any input below 4 GiB");
            Body {
                bytes: compressed.into(),
                content_type: "application/x-protobuf",
                content_encoding: None,
            }
        }
        LokiEncoding::Json => {
            let json = json_body(enc, streams);
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

/// Loki's JSON push form: `{"streams":[{"stream":{...},"values":[["<ns>","line",{sm}]]}]}`,
/// the entries made from the stream's events (in time order already).
fn json_body(enc: &Encoder, streams: &[&StreamBatch]) -> Vec<u8> {
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
                .events
                .iter()
                .map(|e| {
                    let e = enc.entry(e);
                    let ns = e.timestamp.map_or(0, |t| t.as_nanos()).to_string();
                    let mut v = vec![Value::String(ns), Value::String(e.line)];
                    if !e.structured_metadata.is_empty() {
                        v.push(Value::Object(
                            e.structured_metadata
                                .into_iter()
                                .map(|p| (p.name, Value::String(p.value)))
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
    use crate::sink::loki::proto::{PushRequest, StreamAdapter};
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
    fn every_event_lands_in_the_stream_of_its_own_label_set() {
        // The batch compares each event with the last one before making its label set:
        // on a real build (levels, event types and features changing in every pattern), each
        // stream must still hold exactly the events whose label set is its own.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus");
        let inputs = [crate::source::Input::Path(dir.join("build-02-failure"))];
        let mut events = Vec::new();
        crate::build::parse_inputs(
            &inputs,
            &crate::parse::ParseOptions::default(),
            &mut crate::source::Progress::new(true),
            &mut |e| {
                events.push(e.take());
                Ok(())
            },
        );
        for flags in [
            &[][..],
            &[
                "--label-field",
                "level",
                "--label-field",
                "event_type",
                "--label-field",
                "source_file",
            ],
        ] {
            let enc = encoder(flags);
            let mut b = Batch::default();
            for e in &events {
                b.push(&enc, Arc::new(e.clone()));
            }
            let streams = b.finish();
            assert!(streams.len() > 3, "{}", streams.len());
            assert_eq!(
                streams.iter().map(|s| s.events.len()).sum::<usize>(),
                events.len()
            );
            let mut key = String::new();
            for s in &streams {
                for e in &s.events {
                    enc.labels_into(e, &mut key);
                    assert_eq!(key, s.labels, "{flags:?}");
                }
            }
        }
    }

    /// The room given to a batch's first stream changes where its bytes live, not what they
    /// are: a room the stream outgrows, one it fits in, and none give the same streams.
    #[test]
    fn a_batch_given_room_holds_the_same_streams() {
        let enc = encoder(&[]);
        let finished = |mut b: Batch| {
            for i in 0..3000u64 {
                let feature = ["Python", "Rust", "Node.js"][(i / 1000) as usize];
                let message = "x".repeat((i % 300) as usize);
                b.push(
                    &enc,
                    Arc::new(event(feature, Level::Info, &message, i as i64, i)),
                );
            }
            b.finish()
                .into_iter()
                .map(|s| (s.labels, s.entries, s.range, s.events.len()))
                .collect::<Vec<_>>()
        };
        let without = finished(Batch::default());
        assert_eq!(without.len(), 3);
        assert!(without[0].1.len() > 100_000, "{}", without[0].1.len());
        assert_eq!(finished(Batch::with_room(4096)), without);
        assert_eq!(finished(Batch::with_room(1 << 20)), without);
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
        assert!(py.labels.contains("feature=\"Python\""));
        assert_eq!(
            py.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![2, 3, 0]
        );
        assert_eq!(py.time_range(), (2_000_000_002, 3_000_000_000));

        let refs: Vec<&StreamBatch> = streams.iter().collect();
        let body = encode(&enc, &refs, LokiEncoding::Protobuf, false);
        assert_eq!(body.content_type, "application/x-protobuf");
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body.bytes)
            .unwrap();
        let req = PushRequest::decode(&raw[..]).unwrap();
        assert_eq!(req.streams.len(), 2);
        let ns: Vec<i128> = req.streams[0]
            .entries
            .iter()
            .map(|e| e.timestamp.unwrap().as_nanos())
            .collect();
        assert_eq!(ns, vec![2_000_000_002, 2_000_000_003, 3_000_000_000]);
        // The same message prost would make from the entries.
        let want = StreamAdapter {
            labels: py.labels.clone(),
            entries: py.events.iter().map(|e| enc.entry(e)).collect(),
            hash: 0,
        };
        assert_eq!(req.streams[0], want);
        assert_eq!(
            PushRequest {
                streams: vec![want.clone(), req.streams[1].clone()]
            }
            .encode_to_vec(),
            raw,
            "byte for byte what prost writes"
        );
        // Rebuilt after its entries were dropped (a request in flight): the same bytes.
        let mut dropped = py.clone();
        dropped.drop_entries();
        let again = encode(
            &enc,
            &[&dropped.rebuild(&enc)],
            LokiEncoding::Protobuf,
            false,
        );
        let one = encode(&enc, &[py], LokiEncoding::Protobuf, false);
        assert_eq!(again.bytes, one.bytes);

        let body = encode(&enc, &refs, LokiEncoding::Json, true);
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

    /// `write_entry` writes what prost writes for `entry`, for every event of corpus builds
    /// (all event types, long and non-ASCII lines, scrubbed text) in every line format, with
    /// and without structured metadata, and for times before 1970 and at whole seconds.
    #[test]
    fn wire_entries_are_the_bytes_prost_writes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus");
        let mut events = Vec::new();
        for build in [
            "build-02-failure",
            "build-10-scrubbing-2026-03",
            "build-09-log-levels-2026-01",
        ] {
            let inputs = [crate::source::Input::Path(dir.join(build))];
            let mut progress = crate::source::Progress::new(true);
            crate::build::parse_inputs(
                &inputs,
                &crate::parse::ParseOptions::default(),
                &mut progress,
                &mut |e| {
                    events.push(e.take());
                    Ok(())
                },
            );
        }
        assert!(events.len() > 100, "{}", events.len());
        let mut odd = event("Python", Level::Info, "", -1_500, 0);
        odd.trace_id = None;
        odd.command_num = None;
        events.push(odd);
        events.push(event(
            "P",
            Level::Warn,
            &"é".repeat(300_000),
            1_000,
            1_000_000,
        ));
        for flags in [
            &[][..],
            &["--line-format", "raw"],
            &["--line-format", "logfmt"],
            &["--no-structured-metadata"],
            &["--loki-structured-metadata", "event_id,span_id"],
        ] {
            let enc = encoder(flags);
            let (mut ours, mut line) = (Vec::new(), Vec::new());
            for e in &events {
                ours.clear();
                let ts = enc.write_entry(e, &mut line, &mut ours);
                let mut theirs = Vec::new();
                let entry = enc.entry(e);
                prost::encoding::message::encode(2, &entry, &mut theirs);
                assert_eq!(ours, theirs, "{flags:?} {}", e.to_json());
                assert_eq!(Some(ts), entry.timestamp);
            }
        }
    }
}
