//! `docker build` console output: the plain stdout+stderr of a build, BuildKit's plain
//! progress (`#5 0.280 <line>`, `#5 DONE 1.2s`, `#5 CACHED`, `#5 ERROR: ...`), and either of
//! them as a CI job log whose lines start with a runner timestamp
//! (`2026-10-27T09:14:05.1850000Z `, GitHub Actions).
//!
//! Each line is peeled in layers: the runner timestamp, the runner's own `##[...]` commands,
//! the BuildKit `#N` prefix and its relative seconds. What is left is what the logging
//! library printed (its install log echoed by `tee`, plus the console-only `=== Installing`,
//! `✓`/`✗` and `=== ... installation complete ===` lines); a [`Flow`] per BuildKit step
//! (steps can interleave) turns that into the same events as the install log.
//! See docs/formats.md, "Console logs", for what is recognised and the time rules.

use super::build_failure::{failure_event, SENTINEL};
use super::clock::{parse_date_time, parse_hms, Clock, MID_SECOND_MS};
use super::grammar::{ConfigBlock, SummaryFigures, SummaryLine};
use super::text::{decode, matches_error, matches_warning, strip_ansi};
use super::FormatParser;
use crate::event::{Event, EventType, Level, Timestamp};
use crate::source::Line;
use jiff::civil::{Date, Time as CivilTime};
use jiff::tz::TimeZone;
use regex::Regex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Bytes of a multi-line `Executing:` record kept before its lines are taken for output.
const MAX_EXECUTING: usize = 64 * 1024;
/// BuildKit steps tracked at once; finished ones are forgotten first (memory stays bounded).
const MAX_STEPS: usize = 1024;

/// The logger's rules: 80 `-` around command output, 80 `=` around its blocks.
const RULE: &str =
    "--------------------------------------------------------------------------------";
const BANNER: &str =
    "================================================================================";

static EXIT_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^Exit code: (-?\d+) \(Duration: (\d+)s\)\s*$").unwrap());
static COUNTS_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^Errors: (\d+), Warnings: (\d+)\s*$").unwrap());
static GH_FAILURE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^COMMAND #(\d+) '(.*)' failed \(exit (-?\d+)\): (.*)$").unwrap());
static EXIT_CODE_TAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"exit code: (-?\d+)\s*$").unwrap());
/// The legacy builder's failure: `The command '/bin/sh -c ...' returned a non-zero code: 101`.
static LEGACY_FAILURE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^The command '.*' returned a non-zero code: (-?\d+)\s*$").unwrap()
});

/// An event time and whether part of it was guessed (no date in the input, or a BuildKit
/// step whose start is unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Time {
    ms: i64,
    inferred: bool,
}

/// A wall-clock stamp the logger printed, in the build's local time.
#[derive(Debug, Clone, Copy)]
enum Stamp {
    /// `Start Time: 2025-11-16 19:30:40`, `End Time: ...`
    Full(Date, CivilTime),
    /// `[19:30:40] ...`
    TimeOfDay(CivilTime),
}

/// The clock's current time; guessed while the input has given no date.
fn inherit(clock: &Clock) -> Time {
    Time {
        ms: clock.now().0,
        inferred: !clock.is_dated(),
    }
}

fn observe_utc(clock: &mut Clock, ms: i64) -> Time {
    clock.set_instant(Timestamp(ms));
    Time {
        ms,
        inferred: false,
    }
}

fn set_stamp(clock: &mut Clock, st: Stamp) -> Time {
    let ts = match st {
        Stamp::Full(d, t) => clock.set_datetime(d, t),
        Stamp::TimeOfDay(t) => clock.set_time(t),
    };
    Time {
        ms: ts.0,
        inferred: !clock.is_dated(),
    }
}

/// Time within one BuildKit step: an absolute time known at a relative offset.
#[derive(Default)]
struct StepClock {
    anchor: Option<(Time, i64)>,
    start: Option<Time>,
}

/// Where a line sits relative to its BuildKit step.
#[derive(Clone, Copy)]
enum Rel {
    None,
    /// `#5 3.456 ...`: milliseconds since the step started.
    At(i64),
    /// `#5 DONE 1.2s`: the step's duration in milliseconds.
    End(i64),
}

/// The time of one line. The bool is true when the line had no time of its own and
/// inherited the last one.
fn resolve(
    clock: &mut Clock,
    runner: Option<i64>,
    sc: Option<&mut StepClock>,
    rel: Rel,
    stamp: Option<Stamp>,
) -> (Time, bool) {
    if let Some(ms) = runner {
        let t = observe_utc(clock, ms);
        if let (Some(sc), Rel::At(r)) = (sc, rel) {
            sc.anchor = Some((t, r));
        }
        return (t, false);
    }
    if let Some(st) = stamp {
        let mut t = set_stamp(clock, st);
        if let (Some(sc), Rel::At(r)) = (sc, rel) {
            // The stamp names a whole second; BuildKit's offset refines it when it falls
            // inside that second.
            if let Some((a, ar)) = sc.anchor {
                let est = a.ms + (r - ar);
                let second = t.ms - MID_SECOND_MS;
                if !a.inferred && est >= second && est < second + 1000 {
                    t.ms = est;
                }
            }
            sc.anchor = Some((t, r));
        }
        clock.advance_to(Timestamp(t.ms));
        return (t, false);
    }
    let t = match (sc, rel) {
        (Some(sc), Rel::At(r)) => match sc.anchor {
            Some((a, ar)) => Time {
                ms: a.ms + (r - ar),
                inferred: a.inferred,
            },
            None => {
                let base = sc.start.unwrap_or_else(|| inherit(clock));
                let t = Time {
                    ms: base.ms + r,
                    inferred: true,
                };
                sc.anchor = Some((t, r));
                t
            }
        },
        (Some(sc), Rel::End(d)) => match sc.anchor {
            Some((a, ar)) => Time {
                ms: a.ms - ar + d,
                inferred: a.inferred,
            },
            None => return (inherit(clock), true),
        },
        _ => return (inherit(clock), true),
    };
    clock.advance_to(Timestamp(t.ms));
    (t, false)
}

/// Per-line context for building events.
struct Cx<'a> {
    line: u64,
    time: Time,
    /// The line had no time of its own.
    inherited: bool,
    stage: Option<&'a str>,
    invalid: bool,
    original_len: Option<u64>,
}

impl Cx<'_> {
    fn emit(&self, mut ev: Event, out: &mut Vec<Event>) {
        ev.timestamp = Timestamp(self.time.ms);
        if self.time.inferred {
            ev.details.insert("time_inferred".into(), true.into());
        }
        ev.source.line = self.line;
        ev.invalid_utf8 = self.invalid;
        if let Some(n) = self.original_len {
            ev.truncated = true;
            ev.original_length = Some(n);
        }
        if ev.stage.is_none() {
            ev.stage = self.stage.map(str::to_string);
        }
        out.push(ev);
    }
}

/// Build failures already reported, so that the repeats of one failure (the library's
/// sentinel, its GitHub annotation, BuildKit's summary, a later `grep` of the log) become
/// one `build_failure` and `error` events pointing at it. One failure per feature: the
/// first aborts it.
#[derive(Default)]
struct Failures {
    /// (feature, source line of the build_failure event)
    seen: Vec<(String, u64)>,
}

impl Failures {
    fn line_of(&self, feature: &str) -> Option<u64> {
        self.seen
            .iter()
            .find(|(f, _)| f == feature)
            .map(|(_, l)| *l)
    }
    fn any(&self) -> Option<u64> {
        self.seen.first().map(|(_, l)| *l)
    }
}

/// Where the logger's output stands, for one stream of its lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Mode {
    #[default]
    Idle,
    /// Saw an `=====` line; the next line says which block it opens.
    Banner,
    /// `Feature Installation Log:` header (`Version:`, `Start Time:`).
    Header,
    ConfigTitle,
    Config,
    SummaryTitle,
    Summary,
    /// The summary's `--- First 10 Errors/Warnings ---` list: repeats, absorbed.
    SummaryList,
    /// After `COMMAND #n:`, collecting `Executing:` until the rule.
    CmdPending,
    /// Between the two rules: the command's output.
    Output,
    /// After `=== X installation complete ===`, expecting `Errors: n, Warnings: n`.
    Ending,
    /// After the feature's `Errors:` line, expecting `Full log: ...`.
    Ended,
}

struct Header {
    name: String,
    version: Option<String>,
}

struct Feature {
    name: String,
    version: Option<String>,
    start: Time,
    commands: u64,
    /// Counted the logger's way: pattern matches in output plus log_error/log_warning.
    errors: u64,
    warnings: u64,
    /// From the `Installation Summary` block.
    summary: SummaryFigures,
}

impl Feature {
    fn new(name: String, version: Option<String>, start: Time) -> Self {
        Feature {
            name,
            version,
            start,
            commands: 0,
            errors: 0,
            warnings: 0,
            summary: SummaryFigures::default(),
        }
    }
}

struct Cmd {
    num: u32,
    desc: String,
    executing: Option<String>,
    start: Time,
    line: u64,
    started: bool,
    exit: Option<i64>,
    duration: Option<u64>,
    /// Output lines and the logger's pattern matches among them.
    output_lines: u64,
    errors: u64,
    warnings: u64,
}

/// The logger's console output for one stream (the plain console, or one BuildKit step).
#[derive(Default)]
struct Flow {
    mode: Mode,
    /// Where the pending banner was (line, time), for when it opens nothing.
    banner: Option<(u64, Time)>,
    header: Option<Header>,
    feature: Option<Feature>,
    /// The feature that was last open, for lines that follow its end (BuildKit's error).
    last_feature: String,
    cmd: Option<Cmd>,
    config: Option<ConfigBlock>,
    /// The feature of an `=== X installation complete ===` awaiting its `Errors:` line.
    ending: Option<String>,
    last_line: u64,
}

impl Flow {
    fn feature_name(&self) -> &str {
        self.feature.as_ref().map(|f| f.name.as_str()).unwrap_or("")
    }

    /// Whether a `[HH:MM:SS]` or `Start Time:` on the next line is the logger's own stamp
    /// (not command output or a repeated line in a summary).
    fn honors_stamps(&self) -> bool {
        !matches!(
            self.mode,
            Mode::Output | Mode::SummaryList | Mode::CmdPending
        )
    }

    fn output(&mut self, cx: &Cx, text: &str, out: &mut Vec<Event>) {
        let mut ev = output_event(text, self.feature_name());
        if self.mode == Mode::Output {
            let (e, w) = (
                matches_error(text.as_bytes()) as u64,
                matches_warning(text.as_bytes()) as u64,
            );
            if let Some(f) = self.feature.as_mut() {
                f.errors += e;
                f.warnings += w;
            }
            if let Some(c) = self.cmd.as_mut() {
                ev.command_num = Some(c.num);
                c.output_lines += 1;
                c.errors += e;
                c.warnings += w;
            }
        }
        cx.emit(ev, out);
    }

    /// One line of the logger's output (prefixes already removed).
    fn content(&mut self, g: &mut Failures, cx: &Cx, text: &str, out: &mut Vec<Event>) {
        self.last_line = cx.line;
        let t = text.trim_end();
        if t.starts_with(SENTINEL) {
            return self.sentinel(g, cx, t, out);
        }
        match self.mode {
            Mode::Output => {
                if is_rule(t) {
                    self.mode = Mode::Idle;
                } else {
                    self.output(cx, text, out);
                }
                return;
            }
            Mode::CmdPending => {
                if is_rule(t) {
                    self.start_command(cx, out);
                    self.mode = Mode::Output;
                    return;
                }
                if let Some(cmd) = self.cmd.as_mut() {
                    match (&mut cmd.executing, text.strip_prefix("Executing: ")) {
                        (None, Some(exe)) => cmd.executing = Some(exe.to_string()),
                        (None, None) if t.is_empty() => {}
                        // A multi-line `bash -c` script: its later lines belong to `Executing:`,
                        // up to a bound: past it the rule is not coming, and the rest is output.
                        (Some(exe), _) if exe.len() + text.len() < MAX_EXECUTING => {
                            exe.push('\n');
                            exe.push_str(text);
                        }
                        (Some(_), _) => {
                            self.start_command(cx, out);
                            self.mode = Mode::Output;
                            return self.output(cx, text, out);
                        }
                        (None, None) => {
                            // No `Executing:` line: the command started without one.
                            self.start_command(cx, out);
                            self.mode = Mode::Idle;
                            return self.general(g, cx, text, out);
                        }
                    }
                }
                return;
            }
            Mode::SummaryList => {
                if t.is_empty() {
                    self.mode = Mode::Summary;
                    return;
                }
                if !(t.starts_with("Full error log: ")
                    || t.starts_with("End Time: ")
                    || t == BANNER)
                {
                    // Repeats of lines already seen: kept with the feature_end, not re-emitted.
                    // The logger prints at most ten (`head -10`); more are not its list.
                    match self.feature.as_mut() {
                        Some(f) if f.summary.first_errors.len() < 10 => {
                            return f.summary.first_errors.push(clean(text));
                        }
                        _ => {
                            self.mode = Mode::Summary;
                            return self.output(cx, text, out);
                        }
                    }
                }
                self.mode = Mode::Summary;
            }
            Mode::Banner => {
                let (bline, btime) = self.banner.take().unwrap_or((cx.line, cx.time));
                if let Some(name) = t.strip_prefix("Feature Installation Log: ") {
                    self.header = Some(Header {
                        name: name.to_string(),
                        version: None,
                    });
                    self.mode = Mode::Header;
                    return;
                }
                if let Some(name) = t.strip_prefix("Installation Summary: ") {
                    if self.feature.is_none() {
                        // The input began after the feature's start: its summary still ends it.
                        self.open_feature_silently(cx, name);
                    }
                    self.mode = Mode::SummaryTitle;
                    return;
                }
                if let Some(title) = t.strip_suffix(" Configuration Summary") {
                    self.config = Some(ConfigBlock::new(title, cx.line));
                    self.mode = Mode::ConfigTitle;
                    return;
                }
                // A banner that opens nothing is output like any other line.
                self.mode = Mode::Idle;
                let bcx = Cx {
                    line: bline,
                    time: btime,
                    inherited: false,
                    stage: cx.stage,
                    invalid: false,
                    original_len: None,
                };
                self.output(&bcx, BANNER, out);
            }
            Mode::Header => {
                if let Some(v) = t.strip_prefix("Version: ") {
                    if let Some(h) = self.header.as_mut() {
                        h.version = Some(v.trim().to_string());
                    }
                    return;
                }
                if t.starts_with("Start Time: ") || t.is_empty() {
                    return;
                }
                if t == BANNER {
                    self.mode = Mode::Idle;
                    return;
                }
                self.mode = Mode::Idle;
            }
            Mode::ConfigTitle => {
                self.mode = Mode::Config;
                if t == BANNER {
                    return;
                }
            }
            Mode::Config => return self.config_line(cx, t, out),
            Mode::SummaryTitle => {
                self.mode = Mode::Summary;
                if t == BANNER {
                    return;
                }
            }
            Mode::Summary => {
                if self.summary_line(t) {
                    return;
                }
            }
            Mode::Ending => {
                if let Some(c) = COUNTS_LINE.captures(t) {
                    let errors = c[1].parse().unwrap_or(0);
                    let warnings = c[2].parse().unwrap_or(0);
                    self.end_feature(cx, Some((errors, warnings)), out);
                    self.mode = Mode::Ended;
                    return;
                }
                self.end_feature(cx, None, out);
                self.mode = Mode::Idle;
            }
            Mode::Ended => {
                self.mode = Mode::Idle;
                if t.starts_with("Full log: ") {
                    return;
                }
            }
            Mode::Idle => {}
        }
        self.general(g, cx, text, out)
    }

    /// Lines that mean the same in any mode that is not a block.
    fn general(&mut self, g: &mut Failures, cx: &Cx, text: &str, out: &mut Vec<Event>) {
        let t = text.trim_end();
        if t.is_empty() {
            return; // the logger's spacing
        }
        if t == BANNER {
            self.mode = Mode::Banner;
            self.banner = Some((cx.line, cx.time));
            return;
        }
        if let Some(rest) = t.strip_prefix("=== Installing ") {
            if let Some(inner) = rest.strip_suffix(" ===") {
                return self.start_feature(cx, inner, out);
            }
        }
        if let Some(name) = t
            .strip_prefix("=== ")
            .and_then(|r| r.strip_suffix(" installation complete ==="))
        {
            self.ending = Some(name.to_string());
            self.mode = Mode::Ending;
            return;
        }
        if let Some((_, rest)) = split_stamp(text) {
            return self.stamped(cx, rest, out);
        }
        if let Some(c) = EXIT_LINE.captures(t) {
            if let Some(cmd) = self.cmd.as_mut().filter(|c| c.exit.is_none()) {
                cmd.exit = c[1].parse().ok();
                cmd.duration = c[2].parse().ok();
                return;
            }
        }
        if let Some(desc) = t
            .strip_prefix("✓ ")
            .and_then(|r| r.strip_suffix(" completed successfully"))
        {
            return self.end_command(cx, desc, 0, out);
        }
        if let Some((desc, code)) = t
            .strip_prefix("✗ ")
            .and_then(|r| r.rsplit_once(" failed with exit code "))
        {
            if let Ok(code) = code.trim().parse::<i64>() {
                return self.end_command(cx, desc, code, out);
            }
        }
        if let Some(rest) = t.strip_prefix("::") {
            if self.workflow_command(g, cx, rest, out) {
                return;
            }
        }
        if t.starts_with("ERROR: failed to solve")
            || t.starts_with("ERROR: failed to build")
            || LEGACY_FAILURE.is_match(t)
        {
            return buildkit_failure(g, cx, t, &self.last_feature, out);
        }
        self.output(cx, text, out);
    }

    fn start_feature(&mut self, cx: &Cx, inner: &str, out: &mut Vec<Event>) {
        let header = self.header.take();
        self.close(cx, out);
        let (name, version) = match &header {
            Some(h) if inner == h.name => (h.name.clone(), None),
            Some(h) => match &h.version {
                Some(v) if inner == format!("{} version {v}", h.name) => {
                    (h.name.clone(), Some(v.clone()))
                }
                _ => split_version(inner),
            },
            None => split_version(inner),
        };
        self.open_feature(cx, name, version, out);
    }

    fn open_feature(
        &mut self,
        cx: &Cx,
        name: String,
        version: Option<String>,
        out: &mut Vec<Event>,
    ) {
        let message = match &version {
            Some(v) => format!("Starting installation of {name} version {v}"),
            None => format!("Starting installation of {name}"),
        };
        let mut ev = Event::new(EventType::FeatureStart, Level::Info, &name, message)
            .with_meta("feature", name.clone())
            .with_meta(
                "version",
                version.clone().unwrap_or_else(|| "unknown".into()),
            );
        ev.version = version.clone();
        cx.emit(ev, out);
        self.last_feature = name.clone();
        self.feature = Some(Feature::new(name, version, cx.time));
    }

    /// A feature's lines arrived without its `=== Installing` line: start it from the header.
    fn ensure_feature(&mut self, cx: &Cx, out: &mut Vec<Event>) {
        if self.feature.is_none() {
            if let Some(h) = self.header.take() {
                self.open_feature(cx, h.name, h.version, out);
            }
        }
    }

    /// `[HH:MM:SS] ...`: a command header or one of the logger's messages.
    fn stamped(&mut self, cx: &Cx, rest: &str, out: &mut Vec<Event>) {
        if let Some((num, desc)) = parse_command_header(rest) {
            self.ensure_feature(cx, out);
            self.abandon_command(cx, None, out);
            if let Some(f) = self.feature.as_mut() {
                f.commands += 1;
            }
            self.cmd = Some(Cmd {
                num,
                desc: desc.to_string(),
                executing: None,
                start: cx.time,
                line: cx.line,
                started: false,
                exit: None,
                duration: None,
                output_lines: 0,
                errors: 0,
                warnings: 0,
            });
            self.mode = Mode::CmdPending;
            return;
        }
        let feature = self.feature_name().to_string();
        let f = self.feature.as_mut();
        let mut ev = if let Some(msg) = rest.strip_prefix("WARNING: ") {
            let mut ev = Event::new(EventType::Warning, Level::Warn, feature, clean(msg));
            if let Some(f) = f {
                f.warnings += 1;
                ev = ev.with_meta("warning_count", f.warnings);
            }
            ev
        } else if let Some(msg) = rest.strip_prefix("ERROR: ") {
            let mut ev = Event::new(EventType::Error, Level::Error, feature, clean(msg));
            if let Some(f) = f {
                f.errors += 1;
                ev = ev.with_meta("error_count", f.errors);
            }
            ev
        } else if let Some(msg) = rest.strip_prefix("DEBUG: ") {
            Event::new(EventType::Debug, Level::Debug, feature, clean(msg))
        } else {
            Event::new(EventType::Message, Level::Info, feature, clean(rest))
        };
        if let Some(f) = &self.feature {
            ev.error_count = Some(f.errors);
            ev.warning_count = Some(f.warnings);
        }
        cx.emit(ev, out);
    }

    fn start_command(&mut self, cx: &Cx, out: &mut Vec<Event>) {
        let feature = self.feature_name().to_string();
        let Some(cmd) = self.cmd.as_mut().filter(|c| !c.started) else {
            return;
        };
        cmd.started = true;
        let mut ev = Event::new(
            EventType::CommandStart,
            Level::Info,
            feature,
            cmd.desc.clone(),
        )
        .with_meta("command_num", cmd.num);
        if let Some(exe) = &cmd.executing {
            ev = ev.with_meta("command", clean(exe));
        }
        ev.command_num = Some(cmd.num);
        // The event belongs to the `COMMAND #n` line, whatever line completed it.
        let scx = Cx {
            line: cmd.line,
            time: cmd.start,
            inherited: false,
            stage: cx.stage,
            invalid: cx.invalid && cmd.line == cx.line,
            original_len: None,
        };
        scx.emit(ev, out);
    }

    /// `✓ desc completed successfully` / `✗ desc failed with exit code N`.
    fn end_command(&mut self, cx: &Cx, desc: &str, code: i64, out: &mut Vec<Event>) {
        self.start_command(cx, out);
        let cmd = self.cmd.take();
        let desc = cmd.as_ref().map_or(desc, |c| c.desc.as_str()).to_string();
        self.command_event(cx, cmd.as_ref(), desc, Some(code), false, out);
        if self.mode != Mode::Output {
            self.mode = Mode::Idle;
        }
    }

    /// A command that will get no `✓`/`✗` line (aborted, cut, or replaced by the next one).
    fn abandon_command(&mut self, cx: &Cx, exit: Option<i64>, out: &mut Vec<Event>) {
        if self.cmd.is_none() {
            return;
        }
        self.start_command(cx, out);
        let Some(cmd) = self.cmd.take() else { return };
        let exit = exit.or(cmd.exit);
        self.command_event(cx, Some(&cmd), cmd.desc.clone(), exit, true, out);
    }

    /// The `command` event, with the JSON logger's metadata (`null` where unknown).
    fn command_event(
        &self,
        cx: &Cx,
        cmd: Option<&Cmd>,
        desc: String,
        exit: Option<i64>,
        incomplete: bool,
        out: &mut Vec<Event>,
    ) {
        let success = exit == Some(0);
        let duration = cmd.and_then(|c| c.duration);
        let mut ev = Event::new(
            EventType::Command,
            if success { Level::Info } else { Level::Error },
            self.feature_name(),
            desc,
        );
        // A status line whose `COMMAND #n` line was not in the input (it began later) is
        // numbered after the feature's last command, and says so.
        let num = cmd.map_or_else(
            || self.feature.as_ref().map_or(0, |f| f.commands) as u32 + 1,
            |c| c.num,
        );
        if cmd.is_none() {
            ev = ev.with_detail("command_num_inferred", true);
        }
        ev.command_num = Some(num);
        let opt = |v: Option<Value>| v.unwrap_or(Value::Null);
        ev = ev
            .with_meta("command_num", num)
            .with_meta("exit_code", opt(exit.map(Value::from)))
            .with_meta("duration_seconds", opt(duration.map(Value::from)))
            .with_meta("success", success);
        ev.duration_ms = duration.map(|d| d * 1000);
        if let Some(f) = &self.feature {
            ev.error_count = Some(f.errors);
            ev.warning_count = Some(f.warnings);
        }
        if let Some(c) = cmd {
            if let Some(exe) = &c.executing {
                ev = ev.with_detail("command", clean(exe));
            }
            ev = ev
                .with_detail("output_lines", c.output_lines)
                .with_detail("new_errors", c.errors)
                .with_detail("new_warnings", c.warnings)
                .with_detail("start_line", c.line);
        }
        if let Some(o) = crate::enrich::build_events::command_outcome(exit, incomplete) {
            ev = ev.with_detail("outcome", o);
        }
        ev.incomplete = incomplete;
        // Without a time of its own, a command ends no earlier than its start plus duration.
        let mut time = cx.time;
        if let (true, Some(c), Some(d)) = (cx.inherited, cmd, duration) {
            time.ms = time.ms.max(c.start.ms + d as i64 * 1000);
        }
        Cx { time, ..*cx }.emit(ev, out);
    }

    fn sentinel(&mut self, g: &mut Failures, cx: &Cx, t: &str, out: &mut Vec<Event>) {
        let Some(mut ev) = failure_event(t) else {
            return self.output(cx, t, out);
        };
        if ev.feature.is_empty() {
            ev.feature = self.feature_name().to_string();
        }
        let exit = ev.metadata.get("exit_code").and_then(Value::as_i64);
        let num = ev.command_num;
        if let Some(first) = g.line_of(&ev.feature) {
            cx.emit(repeat_of(ev, first), out);
        } else {
            g.seen.push((ev.feature.clone(), cx.line));
            cx.emit(ev, out);
        }
        // The sentinel is written when the failing command ends the script.
        if self
            .cmd
            .as_ref()
            .is_some_and(|c| num.is_none() || num == Some(c.num))
        {
            self.abandon_command(cx, exit, out);
        }
        self.mode = Mode::Idle;
    }

    /// `::group::`, `::error title=...::...` and the other workflow commands the library
    /// prints under GitHub Actions. False when `rest` is not one.
    fn workflow_command(
        &mut self,
        g: &mut Failures,
        cx: &Cx,
        rest: &str,
        out: &mut Vec<Event>,
    ) -> bool {
        let Some((head, msg)) = rest.split_once("::") else {
            return false;
        };
        let (name, props) = head.split_once(' ').unwrap_or((head, ""));
        let feature = self.feature_name().to_string();
        let ev = match name {
            "group" | "endgroup" => {
                let ev = Event::new(
                    EventType::Output,
                    Level::Info,
                    feature,
                    clean(&format!("::{rest}")),
                )
                .with_detail("ci_marker", name);
                if name == "group" {
                    ev.with_detail("ci_group", clean(msg))
                } else {
                    ev
                }
            }
            "error" => {
                let title = prop(props, "title");
                if let Some(f) = title
                    .as_deref()
                    .and_then(|t| t.strip_prefix("Build failed in "))
                {
                    gh_failure(g, cx, f, msg)
                } else {
                    Event::new(EventType::Message, Level::Error, feature, clean(msg))
                }
                .with_detail("ci_marker", "error")
                .with_detail_opt("title", title)
            }
            "warning" => Event::new(EventType::Message, Level::Warn, feature, clean(msg))
                .with_detail("ci_marker", "warning")
                .with_detail_opt("title", prop(props, "title")),
            "notice" => Event::new(EventType::Message, Level::Info, feature, clean(msg))
                .with_detail("ci_marker", "notice")
                .with_detail_opt("title", prop(props, "title")),
            "debug" => Event::new(EventType::Debug, Level::Debug, feature, clean(msg))
                .with_detail("ci_marker", "debug"),
            _ => return false,
        };
        cx.emit(ev, out);
        true
    }

    /// A line of the `<Feature> Configuration Summary` block, into the same fields as the
    /// install-log parser's `feature_summary` (lines of no known shape go to `other`).
    fn config_line(&mut self, cx: &Cx, t: &str, out: &mut Vec<Event>) {
        let Some(c) = self.config.as_mut() else {
            self.mode = Mode::Idle;
            return;
        };
        if t == BANNER {
            self.mode = Mode::Idle;
            return self.emit_config(cx, false, out);
        }
        c.line(t);
    }

    fn emit_config(&mut self, cx: &Cx, incomplete: bool, out: &mut Vec<Event>) {
        let Some(c) = self.config.take() else { return };
        let feature = match self.feature_name() {
            "" => c.title.clone(),
            f => f.to_string(),
        };
        let mut ev = Event::new(
            EventType::FeatureSummary,
            Level::Info,
            feature,
            format!("{} Configuration Summary", c.title),
        );
        let line = c.line;
        ev.metadata = c.into_metadata().into();
        ev.version = ev
            .metadata
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string);
        ev.incomplete = incomplete;
        Cx {
            line,
            original_len: None,
            invalid: false,
            ..*cx
        }
        .emit(ev, out);
    }

    fn summary_line(&mut self, t: &str) -> bool {
        if t == BANNER {
            self.mode = Mode::Idle;
            return true;
        }
        if t.is_empty() {
            return true;
        }
        let Some(f) = self.feature.as_mut() else {
            return t.starts_with("--- First 10 Errors/Warnings ---") && {
                self.mode = Mode::SummaryList;
                true
            };
        };
        match f.summary.line(t) {
            SummaryLine::FirstErrors => self.mode = Mode::SummaryList,
            SummaryLine::Figure | SummaryLine::EndTime => {}
            SummaryLine::Other => return false,
        }
        true
    }

    /// `feature_end`: from `=== X installation complete ===` and its counts, or (with
    /// `counts` None and no summary) for a feature that stopped without them.
    fn end_feature(&mut self, cx: &Cx, counts: Option<(u64, u64)>, out: &mut Vec<Event>) {
        let ending = self.ending.take();
        if self.feature.is_none() {
            if let Some(name) = &ending {
                // Its start was not in the input: a feature_end is still owed.
                self.open_feature_silently(cx, name);
            } else {
                return;
            }
        }
        self.abandon_command(cx, None, out);
        let Some(f) = self.feature.take() else { return };
        let complete = ending.is_some();
        let (errors, warnings) = counts
            .or(f.summary.errors.zip(f.summary.warnings))
            .unwrap_or((f.errors, f.warnings));
        let duration = f
            .summary
            .total_duration
            .unwrap_or_else(|| ((cx.time.ms - f.start.ms).max(0) / 1000) as u64);
        let commands = f.summary.commands.unwrap_or(f.commands);
        let status = if errors > 0 || !complete {
            "failed"
        } else {
            "success"
        };
        let level = match (complete, errors) {
            (false, _) => Level::Error,
            (true, 0) => Level::Info,
            (true, _) => Level::Warn,
        };
        let mut ev = Event::new(
            EventType::FeatureEnd,
            level,
            &f.name,
            if complete {
                format!("Completed installation of {}", f.name)
            } else {
                format!("Installation of {} aborted", f.name)
            },
        )
        .with_meta("duration_seconds", duration)
        .with_meta("commands_executed", commands)
        .with_meta("errors", errors)
        .with_meta("warnings", warnings)
        .with_meta("status", status);
        ev.version = f.version;
        ev.duration_ms = Some(duration * 1000);
        ev.command_count = Some(commands);
        ev.error_count = Some(errors);
        ev.warning_count = Some(warnings);
        f.summary.add_details(&mut ev);
        if !complete {
            ev.incomplete = true;
            ev = ev.with_detail("aborted", true);
        }
        cx.emit(ev, out);
    }

    fn open_feature_silently(&mut self, cx: &Cx, name: &str) {
        self.feature = Some(Feature::new(name.to_string(), None, cx.time));
    }

    /// The stream ended (input end, BuildKit step end, or a new feature): emit what is open.
    fn close(&mut self, cx: &Cx, out: &mut Vec<Event>) {
        if let (Mode::Banner, Some((line, time))) = (self.mode, self.banner.take()) {
            let bcx = Cx {
                line,
                time,
                inherited: false,
                stage: cx.stage,
                invalid: false,
                original_len: None,
            };
            self.output(&bcx, BANNER, out);
        }
        if self.config.is_some() {
            self.emit_config(cx, true, out);
        }
        if self.ending.is_some() {
            self.end_feature(cx, None, out);
        }
        self.ensure_feature(cx, out);
        if self.feature.is_some() {
            self.end_feature(cx, None, out);
        }
        self.abandon_command(cx, None, out);
        self.mode = Mode::Idle;
    }
}

trait WithDetailOpt {
    fn with_detail_opt(self, key: &str, v: Option<String>) -> Self;
}
impl WithDetailOpt for Event {
    fn with_detail_opt(self, key: &str, v: Option<String>) -> Self {
        match v {
            Some(v) => self.with_detail(key, v),
            None => self,
        }
    }
}

/// A message: ANSI colour codes removed.
fn clean(s: &str) -> String {
    strip_ansi(s).into_owned()
}

fn output_event(text: &str, feature: &str) -> Event {
    let b = text.as_bytes();
    let level = if matches_error(b) {
        Level::Error
    } else if matches_warning(b) {
        Level::Warn
    } else {
        Level::Info
    };
    let msg = strip_ansi(text);
    let raw = (msg.len() != text.len()).then(|| text.to_string());
    let mut ev = Event::new(EventType::Output, level, feature, msg.into_owned());
    ev.raw = raw;
    ev
}

/// The 80-dash rule; after UTF-16 output it can start with NUL bytes (build 15).
fn is_rule(t: &str) -> bool {
    t.trim_start_matches('\0') == RULE
}

/// `Python version 3.13.5` -> (`Python`, `3.13.5`).
fn split_version(inner: &str) -> (String, Option<String>) {
    match inner.rsplit_once(" version ") {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (inner.to_string(), None),
    }
}

/// `COMMAND #3: Installing Python packages` -> (3, `Installing Python packages`).
fn parse_command_header(s: &str) -> Option<(u32, &str)> {
    let rest = s.strip_prefix("COMMAND #")?;
    let (num, desc) = match rest.split_once(": ") {
        Some(p) => p,
        None => (rest.strip_suffix(':')?, ""),
    };
    Some((num.parse().ok()?, desc))
}

/// `[HH:MM:SS] rest` -> (time of day, rest).
fn split_stamp(s: &str) -> Option<(CivilTime, &str)> {
    let b = s.as_bytes();
    if b.len() < 10 || b[0] != b'[' || b[9] != b']' {
        return None;
    }
    let t = parse_hms(&b[1..9])?;
    let rest = match b.get(10) {
        None => "",
        Some(b' ') => &s[11..],
        Some(_) => return None,
    };
    Some((t, rest))
}

/// The logger's own time on a line, if it has one.
fn line_stamp(t: &str) -> Option<Stamp> {
    if let Some((tod, _)) = split_stamp(t) {
        return Some(Stamp::TimeOfDay(tod));
    }
    let v = t
        .strip_prefix("Start Time: ")
        .or_else(|| t.strip_prefix("End Time: "))?;
    parse_date_time(v).map(|(d, t)| Stamp::Full(d, t))
}

/// `2026-10-27T09:14:05.1850000Z ` -> (milliseconds, rest of the line).
fn runner_prefix(s: &str) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<i32> {
        b[r].iter().try_fold(0i32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as i32)
        })
    };
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, mi, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let mut i = 19;
    let mut nanos = 0i32;
    if b[i] == b'.' {
        i += 1;
        let mut n = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            if n < 9 {
                nanos = nanos * 10 + (b[i] - b'0') as i32;
                n += 1;
            }
            i += 1;
        }
        if n == 0 {
            return None;
        }
        nanos *= 10i32.pow(9 - n);
    }
    if b.get(i) != Some(&b'Z') {
        return None;
    }
    let rest = match b.get(i + 1) {
        None => "",
        Some(b' ') => &s[i + 2..],
        Some(_) => return None,
    };
    let dt = jiff::civil::DateTime::new(
        y as i16, mo as i8, d as i8, h as i8, mi as i8, sec as i8, nanos,
    )
    .ok()?;
    let ts = TimeZone::UTC.to_timestamp(dt).ok()?;
    Some((ts.as_millisecond(), rest))
}

/// `#12 rest` -> (12, rest).
fn buildkit_prefix(s: &str) -> Option<(u32, &str)> {
    let rest = s.strip_prefix('#')?;
    let end = rest
        .bytes()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if end == 0 || end > 9 {
        return None;
    }
    let n = rest[..end].parse().ok()?;
    match rest.as_bytes().get(end) {
        None => Some((n, "")),
        Some(b' ') => Some((n, &rest[end + 1..])),
        Some(_) => None,
    }
}

/// `3.456 rest` (BuildKit's seconds since the step started) -> (3456 ms, rest).
fn relative_secs(s: &str) -> Option<(i64, &str)> {
    let (num, rest) = match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let (whole, frac) = num.split_once('.')?;
    // BuildKit prints `%.3f`: exactly three decimals, so `#5 1.2 kB` is not an offset.
    if whole.is_empty()
        || frac.len() != 3
        || whole.len() > 9
        || !whole.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let ms = whole.parse::<i64>().ok()? * 1000 + frac.parse::<i64>().ok()?;
    Some((ms, rest))
}

/// `Step 5/31 : RUN ...` (the legacy builder) -> (5, 31).
fn legacy_step(s: &str) -> Option<(u32, u32)> {
    let (nums, _) = s.strip_prefix("Step ")?.split_once(" : ")?;
    let (n, of) = nums.split_once('/')?;
    Some((n.parse().ok()?, of.parse().ok()?))
}

/// `DONE 1.2s` -> 1200.
fn done_ms(s: &str) -> Option<i64> {
    let v = s.strip_prefix("DONE ")?.trim_end().strip_suffix('s')?;
    let secs: f64 = v.parse().ok()?;
    (0.0..1e12)
        .contains(&secs)
        .then(|| (secs * 1000.0).round() as i64)
}

fn prop(props: &str, key: &str) -> Option<String> {
    props.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == key).then(|| v.to_string())
    })
}

/// A later report of a failure already emitted: an `error` event pointing at it.
fn repeat_of(failure: Event, first_line: u64) -> Event {
    let mut ev = Event::new(
        EventType::Message,
        Level::Error,
        failure.feature,
        failure.message,
    );
    ev.command_num = failure.command_num;
    ev.with_detail("build_failure_line", first_line)
}

/// GitHub's `::error title=Build failed in <Feature>::COMMAND #n 'desc' failed (exit n): cmd`.
fn gh_failure(g: &mut Failures, cx: &Cx, feature: &str, msg: &str) -> Event {
    let msg = clean(msg);
    if let Some(first) = g.line_of(feature) {
        return Event::new(EventType::Message, Level::Error, feature, msg)
            .with_detail("build_failure_line", first);
    }
    let mut ev = Event::new(EventType::BuildFailure, Level::Fatal, feature, msg.clone());
    if let Some(c) = GH_FAILURE.captures(&msg) {
        let num: Option<u32> = c[1].parse().ok();
        ev.command_num = num;
        if let Some(n) = num {
            ev = ev.with_meta("command_num", n);
        }
        ev = ev
            .with_meta("description", c[2].to_string())
            .with_meta("command", c[4].to_string());
        if let Ok(code) = c[3].parse::<i64>() {
            ev = ev.with_meta("exit_code", code);
        }
    }
    g.seen.push((feature.to_string(), cx.line));
    ev
}

/// BuildKit's `ERROR: failed to solve: ...` (or `failed to build: failed to solve: ...`), or the
/// legacy builder's `The command '...' returned a non-zero code: N`.
fn buildkit_failure(g: &mut Failures, cx: &Cx, t: &str, feature: &str, out: &mut Vec<Event>) {
    let msg = clean(t);
    let exit = EXIT_CODE_TAIL
        .captures(&msg)
        .or_else(|| LEGACY_FAILURE.captures(&msg))
        .and_then(|c| c[1].parse::<i64>().ok());
    let mut ev = match g.line_of(feature).or_else(|| g.any()) {
        Some(first) => Event::new(EventType::Message, Level::Error, feature, msg)
            .with_detail("build_failure_line", first),
        None => {
            g.seen.push((feature.to_string(), cx.line));
            Event::new(EventType::BuildFailure, Level::Fatal, feature, msg)
        }
    };
    ev = ev.with_detail("source", "buildkit");
    if let Some(code) = exit {
        ev = if ev.event_type == EventType::BuildFailure {
            ev.with_meta("exit_code", code)
        } else {
            ev.with_detail("exit_code", code)
        };
    }
    cx.emit(ev, out);
}

#[derive(Default)]
struct Step {
    title: Option<String>,
    flow: Flow,
    clock: StepClock,
    /// DONE, CACHED, CANCELED or ERROR was seen: a new name under this number is a new build.
    finished: bool,
}

/// Streaming parser of `docker build` console output. See the module docs.
pub struct ConsoleParser {
    clock: Clock,
    /// Lines without a BuildKit prefix.
    plain: Flow,
    steps: BTreeMap<u32, Step>,
    failures: Failures,
    /// The step of the last `#N ERROR`, whose output BuildKit repeats between `------` lines.
    errored_step: Option<u32>,
    in_error_context: bool,
    /// The legacy builder's current `Step N/M : ...`, the `stage` of plain lines.
    legacy_stage: Option<String>,
    last_line: u64,
}

impl ConsoleParser {
    /// `tz`: the zone of the build's local times (`[HH:MM:SS]`, `Start Time:`).
    pub fn new(tz: TimeZone) -> Self {
        ConsoleParser {
            clock: Clock::new(tz),
            plain: Flow::default(),
            steps: BTreeMap::new(),
            failures: Failures::default(),
            errored_step: None,
            in_error_context: false,
            legacy_stage: None,
            last_line: 0,
        }
    }

    fn plain_line(&mut self, text: &str, runner: Option<i64>, base: &Cx<'_>, out: &mut Vec<Event>) {
        // BuildKit repeats the failed step's last lines between two `------` lines.
        if let Some(n) = self.errored_step {
            if text == "------" {
                if let Some(ms) = runner {
                    observe_utc(&mut self.clock, ms);
                }
                if self.in_error_context {
                    self.errored_step = None;
                }
                self.in_error_context = !self.in_error_context;
                return;
            }
            if self.in_error_context {
                return self.error_context_line(n, text, runner, base, out);
            }
        }
        let stamp = self
            .plain
            .honors_stamps()
            .then(|| line_stamp(text))
            .flatten();
        let (time, inherited) = resolve(&mut self.clock, runner, None, Rel::None, stamp);
        // The legacy builder (no BuildKit) heads each Dockerfile step with `Step N/M : ...`.
        let step = (self.plain.mode != Mode::Output)
            .then(|| legacy_step(text))
            .flatten();
        if step.is_some() {
            let cx = Cx {
                time,
                inherited,
                stage: self.legacy_stage.as_deref(),
                ..*base
            };
            self.plain.close(&cx, out);
            self.legacy_stage = Some(text.trim_end().to_string());
        }
        let cx = Cx {
            time,
            inherited,
            stage: self.legacy_stage.as_deref(),
            ..*base
        };
        match step {
            Some((n, of)) => {
                let ev = Event::new(EventType::Message, Level::Info, "", clean(text.trim_end()))
                    .with_detail("docker_step", n)
                    .with_detail("docker_steps", of);
                cx.emit(ev, out);
            }
            None => self.plain.content(&mut self.failures, &cx, text, out),
        }
    }

    fn error_context_line(
        &mut self,
        n: u32,
        text: &str,
        runner: Option<i64>,
        base: &Cx<'_>,
        out: &mut Vec<Event>,
    ) {
        let step = self.steps.entry(n).or_default();
        let (rel, body) = match relative_secs(text) {
            Some((ms, rest)) => (Rel::At(ms), rest),
            None => (Rel::None, text),
        };
        let sc = matches!(rel, Rel::At(_)).then_some(&mut step.clock);
        let (time, inherited) = resolve(&mut self.clock, runner, sc, rel, None);
        let cx = Cx {
            time,
            inherited,
            stage: step.title.as_deref(),
            ..*base
        };
        let ev = output_event(body, &step.flow.last_feature)
            .with_detail("buildkit_step", n)
            .with_detail("buildkit_error_context", true);
        cx.emit(ev, out);
    }

    fn step_line(
        &mut self,
        n: u32,
        after: &str,
        runner: Option<i64>,
        base: &Cx<'_>,
        out: &mut Vec<Event>,
    ) {
        if self.steps.len() >= MAX_STEPS && !self.steps.contains_key(&n) {
            self.evict_steps(out);
        }
        let step = self.steps.entry(n).or_default();
        let t = after.trim_end();
        let log = relative_secs(after);
        let done = log.is_none().then(|| done_ms(t)).flatten();
        let is_status =
            done.is_some() || matches!(t, "CACHED" | "CANCELED" | "...") || t.starts_with("ERROR:");
        if step.finished && log.is_none() && !is_status && step.title.as_deref() != Some(t) {
            // A second `docker build` in the same log numbers its steps from 0 again.
            *step = Step::default();
        }
        step.flow.last_line = base.line;
        let (rel, stamp) = match (log, done) {
            (Some((r, text)), _) => (
                Rel::At(r),
                step.flow
                    .honors_stamps()
                    .then(|| line_stamp(text))
                    .flatten(),
            ),
            (None, Some(d)) => (Rel::End(d), None),
            (None, None) => (Rel::None, None),
        };
        let sc = (!matches!(rel, Rel::None)).then_some(&mut step.clock);
        let (time, inherited) = resolve(&mut self.clock, runner, sc, rel, stamp);
        let first = log.is_none() && !is_status && !t.is_empty() && step.title.is_none();
        if first {
            // The first line of a step is its name.
            step.title = Some(t.to_string());
            step.clock.start = Some(time);
        }
        let cx = Cx {
            time,
            inherited,
            stage: step.title.as_deref(),
            ..*base
        };
        if let Some((_, text)) = log {
            let from = out.len();
            step.flow.content(&mut self.failures, &cx, text, out);
            // Steps interleave: the scrubber keeps a private key's state per step.
            for e in &mut out[from..] {
                e.stream = Some(n);
            }
            return;
        }
        // BuildKit's own lines about a step: `message` events with its number and status.
        let lifecycle = |status: &str, level: Level, msg: &str| {
            Event::new(EventType::Message, level, "", msg.to_string())
                .with_detail("buildkit_step", n)
                .with_detail("buildkit_status", status)
        };
        if first {
            return cx.emit(lifecycle("started", Level::Info, t), out);
        }
        if let Some(d) = done {
            step.finished = true;
            step.flow.close(&cx, out);
            let mut ev = lifecycle("done", Level::Info, t)
                .with_detail("duration_seconds", d as f64 / 1000.0);
            ev.duration_ms = Some(d as u64);
            return cx.emit(ev, out);
        }
        match t {
            "CACHED" | "CANCELED" => {
                step.finished = true;
                step.flow.close(&cx, out);
                let (status, level) = if t == "CACHED" {
                    ("cached", Level::Info)
                } else {
                    ("canceled", Level::Warn)
                };
                cx.emit(lifecycle(status, level, t), out);
            }
            // BuildKit switching to another step; the step resumes with its name again.
            "..." => {}
            _ if step.title.as_deref() == Some(t) => {} // that name, when the step resumes
            _ => match t.strip_prefix("ERROR:") {
                Some(msg) => {
                    step.finished = true;
                    let feature = step.flow.feature_name().to_string();
                    step.flow.close(&cx, out);
                    if self.plain.feature.is_none() {
                        // BuildKit's `ERROR: failed to solve` that follows is about this feature.
                        self.plain.last_feature = feature.clone();
                    }
                    let mut ev = lifecycle("error", Level::Error, msg.trim_start());
                    ev.feature = feature;
                    if let Some(code) = EXIT_CODE_TAIL
                        .captures(msg)
                        .and_then(|c| c[1].parse::<i64>().ok())
                    {
                        ev = ev.with_detail("exit_code", code);
                    }
                    self.errored_step = Some(n);
                    self.in_error_context = false;
                    cx.emit(ev, out);
                }
                // A progress line of the step (`transferring context: 2B done`).
                None => cx.emit(output_event(after, step.flow.feature_name()), out),
            },
        }
    }

    /// Forgets finished steps (except the one whose error BuildKit is about to repeat); if
    /// that is not enough, closes the oldest open half.
    fn evict_steps(&mut self, out: &mut Vec<Event>) {
        let keep = self.errored_step;
        self.steps.retain(|n, s| !s.finished || Some(*n) == keep);
        if self.steps.len() < MAX_STEPS / 2 {
            return;
        }
        let mut order: Vec<(u64, u32)> = self
            .steps
            .iter()
            .map(|(n, s)| (s.flow.last_line, *n))
            .collect();
        order.sort_unstable();
        for (_, n) in order.into_iter().take(MAX_STEPS / 2) {
            if let Some(mut step) = self.steps.remove(&n) {
                let cx = Cx {
                    line: step.flow.last_line,
                    time: inherit(&self.clock),
                    inherited: true,
                    stage: step.title.as_deref(),
                    invalid: false,
                    original_len: None,
                };
                step.flow.close(&cx, out);
            }
        }
    }

    /// The runner's own `##[group]`, `##[error]`, ... lines.
    fn runner_command(
        &mut self,
        cmd: &str,
        msg: &str,
        runner: i64,
        base: &Cx<'_>,
        out: &mut Vec<Event>,
    ) {
        let (time, inherited) = resolve(&mut self.clock, Some(runner), None, Rel::None, None);
        let cx = Cx {
            time,
            inherited,
            ..*base
        };
        let feature = self.plain.feature_name().to_string();
        let ev = match cmd {
            "error" if msg.trim_end().starts_with(SENTINEL) => {
                let t = msg.trim_end();
                let ev = failure_event(t).unwrap_or_else(|| {
                    Event::new(EventType::Message, Level::Error, feature.clone(), clean(t))
                });
                match self.failures.line_of(&ev.feature) {
                    Some(first) => repeat_of(ev, first),
                    None => {
                        self.failures.seen.push((ev.feature.clone(), cx.line));
                        ev
                    }
                }
            }
            "error" => Event::new(EventType::Message, Level::Error, feature, clean(msg)),
            "warning" => Event::new(EventType::Message, Level::Warn, feature, clean(msg)),
            "debug" => Event::new(EventType::Debug, Level::Debug, feature, clean(msg)),
            "notice" => Event::new(EventType::Message, Level::Info, feature, clean(msg)),
            "group" => output_event(&format!("##[group]{msg}"), &feature)
                .with_detail("ci_group", clean(msg)),
            _ => output_event(&format!("##[{cmd}]{msg}"), &feature),
        };
        cx.emit(ev.with_detail("ci_marker", cmd.to_string()), out);
    }
}

impl FormatParser for ConsoleParser {
    fn line(&mut self, line: &Line<'_>, out: &mut Vec<Event>) {
        let (text, invalid) = decode(line.bytes);
        let text: &str = &text;
        self.last_line = line.number;
        let base = Cx {
            line: line.number,
            time: Time {
                ms: 0,
                inferred: true,
            },
            inherited: true,
            stage: None,
            invalid,
            original_len: line.original_len,
        };
        let (runner, rest) = match runner_prefix(text) {
            Some((ms, rest)) => (Some(ms), rest),
            None => (None, text),
        };
        if let Some(ms) = runner {
            if let Some((cmd, msg)) = rest
                .strip_prefix("##[")
                .and_then(|r| r.split_once(']'))
                .filter(|(c, _)| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase()))
            {
                return self.runner_command(cmd, msg, ms, &base, out);
            }
        }
        match buildkit_prefix(rest) {
            Some((n, after)) => self.step_line(n, after, runner, &base, out),
            None => self.plain_line(rest, runner, &base, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<Event>) {
        let cx = Cx {
            line: self.last_line,
            time: inherit(&self.clock),
            inherited: true,
            stage: self.legacy_stage.as_deref(),
            invalid: false,
            original_len: None,
        };
        self.plain.close(&cx, out);
        for step in self.steps.values_mut() {
            let scx = Cx {
                line: step.flow.last_line,
                stage: step.title.as_deref(),
                time: cx.time,
                inherited: true,
                invalid: false,
                original_len: None,
            };
            step.flow.close(&scx, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str) -> Vec<Event> {
        run_in(TimeZone::UTC, input)
    }

    fn run_in(tz: TimeZone, input: &str) -> Vec<Event> {
        let mut p = ConsoleParser::new(tz);
        let mut out = Vec::new();
        let mut splitter = crate::source::LineSplitter::new(1 << 20);
        let mut f = |l: Line<'_>| -> Result<(), ()> {
            p.line(&l, &mut out);
            Ok(())
        };
        splitter.push(input.as_bytes(), &mut f).unwrap();
        splitter.finish(&mut f).unwrap();
        p.finish(&mut out);
        out
    }

    #[test]
    fn prefixes_are_peeled() {
        let (ms, rest) = runner_prefix("2026-10-27T09:14:05.1850000Z #9 0.145 hi").unwrap();
        assert_eq!(Timestamp(ms).to_rfc3339(), "2026-10-27T09:14:05.185Z");
        assert_eq!(rest, "#9 0.145 hi");
        assert_eq!(buildkit_prefix("#9 0.145 hi"), Some((9, "0.145 hi")));
        assert_eq!(relative_secs("0.145 hi"), Some((145, "hi")));
        assert_eq!(relative_secs("12.500"), Some((12_500, "")));
        assert_eq!(relative_secs("1.2 kB"), None);
        assert_eq!(relative_secs("DONE 1.2s"), None);
        assert_eq!(done_ms("DONE 24.8s"), Some(24_800));
        assert!(runner_prefix("2026-13-27T09:14:05Z x").is_none());
        assert!(runner_prefix("2026-10-27T09:14:05.Z x").is_none());
        assert_eq!(buildkit_prefix("#include <x>"), None);
        assert_eq!(
            split_stamp("[09:14:09] COMMAND #2: x").unwrap().1,
            "COMMAND #2: x"
        );
        assert!(split_stamp("[25:00:00] x").is_none());
        assert_eq!(
            parse_command_header("COMMAND #12: a: b"),
            Some((12, "a: b"))
        );
    }

    #[test]
    fn plain_feature_and_commands() {
        let evs = run(
            "================================================================================\n\
Feature Installation Log: Go\nVersion: 1.23\nStart Time: 2026-02-03 08:15:00\n\
================================================================================\n\n\
=== Installing Go version 1.23 ===\n\n[08:15:01] COMMAND #1: Get\nExecuting: curl x\n\
--------------------------------------------------------------------------------\n\
warning: slow\n\
--------------------------------------------------------------------------------\n\
Exit code: 7 (Duration: 3s)\n✗ Get failed with exit code 7\n[08:15:05] DEBUG: x=1\n",
        );
        let types: Vec<&str> = evs.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "feature_start",
                "command_start",
                "output",
                "command",
                "debug",
                "feature_end"
            ]
        );
        assert_eq!(evs[0].version.as_deref(), Some("1.23"));
        assert_eq!(evs[0].timestamp.to_rfc3339(), "2026-02-03T08:15:00.500Z");
        assert_eq!(evs[1].metadata["command"], "curl x");
        assert_eq!(evs[2].level, Level::Warn);
        assert_eq!(evs[3].metadata["exit_code"], 7);
        assert_eq!(evs[3].metadata["duration_seconds"], 3);
        // No later stamp: the command ends at its start plus its duration.
        assert_eq!(evs[3].timestamp.to_rfc3339(), "2026-02-03T08:15:04.500Z");
        let end = &evs[5];
        assert!(end.incomplete);
        assert_eq!(end.metadata["status"], "failed");
        assert_eq!(end.metadata["warnings"], 1);
        assert_eq!(end.metadata["commands_executed"], 1);
    }

    #[test]
    fn status_line_without_its_command_header_still_counts() {
        let evs = run(
            "=== Installing Go ===\nExit code: 0 (Duration: 1s)\n✓ tidy completed successfully\n",
        );
        let cmd = evs
            .iter()
            .find(|e| e.event_type == EventType::Command)
            .unwrap();
        assert_eq!(cmd.message, "tidy");
        assert_eq!(cmd.metadata["command_num"], 1);
        assert_eq!(cmd.metadata["duration_seconds"], Value::Null);
        assert_eq!(cmd.details["command_num_inferred"], true);
        // `Exit code:` without an open command is kept as output.
        assert_eq!(evs[1].event_type, EventType::Output);
        assert_eq!(evs[1].message, "Exit code: 0 (Duration: 1s)");
    }

    #[test]
    fn no_date_means_epoch_and_inferred() {
        let evs = run("[23:00:00] hello\n[01:00:00] after midnight\n");
        assert_eq!(evs[0].timestamp.to_rfc3339(), "1970-01-01T23:00:00.500Z");
        assert_eq!(evs[0].details["time_inferred"], true);
        assert_eq!(evs[1].timestamp.to_rfc3339(), "1970-01-02T01:00:00.500Z");
    }

    #[test]
    fn fall_back_keeps_utc_increasing() {
        let tz = TimeZone::get("America/Chicago").unwrap();
        let out = run_in(
            tz,
            "Start Time: 2026-11-01 01:59:58\n[01:59:59] one\n[01:00:50] two\n",
        );
        // The Start Time line is output (no header around it) but still sets the clock.
        assert_eq!(out[1].timestamp.to_rfc3339(), "2026-11-01T06:59:59.500Z");
        assert_eq!(out[2].timestamp.to_rfc3339(), "2026-11-01T07:00:50.500Z");
    }

    #[test]
    fn legacy_builder_steps_and_failure() {
        let evs = run("Step 3/9 : RUN /tmp/rust.sh\n ---> Running in 1a2b3c\n\
=== Installing Rust ===\n[10:00:00] COMMAND #1: build\nExecuting: cargo build\n\
--------------------------------------------------------------------------------\n\
error: boom\n\
The command '/bin/sh -c /tmp/rust.sh' returned a non-zero code: 101\n");
        assert_eq!(evs[0].details["docker_step"], 3);
        assert_eq!(evs[0].details["docker_steps"], 9);
        assert!(evs
            .iter()
            .all(|e| e.stage.as_deref() == Some("Step 3/9 : RUN /tmp/rust.sh")));
        // Inside the command's output the builder's line is output; the abort is found at the end.
        let fail = evs.iter().find(|e| e.event_type == EventType::BuildFailure);
        assert!(fail.is_none());
        let evs = run("Step 3/9 : RUN /tmp/rust.sh\n=== Installing Rust ===\n\
The command '/bin/sh -c /tmp/rust.sh' returned a non-zero code: 101\n");
        let fail = evs
            .iter()
            .find(|e| e.event_type == EventType::BuildFailure)
            .unwrap();
        assert_eq!(fail.feature, "Rust");
        assert_eq!(fail.metadata["exit_code"], 101);
    }

    #[test]
    fn a_second_build_in_the_same_log_restarts_its_steps() {
        let evs = run(
            "#5 [a 1/1] RUN a.sh\n#5 0.100 === Installing A ===\n#5 DONE 0.2s\n\
#5 [b 1/1] RUN b.sh\n#5 0.100 === Installing B ===\n#5 DONE 0.3s\n",
        );
        let started: Vec<&str> = evs
            .iter()
            .filter(|e| e.details.get("buildkit_status") == Some(&"started".into()))
            .map(|e| e.message.as_str())
            .collect();
        assert_eq!(started, ["[a 1/1] RUN a.sh", "[b 1/1] RUN b.sh"]);
        let b = evs
            .iter()
            .find(|e| e.event_type == EventType::FeatureStart && e.feature == "B")
            .unwrap();
        assert_eq!(b.stage.as_deref(), Some("[b 1/1] RUN b.sh"));
    }

    #[test]
    fn state_stays_bounded_on_endless_input() {
        // An `Executing:` record whose rule never comes: past the bound its lines are output.
        let mut input =
            String::from("=== Installing A ===\n[00:00:00] COMMAND #1: x\nExecuting: y\n");
        let filler = "z".repeat(999);
        for _ in 0..100 {
            input.push_str(&filler);
            input.push('\n');
        }
        let evs = run(&input);
        let start = evs
            .iter()
            .find(|e| e.event_type == EventType::CommandStart)
            .unwrap();
        assert!(start.metadata["command"].as_str().unwrap().len() < MAX_EXECUTING);
        let outputs = evs
            .iter()
            .filter(|e| e.event_type == EventType::Output && e.command_num == Some(1))
            .count();
        assert!(outputs > 30, "{outputs}");

        // Thousands of BuildKit steps: finished ones are forgotten, every line still has its event.
        let mut p = ConsoleParser::new(TimeZone::UTC);
        let mut out = Vec::new();
        for i in 0..3000u64 {
            for (k, l) in [format!("#{i} [s {i}] RUN x"), format!("#{i} DONE 0.1s")]
                .iter()
                .enumerate()
            {
                let line = Line {
                    bytes: l.as_bytes(),
                    number: i * 2 + k as u64 + 1,
                    original_len: None,
                    unterminated: false,
                };
                p.line(&line, &mut out);
            }
            assert!(p.steps.len() <= MAX_STEPS);
        }
        assert_eq!(out.len(), 6000);
    }

    #[test]
    fn a_step_that_starts_with_its_status_has_no_name() {
        let evs = run("#4 CACHED\n#4 [stage 1/2] FROM x\n#7 ERROR: boom: exit code: 3\n");
        assert_eq!(evs[0].details["buildkit_status"], "cached");
        assert_eq!(evs[0].stage, None);
        // The step's first line that is not a status names it.
        assert_eq!(evs[1].details["buildkit_status"], "started");
        assert_eq!(evs[1].stage.as_deref(), Some("[stage 1/2] FROM x"));
        assert_eq!(evs[2].details["buildkit_status"], "error");
        assert_eq!(evs[2].details["exit_code"], 3);
        assert_eq!(evs[2].level, Level::Error);
    }

    #[test]
    fn interleaved_steps_keep_their_own_state() {
        let evs = run(
            "#5 [a 1/2] RUN a.sh\n#5 0.100 === Installing A ===\n#5 ...\n\n\
#6 [b 1/2] RUN b.sh\n#6 0.100 === Installing B ===\n#6 0.200 [00:00:01] COMMAND #1: b1\n#6 ...\n\n\
#5 [a 1/2] RUN a.sh\n#5 0.300 [00:00:01] COMMAND #1: a1\n#5 0.310 Executing: true\n\
#5 0.320 --------------------------------------------------------------------------------\n\
#5 0.330 --------------------------------------------------------------------------------\n\
#5 0.340 Exit code: 0 (Duration: 0s)\n#5 0.350 ✓ a1 completed successfully\n#5 DONE 0.4s\n",
        );
        let cmds: Vec<(&str, &str)> = evs
            .iter()
            .filter(|e| e.event_type == EventType::Command)
            .map(|e| (e.feature.as_str(), e.message.as_str()))
            .collect();
        assert!(cmds.contains(&("A", "a1")), "{cmds:?}");
        assert!(cmds.contains(&("B", "b1")), "{cmds:?}");
        let a1 = evs
            .iter()
            .find(|e| e.event_type == EventType::Command && e.message == "a1")
            .unwrap();
        assert!(!a1.incomplete);
        assert_eq!(a1.stage.as_deref(), Some("[a 1/2] RUN a.sh"));
        let done = evs
            .iter()
            .find(|e| e.details.get("buildkit_status") == Some(&"done".into()))
            .unwrap();
        assert_eq!(done.duration_ms, Some(400));
        // Two step headers, not four: the repeats on resume are framing.
        let started = evs
            .iter()
            .filter(|e| e.details.get("buildkit_status") == Some(&"started".into()))
            .count();
        assert_eq!(started, 2);
    }
}
