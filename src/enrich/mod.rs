//! Enrichment: correlation and trace ids, event ids, sequence numbers and secret scrubbing,
//! applied to every event a parser produced, before it leaves the process.

pub mod build_events;
pub mod diagnostic;
pub mod ids;
pub mod scrub;

use crate::event::{Event, EventType, SharedStr};
use crate::recent::RecentMap;
use crate::short_eq::short_eq;
use scrub::{PemTracker, Scrubber};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

/// The process-wide scrubber (`Scrubber::global`'s rules, shared): the install-log parser's
/// scan for its anchors is made with the same one.
static SCRUBBER: LazyLock<Arc<Scrubber>> = LazyLock::new(|| Arc::new(Scrubber::global().clone()));

/// The default scrubber, shared.
pub fn scrubber() -> Arc<Scrubber> {
    SCRUBBER.clone()
}

/// Stamps the events of one build.
pub struct Enricher {
    correlation_id: SharedStr,
    trace_id: Arc<str>,
    build_span: Arc<str>,
    scrubber: Option<Arc<Scrubber>>,
    /// Per source file, by its name: one lookup per event.
    sources: RecentMap<SourceState>,
    feature_spans: RecentMap<Arc<str>>,
    /// The last command's (feature, number, span id): consecutive events share it.
    command_span: Option<(String, u32, Arc<str>)>,
    /// Where event-id keys are built, reused.
    key: ids::EventIdKey,
    /// The (source's serial, line) of the last event and how many events that line has
    /// given: an event's position on its line is part of its id.
    line_position: (usize, u64, u32),
    /// The last feature name scrubbed and what it became (`None`: itself): every event
    /// carries one, and a file's events share it.
    scrubbed_feature: Option<(String, Option<String>)>,
}

impl Enricher {
    pub fn new(correlation_id: String, scrub: bool) -> Self {
        Enricher {
            trace_id: ids::trace_id(&correlation_id).into(),
            build_span: ids::build_span_id(&correlation_id).into(),
            correlation_id: correlation_id.into(),
            scrubber: scrub.then(scrubber),
            sources: RecentMap::default(),
            feature_spans: RecentMap::default(),
            command_span: None,
            key: ids::EventIdKey::default(),
            line_position: (usize::MAX, u64::MAX, 0),
            scrubbed_feature: None,
        }
    }

    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// Fills in identity and scrubs. `source_name` is the file's name inside its build
    /// (`python-install.log`, `json/python.jsonl`, `-`), which event ids are made from.
    pub fn apply(&mut self, e: &mut Event, source_file: &str, source_name: &str) {
        if !e.correlation_id.is_empty() && !e.event_id.is_empty() {
            // Replayed buildlog output: keep its identity.
            return;
        }
        if let Some(lc) = &e.logger_correlation_id {
            if **lc == *self.correlation_id {
                e.logger_correlation_id = None;
            }
        }
        e.correlation_id = self.correlation_id.clone();
        e.trace_id = Some(self.trace_id.clone());
        e.span_id = Some(match (e.event_type, e.command_num) {
            (EventType::BuildSummary | EventType::BuildFailure, _) if e.feature.is_empty() => {
                self.build_span.clone()
            }
            (EventType::BuildSummary, _) => self.build_span.clone(),
            (_, Some(n)) if !matches!(e.event_type, EventType::BuildFailure) => {
                self.command_span_id(&e.feature, n)
            }
            _ => self.feature_span_id(&e.feature),
        });
        let serial = self.sources.len();
        let source = self.sources.get_or_insert_with(source_name, || {
            SourceState::new(source_name, source_file, serial)
        });
        e.seq = source.next_seq;
        source.next_seq += 1;
        // A source keeps its name if its file is given by another path (rare): follow it.
        if !short_eq(&source.file, source_file) {
            source.file = source_file.into();
        }
        e.source.file = source.file.clone();
        if let Some(s) = &self.scrubber {
            if e.event_type == EventType::Output {
                // Output lines of one source are consecutive lines of one stream: a PEM key's
                // body lines are only recognisable from the BEGIN line before them.
                scrub_output_line(s, &mut source.pem, e);
            }
            scrub_names(s, &mut self.scrubbed_feature, e);
            // An output line without a raw form had its message scrubbed by the PEM tracker
            // (with the same rules): one scan of each line, not two.
            let message_done = e.event_type == EventType::Output && e.raw.is_none();
            scrub_event_text(s, e, !message_done);
        }
        if e.event_type == EventType::Output {
            e.diagnostic = diagnostic::classify(&e.message);
        }
        e.stream = None;
        e.anchor_scan = None;
        // From the scrubbed content: an id must not be a hash of a secret.
        let position = position_on_line(&mut self.line_position, source.serial, e.source.line);
        e.event_id = self.key.id(
            source.serial,
            &self.correlation_id,
            &source_name[source.base_name_at..],
            e.source.line,
            position,
            e.event_type.as_str(),
            &e.message,
        );
    }
}

/// What the enricher keeps per source file.
struct SourceState {
    /// Which source this is (the order it was first seen in): compared where the name was.
    serial: usize,
    /// Where the file's base name starts in the source's name (event ids are made from it).
    base_name_at: usize,
    /// The next `seq`.
    next_seq: u64,
    /// The file as given (`source.file` of its events), shared by its events.
    file: SharedStr,
    /// Output lines of one source are consecutive lines of one stream, tracked for PEM keys.
    pem: PemTracker,
}

impl SourceState {
    fn new(name: &str, file: &str, serial: usize) -> Self {
        SourceState {
            serial,
            base_name_at: name.len() - ids::base_name(name).len(),
            next_seq: 0,
            file: file.into(),
            pem: PemTracker::default(),
        }
    }
}

/// How many events the same line of the same source gave before this one; `last` holds the
/// (source serial, line) of the last event and that count.
fn position_on_line(last: &mut (usize, u64, u32), serial: usize, line: u64) -> u32 {
    let (s, l, n) = last;
    if *l == line && *s == serial {
        *n += 1;
    } else {
        (*s, *l, *n) = (serial, line, 0);
    }
    *n
}

impl Enricher {
    fn command_span_id(&mut self, feature: &str, n: u32) -> Arc<str> {
        match &self.command_span {
            Some((f, num, span)) if *num == n && short_eq(f, feature) => span.clone(),
            _ => {
                let span: Arc<str> = ids::command_span_id(&self.correlation_id, feature, n).into();
                self.command_span = Some((feature.to_string(), n, span.clone()));
                span
            }
        }
    }

    fn feature_span_id(&mut self, feature: &str) -> Arc<str> {
        let correlation_id = &self.correlation_id;
        self.feature_spans
            .get_or_insert_with(feature, || {
                ids::feature_span_id(correlation_id, feature).into()
            })
            .clone()
    }
}

/// Scrubs an output line through the stream's PEM tracker (the raw form when there is one,
/// `message` being that line with its ANSI codes stripped).
fn scrub_output_line(s: &Scrubber, pem: &mut PemTracker, e: &mut Event) {
    let stream = e.stream.take();
    // The parser's scan was of the line as read: `raw` when there is one, else `message`.
    let scan = e.anchor_scan.take();
    match e.raw.as_mut() {
        Some(raw) => {
            if let Cow::Owned(new) = pem.scrub_scanned_line(s, stream, raw, scan) {
                e.message = crate::parse::text::strip_ansi(&new).into_owned();
                *raw = new;
            }
        }
        None => {
            if let Cow::Owned(new) = pem.scrub_scanned_line(s, stream, &e.message, scan) {
                // A key line the tracker redacted: the rules run on the rest of it too.
                e.message = s.scrub(&new).into_owned();
            }
        }
    }
}

/// Scrubs the feature name (a Loki label, an OTLP attribute, a metric label when it leaves)
/// and the version, remembering the last feature's result in `last` (names leave too).
fn scrub_names(s: &Scrubber, last: &mut Option<(String, Option<String>)>, e: &mut Event) {
    match last {
        Some((name, scrubbed)) if short_eq(name, &e.feature) => {
            if let Some(scrubbed) = scrubbed {
                e.feature.clone_from(scrubbed);
            }
        }
        _ => {
            let name = e.feature.clone();
            let scrubbed = match s.scrub(&name) {
                Cow::Owned(new) => Some(new),
                Cow::Borrowed(_) => None,
            };
            if let Some(new) = &scrubbed {
                e.feature.clone_from(new);
            }
            *last = Some((name, scrubbed));
        }
    }
    if let Some(v) = e.version.as_mut() {
        scrub_string(s, v);
    }
}

fn scrub_string(s: &Scrubber, v: &mut String) {
    if let Cow::Owned(new) = s.scrub(v) {
        *v = new;
    }
}

fn scrub_value(s: &Scrubber, v: &mut Value) {
    match v {
        Value::String(x) => scrub_string(s, x),
        Value::Array(a) => a.iter_mut().for_each(|x| scrub_value(s, x)),
        // A map's key can name a secret its value alone does not show (`AWS_SECRET_ACCESS_KEY`).
        Value::Object(m) => m.iter_mut().for_each(|(k, x)| match x {
            Value::String(v) => {
                if let Cow::Owned(new) = s.scrub_named(k, v) {
                    *v = new;
                }
            }
            _ => scrub_value(s, x),
        }),
        _ => {}
    }
}

/// Scrubs every string of an event that can carry log text.
pub fn scrub_event(s: &Scrubber, e: &mut Event) {
    scrub_names(s, &mut None, e);
    scrub_event_text(s, e, true);
}

/// Scrubs the message (unless already done), the raw form, metadata and details.
fn scrub_event_text(s: &Scrubber, e: &mut Event, message: bool) {
    if message {
        scrub_string(s, &mut e.message);
    }
    if let Some(r) = e.raw.as_mut() {
        scrub_string(s, r);
    }
    if let Some(map) = e.metadata.as_map_mut() {
        map.values_mut().for_each(|v| scrub_value(s, v));
    }
    if let Some(map) = e.details.as_map_mut() {
        map.values_mut().for_each(|v| scrub_value(s, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::install_log::InstallLogParser;
    use crate::parse::FormatParser;
    use crate::source::Line;

    /// A log whose output holds what the scrubber acts on in every way a line can reach it:
    /// secrets plain, coloured and next to invalid UTF-8, a private key's block, NUL bytes.
    const SECRETS_LOG: &[u8] = b"\
================================================================================
Feature Installation Log: Secrets
Start Time: 2025-11-16 19:30:44
================================================================================

[19:30:44] COMMAND #1: Printing secrets
Executing: bash -c ./print-secrets
--------------------------------------------------------------------------------
export GITHUB_TOKEN=ghp_0123456789abcdefghijklmnopqrstuvwxyzAB
\x1b[36mDB_PASSWORD\x1b[0m=hunter2 error
caf\xe9 token=abc123 \xff\xfe warning
-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEA0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP
-----END RSA PRIVATE KEY-----
git clone https://ci:hunter2@git.example.com/x.git\x00
Setting up curl (8.5.0-2) ...
--------------------------------------------------------------------------------
Exit code: 0 (Duration: 1s)
";

    /// The events of `log` read as an install log and enriched with scrubbing on, the parser
    /// scanning its output lines for the scrubber (`scanning`) or not; and how many events
    /// came to the enricher with the parser's scan.
    fn enriched(log: &[u8], scanning: bool) -> (Vec<Event>, usize) {
        let mut parser =
            InstallLogParser::new(jiff::tz::TimeZone::UTC).scanning_for_scrubber(scanning);
        let mut events = Vec::new();
        for (i, bytes) in log.split(|&b| b == b'\n').enumerate() {
            let line = Line {
                bytes,
                number: i as u64 + 1,
                original_len: None,
                unterminated: false,
            };
            parser.line(&line, &mut events);
        }
        parser.finish(&mut events);
        let scanned = events.iter().filter(|e| e.anchor_scan.is_some()).count();
        let mut enricher = Enricher::new("build-test".into(), true);
        for e in &mut events {
            enricher.apply(e, "x-install.log", "x-install.log");
        }
        (events, scanned)
    }

    /// The parser's scan for the scrubber only saves the scrubber a pass: every install log
    /// of the corpus (16 of them print secrets, two ANSI colours) and a log of every kind of
    /// secret line give the same events, scrubbed alike, with the scan and without it.
    #[test]
    fn the_parsers_scan_for_the_scrubber_changes_no_event() {
        let mut logs: Vec<(String, Vec<u8>)> = crate::test_support::corpus_files()
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with("-install.log"))
            .map(|p| {
                (
                    p.display().to_string(),
                    std::fs::read(&p).expect("a corpus log"),
                )
            })
            .collect();
        assert!(logs.len() > 40, "{} install logs", logs.len());
        logs.push(("secrets".into(), SECRETS_LOG.to_vec()));
        let mut scanned = 0;
        for (name, log) in &logs {
            let (with_scan, n) = enriched(log, true);
            let (without, none) = enriched(log, false);
            assert_eq!(none, 0, "{name}");
            assert_eq!(with_scan, without, "{name}");
            scanned += n;
        }
        // The secrets were found and scrubbed on both paths.
        let (events, _) = enriched(SECRETS_LOG, true);
        let text: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
        let text = text.join("\n");
        for secret in ["ghp_0123", "hunter2", "abc123", "MIIEow"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            assert!(scanned > 10_000, "{scanned} events scanned");
        }
        let _ = scanned;
    }
}
