//! The dead-letter file: what a sink could not deliver, one JSON object per line,
//! `{"sink":..., "reason":..., "event":{...}}`. `buildlog ship` reads such a file back
//! (its `event` objects) so a dead-letter file can be replayed once the cause is fixed.

use crate::event::Event;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    pub sink: String,
    pub reason: String,
    pub event: Event,
}

#[derive(Serialize)]
struct RecordRef<'a> {
    sink: &'a str,
    reason: &'a str,
    event: &'a Event,
}

/// Shared, append-only, counted. Cloning shares the file and the count.
#[derive(Clone)]
pub struct DeadLetter {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    path: Option<PathBuf>,
    writer: Option<BufWriter<File>>,
    count: u64,
    /// Per sink, its distinct reasons (the first few) with their event counts, in order.
    reasons: Vec<(String, String, u64)>,
}

/// How many distinct reasons per sink are kept for the summary.
const REASONS_KEPT: usize = 3;

impl DeadLetter {
    /// `None`: nothing is written, but every event is still counted (and the exit code says so).
    pub fn new(path: Option<&Path>) -> Self {
        DeadLetter {
            inner: Arc::new(Mutex::new(Inner {
                path: path.map(Path::to_path_buf),
                writer: None,
                count: 0,
                reasons: Vec::new(),
            })),
        }
    }

    pub fn path(&self) -> Option<PathBuf> {
        self.inner.lock().unwrap().path.clone()
    }

    /// Records `events` as undeliverable by `sink` for `reason`. The file is opened on first use.
    pub fn write(&self, sink: &str, reason: &str, events: &[Arc<Event>]) -> std::io::Result<()> {
        let mut inner = self.inner.lock().unwrap();
        inner.count += events.len() as u64;
        let n = events.len() as u64;
        if let Some(r) = inner
            .reasons
            .iter_mut()
            .find(|(s, r, _)| s == sink && r == reason)
        {
            r.2 += n;
        } else if inner.reasons.iter().filter(|(s, _, _)| s == sink).count() < REASONS_KEPT {
            inner
                .reasons
                .push((sink.to_string(), reason.to_string(), n));
        }
        if inner.path.is_none() {
            return Ok(());
        }
        if inner.writer.is_none() {
            let path = inner.path.clone().unwrap();
            if let Some(dir) = path.parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)?;
                }
            }
            let f = OpenOptions::new().create(true).append(true).open(&path)?;
            inner.writer = Some(BufWriter::new(f));
        }
        let w = inner.writer.as_mut().unwrap();
        for event in events {
            // A struct, not `json!`: its field order puts `sink` first, which `parse_record` relies on.
            let rec = RecordRef {
                sink,
                reason,
                event,
            };
            serde_json::to_writer(&mut *w, &rec)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    }

    pub fn count(&self) -> u64 {
        self.inner.lock().unwrap().count
    }

    /// Why `sink`'s events were dead-lettered: its first few distinct reasons with their
    /// event counts, for the summary on stderr (the file has the reason of every event).
    pub fn reasons(&self, sink: &str) -> Vec<(String, u64)> {
        self.inner
            .lock()
            .unwrap()
            .reasons
            .iter()
            .filter(|(s, _, _)| s == sink)
            .map(|(_, r, n)| (r.clone(), *n))
            .collect()
    }
}

/// True when a JSON line is a dead-letter record rather than a plain event.
pub fn parse_record(line: &str) -> Option<DeadLetterRecord> {
    if !line.starts_with("{\"sink\"") {
        return None;
    }
    serde_json::from_str(line).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventType, Level};

    #[test]
    fn records_round_trip_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dead.jsonl");
        let dl = DeadLetter::new(Some(&path));
        let e = Arc::new(Event::new(EventType::Output, Level::Info, "Python", "x"));
        dl.write("loki", "400 line too long", &[e.clone(), e])
            .unwrap();
        assert_eq!(dl.count(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let recs: Vec<_> = text.lines().map(|l| parse_record(l).unwrap()).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].reason, "400 line too long");
        assert_eq!(recs[0].event.feature, "Python");
    }

    #[test]
    fn counts_without_a_file() {
        let dl = DeadLetter::new(None);
        let e = Arc::new(Event::new(EventType::Output, Level::Info, "Python", "x"));
        dl.write("es", "mapping", &[e]).unwrap();
        assert_eq!(dl.count(), 1);
    }
}
