//! Following a build while it is written, like `tail -F` over its log directory.
//!
//! Each poll lists the directory, starts a parser for every logger file that appeared, and
//! reads what every file gained since the last poll. A partial last line is held until its
//! newline arrives (the `LineSplitter` keeps it). A file that shrank was truncated (copy and
//! truncate): it is read again from its start. A path whose inode changed was rotated: the
//! old file is read to its end through the handle still open, then the new one from its start.
//!
//! Nothing is "finished" while following: an install log without a summary is a feature still
//! running, not an aborted one. The JSON logger's files are not read here (their events are
//! written after the text lines they repeat); see docs/convert.md.
//!
//! For `ship --follow`, a follower also resumes from checkpoints (`crate::checkpoint`): a
//! file whose identity matches its saved position is parsed from its start again, and its
//! events numbered below the saved `seq` are not handed on. After each read it reports a
//! `Mark` (how far the file's complete lines go, and how many of its events were handed on).

use super::build::{derive_build_id, read_header, slug};
use super::build_failure::BuildFailureParser;
use super::install_log::InstallLogParser;
use super::master_summary::MasterSummaryParser;
use super::{FormatParser, ParseOptions, ParseReport};
use crate::checkpoint::FilePosition;
use crate::enrich::Enricher;
use crate::event::{Event, Timestamp};
use crate::source::LineSplitter;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Install,
    Master,
    Failure,
}

/// One followed file.
struct Tail {
    file: File,
    inode: (u64, u64),
    offset: u64,
    splitter: LineSplitter,
    parser: Box<dyn FormatParser + Send>,
    kind: Kind,
    name: String,
    source: String,
    /// Events numbered below this were delivered before a restart: not handed on again.
    skip_below: u64,
    /// One past the number of the last event of this file handed on (or skipped).
    next_seq: u64,
}

/// The consumer of the events failed (a closed pipe, every sink gone, or a stop request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGone;

/// How far one followed file has been handed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The path as followed (the events' `source.file`).
    pub source: String,
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Offset of the end of the last complete line read.
    pub offset: u64,
    /// Every event of the file numbered below this has been handed on.
    pub next_seq: u64,
}

impl Tail {
    fn open(path: &Path, dir: &Path, kind: Kind, opts: &ParseOptions) -> io::Result<Tail> {
        let file = File::open(path)?;
        let m = file.metadata()?;
        Ok(Tail {
            skip_below: 0,
            next_seq: 0,
            file,
            inode: (m.dev(), m.ino()),
            offset: 0,
            splitter: LineSplitter::new(opts.max_line_bytes),
            parser: new_parser(kind, opts),
            kind,
            name: path.strip_prefix(dir).unwrap_or(path).display().to_string(),
            source: path.display().to_string(),
        })
    }

    /// Reads what the file gained; complete lines go through the parser into `out`.
    fn read_new(&mut self, out: &mut Vec<Event>, report: &mut ParseReport) -> io::Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        self.file.seek(SeekFrom::Start(self.offset))?;
        loop {
            let n = match self.file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.offset += n as u64;
            report.bytes += n as u64;
            let parser = &mut self.parser;
            let _ = self.splitter.push::<()>(&buf[..n], &mut |l| {
                parser.line(&l, out);
                Ok(())
            });
        }
    }
}

impl Tail {
    fn mark(&self) -> Mark {
        Mark {
            source: self.source.clone(),
            path: PathBuf::from(&self.source),
            dev: self.inode.0,
            ino: self.inode.1,
            offset: self.offset - self.splitter.pending_bytes(),
            next_seq: self.next_seq,
        }
    }
}

fn new_parser(kind: Kind, opts: &ParseOptions) -> Box<dyn FormatParser + Send> {
    match kind {
        Kind::Install => Box::new(InstallLogParser::new(opts.timezone.clone())),
        Kind::Master => Box::new(MasterSummaryParser),
        Kind::Failure => Box::new(BuildFailureParser),
    }
}

fn kind_of(name: &str) -> Option<Kind> {
    if name.ends_with("-install.log") {
        Some(Kind::Install)
    } else if name == "master-summary.log" {
        Some(Kind::Master)
    } else if name == "build-failure.log" {
        Some(Kind::Failure)
    } else {
        None
    }
}

/// The state of one followed build directory (or one file of it).
pub struct Follower<'a> {
    dir: PathBuf,
    /// Follow only this file of `dir`.
    only: Option<PathBuf>,
    opts: &'a ParseOptions,
    /// Saved positions not yet matched with an opened file, by `source`.
    resume: HashMap<String, FilePosition>,
    tails: BTreeMap<PathBuf, Tail>,
    /// Rotated-away files, read to their end on the next poll, then dropped.
    retired: Vec<Tail>,
    enricher: Option<Enricher>,
    last_time: HashMap<String, Timestamp>,
    report: ParseReport,
    /// Events not handed on because a checkpoint says they were delivered.
    pub skipped: u64,
    /// The build's id from a checkpoint: derived ids depend on which files existed when the
    /// first event was read, so a restart must reuse the id, not derive it again.
    saved_id: Option<String>,
}

impl<'a> Follower<'a> {
    /// Follows `path`: a build log directory, or one file in it. `resume`: saved positions.
    pub fn new(
        path: &Path,
        opts: &'a ParseOptions,
        resume: HashMap<String, FilePosition>,
    ) -> Follower<'a> {
        let (dir, only) = if path.is_file() {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            (dir, Some(path.to_path_buf()))
        } else {
            (path.to_path_buf(), None)
        };
        Follower {
            dir,
            only,
            opts,
            resume,
            tails: BTreeMap::new(),
            retired: Vec::new(),
            enricher: None,
            last_time: HashMap::new(),
            report: ParseReport::default(),
            skipped: 0,
            saved_id: None,
        }
    }

    /// Resumes with the build id a checkpoint recorded (unless `--correlation-id` is given).
    pub fn with_correlation_id(mut self, id: Option<String>) -> Self {
        self.saved_id = id;
        self
    }

    pub fn report(&self) -> &ParseReport {
        &self.report
    }

    pub fn into_report(self) -> ParseReport {
        self.report
    }

    /// Reads what `tail` gained and hands its events on. Err: the consumer is gone.
    fn pump(
        &mut self,
        tail: &mut Tail,
        emit: &mut dyn FnMut(Event) -> io::Result<()>,
    ) -> Result<(), ConsumerGone> {
        let mut events = Vec::new();
        if let Err(e) = tail.read_new(&mut events, &mut self.report) {
            self.report.errors.push(format!("{}: {e}", tail.source));
        }
        if events.is_empty() {
            return Ok(());
        }
        let enricher = self.enricher.get_or_insert_with(|| {
            let id = self
                .opts
                .correlation_id
                .clone()
                .or_else(|| self.saved_id.take())
                .unwrap_or_else(|| build_id(&self.dir, self.opts));
            Enricher::new(id, self.opts.scrub)
        });
        for mut e in events {
            match tail.kind {
                Kind::Install => {
                    let t = self.last_time.entry(e.feature.clone()).or_default();
                    *t = (*t).max(e.timestamp);
                }
                Kind::Master | Kind::Failure => {
                    e.timestamp = self.last_time.get(&e.feature).copied().unwrap_or_default()
                }
            }
            enricher.apply(&mut e, &tail.source, &tail.name);
            tail.next_seq = tail.next_seq.max(e.seq + 1);
            if e.seq < tail.skip_below {
                self.skipped += 1;
                continue;
            }
            self.report.events += 1;
            emit(e).map_err(|_| ConsumerGone)?;
        }
        Ok(())
    }

    /// Notices new, rotated and truncated files.
    fn scan(&mut self) -> io::Result<()> {
        let found = match &self.only {
            Some(p) if p.is_file() => {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                vec![(p.clone(), kind_of(&name).unwrap_or(Kind::Install))]
            }
            Some(_) => Vec::new(),
            None => list(&self.dir)?,
        };
        for (path, kind) in found {
            if let Some(tail) = self.tails.get(&path) {
                let Ok(m) = std::fs::metadata(&path) else {
                    continue;
                };
                if (m.dev(), m.ino()) != tail.inode {
                    // Rotated: finish the old file through its open handle, then the new one.
                    let old = self.tails.remove(&path).expect("present");
                    self.retired.push(old);
                } else if m.len() < tail.offset {
                    // Copy-truncated: the file starts over.
                    self.tails.remove(&path);
                } else {
                    continue;
                }
            }
            match Tail::open(&path, &self.dir, kind, self.opts) {
                Ok(mut t) => {
                    // A saved position applies to the first file opened at its path, if it
                    // is still the same file (not one rotated or truncated since).
                    if let Some(pos) = self.resume.remove(&t.source) {
                        if pos.matches(&mut t.file) {
                            t.skip_below = pos.seq;
                        } else {
                            tracing::info!(
                                "{}: not the file of the checkpoint any more; shipping it from its start",
                                t.source
                            );
                        }
                    }
                    self.report.files += 1;
                    self.tails.insert(path, t);
                }
                Err(e) => self.report.errors.push(format!("{}: {e}", path.display())),
            }
        }
        Ok(())
    }

    /// Reads what every file gained, handing events to `emit` and, after each file, its
    /// `Mark` to `mark`. Err: `emit` failed (the consumer is gone).
    pub fn poll(
        &mut self,
        emit: &mut dyn FnMut(Event) -> io::Result<()>,
        mark: &mut dyn FnMut(Mark),
    ) -> Result<(), ConsumerGone> {
        if let Err(e) = self.scan() {
            // The directory may not exist yet: the build has not started.
            tracing::debug!("waiting for {}: {e}", self.dir.display());
        }
        for mut old in std::mem::take(&mut self.retired) {
            self.pump(&mut old, emit)?;
            mark(old.mark());
        }
        // Install logs first (in name order), then the summaries that follow from them.
        let mut paths: Vec<PathBuf> = self.tails.keys().cloned().collect();
        paths.sort_by_key(|p| (self.tails[p].kind != Kind::Install, p.clone()));
        for p in paths {
            let mut tail = self.tails.remove(&p).expect("listed");
            let r = self.pump(&mut tail, emit);
            if r.is_ok() {
                mark(tail.mark());
            }
            self.tails.insert(p, tail);
            r?;
        }
        Ok(())
    }
}

/// Follows the build log directory `dir` until `stop` is set, handing events to `emit` as
/// their lines complete. Polls every `interval`.
pub fn follow_dir(
    dir: &Path,
    opts: &ParseOptions,
    interval: Duration,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(Event) -> io::Result<()>,
) -> ParseReport {
    let mut f = Follower::new(dir, opts, HashMap::new());
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        if f.poll(emit, &mut |_| {}).is_err() || stopping {
            return f.report;
        }
        std::thread::sleep(interval);
    }
}

/// The build's id while it is being written: the one in `json/build-metadata.json` if the
/// build asked for it, else derived from its first feature's header (as `convert` derives it).
pub fn build_id(dir: &Path, opts: &ParseOptions) -> String {
    let meta = std::fs::read(dir.join("json/build-metadata.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("correlation_id")?.as_str().map(str::to_string));
    if let Some(id) = meta {
        return id;
    }
    let mut first: Option<(i64, String, String, String)> = None;
    for (p, kind) in list(dir).unwrap_or_default() {
        if kind != Kind::Install {
            continue;
        }
        if let Some((feature, start)) = read_header(&p) {
            let key = super::clock::parse_date_time(&start)
                .map(|(d, t)| {
                    let mut c = super::clock::Clock::new(opts.timezone.clone());
                    c.set_datetime(d, t).seconds()
                })
                .unwrap_or(i64::MAX);
            if first.as_ref().is_none_or(|f| key < f.0) {
                first = Some((key, slug(&feature), feature, start));
            }
        }
    }
    match first {
        Some((_, s, f, start)) => derive_build_id(&s, &f, &start, &opts.timezone),
        None => crate::enrich::ids::derived_correlation_id(0, dir.display().to_string().as_bytes()),
    }
}

fn list(dir: &Path) -> io::Result<Vec<(PathBuf, Kind)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if let Some(k) = kind_of(&name) {
            if p.is_file() {
                v.push((p, k));
            }
        }
    }
    v.sort();
    Ok(v)
}
