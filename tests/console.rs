//! The console parser over the corpus's `docker build` console logs.

use buildlog::event::{Event, EventType};
use buildlog::parse::console::ConsoleParser;
use buildlog::parse::FormatParser;
use buildlog::source::LineSplitter;
use jiff::tz::TimeZone;
use std::path::PathBuf;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/corpus")
        .join(name)
}

/// Parses `bytes` fed in `chunks`-sized pieces (whole when 0), with lines capped at `max`.
fn parse_chunked(bytes: &[u8], chunk: usize, max: usize) -> Vec<Event> {
    let mut parser = ConsoleParser::new(TimeZone::UTC);
    let mut splitter = LineSplitter::new(max);
    let mut out = Vec::new();
    let mut f = |l: buildlog::source::Line<'_>| -> Result<(), ()> {
        parser.line(&l, &mut out);
        Ok(())
    };
    if chunk == 0 {
        splitter.push(bytes, &mut f).unwrap();
    } else {
        for c in bytes.chunks(chunk) {
            splitter.push(c, &mut f).unwrap();
        }
    }
    splitter.finish(&mut f).unwrap();
    parser.finish(&mut out);
    out
}

fn parse_file(name: &str) -> Vec<Event> {
    let bytes = std::fs::read(corpus(name)).unwrap();
    parse_chunked(&bytes, 0, 256 * 1024)
}

#[test]
#[ignore]
fn dump() {
    let name = std::env::var("DUMP").unwrap();
    for e in parse_file(&name) {
        if e.event_type != EventType::Output || std::env::var("ALL").is_ok() {
            println!("{}", e.to_json());
        }
    }
}
