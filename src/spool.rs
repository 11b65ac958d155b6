//! The disk buffer of `ship --follow --buffer-dir`: one spool per sink, between the follower
//! and the sink's bounded queue.
//!
//! While the sink keeps up, events go straight to its queue. When the queue is full, events
//! are appended (JSON lines) to segment files in `DIR/<sink>/`, and a feeder task hands them
//! on in order as the sink catches up; once anything is spooled, every later event goes
//! through the spool too, so order is kept. The follower therefore keeps reading the logs
//! while a backend is down (the events are copied out of logs that may disappear), and memory
//! stays bounded. Spooled bytes are capped by `--buffer-max-bytes`; when full, `block` waits
//! (the follower stops reading, as without a buffer) and `drop-oldest` deletes the oldest
//! segment, counting and reporting its events. Segments left by an earlier run are sent
//! first after a restart (the backends deduplicate what the re-parse sends again).

use crate::event::Event;
use crate::sink::ack::Acks;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A segment is closed (and becomes readable) at this size, or when the feeder asks.
const SEGMENT_BYTES: u64 = 1 << 20;

/// Write failures of any spool in this process (a full disk, an I/O error), each naming its
/// file. The follower stops on such a failure; `ship` reports them and exits non-zero, so a
/// full disk is never a silent success.
static FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The write failures recorded since the last call (see [`FAILURES`]).
pub fn take_failures() -> Vec<String> {
    std::mem::take(&mut *FAILURES.lock().unwrap_or_else(|e| e.into_inner()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WhenFull {
    /// Wait for the sink: the follower stops reading the logs meanwhile.
    Block,
    /// Delete the oldest spooled events (counted, with a warning).
    DropOldest,
}

struct Open {
    id: u64,
    out: BufWriter<File>,
    bytes: u64,
}

#[derive(Default)]
struct State {
    /// Closed segments, oldest first: (id, bytes).
    closed: VecDeque<(u64, u64)>,
    open: Option<Open>,
    /// The segment the feeder is sending.
    reading: Option<u64>,
    next_id: u64,
    rotate_requested: bool,
}

pub struct Spool {
    pub name: String,
    dir: PathBuf,
    max_bytes: u64,
    when_full: WhenFull,
    state: Mutex<State>,
    bytes: AtomicU64,
    dropped: AtomicU64,
}

impl Spool {
    /// Opens (creating) `dir`, taking over the segments an earlier run left.
    pub fn open(
        dir: &Path,
        name: &str,
        max_bytes: u64,
        when_full: WhenFull,
    ) -> anyhow::Result<Spool> {
        use anyhow::Context;
        let what = || format!("the disk buffer {}", dir.display());
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", what()))?;
        let mut found: Vec<(u64, u64)> = Vec::new();
        for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", what()))? {
            let e = e.with_context(|| format!("reading {}", what()))?;
            let n = e.file_name().to_string_lossy().to_string();
            if let Some(id) = n.strip_suffix(".jsonl").and_then(|s| s.parse::<u64>().ok()) {
                found.push((id, e.metadata()?.len()));
            }
        }
        // Writable? A read-only directory would otherwise fail only when a sink falls behind.
        let probe = dir.join(".write-test");
        std::fs::write(&probe, b"")
            .and_then(|_| std::fs::remove_file(&probe))
            .with_context(|| format!("writing in {}", what()))?;
        found.sort();
        let bytes = found.iter().map(|s| s.1).sum();
        if !found.is_empty() {
            tracing::info!(
                "{name}: {} spooled segments ({bytes} bytes) from an earlier run are sent first",
                found.len()
            );
        }
        let next_id = found.last().map(|s| s.0 + 1).unwrap_or(0);
        Ok(Spool {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            max_bytes,
            when_full,
            state: Mutex::new(State {
                closed: found.into(),
                next_id,
                ..Default::default()
            }),
            bytes: AtomicU64::new(bytes),
            dropped: AtomicU64::new(0),
        })
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:012}.jsonl"))
    }

    fn close_open(&self, st: &mut State) -> std::io::Result<()> {
        if let Some(mut o) = st.open.take() {
            let id = o.id;
            o.out.flush().map_err(|e| self.failed(id, e))?;
            st.closed.push_back((o.id, o.bytes));
        }
        st.rotate_requested = false;
        Ok(())
    }

    /// A write to segment `id` failed: recorded (see [`take_failures`]) and returned with the
    /// file's name.
    fn failed(&self, id: u64, e: std::io::Error) -> std::io::Error {
        let msg = format!(
            "{}: disk buffer: writing {}: {e}",
            self.name,
            self.path(id).display()
        );
        tracing::error!("{msg}");
        FAILURES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg.clone());
        std::io::Error::new(e.kind(), msg)
    }

    /// Called by the follower between polls: closes the open segment if the feeder waits for it.
    pub fn tick(&self) {
        let mut st = self.lock();
        if st.rotate_requested {
            if let Err(e) = self.close_open(&mut st) {
                tracing::error!("{}: spool: {e}", self.name);
            }
        }
    }

    /// Hands `event` on: straight to the queue when nothing is spooled and there is room,
    /// else to the spool. Err: the sink is gone, or `stop` was set while blocked.
    pub fn push(
        &self,
        tx: &mpsc::Sender<Arc<Event>>,
        event: Arc<Event>,
        stop: &AtomicBool,
        acks: Option<&Acks>,
    ) -> std::io::Result<()> {
        let mut st = self.lock();
        let event = if st.closed.is_empty() && st.open.is_none() && st.reading.is_none() {
            match tx.try_send(event) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return Err(std::io::Error::other("a sink stopped early"))
                }
                Err(mpsc::error::TrySendError::Full(e)) => e,
            }
        } else {
            event
        };
        let mut line = Vec::with_capacity(512);
        event.write_json_line(&mut line);
        let len = line.len() as u64;
        while self.bytes() + len > self.max_bytes {
            let oldest = match self.when_full {
                WhenFull::Block => None,
                WhenFull::DropOldest => {
                    if st.closed.is_empty() && st.open.is_some() {
                        self.close_open(&mut st)?;
                    }
                    st.closed.pop_front()
                }
            };
            match oldest {
                Some((id, bytes)) => {
                    drop(st);
                    self.drop_segment(id, bytes, acks);
                    st = self.lock();
                }
                None => {
                    drop(st);
                    if stop.load(Ordering::SeqCst) {
                        return Err(std::io::Error::other("stopping"));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                    st = self.lock();
                }
            }
        }
        if st.rotate_requested || st.open.as_ref().is_some_and(|o| o.bytes >= SEGMENT_BYTES) {
            self.close_open(&mut st)?;
        }
        if st.open.is_none() {
            let id = st.next_id;
            st.next_id += 1;
            let file = File::create(self.path(id)).map_err(|e| self.failed(id, e))?;
            st.open = Some(Open {
                id,
                out: BufWriter::new(file),
                bytes: 0,
            });
        }
        let o = st.open.as_mut().expect("just opened");
        let id = o.id;
        if let Err(e) = o.out.write_all(&line) {
            return Err(self.failed(id, e));
        }
        o.bytes += len;
        self.bytes.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes a segment for drop-oldest; its events count as dropped, and as acknowledged so
    /// that the checkpoint can move past them (they are lost, and said so).
    fn drop_segment(&self, id: u64, bytes: u64, acks: Option<&Acks>) {
        let mut n = 0u64;
        if let Ok(f) = File::open(self.path(id)) {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                n += 1;
                if let (Some(a), Ok(e)) = (acks, serde_json::from_str::<Event>(&line)) {
                    a.done(&e);
                }
            }
        }
        let _ = std::fs::remove_file(self.path(id));
        self.bytes
            .fetch_sub(bytes.min(self.bytes()), Ordering::Relaxed);
        // Said once; the count is in the metrics and the summary.
        if self.dropped.fetch_add(n, Ordering::Relaxed) == 0 {
            tracing::warn!(
                "{}: disk buffer full (--buffer-max-bytes {}): dropping the oldest spooled events",
                self.name,
                self.max_bytes
            );
        }
    }

    /// Sends the spooled events to the sink in order, until `stop` (what is left stays on
    /// disk for the next run) or the sink is gone.
    pub async fn feed(self: Arc<Self>, tx: mpsc::Sender<Arc<Event>>, stop: Arc<AtomicBool>) {
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let next = {
                let mut st = self.lock();
                match st.closed.pop_front() {
                    Some(seg) => {
                        st.reading = Some(seg.0);
                        Some(seg)
                    }
                    None => {
                        if st.open.is_some() {
                            st.rotate_requested = true;
                        }
                        None
                    }
                }
            };
            let Some((id, bytes)) = next else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let path = self.path(id);
            let lines = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("{}: spool segment {}: {e}", self.name, path.display());
                    Vec::new()
                }
            };
            for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let Ok(event) = serde_json::from_slice::<Event>(line) else {
                    // A line cut by a crash mid-write: the re-parse sends that event again.
                    tracing::warn!("{}: skipping an unreadable spooled line", self.name);
                    continue;
                };
                tokio::select! {
                    r = tx.send(Arc::new(event)) => if r.is_err() { return },
                    _ = wait_for(&stop) => {
                        // Put the segment back: sent again (and deduplicated) next time.
                        let mut st = self.lock();
                        st.reading = None;
                        st.closed.push_front((id, bytes));
                        return;
                    }
                }
            }
            let _ = std::fs::remove_file(&path);
            self.bytes
                .fetch_sub(bytes.min(self.bytes()), Ordering::Relaxed);
            self.lock().reading = None;
        }
    }
}

async fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
