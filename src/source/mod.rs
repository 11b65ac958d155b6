//! Sources: what the user names on the command line, turned into byte streams and lines.
//!
//! `Input` is a path or stdin; a directory is a build; `.gz` is detected by its magic bytes.
//! `LineSplitter` turns chunks into lines the way `grep-searcher` does: no copy for lines
//! inside a chunk, a carry-over buffer for lines across chunk boundaries, and a hard cap
//! on line length so a 300 KB line (or a 3 GB one) never costs more than the cap.

pub mod lines;
mod progress;

pub use lines::{Line, LineSplitter};
pub use progress::Progress;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    Path(PathBuf),
}

impl Input {
    pub fn from_path(p: PathBuf) -> Input {
        if p.as_os_str() == "-" {
            Input::Stdin
        } else {
            Input::Path(p)
        }
    }
    /// The name events carry in `source.file`: the path as given, `-` for stdin.
    pub fn display_name(&self) -> String {
        match self {
            Input::Stdin => "-".into(),
            Input::Path(p) => p.display().to_string(),
        }
    }
}

/// Opens a file for reading, transparently decompressing gzip (by magic bytes, not by name).
pub fn open_file(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let f = File::open(path)?;
    let mut r = BufReader::with_capacity(256 * 1024, f);
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(r)))
    } else {
        Ok(Box::new(r))
    }
}

/// Reads a whole (small) file, gzip or not.
pub fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    open_file(path)?.read_to_end(&mut v)?;
    Ok(v)
}

/// True when stdin is not a regular file (a pipe or a terminal): then events are flushed as
/// soon as their line is complete, so `tail -F x | buildlog convert -` is live.
pub fn stdin_is_live() -> bool {
    std::fs::metadata("/dev/stdin")
        .map(|m| !m.file_type().is_file())
        .unwrap_or(true)
}
