//! Builds: which parsers read which inputs, and how their events become one stream.
//!
//! A build is one log directory (one image build): its install logs are the source of
//! truth, read in the order the features started; the JSON logger's files, where present,
//! lend their correlation id and millisecond timestamps to the events that exist in both
//! (emitted once); `-summary.log` and `-errors.log` repeat the install log and are read only
//! where it is missing. A file or stdin on its own is a build of its own.

use super::build_failure::{parse_sentinel, BuildFailureParser, Failure};
use super::clock::parse_date_time;
use super::console::ConsoleParser;
use super::install_log::{AbortHint, InstallLogParser};
use super::json_logger::{parse_line, to_record, JsonParser, JsonRecord};
use super::master_summary::MasterSummaryParser;
use super::{detect, Format, FormatParser, ParseOptions};
use crate::enrich::build_events::BuildTracker;
use crate::enrich::{ids, Enricher};
use crate::event::{Event, EventType, Timestamp};
use crate::source::{open_file, read_small, stdin_is_live, Input, LineSplitter, Progress};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Clone)]
pub struct ParseReport {
    pub files: u64,
    pub bytes: u64,
    pub events: u64,
    /// One line per input that could not be read, naming it.
    pub errors: Vec<String>,
    /// Files in build directories that are not the logger's and were left alone.
    pub skipped: Vec<String>,
}

/// The longest JSON line read whole (a replayed event or dead-letter record).
const JSON_MAX_LINE: usize = 64 * 1024 * 1024;

type Emit<'a> = dyn FnMut(Event) -> io::Result<()> + 'a;

/// The emitter was told to stop (broken pipe, a sink gone): unwind quietly.
struct Stop;

struct Ctx<'a, 'b> {
    opts: &'a ParseOptions,
    progress: &'a mut Progress,
    emit: &'a mut Emit<'b>,
    report: ParseReport,
    /// The build being read: gives its `build_start` and `build_end` events.
    build: Option<BuildTracker>,
}

impl Ctx<'_, '_> {
    fn send(&mut self, e: Event) -> Result<(), Stop> {
        if let Some(t) = self.build.as_mut() {
            if let Some(mut s) = t.before(&e) {
                t.stamp(&mut s);
                self.report.events += 1;
                (self.emit)(s).map_err(|_| Stop)?;
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
                self.send(e)
            }
            None => Ok(()),
        }
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
    let mut ctx = Ctx {
        opts,
        progress,
        emit,
        report: ParseReport::default(),
        build: None,
    };
    for input in inputs {
        let r = match input {
            Input::Stdin => {
                let live = stdin_is_live();
                parse_stream(&mut ctx, Box::new(io::stdin()), "-", "-", None, live)
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

/// The logger's file name slug: lower case, spaces to `-`, only `[a-z0-9-]`.
pub fn slug(feature: &str) -> String {
    feature
        .to_lowercase()
        .replace(' ', "-")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

fn strip_gz(name: &str) -> &str {
    name.strip_suffix(".gz").unwrap_or(name)
}

/// The JSON logger's events of one feature, waiting to be matched with the text's.
#[derive(Default)]
struct JsonFeature {
    events: VecDeque<Event>,
    logger_id: Option<String>,
    source: String,
    source_name: String,
}

impl JsonFeature {
    /// The logger's twin of a text event, if it wrote one: same type, same command number.
    fn take_twin(&mut self, e: &Event) -> Option<Event> {
        if e.incomplete
            || !matches!(
                e.event_type,
                EventType::FeatureStart
                    | EventType::Command
                    | EventType::Warning
                    | EventType::Error
                    | EventType::FeatureEnd
            )
        {
            return None;
        }
        let pos = self.events.iter().position(|j| {
            j.event_type == e.event_type
                && (e.event_type != EventType::Command || j.command_num == e.command_num)
        })?;
        self.events.remove(pos)
    }
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

fn scan_dir(ctx: &mut Ctx, dir: &Path) -> io::Result<(BuildDir, Vec<PathBuf>)> {
    let mut b = BuildDir::default();
    let mut subdirs = Vec::new();
    for p in list_dir(dir)? {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let base = strip_gz(&name).to_string();
        if p.is_dir() {
            if name == "json" {
                for j in list_dir(&p)? {
                    let jn = j
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default();
                    let jb = strip_gz(&jn).to_string();
                    if jb == "build-summary.jsonl" {
                        b.build_summary_json = Some(j);
                    } else if jb == "build-metadata.json" {
                        b.metadata_json = Some(j);
                    } else if let Some(s) = jb.strip_suffix(".jsonl") {
                        let s = s.to_string();
                        b.json_features.push((j, s));
                    } else {
                        ctx.report.skipped.push(j.display().to_string());
                    }
                }
            } else {
                subdirs.push(p);
            }
            continue;
        }
        if let Some(s) = base.strip_suffix("-install.log") {
            b.install_logs.push((p.clone(), s.to_string()));
        } else if let Some(s) = base.strip_suffix("-summary.log").filter(|s| *s != "master") {
            b.summary_logs.push((p.clone(), s.to_string()));
        } else if base == "master-summary.log" {
            b.master = Some(p);
        } else if base == "build-failure.log" {
            b.failure = Some(p);
        } else if let Some(s) = base.strip_suffix("-errors.log") {
            // Repeats the install log's lines; read only where that is missing (see below).
            b.errors_logs.push((p.clone(), s.to_string()));
        } else {
            ctx.report.skipped.push(p.display().to_string());
        }
    }
    Ok((b, subdirs))
}

impl BuildDir {
    fn is_build(&self) -> bool {
        !self.install_logs.is_empty()
            || self.master.is_some()
            || !self.json_features.is_empty()
            || self.failure.is_some()
            || !self.summary_logs.is_empty()
    }
}

/// A build's own correlation id, from its first feature's header: the same whether the build
/// is converted whole afterwards or followed while it is written.
pub(crate) fn derive_build_id(
    slug: &str,
    feature: &str,
    start: &str,
    tz: &jiff::tz::TimeZone,
) -> String {
    let seed = format!("{slug}\u{1f}{feature}\u{1f}{start}");
    ids::derived_correlation_id(start_seconds(start, tz).unwrap_or(0), seed.as_bytes())
}

/// The feature a `-summary.log` names in its `Installation Summary: X` line.
fn summary_feature(path: &Path) -> Option<String> {
    let bytes = read_small(path).ok()?;
    String::from_utf8_lossy(&bytes)
        .lines()
        .find_map(|l| l.strip_prefix("Installation Summary: ").map(str::to_string))
}

/// The header of an install log: (feature, `Start Time` text), from its first lines.
pub(crate) fn read_header(path: &Path) -> Option<(String, String)> {
    let mut r = open_file(path).ok()?;
    let mut head = vec![0u8; 4096];
    let n = read_full(&mut r, &mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    let mut feature = None;
    for l in text.lines().take(8) {
        if let Some(f) = l.strip_prefix("Feature Installation Log: ") {
            feature = Some(f.to_string());
        }
        if let Some(t) = l.strip_prefix("Start Time: ") {
            return Some((feature.unwrap_or_default(), t.trim().to_string()));
        }
    }
    feature.map(|f| (f, String::new()))
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

fn start_seconds(start: &str, tz: &jiff::tz::TimeZone) -> Option<i64> {
    let (d, t) = parse_date_time(start)?;
    let mut c = super::clock::Clock::new(tz.clone());
    Some(c.set_datetime(d, t).seconds())
}

fn read_json_file(ctx: &mut Ctx, path: &Path) -> Vec<(Event, Option<String>, u64, bool)> {
    let bytes = match read_small(path) {
        Ok(b) => b,
        Err(e) => {
            ctx.error(format!("{}: {}", path.display(), e));
            return Vec::new();
        }
    };
    ctx.report.files += 1;
    ctx.report.bytes += bytes.len() as u64;
    let mut out = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match parse_line(line).and_then(to_record) {
            Some(JsonRecord::Event(e, c)) => out.push((e, c, i as u64 + 1, false)),
            Some(JsonRecord::Summary(e, c)) => out.push((e, c, i as u64 + 1, true)),
            Some(JsonRecord::Metadata(_)) => {}
            None => {
                let (text, invalid) = super::text::decode(line);
                let mut e = Event::new(
                    EventType::Message,
                    crate::event::Level::Warn,
                    "",
                    text.to_string(),
                );
                e.metadata.insert("unparsed".into(), true.into());
                e.invalid_utf8 = invalid;
                out.push((e, None, i as u64 + 1, false));
            }
        }
    }
    out
}

fn parse_dir(ctx: &mut Ctx, dir: &Path) -> Result<(), Stop> {
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
    ctx.build = Some(BuildTracker::new());
    let tz = ctx.opts.timezone.clone();
    let dir_name = dir.display().to_string();
    let rel = |p: &Path| -> String {
        p.strip_prefix(dir)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| p.display().to_string())
    };

    // The JSON logger's view of the build.
    let mut json: HashMap<String, JsonFeature> = HashMap::new();
    let mut logger_ids: Vec<String> = Vec::new();
    for (path, s) in &b.json_features {
        let mut jf = JsonFeature {
            source: path.display().to_string(),
            source_name: rel(path),
            ..Default::default()
        };
        for (mut e, c, line, _) in read_json_file(ctx, path) {
            e.source.line = line;
            if let Some(c) = &c {
                if !logger_ids.contains(c) {
                    logger_ids.push(c.clone());
                }
                jf.logger_id.get_or_insert_with(|| c.clone());
            }
            e.logger_correlation_id = c;
            jf.events.push_back(e);
        }
        json.insert(s.clone(), jf);
    }
    let mut summary_json: VecDeque<Event> = VecDeque::new();
    if let Some(p) = &b.build_summary_json {
        for (mut e, c, line, _) in read_json_file(ctx, p) {
            if let Some(c) = &c {
                if !logger_ids.contains(c) {
                    logger_ids.push(c.clone());
                }
            }
            e.source.line = line;
            e.logger_correlation_id = c;
            summary_json.push_back(e);
        }
    }
    let metadata_id = b.metadata_json.as_ref().and_then(|p| {
        let v: serde_json::Value = serde_json::from_slice(&read_small(p).ok()?).ok()?;
        v.get("correlation_id")?.as_str().map(str::to_string)
    });

    // Install logs in the order their features started.
    let mut logs: Vec<(PathBuf, String, String, String)> = b
        .install_logs
        .iter()
        .map(|(p, s)| {
            let (f, start) = read_header(p).unwrap_or_default();
            (p.clone(), s.clone(), f, start)
        })
        .collect();
    logs.sort_by_key(|(p, _, _, start)| (start_seconds(start, &tz).unwrap_or(i64::MAX), p.clone()));

    let correlation_id = ctx
        .opts
        .correlation_id
        .clone()
        .or(metadata_id)
        .or_else(|| (logger_ids.len() == 1).then(|| logger_ids[0].clone()))
        .unwrap_or_else(|| match logs.first() {
            Some((_, slug, feature, start)) => derive_build_id(slug, feature, start, &tz),
            None => ids::derived_correlation_id(0, dir_name.as_bytes()),
        });
    let mut enricher = Enricher::new(correlation_id, ctx.opts.scrub);

    let failures: Vec<(Failure, String, u64)> = b
        .failure
        .as_ref()
        .and_then(|p| read_small(p).ok().map(|bytes| (p, bytes)))
        .map(|(p, bytes)| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .enumerate()
                .filter_map(|(i, l)| {
                    parse_sentinel(l).map(|f| (f, p.display().to_string(), i as u64 + 1))
                })
                .collect()
        })
        .unwrap_or_default();

    let mut last_time: HashMap<String, Timestamp> = HashMap::new();
    let mut seen_slugs: Vec<String> = Vec::new();
    for (path, s, feature, _) in &logs {
        seen_slugs.push(s.clone());
        let mut parser = InstallLogParser::new(tz.clone());
        if let Some((f, _, _)) = failures.iter().find(|(f, _, _)| f.feature == *feature) {
            parser.set_abort_hint(AbortHint {
                command_num: f.command_num,
                exit_code: f.exit_code,
            });
        }
        let mut jf = json.remove(s);
        let source = path.display().to_string();
        let name = rel(path);
        let mut last = Timestamp::default();
        let r = parse_file_with(ctx, path, &mut parser, &mut |ctx, mut e| {
            if let Some(jf) = jf.as_mut() {
                if let Some(twin) = jf.take_twin(&e) {
                    e.timestamp = twin.timestamp;
                    e.logger_correlation_id = twin.logger_correlation_id;
                } else if e.logger_correlation_id.is_none() {
                    e.logger_correlation_id = jf.logger_id.clone();
                }
            }
            last = last.max(e.timestamp);
            enricher.apply(&mut e, &source, &name);
            ctx.send(e)
        });
        r?;
        // What the logger wrote that the text does not show (a text log cut short): kept.
        if let Some(jf) = jf {
            for mut e in jf.events {
                e.details.insert("from".into(), "json".into());
                last = last.max(e.timestamp);
                enricher.apply(&mut e, &jf.source, &jf.source_name);
                ctx.send(e)?;
            }
        }
        last_time.insert(feature.clone(), last);
    }

    // Features with no install log: the lines their errors log kept, their summary log,
    // else the JSON logger's events.
    let install_slugs = seen_slugs.clone();
    for (path, s) in &b.errors_logs {
        if install_slugs.contains(s) {
            continue;
        }
        let feature = b
            .summary_logs
            .iter()
            .find(|(_, x)| x == s)
            .and_then(|(p, _)| summary_feature(p))
            .or_else(|| {
                json.get(s)
                    .and_then(|jf| jf.events.front().map(|e| e.feature.clone()))
            })
            .unwrap_or_else(|| s.clone());
        let mut parser = super::install_log::ErrorsLogParser::new(feature);
        let source = path.display().to_string();
        let name = rel(path);
        parse_file_with(ctx, path, &mut parser, &mut |ctx, mut e| {
            enricher.apply(&mut e, &source, &name);
            ctx.send(e)
        })?;
    }
    for (path, s) in &b.summary_logs {
        if seen_slugs.contains(s) {
            continue;
        }
        seen_slugs.push(s.clone());
        let mut parser = InstallLogParser::summary_only(tz.clone());
        let source = path.display().to_string();
        let name = rel(path);
        let mut jf = json.remove(s);
        parse_file_with(ctx, path, &mut parser, &mut |ctx, mut e| {
            if let Some(twin) = jf.as_mut().and_then(|jf| jf.take_twin(&e)) {
                e.timestamp = twin.timestamp;
                e.logger_correlation_id = twin.logger_correlation_id;
            }
            e.details.insert("from".into(), "summary log".into());
            enricher.apply(&mut e, &source, &name);
            ctx.send(e)
        })?;
    }
    let mut rest: Vec<(String, JsonFeature)> = json.into_iter().collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, jf) in rest {
        for mut e in jf.events {
            e.details.insert("from".into(), "json".into());
            last_time
                .entry(e.feature.clone())
                .and_modify(|t| *t = (*t).max(e.timestamp))
                .or_insert(e.timestamp);
            enricher.apply(&mut e, &jf.source, &jf.source_name);
            ctx.send(e)?;
        }
    }

    // master-summary.log: one build_summary per finished feature, timed by the logger's
    // build-summary.jsonl where it has the line, else by the feature's end.
    if let Some(p) = &b.master {
        let source = p.display().to_string();
        let name = rel(p);
        let mut parser = MasterSummaryParser;
        parse_file_with(ctx, p, &mut parser, &mut |ctx, mut e| {
            let twin = summary_json
                .iter()
                .position(|j| j.feature == e.feature)
                .and_then(|i| summary_json.remove(i));
            match twin {
                Some(j) => {
                    e.timestamp = j.timestamp;
                    e.logger_correlation_id = j.logger_correlation_id;
                    e.command_count = j.command_count;
                }
                None => e.timestamp = last_time.get(&e.feature).copied().unwrap_or_default(),
            }
            enricher.apply(&mut e, &source, &name);
            ctx.send(e)
        })?;
    }
    if let Some(p) = &b.build_summary_json {
        let source = p.display().to_string();
        let name = rel(p);
        for mut e in summary_json {
            e.details.insert("from".into(), "json".into());
            enricher.apply(&mut e, &source, &name);
            ctx.send(e)?;
        }
    }
    if let Some(p) = &b.failure {
        let source = p.display().to_string();
        let name = rel(p);
        let mut parser = BuildFailureParser;
        parse_file_with(ctx, p, &mut parser, &mut |ctx, mut e| {
            e.timestamp = last_time.get(&e.feature).copied().unwrap_or_default();
            enricher.apply(&mut e, &source, &name);
            ctx.send(e)
        })?;
    }
    ctx.end_build()
}

type Sender<'s> = dyn FnMut(&mut Ctx, Event) -> Result<(), Stop> + 's;

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
    let mut splitter = LineSplitter::new(max_line);
    let mut buf = vec![0u8; if live { 64 * 1024 } else { 256 * 1024 }];
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
        let _ = splitter.push::<()>(&buf[..n], &mut |l| {
            parser.line(&l, &mut events);
            Ok(())
        });
        let count = events.len() as u64;
        for e in events.drain(..) {
            send(ctx, e)?;
        }
        ctx.progress.add(n as u64, count);
    }
    let _ = splitter.finish::<()>(&mut |l| {
        parser.line(&l, &mut events);
        Ok(())
    });
    parser.finish(&mut events);
    for e in events.drain(..) {
        send(ctx, e)?;
    }
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
    let sibling_json = path
        .file_name()
        .map(|n| strip_gz(&n.to_string_lossy()).to_string())
        .and_then(|n| n.strip_suffix("-install.log").map(str::to_string))
        .map(|s| path.with_file_name("json").join(format!("{s}.jsonl")))
        .filter(|p| p.is_file());
    parse_stream(ctx, reader, &name, &name, sibling_json, false)
}

/// One stream (a file or stdin) as a build of its own.
fn parse_stream(
    ctx: &mut Ctx,
    mut reader: Box<dyn Read + Send>,
    source: &str,
    source_name: &str,
    sibling_json: Option<PathBuf>,
    live: bool,
) -> Result<(), Stop> {
    // Enough of the stream to detect its format: the first line at least.
    let mut head = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut read_error = None;
    // A live stream gives its first line; anything else its first 64 KiB, which also seeds
    // the stream's own correlation id (two builds' logs differ there, even where their first
    // lines, like BuildKit's `#0 building with "default" instance`, do not).
    while head.len() < 64 * 1024 && !(live && head.contains(&b'\n')) {
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
    if let Some(e) = read_error {
        ctx.error(format!("{source}: {e}"));
    }
    let format = match ctx.opts.format {
        Format::Auto => detect(source, &head),
        f => f,
    };
    let head_for_id = head[..head.len().min(64 * 1024)].to_vec();
    let reader: Box<dyn Read + Send> = Box::new(io::Cursor::new(head).chain(reader));
    let tz = ctx.opts.timezone.clone();
    let mut parser: Box<dyn FormatParser> = match format {
        Format::InstallLog | Format::Auto => Box::new(InstallLogParser::new(tz.clone())),
        Format::MasterSummary => Box::new(MasterSummaryParser),
        Format::BuildFailure => Box::new(BuildFailureParser),
        Format::Json => Box::new(JsonParser::default()),
        Format::Console => Box::new(ConsoleParser::new(tz.clone())),
    };
    // A JSON line is one record: buildlog's own events and dead-letter records hold lines of up
    // to --max-line-bytes in several fields, so JSON input may not be cut at that size.
    let max_line = if format == Format::Json {
        JSON_MAX_LINE.max(ctx.opts.max_line_bytes)
    } else {
        ctx.opts.max_line_bytes
    };
    let mut twins = JsonFeature::default();
    let mut logger_id = None;
    if let Some(p) = &sibling_json {
        for (mut e, c, line, _) in read_json_file(ctx, p) {
            e.source.line = line;
            if logger_id.is_none() {
                logger_id.clone_from(&c);
            }
            e.logger_correlation_id = c;
            twins.events.push_back(e);
        }
    }
    let explicit = ctx.opts.correlation_id.clone().or(logger_id);
    let scrub = ctx.opts.scrub;
    let head_hash = xxhash_rust::xxh3::xxh3_64(&head_for_id);
    let mut enricher: Option<Enricher> = explicit.map(|c| Enricher::new(c, scrub));
    ctx.build = (format != Format::Json).then(BuildTracker::new);
    run_parser(
        ctx,
        reader,
        parser.as_mut(),
        &mut |ctx, mut e| {
            if let Some(twin) = twins.take_twin(&e) {
                e.timestamp = twin.timestamp;
                e.logger_correlation_id = twin.logger_correlation_id;
            }
            let enr = enricher.get_or_insert_with(|| {
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
                        ids::derived_correlation_id(e.timestamp.seconds(), seed.as_bytes())
                    });
                Enricher::new(id, scrub)
            });
            enr.apply(&mut e, source, source_name);
            ctx.send(e)
        },
        live,
        source,
        max_line,
    )?;
    ctx.end_build()
}
