//! The plugin's work, off Fluent Bit's coroutine stack: decode a chunk, feed each record's
//! line to the parser state of its source file, enrich, deliver; keep the events of a chunk
//! whose delivery failed so that Fluent Bit's retry of that chunk re-sends them without
//! feeding its lines to the parsers a second time.

use crate::records;
use buildlog::build::assemble::Assembler;
use buildlog::build::kind::FileKind;
use buildlog::build::FileParser;
use buildlog::event::Event;
use buildlog::parse::install_log::InstallLogParser;
use buildlog::parse::{FormatParser, ParseOptions};
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
}

struct FileState {
    lines: FileParser,
    parser: InstallLogParser,
    dir: PathBuf,
    name: String,
    /// The feature slug of its file name (`python-install.log`: `python`).
    slug: String,
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
    files: HashMap<String, FileState>,
    /// Per build directory: the same assembly of events as `buildlog convert`.
    builds: HashMap<PathBuf, Assembler>,
    pending: HashMap<u64, Vec<Arc<Event>>>,
    pending_order: VecDeque<u64>,
    delivery: Box<dyn Delivery>,
    pub stats: Stats,
}

impl Engine {
    pub fn new(settings: Settings, delivery: Box<dyn Delivery>) -> Self {
        Engine {
            settings,
            files: HashMap::new(),
            builds: HashMap::new(),
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
        let mut out = Vec::new();
        let mut parsed = Vec::new();
        for rec in decoded.records {
            let opts = &self.settings.opts;
            let st = self.files.entry(rec.path.clone()).or_insert_with(|| {
                let p = Path::new(&rec.path);
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| rec.path.clone());
                let slug = match FileKind::of(&name, false) {
                    Some(FileKind::Install(s)) => s,
                    _ => String::new(),
                };
                FileState {
                    lines: FileParser::new(opts.max_line_bytes),
                    parser: InstallLogParser::new(opts.timezone.clone()),
                    dir: p.parent().map(Path::to_path_buf).unwrap_or_default(),
                    name,
                    slug,
                }
            });
            // Fluent Bit's tail hands over lines without their newline.
            let mut line = rec.line;
            line.push(b'\n');
            st.lines.feed(&mut st.parser, &line, &mut parsed);
            if parsed.is_empty() {
                continue;
            }
            let asm = self.builds.entry(st.dir.clone()).or_insert_with(|| {
                let mut asm = Assembler::new(
                    opts.scrub,
                    opts.timezone_given,
                    opts.timezone.iana_name().unwrap_or("UTC"),
                );
                asm.set_correlation_id(buildlog::build::batch::correlation_id_of_dir(
                    &st.dir, opts,
                ));
                asm
            });
            for e in parsed.drain(..) {
                let e = asm.text_event(&st.slug, e, &rec.path, &st.name);
                out.push(Arc::new(e));
            }
        }
        self.stats.events += out.len() as u64;
        out
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
        assert_eq!(got[0][0].event_type.as_str(), "feature_start");
        assert_eq!(got[0][0].source.line, 1);
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
            .map(|ev| (ev.feature.clone(), ev.source.file.clone(), ev.source.line))
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
            .all(|ev| ev.correlation_id == "build-1763321440-abc123"));
    }
}
