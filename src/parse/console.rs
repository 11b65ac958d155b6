//! `docker build` console output: plain, BuildKit (`#12 3.456 `), or a CI job log of either.
//! (Placeholder: every line becomes an `output` event; the full parser replaces this.)

use super::FormatParser;
use crate::event::{Event, EventType, Level};
use crate::source::Line;

pub struct ConsoleParser;

impl ConsoleParser {
    pub fn new(_tz: jiff::tz::TimeZone) -> Self {
        ConsoleParser
    }
}

impl FormatParser for ConsoleParser {
    fn line(&mut self, line: &Line<'_>, out: &mut Vec<Event>) {
        let (text, invalid) = super::text::decode(line.bytes);
        let mut e = Event::new(EventType::Output, Level::Info, "", text.to_string());
        e.invalid_utf8 = invalid;
        e.source.line = line.number;
        out.push(e);
    }
    fn finish(&mut self, _out: &mut Vec<Event>) {}
}
