//! Following a build while it is written, like `tail -F` over its log directory, with the
//! same result as converting the finished directory.
//!
//! Each poll lists the directory and its `json/`, opens every logger file that appeared, and
//! reads what every file gained since the last poll. A partial last line is held until its
//! newline arrives. A file that shrank was truncated (copy and truncate): it is read again
//! from its start. A path whose inode changed was rotated: the old file is read to its end
//! through the handle still open, then the new one from its start.
//!
//! The events go through the same `Assembler` as in batch. Since the JSON logger writes its
//! line just after the text line it repeats, a text event that has a JSON twin waits for it
//! (at most `FollowTiming::twin_wait`), and the events after it in the same file wait behind
//! it, so that they are timed as in batch. The build's id is decided as in batch, as soon as
//! what decides it has been written (the first feature's JSON line or its first command
//! block).
//!
//! A look reads at most `FollowLimits::round_bytes` of each text log, and none of a file that
//! holds `FollowLimits::max_pending` waiting events; install logs are read in the order their
//! features started, each once the earlier ones are read to their end. A backlog (a build
//! followed late) is so read in rounds, one feature after another as batch writes it, with
//! the next look at once, and memory stays bounded.
//!
//! The build is over when `build-failure.log` names the feature that aborted (that feature's
//! log is then closed as an aborted one, as at the end of a batch read) or when no file has
//! grown for `FollowTiming::idle_end`; then every open feature is closed, the JSON logger's
//! unmatched events are emitted, and `finished()` says so.
//!
//! For `ship --follow`, a follower also resumes from checkpoints (`crate::checkpoint`): a
//! file whose identity matches its saved position is parsed from its start again, and its
//! events numbered below the saved `seq` are not handed on. After each read it reports a
//! `Mark` (how far the file's complete lines go, and how many of its events were handed on).

use super::assemble::{twin_eligible, Assembler};
use super::batch::{json_line, JsonLine, PARSE_PIECE};
use super::identity;
use super::kind::FileKind;
use super::{FileParser, ParseReport};
use crate::checkpoint::FilePosition;
use crate::enrich::build_events::BuildTracker;
use crate::event::{Event, EventType};
use crate::parse::build_failure::BuildFailureParser;
use crate::parse::install_log::{AbortHint, InstallLogParser};
use crate::parse::master_summary::MasterSummaryParser;
use crate::parse::{FormatParser, ParseOptions};
use crate::recent::RecentMap;
use crate::source::Line;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use waiting::{Step, Waiting};

mod waiting;

/// How long a follower waits for what completes an event, and for the build to go on.
#[derive(Debug, Clone, Copy)]
pub struct FollowTiming {
    /// A text event with a JSON twin waits this long for it before it goes out without.
    pub twin_wait: Duration,
    /// No file grew for this long: the build is over. `None`: never.
    pub idle_end: Option<Duration>,
}

impl Default for FollowTiming {
    fn default() -> Self {
        FollowTiming {
            twin_wait: Duration::from_secs(5),
            idle_end: Some(Duration::from_secs(600)),
        }
    }
}

/// How much a follower takes in before it hands events on: a backlog (a build followed
/// late, a restart without checkpoints) is read in rounds, not held in memory whole.
#[derive(Debug, Clone, Copy)]
pub struct FollowLimits {
    /// A text log is read at most this much per look (a `json/` file is read whole: its
    /// lines are the twins the text events wait for).
    pub round_bytes: u64,
    /// While this many of a file's events wait (for JSON twins, for the build's id, or for
    /// the first feature's first event), the file is not read further. Every such wait ends
    /// (`FollowTiming::twin_wait` at most), so reading resumes.
    pub max_pending: usize,
}

impl Default for FollowLimits {
    fn default() -> Self {
        FollowLimits {
            round_bytes: 256 * 1024,
            max_pending: 16 * 1024,
        }
    }
}

/// A `json/` file's lines as events (its twins, or `build-summary.jsonl`'s lines), the
/// logger's id in `logger_correlation_id`.
struct JsonLines;

impl FormatParser for JsonLines {
    fn line(&mut self, line: &Line<'_>, out: &mut Vec<Event>) {
        match json_line(line.bytes, line.number) {
            Some(JsonLine::Event(mut e, c)) | Some(JsonLine::Summary(mut e, c)) => {
                e.logger_correlation_id = c;
                out.push(e);
            }
            Some(JsonLine::Metadata) | None => {}
        }
    }
    fn finish(&mut self, _out: &mut Vec<Event>) {}
}

/// When a pending event was parsed: the time, and the poll (a twin is only given up on
/// after a later poll has read the JSON files, however slow the machine).
#[derive(Clone, Copy)]
struct Parsed {
    at: Instant,
    poll: u64,
}

/// How much of a file one read takes.
const READ_BYTES: usize = 256 * 1024;

/// One followed file.
struct Tail {
    /// The file read, or none where its lines are handed in (`Follower::feed`).
    file: Option<File>,
    inode: (u64, u64),
    offset: u64,
    lines: FileParser,
    parser: Box<dyn FormatParser + Send>,
    kind: FileKind,
    name: String,
    source: String,
    /// Parsed, not yet handed on, with when each was parsed.
    pending: Waiting,
    /// The events of one read, on their way to `pending` (kept for its capacity).
    parsed: Vec<Event>,
    /// The file holds bytes not read yet (the last read stopped at its limit, or the file
    /// was not read: enough of its events were waiting, or a feature that started earlier
    /// has not been read to its end).
    unread: bool,
    /// An install log's `Start Time:` (UTC seconds), once its header is final.
    start: Option<Option<i64>>,
    /// The parser was finished (the feature aborted, or the build is over).
    closed: bool,
    /// Its JSON twins that no text event claimed were emitted.
    leftovers_done: bool,
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
    fn open(path: &Path, dir: &Path, kind: FileKind, opts: &ParseOptions) -> io::Result<Tail> {
        let file = File::open(path)?;
        let m = file.metadata()?;
        let mut t = Tail::fed(path, dir, kind, opts);
        t.file = Some(file);
        t.inode = (m.dev(), m.ino());
        Ok(t)
    }

    /// A file whose lines are handed in.
    fn fed(path: &Path, dir: &Path, kind: FileKind, opts: &ParseOptions) -> Tail {
        Tail {
            file: None,
            inode: (0, 0),
            offset: 0,
            lines: FileParser::new(opts.max_line_bytes),
            parser: new_parser(&kind, opts),
            kind,
            name: path.strip_prefix(dir).unwrap_or(path).display().to_string(),
            source: path.display().to_string(),
            pending: Waiting::default(),
            parsed: Vec::new(),
            unread: false,
            start: None,
            closed: false,
            leftovers_done: false,
        }
    }

    /// Bytes of the file, handed in or read; the events of their complete lines are queued.
    fn take(&mut self, bytes: &[u8], poll: u64) {
        let at = Instant::now();
        // Fed a piece at a time, as in batch; queued in one step (`Waiting::append`).
        for piece in bytes.chunks(PARSE_PIECE) {
            self.lines
                .feed(self.parser.as_mut(), piece, &mut self.parsed);
        }
        self.pending.append(&mut self.parsed, Parsed { at, poll });
    }

    /// Reads what the file gained (at most `limit` bytes of it) through `buf`; the events of
    /// its complete lines are queued.
    fn read_new(
        &mut self,
        report: &mut ParseReport,
        poll: u64,
        buf: &mut [u8],
        limit: u64,
    ) -> io::Result<u64> {
        self.unread = false;
        let Some(mut file) = self.file.take().filter(|_| !self.closed) else {
            return Ok(0);
        };
        let r = self.read_from(&mut file, report, poll, buf, limit);
        self.file = Some(file);
        r
    }

    fn read_from(
        &mut self,
        file: &mut File,
        report: &mut ParseReport,
        poll: u64,
        buf: &mut [u8],
        limit: u64,
    ) -> io::Result<u64> {
        let mut total = 0;
        file.seek(SeekFrom::Start(self.offset))?;
        loop {
            if total >= limit {
                self.unread = true;
                break;
            }
            let room = buf
                .len()
                .min(usize::try_from(limit - total).unwrap_or(usize::MAX));
            let n = match file.read(&mut buf[..room]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.offset += n as u64;
            total += n as u64;
            report.bytes += n as u64;
            self.take(&buf[..n], poll);
        }
        Ok(total)
    }

    /// The file is complete: its last line and what its parser still holds are queued.
    fn close(&mut self, report: &mut ParseReport, poll: u64, buf: &mut [u8]) {
        if self.closed {
            return;
        }
        if let Err(e) = self.read_new(report, poll, buf, u64::MAX) {
            report.errors.push(format!("{}: {e}", self.source));
        }
        self.lines.finish(self.parser.as_mut(), &mut self.parsed);
        let when = Parsed {
            at: Instant::now(),
            poll,
        };
        self.pending.append(&mut self.parsed, when);
        self.closed = true;
    }

    /// When an install log's feature started (as batch orders them); `i64::MAX` for other
    /// files, or while the header is not written.
    fn start_seconds(&mut self, tz: &jiff::tz::TimeZone) -> i64 {
        self.known_start(tz).unwrap_or(i64::MAX)
    }

    /// An install log's `Start Time:`, read once its header is final; none for other files.
    fn known_start(&mut self, tz: &jiff::tz::TimeZone) -> Option<i64> {
        if self.start.is_none() && matches!(self.kind, FileKind::Install(_)) {
            let mut head = Vec::new();
            if let Ok(f) = File::open(&self.source) {
                let _ = f.take(identity::START_SCAN as u64).read_to_end(&mut head);
            }
            let start = identity::start_seconds(&head, tz);
            // Without a `Start Time:` in its first bytes, the file never gets one.
            if start.is_some() || head.len() >= identity::START_SCAN || self.closed {
                self.start = Some(start);
            }
        }
        self.start.flatten()
    }

    /// The file holds more than has been read.
    fn grown(&self) -> bool {
        self.file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .is_some_and(|m| m.len() > self.offset)
    }

    fn mark(&self, next_seq: u64) -> Mark {
        Mark {
            source: self.source.clone(),
            path: PathBuf::from(&self.source),
            dev: self.inode.0,
            ino: self.inode.1,
            offset: self.offset - self.lines.pending_bytes(),
            next_seq,
        }
    }

    fn slug(&self) -> &str {
        match &self.kind {
            FileKind::Install(s) | FileKind::JsonFeature(s) => s,
            _ => "",
        }
    }
}

fn new_parser(kind: &FileKind, opts: &ParseOptions) -> Box<dyn FormatParser + Send> {
    match kind {
        FileKind::Master => Box::new(MasterSummaryParser),
        FileKind::Failure => Box::new(BuildFailureParser),
        FileKind::JsonFeature(_) | FileKind::JsonBuildSummary | FileKind::JsonMetadata => {
            Box::new(JsonLines)
        }
        _ => {
            Box::new(InstallLogParser::new(opts.timezone.clone()).scanning_for_scrubber(opts.scrub))
        }
    }
}

/// Per source (its path as followed): events below `skip_below` were delivered before a restart; `next_seq` is one
/// past the last handed on.
#[derive(Default, Clone, Copy)]
struct Seqs {
    skip_below: u64,
    next_seq: u64,
}

/// The state of one followed build directory (or one file of it).
pub struct Follower {
    dir: PathBuf,
    /// Follow only this file of `dir`.
    only: Option<PathBuf>,
    opts: ParseOptions,
    timing: FollowTiming,
    limits: FollowLimits,
    /// Saved positions not yet matched with an opened file, by `source`.
    resume: HashMap<String, FilePosition>,
    tails: BTreeMap<PathBuf, Tail>,
    /// Rotated-away files, read to their end on the next poll, then dropped.
    retired: Vec<Tail>,
    asm: Assembler,
    seqs: RecentMap<Seqs>,
    report: ParseReport,
    /// Events not handed on because a checkpoint says they were delivered.
    pub skipped: u64,
    /// The build's id from a checkpoint: a restart must reuse the id, not decide it again.
    saved_id: Option<String>,
    last_growth: Instant,
    /// An event that could have a JSON twin waited in vain while there was no `json/`: the
    /// build does not log JSON, nothing waits for twins any more.
    no_json_logging: bool,
    /// The sentinel named the aborted feature, or the build went idle.
    over: bool,
    finished: bool,
    /// Polls so far.
    polls: u64,
    /// What each read of a file goes into.
    read_buf: Box<[u8]>,
    /// The last look stopped reading a file at its round's limit.
    more_to_read: bool,
    /// The build's `build_start` and `build_end`, as in batch.
    tracker: BuildTracker,
    /// An event has been handed on.
    started: bool,
    /// Lines are handed in (`feed`), the directory is not read.
    fed: bool,
}

impl Follower {
    /// Follows `path`: a build log directory, or one file in it. `resume`: saved positions.
    pub fn new(
        path: &Path,
        opts: &ParseOptions,
        resume: HashMap<String, FilePosition>,
    ) -> Follower {
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
            opts: opts.clone(),
            timing: FollowTiming::default(),
            limits: FollowLimits::default(),
            resume,
            tails: BTreeMap::new(),
            retired: Vec::new(),
            asm: Assembler::new(
                opts.scrub,
                opts.timezone_given,
                opts.timezone.iana_name().unwrap_or("UTC"),
            ),
            seqs: RecentMap::default(),
            report: ParseReport::default(),
            skipped: 0,
            saved_id: None,
            last_growth: Instant::now(),
            no_json_logging: false,
            over: false,
            finished: false,
            polls: 0,
            read_buf: vec![0u8; READ_BYTES].into_boxed_slice(),
            more_to_read: false,
            fed: false,
            tracker: BuildTracker::new(),
            started: false,
        }
    }

    /// A follower of the build in `dir` whose lines are handed in by `feed` (the Fluent Bit
    /// plugin gets them from Fluent Bit's `tail`) instead of read from the directory.
    pub fn fed(dir: &Path, opts: &ParseOptions) -> Follower {
        let mut f = Follower::new(dir, opts, HashMap::new());
        f.dir = dir.to_path_buf();
        f.only = None;
        f.fed = true;
        f
    }

    /// Bytes of the file `path` of this build, as they come. Summary and errors logs
    /// (which repeat the install log) are ignored, as when following the directory.
    pub fn feed(&mut self, path: &Path, bytes: &[u8]) {
        if !self.tails.contains_key(path) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let in_json = path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "json");
            let kind = match FileKind::of(&name, in_json) {
                Some(FileKind::Summary(_) | FileKind::Errors(_) | FileKind::JsonMetadata) => return,
                Some(k) => k,
                None => FileKind::Install(name),
            };
            let t = Tail::fed(path, &self.dir, kind, &self.opts);
            self.report.files += 1;
            self.tails.insert(path.to_path_buf(), t);
        }
        let t = self.tails.get_mut(path).expect("inserted above");
        t.take(bytes, self.polls);
        self.report.bytes += bytes.len() as u64;
        self.last_growth = Instant::now();
        self.absorb_json(path);
    }

    /// Hands on what is complete (as `poll` does, without reading files).
    pub fn pump(
        &mut self,
        emit: &mut dyn FnMut(&mut Event) -> io::Result<()>,
    ) -> Result<(), ConsumerGone> {
        self.step(false, emit, &mut |_| {})
    }

    /// The build is over (the plugin is stopping): every feature is closed, every event
    /// handed on.
    pub fn end(
        &mut self,
        emit: &mut dyn FnMut(&mut Event) -> io::Result<()>,
    ) -> Result<(), ConsumerGone> {
        self.over = true;
        self.step(false, emit, &mut |_| {})
    }

    /// A JSON file's new lines go to the assembler as twins.
    fn absorb_json(&mut self, path: &Path) {
        let Some(t) = self.tails.get_mut(path) else {
            return;
        };
        if !is_json(&t.kind) {
            return;
        }
        let slug = t.slug().to_string();
        for e in t.pending.drain() {
            let c = e.logger_correlation_id.clone();
            if t.kind == FileKind::JsonBuildSummary {
                self.asm.push_summary_json(e, c);
            } else {
                self.asm.json_feature(&slug, &t.source, &t.name).push(e, c);
            }
        }
    }

    /// Resumes with the build id a checkpoint recorded (unless `--correlation-id` is given).
    pub fn with_correlation_id(mut self, id: Option<String>) -> Self {
        self.saved_id = id;
        self
    }

    pub fn with_timing(mut self, timing: FollowTiming) -> Self {
        self.timing = timing;
        self
    }

    pub fn with_limits(mut self, limits: FollowLimits) -> Self {
        self.limits = limits;
        self
    }

    /// A file was read only to its round's limit: the next look should come at once.
    pub fn behind(&self) -> bool {
        self.more_to_read
    }

    pub fn report(&self) -> &ParseReport {
        &self.report
    }

    pub fn into_report(mut self) -> ParseReport {
        self.report.warnings.append(&mut self.asm.warnings);
        self.report
    }

    /// The build is over and every one of its events has been handed on.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Notices new, rotated and truncated files.
    fn scan(&mut self) -> io::Result<()> {
        let found = match &self.only {
            Some(p) if p.is_file() => {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                let kind = FileKind::of(&name, false)
                    .unwrap_or_else(|| FileKind::Install(name.to_string()));
                vec![(p.clone(), kind)]
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
            match Tail::open(&path, &self.dir, kind, &self.opts) {
                Ok(mut t) => {
                    // A saved position applies to the first file opened at its path, if it
                    // is still the same file (not one rotated or truncated since).
                    if let Some(pos) = self.resume.remove(&t.source) {
                        if t.file.as_mut().is_some_and(|f| pos.matches(f)) {
                            self.seqs.entry(&t.source).skip_below = pos.seq;
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

    /// Reads what every file gained, hands on the events that are complete, and after each
    /// file its `Mark`. Err: `emit` failed (the consumer is gone).
    pub fn poll(
        &mut self,
        emit: &mut dyn FnMut(&mut Event) -> io::Result<()>,
        mark: &mut dyn FnMut(Mark),
    ) -> Result<(), ConsumerGone> {
        self.step(false, emit, mark)
    }

    /// Stops following: what waits only for time (a JSON twin) is handed on now; features
    /// still running are left open.
    pub fn stop(
        &mut self,
        emit: &mut dyn FnMut(&mut Event) -> io::Result<()>,
        mark: &mut dyn FnMut(Mark),
    ) -> Result<(), ConsumerGone> {
        self.step(true, emit, mark)
    }

    fn step(
        &mut self,
        stopping: bool,
        emit: &mut dyn FnMut(&mut Event) -> io::Result<()>,
        mark: &mut dyn FnMut(Mark),
    ) -> Result<(), ConsumerGone> {
        if self.finished {
            return Ok(());
        }
        self.polls += 1;
        if self.fed && !self.no_json_logging && !self.dir.join("json").is_dir() {
            // Lines handed in (the plugin): a build without `json/` on disk does not log
            // JSON, and nothing waits for twins.
            self.no_json_logging = true;
        }
        if !self.fed {
            if let Err(e) = self.scan() {
                // The directory may not exist yet: the build has not started.
                tracing::debug!("waiting for {}: {e}", self.dir.display());
            }
            self.read_all();
        }
        self.close_aborted();
        if !self.over {
            if let Some(idle) = self.timing.idle_end {
                if self.last_growth.elapsed() >= idle && !self.tails.is_empty() {
                    self.over = true;
                }
            }
        }
        if self.over {
            let paths: Vec<PathBuf> = self.tails.keys().cloned().collect();
            for p in paths {
                let t = self.tails.get_mut(&p).expect("listed");
                t.close(&mut self.report, self.polls, &mut self.read_buf);
            }
        }
        let force = stopping || self.over;
        if !self.decide_id(force) {
            return Ok(());
        }
        self.release(force, emit, mark)?;
        if self.over && self.tails.values().all(|t| t.pending.is_empty()) {
            let mut rest = self.asm.all_json_leftovers();
            let summary = self
                .tails
                .values()
                .find(|t| t.kind == FileKind::JsonBuildSummary)
                .map(|t| (t.source.clone(), t.name.clone()));
            if let Some((source, name)) = summary {
                rest.extend(self.asm.summary_leftovers(&source, &name));
            }
            for mut e in rest {
                self.hand_on(&mut e, emit)?;
            }
            if let Some(mut end) = self.tracker.finish() {
                self.tracker.stamp(&mut end);
                self.report.events += 1;
                emit(&mut end).map_err(|_| ConsumerGone)?;
            }
            for t in self.tails.values() {
                mark(t.mark(self.seqs.get(&t.source).map_or(0, |s| s.next_seq)));
            }
            self.finished = true;
        }
        Ok(())
    }

    fn read_all(&mut self) {
        let mut grew = false;
        for old in &mut self.retired {
            grew |= old
                .read_new(&mut self.report, self.polls, &mut self.read_buf, u64::MAX)
                .unwrap_or(0)
                > 0;
        }
        // JSON files first: a text line's twin is written just after it. Then the install
        // logs in the order their features started, each only once every earlier one has been
        // read to its end: a backlog goes out a feature after another, as batch writes it, and
        // only one of its files is held at a time.
        let tz = self.opts.timezone.clone();
        let mut order: Vec<(bool, i64, PathBuf)> = self
            .tails
            .iter_mut()
            .map(|(p, t)| (!is_json(&t.kind), t.start_seconds(&tz), p.clone()))
            .collect();
        order.sort();
        self.more_to_read = false;
        let mut earlier_unread = false;
        for (_, _, p) in order {
            let t = self.tails.get_mut(&p).expect("listed");
            let install = matches!(t.kind, FileKind::Install(_));
            let json = is_json(&t.kind);
            if !json && (t.pending.len() >= self.limits.max_pending || (install && earlier_unread))
            {
                // Enough of it is held, or it waits for an earlier feature: the file waits
                // for a later look; its growth counts (the build goes on).
                t.unread = t.grown();
                grew |= t.unread;
                earlier_unread |= install && t.unread;
                continue;
            }
            let limit = if json {
                u64::MAX
            } else {
                self.limits.round_bytes
            };
            match t.read_new(&mut self.report, self.polls, &mut self.read_buf, limit) {
                Ok(n) => grew |= n > 0,
                Err(e) => self.report.errors.push(format!("{}: {e}", t.source)),
            }
            self.more_to_read |= t.unread;
            earlier_unread |= install && t.unread;
            self.absorb_json(&p);
        }
        if grew {
            self.last_growth = Instant::now();
        }
    }

    /// A feature `build-failure.log` names has aborted: its log is complete, closed as in
    /// batch with the sentinel's exit code; the build is over.
    fn close_aborted(&mut self) {
        let failures: Vec<(String, u32, i64)> = self
            .tails
            .values()
            .filter(|t| t.kind == FileKind::Failure)
            .flat_map(|t| t.pending.iter())
            .filter(|e| e.event_type == EventType::BuildFailure)
            .map(|e| {
                let n = e.command_num.unwrap_or(0);
                let exit = e
                    .metadata
                    .get("exit_code")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(1);
                (e.feature.clone(), n, exit)
            })
            .collect();
        for (feature, command_num, exit_code) in failures {
            self.over = true;
            for t in self.tails.values_mut() {
                if !matches!(t.kind, FileKind::Install(_)) || t.closed {
                    continue;
                }
                if t.parser.feature() != Some(feature.as_str()) {
                    continue;
                }
                t.parser.abort_hint(AbortHint {
                    command_num,
                    exit_code,
                });
                t.close(&mut self.report, self.polls, &mut self.read_buf);
            }
        }
    }

    /// Decides the build's id as batch does, once what decides it has been written. False:
    /// not yet (events wait).
    fn decide_id(&mut self, force: bool) -> bool {
        if self.asm.correlation_id().is_some() {
            return true;
        }
        if let Some(id) = self.opts.correlation_id.clone().or(self.saved_id.take()) {
            self.asm.set_correlation_id(id);
            return true;
        }
        if let Some(id) = std::fs::File::open(self.dir.join("json/build-metadata.json"))
            .ok()
            .and_then(|f| {
                let mut b = Vec::new();
                f.take(1024 * 1024).read_to_end(&mut b).ok()?;
                identity::metadata_id(&b)
            })
        {
            self.asm.set_correlation_id(id);
            return true;
        }
        let tz = self.opts.timezone.clone();
        // The first feature: the install log with the earliest Start Time.
        let first = self
            .tails
            .values_mut()
            .filter_map(|t| {
                let start = t.known_start(&tz)?;
                let FileKind::Install(slug) = &t.kind else {
                    return None;
                };
                Some((
                    start,
                    t.source.clone(),
                    slug.clone(),
                    t.pending.front_parsed(),
                ))
            })
            .min_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let Some((_, source, slug, waiting_since)) = first else {
            if force {
                let id = self
                    .tails
                    .values()
                    .find_map(|t| match &t.kind {
                        FileKind::JsonFeature(s) => self.asm.json_logger_id(s).map(str::to_string),
                        _ => None,
                    })
                    .unwrap_or_else(|| {
                        crate::enrich::ids::derived_correlation_id(
                            0,
                            self.dir.display().to_string().as_bytes(),
                        )
                    });
                self.asm.set_correlation_id(id);
                return true;
            }
            return false;
        };
        if let Some(id) = self.asm.json_logger_id(&slug) {
            let id = id.to_string();
            self.asm.set_correlation_id(id);
            return true;
        }
        // The first feature's JSON line may still come: wait for it as for any twin.
        let waited = waiting_since.is_some_and(|p| self.waited(p));
        if !force && !waited && !self.no_json_logging {
            return false;
        }
        let head = read_head(&source);
        let at_end = force
            || self
                .tails
                .values()
                .any(|t| t.closed && t.kind == FileKind::Install(slug.clone()));
        match identity::seed(&head, at_end || head.len() > identity::SEED_MAX) {
            Some(seed) => {
                let id = identity::derived(seed, &tz);
                self.asm.set_correlation_id(id);
                true
            }
            None => false,
        }
    }

    /// Hands on, in each file's order, the events that no longer wait for anything.
    fn release(
        &mut self,
        force: bool,
        emit: &mut dyn FnMut(&mut Event) -> io::Result<()>,
        mark: &mut dyn FnMut(Mark),
    ) -> Result<(), ConsumerGone> {
        let json_dir = self.dir.join("json").is_dir();
        for mut old in std::mem::take(&mut self.retired) {
            if let Err(e) = old.read_new(&mut self.report, self.polls, &mut self.read_buf, u64::MAX)
            {
                self.report.errors.push(format!("{}: {e}", old.source));
            }
            let slug = old.slug().to_string();
            for e in old.pending.iter_mut() {
                self.asm.text_event(&slug, e, &old.source, &old.name);
                self.hand_on(e, emit)?;
            }
        }
        let paths: Vec<PathBuf> = self.tails.keys().cloned().collect();
        // Install logs first, then the summary lines and the sentinel that follow from them.
        // Install logs in the order their features started (as batch reads them), so that the
        // build's first event, which `build_start` is timed by, is the same.
        let tz = self.opts.timezone.clone();
        let mut order: Vec<(u8, i64, PathBuf)> = paths
            .into_iter()
            .map(|p| {
                let t = self.tails.get_mut(&p).expect("listed");
                let (rank, start) = match t.kind {
                    FileKind::Install(_) => (0, t.start_seconds(&tz)),
                    FileKind::Master => (1, 0),
                    FileKind::Failure => (2, 0),
                    _ => (3, 0),
                };
                (rank, start, p)
            })
            .collect();
        order.sort();
        let first_feature = order.first().map(|o| o.2.clone());
        for (_, _, p) in order {
            // Nothing goes out before the first feature's first event.
            if !self.started && !force && Some(&p) != first_feature.as_ref() {
                continue;
            }
            let mut t = self.tails.remove(&p).expect("listed");
            let r = self.release_tail(&mut t, force, json_dir, emit);
            if r.is_ok() && !is_json(&t.kind) {
                mark(t.mark(self.seqs.get(&t.source).map_or(0, |s| s.next_seq)));
            }
            self.tails.insert(p, t);
            r?;
        }
        Ok(())
    }

    fn release_tail(
        &mut self,
        t: &mut Tail,
        force: bool,
        json_dir: bool,
        emit: &mut dyn FnMut(&mut Event) -> io::Result<()>,
    ) -> Result<(), ConsumerGone> {
        match t.kind.clone() {
            FileKind::Install(slug) => {
                self.release_ready(t, emit, |f, e, since, source, name| {
                    // Whether it waited reads the clock: asked only of an event that may have
                    // a twin while no build without JSON logging is known (it decides nothing
                    // else), not of every output line.
                    let eligible = twin_eligible(e);
                    let waited = eligible && !f.no_json_logging && f.waited(since);
                    if waited && !json_dir {
                        f.no_json_logging = true;
                    }
                    let ready = force
                        || !eligible
                        || f.no_json_logging
                        || f.asm.has_twin(&slug, e)
                        || waited;
                    if ready {
                        f.asm.text_event(&slug, e, source, name);
                    }
                    ready
                })?;
                if t.closed && t.pending.is_empty() && !t.leftovers_done {
                    t.leftovers_done = true;
                    for mut e in self.asm.json_leftovers(&slug) {
                        self.hand_on(&mut e, emit)?;
                    }
                }
            }
            FileKind::Master => {
                self.release_ready(t, emit, |f, e, since, source, name| {
                    let feature_done = !f.feature_pending(&e.feature);
                    let ready = force
                        || (feature_done
                            && (f.asm.has_summary_twin(e) || f.no_json_logging || f.waited(since)));
                    if ready {
                        f.asm.master_event(e, source, name);
                    }
                    ready
                })?;
            }
            FileKind::Failure => {
                self.release_ready(t, emit, |f, e, _, source, name| {
                    let ready = force || !f.feature_pending(&e.feature);
                    if ready {
                        f.asm.failure_event(e, source, name);
                    }
                    ready
                })?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Hands on `t`'s waiting events from the first while `stamp_if_ready` finds each ready
    /// (and stamps it, given the file's source and name), where they lie: an event is about
    /// 400 bytes, and moving each out of the queue and on by value was a fifth of following's
    /// CPU time. The events handed on (and one the consumer refused) are dropped in place.
    fn release_ready(
        &mut self,
        t: &mut Tail,
        emit: &mut dyn FnMut(&mut Event) -> io::Result<()>,
        mut stamp_if_ready: impl FnMut(&mut Self, &mut Event, Parsed, &str, &str) -> bool,
    ) -> Result<(), ConsumerGone> {
        let Tail {
            pending,
            source,
            name,
            ..
        } = t;
        let mut handed = Ok(());
        pending.release_front(|e, since| {
            if !stamp_if_ready(self, e, since, source, name) {
                return Step::Wait;
            }
            handed = self.hand_on(e, emit);
            if handed.is_err() {
                Step::Last
            } else {
                Step::Next
            }
        });
        handed
    }

    /// An event parsed then has waited long enough for its twin: `twin_wait` has passed and a
    /// later poll has read the JSON files.
    fn waited(&self, p: Parsed) -> bool {
        p.at.elapsed() >= self.timing.twin_wait && self.polls > p.poll
    }

    /// Whether the install log of `feature` still holds events (or its JSON leftovers).
    fn feature_pending(&self, feature: &str) -> bool {
        self.tails.values().any(|t| {
            matches!(t.kind, FileKind::Install(_))
                && t.parser.feature() == Some(feature)
                && (!t.pending.is_empty() || t.unread || (t.closed && !t.leftovers_done))
        })
    }

    /// Hands one stamped event on, unless a checkpoint says it was delivered.
    fn hand_on(
        &mut self,
        e: &mut Event,
        emit: &mut dyn FnMut(&mut Event) -> io::Result<()>,
    ) -> Result<(), ConsumerGone> {
        self.started = true;
        // Delivered before a restart or not, every event counts towards the build's end.
        if let Some(mut start) = self.tracker.before(e) {
            self.tracker.stamp(&mut start);
            // A checkpoint past a file's first events: build_start went out before the
            // restart (it precedes them in the stream).
            if self.seqs.iter().any(|(_, s)| s.skip_below > 0) {
                self.skipped += 1;
            } else {
                self.report.events += 1;
                emit(&mut start).map_err(|_| ConsumerGone)?;
            }
        }
        // By the path as followed, as checkpoints keep it. (Looked up per event: by the last
        // path first, without hashing it or copying it into a key.)
        let s = self.seqs.entry(&e.source.file);
        s.next_seq = s.next_seq.max(e.seq + 1);
        if e.seq < s.skip_below {
            self.skipped += 1;
            return Ok(());
        }
        self.report.events += 1;
        emit(e).map_err(|_| ConsumerGone)
    }
}

fn is_json(kind: &FileKind) -> bool {
    matches!(
        kind,
        FileKind::JsonFeature(_) | FileKind::JsonBuildSummary | FileKind::JsonMetadata
    )
}

/// The first bytes of a file (its header), for its feature and start time.
fn read_head(path: &str) -> Vec<u8> {
    let mut head = Vec::new();
    if let Ok(f) = File::open(path) {
        let _ = f.take(identity::SEED_MAX as u64 + 1).read_to_end(&mut head);
    }
    head
}

/// Follows the build log directory `dir` until `stop` is set or the build is over, handing
/// events to `emit` as they complete. Polls every `interval`; `polled` is called after every
/// look at the files (the events of one look can go out together).
pub fn follow_dir(
    dir: &Path,
    opts: &ParseOptions,
    timing: FollowTiming,
    interval: Duration,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(&mut Event) -> io::Result<()>,
    polled: &mut dyn FnMut() -> io::Result<()>,
) -> ParseReport {
    let mut f = Follower::new(dir, opts, HashMap::new()).with_timing(timing);
    loop {
        if stop.load(Ordering::SeqCst) {
            let _ = f.stop(emit, &mut |_| {});
            let _ = polled();
            return f.into_report();
        }
        let r = f.poll(emit, &mut |_| {});
        if polled().is_err() || r.is_err() || f.finished() {
            return f.into_report();
        }
        if !f.behind() {
            std::thread::sleep(interval);
        }
    }
}

/// The logger's files in `dir` and its `json/`, with their kinds. Summary and errors logs
/// repeat the install log and are not followed.
fn list(dir: &Path) -> io::Result<Vec<(PathBuf, FileKind)>> {
    let mut v = Vec::new();
    let mut add = |p: PathBuf, in_json: bool| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        match FileKind::of(&name, in_json) {
            Some(FileKind::Summary(_) | FileKind::Errors(_) | FileKind::JsonMetadata) | None => {}
            Some(k) => {
                if p.is_file() {
                    v.push((p, k));
                }
            }
        }
    };
    for e in std::fs::read_dir(dir)? {
        add(e?.path(), false);
    }
    if let Ok(rd) = std::fs::read_dir(dir.join("json")) {
        for e in rd.flatten() {
            add(e.path(), true);
        }
    }
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Input, Progress};

    fn corpus(build: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/corpus")
            .join(build)
    }

    fn batch_lines(dir: &Path, opts: &ParseOptions) -> Vec<String> {
        let mut out = Vec::new();
        let inputs = [Input::Path(dir.to_path_buf())];
        super::super::batch::parse_inputs_as_json(
            &inputs,
            opts,
            &mut Progress::hidden(),
            false,
            &mut |b: &[u8]| {
                out.extend_from_slice(b);
                Ok(())
            },
        );
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Follows a finished build directory to its idle end with `limits`; its events' lines,
    /// and the most events any one file held at once.
    fn follow_lines(dir: &Path, opts: &ParseOptions, limits: FollowLimits) -> (Vec<String>, usize) {
        let timing = FollowTiming {
            twin_wait: Duration::from_millis(300),
            idle_end: Some(Duration::from_millis(300)),
        };
        let mut f = Follower::new(dir, opts, HashMap::new())
            .with_timing(timing)
            .with_limits(limits);
        let (mut lines, mut most_held) = (Vec::new(), 0);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !f.finished() {
            assert!(Instant::now() < deadline, "the follower never finished");
            f.poll(
                &mut |e| {
                    lines.push(e.to_json());
                    Ok(())
                },
                &mut |_| {},
            )
            .unwrap();
            let held = f.tails.values().map(|t| t.pending.len()).max().unwrap_or(0);
            most_held = most_held.max(held);
            if !f.behind() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        (lines, most_held)
    }

    /// The lines of each source file, in the order they came.
    fn by_source(lines: &[String]) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let source = v["source"]["file"].as_str().unwrap_or("").to_string();
            m.entry(source).or_default().push(l.clone());
        }
        m
    }

    #[test]
    fn a_backlog_is_read_in_rounds_and_gives_the_events_of_batch() {
        // With JSON twins (13: 16 MB, 19 features) and without (07): the follower reads
        // 1 KB of a file per look and stops reading a file that holds 64 events, yet gives
        // exactly batch's events, each file's in batch's order.
        let limits = FollowLimits {
            round_bytes: 1024,
            max_pending: 64,
        };
        for build in ["build-13-large", "build-07-config-summary-2025-11"] {
            let dir = corpus(build);
            let opts = ParseOptions::default();
            let want = batch_lines(&dir, &opts);
            let (got, most_held) = follow_lines(&dir, &opts, limits);
            assert!(want.len() > 1000, "{build}: {} events", want.len());
            assert_eq!(got.len(), want.len(), "{build}");
            assert_eq!(by_source(&got), by_source(&want), "{build}");
            // One look reads 1 KB (no 1 KB of these logs has 64 lines) into a file that
            // holds fewer than 64 events.
            assert!(
                most_held < 64 + 64,
                "{build}: a file held {most_held} events"
            );
            // Without JSON logging, events wait (`twin_wait`) before the follower knows
            // none will come: that is when the limit holds reading back.
            if build.starts_with("build-07") {
                assert!(most_held >= 64, "{build}: the limit was never reached");
            }
        }
    }

    #[test]
    fn a_backlog_goes_out_one_feature_after_another() {
        // Install logs are read whole in the order their features started, as batch writes
        // them: the events of two features never alternate.
        let dir = corpus("build-13-large");
        let opts = ParseOptions::default();
        let limits = FollowLimits {
            round_bytes: 4096,
            max_pending: 64,
        };
        let (got, _) = follow_lines(&dir, &opts, limits);
        let batch_runs = install_log_runs(&batch_lines(&dir, &opts));
        // Batch writes each of the 19 install logs whole: one run each. A feature that came
        // back after another's events would be a second run of it.
        assert_eq!(batch_runs.len(), 19);
        assert_eq!(install_log_runs(&got), batch_runs);
    }

    /// The install logs the events come from, one entry per run of events of the same log.
    fn install_log_runs(lines: &[String]) -> Vec<String> {
        let mut runs: Vec<String> = Vec::new();
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let source = v["source"]["file"].as_str().unwrap_or("");
            if source.ends_with("-install.log") && runs.last().map(String::as_str) != Some(source) {
                runs.push(source.to_string());
            }
        }
        runs
    }
}
