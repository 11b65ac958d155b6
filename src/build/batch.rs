//! Builds: which parsers read which inputs, and how their events become one stream.
//!
//! A build is one log directory (one image build): its install logs are the source of
//! truth, read in the order the features started; the JSON logger's files, where present,
//! lend their correlation id and millisecond timestamps to the events that exist in both
//! (emitted once); `-summary.log` and `-errors.log` repeat the install log and are read only
//! where it is missing. A file or stdin on its own is a build of its own.

use super::assemble::Assembler;
use super::identity;
use super::kind::{detect, FileKind};
use super::read_buffer::ReadBuffer;
use super::{FileParser, ParseReport};
use crate::enrich::build_events::BuildTracker;
use crate::event::{Event, EventType};
use crate::parse::build_failure::{parse_sentinel, BuildFailureParser, Failure};
use crate::parse::console::ConsoleParser;
use crate::parse::install_log::{AbortHint, ErrorsLogParser, InstallLogParser};
use crate::parse::json_logger::{parse_line, to_record, JsonParser, JsonRecord};
use crate::parse::master_summary::MasterSummaryParser;
use crate::parse::{Format, FormatParser, ParseOptions};
use crate::source::{open_file, stdin_is_live, Input, Progress};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The longest JSON line read whole (a replayed event or dead-letter record).
const JSON_MAX_LINE: usize = 64 * 1024 * 1024;

/// Takes each finished event. By reference, so that an event is not copied (536 bytes) at
/// each call on its way; a consumer that keeps it takes it out (`Event::take`).
pub(super) type Emit<'a> = dyn FnMut(&mut Event) -> io::Result<()> + 'a;

/// The emitter was told to stop (broken pipe, a sink gone): unwind quietly.
struct Stop;

struct Ctx<'a, 'b> {
    opts: &'a ParseOptions,
    progress: &'a mut Progress,
    emit: &'a mut Emit<'b>,
    report: ParseReport,
    /// The build being read: gives its `build_start` and `build_end` events.
    build: Option<BuildTracker>,
    /// Directories read so far, by (device, inode): a link back up (`ln -s . self`) or a
    /// second name for a build (`latest -> build-2026-01`) is not read again.
    visited: HashSet<(u64, u64)>,
}

impl<'a, 'b> Ctx<'a, 'b> {
    fn new(opts: &'a ParseOptions, progress: &'a mut Progress, emit: &'a mut Emit<'b>) -> Self {
        Ctx {
            opts,
            progress,
            emit,
            report: ParseReport::default(),
            build: None,
            visited: HashSet::new(),
        }
    }

    fn send(&mut self, e: &mut Event) -> Result<(), Stop> {
        if let Some(t) = self.build.as_mut() {
            if let Some(mut s) = t.before(e) {
                t.stamp(&mut s);
                self.report.events += 1;
                (self.emit)(&mut s).map_err(|_| Stop)?;
            }
        }
        self.report.events += 1;
        (self.emit)(e).map_err(|_| Stop)
    }

    /// The build is over: its `build_end` event.
    fn end_build(&mut self) -> Result<(), Stop> {
        let Some(t) = self.build.take() else {
            return Ok(());
        };
        match t.finish() {
            Some(mut e) => {
                t.stamp(&mut e);
                self.report.events += 1;
                (self.emit)(&mut e).map_err(|_| Stop)
            }
            None => Ok(()),
        }
    }
    /// False when `dir` (by device and inode) was read already: a link back up (`ln -s .
    /// self`) or a second name for a build (`latest -> build-2026-01`) is not read again.
    fn first_visit(&mut self, dir: &Path) -> bool {
        let Ok(m) = std::fs::metadata(dir) else {
            return true;
        };
        let first = self.visited.insert((m.dev(), m.ino()));
        if !first {
            tracing::debug!(
                "{}: read already (a link to a directory read before); skipped",
                dir.display()
            );
        }
        first
    }

    fn error(&mut self, what: String) {
        self.report.errors.push(what);
    }
}

/// Parses every input and hands each finished event to `emit`, in order. Inputs that cannot
/// be read are reported in `ParseReport::errors`; the others are still converted.
pub fn parse_inputs(
    inputs: &[Input],
    opts: &ParseOptions,
    progress: &mut Progress,
    emit: &mut Emit<'_>,
) -> ParseReport {
    if opts.jobs > 1 {
        if let Some(units) = plan(inputs, opts) {
            let batcher = super::parallel::Events;
            return super::parallel::parse_units(&units, opts, &batcher, progress, &mut |b| {
                b.into_iter().try_for_each(|mut e| emit(&mut e))
            });
        }
    }
    let mut ctx = Ctx::new(opts, progress, emit);
    for input in inputs {
        let r = match input {
            Input::Stdin => {
                let live = stdin_is_live();
                parse_stream(&mut ctx, Box::new(io::stdin()), "-", None, None, live)
            }
            Input::Path(p) => match std::fs::metadata(p) {
                Err(e) => {
                    ctx.error(format!("{}: {}", p.display(), e));
                    Ok(())
                }
                Ok(m) if m.is_dir() => parse_dir(&mut ctx, p),
                Ok(_) => parse_single_file(&mut ctx, p),
            },
        };
        if r.is_err() {
            break;
        }
    }
    ctx.progress.finish();
    ctx.report
}

/// Where [`parse_inputs_as_json`] writes the events' JSON lines. A closure taking the bytes
/// is one.
pub trait JsonOut {
    /// The next bytes of the lines.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// The next bytes of the lines, the `len` bytes of `file` from where it stands: those a
    /// build read ahead of the one being written left in a temporary file (`--jobs`; the
    /// file, used again, may hold more). Read back in blocks and given to `write`
    /// ([`read_back`]) unless the output hands the file to the kernel instead (`convert` to a
    /// regular file or `/dev/null`: `std::io::copy` between file descriptors, which Linux
    /// copies without this process reading the bytes back).
    fn write_file(&mut self, file: &mut File, len: u64) -> io::Result<()> {
        read_back(file, len, &mut |b| self.write(b))
    }
}

/// The `len` bytes of `file` from where it stands to `write`, in blocks of 256 KiB; an error
/// if the file ends before.
pub fn read_back(
    file: &mut File,
    len: u64,
    write: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut block = vec![0; super::parallel::JSON_BATCH];
    let mut left = len;
    while left > 0 {
        let want = block.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match file.read(&mut block[..want]) {
            Ok(0) => return Err(lost(len, left)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        write(&block[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// A temporary file that ended `left` bytes before the `len` written to it.
pub(crate) fn lost(len: u64, left: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "a temporary file of a build read ahead lost {left} of its {len} bytes (was it cut?)"
        ),
    )
}

impl<F: FnMut(&[u8]) -> io::Result<()>> JsonOut for F {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self(bytes)
    }
}

/// [`parse_inputs`] for a consumer of JSON lines (`convert`): `out` gets the events' JSON
/// lines in blocks of about 256 KiB (each event at once when `live`). With several builds and
/// `opts.jobs > 1` the lines are written by the threads that read the builds.
pub fn parse_inputs_as_json(
    inputs: &[Input],
    opts: &ParseOptions,
    progress: &mut Progress,
    live: bool,
    out: &mut dyn JsonOut,
) -> ParseReport {
    use super::parallel::{JsonBatch, JsonLines, JSON_BATCH};
    if opts.jobs > 1 && !live {
        if let Some(units) = plan(inputs, opts) {
            let lines = JsonLines::default();
            return super::parallel::parse_units(
                &units,
                opts,
                &lines,
                progress,
                &mut |b| match b {
                    JsonBatch::Lines(bytes, _) => out.write(&bytes),
                    JsonBatch::Spilled(mut spilled) => {
                        let written = out.write_file(&mut spilled.file, spilled.len);
                        lines.give_back(spilled);
                        written
                    }
                },
            );
        }
    }
    // Events are written straight into one buffer that goes out whole when full (or at
    // once when live): no per-event copy into a second buffer.
    let mut buf = Vec::with_capacity(JSON_BATCH + 64 * 1024);
    let mut failed = false;
    let report = parse_inputs(inputs, opts, progress, &mut |event: &mut Event| {
        event.write_json_line(&mut buf);
        if !live && buf.len() < JSON_BATCH {
            return Ok(());
        }
        let r = out.write(&buf);
        buf.clear();
        failed = r.is_err();
        r
    });
    if !failed && !buf.is_empty() {
        let _ = out.write(&buf);
    }
    report
}

/// One build of many, read on its own (see `parallel`), or what looking through the inputs
/// for builds found (unreadable paths, skipped files) at its place in the order.
pub(super) enum Unit {
    Dir(PathBuf),
    File(PathBuf),
    Found(ParseReport),
}

/// The builds `parse_inputs` would read, in its order, as units that can be read apart; `None`
/// when there are fewer than two or stdin is among the inputs (it is read where it is).
fn plan(inputs: &[Input], opts: &ParseOptions) -> Option<Vec<Unit>> {
    if inputs.iter().any(|i| matches!(i, Input::Stdin)) {
        return None;
    }
    let mut progress = Progress::hidden();
    let mut no_events = |_: &mut Event| Err(io::Error::other("only planning"));
    let mut ctx = Ctx::new(opts, &mut progress, &mut no_events);
    let mut units = Vec::new();
    for input in inputs {
        let Input::Path(p) = input else { continue };
        match std::fs::metadata(p) {
            Err(e) => ctx.error(format!("{}: {}", p.display(), e)),
            Ok(m) if m.is_dir() => plan_dir(&mut ctx, p, &mut units),
            Ok(_) => push_unit(&mut ctx, &mut units, Unit::File(p.clone())),
        }
    }
    let builds = units
        .iter()
        .filter(|u| !matches!(u, Unit::Found(_)))
        .count();
    push_found(&mut ctx, &mut units);
    (builds >= 2).then_some(units)
}

/// Mirrors `parse_dir`'s walk: a build directory becomes a unit, a directory of builds is
/// walked, each real directory once.
fn plan_dir(ctx: &mut Ctx, dir: &Path, units: &mut Vec<Unit>) {
    if !ctx.first_visit(dir) {
        return;
    }
    // What scanning a build directory finds is found again when the unit is read.
    let before = std::mem::take(&mut ctx.report);
    let scanned = scan_dir(ctx, dir);
    let found = std::mem::replace(&mut ctx.report, before);
    match scanned {
        Err(e) => ctx.error(format!("{}: {}", dir.display(), e)),
        Ok((b, _)) if b.is_build() => push_unit(ctx, units, Unit::Dir(dir.to_path_buf())),
        Ok((_, subdirs)) => {
            ctx.report.absorb(found);
            if subdirs.is_empty() {
                ctx.error(format!("{}: no build logs found", dir.display()));
            }
            for s in subdirs {
                plan_dir(ctx, &s, units);
            }
        }
    }
}

/// Appends `unit` after what was found before it.
fn push_unit(ctx: &mut Ctx, units: &mut Vec<Unit>, unit: Unit) {
    push_found(ctx, units);
    units.push(unit);
}

/// Appends what looking through the inputs found since the last unit (errors, skipped files).
fn push_found(ctx: &mut Ctx, units: &mut Vec<Unit>) {
    let found = std::mem::take(&mut ctx.report);
    if !found.errors.is_empty() || !found.skipped.is_empty() || !found.warnings.is_empty() {
        units.push(Unit::Found(found));
    }
}

/// Reads one unit as `parse_inputs` reads it in its turn, handing its events to `emit`.
pub(super) fn parse_unit(unit: &Unit, opts: &ParseOptions, emit: &mut Emit<'_>) -> ParseReport {
    let mut progress = Progress::hidden();
    let mut ctx = Ctx::new(opts, &mut progress, emit);
    let _ = match unit {
        Unit::Dir(d) => parse_dir(&mut ctx, d),
        Unit::File(p) => parse_single_file(&mut ctx, p),
        Unit::Found(_) => Ok(()),
    };
    ctx.report
}

/// Everything a build directory holds, sorted out.
#[derive(Default)]
struct BuildDir {
    install_logs: Vec<(PathBuf, String)>,
    summary_logs: Vec<(PathBuf, String)>,
    errors_logs: Vec<(PathBuf, String)>,
    master: Option<PathBuf>,
    failure: Option<PathBuf>,
    json_features: Vec<(PathBuf, String)>,
    build_summary_json: Option<PathBuf>,
    metadata_json: Option<PathBuf>,
}

fn list_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

impl BuildDir {
    fn add(&mut self, p: PathBuf, kind: FileKind) {
        match kind {
            FileKind::Install(s) => self.install_logs.push((p, s)),
            FileKind::Summary(s) => self.summary_logs.push((p, s)),
            FileKind::Errors(s) => self.errors_logs.push((p, s)),
            FileKind::Master => self.master = Some(p),
            FileKind::Failure => self.failure = Some(p),
            FileKind::JsonFeature(s) => self.json_features.push((p, s)),
            FileKind::JsonBuildSummary => self.build_summary_json = Some(p),
            FileKind::JsonMetadata => self.metadata_json = Some(p),
        }
    }

    fn is_build(&self) -> bool {
        !self.install_logs.is_empty()
            || self.master.is_some()
            || !self.json_features.is_empty()
            || self.failure.is_some()
            || !self.summary_logs.is_empty()
    }
}

/// The most of `json/build-metadata.json` that is read (it holds a handful of fields).
pub const METADATA_MAX_BYTES: u64 = 1024 * 1024;

fn scan_dir(ctx: &mut Ctx, dir: &Path) -> io::Result<(BuildDir, Vec<PathBuf>)> {
    let mut b = BuildDir::default();
    let mut subdirs = Vec::new();
    for p in list_dir(dir)? {
        let name = file_name(&p);
        // Links are followed to what they name; only regular files and directories are read
        // (a FIFO would block, a device never end).
        let meta = match std::fs::metadata(&p) {
            Ok(m) => m,
            Err(e) if name == "json" => {
                ctx.error(json_unreadable(&p, &e));
                continue;
            }
            Err(e) => {
                ctx.error(format!("{}: {e}", p.display()));
                continue;
            }
        };
        if meta.is_dir() {
            if name == "json" {
                match list_dir(&p) {
                    Ok(entries) => {
                        for j in entries {
                            if !is_regular(ctx, &j) {
                                continue;
                            }
                            match FileKind::of(&file_name(&j), true) {
                                Some(k) => b.add(j, k),
                                None => ctx.report.skipped.push(j.display().to_string()),
                            }
                        }
                    }
                    Err(e) => ctx.error(json_unreadable(&p, &e)),
                }
            } else {
                subdirs.push(p);
            }
            continue;
        }
        if !meta.is_file() {
            ctx.error(format!(
                "{}: not a regular file (a FIFO, socket or device); skipped",
                p.display()
            ));
            continue;
        }
        match FileKind::of(&name, false) {
            Some(k) => b.add(p, k),
            None => ctx.report.skipped.push(p.display().to_string()),
        }
    }
    Ok((b, subdirs))
}

fn json_unreadable(p: &Path, e: &io::Error) -> String {
    format!(
        "{}: {e}; the build is read from its text logs alone, without the JSON logger's times and ids",
        p.display()
    )
}

/// Whether `p` (links followed) is a regular file; an error names it where it is not.
fn is_regular(ctx: &mut Ctx, p: &Path) -> bool {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => true,
        Ok(_) => {
            ctx.error(format!(
                "{}: not a regular file (a FIFO, socket or device); skipped",
                p.display()
            ));
            false
        }
        Err(e) => {
            ctx.error(format!("{}: {e}", p.display()));
            false
        }
    }
}

/// Calls `f` with each line of the file (gzip or not), cut at `max_line` bytes as install
/// log lines are: no file is read whole.
fn for_each_line(
    path: &Path,
    max_line: usize,
    f: &mut dyn FnMut(&crate::source::Line<'_>),
) -> io::Result<u64> {
    let mut r = open_file(path)?;
    let mut splitter = crate::source::LineSplitter::new(max_line);
    let mut buf = ReadBuffer::take(64 * 1024);
    let mut total = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        let _ = splitter.push::<()>(&buf[..n], &mut |l| {
            f(&l);
            Ok(())
        });
    }
    let _ = splitter.finish::<()>(&mut |l| {
        f(&l);
        Ok(())
    });
    Ok(total)
}

/// A small file read whole, refused past `max` bytes.
fn read_capped(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    open_file(path)?.take(max + 1).read_to_end(&mut v)?;
    if v.len() as u64 > max {
        return Err(io::Error::other(format!(
            "larger than {max} bytes; not read"
        )));
    }
    Ok(v)
}

/// The feature a `-summary.log` names in its `Installation Summary: X` line.
fn summary_feature(path: &Path, max_line: usize) -> Option<String> {
    let mut found = None;
    for_each_line(path, max_line, &mut |l| {
        if found.is_none() {
            let text = String::from_utf8_lossy(l.bytes);
            found = text
                .strip_prefix("Installation Summary: ")
                .map(str::to_string);
        }
    })
    .ok()?;
    found
}

/// The first `SEED_MAX` bytes of a file and whether that is all of it.
pub(crate) fn read_prefix(path: &Path) -> Option<(Vec<u8>, bool)> {
    let mut r = open_file(path).ok()?;
    let mut buf = ReadBuffer::take(identity::SEED_MAX + 1);
    let n = read_full(&mut r, &mut buf).ok()?;
    Some((buf[..n].to_vec(), n <= identity::SEED_MAX))
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A JSON logger line: an event, a `build-summary.jsonl` line, or a line that is not the
/// logger's (kept as an `unparsed` message).
pub(crate) enum JsonLine {
    Event(Event, Option<String>),
    Summary(Event, Option<String>),
    Metadata,
}

/// One line of a JSON logger file, `line` its number.
pub(crate) fn json_line(bytes: &[u8], line: u64) -> Option<JsonLine> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let mut r = match parse_line(bytes).and_then(to_record) {
        Some(JsonRecord::Event(e, c)) => JsonLine::Event(e, c),
        Some(JsonRecord::Summary(e, c)) => JsonLine::Summary(e, c),
        Some(JsonRecord::Metadata(_)) => JsonLine::Metadata,
        None => {
            let (text, invalid) = crate::parse::text::decode(bytes);
            let mut e = Event::new(
                EventType::Message,
                crate::event::Level::Warn,
                "",
                text.to_string(),
            );
            e.metadata.insert("unparsed".into(), true.into());
            e.invalid_utf8 = invalid;
            JsonLine::Event(e, None)
        }
    };
    if let JsonLine::Event(e, _) | JsonLine::Summary(e, _) = &mut r {
        e.source.line = line;
    }
    Some(r)
}

fn read_json_file(ctx: &mut Ctx, path: &Path) -> Vec<JsonLine> {
    let mut out = Vec::new();
    match for_each_line(path, ctx.opts.max_line_bytes, &mut |l| {
        if let Some(j) = json_line(l.bytes, l.number) {
            out.push(j);
        }
    }) {
        Ok(n) => {
            ctx.report.files += 1;
            ctx.report.bytes += n;
        }
        Err(e) => ctx.error(format!("{}: {}", path.display(), e)),
    }
    out
}

/// The failures `build-failure.log` names.
fn read_failures(path: &Path, max_line: usize) -> Vec<Failure> {
    let mut v = Vec::new();
    let _ = for_each_line(path, max_line, &mut |l| {
        if let Some(f) = parse_sentinel(&String::from_utf8_lossy(l.bytes)) {
            v.push(f);
        }
    });
    v
}

/// Install logs in the order their features started, with their first bytes.
fn install_logs_in_start_order(
    b: &BuildDir,
    tz: &jiff::tz::TimeZone,
) -> Vec<(PathBuf, String, Vec<u8>, bool)> {
    let mut logs: Vec<(PathBuf, String, Vec<u8>, bool)> = b
        .install_logs
        .iter()
        .map(|(p, s)| {
            let (head, whole) = read_prefix(p).unwrap_or_default();
            (p.clone(), s.clone(), head, whole)
        })
        .collect();
    logs.sort_by_key(|(p, _, head, _)| {
        (
            identity::start_seconds(head, tz).unwrap_or(i64::MAX),
            p.clone(),
        )
    });
    logs
}

/// Reads the JSON logger's files into `asm` and decides the build's id (`identity`).
fn decide_correlation_id(ctx: &mut Ctx, b: &BuildDir, asm: &mut Assembler, dir: &Path) -> String {
    ctx.build = Some(BuildTracker::new());
    let opts = ctx.opts;
    let tz = opts.timezone.clone();
    let rel = |p: &Path| -> String {
        p.strip_prefix(dir)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| p.display().to_string())
    };
    // The JSON logger's view of the build, whole, before the text that it repeats.
    let mut first_json_id: Option<String> = None;
    for (path, s) in &b.json_features {
        let (source, name) = (path.display().to_string(), rel(path));
        for l in read_json_file(ctx, path) {
            if let JsonLine::Event(e, c) | JsonLine::Summary(e, c) = l {
                if first_json_id.is_none() {
                    first_json_id.clone_from(&c);
                }
                asm.json_feature(s, &source, &name).push(e, c);
            }
        }
    }
    if let Some(p) = &b.build_summary_json {
        for l in read_json_file(ctx, p) {
            if let JsonLine::Event(e, c) | JsonLine::Summary(e, c) = l {
                asm.push_summary_json(e, c);
            }
        }
    }
    let metadata_id =
        b.metadata_json
            .as_ref()
            .and_then(|p| match read_capped(p, METADATA_MAX_BYTES) {
                Ok(b) => identity::metadata_id(&b),
                Err(e) => {
                    ctx.error(format!("{}: {e}", p.display()));
                    None
                }
            });

    let logs = install_logs_in_start_order(b, &tz);
    opts.correlation_id
        .clone()
        .or(metadata_id)
        .or_else(|| {
            let first = logs.first()?;
            asm.json_logger_id(&first.1).map(str::to_string)
        })
        .or_else(|| logs.is_empty().then_some(first_json_id).flatten())
        .unwrap_or_else(|| match logs.first() {
            Some((_, _, head, whole)) => {
                identity::derived(identity::seed(head, *whole).unwrap_or(head), &tz)
            }
            None => {
                crate::enrich::ids::derived_correlation_id(0, dir.display().to_string().as_bytes())
            }
        })
}

fn parse_dir(ctx: &mut Ctx, dir: &Path) -> Result<(), Stop> {
    if !ctx.first_visit(dir) {
        return Ok(());
    }
    let (b, subdirs) = match scan_dir(ctx, dir) {
        Ok(x) => x,
        Err(e) => {
            ctx.error(format!("{}: {}", dir.display(), e));
            return Ok(());
        }
    };
    if !b.is_build() {
        // A directory of builds (years of archived logs): each subdirectory is one.
        if subdirs.is_empty() {
            ctx.error(format!("{}: no build logs found", dir.display()));
        }
        for s in subdirs {
            parse_dir(ctx, &s)?;
        }
        return Ok(());
    }
    let opts = ctx.opts;
    let tz = opts.timezone.clone();
    let rel = |p: &Path| -> String {
        p.strip_prefix(dir)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| p.display().to_string())
    };
    let mut asm = Assembler::new(opts.scrub, opts.timezone_given, tz_name(opts));

    let correlation_id = decide_correlation_id(ctx, &b, &mut asm, dir);
    asm.set_correlation_id(correlation_id);
    let logs = install_logs_in_start_order(&b, &tz);
    let failures = b
        .failure
        .as_deref()
        .map(|p| read_failures(p, opts.max_line_bytes))
        .unwrap_or_default();

    let mut seen_slugs: Vec<String> = Vec::new();
    for (path, s, head, _) in &logs {
        seen_slugs.push(s.clone());
        let mut parser = InstallLogParser::new(tz.clone()).scanning_for_scrubber(opts.scrub);
        let feature = identity::header_feature(head);
        if let Some(f) = failures
            .iter()
            .find(|f| Some(&f.feature) == feature.as_ref())
        {
            parser.set_abort_hint(AbortHint {
                command_num: f.command_num,
                exit_code: f.exit_code,
            });
        }
        let (source, name) = (path.display().to_string(), rel(path));
        parse_file_with(ctx, path, &mut parser, &mut |ctx, e| {
            asm.text_event(s, e, &source, &name);
            ctx.send(e)
        })?;
        // What the logger wrote that the text does not show (a text log cut short): kept.
        for mut e in asm.json_leftovers(s) {
            ctx.send(&mut e)?;
        }
    }

    // Features with no install log: the lines their errors log kept, their summary log,
    // else the JSON logger's events.
    for (path, s) in &b.errors_logs {
        if seen_slugs.contains(s) {
            continue;
        }
        let feature = b
            .summary_logs
            .iter()
            .find(|(_, x)| x == s)
            .and_then(|(p, _)| summary_feature(p, ctx.opts.max_line_bytes))
            .unwrap_or_else(|| s.clone());
        let mut parser = ErrorsLogParser::new(feature);
        let (source, name) = (path.display().to_string(), rel(path));
        parse_file_with(ctx, path, &mut parser, &mut |ctx, e| {
            asm.event(e, &source, &name);
            ctx.send(e)
        })?;
    }
    for (path, s) in &b.summary_logs {
        if seen_slugs.contains(s) {
            continue;
        }
        seen_slugs.push(s.clone());
        let mut parser = InstallLogParser::summary_only(tz.clone());
        let (source, name) = (path.display().to_string(), rel(path));
        parse_file_with(ctx, path, &mut parser, &mut |ctx, e| {
            e.details.insert("from".into(), "summary log".into());
            asm.text_event(s, e, &source, &name);
            ctx.send(e)
        })?;
    }
    for mut e in asm.all_json_leftovers() {
        ctx.send(&mut e)?;
    }

    // master-summary.log: one build_summary per finished feature, timed by the logger's
    // build-summary.jsonl where it has the line, else by the feature's end.
    if let Some(p) = &b.master {
        let (source, name) = (p.display().to_string(), rel(p));
        parse_file_with(ctx, p, &mut MasterSummaryParser, &mut |ctx, e| {
            asm.master_event(e, &source, &name);
            ctx.send(e)
        })?;
    }
    if let Some(p) = &b.build_summary_json {
        for mut e in asm.summary_leftovers(&p.display().to_string(), &rel(p)) {
            ctx.send(&mut e)?;
        }
    }
    if let Some(p) = &b.failure {
        let (source, name) = (p.display().to_string(), rel(p));
        parse_file_with(ctx, p, &mut BuildFailureParser, &mut |ctx, e| {
            asm.failure_event(e, &source, &name);
            ctx.send(e)
        })?;
    }
    ctx.report.warnings.append(&mut asm.warnings);
    ctx.end_build()
}

/// The correlation id of the build in `dir` as `convert` gives it (for readers that see the
/// build's lines one at a time, like the Fluent Bit plugin).
pub fn correlation_id_of_dir(dir: &Path, opts: &ParseOptions) -> String {
    if let Some(id) = &opts.correlation_id {
        return id.clone();
    }
    let mut progress = Progress::new(true);
    let mut no_events = |_: &mut Event| Err(io::Error::other("only the id is wanted"));
    let mut ctx = Ctx::new(opts, &mut progress, &mut no_events);
    let Ok((b, _)) = scan_dir(&mut ctx, dir) else {
        return crate::enrich::ids::derived_correlation_id(0, dir.display().to_string().as_bytes());
    };
    let mut asm = Assembler::new(false, opts.timezone_given, tz_name(opts));
    decide_correlation_id(&mut ctx, &b, &mut asm, dir)
}

/// The name of the time zone the options give, for messages.
fn tz_name(opts: &ParseOptions) -> &str {
    opts.timezone.iana_name().unwrap_or("UTC")
}

type Sender<'s> = dyn FnMut(&mut Ctx, &mut Event) -> Result<(), Stop> + 's;

/// Reads one file through `parser`, handing each event to `send`.
fn parse_file_with(
    ctx: &mut Ctx,
    path: &Path,
    parser: &mut dyn FormatParser,
    send: &mut Sender<'_>,
) -> Result<(), Stop> {
    let reader = match open_file(path) {
        Ok(r) => r,
        Err(e) => {
            ctx.error(format!("{}: {}", path.display(), e));
            return Ok(());
        }
    };
    let max_line = ctx.opts.max_line_bytes;
    let name = path.display().to_string();
    run_parser(ctx, reader, parser, send, false, &name, max_line)
}

/// Hands each of `events` to `send`, in order, and empties `events`. Each event is dropped
/// where it lies as soon as it is handed on (`retain_mut` dropping them all): not moved out
/// (two copies of 536 bytes with `drain`), and its strings, freed one event at a time, are
/// reused by the next event's (a piece's worth of events freed at once overflows the
/// allocator's thread cache: +3% instructions measured).
fn send_each(ctx: &mut Ctx, events: &mut Vec<Event>, send: &mut Sender<'_>) -> Result<(), Stop> {
    let mut sent = Ok(());
    events.retain_mut(|e| {
        if sent.is_ok() {
            sent = send(ctx, e);
        }
        false
    });
    sent
}

/// How much input [`run_parser`] hands the parser at once.
pub(crate) const PARSE_PIECE: usize = 8 * 1024;

fn run_parser(
    ctx: &mut Ctx,
    mut reader: Box<dyn Read + Send>,
    parser: &mut dyn FormatParser,
    send: &mut Sender<'_>,
    live: bool,
    name: &str,
    max_line: usize,
) -> Result<(), Stop> {
    ctx.report.files += 1;
    ctx.progress.file_started();
    let mut lines = FileParser::new(max_line);
    let mut buf = ReadBuffer::take(if live { 64 * 1024 } else { 256 * 1024 });
    let mut events = Vec::new();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // A truncated .gz or a failing disk: say so, keep what was read.
                ctx.error(format!("{name}: {e}"));
                break;
            }
        };
        ctx.report.bytes += n as u64;
        // Parsed a piece at a time, so that the events between parser and sink stay few and
        // in cache (a whole read's worth of events is megabytes, moved through memory twice).
        for piece in buf[..n].chunks(PARSE_PIECE) {
            lines.feed(parser, piece, &mut events);
            let count = events.len() as u64;
            send_each(ctx, &mut events, send)?;
            ctx.progress.add(piece.len() as u64, count);
        }
    }
    lines.finish(parser, &mut events);
    send_each(ctx, &mut events, send)?;
    Ok(())
}

/// A single file: its own build. An install log next to the JSON logger's file for the same
/// feature takes that file's correlation id and timestamps.
fn parse_single_file(ctx: &mut Ctx, path: &Path) -> Result<(), Stop> {
    let reader = match open_file(path) {
        Ok(r) => r,
        Err(e) => {
            ctx.error(format!("{}: {}", path.display(), e));
            return Ok(());
        }
    };
    let name = path.display().to_string();
    let install_slug = match FileKind::of_path(&name) {
        Some(FileKind::Install(s)) => Some(s),
        _ => None,
    };
    let sibling_json = install_slug
        .as_ref()
        .map(|s| path.with_file_name("json").join(format!("{s}.jsonl")))
        .filter(|p| p.is_file());
    parse_stream(ctx, reader, &name, install_slug, sibling_json, false)
}

/// One stream (a file or stdin) as a build of its own.
fn parse_stream(
    ctx: &mut Ctx,
    mut reader: Box<dyn Read + Send>,
    source: &str,
    install_slug: Option<String>,
    sibling_json: Option<PathBuf>,
    live: bool,
) -> Result<(), Stop> {
    // Enough of the stream to detect its format: the first line at least.
    let mut head = Vec::new();
    let mut chunk = ReadBuffer::take(64 * 1024);
    let mut read_error = None;
    // A live stream gives its first line; anything else its first 64 KiB, which also seeds
    // the stream's own correlation id (two builds' logs differ there, even where their first
    // lines, like BuildKit's `#0 building with "default" instance`, do not).
    while head.len() <= identity::SEED_MAX && !(live && head.contains(&b'\n')) {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    // Reported once: after a read error the stream is not read on (a `.gz` with trailing
    // garbage would say so again).
    let failed = read_error.is_some();
    if let Some(e) = read_error {
        ctx.error(format!("{source}: {e}"));
    }
    let format = match ctx.opts.format {
        Format::Auto => detect(source, &head),
        f => f,
    };
    let opts = ctx.opts;
    let tz = opts.timezone.clone();
    // An install log's id is derived as in its directory: from its header and first command
    // block (not from a live stream, which gives its first line only).
    let install_id = (format == Format::InstallLog && !live)
        .then(|| identity::seed(&head, head.len() <= identity::SEED_MAX))
        .flatten()
        .map(|seed| identity::derived(seed, &tz));
    let head_hash = xxhash_rust::xxh3::xxh3_64(&head[..head.len().min(64 * 1024)]);
    let reader: Box<dyn Read + Send> = if failed {
        Box::new(io::Cursor::new(head))
    } else {
        Box::new(io::Cursor::new(head).chain(reader))
    };
    let mut parser: Box<dyn FormatParser> = match format {
        Format::InstallLog | Format::Auto => {
            Box::new(InstallLogParser::new(tz.clone()).scanning_for_scrubber(opts.scrub))
        }
        Format::MasterSummary => Box::new(MasterSummaryParser),
        Format::BuildFailure => Box::new(BuildFailureParser),
        Format::Json => Box::new(JsonParser::default()),
        Format::Console => Box::new(ConsoleParser::new(tz.clone())),
    };
    // A JSON line is one record: buildlog's own events and dead-letter records hold lines of up
    // to --max-line-bytes in several fields, so JSON input may not be cut at that size.
    let max_line = if format == Format::Json {
        JSON_MAX_LINE.max(opts.max_line_bytes)
    } else {
        opts.max_line_bytes
    };
    let mut asm = Assembler::new(opts.scrub, opts.timezone_given, tz_name(opts));
    let slug = install_slug.unwrap_or_default();
    if let Some(p) = &sibling_json {
        let (json_source, json_name) = (p.display().to_string(), format!("json/{slug}.jsonl"));
        for l in read_json_file(ctx, p) {
            if let JsonLine::Event(e, c) = l {
                asm.json_feature(&slug, &json_source, &json_name).push(e, c);
            }
        }
    }
    let explicit = opts
        .correlation_id
        .clone()
        .or_else(|| asm.json_logger_id(&slug).map(str::to_string))
        .or(install_id);
    if let Some(id) = explicit {
        asm.set_correlation_id(id);
    }
    let text = format == Format::InstallLog || format == Format::Auto;
    ctx.build = (format != Format::Json).then(BuildTracker::new);
    run_parser(
        ctx,
        reader,
        parser.as_mut(),
        &mut |ctx, e| {
            if asm.correlation_id().is_none() {
                // No id given or written: the stream's own, from its first event.
                let id = e
                    .logger_correlation_id
                    .clone()
                    .filter(|_| format == Format::Json)
                    .unwrap_or_else(|| {
                        let seed = format!(
                            "{}\u{1f}{}\u{1f}{}\u{1f}{head_hash:016x}",
                            e.feature,
                            e.message,
                            e.timestamp.millis()
                        );
                        crate::enrich::ids::derived_correlation_id(
                            e.timestamp.seconds(),
                            seed.as_bytes(),
                        )
                    });
                asm.set_correlation_id(id);
            }
            if text {
                asm.text_event(&slug, e, source, source);
            } else {
                asm.event(e, source, source);
            }
            ctx.send(e)
        },
        live,
        source,
        max_line,
    )?;
    if text {
        for mut e in asm.json_leftovers(&slug) {
            ctx.send(&mut e)?;
        }
    }
    ctx.report.warnings.append(&mut asm.warnings);
    ctx.end_build()
}

#[cfg(test)]
mod tests {
    use super::JsonOut;
    use std::io::{Seek, SeekFrom, Write};

    /// An output that only takes bytes gets the bytes asked for of a file, from where it
    /// stands, in order, across many blocks; not those after them; an error where the file
    /// holds fewer.
    #[test]
    fn a_file_is_read_back_for_an_output_of_bytes() {
        let lines: Vec<u8> = (0..40_000u32)
            .flat_map(|i| format!("{{\"seq\":{i}}}\n").into_bytes())
            .collect();
        assert!(lines.len() > 2 * super::super::parallel::JSON_BATCH);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"skipped\n").unwrap();
        file.write_all(&lines).unwrap();
        file.write_all(b"left over from an earlier build\n")
            .unwrap();
        file.seek(SeekFrom::Start(8)).unwrap();
        let mut got = Vec::new();
        let mut writes = 0;
        let mut out = |b: &[u8]| {
            got.extend_from_slice(b);
            writes += 1;
            Ok(())
        };
        out.write_file(&mut file, lines.len() as u64).unwrap();
        assert!(got == lines, "{} bytes of {}", got.len(), lines.len());
        assert!(writes >= 3, "{writes} writes");
        // A file that holds fewer bytes than were written to it.
        file.seek(SeekFrom::Start(8)).unwrap();
        let mut taken = |_: &[u8]| Ok(());
        let e = taken
            .write_file(&mut file, 10 * lines.len() as u64)
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("lost"), "{e}");
        // A failing output stops the reading.
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut calls = 0;
        let mut failing = |_: &[u8]| {
            calls += 1;
            Err(std::io::Error::other("disk full"))
        };
        assert!(failing.write_file(&mut file, 8).is_err());
        assert_eq!(calls, 1);
    }
}
