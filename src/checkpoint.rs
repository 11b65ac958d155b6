//! Checkpoints for `ship --follow`: the positions file in `--state-dir`.
//!
//! Per followed file: its identity (device, inode, and a hash of its first bytes, so that a
//! recycled inode is not mistaken for the same file), the offset of the last line boundary
//! whose events every sink acknowledged, and the number of the file's events delivered (`seq`).
//!
//! Resuming re-parses each file from its start and suppresses the events numbered below
//! `seq`. The parser is a state machine whose output depends on everything before (feature,
//! command, date, time, the scrubber's PEM state); re-reading rebuilds that state exactly
//! without serialising it, and because event ids and timestamps are deterministic, the events
//! sent after a restart are the very ones that would have been sent without it. The cost is
//! re-reading what was already shipped (a few MB per build at most; parsing runs at hundreds
//! of MB/s). See docs/operations.md.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How many leading bytes identify a file (fewer while the file is shorter).
pub const FINGERPRINT_BYTES: u64 = 256;
const FILE_NAME: &str = "positions.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    pub dev: u64,
    pub ino: u64,
    /// xxh3 of the first `fingerprint_len` bytes.
    pub fingerprint: u64,
    pub fingerprint_len: u64,
    /// Byte offset of a line boundary: everything before it is delivered.
    pub offset: u64,
    /// Events of this file numbered below this are delivered.
    pub seq: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Positions {
    pub version: u32,
    /// Keyed by the path as followed (the events' `source.file`).
    pub files: BTreeMap<String, FilePosition>,
    /// The correlation id of each followed build, by the path followed.
    #[serde(default)]
    pub builds: BTreeMap<String, String>,
}

/// The hash of the first `len` bytes of `file` (None when it has fewer).
pub fn fingerprint(file: &mut File, len: u64) -> Option<u64> {
    use std::io::Seek;
    let mut buf = vec![0u8; len as usize];
    file.seek(std::io::SeekFrom::Start(0)).ok()?;
    file.read_exact(&mut buf).ok()?;
    Some(xxhash_rust::xxh3::xxh3_64(&buf))
}

impl FilePosition {
    /// Is `file` (open at `path`) the file this position was taken from?
    pub fn matches(&self, file: &mut File) -> bool {
        let Ok(m) = file.metadata() else {
            return false;
        };
        (m.dev(), m.ino()) == (self.dev, self.ino)
            && m.len() >= self.offset
            && fingerprint(file, self.fingerprint_len) == Some(self.fingerprint)
    }

    /// The position of `path` at `offset`/`seq`, if it is still the file `(dev, ino)`.
    pub fn take(path: &Path, dev: u64, ino: u64, offset: u64, seq: u64) -> Option<FilePosition> {
        let mut f = File::open(path).ok()?;
        let m = f.metadata().ok()?;
        if (m.dev(), m.ino()) != (dev, ino) {
            return None;
        }
        let len = FINGERPRINT_BYTES.min(offset).min(m.len());
        Some(FilePosition {
            dev,
            ino,
            fingerprint: fingerprint(&mut f, len)?,
            fingerprint_len: len,
            offset,
            seq,
        })
    }
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The saved positions; none when there is no file yet. An unreadable file is an error
    /// (starting over silently would send everything again).
    pub fn load(&self) -> anyhow::Result<Positions> {
        let p = self.path();
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("{}: not a positions file", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Positions::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    /// Writes atomically: a temporary file, fsync, rename over the old one, fsync the directory.
    /// A crash at any point leaves either the old positions or the new ones.
    pub fn save(&self, pos: &Positions) -> anyhow::Result<()> {
        let path = self.path();
        crate::fsutil::write_atomically(&path, &serde_json::to_vec_pretty(pos)?)
            .with_context(|| format!("writing {}", path.display()))?;
        // The rename itself is durable once the directory is synced.
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_identity() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("a-install.log");
        std::fs::write(&log, b"line one\nline two\n").unwrap();
        let m = std::fs::metadata(&log).unwrap();
        let p = FilePosition::take(&log, m.dev(), m.ino(), 9, 3).unwrap();
        assert_eq!(p.fingerprint_len, 9);
        assert_eq!(p.offset, 9);
        let store = Store::new(&d.path().join("state")).unwrap();
        assert_eq!(store.load().unwrap(), Positions::default());
        let mut all = Positions::default();
        all.files.insert(log.display().to_string(), p.clone());
        store.save(&all).unwrap();
        assert_eq!(store.load().unwrap(), all);
        // No temporary file left beside it.
        assert_eq!(std::fs::read_dir(&store.dir).unwrap().count(), 1);

        assert!(p.matches(&mut File::open(&log).unwrap()));
        // Same inode, other first bytes: a different file.
        std::fs::write(&log, b"LINE ONE\nline two\n").unwrap();
        assert!(!p.matches(&mut File::open(&log).unwrap()));
        // Shorter than the delivered offset: truncated.
        std::fs::write(&log, b"line").unwrap();
        assert!(!p.matches(&mut File::open(&log).unwrap()));
        // Another inode.
        let other = d.path().join("b-install.log");
        std::fs::write(&other, b"line one\nline two\n").unwrap();
        assert!(!p.matches(&mut File::open(&other).unwrap()));
    }

    #[test]
    fn corrupt_positions_file_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path()).unwrap();
        std::fs::write(store.path(), b"{not json").unwrap();
        assert!(store.load().is_err());
    }
}
