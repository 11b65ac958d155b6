//! A generator of large, realistic build log directories for benchmarks.
//!
//! It does not invent log text: it cuts the corpus's install logs (build 13) into their
//! command blocks (`COMMAND #n`, `Executing:`, output between the rules, `Exit code:`, and
//! the messages that follow) and recombines them, seeded, into install logs of the same
//! shape and any size: each feature of the corpus build appears once, its size scaled, its
//! commands sampled from its own log (so Python keeps its `gcc -Werror` lines, Rust its
//! cargo warning blocks). The summary blocks and `master-summary.log` carry counts computed
//! the logger's way (its `grep -E` patterns over each command's window, plus one per
//! `ERROR:`/`WARNING:` message), so the parser's recount agrees with them.
//!
//! Shared by `examples/gen_bench_log.rs`, `benches/convert.rs` and `tests/bench_generator.rs`.

#![allow(dead_code)]

use buildlog::parse::text::{matches_error, matches_warning};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const EQ_RULE: &str =
    "================================================================================";
const DASH_RULE: &[u8] =
    b"--------------------------------------------------------------------------------";

/// The corpus build the generator samples from, inside the repository.
pub fn default_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/build-13-large")
}

/// SplitMix64: tiny, and its sequence for a seed never changes (unlike a crate's RNG
/// across versions), so a seed names one exact output forever.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A timestamped line that follows a command (`[HH:MM:SS] WARNING: ...`), without its stamp.
#[derive(Clone)]
pub struct Message(pub Vec<u8>);

impl Message {
    fn is_error(&self) -> bool {
        self.0.starts_with(b"ERROR: ")
    }
    fn is_warning(&self) -> bool {
        self.0.starts_with(b"WARNING: ")
    }
}

/// One command as the logger wrote it.
#[derive(Clone)]
pub struct Block {
    pub description: Vec<u8>,
    /// `Executing: ...` and its continuation lines.
    pub executing: Vec<Vec<u8>>,
    pub output: Vec<Vec<u8>>,
    pub exit_code: i64,
    pub duration: u64,
    /// Messages logged right after the command (a tolerated failure's warning).
    pub messages: Vec<Message>,
}

/// A feature of the corpus build: its name, version, size and command blocks.
pub struct Feature {
    pub name: String,
    pub version: String,
    pub bytes: u64,
    pub blocks: Vec<Block>,
}

pub struct Corpus {
    /// In the order the features started.
    pub features: Vec<Feature>,
}

impl Corpus {
    pub fn total_bytes(&self) -> u64 {
        self.features.iter().map(|f| f.bytes).sum()
    }
}

fn strip_stamp(line: &[u8]) -> Option<&[u8]> {
    (line.len() > 11 && line[0] == b'[' && line[9] == b']' && line[10] == b' ').then(|| &line[11..])
}

/// Cuts one install log into its command blocks. Blocks that hold a NUL byte (the logger
/// counts differently once `grep` sees a binary file) or that never ended are left out.
pub fn split_blocks(log: &[u8]) -> (String, String, String, Vec<Block>) {
    let lines: Vec<&[u8]> = log.split(|b| *b == b'\n').collect();
    let field = |prefix: &str| -> String {
        lines
            .iter()
            .take(8)
            .find_map(|l| l.strip_prefix(prefix.as_bytes()))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let (name, version, start) = (
        field("Feature Installation Log: "),
        field("Version: "),
        field("Start Time: "),
    );
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(desc) = strip_stamp(lines[i])
            .and_then(|r| r.strip_prefix(b"COMMAND #"))
            .and_then(|r| r.iter().position(|b| *b == b':').map(|p| &r[p + 1..]))
        else {
            i += 1;
            continue;
        };
        let desc = desc.strip_prefix(b" ").unwrap_or(desc).to_vec();
        let mut j = i + 1;
        let mut executing = Vec::new();
        while j < lines.len() && lines[j] != DASH_RULE {
            executing.push(lines[j].to_vec());
            j += 1;
        }
        j += 1;
        let out_start = j;
        while j < lines.len() && !lines[j].starts_with(b"Exit code: ") {
            j += 1;
        }
        if j >= lines.len() || j == out_start || lines[j - 1] != DASH_RULE {
            i = j;
            continue;
        }
        let output: Vec<Vec<u8>> = lines[out_start..j - 1].iter().map(|l| l.to_vec()).collect();
        let exit = String::from_utf8_lossy(&lines[j]["Exit code: ".len()..]).into_owned();
        let exit_code = exit
            .split(' ')
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let duration = exit
            .split("(Duration: ")
            .nth(1)
            .and_then(|d| d.trim_end_matches("s)").parse().ok())
            .unwrap_or(0);
        let mut k = j + 1;
        let mut messages = Vec::new();
        while k < lines.len() {
            match strip_stamp(lines[k]) {
                Some(m) if !m.starts_with(b"COMMAND #") => messages.push(Message(m.to_vec())),
                _ => break,
            }
            k += 1;
        }
        let has_nul = executing
            .iter()
            .chain(output.iter())
            .any(|l| l.contains(&0));
        if !has_nul && !executing.is_empty() {
            blocks.push(Block {
                description: desc,
                executing,
                output,
                exit_code,
                duration,
                messages,
            });
        }
        i = k;
    }
    (name, version, start, blocks)
}

/// Reads every `*-install.log` of a corpus build directory.
pub fn load_corpus(dir: &Path) -> io::Result<Corpus> {
    let mut features = Vec::new();
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with("-install.log"))
        })
        .collect();
    paths.sort();
    let mut with_start = Vec::new();
    for p in paths {
        let bytes = fs::read(&p)?;
        let (name, version, start, blocks) = split_blocks(&bytes);
        if name.is_empty() || blocks.is_empty() {
            continue;
        }
        with_start.push((
            start,
            Feature {
                name,
                version,
                bytes: bytes.len() as u64,
                blocks,
            },
        ));
    }
    with_start.sort_by(|a, b| a.0.cmp(&b.0));
    features.extend(with_start.into_iter().map(|(_, f)| f));
    if features.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no install logs with commands in {}", dir.display()),
        ));
    }
    Ok(Corpus { features })
}

/// What the logger would have counted for one generated feature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureStats {
    pub name: String,
    pub commands: u64,
    pub errors: u64,
    pub warnings: u64,
    pub duration: u64,
    pub bytes: u64,
    pub lines: u64,
}

/// `YYYY-MM-DD HH:MM:SS` and `HH:MM:SS` of a Unix time (UTC).
fn civil(secs: i64) -> (String, String) {
    let (y, m, d) = buildlog::event::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let hms = format!("{:02}:{:02}:{:02}", sod / 3600, (sod / 60) % 60, sod % 60);
    (format!("{y:04}-{m:02}-{d:02} {hms}"), hms)
}

/// The logger's counting window of one command: its `grep -cE` over the lines after the
/// last line that starts with `Executing: `.
#[derive(Default)]
struct Window {
    errors: u64,
    warnings: u64,
    error_lines: Vec<Vec<u8>>,
    warning_lines: Vec<Vec<u8>>,
}

impl Window {
    fn line(&mut self, l: &[u8]) {
        if l.starts_with(b"Executing: ") {
            *self = Window::default();
            return;
        }
        if matches_error(l) {
            self.errors += 1;
            self.error_lines.push(l.to_vec());
        }
        if matches_warning(l) {
            self.warnings += 1;
            self.warning_lines.push(l.to_vec());
        }
    }
}

/// Up to this many output lines of one sampled block: the corpus's longest runs (a whole
/// cargo build) are cut at a random window so that commands recombine at every size.
const MAX_BLOCK_LINES: usize = 4000;

/// One feature's install log of about `target` bytes, starting at Unix time `start`.
/// Returns the log (summary block included), the summary block alone, and the counts.
pub fn generate_feature(
    feature: &Feature,
    rng: &mut Rng,
    start: i64,
    target: u64,
) -> (Vec<u8>, Vec<u8>, FeatureStats) {
    let mut log = Vec::with_capacity(target as usize + 4096);
    let (start_dt, _) = civil(start);
    writeln!(
        log,
        "{EQ_RULE}\nFeature Installation Log: {}\nVersion: {}\nStart Time: {start_dt}\n{EQ_RULE}\n\n",
        feature.name, feature.version
    )
    .unwrap();
    let mut now = start + 1;
    let mut st = FeatureStats {
        name: feature.name.clone(),
        ..Default::default()
    };
    // The summary's "First 10 Errors/Warnings": per command its error lines, then its
    // warning lines, then the messages, as the logger's errors log lists them.
    let mut first: Vec<Vec<u8>> = Vec::new();
    let mut n = 0u32;
    while (log.len() as u64) < target || n == 0 {
        let b = &feature.blocks[rng.below(feature.blocks.len())];
        n += 1;
        let (_, hms) = civil(now);
        log.extend_from_slice(format!("[{hms}] COMMAND #{n}: ").as_bytes());
        log.extend_from_slice(&b.description);
        log.push(b'\n');
        let mut w = Window::default();
        for l in &b.executing {
            log.extend_from_slice(l);
            log.push(b'\n');
            w.line(l);
        }
        log.extend_from_slice(DASH_RULE);
        log.push(b'\n');
        let out: &[Vec<u8>] = if b.output.len() > MAX_BLOCK_LINES {
            let len = 1 + rng.below(MAX_BLOCK_LINES);
            let at = rng.below(b.output.len() - len + 1);
            &b.output[at..at + len]
        } else {
            &b.output
        };
        for l in out {
            log.extend_from_slice(l);
            log.push(b'\n');
            w.line(l);
        }
        log.extend_from_slice(DASH_RULE);
        writeln!(
            log,
            "\nExit code: {} (Duration: {}s)",
            b.exit_code, b.duration
        )
        .unwrap();
        st.errors += w.errors;
        st.warnings += w.warnings;
        first.extend(w.error_lines);
        first.extend(w.warning_lines);
        now += b.duration as i64;
        let (_, hms) = civil(now);
        for m in &b.messages {
            log.extend_from_slice(format!("[{hms}] ").as_bytes());
            log.extend_from_slice(&m.0);
            log.push(b'\n');
            if m.is_error() || m.is_warning() {
                st.errors += m.is_error() as u64;
                st.warnings += m.is_warning() as u64;
                let mut l = format!("[{hms}] ").into_bytes();
                l.extend_from_slice(&m.0);
                first.push(l);
            }
        }
        log.push(b'\n');
        now += rng.below(3) as i64;
    }
    st.commands = n as u64;
    st.duration = (now - start) as u64;
    let (end_dt, _) = civil(now);
    let mut summary = Vec::new();
    writeln!(
        summary,
        "{EQ_RULE}\nInstallation Summary: {}\n{EQ_RULE}\n\nTotal Duration: {} seconds\nCommands Executed: {}\nErrors Found: {}\nWarnings Found: {}\n",
        feature.name, st.duration, st.commands, st.errors, st.warnings
    )
    .unwrap();
    if first.is_empty() {
        summary.extend_from_slice(b"No errors or warnings detected!\n");
    } else {
        summary.extend_from_slice(b"--- First 10 Errors/Warnings ---\n");
        for l in first.iter().take(10) {
            summary.extend_from_slice(l);
            summary.push(b'\n');
        }
        writeln!(
            summary,
            "\nFull error log: /var/log/container-build/{}-errors.log",
            buildlog::build::kind::slug(&feature.name)
        )
        .unwrap();
    }
    writeln!(summary, "\nEnd Time: {end_dt}\n{EQ_RULE}").unwrap();
    log.extend_from_slice(&summary);
    st.bytes = log.len() as u64;
    st.lines = log.iter().filter(|b| **b == b'\n').count() as u64;
    (log, summary, st)
}

/// Generated build: what was written.
#[derive(Debug, Default)]
pub struct BuildStats {
    pub features: Vec<FeatureStats>,
    pub bytes: u64,
}

/// The start of the generated build: the corpus build's own day.
pub const BUILD_START: i64 = 1_791_958_321;

/// Writes a build directory of about `size` bytes of install logs into `out`: one
/// `<slug>-install.log` and `<slug>-summary.log` per feature of the corpus, each scaled to
/// its share of `size`, and `master-summary.log`.
pub fn generate_build(corpus: &Corpus, size: u64, seed: u64, out: &Path) -> io::Result<BuildStats> {
    fs::create_dir_all(out)?;
    let mut rng = Rng::new(seed);
    let total = corpus.total_bytes().max(1);
    let mut master = Vec::new();
    let mut stats = BuildStats::default();
    let mut now = BUILD_START;
    for f in &corpus.features {
        let target = (size as u128 * f.bytes as u128 / total as u128) as u64;
        let (log, summary, st) = generate_feature(f, &mut rng, now, target);
        let slug = buildlog::build::kind::slug(&f.name);
        fs::write(out.join(format!("{slug}-install.log")), &log)?;
        fs::write(out.join(format!("{slug}-summary.log")), &summary)?;
        writeln!(
            master,
            "{}: {} errors, {} warnings ({}s)",
            f.name, st.errors, st.warnings, st.duration
        )?;
        stats.bytes += log.len() as u64 + summary.len() as u64;
        now += st.duration as i64 + 2;
        stats.features.push(st);
    }
    fs::write(out.join("master-summary.log"), &master)?;
    stats.bytes += master.len() as u64;
    Ok(stats)
}

/// `200MB`, `1.5GB`, `512KiB`, `1000000` -> bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    (num >= 0.0).then_some((num * mult) as u64)
}
