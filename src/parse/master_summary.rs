//! `master-summary.log`: one line per finished feature, `Python: 0 errors, 2 warnings (145s)`.

use super::FormatParser;
use crate::event::{Event, EventType, Level};
use crate::source::Line;
use regex::Regex;
use std::sync::LazyLock;

static LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?P<feature>.+): (?P<errors>\d+) errors, (?P<warnings>\d+) warnings \((?P<secs>\d+)s\)$",
    )
    .unwrap()
});

/// True when the line has the master summary's shape.
pub fn is_master_line(s: &str) -> bool {
    LINE.is_match(s)
}

#[derive(Default)]
pub struct MasterSummaryParser;

impl FormatParser for MasterSummaryParser {
    fn line(&mut self, line: &Line<'_>, out: &mut Vec<Event>) {
        let (text, invalid) = super::text::decode(line.bytes);
        if text.trim().is_empty() {
            return;
        }
        let mut ev = match LINE.captures(&text) {
            Some(c) => {
                let num = |k: &str| c[k].parse::<u64>().unwrap_or(u64::MAX);
                let (errors, warnings, secs) = (num("errors"), num("warnings"), num("secs"));
                let status = if errors == 0 { "success" } else { "failed" };
                let mut ev = Event::new(
                    EventType::BuildSummary,
                    if errors == 0 {
                        Level::Info
                    } else {
                        Level::Warn
                    },
                    &c["feature"],
                    text.to_string(),
                )
                .with_meta("errors", errors)
                .with_meta("warnings", warnings)
                .with_meta("duration_seconds", secs)
                .with_meta("status", status);
                ev.error_count = Some(errors);
                ev.warning_count = Some(warnings);
                ev.duration_ms = Some(secs.saturating_mul(1000));
                ev
            }
            None => {
                // Not the logger's shape: keep it, flagged, rather than drop it.
                let mut ev = Event::new(EventType::BuildSummary, Level::Warn, "", text.to_string());
                ev.metadata.insert("unparsed".into(), true.into());
                ev
            }
        };
        super::text::mark_line(&mut ev, line, invalid);
        out.push(ev);
    }
    fn finish(&mut self, _out: &mut Vec<Event>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Event> {
        let mut p = MasterSummaryParser;
        let mut out = Vec::new();
        for (i, l) in text.lines().enumerate() {
            let line = Line {
                bytes: l.as_bytes(),
                number: i as u64 + 1,
                original_len: None,
                unterminated: false,
            };
            p.line(&line, &mut out);
        }
        out
    }

    #[test]
    fn parses_feature_lines() {
        let ev = parse(
            "Python: 0 errors, 2 warnings (145s)\nDevelopment Tools: 1 errors, 0 warnings (0s)\n",
        );
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].feature, "Python");
        assert_eq!(ev[0].metadata["warnings"], 2);
        assert_eq!(ev[0].metadata["status"], "success");
        assert_eq!(ev[0].duration_ms, Some(145_000));
        assert_eq!(ev[1].feature, "Development Tools");
        assert_eq!(ev[1].metadata["status"], "failed");
    }

    #[test]
    fn keeps_odd_lines_flagged() {
        let ev = parse("garbage here\n");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].metadata["unparsed"], true);
    }
}
