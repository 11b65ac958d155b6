//! Parsers, one module per input format, each a streaming state machine over lines.
//!
//! A parser sees one line at a time (`FormatParser::line`) and appends the events it
//! completes to `out`; it never does I/O and knows nothing of files or directories.
//! `crate::build` decides which file is what, feeds each one's lines to its parser and
//! assembles one build's events.

pub mod build_failure;
pub mod clock;
pub mod console;
pub mod detect;
pub mod grammar;
pub mod install_log;
pub mod json_logger;
pub mod master_summary;
pub mod text;

use crate::event::Event;
use crate::source::Line;

/// Input formats. `Auto` detects from content (and, in a directory, from the file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Auto,
    /// `<feature>-install.log`
    InstallLog,
    /// `master-summary.log`
    MasterSummary,
    /// `build-failure.log` (`>>> BUILD FAILURE: ...` lines)
    BuildFailure,
    /// The JSON logger's `json/<feature>.jsonl` and `json/build-summary.jsonl`
    Json,
    /// `docker build` console output: plain, BuildKit, or a CI job log of either
    Console,
}

/// How to parse. Built from the command line by `cli::input`.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    pub format: Format,
    /// The zone the build's local times are in.
    pub timezone: jiff::tz::TimeZone,
    /// `timezone` was given: the JSON logger's UTC times only check it (else they teach it).
    pub timezone_given: bool,
    /// An explicit correlation id for every event.
    pub correlation_id: Option<String>,
    pub scrub: bool,
    pub max_line_bytes: usize,
    /// Builds parsed at once when the inputs hold several (1: one after the other). The
    /// events are the same, in the same order, whatever the number.
    pub jobs: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            format: Format::Auto,
            timezone: jiff::tz::TimeZone::UTC,
            timezone_given: false,
            correlation_id: None,
            scrub: true,
            max_line_bytes: 256 * 1024,
            jobs: 1,
        }
    }
}

/// A streaming parser of one input format.
pub trait FormatParser {
    /// One complete line (without its newline). Completed events are appended to `out`.
    fn line(&mut self, line: &Line<'_>, out: &mut Vec<Event>);
    /// The input ended: emit whatever is still open (flagged `incomplete` where it was cut).
    fn finish(&mut self, out: &mut Vec<Event>);
    /// What `build-failure.log` says of this input's abort (install logs use it to complete
    /// the aborted command).
    fn abort_hint(&mut self, _hint: install_log::AbortHint) {}
    /// The feature this input is of, once known.
    fn feature(&self) -> Option<&str> {
        None
    }
}
