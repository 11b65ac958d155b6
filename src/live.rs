//! `ship --follow`: follow build logs and ship their events with checkpoints, so that a
//! restart (or a crash) resumes where the sinks' acknowledgements ended.
//!
//! One thread follows the paths (`build::follow::Follower`) and hands each event to every
//! sink's bounded queue, recording it in `Acks`; the sinks report back what they stored or
//! dead-lettered. A checkpoint task turns the follower's `Mark`s whose events are all
//! acknowledged into positions and saves them atomically (`checkpoint::Store`). A slow or
//! down sink fills its queue, and the follower then stops reading: the unread part of the
//! log files is the backlog, on disk, and memory stays bounded. On SIGTERM/SIGINT (`stop`)
//! the follower stops reading, the sinks flush for at most `shutdown_timeout`, the last
//! checkpoint is written.

use crate::build::follow::{Follower, Mark};
use crate::build::ParseReport;
use crate::checkpoint::{FilePosition, Positions, Store};
use crate::event::Event;
use crate::parse::ParseOptions;
use crate::pipeline::{PipelineReport, QUEUE_EVENTS};
use crate::sink::ack::Acks;
use crate::sink::{Sink, SinkReport};
use crate::spool::{Spool, WhenFull};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub struct FollowConfig {
    pub paths: Vec<PathBuf>,
    pub poll_interval: Duration,
    /// How long events wait for their JSON twins, and when the build is over.
    pub timing: crate::build::follow::FollowTiming,
    pub state_dir: Option<PathBuf>,
    pub checkpoint_interval: Duration,
    pub shutdown_timeout: Duration,
    /// Set by the signal handlers: stop reading and shut down.
    pub stop: Arc<AtomicBool>,
    /// Serve the shipper's own metrics here (`--metrics-listen`).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Counted in the metrics: events written to the dead-letter file.
    pub dead_letter: Option<crate::sink::dead_letter::DeadLetter>,
    /// The disk buffer (`--buffer-dir`), one spool per sink in a subdirectory.
    pub buffer: Option<BufferConfig>,
}

pub struct BufferConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub when_full: WhenFull,
}

/// Counters for `--metrics-listen` and the final summary.
#[derive(Default)]
pub struct LiveStats {
    pub events_read: AtomicU64,
    pub events_skipped: AtomicU64,
    pub checkpoints_written: AtomicU64,
    /// Unix seconds of the last checkpoint written (0: none yet).
    pub checkpoint_time: AtomicU64,
    pub sinks: Vec<SinkLedger>,
}

/// One sink's side of the books.
pub struct SinkLedger {
    pub name: String,
    /// None: the sink cannot acknowledge; queued counts as delivered.
    pub acks: Option<Arc<Acks>>,
    pub queued: AtomicU64,
    pub spool: Option<Arc<Spool>>,
}

impl LiveStats {
    /// The lowest outstanding seq of `source` over every sink.
    fn lowest_pending(&self, source: &str) -> Option<u64> {
        self.sinks
            .iter()
            .filter_map(|s| s.acks.as_ref()?.lowest_pending(source))
            .min()
    }
}

/// Marks not yet covered by a checkpoint, per source, oldest first.
#[derive(Default)]
struct Marks(Mutex<HashMap<String, VecDeque<Mark>>>);

impl Marks {
    fn push(&self, m: Mark) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let q = all.entry(m.source.clone()).or_default();
        if q.back() != Some(&m) {
            q.push_back(m);
        }
    }

    /// Moves into `pos` every mark whose events all sinks acknowledged. True: `pos` changed.
    fn advance(&self, acks: &LiveStats, pos: &mut Positions) -> bool {
        let mut changed = false;
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (source, q) in all.iter_mut() {
            let low = acks.lowest_pending(source);
            let mut last = None;
            while q
                .front()
                .is_some_and(|m| low.is_none_or(|l| m.next_seq <= l))
            {
                last = q.pop_front();
            }
            let Some(m) = last else { continue };
            // None: the path holds another file now (rotated); keep the old position.
            if let Some(p) = FilePosition::take(&m.path, m.dev, m.ino, m.offset, m.next_seq) {
                if pos.files.get(source) != Some(&p) {
                    pos.files.insert(source.clone(), p);
                    changed = true;
                }
            }
        }
        changed
    }
}

/// Follows `cfg.paths` and ships to `sinks` until `cfg.stop` is set.
pub fn run(
    opts: ParseOptions,
    mut sinks: Vec<Box<dyn Sink>>,
    cfg: FollowConfig,
) -> anyhow::Result<PipelineReport> {
    let store = cfg.state_dir.as_deref().map(Store::new).transpose()?;
    let mut positions = match &store {
        Some(s) => s.load()?,
        None => Positions::default(),
    };
    positions.version = 1;
    let mut ledgers = Vec::new();
    for s in &mut sinks {
        let acks = Arc::new(Acks::default());
        let acks = if s.acknowledge_to(acks.clone()) {
            Some(acks)
        } else {
            tracing::warn!(
                "{}: cannot acknowledge deliveries; checkpoints count its events as delivered once queued",
                s.name()
            );
            None
        };
        let spool = match &cfg.buffer {
            Some(b) => {
                let dir = b.dir.join(crate::metrics::sanitize_label(&s.name()));
                Some(Arc::new(Spool::open(
                    &dir,
                    &s.name(),
                    b.max_bytes,
                    b.when_full,
                )?))
            }
            None => None,
        };
        ledgers.push(SinkLedger {
            name: s.name(),
            acks,
            queued: AtomicU64::new(0),
            spool,
        });
    }
    let stats = Arc::new(LiveStats {
        sinks: ledgers,
        ..Default::default()
    });
    let acks = stats.clone();
    let marks = Arc::new(Marks::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        if let Some(addr) = cfg.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| crate::error::UsageError(format!("--metrics-listen {addr}: {e}")))?;
            tokio::spawn(crate::live_metrics::serve(listener, stats.clone(), cfg.dead_letter.clone()));
        }
        let mut senders = Vec::new();
        let mut tasks = Vec::new();
        let mut names = Vec::new();
        for (sink, ledger) in sinks.into_iter().zip(&stats.sinks) {
            let (tx, rx) = mpsc::channel::<Arc<Event>>(QUEUE_EVENTS);
            if let Some(spool) = &ledger.spool {
                tokio::spawn(spool.clone().feed(tx.clone(), cfg.stop.clone()));
            }
            senders.push(tx);
            names.push(sink.name());
            tasks.push(tokio::spawn(sink.run(rx)));
        }
        let resume = positions.files.clone();
        let ids = Arc::new(Mutex::new(positions.builds.clone()));
        let follower = {
            let (acks, marks, stats, stop) = (
                acks.clone(),
                marks.clone(),
                stats.clone(),
                cfg.stop.clone(),
            );
            let (paths, interval, ids) = (cfg.paths.clone(), cfg.poll_interval, ids.clone());
            let timing = cfg.timing;
            let tick_stats = stats.clone();
            tokio::task::spawn_blocking(move || {
                let resume = Resume { files: resume, ids };
                follow_paths(&paths, &opts, timing, &resume, interval, &stop, &stats, &mut |event| {
                    // The sinks keep it: taken out of the follower's queue, which drops what
                    // is left in its place.
                    let event = Arc::new(event.take());
                    for (tx, ledger) in senders.iter().zip(&acks.sinks) {
                        if let Some(a) = &ledger.acks {
                            a.sent(&event, 1);
                        }
                        match &ledger.spool {
                            Some(sp) => sp.push(tx, event.clone(), &stop, ledger.acks.as_deref())?,
                            None => send(tx, event.clone(), &stop)?,
                        }
                        ledger.queued.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                }, &mut |m| marks.push(m), &|| {
                    for l in &tick_stats.sinks {
                        if let Some(sp) = &l.spool {
                            sp.tick();
                        }
                    }
                })
            })
        };
        // Checkpoints while running.
        let saver = {
            let (acks, marks, stats, stop, ids) = (
                acks.clone(),
                marks.clone(),
                stats.clone(),
                cfg.stop.clone(),
                ids.clone(),
            );
            let mut positions = positions.clone();
            let store = cfg.state_dir.as_deref().map(Store::new).transpose()?;
            let every = cfg.checkpoint_interval;
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(every).await;
                    if let Some(s) = &store {
                        // Ids first: a mark exists only after its build's id was recorded.
                        positions.builds = lock(&ids).clone();
                        save_if_changed(s, &marks, &acks, &mut positions, &stats);
                    }
                }
                positions
            })
        };
        let parse = follower.await?;
        // Also when every sink is gone: the checkpoint task ends with its next round.
        cfg.stop.store(true, Ordering::SeqCst);
        let started = Instant::now();
        // The follower is done (stopped, or every sink is gone): the queues close, the
        // sinks flush what they hold.
        let mut reports = Vec::new();
        for (t, name) in tasks.into_iter().zip(names) {
            let left = cfg.shutdown_timeout.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, t).await {
                Ok(r) => reports.push(r??),
                Err(_) => {
                    eprintln!(
                        "buildlog: {name}: not done after --shutdown-timeout; what it still held is sent again after a restart"
                    );
                    reports.push(SinkReport::new(name));
                }
            }
        }
        let mut positions = saver.await.unwrap_or(positions);
        if let Some(s) = &store {
            positions.builds = lock(&ids).clone();
            marks.advance(&acks, &mut positions);
            s.save(&positions)?;
            stats.checkpoints_written.fetch_add(1, Ordering::Relaxed);
        }
        anyhow::Ok(PipelineReport {
            parse,
            sinks: reports,
        })
    });
    // Sink tasks still running after the timeout are abandoned, not awaited.
    rt.shutdown_background();
    eprintln!(
        "buildlog: followed {} files: {} events read, {} skipped as delivered before, {} checkpoints written",
        result.as_ref().map(|r| r.parse.files).unwrap_or_default(),
        stats.events_read.load(Ordering::Relaxed),
        stats.events_skipped.load(Ordering::Relaxed),
        stats.checkpoints_written.load(Ordering::Relaxed),
    );
    for l in &stats.sinks {
        if let Some(sp) = &l.spool {
            eprintln!(
                "buildlog: {}: disk buffer: {} bytes left for the next run, {} events dropped when full",
                l.name,
                sp.bytes(),
                sp.dropped()
            );
        }
    }
    result
}

fn save_if_changed(
    store: &Store,
    marks: &Marks,
    acks: &LiveStats,
    positions: &mut Positions,
    stats: &LiveStats,
) {
    if !marks.advance(acks, positions) {
        return;
    }
    match store.save(positions) {
        Ok(()) => {
            stats.checkpoints_written.fetch_add(1, Ordering::Relaxed);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            stats.checkpoint_time.store(now, Ordering::Relaxed);
        }
        Err(e) => tracing::error!("writing the checkpoint: {e:#}"),
    }
}

/// Hands `event` to one sink's queue, waiting while it is full, unless asked to stop.
fn send(
    tx: &mpsc::Sender<Arc<Event>>,
    event: Arc<Event>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut event = event;
    loop {
        match tx.try_send(event) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(std::io::Error::other("a sink stopped early"))
            }
            Err(mpsc::error::TrySendError::Full(e)) => {
                if stop.load(Ordering::SeqCst) {
                    return Err(std::io::Error::other("stopping"));
                }
                event = e;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a restart resumes from: file positions, and each followed build's id.
struct Resume {
    files: std::collections::BTreeMap<String, FilePosition>,
    ids: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
}

#[allow(clippy::too_many_arguments)]
fn follow_paths(
    paths: &[PathBuf],
    opts: &ParseOptions,
    timing: crate::build::follow::FollowTiming,
    resume: &Resume,
    interval: Duration,
    stop: &AtomicBool,
    stats: &LiveStats,
    emit: &mut dyn FnMut(&mut Event) -> std::io::Result<()>,
    mark: &mut dyn FnMut(Mark),
    tick: &dyn Fn(),
) -> ParseReport {
    let files: HashMap<String, FilePosition> = resume.files.clone().into_iter().collect();
    let mut followers: Vec<(String, Follower)> = paths
        .iter()
        .map(|p| {
            let key = p.display().to_string();
            let id = lock(&resume.ids).get(&key).cloned();
            (
                key,
                Follower::new(p, opts, files.clone())
                    .with_correlation_id(id)
                    .with_timing(timing),
            )
        })
        .collect();
    'outer: loop {
        let stopping = stop.load(Ordering::SeqCst);
        for (key, f) in &mut followers {
            let before = f.report().events;
            let skipped_before = f.skipped;
            let mut known = lock(&resume.ids).contains_key(key.as_str());
            let step = |f: &mut Follower,
                        emit: &mut dyn FnMut(&mut Event) -> std::io::Result<()>,
                        mark: &mut dyn FnMut(Mark)| {
                if stopping {
                    f.stop(emit, mark)
                } else {
                    f.poll(emit, mark)
                }
            };
            let r = step(
                f,
                &mut |e| {
                    if !known {
                        // Recorded before the event goes out, so before any mark covers it.
                        lock(&resume.ids).insert(key.clone(), e.correlation_id.to_string());
                        known = true;
                    }
                    emit(e)?;
                    if !stopping && stop.load(Ordering::SeqCst) {
                        // Stop reading now, not at the end of a long backlog (the event in
                        // hand is sent: the follower has let go of it); the stop step that
                        // follows hands on what was held only for time (JSON twins).
                        return Err(std::io::Error::other("stopping"));
                    }
                    Ok(())
                },
                mark,
            );
            stats
                .events_read
                .fetch_add(f.report().events - before, Ordering::Relaxed);
            // Counted as it happens, so the live metric shows it, not only the exit summary.
            stats
                .events_skipped
                .fetch_add(f.skipped - skipped_before, Ordering::Relaxed);
            if r.is_err() {
                if !stopping && stop.load(Ordering::SeqCst) {
                    // Cut short by the stop request: the next round is the stop step.
                    continue 'outer;
                }
                break 'outer;
            }
        }
        tick();
        if stopping || followers.iter().all(|(_, f)| f.finished()) {
            break;
        }
        if !followers.iter().any(|(_, f)| f.behind()) {
            std::thread::sleep(interval);
        }
    }
    let mut report = ParseReport::default();
    for (_, f) in followers {
        let r = f.into_report();
        report.files += r.files;
        report.bytes += r.bytes;
        report.events += r.events;
        report.errors.extend(r.errors);
        report.warnings.extend(r.warnings);
    }
    report
}
