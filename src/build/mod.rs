//! Builds: which file of a log directory is what, which parser reads it, and how the events
//! of all of a build's files become one stream with one identity.
//!
//! Batch (`batch`), follow (`follow`) and the Fluent Bit plugin all hand their events to one
//! `assemble::Assembler` per build: it matches the text logs' events with the JSON logger's
//! twins, learns the build's UTC offset, keeps time in order and stamps identities, so that
//! the same build gives the same events whichever way it is read.

pub mod assemble;
pub mod batch;
pub mod follow;
pub mod identity;
pub mod kind;
mod parallel;
mod read_buffer;

pub(crate) use batch::lost;
pub use batch::{parse_inputs, parse_inputs_as_json, read_back, JsonOut};

use crate::event::Event;
use crate::parse::FormatParser;
use crate::source::LineSplitter;

/// The one loop from a file's bytes to its parser's events, whoever reads the file (batch,
/// follow, the plugin): chunks in, complete lines to the parser, events out.
pub struct FileParser {
    splitter: LineSplitter,
}

impl FileParser {
    pub fn new(max_line_bytes: usize) -> Self {
        FileParser {
            splitter: LineSplitter::new(max_line_bytes),
        }
    }

    /// A chunk of the file; the events of the lines it completes are appended to `out`.
    pub fn feed(&mut self, parser: &mut dyn FormatParser, bytes: &[u8], out: &mut Vec<Event>) {
        let _ = self.splitter.push::<()>(bytes, &mut |l| {
            parser.line(&l, out);
            Ok(())
        });
    }

    /// The file ended: its last line, then whatever the parser still holds.
    pub fn finish(&mut self, parser: &mut dyn FormatParser, out: &mut Vec<Event>) {
        let _ = self.splitter.finish::<()>(&mut |l| {
            parser.line(&l, out);
            Ok(())
        });
        parser.finish(out);
    }

    /// Bytes of a last line still waiting for its newline.
    pub fn pending_bytes(&self) -> u64 {
        self.splitter.pending_bytes()
    }
}

/// What reading the inputs found.
#[derive(Debug, Default, Clone)]
pub struct ParseReport {
    pub files: u64,
    pub bytes: u64,
    pub events: u64,
    /// One line per input that could not be read, naming it.
    pub errors: Vec<String>,
    /// Files in build directories that are not the logger's and were left alone.
    pub skipped: Vec<String>,
    /// Things the user should know that did not stop the conversion (a `--timezone` the
    /// JSON logger contradicts, say).
    pub warnings: Vec<String>,
}

impl ParseReport {
    /// Adds what another part of the same reading found, after what this one holds.
    pub fn absorb(&mut self, other: ParseReport) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.events += other.events;
        self.errors.extend(other.errors);
        self.skipped.extend(other.skipped);
        self.warnings.extend(other.warnings);
    }
}
