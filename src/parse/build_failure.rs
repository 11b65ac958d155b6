//! `build-failure.log`: `>>> BUILD FAILURE: feature='...' command=#n desc='...' cmd='...' exit=n`.

use super::FormatParser;
use crate::event::{Event, EventType, Level};
use crate::source::Line;
use regex::Regex;
use std::sync::LazyLock;

// `cmd` may itself contain quotes, so it is matched greedily up to the last `' exit=`.
static LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^>>> BUILD FAILURE: feature='(?P<feature>.*?)' command=#(?P<num>\d+) desc='(?P<desc>.*?)' cmd='(?P<cmd>.*)' exit=(?P<exit>-?\d+)\s*$",
    )
    .unwrap()
});

pub const SENTINEL: &str = ">>> BUILD FAILURE";

/// The parts of a sentinel line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub feature: String,
    pub command_num: u32,
    pub description: String,
    pub command: String,
    pub exit_code: i64,
}

pub fn parse_sentinel(s: &str) -> Option<Failure> {
    let c = LINE.captures(s)?;
    Some(Failure {
        feature: c["feature"].to_string(),
        command_num: c["num"].parse().ok()?,
        description: c["desc"].to_string(),
        command: c["cmd"].to_string(),
        exit_code: c["exit"].parse().ok()?,
    })
}

/// The `build_failure` event of a sentinel line (or of an unparsable line that holds one).
pub fn failure_event(text: &str) -> Option<Event> {
    let pos = text.find(SENTINEL)?;
    let text = &text[pos..];
    Some(match parse_sentinel(text) {
        Some(f) => {
            let mut ev = Event::new(
                EventType::BuildFailure,
                Level::Fatal,
                &f.feature,
                text.to_string(),
            )
            .with_meta("command_num", f.command_num)
            .with_meta("description", f.description.clone())
            .with_meta("command", f.command.clone())
            .with_meta("exit_code", f.exit_code);
            ev.command_num = Some(f.command_num);
            ev
        }
        None => {
            let mut ev = Event::new(EventType::BuildFailure, Level::Fatal, "", text.to_string());
            ev.metadata.insert("unparsed".into(), true.into());
            ev
        }
    })
}

#[derive(Default)]
pub struct BuildFailureParser;

impl FormatParser for BuildFailureParser {
    fn line(&mut self, line: &Line<'_>, out: &mut Vec<Event>) {
        let (text, invalid) = super::text::decode(line.bytes);
        if text.trim().is_empty() {
            return;
        }
        let mut ev = failure_event(&text).unwrap_or_else(|| {
            let mut ev = Event::new(EventType::Message, Level::Info, "", text.to_string());
            ev.metadata.insert("unparsed".into(), true.into());
            ev
        });
        super::text::mark_line(&mut ev, line, invalid);
        out.push(ev);
    }
    fn finish(&mut self, _out: &mut Vec<Event>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_corpus_sentinel() {
        let s = r#">>> BUILD FAILURE: feature='Java Development' command=#2 desc='Installing jdtls' cmd='bash -c echo "curl: (22) The requested URL returned error: 404"; echo "E: jdtls archive could not be downloaded" >&2; exit 22' exit=22"#;
        let f = parse_sentinel(s).unwrap();
        assert_eq!(f.feature, "Java Development");
        assert_eq!(f.command_num, 2);
        assert_eq!(f.description, "Installing jdtls");
        assert!(f.command.ends_with("exit 22"));
        assert_eq!(f.exit_code, 22);
        let ev = failure_event(s).unwrap();
        assert_eq!(ev.metadata["exit_code"], 22);
        assert_eq!(ev.level, Level::Fatal);
    }

    #[test]
    fn finds_the_sentinel_behind_a_prefix() {
        let ev = failure_event(
            "#9 12.3 >>> BUILD FAILURE: feature='Rust' command=#2 desc='x' cmd='y' exit=101",
        )
        .unwrap();
        assert_eq!(ev.feature, "Rust");
        assert!(parse_sentinel(">>> BUILD FAILURE: nonsense").is_none());
    }
}
