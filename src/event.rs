//! The event model: one JSON object per line, a superset of the JSON logger's format.
//!
//! Field order in the JSON form follows the logger's (`timestamp, level, correlation_id,
//! event_type, feature, message, metadata`) so that what already reads that format keeps
//! working; our own fields follow. Flags appear only when true.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

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
}

impl EventType {
    pub const ALL: [EventType; 12] = [
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
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an event came from: the file (as given, or `-` for stdin) and its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SourceRef {
    pub file: String,
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
    pub correlation_id: String,
    pub event_type: EventType,
    pub feature: String,
    pub message: String,
    #[serde(default)]
    pub metadata: Map<String, Value>,

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
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    pub source: SourceRef,

    /// The correlation id the JSON logger wrote for this feature, where it differs from the build's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger_correlation_id: Option<String>,
    /// Parsed structure beyond the JSON logger's `metadata` keys (the `Executing:` text of a
    /// command, the first errors of a summary, ...), so `metadata` stays equal to the logger's.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
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
            correlation_id: String::new(),
            event_type,
            feature: feature.into(),
            message: message.into(),
            metadata: Map::new(),
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
            details: Map::new(),
            raw: None,
            truncated: false,
            original_length: None,
            invalid_utf8: false,
            incomplete: false,
        }
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
        serde_json::to_string(self).expect("an Event always serialises")
    }

    /// Appends the JSON form and a newline to `out`.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(&mut *out, self).expect("an Event always serialises");
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
