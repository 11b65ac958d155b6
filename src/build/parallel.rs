//! Many builds on every core: `--jobs N` threads each read whole builds (parse, assemble,
//! enrich, scrub, and for `convert` write the JSON lines) while this thread hands their
//! events on in the order `--jobs 1` gives them.
//!
//! Each build is read by exactly the code that reads it alone (`batch::parse_unit`), so its
//! events are the same; only the order in which builds are read changes, and the events of
//! build `k + 1` wait (in a bounded channel) until every event of build `k` has gone out. A
//! worker starts a build at most `2 * jobs` places ahead of the one going out, and a build's
//! channel holds at most `CHUNKS_IN_FLIGHT` batches (512 events, or 256 KiB of JSON lines), so
//! memory grows with `--jobs`, never with the size of the archive.
//!
//! For `convert`, a build read ahead whose batches find the channel full goes on into an unnamed
//! temporary file (at most `SPILL_MAX` bytes per build, then it waits), so that builds of equal
//! size are read side by side instead of one after the other. When its turn comes (the writing
//! thread sets the build's flag) the file goes to the output whole (`JsonOut::write_file`: to a
//! regular file or a device the kernel copies it, into a pipe it is read back in blocks) and
//! the rest of the build follows through the channel. The files are used again by later builds
//! while they are young (`SpillFile`). Other consumers (`ship`, `metrics`, `report`) take
//! events, which wait in memory: their own work on the events runs beside the reading.
//!
//! Why JSON is written in the workers for `convert`: an event allocated on one thread and
//! freed on another takes the allocator off its per-thread fast path (measured with glibc's,
//! before jemalloc: `--jobs 2` spent more CPU than `--jobs 1` took in all; jemalloc too pays
//! a flush of its thread cache for such frees). Bytes cross threads in big blocks instead.

use super::batch::{parse_unit, Unit};
use super::ParseReport;
use crate::event::Event;
use crate::parse::ParseOptions;
use crate::source::Progress;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Batches a build may have waiting before its worker waits.
const CHUNKS_IN_FLIGHT: usize = 8;

/// What a worker makes of the events of a build, in batches that cross to the writing thread.
pub(super) trait Batcher: Sync {
    type Batch: Send;
    fn batch(&self) -> Self::Batch;
    /// Adds an event; true when the batch is full and should be sent.
    fn add(&self, batch: &mut Self::Batch, e: &mut Event) -> bool;
    fn is_empty(&self, batch: &Self::Batch) -> bool;
    fn events(&self, batch: &Self::Batch) -> u64;
    /// The batch as bytes, when it can wait in a file (else the worker waits).
    fn bytes<'b>(&self, _batch: &'b Self::Batch) -> Option<&'b [u8]> {
        None
    }
    /// A file of the bytes of batches (`bytes` gave them), read from its start, as a batch.
    fn batch_of_file(&self, _file: SpillFile) -> Option<Self::Batch> {
        None
    }
    /// A file for the batches of a build read ahead to wait in, at its start.
    fn spill_file(&self) -> io::Result<SpillFile> {
        SpillFile::new()
    }
    /// Called by the writing thread as it comes to each unit.
    fn next_unit(&self) {}
}

/// A temporary file that batches of a build read ahead wait in, used again for later builds
/// while it is young: writing over pages a file already has costs the kernel a copy, where a
/// new file's pages are each allocated, reserved on the file system, and freed again when it
/// is closed (with ext4, half the system time of `--jobs 2`). Dropped once older than
/// `SPILL_FILE_REUSE`, before Linux would write its dirty pages to disk (after 30 s by
/// default, `vm.dirty_expire_centisecs`): a file closed first is not written unless memory
/// runs short.
pub(super) struct SpillFile {
    pub(super) file: File,
    made: Instant,
    /// The bytes of this build, from the file's start (a file used again may hold more).
    pub(super) len: u64,
}

/// How long a spill file is used again (see [`SpillFile`]).
const SPILL_FILE_REUSE: Duration = Duration::from_secs(20);

impl SpillFile {
    fn new() -> io::Result<SpillFile> {
        Ok(SpillFile {
            file: tempfile::tempfile()?,
            made: Instant::now(),
            len: 0,
        })
    }
}

/// The most of one build's batches that wait in a temporary file.
const SPILL_MAX: u64 = 1 << 30;

/// Batches of events, for every consumer but `convert`.
pub(super) struct Events;

impl Batcher for Events {
    type Batch = Vec<Event>;
    fn batch(&self) -> Vec<Event> {
        Vec::with_capacity(512)
    }
    fn add(&self, batch: &mut Vec<Event>, e: &mut Event) -> bool {
        batch.push(e.take());
        batch.len() >= 512
    }
    fn is_empty(&self, batch: &Vec<Event>) -> bool {
        batch.is_empty()
    }
    fn events(&self, batch: &Vec<Event>) -> u64 {
        batch.len() as u64
    }
}

/// Batches of JSON lines, for `convert`, and the spill files written out, to be used again.
#[derive(Default)]
pub(super) struct JsonLines {
    spill_files: Mutex<Vec<SpillFile>>,
}

impl JsonLines {
    /// A spill file whose bytes went out, for a later build to wait in.
    pub(super) fn give_back(&self, spilled: SpillFile) {
        if let Ok(mut files) = self.spill_files.lock() {
            files.push(spilled);
            drop_old(&mut files);
        }
    }
}

/// Closes the spill files too old to be used again: one left unused in the pool would
/// otherwise keep its dirty pages past the time Linux writes them to disk.
fn drop_old(files: &mut Vec<SpillFile>) {
    files.retain(|f| f.made.elapsed() < SPILL_FILE_REUSE);
}

/// JSON lines, and how many events they hold; or those a build read ahead left in a file.
pub(super) enum JsonBatch {
    Lines(Vec<u8>, u64),
    Spilled(SpillFile),
}

/// Bytes of JSON lines a batch collects before it is sent.
pub(super) const JSON_BATCH: usize = 256 * 1024;

impl Batcher for JsonLines {
    type Batch = JsonBatch;
    fn batch(&self) -> JsonBatch {
        JsonBatch::Lines(Vec::with_capacity(JSON_BATCH + 64 * 1024), 0)
    }
    fn add(&self, batch: &mut JsonBatch, e: &mut Event) -> bool {
        let JsonBatch::Lines(bytes, n) = batch else {
            unreachable!("events are added to new batches only")
        };
        e.write_json_line(bytes);
        *n += 1;
        bytes.len() >= JSON_BATCH
    }
    fn is_empty(&self, batch: &JsonBatch) -> bool {
        self.events(batch) == 0
    }
    /// A file's events were counted when it was sent (`Msg::Spilled`).
    fn events(&self, batch: &JsonBatch) -> u64 {
        match batch {
            JsonBatch::Lines(_, n) => *n,
            JsonBatch::Spilled(_) => 0,
        }
    }
    fn bytes<'b>(&self, batch: &'b JsonBatch) -> Option<&'b [u8]> {
        match batch {
            JsonBatch::Lines(bytes, _) => Some(bytes),
            JsonBatch::Spilled(_) => None,
        }
    }
    fn batch_of_file(&self, file: SpillFile) -> Option<JsonBatch> {
        Some(JsonBatch::Spilled(file))
    }
    fn spill_file(&self) -> io::Result<SpillFile> {
        let reused = self.spill_files.lock().ok().and_then(|mut files| {
            drop_old(&mut files);
            files.pop()
        });
        match reused {
            Some(mut spilled) => {
                spilled.file.seek(SeekFrom::Start(0))?;
                Ok(spilled)
            }
            None => SpillFile::new(),
        }
    }
    fn next_unit(&self) {
        if let Ok(mut files) = self.spill_files.lock() {
            drop_old(&mut files);
        }
    }
}

enum Msg<B> {
    Batch(B),
    /// Batches that waited in a file, and how many events they hold.
    Spilled(SpillFile, u64),
    Done(ParseReport),
}

/// Reads `units` on `opts.jobs` threads; `deliver` gets every batch in the order of `units`.
pub(super) fn parse_units<B: Batcher>(
    units: &[Unit],
    opts: &ParseOptions,
    batcher: &B,
    progress: &mut Progress,
    deliver: &mut dyn FnMut(B::Batch) -> io::Result<()>,
) -> ParseReport {
    let jobs = opts.jobs.max(1);
    let window = 2 * jobs;
    let (work_tx, work_rx) = sync_channel::<Job<B::Batch>>(window);
    let work_rx = Mutex::new(work_rx);
    let stopped = AtomicBool::new(false);
    let mut report = ParseReport::default();

    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| worker(units, opts, batcher, &work_rx, &stopped));
        }
        // The receivers of units handed out and not yet drained, in order, each with the
        // flag that tells its worker the unit's turn has come.
        let mut pending: VecDeque<Option<Taken<B::Batch>>> = VecDeque::new();
        let mut next = 0;
        'units: for (head, unit) in units.iter().enumerate() {
            while next < units.len() && next < head + window {
                pending.push_back(match units[next] {
                    Unit::Found(_) => None,
                    _ => {
                        let (tx, rx) = sync_channel(CHUNKS_IN_FLIGHT);
                        let turn = Arc::new(AtomicBool::new(false));
                        // Never blocks: at most `window` units are out and not taken.
                        if work_tx.send((next, tx, turn.clone())).is_err() {
                            break 'units;
                        }
                        Some((rx, turn))
                    }
                });
                next += 1;
            }
            batcher.next_unit();
            let rx = pending.pop_front().flatten().map(|(rx, turn)| {
                turn.store(true, Ordering::Relaxed);
                rx
            });
            match (unit, rx) {
                (Unit::Found(found), _) => report.absorb(found.clone()),
                (_, Some(rx)) => {
                    while let Ok(msg) = rx.recv() {
                        match msg {
                            Msg::Batch(batch) => {
                                progress.add(0, batcher.events(&batch));
                                if deliver(batch).is_err() {
                                    break 'units;
                                }
                            }
                            Msg::Spilled(file, events) => {
                                progress.add(0, events);
                                let batch =
                                    batcher.batch_of_file(file).expect("only bytes are spilled");
                                if deliver(batch).is_err() {
                                    break 'units;
                                }
                            }
                            Msg::Done(r) => {
                                for _ in 0..r.files {
                                    progress.file_started();
                                }
                                progress.add(r.bytes, 0);
                                report.absorb(r);
                                break;
                            }
                        }
                    }
                }
                (_, None) => {}
            }
        }
        // Stops the workers: no more work, and the builds still being read have nobody to
        // send to.
        stopped.store(true, Ordering::Relaxed);
        drop(work_tx);
        drop(pending);
    });
    progress.finish();
    report
}

/// A unit to read: its index, the channel its batches go to, and whether its turn has come
/// (the writing thread takes its batches now).
type Job<B> = (usize, SyncSender<Msg<B>>, Arc<AtomicBool>);

/// A queue of units to read.
type Work<B> = Mutex<Receiver<Job<B>>>;

/// A unit handed out, as the writing thread holds it: where its batches come from, and its
/// `Job`'s flag.
type Taken<B> = (Receiver<Msg<B>>, Arc<AtomicBool>);

/// Takes units off the queue until it is closed, sending each one's events in batches.
fn worker<B: Batcher>(
    units: &[Unit],
    opts: &ParseOptions,
    batcher: &B,
    work: &Work<B::Batch>,
    stopped: &AtomicBool,
) {
    loop {
        // A poisoned lock means another worker panicked: stop taking work.
        let Ok(job) = work.lock().map(|rx| rx.recv()) else {
            return;
        };
        let Ok((index, tx, turn)) = job else { return };
        if stopped.load(Ordering::Relaxed) {
            return;
        }
        let mut out = Outbox::new(batcher, tx, turn);
        let mut batch = batcher.batch();
        let mut emit = |e: &mut Event| {
            if !batcher.add(&mut batch, e) {
                return Ok(());
            }
            out.send(std::mem::replace(&mut batch, batcher.batch()))
        };
        let report = parse_unit(&units[index], opts, &mut emit);
        if !batcher.is_empty(&batch) && out.send(batch).is_err() {
            continue;
        }
        if out.close().is_err() {
            continue;
        }
        let _ = out.tx.send(Msg::Done(report));
    }
}

/// Where a worker's batches go: the build's channel while it has room, then (for batches of
/// bytes, while the build waits for its turn) a temporary file, which goes into the channel
/// when it is full, when the build's turn comes, or when the build is over.
struct Outbox<'b, B: Batcher> {
    batcher: &'b B,
    tx: SyncSender<Msg<B::Batch>>,
    /// Set by the writing thread when it comes to this build.
    turn: Arc<AtomicBool>,
    spill: Option<Spill>,
    /// A spill file went out full: from now on the worker waits for room.
    waited: bool,
}

struct Spill {
    file: std::io::BufWriter<File>,
    made: Instant,
    bytes: u64,
    events: u64,
}

impl<'b, B: Batcher> Outbox<'b, B> {
    fn new(batcher: &'b B, tx: SyncSender<Msg<B::Batch>>, turn: Arc<AtomicBool>) -> Self {
        Outbox {
            batcher,
            tx,
            turn,
            spill: None,
            waited: false,
        }
    }

    fn send(&mut self, batch: B::Batch) -> io::Result<()> {
        // Once the writing thread takes this build's batches, what waited goes out and the
        // rest follows through the channel: only what is read while the build waits for its
        // turn is written to a file (each build read ahead had gone on into its file to the
        // end: about 90% of an archive's JSON through the page cache instead of half).
        let turn = self.turn.load(Ordering::Relaxed);
        if turn && self.spill.is_some() {
            self.close()?;
        }
        let batch = match &mut self.spill {
            Some(spill) => {
                let bytes = self.batcher.bytes(&batch).expect("only bytes are spilled");
                spill.file.write_all(bytes)?;
                spill.bytes += bytes.len() as u64;
                spill.events += self.batcher.events(&batch);
                if spill.bytes >= SPILL_MAX {
                    self.waited = true;
                    return self.close();
                }
                return Ok(());
            }
            None if turn || self.waited || self.batcher.bytes(&batch).is_none() => {
                return self.tx.send(Msg::Batch(batch)).map_err(|_| gone());
            }
            None => match self.tx.try_send(Msg::Batch(batch)) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(_)) => return Err(gone()),
                Err(TrySendError::Full(Msg::Batch(b))) => b,
                Err(TrySendError::Full(_)) => unreachable!("a batch was sent"),
            },
        };
        // The channel is full: this build is read ahead of the one being written.
        match self.batcher.spill_file() {
            Ok(SpillFile { file, made, .. }) => {
                self.spill = Some(Spill {
                    file: std::io::BufWriter::with_capacity(JSON_BATCH, file),
                    made,
                    bytes: 0,
                    events: 0,
                });
                self.send(batch)
            }
            // No room for a temporary file: wait instead.
            Err(e) => {
                tracing::debug!("no temporary file for reading ahead ({e}); waiting instead");
                self.waited = true;
                self.tx.send(Msg::Batch(batch)).map_err(|_| gone())
            }
        }
    }

    /// Sends the spill file, if any, in its place.
    fn close(&mut self) -> io::Result<()> {
        let Some(spill) = self.spill.take() else {
            return Ok(());
        };
        tracing::debug!(
            "{} events ({} bytes) of a build read ahead waited in a temporary file",
            spill.events,
            spill.bytes
        );
        let mut file = spill.file.into_inner().map_err(|e| e.into_error())?;
        // A file used before may hold more than this build's bytes: left there, not cut
        // (its pages freed to be allocated again by the next build), and not read.
        file.seek(SeekFrom::Start(0))?;
        let file = SpillFile {
            file,
            made: spill.made,
            len: spill.bytes,
        };
        self.tx
            .send(Msg::Spilled(file, spill.events))
            .map_err(|_| gone())
    }
}

/// The writing thread stopped (a closed pipe, a sink gone).
fn gone() -> io::Error {
    io::Error::other("nobody reads this build's events any more")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file that `batches`, sent by a build read ahead (its channel is full), wait in.
    fn spilled(lines: &JsonLines, batches: &[&[u8]]) -> SpillFile {
        let (tx, rx) = sync_channel(1);
        tx.send(Msg::Batch(lines.batch())).unwrap();
        let mut out = Outbox::new(lines, tx, Arc::default());
        for b in batches {
            out.send(JsonBatch::Lines(b.to_vec(), 1)).unwrap();
        }
        // The channel's room, taken, lets the file through.
        assert!(matches!(rx.recv(), Ok(Msg::Batch(_))));
        out.close().unwrap();
        match rx.recv() {
            Ok(Msg::Spilled(file, events)) => {
                assert_eq!(events, batches.len() as u64);
                file
            }
            _ => panic!("the batches did not wait in a file"),
        }
    }

    /// What the writing thread takes of a spill file.
    fn contents(spilled: &mut SpillFile) -> Vec<u8> {
        let mut bytes = Vec::new();
        crate::build::read_back(&mut spilled.file, spilled.len, &mut |b| {
            bytes.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        bytes
    }

    #[test]
    fn a_spill_file_used_again_holds_only_the_later_builds_bytes() {
        use std::os::unix::fs::MetadataExt;
        let lines = JsonLines::default();
        let long = [&b"{\"a\":1}\n"[..], &[b'x'; 300_000][..], b"\n"];
        let mut first = spilled(&lines, &long);
        assert!(contents(&mut first) == long.concat());
        let inode = first.file.metadata().unwrap().ino();
        lines.give_back(first);
        let short = [&b"{\"b\":2}\n"[..], b"{\"c\":3}\n"];
        let mut second = spilled(&lines, &short);
        assert_eq!(
            second.file.metadata().unwrap().ino(),
            inode,
            "not used again"
        );
        let held = contents(&mut second);
        assert!(
            held == short.concat(),
            "{} bytes held, {} written",
            held.len(),
            short.concat().len()
        );
    }

    #[test]
    fn an_old_spill_file_is_not_used_again() {
        let lines = JsonLines::default();
        let mut old = spilled(&lines, &[b"{\"a\":1}\n"]);
        old.made = Instant::now()
            .checked_sub(SPILL_FILE_REUSE)
            .expect("the clock is past the reuse time");
        lines.give_back(old);
        assert!(lines.spill_files.lock().unwrap().is_empty());
        // And one that aged while it waited in the pool is not taken.
        let mut young = spilled(&lines, &[b"{\"a\":1}\n"]);
        assert_eq!(contents(&mut young), b"{\"a\":1}\n");
        lines.give_back(young);
        lines.spill_files.lock().unwrap()[0].made =
            Instant::now().checked_sub(SPILL_FILE_REUSE).unwrap();
        let mut fresh = lines.spill_file().unwrap();
        assert!(fresh.made.elapsed() < SPILL_FILE_REUSE);
        assert!(contents(&mut fresh).is_empty());
        // One left unused in the pool is closed when the writing thread moves on.
        lines.give_back(fresh);
        lines.spill_files.lock().unwrap()[0].made =
            Instant::now().checked_sub(SPILL_FILE_REUSE).unwrap();
        lines.next_unit();
        assert!(lines.spill_files.lock().unwrap().is_empty());
    }

    fn lines_of(msg: Msg<JsonBatch>) -> Vec<u8> {
        match msg {
            Msg::Batch(JsonBatch::Lines(bytes, _)) => bytes,
            Msg::Spilled(mut file, _) => contents(&mut file),
            _ => panic!("not a batch"),
        }
    }

    #[test]
    fn a_build_stops_waiting_in_a_file_when_its_turn_comes() {
        let lines = JsonLines::default();
        let (tx, rx) = sync_channel(1);
        let turn = Arc::new(AtomicBool::new(false));
        let mut out = Outbox::new(&lines, tx, turn.clone());
        let batch = |b: &[u8]| JsonBatch::Lines(b.to_vec(), 1);
        // The channel's one place taken, the next two batches wait in a file.
        for b in [&b"1\n"[..], b"2\n", b"3\n"] {
            out.send(batch(b)).unwrap();
        }
        assert!(out.spill.is_some());
        assert_eq!(lines_of(rx.recv().unwrap()), b"1\n");
        // The writing thread comes to the build: the file goes out before the next batch,
        // which goes straight into the channel, as does every batch after it.
        turn.store(true, Ordering::Relaxed);
        let writer = std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Ok(msg) = rx.recv() {
                got.push(lines_of(msg));
            }
            got
        });
        for b in [&b"4\n"[..], b"5\n", b"6\n"] {
            out.send(batch(b)).unwrap();
            assert!(out.spill.is_none());
        }
        drop(out);
        let got = writer.join().unwrap();
        assert_eq!(got, [&b"2\n3\n"[..], b"4\n", b"5\n", b"6\n"]);
    }
}
