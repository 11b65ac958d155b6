//! The event model: one JSON object per line, a superset of the JSON logger's format.
//!
//! Field order in the JSON form follows the logger's (`timestamp, level, correlation_id,
//! event_type, feature, message, metadata`) so that what already reads that format keeps
//! working; our own fields follow. Flags appear only when true.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

mod fields;
pub use crate::shared_str::SharedStr;
pub use fields::Fields;

/// Milliseconds since the Unix epoch, UTC. Rendered as RFC 3339 with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    pub fn seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
    /// Nanoseconds since the epoch (for Loki and OTLP).
    pub fn nanos(self) -> i128 {
        self.0 as i128 * 1_000_000
    }
    /// Parses `2025-11-16T19:30:45.123Z` (any RFC 3339 form jiff accepts).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let ts: jiff::Timestamp = s.parse().ok()?;
        Some(Timestamp(ts.as_millisecond()))
    }
    pub fn to_rfc3339(self) -> String {
        let mut s = String::with_capacity(24);
        self.write_rfc3339(&mut s);
        s
    }
    /// Writes `YYYY-MM-DDTHH:MM:SS.mmmZ` without allocating a formatter.
    pub fn write_rfc3339(self, out: &mut String) {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        use std::fmt::Write;
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            y,
            m,
            d,
            sod / 3600,
            (sod / 60) % 60,
            sod % 60,
            ms
        );
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm); exact for every i64 day count we can meet.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 timestamp: {s}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }
    /// Lower-case form, as Loki's `detected_level` and label values use it.
    pub fn as_lower(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    FeatureStart,
    CommandStart,
    Output,
    Command,
    Message,
    Debug,
    Warning,
    Error,
    FeatureSummary,
    FeatureEnd,
    BuildSummary,
    BuildFailure,
    /// One per build, at its first event (`buildlog`'s own, not the logger's).
    BuildStart,
    /// One per build, after its last event: `metadata.status` is the build's real result.
    BuildEnd,
}

impl EventType {
    pub const ALL: [EventType; 14] = [
        EventType::FeatureStart,
        EventType::CommandStart,
        EventType::Output,
        EventType::Command,
        EventType::Message,
        EventType::Debug,
        EventType::Warning,
        EventType::Error,
        EventType::FeatureSummary,
        EventType::FeatureEnd,
        EventType::BuildSummary,
        EventType::BuildFailure,
        EventType::BuildStart,
        EventType::BuildEnd,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::FeatureStart => "feature_start",
            EventType::CommandStart => "command_start",
            EventType::Output => "output",
            EventType::Command => "command",
            EventType::Message => "message",
            EventType::Debug => "debug",
            EventType::Warning => "warning",
            EventType::Error => "error",
            EventType::FeatureSummary => "feature_summary",
            EventType::FeatureEnd => "feature_end",
            EventType::BuildSummary => "build_summary",
            EventType::BuildFailure => "build_failure",
            EventType::BuildStart => "build_start",
            EventType::BuildEnd => "build_end",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An output line that is an error or warning by the format of the tool that printed it
/// (see `enrich::diagnostic`); the logger's `level` stays beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Diagnostic {
    Error,
    Warning,
}

impl Diagnostic {
    pub fn as_str(self) -> &'static str {
        match self {
            Diagnostic::Error => "error",
            Diagnostic::Warning => "warning",
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an event came from: the file (as given, or `-` for stdin) and its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SourceRef {
    /// Shared by the events of one file (one allocation per file, not per event).
    pub file: SharedStr,
    pub line: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One structured event. See `docs/schema.md` and `docs/event.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub timestamp: Timestamp,
    pub level: Level,
    /// Shared by the events of a build.
    pub correlation_id: SharedStr,
    pub event_type: EventType,
    pub feature: String,
    pub message: String,
    #[serde(default)]
    pub metadata: Fields,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_num: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_count: Option<u64>,

    /// Position of the event in its source, for total order within one timestamp.
    pub seq: u64,
    /// Deterministic: same source bytes give the same id. The Elasticsearch `_id`.
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Shared by the events of a build.
    pub trace_id: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Shared by the events of a feature or command.
    pub span_id: Option<Arc<str>>,
    pub source: SourceRef,

    /// The correlation id the JSON logger wrote for this feature, where it differs from the build's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger_correlation_id: Option<String>,
    /// Parsed structure beyond the JSON logger's `metadata` keys (the `Executing:` text of a
    /// command, the first errors of a summary, ...), so `metadata` stays equal to the logger's.
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub details: Fields,
    /// The raw line (control bytes kept, scrubbed) for `output` events, when it differs from `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,

    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// Length in bytes of the line before it was cut (with `truncated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_length: Option<u64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub invalid_utf8: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub incomplete: bool,
    /// Which of several interleaved streams of its source the line came from (a BuildKit
    /// step), so that state kept across lines (a private key's body) is kept per stream.
    /// Not part of the event's JSON.
    #[serde(skip)]
    pub stream: Option<u32>,
    /// What the parser's scan of the line found for the scrubber, made while it looked for the
    /// logger's error and warning literals: for the text of `raw` or, without one, of
    /// `message`, as read. The enricher uses it instead of scanning again and clears it. Not
    /// part of the event's JSON.
    #[serde(skip)]
    pub anchor_scan: Option<crate::enrich::scrub::AnchorScan>,
    /// `error` or `warning` where an output line is one by its tool's own format; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<Diagnostic>,
}

impl Event {
    /// A new event with the identity fields left empty; `enrich` fills them in.
    pub fn new(
        event_type: EventType,
        level: Level,
        feature: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Event {
            timestamp: Timestamp(0),
            level,
            // No allocation and no reference count.
            correlation_id: SharedStr::default(),
            event_type,
            feature: feature.into(),
            message: message.into(),
            metadata: Fields::new(),
            version: None,
            stage: None,
            command_num: None,
            duration_ms: None,
            command_count: None,
            error_count: None,
            warning_count: None,
            seq: 0,
            event_id: String::new(),
            trace_id: None,
            span_id: None,
            source: SourceRef::default(),
            logger_correlation_id: None,
            details: Fields::new(),
            raw: None,
            truncated: false,
            original_length: None,
            invalid_utf8: false,
            incomplete: false,
            stream: None,
            anchor_scan: None,
            diagnostic: None,
        }
    }

    /// The event, an empty one left in its place: for a consumer handed `&mut Event` that
    /// keeps it (a sink's queue).
    pub fn take(&mut self) -> Event {
        std::mem::replace(
            self,
            Event::new(EventType::Output, Level::Info, String::new(), String::new()),
        )
    }

    pub fn with_meta(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.to_string(), value.into());
        self
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// The JSON form, one line, no trailing newline.
    pub fn to_json(&self) -> String {
        // The hand-written form (the same bytes as serde_json's, see `write_json_line`).
        let mut out = Vec::with_capacity(256 + self.message.len());
        json::write_event(self, &mut out);
        String::from_utf8(out).expect("JSON written from valid strings is valid UTF-8")
    }

    /// Appends the JSON form and a newline to `out`: the bytes `serde_json` would write for
    /// this event (tests prove it over the corpus and arbitrary events), written by hand
    /// because this is the hot path of `convert`: no formatter machinery, integers through
    /// `itoa`, strings escaped eight bytes at a time.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        json::write_event(self, out);
        out.push(b'\n');
    }

    /// Appends the JSON form (the bytes of `to_json`) to `out`, without a newline.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        json::write_event(self, out);
    }
}

/// Appends `s` as a JSON string (quoted, escaped): the bytes `serde_json` writes for it, by
/// the escaper of the events' own JSON (sixteen bytes at a time).
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    json::write_str(out, s);
}

/// The hand-written JSON form of an `Event`, byte-identical to its `Serialize` derive.
mod json {
    use super::{Event, SharedStr, Timestamp};
    use serde_json::{Map, Value};
    use std::cell::{Cell, RefCell};
    use std::sync::Arc;

    /// `,"key":`: keys are our own ASCII names and need no escaping, and each is made at
    /// compile time so that it is copied in one piece.
    macro_rules! key {
        ($k:literal) => {
            concat!(",\"", $k, "\":").as_bytes()
        };
    }

    /// `,"key":"`, the key of a string and the string's opening quote in one piece.
    macro_rules! str_key {
        ($k:literal) => {
            concat!(",\"", $k, "\":\"").as_bytes()
        };
    }

    fn uint(out: &mut Vec<u8>, n: u64) {
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    /// A string field; `key` from `str_key!`.
    #[inline(always)]
    fn string_field(out: &mut Vec<u8>, key: &[u8], v: &str) {
        out.extend_from_slice(key);
        write_str_after_quote(out, v);
    }

    #[inline(always)]
    fn opt_str(out: &mut Vec<u8>, key: &[u8], v: Option<&str>) {
        if let Some(v) = v {
            string_field(out, key, v);
        }
    }

    /// An integer field; `key` from `key!`.
    #[inline(always)]
    fn opt_uint(out: &mut Vec<u8>, key: &[u8], v: Option<u64>) {
        if let Some(v) = v {
            out.extend_from_slice(key);
            uint(out, v);
        }
    }

    /// Whether two optional shared strings are the same allocation (or both absent).
    fn same(a: &Option<Arc<str>>, b: Option<&Arc<str>>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    /// Whether `kept` holds the same allocation as `s` (or both hold the empty string).
    fn shared(kept: &Option<SharedStr>, s: &SharedStr) -> bool {
        kept.as_ref().is_some_and(|k| k.ptr_eq(s))
    }

    /// The JSON of the fields whose text a build, file or command shares (`Arc<str>`),
    /// as written for the last event: most events write the same there as the one before
    /// them, so it is copied whole instead of escaped again (four of an event's seven
    /// strings). Holding the `Arc`s keeps their allocations alive, so an equal pointer is
    /// always the same text.
    struct SharedJson {
        correlation_id: Option<SharedStr>,
        /// `,"correlation_id":"…"`
        correlation_id_json: Vec<u8>,
        trace_id: Option<Arc<str>>,
        span_id: Option<Arc<str>>,
        source_file: Option<SharedStr>,
        /// `,"trace_id":"…","span_id":"…","source":{"file":"…","line":` (the ids when
        /// present): the fields after `event_id`, up to the line number.
        ids_and_file_json: Vec<u8>,
    }

    impl SharedJson {
        const fn new() -> Self {
            SharedJson {
                correlation_id: None,
                correlation_id_json: Vec::new(),
                trace_id: None,
                span_id: None,
                source_file: None,
                ids_and_file_json: Vec::new(),
            }
        }

        fn correlation_id(&mut self, e: &Event) -> &[u8] {
            if !shared(&self.correlation_id, &e.correlation_id) {
                let json = &mut self.correlation_id_json;
                json.clear();
                string_field(json, str_key!("correlation_id"), &e.correlation_id);
                self.correlation_id = Some(e.correlation_id.clone());
            }
            &self.correlation_id_json
        }

        fn ids_and_file(&mut self, e: &Event) -> &[u8] {
            if !(same(&self.trace_id, e.trace_id.as_ref())
                && same(&self.span_id, e.span_id.as_ref())
                && shared(&self.source_file, &e.source.file))
            {
                let json = &mut self.ids_and_file_json;
                json.clear();
                opt_str(json, str_key!("trace_id"), e.trace_id.as_deref());
                opt_str(json, str_key!("span_id"), e.span_id.as_deref());
                string_field(json, b",\"source\":{\"file\":\"", &e.source.file);
                json.extend_from_slice(key!("line"));
                self.trace_id = e.trace_id.clone();
                self.span_id = e.span_id.clone();
                self.source_file = Some(e.source.file.clone());
            }
            &self.ids_and_file_json
        }
    }

    thread_local! {
        static SHARED_JSON: RefCell<SharedJson> = const { RefCell::new(SharedJson::new()) };
    }

    fn map(out: &mut Vec<u8>, m: &Map<String, Value>) {
        if m.is_empty() {
            out.extend_from_slice(b"{}");
        } else {
            // Metadata is small and rare next to output lines: serde_json writes it.
            serde_json::to_writer(&mut *out, m).expect("a JSON map always serialises");
        }
    }

    pub(super) fn write_event(e: &Event, out: &mut Vec<u8>) {
        SHARED_JSON.with_borrow_mut(|shared| write_event_with(e, out, shared));
    }

    fn write_event_with(e: &Event, out: &mut Vec<u8>, shared: &mut SharedJson) {
        // One reservation for the usual event instead of one check per piece growing it.
        out.reserve(320 + e.message.len() + e.source.file.len() + e.feature.len());
        out.extend_from_slice(b"{\"timestamp\":\"");
        e.timestamp.write_rfc3339_bytes(out);
        out.extend_from_slice(b"\",\"level\":\"");
        out.extend_from_slice(e.level.as_str().as_bytes());
        out.push(b'"');
        out.extend_from_slice(shared.correlation_id(e));
        out.extend_from_slice(str_key!("event_type"));
        out.extend_from_slice(e.event_type.as_str().as_bytes());
        out.push(b'"');
        string_field(out, str_key!("feature"), &e.feature);
        string_field(out, str_key!("message"), &e.message);
        out.extend_from_slice(key!("metadata"));
        map(out, &e.metadata);
        opt_str(out, str_key!("version"), e.version.as_deref());
        opt_str(out, str_key!("stage"), e.stage.as_deref());
        opt_uint(out, key!("command_num"), e.command_num.map(u64::from));
        opt_uint(out, key!("duration_ms"), e.duration_ms);
        opt_uint(out, key!("command_count"), e.command_count);
        opt_uint(out, key!("error_count"), e.error_count);
        opt_uint(out, key!("warning_count"), e.warning_count);
        out.extend_from_slice(key!("seq"));
        uint(out, e.seq);
        string_field(out, str_key!("event_id"), &e.event_id);
        out.extend_from_slice(shared.ids_and_file(e));
        uint(out, e.source.line);
        out.push(b'}');
        opt_str(
            out,
            str_key!("logger_correlation_id"),
            e.logger_correlation_id.as_deref(),
        );
        if !e.details.is_empty() {
            out.extend_from_slice(key!("details"));
            map(out, &e.details);
        }
        opt_str(out, str_key!("raw"), e.raw.as_deref());
        if e.truncated {
            out.extend_from_slice(b",\"truncated\":true");
        }
        opt_uint(out, key!("original_length"), e.original_length);
        if e.invalid_utf8 {
            out.extend_from_slice(b",\"invalid_utf8\":true");
        }
        if e.incomplete {
            out.extend_from_slice(b",\"incomplete\":true");
        }
        if let Some(d) = e.diagnostic {
            out.extend_from_slice(b",\"diagnostic\":\"");
            out.extend_from_slice(d.as_str().as_bytes());
            out.push(b'"');
        }
        out.push(b'}');
    }

    /// One bit per byte of `block` (the lowest for its first byte) that JSON must escape:
    /// below 0x20, a quote or a backslash.
    #[inline(always)]
    pub(super) fn escapes(block: [u8; 16]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{
                _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
                _mm_set1_epi8,
            };
            // SAFETY: SSE2 is part of the x86-64 baseline, so every x86-64 CPU has these; the
            // unaligned load reads the sixteen bytes of `block`.
            unsafe {
                let x = _mm_loadu_si128(block.as_ptr().cast());
                // Below 0x20, unsigned: `min(x, 0x1f) == x`.
                let control = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x);
                let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
                let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
                _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))) as u32
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        escapes_portable(block)
    }

    /// [`escapes`] a byte at a time, where there is no SSE2 (and as its reference in tests).
    #[cfg(any(test, not(target_arch = "x86_64")))]
    pub(super) fn escapes_portable(block: [u8; 16]) -> u32 {
        block.iter().enumerate().fold(0, |m, (i, &c)| {
            m | u32::from(c < 0x20 || c == b'"' || c == b'\\') << i
        })
    }

    /// `s`, shorter than sixteen bytes, as a block with zeros after it: two overlapping loads
    /// (or three single bytes) instead of a copy into a padded buffer.
    #[inline(always)]
    fn short_block(s: &[u8]) -> [u8; 16] {
        let n = s.len();
        debug_assert!(n < 16);
        let v = if n >= 8 {
            let lo = u64::from_le_bytes(s[..8].try_into().expect("eight bytes"));
            let hi = u64::from_le_bytes(s[n - 8..].try_into().expect("eight bytes"));
            u128::from(lo) | u128::from(hi) << (8 * (n - 8))
        } else if n >= 4 {
            let lo = u32::from_le_bytes(s[..4].try_into().expect("four bytes"));
            let hi = u32::from_le_bytes(s[n - 4..].try_into().expect("four bytes"));
            u128::from(u64::from(lo) | u64::from(hi) << (8 * (n - 4)))
        } else if n > 0 {
            u128::from(s[0])
                | u128::from(s[n / 2]) << (8 * (n / 2))
                | u128::from(s[n - 1]) << (8 * (n - 1))
        } else {
            0
        };
        v.to_le_bytes()
    }

    /// The escape of a byte that needs one, as serde_json writes it.
    fn push_escape(out: &mut Vec<u8>, c: u8) {
        let short = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            b'\t' => b't',
            b'\n' => b'n',
            0x0c => b'f',
            b'\r' => b'r',
            _ => 0,
        };
        if short != 0 {
            out.extend_from_slice(&[b'\\', short]);
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&[HEX[(c >> 4) as usize], HEX[(c & 0xf) as usize]]);
        }
    }

    /// A JSON string, escaped exactly as serde_json does.
    pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
        out.push(b'"');
        write_str_after_quote(out, s);
    }

    /// Stores `block` at `out[at..at + 16]`, in the spare capacity past `out`'s length.
    ///
    /// # Safety
    /// `at + 16 <= out.capacity()`.
    #[inline(always)]
    unsafe fn store(out: &mut Vec<u8>, at: usize, block: [u8; 16]) {
        // SAFETY: the caller's promise keeps the sixteen bytes inside the allocation.
        unsafe {
            out.as_mut_ptr()
                .add(at)
                .cast::<[u8; 16]>()
                .write_unaligned(block)
        }
    }

    /// A JSON string after its opening quote (written with the key before it), escaped
    /// exactly as serde_json does: `\"`, `\\`, `\b \t \n \f \r`, other control bytes as
    /// `\u00xx`; everything else (DEL, non-ASCII) as is.
    ///
    /// Thirty-two bytes at a time (two sixteen-byte blocks), looked at and copied in one
    /// step: each block is stored whole at the end of `out` before it is known to be clean,
    /// and the length moves on past the clean bytes only (those after an escape are written
    /// again). A tail of 17 to 31 bytes is two blocks that overlap (the second ends where the
    /// string ends), one of 16 or fewer the last sixteen bytes shifted, so no byte past the
    /// string's end is read, and most strings (ids, names, paths) take one step.
    fn write_str_after_quote(out: &mut Vec<u8>, s: &str) {
        let b = s.as_bytes();
        // Invariant: capacity >= len + unread bytes + 1 (the closing quote) + 16 (a block
        // stored past the end); an escape makes room for itself.
        out.reserve(b.len() + 1 + 16);
        let mut len = out.len();
        let mut i = 0;
        while i < b.len() {
            let rest = b.len() - i;
            let block =
                |at: usize| -> [u8; 16] { b[at..at + 16].try_into().expect("sixteen bytes") };
            // SAFETY (every `store`): the invariant leaves `rest + 16` bytes of capacity at
            // `len`, and no store ends past `len + max(rest, 16)`.
            let (mask, valid) = if rest >= 32 {
                let (lo, hi) = (block(i), block(i + 16));
                unsafe {
                    store(out, len, lo);
                    store(out, len + 16, hi);
                }
                (escapes(lo) | escapes(hi) << 16, 32)
            } else if rest > 16 {
                // The second block's first bytes are the first block's last: the same bytes
                // stored and looked at twice.
                let (lo, hi) = (block(i), block(b.len() - 16));
                unsafe {
                    store(out, len, lo);
                    store(out, len + rest - 16, hi);
                }
                (escapes(lo) | escapes(hi) << (rest - 16), rest)
            } else {
                let last = if b.len() >= 16 {
                    let last = u128::from_le_bytes(block(b.len() - 16));
                    (last >> (8 * (16 - rest))).to_le_bytes()
                } else {
                    short_block(&b[i..])
                };
                unsafe { store(out, len, last) };
                // The zeros after the string's end are control bytes: not looked at.
                (escapes(last) & (u32::MAX >> (32 - rest)), rest)
            };
            if mask == 0 {
                len += valid;
                i += valid;
                continue;
            }
            let clean = mask.trailing_zeros() as usize;
            len += clean;
            i += clean;
            // SAFETY: within capacity, and every byte up to `len` was written.
            unsafe { out.set_len(len) };
            push_escape(out, b[i]);
            i += 1;
            out.reserve(b.len() - i + 1 + 16);
            len = out.len();
        }
        // SAFETY: as above.
        unsafe { out.set_len(len) };
        out.push(b'"');
    }

    thread_local! {
        /// The last time rendered: events come in runs with one timestamp (an install log's
        /// output lines share their command's), and the next one is often in the same second.
        static LAST_TIME: Cell<Option<(i64, [u8; 24])>> = const { Cell::new(None) };
    }

    impl Timestamp {
        /// `YYYY-MM-DDTHH:MM:SS.mmmZ` as bytes, the digits written directly.
        pub fn write_rfc3339_bytes(self, out: &mut Vec<u8>) {
            match self.rfc3339_ascii() {
                Some(text) => out.extend_from_slice(&text),
                None => {
                    // Outside four-digit years: the general formatter (sign, more digits).
                    let mut s = String::new();
                    self.write_rfc3339(&mut s);
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }

        /// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` to a `String`, as `write_rfc3339` does, without
        /// the formatter.
        pub fn push_rfc3339(self, out: &mut String) {
            match self.rfc3339_ascii() {
                Some(text) => out.push_str(std::str::from_utf8(&text).expect("ASCII digits")),
                None => self.write_rfc3339(out),
            }
        }

        /// The 24 ASCII bytes of the time, for years 0 to 9999 (else `None`).
        fn rfc3339_ascii(self) -> Option<[u8; 24]> {
            let last = LAST_TIME.get();
            if let Some((ms, text)) = last {
                if ms == self.0 {
                    return Some(text);
                }
            }
            let ms = self.0.rem_euclid(1000) as u32;
            let secs = self.0.div_euclid(1000);
            let mut text = [0; 24];
            match last {
                Some((t, cached)) if t.div_euclid(1000) == secs => {
                    text[..19].copy_from_slice(&cached[..19]);
                }
                _ => {
                    let sod = secs.rem_euclid(86_400) as u32;
                    let (y, m, d) = super::civil_from_days(secs.div_euclid(86_400));
                    if !(0..=9999).contains(&y) {
                        return None;
                    }
                    let y = y as u32;
                    let two = |n: u32| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
                    let [y1, y2] = two(y / 100);
                    let [y3, y4] = two(y % 100);
                    let [m1, m2] = two(m);
                    let [d1, d2] = two(d);
                    let [h1, h2] = two(sod / 3600);
                    let [n1, n2] = two(sod / 60 % 60);
                    let [s1, s2] = two(sod % 60);
                    text[..19].copy_from_slice(&[
                        y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2, b'T', h1, h2, b':', n1, n2,
                        b':', s1, s2,
                    ]);
                }
            }
            text[19..].copy_from_slice(&[
                b'.',
                b'0' + (ms / 100) as u8,
                b'0' + (ms / 10 % 10) as u8,
                b'0' + (ms % 10) as u8,
                b'Z',
            ]);
            LAST_TIME.set(Some((self.0, text)));
            Some(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Map;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ -~]{0,40}",
            "[\\x00-\\x1f\"\\\\\\x7f a-é€😀]{0,24}",
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::vec((text(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn map() -> impl Strategy<Value = Map<String, Value>> {
        proptest::collection::vec((text(), value()), 0..3).prop_map(|kv| kv.into_iter().collect())
    }

    prop_compose! {
        fn event()(
            ts in any::<i64>().prop_map(|t| t % 400_000_000_000_000),
            level in proptest::sample::select(vec![Level::Debug, Level::Info, Level::Warn, Level::Error, Level::Fatal]),
            event_type in proptest::sample::select(EventType::ALL.to_vec()),
            (correlation_id, feature, message, event_id) in (text(), text(), text(), text()),
            (metadata, details) in (map(), map()),
            (version, stage, trace_id, span_id, logger_correlation_id, raw) in (
                proptest::option::of(text()), proptest::option::of(text()), proptest::option::of(text()),
                proptest::option::of(text()), proptest::option::of(text()), proptest::option::of(text())),
            command_num in proptest::option::of(any::<u32>()),
            counts in (proptest::option::of(any::<u64>()), proptest::option::of(any::<u64>()),
                proptest::option::of(any::<u64>()), proptest::option::of(any::<u64>()),
                proptest::option::of(any::<u64>()), proptest::option::of(any::<u64>())),
            (seq, line) in (any::<u64>(), any::<u64>()),
            file in text(),
            flags in (any::<bool>(), any::<bool>(), any::<bool>()),
            diagnostic in proptest::option::of(proptest::sample::select(vec![Diagnostic::Error, Diagnostic::Warning])),
        ) -> Event {
            Event {
                timestamp: Timestamp(ts), level, correlation_id: correlation_id.into(), event_type, feature, message,
                metadata: metadata.into(), version, stage, command_num,
                duration_ms: counts.0, command_count: counts.1, error_count: counts.2,
                warning_count: counts.3, seq, event_id, trace_id: trace_id.map(Into::into),
                span_id: span_id.map(Into::into), source: SourceRef { file: file.into(), line },
                logger_correlation_id, details: details.into(), raw,
                truncated: flags.0, original_length: counts.4.or(counts.5), invalid_utf8: flags.1,
                incomplete: flags.2, stream: None, anchor_scan: None, diagnostic,
            }
        }
    }

    proptest! {
        /// Any string, with a byte that needs escaping at any place (in the eight-byte steps
        /// or in the tail after them, of any length), is escaped as serde_json escapes it.
        #[test]
        fn a_string_is_escaped_as_serde_json_escapes_it(
            before in "[ -~é]{0,20}",
            special in "[\\x00-\\x1f\"\\\\]",
            after in "[ -~]{0,20}",
            any_text in text(),
        ) {
            for s in [format!("{before}{special}{after}"), any_text] {
                let mut out = Vec::new();
                json::write_str(&mut out, &s);
                prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
            }
        }
    }

    proptest! {
        /// The hand-written JSON line is byte for byte what serde_json writes.
        #[test]
        fn json_line_equals_serde(e in event()) {
            let mut fast = Vec::new();
            e.write_json_line(&mut fast);
            let mut serde = serde_json::to_vec(&e).unwrap();
            serde.push(b'\n');
            prop_assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&serde));
        }

        /// Events written one after another whose shared fields (correlation id, trace and
        /// span ids, source file) are the same `Arc`s as an earlier event's in any mix, or
        /// not: each line is still what serde_json writes for it (the JSON kept from the
        /// event before is reused only where it is the same text).
        #[test]
        fn json_lines_sharing_fields_in_any_mix_equal_serde(
            events in proptest::collection::vec(event(), 1..4),
            picks in proptest::collection::vec(proptest::array::uniform5(0..4usize), 1..24),
        ) {
            let n = events.len();
            for [base, correlation, trace, span, file] in picks {
                let mut e = events[base % n].clone();
                e.correlation_id = events[correlation % n].correlation_id.clone();
                e.trace_id = events[trace % n].trace_id.clone();
                e.span_id = events[span % n].span_id.clone();
                e.source.file = events[file % n].source.file.clone();
                let mut fast = Vec::new();
                e.write_json_line(&mut fast);
                let mut serde = serde_json::to_vec(&e).unwrap();
                serde.push(b'\n');
                prop_assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&serde));
            }
        }

        /// The formatter-free renderings of a time equal the formatter's, in any year.
        #[test]
        fn fast_timestamps_equal_the_formatter_anywhere(ms in -1_000_000_000_000_000i64..1_000_000_000_000_000) {
            let mut slow = String::new();
            Timestamp(ms).write_rfc3339(&mut slow);
            let mut bytes = Vec::new();
            Timestamp(ms).write_rfc3339_bytes(&mut bytes);
            let mut pushed = String::new();
            Timestamp(ms).push_rfc3339(&mut pushed);
            prop_assert_eq!(&String::from_utf8(bytes).unwrap(), &slow);
            prop_assert_eq!(&pushed, &slow);
        }
    }

    #[test]
    fn the_block_escape_mask_equals_its_byte_at_a_time_reference() {
        for c in 0..=255u8 {
            for at in 0..16 {
                let mut block = [b'a'; 16];
                block[at] = c;
                assert_eq!(
                    json::escapes(block),
                    json::escapes_portable(block),
                    "{c} at {at}"
                );
            }
        }
    }

    /// Every string length up to five blocks (two steps of two blocks and every tail), an
    /// escape at every place of it (or none, or escapes everywhere), written at the end of a
    /// buffer already holding text: the bytes serde_json writes, and the text before them
    /// untouched.
    #[test]
    fn a_string_is_escaped_at_every_length_and_place() {
        for len in 0..=80 {
            let plain: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            let mut cases = vec![plain.clone(), "\"".repeat(len), "\u{1}".repeat(len)];
            for at in 0..len {
                for special in ["\"", "\\", "\n", "\u{1f}", "\u{0}", "\u{7f}", "é"] {
                    let mut s = plain.clone();
                    s.replace_range(at..at + 1, special);
                    cases.push(s);
                }
            }
            for s in cases {
                for before in [&b""[..], b"{\"k\":"] {
                    let mut out = before.to_vec();
                    json::write_str(&mut out, &s);
                    let mut want = before.to_vec();
                    want.extend(serde_json::to_vec(&s).unwrap());
                    assert_eq!(
                        String::from_utf8_lossy(&out),
                        String::from_utf8_lossy(&want)
                    );
                }
            }
        }
        // A long string with escapes far apart: the buffer grows as the escapes need.
        let long: String = (0..5000)
            .map(|i| if i % 997 == 0 { '\u{2}' } else { 'x' })
            .collect();
        let mut out = Vec::new();
        json::write_str(&mut out, &long);
        assert_eq!(out, serde_json::to_vec(&long).unwrap());
    }

    #[test]
    fn json_escapes_every_control_byte_like_serde() {
        let all: String = (0u8..=0x7f).map(char::from).collect();
        for s in [
            all.as_str(),
            "",
            "\"",
            "\\",
            "tab\there",
            "01234567\u{1f}",
            "é€😀\u{7f}",
        ] {
            let mut fast = Vec::new();
            json::write_str(&mut fast, s);
            assert_eq!(fast, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn fast_timestamps_equal_the_formatter() {
        for ms in [
            0i64,
            -1,
            1_763_321_440_364,
            253_402_300_799_999,
            253_402_300_800_000,
            -62_167_219_200_001,
            // Runs as the cache of the last time meets them: the same time again, the same
            // second, the next second, the same second of another day, out of range between.
            1_763_321_440_364,
            1_763_321_440_364,
            1_763_321_440_000,
            1_763_321_440_999,
            1_763_321_441_000,
            1_763_407_841_000,
            253_402_300_800_000,
            1_763_407_841_000,
            1_763_407_841_001,
            -1,
            -1000,
            -999,
        ] {
            let mut b = Vec::new();
            Timestamp(ms).write_rfc3339_bytes(&mut b);
            let mut s = String::new();
            Timestamp(ms).write_rfc3339(&mut s);
            assert_eq!(String::from_utf8(b).unwrap(), s, "{ms}");
            let mut pushed = String::from("ts=");
            Timestamp(ms).push_rfc3339(&mut pushed);
            assert_eq!(pushed, format!("ts={s}"), "{ms}");
        }
    }

    #[test]
    fn timestamp_renders_rfc3339_millis() {
        let ts = Timestamp::parse_rfc3339("2025-11-16T19:30:40.364Z").unwrap();
        assert_eq!(ts.to_rfc3339(), "2025-11-16T19:30:40.364Z");
        assert_eq!(ts.seconds(), 1_763_321_440);
        assert_eq!(Timestamp(-1).to_rfc3339(), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            Timestamp(253_402_300_799_000).to_rfc3339(),
            "9999-12-31T23:59:59.000Z"
        );
    }

    #[test]
    fn civil_matches_jiff_over_a_range() {
        for days in (-800_000i64..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            let j = jiff::Timestamp::from_second(days * 86_400)
                .unwrap()
                .to_zoned(jiff::tz::TimeZone::UTC)
                .date();
            assert_eq!(
                (y, m, d),
                (j.year() as i64, j.month() as u32, j.day() as u32)
            );
        }
    }

    #[test]
    fn flags_appear_only_when_true() {
        let mut e = Event::new(EventType::Output, Level::Info, "Python", "hi");
        let s = e.to_json();
        assert!(!s.contains("truncated"));
        assert!(!s.contains("incomplete"));
        e.truncated = true;
        assert!(e.to_json().contains("\"truncated\":true"));
        let back: Event = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn field_order_starts_like_the_json_logger() {
        let e = Event::new(EventType::Warning, Level::Warn, "Rust", "careful");
        let s = e.to_json();
        let keys: Vec<usize> = [
            "\"timestamp\"",
            "\"level\"",
            "\"correlation_id\"",
            "\"event_type\"",
            "\"feature\"",
            "\"message\"",
            "\"metadata\"",
        ]
        .iter()
        .map(|k| s.find(k).unwrap())
        .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{s}");
    }
}
