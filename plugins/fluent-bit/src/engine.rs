//! The plugin's work, off Fluent Bit's coroutine stack: decode a chunk, hand each record's
//! line to the follower of its build directory (the same `Follower` as `buildlog convert
//! --follow`, fed lines instead of reading files, so the plugin gives the same events),
//! deliver what it hands on; keep the events of a chunk
//! whose delivery failed so that Fluent Bit's retry of that chunk re-sends them without
//! feeding its lines to the parsers a second time.

use crate::records;
use buildlog::build::follow::{FollowTiming, Follower};
use buildlog::event::Event;
use buildlog::parse::ParseOptions;
use buildlog::sink::Sink;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Not (entirely) delivered; Fluent Bit should retry the chunk.
    Retry(String),
}

/// Where events go. `SinkDelivery` runs buildlog's sinks; tests can record instead.
pub trait Delivery: Send {
    fn deliver(&mut self, events: &[Arc<Event>]) -> Outcome;
}

/// Builds the sinks for one delivery (the same sinks as `buildlog ship`).
pub type SinkFactory = Box<dyn Fn() -> anyhow::Result<Vec<Box<dyn Sink>>> + Send>;

/// Delivers through buildlog's sinks on the plugin's own tokio runtime: one sink run per
/// flush. The flush is acknowledged when every sink delivered every event, or, with a
/// dead-letter file, when every event is either delivered or in that file (the sinks write
/// there what they gave up on after their retries); otherwise Fluent Bit retries the chunk.
pub struct SinkDelivery {
    rt: tokio::runtime::Runtime,
    make: SinkFactory,
    dead_letter_file: bool,
}

impl SinkDelivery {
    pub fn new(make: SinkFactory, dead_letter_file: bool) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("buildlog-flb")
            .enable_all()
            .build()?;
        Ok(SinkDelivery {
            rt,
            make,
            dead_letter_file,
        })
    }
}

impl Delivery for SinkDelivery {
    fn deliver(&mut self, events: &[Arc<Event>]) -> Outcome {
        let sinks = match (self.make)() {
            Ok(s) => s,
            Err(e) => return Outcome::Retry(format!("building the sinks: {e}")),
        };
        self.rt.block_on(async {
            let mut problems = Vec::new();
            for sink in sinks {
                let name = sink.name();
                let (tx, rx) = mpsc::channel(events.len().max(1));
                for e in events {
                    let _ = tx.try_send(e.clone());
                }
                drop(tx);
                match sink.run(rx).await {
                    Ok(r) if r.delivered == events.len() as u64 => {}
                    Ok(r)
                        if self.dead_letter_file
                            && r.delivered + r.dead_lettered == events.len() as u64 =>
                    {
                        eprintln!(
                            "[buildlog] {name}: {} events written to the dead-letter file",
                            r.dead_lettered
                        );
                    }
                    Ok(r) => problems.push(format!(
                        "{name}: {} of {} delivered, {} dead-lettered",
                        r.delivered, r.received, r.dead_lettered
                    )),
                    Err(e) => problems.push(format!("{name}: {e}")),
                }
            }
            if problems.is_empty() {
                Outcome::Delivered
            } else {
                Outcome::Retry(problems.join("; "))
            }
        })
    }
}

/// Fluent Bit's flush return codes.
pub const FLB_ERROR: i32 = 0;
pub const FLB_OK: i32 = 1;
pub const FLB_RETRY: i32 = 2;

pub struct Settings {
    pub path_key: String,
    pub log_key: String,
    pub opts: ParseOptions,
    pub timing: FollowTiming,
}

/// Counters, reported on stderr at exit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub flushes: u64,
    pub records: u64,
    pub bad_records: u64,
    pub events: u64,
    pub delivered: u64,
    pub retried_flushes: u64,
}

/// Chunks waiting for Fluent Bit's retry, at most this many.
const MAX_PENDING: usize = 256;

pub struct Engine {
    settings: Settings,
    /// Per build directory, in the order they were first seen.
    builds: Vec<(PathBuf, Follower)>,
    pending: HashMap<u64, Vec<Arc<Event>>>,
    pending_order: VecDeque<u64>,
    delivery: Box<dyn Delivery>,
    pub stats: Stats,
}

impl Engine {
    pub fn new(settings: Settings, delivery: Box<dyn Delivery>) -> Self {
        Engine {
            settings,
            builds: Vec::new(),
            pending: HashMap::new(),
            pending_order: VecDeque::new(),
            delivery,
            stats: Stats::default(),
        }
    }

    /// One flush: returns FLB_OK or FLB_RETRY.
    pub fn flush(&mut self, tag: &str, chunk: &[u8]) -> i32 {
        self.stats.flushes += 1;
        let key = xxhash_rust::xxh3::xxh3_64_with_seed(chunk, tag.len() as u64)
            ^ xxhash_rust::xxh3::xxh3_64(tag.as_bytes());
        let events = match self.pending.remove(&key) {
            Some(ev) => ev,
            None => self.parse_chunk(chunk),
        };
        if events.is_empty() {
            return FLB_OK;
        }
        match self.delivery.deliver(&events) {
            Outcome::Delivered => {
                self.stats.delivered += events.len() as u64;
                FLB_OK
            }
            Outcome::Retry(reason) => {
                eprintln!("[buildlog] delivery failed, Fluent Bit will retry the chunk: {reason}");
                self.stats.retried_flushes += 1;
                self.remember(key, events);
                FLB_RETRY
            }
        }
    }

    /// Fluent Bit is stopping: the builds' remaining events are delivered (once; what fails
    /// goes the way of any failed delivery).
    pub fn finish(&mut self) {
        let events = self.hand_on(true);
        if events.is_empty() {
            return;
        }
        // (hand_on counted them.)
        match self.delivery.deliver(&events) {
            Outcome::Delivered => self.stats.delivered += events.len() as u64,
            Outcome::Retry(reason) => {
                eprintln!(
                    "[buildlog] at exit, {} events could not be delivered: {reason}",
                    events.len()
                )
            }
        }
    }

    fn remember(&mut self, key: u64, events: Vec<Arc<Event>>) {
        if self.pending.insert(key, events).is_none() {
            self.pending_order.push_back(key);
        }
        while self.pending_order.len() > MAX_PENDING {
            if let Some(old) = self.pending_order.pop_front() {
                if let Some(ev) = self.pending.remove(&old) {
                    eprintln!(
                        "[buildlog] forgetting {} events of a chunk Fluent Bit never retried",
                        ev.len()
                    );
                }
            }
        }
    }

    fn parse_chunk(&mut self, chunk: &[u8]) -> Vec<Arc<Event>> {
        let decoded = records::decode(chunk, &self.settings.path_key, &self.settings.log_key);
        self.stats.records += decoded.records.len() as u64 + decoded.bad.len() as u64;
        self.stats.bad_records += decoded.bad.len() as u64;
        for (i, b) in decoded.bad.iter().enumerate() {
            if i == 5 {
                eprintln!(
                    "[buildlog] ... and {} more bad records in this chunk",
                    decoded.bad.len() - 5
                );
                break;
            }
            eprintln!("[buildlog] bad record skipped: {b}");
        }
        for rec in decoded.records {
            let path = Path::new(&rec.path);
            let dir = build_dir(path);
            let i = match self.builds.iter().position(|(d, _)| *d == dir) {
                Some(i) => i,
                None => {
                    let f =
                        Follower::fed(&dir, &self.settings.opts).with_timing(self.settings.timing);
                    self.builds.push((dir, f));
                    self.builds.len() - 1
                }
            };
            // Fluent Bit's tail hands over lines without their newline.
            let mut line = rec.line;
            line.push(b'\n');
            self.builds[i].1.feed(path, &line);
        }
        self.hand_on(false)
    }

    /// What the builds' followers hand on; with `end`, every build is over (Fluent Bit is
    /// stopping): open features are closed and everything held goes out.
    fn hand_on(&mut self, end: bool) -> Vec<Arc<Event>> {
        let mut out = Vec::new();
        for (_, f) in &mut self.builds {
            let mut emit = |e: &mut Event| -> std::io::Result<()> {
                out.push(Arc::new(e.take()));
                Ok(())
            };
            let _ = if end {
                f.end(&mut emit)
            } else {
                f.pump(&mut emit)
            };
        }
        self.stats.events += out.len() as u64;
        out
    }
}

/// The build directory of a logger file: its directory, or the one above `json/`.
fn build_dir(path: &Path) -> PathBuf {
    let parent = path.parent().unwrap_or(Path::new(""));
    match parent.file_name() {
        Some(n) if n == "json" => parent.parent().unwrap_or(parent).to_path_buf(),
        _ => parent.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmpv::Value;
    use std::sync::Mutex;

    /// What each delivery was given.
    type Log = Arc<Mutex<Vec<Vec<Arc<Event>>>>>;

    /// Records what it is given; answers Retry while `fail` is positive.
    struct Recording {
        got: Log,
        fail: usize,
    }

    impl Delivery for Recording {
        fn deliver(&mut self, events: &[Arc<Event>]) -> Outcome {
            self.got.lock().unwrap().push(events.to_vec());
            if self.fail > 0 {
                self.fail -= 1;
                return Outcome::Retry("test".into());
            }
            Outcome::Delivered
        }
    }

    fn chunk(path: &str, lines: &[&str]) -> Vec<u8> {
        let mut b = Vec::new();
        for l in lines {
            let rec = Value::Array(vec![
                Value::from(1u64),
                Value::Map(vec![
                    ("path".into(), path.into()),
                    ("log".into(), (*l).into()),
                ]),
            ]);
            rmpv::encode::write_value(&mut b, &rec).unwrap();
        }
        b
    }

    fn engine(fail: usize) -> (Engine, Log) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let settings = Settings {
            path_key: "path".into(),
            log_key: "log".into(),
            opts: ParseOptions {
                correlation_id: Some("build-1763321440-abc123".into()),
                ..ParseOptions::default()
            },
            timing: FollowTiming {
                twin_wait: std::time::Duration::ZERO,
                idle_end: None,
            },
        };
        let d = Recording {
            got: got.clone(),
            fail,
        };
        (Engine::new(settings, Box::new(d)), got)
    }

    const HEAD: [&str; 4] = [
        "Feature Installation Log: Python",
        "Start Time: 2025-11-16 19:30:40",
        "Version: 3.13.5",
        "=========================================",
    ];

    #[test]
    fn a_retried_chunk_resends_the_same_events_without_parsing_again() {
        let (mut e, got) = engine(1);
        let c = chunk("/b/python-install.log", &HEAD);
        assert_eq!(e.flush("t", &c), FLB_RETRY);
        assert_eq!(e.flush("t", &c), FLB_OK);
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2);
        assert!(!got[0].is_empty());
        assert_eq!(got[0], got[1]);
        assert_eq!(got[0][0].event_type.as_str(), "build_start");
        assert_eq!(got[0][1].event_type.as_str(), "feature_start");
        assert_eq!(got[0][1].source.line, 1);
        assert_eq!(e.stats.retried_flushes, 1);
        assert_eq!(e.stats.delivered, got[0].len() as u64);
        assert_eq!(e.stats.records, 4, "records counted once");
    }

    #[test]
    fn each_file_keeps_its_own_state() {
        let (mut e, got) = engine(0);
        // Two files' headers, interleaved line by line across two flushes.
        let mut lines = Vec::new();
        for l in HEAD {
            lines.push(("/b/python-install.log", l.to_string()));
            lines.push(("/b/rust-install.log", l.replace("Python", "Rust")));
        }
        let (a, b) = lines.split_at(3);
        for part in [a, b] {
            let mut buf = Vec::new();
            for (p, l) in part {
                buf.extend(chunk(p, &[l.as_str()]));
            }
            assert_eq!(e.flush("t", &buf), FLB_OK);
        }
        let events: Vec<_> = got.lock().unwrap().concat();
        let mut starts: Vec<_> = events
            .iter()
            .filter(|ev| ev.event_type.as_str() == "feature_start")
            .map(|ev| {
                (
                    ev.feature.clone(),
                    ev.source.file.to_string(),
                    ev.source.line,
                )
            })
            .collect();
        starts.sort();
        assert_eq!(
            starts,
            [
                ("Python".to_string(), "/b/python-install.log".to_string(), 1),
                ("Rust".into(), "/b/rust-install.log".into(), 1)
            ]
        );
        assert!(events
            .iter()
            .all(|ev| &*ev.correlation_id == "build-1763321440-abc123"));
    }

    /// Every corpus build, its files handed to the plugin line by line (the JSON logger's
    /// first, as a `tail` that found them already written would), gives the events `convert`
    /// gives for the directory.
    #[test]
    fn the_plugin_gives_the_events_convert_gives_for_every_corpus_build() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/corpus");
        let mut builds: Vec<PathBuf> = std::fs::read_dir(&corpus)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        builds.sort();
        assert!(builds.len() >= 13);
        for build in builds {
            let dir = build.canonicalize().unwrap();
            let mut want: Vec<String> = Vec::new();
            let mut progress = buildlog::source::Progress::new(true);
            buildlog::build::parse_inputs(
                &[buildlog::source::Input::from_path(dir.clone())],
                &ParseOptions::default(),
                &mut progress,
                &mut |e| {
                    want.push(e.to_json());
                    Ok(())
                },
            );
            let got: Log = Arc::new(Mutex::new(Vec::new()));
            let settings = Settings {
                path_key: "path".into(),
                log_key: "log".into(),
                opts: ParseOptions::default(),
                timing: FollowTiming::default(),
            };
            let mut engine = Engine::new(
                settings,
                Box::new(Recording {
                    got: got.clone(),
                    fail: 0,
                }),
            );
            let mut files: Vec<PathBuf> = Vec::new();
            let json = dir.join("json");
            if json.is_dir() {
                let mut j: Vec<PathBuf> = std::fs::read_dir(&json)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
                j.sort();
                files.extend(j);
            }
            let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .collect();
            // Install logs in the order the features started (the order they are created),
            // then the master summary and the sentinel, as they are written.
            let start = |p: &Path| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .lines()
                    .find_map(|l| l.strip_prefix("Start Time: ").map(str::to_string))
            };
            logs.sort_by_key(|p| {
                let n = p.file_name().unwrap().to_string_lossy().to_string();
                (
                    !n.ends_with("-install.log"),
                    n == "build-failure.log",
                    start(p),
                    n,
                )
            });
            files.extend(logs);
            for f in files {
                let bytes = std::fs::read(&f).unwrap();
                let mut chunk = Vec::new();
                for line in bytes.split(|b| *b == b'\n') {
                    let rec = Value::Array(vec![
                        Value::from(1u64),
                        Value::Map(vec![
                            ("path".into(), f.display().to_string().into()),
                            ("log".into(), Value::Binary(line.to_vec())),
                        ]),
                    ]);
                    rmpv::encode::write_value(&mut chunk, &rec).unwrap();
                }
                if bytes.ends_with(b"\n") {
                    // `split` gave an empty last piece: not a line.
                    let cut = chunk.len() - {
                        let mut last = Vec::new();
                        rmpv::encode::write_value(
                            &mut last,
                            &Value::Array(vec![
                                Value::from(1u64),
                                Value::Map(vec![
                                    ("path".into(), f.display().to_string().into()),
                                    ("log".into(), Value::Binary(Vec::new())),
                                ]),
                            ]),
                        )
                        .unwrap();
                        last.len()
                    };
                    chunk.truncate(cut);
                }
                assert_eq!(engine.flush("t", &chunk), FLB_OK);
            }
            engine.finish();
            let mut got: Vec<String> = got
                .lock()
                .unwrap()
                .concat()
                .iter()
                .map(|e| e.to_json())
                .collect();
            got.sort();
            want.sort();
            assert_eq!(got.len(), want.len(), "{}", dir.display());
            if got != want {
                let (g, w): (std::collections::HashSet<_>, std::collections::HashSet<_>) =
                    (got.iter().collect(), want.iter().collect());
                panic!(
                    "{}: the plugin's events differ from convert's\nmissing {:?}\nextra {:?}",
                    dir.display(),
                    w.difference(&g).next(),
                    g.difference(&w).next()
                );
            }
        }
    }
}
