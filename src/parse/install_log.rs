//! `<feature>-install.log`: the logger's own text format, every family since 2025-08.
//!
//! The layout (see the corpus README): a header (`Feature Installation Log:`, `Version:`,
//! `Start Time:` between `=` rules), then per command `[HH:MM:SS] COMMAND #n: desc`,
//! `Executing: cmd` (several lines when the command held newlines), a `-` rule, the raw
//! output, a `-` rule and `Exit code: n (Duration: ns)`; timestamped messages between
//! commands; an optional configuration-summary block; and the installation summary block.
//! An aborted feature simply stops.
//!
//! Counting follows the logger exactly: after each command it counts, with `grep -cE`, the
//! lines after the last line of the file that starts with `Executing: ` (so the later lines
//! of a multi-line `Executing:` record count, and an output line starting with `Executing: `
//! restarts the count); once the file holds a NUL byte, `grep` sees a binary file, finds no
//! `Executing:` line, and every later command is counted over the whole file.

use super::clock::{parse_date_time, parse_hms, Clock};
use super::grammar::{ConfigBlock, SummaryFigures, SummaryLine};
use super::text::{
    classify, classify_line, classify_line_for_scrubber, decode, strip_ansi, strip_ansi_scanned,
    LineClass,
};
use super::FormatParser;
use crate::event::{Event, EventType, Level, Timestamp};
use crate::source::Line;
use serde_json::Value;

const EQ_RULE: &[u8] =
    b"================================================================================";
const DASH_RULE: &[u8] =
    b"--------------------------------------------------------------------------------";

/// What the parser knows of a failure from `build-failure.log`, to complete an aborted command.
#[derive(Debug, Clone, Default)]
pub struct AbortHint {
    pub command_num: u32,
    pub exit_code: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the header's first rule.
    Start,
    /// Inside the header rules.
    Header,
    /// Between commands.
    Body,
    /// After `COMMAND #n:`, reading `Executing:` and its continuation lines.
    CommandHeader,
    /// Between the two dash rules.
    Output,
    /// After the closing dash rule, expecting `Exit code:`.
    ExitCode,
    /// A configuration-summary block; `bool`: its opening rule after the title was seen.
    Config(bool),
    /// The installation-summary block; `bool`: its opening rule after the title was seen.
    Summary(bool),
    /// The summary is complete: what follows belongs to no command.
    Done,
}

struct Command {
    num: u32,
    description: String,
    executing: String,
    start: Timestamp,
    line: u64,
    /// Pattern matches since the last `Executing: ` line (the logger's counting window).
    window_errors: u64,
    window_warnings: u64,
    output_lines: u64,
}

/// The installation-summary block being read.
#[derive(Default)]
struct SummaryBlock {
    line: u64,
    figures: SummaryFigures,
    in_first_errors: bool,
}

pub struct InstallLogParser {
    clock: Clock,
    state: State,
    feature: String,
    version: Option<String>,
    start: Option<Timestamp>,
    header_line: u64,
    started: bool,
    cmd: Option<Command>,
    commands_executed: u64,
    errors: u64,
    warnings: u64,
    /// Matches over every line of the file so far (the count once the file is "binary").
    file_errors: u64,
    file_warnings: u64,
    binary: bool,
    /// A `-` rule inside output that may be the closing one: (line number, bytes).
    pending_dash: Option<(u64, Vec<u8>)>,
    /// A `=` rule in the body whose meaning the next line decides.
    pending_eq: Option<u64>,
    summary: Option<SummaryBlock>,
    config: Option<ConfigBlock>,
    abort_hint: Option<AbortHint>,
    /// Output lines are scanned for the scrubber's anchors too (its events will be scrubbed).
    scan_for_scrubber: bool,
}

impl InstallLogParser {
    pub fn new(tz: jiff::tz::TimeZone) -> Self {
        InstallLogParser {
            clock: Clock::new(tz),
            state: State::Start,
            feature: String::new(),
            version: None,
            start: None,
            header_line: 0,
            started: false,
            cmd: None,
            commands_executed: 0,
            errors: 0,
            warnings: 0,
            file_errors: 0,
            file_warnings: 0,
            binary: false,
            pending_dash: None,
            pending_eq: None,
            summary: None,
            config: None,
            abort_hint: None,
            scan_for_scrubber: false,
        }
    }

    /// This parser, scanning each output line for the scrubber's anchors in the pass that
    /// looks for the logger's literals when `scrubbing` (its events will be scrubbed): the
    /// events carry what it found ([`Event::anchor_scan`]) and the scrubber does not scan
    /// those lines again. Without it the scan is cheaper and the scrubber scans.
    pub fn scanning_for_scrubber(mut self, scrubbing: bool) -> Self {
        self.scan_for_scrubber = scrubbing;
        self
    }

    /// A parser for a `-summary.log` alone (its install log is missing): the summary block
    /// gives the feature's end and nothing else.
    pub fn summary_only(tz: jiff::tz::TimeZone) -> Self {
        let mut p = InstallLogParser::new(tz);
        p.state = State::Body;
        p.started = true;
        p
    }

    /// The feature name, once the header has been read.
    pub fn feature(&self) -> &str {
        &self.feature
    }

    /// What `build-failure.log` says about this feature's abort, if anything.
    pub fn set_abort_hint(&mut self, hint: AbortHint) {
        self.abort_hint = Some(hint);
    }

    fn event(&self, t: EventType, level: Level, message: impl Into<String>, line: u64) -> Event {
        let mut e = Event::new(t, level, self.feature.clone(), message);
        e.timestamp = self.clock.now();
        e.source.line = line;
        e
    }

    fn emit_feature_start(&mut self, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = match &self.version {
            Some(v) => format!("Starting installation of {} version {}", self.feature, v),
            None => format!("Starting installation of {}", self.feature),
        };
        let mut e = self
            .event(
                EventType::FeatureStart,
                Level::Info,
                message,
                self.header_line.max(1),
            )
            .with_meta("feature", self.feature.clone())
            .with_meta(
                "version",
                self.version.clone().unwrap_or_else(|| "unknown".into()),
            );
        e.version = self.version.clone();
        if let Some(s) = self.start {
            e.timestamp = s;
        }
        out.push(e);
    }

    fn begin_header(&mut self, out: &mut Vec<Event>, line: u64) {
        // A second header in one stream (`cat *-install.log | buildlog convert -`): close the first.
        self.close_feature(out, true);
        let tz_clock = std::mem::replace(&mut self.clock, Clock::new(jiff::tz::TimeZone::UTC));
        *self = InstallLogParser {
            clock: tz_clock,
            scan_for_scrubber: self.scan_for_scrubber,
            ..InstallLogParser::new(jiff::tz::TimeZone::UTC)
        };
        self.state = State::Header;
        self.header_line = line;
    }

    /// Counts one line of the file the way the logger's `grep` would see it.
    fn count_file_line(&mut self, bytes: &[u8]) -> LineClass {
        self.count_classified(classify_line(bytes))
    }

    fn count_classified(&mut self, class: LineClass) -> LineClass {
        self.binary |= class.bytes.nul;
        self.file_errors += class.error as u64;
        self.file_warnings += class.warning as u64;
        class
    }

    fn finish_command(
        &mut self,
        exit_code: Option<i64>,
        duration: Option<u64>,
        line: u64,
        out: &mut Vec<Event>,
    ) {
        let Some(cmd) = self.cmd.take() else { return };
        let incomplete = exit_code.is_none();
        let (new_errors, new_warnings) = if self.binary {
            (self.file_errors, self.file_warnings)
        } else {
            (cmd.window_errors, cmd.window_warnings)
        };
        self.errors += new_errors;
        self.warnings += new_warnings;
        let end = match duration {
            Some(d) => Timestamp(cmd.start.0 + d as i64 * 1000),
            None => self.clock.now(),
        };
        self.clock.advance_to(end);
        let hint = self
            .abort_hint
            .as_ref()
            .filter(|h| h.command_num == cmd.num);
        let exit = exit_code.or(hint.map(|h| h.exit_code));
        let success = exit == Some(0);
        let mut e = self.event(
            EventType::Command,
            if success { Level::Info } else { Level::Error },
            cmd.description.clone(),
            line,
        );
        e.timestamp = end;
        e.metadata.insert("command_num".into(), cmd.num.into());
        e.metadata.insert(
            "exit_code".into(),
            exit.map(Value::from).unwrap_or(Value::Null),
        );
        e.metadata.insert(
            "duration_seconds".into(),
            duration.map(Value::from).unwrap_or(Value::Null),
        );
        e.metadata.insert("success".into(), success.into());
        e.command_num = Some(cmd.num);
        e.duration_ms = duration.map(|d| d * 1000);
        e.error_count = Some(self.errors);
        e.warning_count = Some(self.warnings);
        e.details.insert("command".into(), cmd.executing.into());
        e.details
            .insert("output_lines".into(), cmd.output_lines.into());
        e.details.insert("new_errors".into(), new_errors.into());
        e.details.insert("new_warnings".into(), new_warnings.into());
        e.details.insert("start_line".into(), cmd.line.into());
        if let Some(o) = crate::enrich::build_events::command_outcome(exit, incomplete) {
            e.details.insert("outcome".into(), o.into());
        }
        if incomplete {
            e.incomplete = true;
            if hint.is_some() {
                e.details
                    .insert("exit_code_from".into(), "build-failure.log".into());
            }
        }
        out.push(e);
    }

    /// Ends the feature: with the summary block's figures, or (aborted, `incomplete`) with
    /// figures recomputed the logger's way.
    fn close_feature(&mut self, out: &mut Vec<Event>, at_eof: bool) {
        // Without a header (damaged or cut off) there is no feature to start or end, but an open
        // command still holds lines that must reach an event.
        let headless = !self.started && self.feature.is_empty();
        if !self.started && !headless {
            self.emit_feature_start(out);
        }
        if self.cmd.is_some() {
            let line = self.cmd.as_ref().map(|c| c.line).unwrap_or(0);
            // An output rule held back at the end was output after all.
            self.flush_pending_dash(out);
            self.finish_command(None, None, line, out);
        }
        if headless {
            return;
        }
        match self.summary.take() {
            Some(s) => self.emit_feature_end(s, out),
            None if at_eof && self.state != State::Done => {
                let duration = self
                    .start
                    .map(|s| ((self.clock.now().0 - s.0).max(0) / 1000) as u64)
                    .unwrap_or(0);
                let mut e = self
                    .event(
                        EventType::FeatureEnd,
                        Level::Error,
                        // No summary block: the feature did not complete.
                        format!("Installation of {} aborted", self.feature),
                        0,
                    )
                    .with_meta("duration_seconds", duration)
                    .with_meta("commands_executed", self.commands_executed)
                    .with_meta("errors", self.errors)
                    .with_meta("warnings", self.warnings)
                    .with_meta("status", "failed");
                e.incomplete = true;
                e.duration_ms = Some(duration * 1000);
                e.command_count = Some(self.commands_executed);
                e.error_count = Some(self.errors);
                e.warning_count = Some(self.warnings);
                e.version = self.version.clone();
                e.details.insert("aborted".into(), true.into());
                out.push(e);
            }
            None => {}
        }
        self.state = State::Done;
    }

    fn emit_feature_end(&mut self, s: SummaryBlock, out: &mut Vec<Event>) {
        let f = s.figures;
        let errors = f.errors.unwrap_or(self.errors);
        let warnings = f.warnings.unwrap_or(self.warnings);
        let commands = f.commands.unwrap_or(self.commands_executed);
        let duration = f.total_duration.unwrap_or(0);
        let incomplete = f.total_duration.is_none() || f.errors.is_none();
        let status = if errors == 0 { "success" } else { "failed" };
        let mut e = self
            .event(
                EventType::FeatureEnd,
                if errors == 0 {
                    Level::Info
                } else {
                    Level::Warn
                },
                format!("Completed installation of {}", self.feature),
                s.line,
            )
            .with_meta("duration_seconds", duration)
            .with_meta("commands_executed", commands)
            .with_meta("errors", errors)
            .with_meta("warnings", warnings)
            .with_meta("status", status);
        e.duration_ms = Some(duration * 1000);
        e.command_count = Some(commands);
        e.error_count = Some(errors);
        e.warning_count = Some(warnings);
        e.version = self.version.clone();
        f.add_details(&mut e);
        // Where the summary and the text disagree, say so: the summary is the logger's word.
        if errors != self.errors || warnings != self.warnings || commands != self.commands_executed
        {
            e.details.insert(
                "recount".into(),
                serde_json::json!({"errors": self.errors, "warnings": self.warnings, "commands": self.commands_executed}),
            );
        }
        if incomplete {
            e.incomplete = true;
        }
        out.push(e);
    }

    fn flush_pending_dash(&mut self, out: &mut Vec<Event>) {
        if let Some((n, bytes)) = self.pending_dash.take() {
            self.output_line(&bytes, n, None, out);
        }
    }

    fn output_line(
        &mut self,
        bytes: &[u8],
        number: u64,
        original_len: Option<u64>,
        out: &mut Vec<Event>,
    ) {
        let class = self.count_classified(if self.scan_for_scrubber {
            classify_line_for_scrubber(bytes)
        } else {
            classify_line(bytes)
        });
        let (is_err, is_warn) = (class.error, class.warning);
        if let Some(cmd) = self.cmd.as_mut() {
            if bytes.starts_with(b"Executing: ") {
                // The logger's window restarts after the last `Executing: ` line of the file.
                cmd.window_errors = 0;
                cmd.window_warnings = 0;
            } else {
                cmd.window_errors += is_err as u64;
                cmd.window_warnings += is_warn as u64;
            }
            cmd.output_lines += 1;
        }
        let (text, invalid) = decode(bytes);
        // Decoding adds no ESC byte: the scan's answer holds for the text.
        let message = strip_ansi_scanned(&text, class.bytes.escape);
        let level = if is_err {
            Level::Error
        } else if is_warn {
            Level::Warn
        } else {
            Level::Info
        };
        // Built where it will lie: an event is 504 bytes, and one made in a local and then
        // pushed was copied twice (measured: 6% of `convert`'s CPU time in `memcpy`).
        out.push(Event::new(
            EventType::Output,
            level,
            self.feature.clone(),
            message.as_ref(),
        ));
        let e = out.last_mut().expect("just pushed");
        if message.len() != text.len() {
            e.raw = Some(text.to_string());
        }
        e.timestamp = self.clock.now();
        e.source.line = number;
        e.command_num = self.cmd.as_ref().map(|c| c.num);
        e.invalid_utf8 = invalid;
        // Of the bytes, for the text (`raw`, or `message` when there is none): decoding
        // replaces only non-ASCII bytes, and the anchors are ASCII.
        e.anchor_scan = class.anchor_scan;
        if let Some(n) = original_len {
            e.truncated = true;
            e.original_length = Some(n);
        }
    }

    /// A line between a command's rules: output, or the closing rule.
    fn output_state_line(&mut self, line: &Line<'_>, out: &mut Vec<Event>) {
        let bytes = line.bytes;
        // The closing rule: exactly 80 dashes, or after UTF-16 output a NUL and then them.
        let trimmed = bytes.strip_prefix(b"\0").unwrap_or(bytes);
        if trimmed == DASH_RULE {
            self.flush_pending_dash(out);
            self.count_file_line(bytes);
            self.pending_dash = Some((line.number, bytes.to_vec()));
            self.state = State::ExitCode;
            return;
        }
        self.output_line(bytes, line.number, line.original_len, out);
    }

    fn body_line(&mut self, text: &str, bytes: &[u8], line: &Line<'_>, out: &mut Vec<Event>) {
        if bytes.is_empty() {
            return;
        }
        if bytes == EQ_RULE {
            self.pending_eq = Some(line.number);
            return;
        }
        if bytes.len() > 11 && bytes[0] == b'[' && bytes[9] == b']' && bytes[10] == b' ' {
            if let Some(t) = parse_hms(&bytes[1..9]) {
                self.clock.set_time(t);
                let rest = &text[11..];
                if let Some(cmd) = rest.strip_prefix("COMMAND #") {
                    if let Some((num, desc)) = cmd.split_once(": ").or_else(|| cmd.split_once(':'))
                    {
                        if let Ok(num) = num.trim().parse::<u32>() {
                            self.commands_executed += 1;
                            self.cmd = Some(Command {
                                num,
                                description: desc.to_string(),
                                executing: String::new(),
                                start: self.clock.now(),
                                line: line.number,
                                window_errors: 0,
                                window_warnings: 0,
                                output_lines: 0,
                            });
                            self.state = State::CommandHeader;
                            return;
                        }
                    }
                }
                self.message_line(rest, line, out);
                return;
            }
        }
        // Not the logger's shape: keep it as output of no command rather than drop it.
        let number = line.number;
        let original = line.original_len;
        self.output_line(bytes, number, original, out);
    }

    fn message_line(&mut self, rest: &str, line: &Line<'_>, out: &mut Vec<Event>) {
        let (t, level, msg) = if let Some(m) = rest.strip_prefix("ERROR: ") {
            self.errors += 1;
            (EventType::Error, Level::Error, m)
        } else if let Some(m) = rest.strip_prefix("WARNING: ") {
            self.warnings += 1;
            (EventType::Warning, Level::Warn, m)
        } else if let Some(m) = rest.strip_prefix("DEBUG: ") {
            (EventType::Debug, Level::Debug, m)
        } else {
            (EventType::Message, Level::Info, rest)
        };
        let mut e = self.event(t, level, msg, line.number);
        match t {
            EventType::Error => {
                e.metadata.insert("error_count".into(), self.errors.into());
            }
            EventType::Warning => {
                e.metadata
                    .insert("warning_count".into(), self.warnings.into());
            }
            _ => {}
        }
        e.error_count = Some(self.errors);
        e.warning_count = Some(self.warnings);
        if line.original_len.is_some() {
            e.truncated = true;
            e.original_length = line.original_len;
        }
        if std::str::from_utf8(line.bytes).is_err() {
            e.invalid_utf8 = true;
        }
        out.push(e);
    }

    /// One line of the installation-summary block. False when it is none of the block's
    /// lines (something else wrote into the log there): the caller keeps it as output.
    fn summary_line(&mut self, text: &str) -> bool {
        let Some(s) = self.summary.as_mut() else {
            return false;
        };
        if s.in_first_errors {
            if text.is_empty() {
                s.in_first_errors = false;
            } else {
                s.figures.first_errors.push(text.to_string());
            }
            return true;
        }
        match s.figures.line(text) {
            SummaryLine::FirstErrors => s.in_first_errors = true,
            SummaryLine::EndTime => {
                if let Some((d, t)) = s.figures.end_time.as_deref().and_then(parse_date_time) {
                    self.clock.set_datetime(d, t);
                }
            }
            SummaryLine::Figure => {}
            SummaryLine::Other => return text.is_empty(),
        }
        true
    }

    /// A line inside a block that is none of the block's own: an `output` event of no
    /// command, flagged `unparsed`, so that nothing written into the log is lost.
    fn stray_line(&mut self, line: &Line<'_>, out: &mut Vec<Event>) {
        let (text, invalid) = decode(line.bytes);
        let (is_err, is_warn) = classify(line.bytes);
        let level = if is_err {
            Level::Error
        } else if is_warn {
            Level::Warn
        } else {
            Level::Info
        };
        let message = strip_ansi(&text);
        let mut e = self.event(EventType::Output, level, message.as_ref(), line.number);
        if message.len() != text.len() {
            e.raw = Some(text.to_string());
        }
        e.metadata.insert("unparsed".into(), true.into());
        e.invalid_utf8 = invalid;
        if let Some(n) = line.original_len {
            e.truncated = true;
            e.original_length = Some(n);
        }
        out.push(e);
    }

    fn config_line(&mut self, text: &str) {
        if let Some(c) = self.config.as_mut() {
            c.line(text);
        }
    }

    fn emit_config(&mut self, out: &mut Vec<Event>) {
        let Some(c) = self.config.take() else { return };
        let mut e = self.event(
            EventType::FeatureSummary,
            Level::Info,
            c.title.clone(),
            c.line,
        );
        e.metadata = c.into_metadata().into();
        e.version = e
            .metadata
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string);
        out.push(e);
    }
}

impl FormatParser for InstallLogParser {
    fn abort_hint(&mut self, hint: AbortHint) {
        self.set_abort_hint(hint);
    }

    fn feature(&self) -> Option<&str> {
        (!self.feature.is_empty()).then_some(self.feature.as_str())
    }

    fn line(&mut self, line: &Line<'_>, out: &mut Vec<Event>) {
        let bytes = line.bytes;
        if self.state == State::Output && self.pending_eq.is_none() {
            // The hot path (most lines of a log are command output): output_line decodes
            // and counts the line itself.
            self.output_state_line(line, out);
            return;
        }
        // Every state but Output counts its line here; output lines are counted in output_line.
        if self.state != State::Output {
            self.count_file_line(bytes);
        }
        let (text, _) = decode(bytes);
        let text: &str = &text;

        // A `=` rule seen in the body: the line after it says what block begins.
        if let Some(rule_line) = self.pending_eq.take() {
            if let Some(name) = text.strip_prefix("Feature Installation Log: ") {
                self.begin_header(out, rule_line);
                self.feature = name.to_string();
                return;
            }
            if let Some(name) = text.strip_prefix("Installation Summary: ") {
                if self.feature.is_empty() {
                    self.feature = name.to_string();
                }
                self.emit_config(out);
                self.summary = Some(SummaryBlock {
                    line: line.number,
                    ..Default::default()
                });
                self.state = State::Summary(false);
                return;
            }
            if text.ends_with(" Configuration Summary") {
                self.config = Some(ConfigBlock::new(text, line.number));
                self.state = State::Config(false);
                return;
            }
            // A lone rule: keep it as output of no command.
            self.output_line(EQ_RULE, rule_line, None, out);
        }

        match self.state {
            State::Start => {
                if bytes == EQ_RULE {
                    self.state = State::Header;
                    self.header_line = line.number;
                } else if let Some(name) = text.strip_prefix("Feature Installation Log: ") {
                    self.state = State::Header;
                    self.header_line = line.number;
                    self.feature = name.to_string();
                } else if !bytes.is_empty() {
                    self.state = State::Body;
                    self.body_line(text, bytes, line, out);
                }
            }
            State::Header => {
                if let Some(name) = text.strip_prefix("Feature Installation Log: ") {
                    self.feature = name.to_string();
                } else if let Some(v) = text.strip_prefix("Version: ") {
                    self.version = Some(v.to_string());
                } else if let Some(v) = text.strip_prefix("Start Time: ") {
                    if let Some((d, t)) = parse_date_time(v) {
                        self.start = Some(self.clock.set_datetime(d, t));
                    }
                } else if bytes == EQ_RULE {
                    self.emit_feature_start(out);
                    self.state = State::Body;
                } else if !bytes.is_empty() {
                    // A header cut short: start the feature with what we have.
                    self.emit_feature_start(out);
                    self.state = State::Body;
                    self.body_line(text, bytes, line, out);
                }
            }
            State::Body | State::Done => {
                if self.state == State::Done && bytes != EQ_RULE && !bytes.is_empty() {
                    self.output_line(bytes, line.number, line.original_len, out);
                    return;
                }
                self.body_line(text, bytes, line, out);
            }
            State::CommandHeader => {
                if bytes == DASH_RULE {
                    let cmd = self
                        .cmd
                        .as_mut()
                        .expect("a command is open in CommandHeader");
                    let mut e = Event::new(
                        EventType::CommandStart,
                        Level::Info,
                        self.feature.clone(),
                        cmd.description.clone(),
                    );
                    e.timestamp = cmd.start;
                    e.source.line = cmd.line;
                    e.command_num = Some(cmd.num);
                    e.metadata.insert("command_num".into(), cmd.num.into());
                    e.metadata
                        .insert("command".into(), cmd.executing.clone().into());
                    out.push(e);
                    self.state = State::Output;
                    return;
                }
                let cmd = self
                    .cmd
                    .as_mut()
                    .expect("a command is open in CommandHeader");
                if let Some(x) = text
                    .strip_prefix("Executing: ")
                    .filter(|_| cmd.executing.is_empty())
                {
                    cmd.executing = x.to_string();
                    cmd.window_errors = 0;
                    cmd.window_warnings = 0;
                } else {
                    // A continuation of a multi-line `Executing:` record: inside the logger's window.
                    if !cmd.executing.is_empty() || !text.is_empty() {
                        cmd.executing.push('\n');
                    }
                    cmd.executing.push_str(text);
                    let (e, w) = classify(bytes);
                    cmd.window_errors += e as u64;
                    cmd.window_warnings += w as u64;
                }
            }
            State::Output => self.output_state_line(line, out),
            State::ExitCode => {
                if let Some(rest) = text.strip_prefix("Exit code: ") {
                    let (code, dur) = parse_exit(rest);
                    // The held rule was the closing one (after UTF-16 output it starts with a NUL).
                    self.pending_dash = None;
                    self.finish_command(code.or(Some(-1)), dur, line.number, out);
                    self.state = State::Body;
                } else {
                    // The rule was output after all; this line is output too.
                    // Undo the file count of the held rule: output_line counts it again.
                    if let Some((_, b)) = &self.pending_dash {
                        let (e, w) = classify(b);
                        self.file_errors -= e as u64;
                        self.file_warnings -= w as u64;
                    }
                    self.flush_pending_dash(out);
                    let (e, w) = classify(bytes);
                    self.file_errors -= e as u64;
                    self.file_warnings -= w as u64;
                    self.state = State::Output;
                    if bytes.strip_prefix(b"\0").unwrap_or(bytes) == DASH_RULE {
                        self.count_file_line(bytes);
                        self.pending_dash = Some((line.number, bytes.to_vec()));
                        self.state = State::ExitCode;
                    } else {
                        self.output_line(bytes, line.number, line.original_len, out);
                    }
                }
            }
            State::Config(seen_rule) => {
                if bytes == EQ_RULE {
                    if seen_rule {
                        self.emit_config(out);
                        self.state = State::Body;
                    } else {
                        self.state = State::Config(true);
                    }
                    return;
                }
                self.config_line(text);
            }
            State::Summary(seen_rule) => {
                if bytes == EQ_RULE {
                    if seen_rule {
                        self.close_feature(out, false);
                        self.state = State::Done;
                    } else {
                        self.state = State::Summary(true);
                    }
                    return;
                }
                if !self.summary_line(text) {
                    self.stray_line(line, out);
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Event>) {
        if let Some(rule_line) = self.pending_eq.take() {
            self.output_line(EQ_RULE, rule_line, None, out);
        }
        if self.state == State::Config(true) || self.state == State::Config(false) {
            self.emit_config(out);
        }
        if self.state == State::ExitCode {
            // The closing rule arrived but not the exit code: the command is cut short.
            self.pending_dash = None;
        }
        if self.state == State::Summary(true) || self.state == State::Summary(false) {
            // A summary cut short: report what it had, flagged.
            let s = self.summary.take().unwrap_or_default();
            let at = out.len();
            self.emit_feature_end(s, out);
            if let Some(e) = out.get_mut(at) {
                e.incomplete = true;
            }
            self.state = State::Done;
            return;
        }
        if self.state != State::Done {
            self.close_feature(out, true);
        }
    }
}

/// A `-errors.log` read on its own (its install log is missing): each line is an output line
/// the logger matched, kept as an `output` event with the level its patterns give.
pub struct ErrorsLogParser {
    feature: String,
}

impl ErrorsLogParser {
    pub fn new(feature: String) -> Self {
        ErrorsLogParser { feature }
    }
}

impl FormatParser for ErrorsLogParser {
    fn line(&mut self, line: &Line<'_>, out: &mut Vec<Event>) {
        if line.bytes.is_empty() {
            return;
        }
        let (text, invalid) = decode(line.bytes);
        let (is_error, is_warning) = classify(line.bytes);
        let level = if is_error {
            Level::Error
        } else if is_warning {
            Level::Warn
        } else {
            Level::Info
        };
        let message = strip_ansi(&text);
        let mut e = Event::new(
            EventType::Output,
            level,
            self.feature.clone(),
            message.as_ref(),
        )
        .with_detail("from", "errors log");
        if message.len() != text.len() {
            e.raw = Some(text.to_string());
        }
        e.source.line = line.number;
        e.invalid_utf8 = invalid;
        if let Some(n) = line.original_len {
            e.truncated = true;
            e.original_length = Some(n);
        }
        out.push(e);
    }
    fn finish(&mut self, _out: &mut Vec<Event>) {}
}

/// `0 (Duration: 12s)` -> (exit code, duration).
fn parse_exit(rest: &str) -> (Option<i64>, Option<u64>) {
    let (code, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    let code = code.trim().parse::<i64>().ok();
    let dur = tail
        .trim()
        .strip_prefix("(Duration: ")
        .and_then(|d| d.strip_suffix("s)"))
        .and_then(|d| d.parse::<u64>().ok());
    (code, dur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::LineSplitter;

    pub(crate) fn parse_bytes(input: &[u8]) -> Vec<Event> {
        let mut p = InstallLogParser::new(jiff::tz::TimeZone::UTC);
        let mut out = Vec::new();
        let mut s = LineSplitter::new(256 * 1024);
        s.push::<()>(input, &mut |l| {
            p.line(&l, &mut out);
            Ok(())
        })
        .unwrap();
        s.finish::<()>(&mut |l| {
            p.line(&l, &mut out);
            Ok(())
        })
        .unwrap();
        p.finish(&mut out);
        out
    }

    #[test]
    fn exit_line() {
        assert_eq!(parse_exit("0 (Duration: 12s)"), (Some(0), Some(12)));
        assert_eq!(parse_exit("22 (Duration: 0s)"), (Some(22), Some(0)));
        assert_eq!(parse_exit("x"), (None, None));
    }

    #[test]
    fn a_small_log() {
        let log =
            b"================================================================================
Feature Installation Log: Demo
Version: 1.0
Start Time: 2025-11-16 19:30:40
================================================================================


[19:30:40] COMMAND #1: Doing it
Executing: echo hi
--------------------------------------------------------------------------------
hi
error here
--------------------------------------------------------------------------------
Exit code: 0 (Duration: 2s)
[19:30:43] WARNING: careful
";
        let ev = parse_bytes(log);
        let types: Vec<_> = ev.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "feature_start",
                "command_start",
                "output",
                "output",
                "command",
                "warning",
                "feature_end"
            ]
        );
        assert_eq!(ev[0].message, "Starting installation of Demo version 1.0");
        assert_eq!(ev[3].level, Level::Error);
        assert_eq!(ev[4].timestamp.to_rfc3339(), "2025-11-16T19:30:42.500Z");
        assert_eq!(ev[4].metadata["duration_seconds"], 2);
        assert_eq!(ev[5].metadata["warning_count"], 1);
        let end = &ev[6];
        assert!(end.incomplete);
        assert_eq!(end.metadata["errors"], 1);
        assert_eq!(end.metadata["warnings"], 1);
        assert_eq!(end.metadata["status"], "failed");
        assert_eq!(end.message, "Installation of Demo aborted");
    }

    /// Found by tests/fuzz_parsers.rs: a log whose header rule is damaged has no feature; the
    /// lines of a command still open at its end went nowhere.
    #[test]
    fn a_headless_log_keeps_the_lines_of_its_open_command() {
        let log = b"<=======
Feature Installation Log: Demo
[19:30:40] COMMAND #2: Doing it
zqx0 foreign
Executing: echo hi
,-------------------------------------------------------------------------------
hi
";
        let ev = parse_bytes(log);
        let cmd = ev
            .iter()
            .find(|e| e.event_type == EventType::Command)
            .expect("the open command is closed at the end");
        assert!(cmd.incomplete);
        let held = cmd.details["command"].as_str().unwrap();
        assert!(
            held.contains("zqx0 foreign") && held.contains("hi"),
            "{held}"
        );
        assert!(ev.iter().all(|e| e.event_type != EventType::FeatureEnd));
    }

    #[test]
    fn a_dash_rule_inside_output_is_output() {
        let log =
            b"================================================================================
Feature Installation Log: Demo
Start Time: 2025-11-16 19:30:40
================================================================================
[19:30:40] COMMAND #1: Doing it
Executing: echo hi
--------------------------------------------------------------------------------
--------------------------------------------------------------------------------
table
--------------------------------------------------------------------------------
Exit code: 3 (Duration: 0s)
";
        let ev = parse_bytes(log);
        let outputs: Vec<_> = ev
            .iter()
            .filter(|e| e.event_type == EventType::Output)
            .collect();
        assert_eq!(outputs.len(), 2);
        assert_eq!(outputs[1].message, "table");
        let cmd = ev
            .iter()
            .find(|e| e.event_type == EventType::Command)
            .unwrap();
        assert_eq!(cmd.metadata["exit_code"], 3);
        assert_eq!(cmd.metadata["success"], false);
    }

    #[test]
    fn cut_mid_command_is_incomplete() {
        let log =
            b"================================================================================
Feature Installation Log: Demo
Start Time: 2025-11-16 19:30:40
================================================================================
[19:30:40] COMMAND #1: Doing it
Executing: echo hi
--------------------------------------------------------------------------------
partial";
        let ev = parse_bytes(log);
        let cmd = ev
            .iter()
            .find(|e| e.event_type == EventType::Command)
            .unwrap();
        assert!(cmd.incomplete);
        assert_eq!(cmd.metadata["exit_code"], Value::Null);
        let end = ev.last().unwrap();
        assert_eq!(end.event_type, EventType::FeatureEnd);
        assert!(end.incomplete);
        assert_eq!(end.metadata["commands_executed"], 1);
    }
}
