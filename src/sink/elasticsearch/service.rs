//! The sink: batches encoded documents into bulk requests (by bytes, by count, and by time
//! for follow mode), keeps several in flight, reads every item of every answer, retries only
//! what is worth retrying and dead-letters the rest with the server's reason.

use super::client::{BulkClient, BulkOutcome};
use super::config::EsConfig;
use super::encoder::{Action, Encoder};
use crate::event::Event;
use crate::sink::ack::Acks;
use crate::sink::dead_letter::DeadLetter;
use crate::sink::retry::Backoff;
use crate::sink::{Sink, SinkFuture, SinkReport, TAKE_AT_ONCE};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub const SINK_NAME: &str = "elasticsearch";

pub struct ElasticsearchSink {
    cfg: EsConfig,
    encoder: Encoder,
    ctx: Arc<Ctx>,
}

/// What every request task shares.
struct Ctx {
    client: BulkClient,
    backoff: Backoff,
    action: Action,
    dead_letter: DeadLetter,
    acks: Option<Arc<Acks>>,
    /// Batches whose request is done, emptied, for the next requests: a new 5 MiB body had
    /// its pages faulted in as it was written (4% of the samples of `ship --elasticsearch`).
    spare: Mutex<Vec<Batch>>,
    /// The most batches `spare` keeps ([`spare_batches`]).
    spare_max: usize,
    max_bytes: usize,
    max_docs: usize,
}

impl Ctx {
    /// An empty batch: a spare one, or a new one with room for a full request.
    fn batch(&self) -> Batch {
        let spare = self.spare.lock().expect("not poisoned").pop();
        spare.unwrap_or_else(|| Batch::with_room(self.max_bytes, self.max_docs))
    }

    /// Keeps `batch`, emptied, for a later request (unless enough are kept, or it grew
    /// beyond what a new one reserves).
    fn recycle(&self, mut batch: Batch) {
        if batch.body.capacity() > ROOM_BYTES + CROSSING_ROOM {
            return;
        }
        batch.clear();
        let mut spare = self.spare.lock().expect("not poisoned");
        if spare.len() < self.spare_max {
            spare.push(batch);
        }
    }
}

impl ElasticsearchSink {
    pub fn new(cfg: EsConfig, http: reqwest::Client, dead_letter: DeadLetter) -> Self {
        let encoder = Encoder::new(
            cfg.target.clone(),
            cfg.action,
            cfg.schema,
            cfg.service_name.clone(),
        )
        .with_host_name(cfg.host_name.clone());
        let ctx = Arc::new(Ctx {
            client: BulkClient {
                http,
                url: cfg.bulk_url.clone(),
                auth: cfg.auth.clone(),
                gzip: cfg.gzip,
            },
            backoff: cfg.backoff,
            action: cfg.action,
            dead_letter,
            acks: None,
            spare: Mutex::new(Vec::new()),
            spare_max: spare_batches(cfg.max_bytes, cfg.concurrency),
            max_bytes: cfg.max_bytes,
            max_docs: cfg.max_docs,
        });
        ElasticsearchSink { cfg, encoder, ctx }
    }
}

/// The most room a new batch reserves (what `--es-max-bytes` and `--es-max-docs` allow
/// beyond it grows as it is used).
const ROOM_BYTES: usize = 16 << 20;
const ROOM_DOCS: usize = 16_384;
/// Room past `--es-max-bytes` for the document that crosses it: it is written before it is
/// known not to fit (and then moved to the next request), which without this room would
/// reallocate, and copy, the whole body of nearly every request cut by bytes.
const CROSSING_ROOM: usize = 64 << 10;
/// The most room for requests' bodies the emptied batches kept for later requests hold in
/// all, each with its `CROSSING_ROOM` besides (they stay with the process once a burst is
/// over).
const SPARE_BYTES: usize = 32 << 20;

/// How many emptied batches are kept: those in flight and the one being filled, within
/// `SPARE_BYTES` of bodies, at least one.
fn spare_batches(max_bytes: usize, concurrency: usize) -> usize {
    (SPARE_BYTES / max_bytes.clamp(1, ROOM_BYTES)).clamp(1, concurrency + 1)
}

/// Documents of one bulk request: the events and their encoded lines, back to back.
#[derive(Default)]
struct Batch {
    events: Vec<Arc<Event>>,
    body: Vec<u8>,
    /// End offset in `body` of each document's two lines.
    ends: Vec<usize>,
}

impl Batch {
    /// An empty batch with room for a full request, so that its body is not copied as it
    /// grows (reallocating a 5 MiB body a document at a time was 4% of `ship --elasticsearch`).
    fn with_room(max_bytes: usize, max_docs: usize) -> Self {
        Batch {
            events: Vec::with_capacity(max_docs.min(ROOM_DOCS)),
            body: Vec::with_capacity(max_bytes.min(ROOM_BYTES) + CROSSING_ROOM),
            ends: Vec::with_capacity(max_docs.min(ROOM_DOCS)),
        }
    }
    fn clear(&mut self) {
        self.events.clear();
        self.body.clear();
        self.ends.clear();
    }
    fn len(&self) -> usize {
        self.events.len()
    }
    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
    #[cfg(test)]
    fn push(&mut self, event: Arc<Event>, lines: &[u8]) {
        self.body.extend_from_slice(lines);
        self.push_written(event);
    }
    /// Adds `event`, whose lines were written at the end of `body`.
    fn push_written(&mut self, event: Arc<Event>) {
        self.ends.push(self.body.len());
        self.events.push(event);
    }
    fn item(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.body[start..self.ends[i]]
    }
    /// The body holding only the documents `idx`.
    fn body_of(&self, idx: &[usize]) -> std::borrow::Cow<'_, [u8]> {
        if idx.len() == self.len() {
            return std::borrow::Cow::Borrowed(&self.body);
        }
        let mut b = Vec::with_capacity(idx.iter().map(|&i| self.item(i).len()).sum());
        for &i in idx {
            b.extend_from_slice(self.item(i));
        }
        std::borrow::Cow::Owned(b)
    }
}

/// What became of one batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    delivered: u64,
    already_present: u64,
    retried: u64,
    dead_lettered: u64,
}

impl Sink for ElasticsearchSink {
    fn name(&self) -> String {
        SINK_NAME.into()
    }

    fn acknowledge_to(&mut self, acks: Arc<Acks>) -> bool {
        // Set before `run`: nothing else holds the context yet.
        match Arc::get_mut(&mut self.ctx) {
            Some(ctx) => {
                ctx.acks = Some(acks);
                true
            }
            None => false,
        }
    }

    fn run(self: Box<Self>, mut events: mpsc::Receiver<Arc<Event>>) -> SinkFuture {
        Box::pin(async move {
            let ElasticsearchSink { cfg, encoder, ctx } = *self;
            let mut out = Requests {
                ctx,
                inflight: JoinSet::new(),
                report: SinkReport::new(SINK_NAME),
                concurrency: cfg.concurrency,
            };
            let mut batch = out.ctx.batch();
            let mut deadline: Option<Instant> = None;
            let mut scratch = Vec::with_capacity(4096);
            let mut taken = Vec::with_capacity(TAKE_AT_ONCE);
            loop {
                let received = match deadline {
                    None => crate::sink::take_events(&mut events, &mut taken, TAKE_AT_ONCE).await,
                    Some(d) => {
                        let next = crate::sink::take_events(&mut events, &mut taken, TAKE_AT_ONCE);
                        match tokio::time::timeout_at(d, next).await {
                            Ok(received) => received,
                            Err(_) => {
                                // Nothing more arrived in time (follow mode): send what we hold.
                                out.send(&mut batch).await?;
                                deadline = None;
                                continue;
                            }
                        }
                    }
                };
                if received == 0 {
                    break;
                }
                for event in taken.drain(..) {
                    out.report.received += 1;
                    // Written in place; moved to the next request in the rare case it does
                    // not fit in this one.
                    let start = batch.body.len();
                    encoder.encode(&event, &mut batch.body);
                    if !batch.is_empty() && batch.body.len() > cfg.max_bytes {
                        scratch.clear();
                        scratch.extend_from_slice(&batch.body[start..]);
                        batch.body.truncate(start);
                        out.send(&mut batch).await?;
                        batch.body.extend_from_slice(&scratch);
                    }
                    if batch.is_empty() {
                        deadline = Some(Instant::now() + cfg.flush_interval);
                    }
                    batch.push_written(event);
                    if batch.len() >= cfg.max_docs || batch.body.len() >= cfg.max_bytes {
                        out.send(&mut batch).await?;
                        deadline = None;
                    }
                }
            }
            out.send(&mut batch).await?;
            out.finish().await
        })
    }
}

/// The bulk requests in flight, and what the finished ones came to.
struct Requests {
    ctx: Arc<Ctx>,
    inflight: JoinSet<Tally>,
    report: SinkReport,
    concurrency: usize,
}

impl Requests {
    /// Starts sending what `batch` holds (leaving an empty one in its place), first waiting
    /// for a free slot when `concurrency` requests are in flight: a slow server slows the
    /// parser down.
    async fn send(&mut self, batch: &mut Batch) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        while self.inflight.len() >= self.concurrency {
            if let Some(t) = self.inflight.join_next().await {
                add(&mut self.report, t?);
            }
        }
        self.inflight.spawn(send_batch(
            self.ctx.clone(),
            std::mem::replace(batch, self.ctx.batch()),
        ));
        Ok(())
    }

    async fn finish(mut self) -> anyhow::Result<SinkReport> {
        while let Some(t) = self.inflight.join_next().await {
            add(&mut self.report, t?);
        }
        Ok(self.report)
    }
}

fn add(report: &mut SinkReport, t: Tally) {
    report.delivered += t.delivered;
    report.already_present += t.already_present;
    report.retried += t.retried;
    report.dead_lettered += t.dead_lettered;
}

/// Sends one batch until every document is stored, already present, or dead-lettered.
/// Each group of documents keeps its own retry count; a 413 splits its group in two.
async fn send_batch(ctx: Arc<Ctx>, batch: Batch) -> Tally {
    let mut tally = Tally::default();
    let mut work: Vec<(Vec<usize>, u32)> = vec![((0..batch.len()).collect(), 0)];
    while let Some((pending, attempt)) = work.pop() {
        let body = batch.body_of(&pending);
        let outcome = ctx.client.send(&body, pending.len()).await;
        drop(body);
        let (again, reason, retry_after) = match outcome {
            BulkOutcome::Items(items) => {
                let mut again = Vec::new();
                let mut last = String::new();
                let mut stored = Vec::with_capacity(pending.len());
                for (&i, item) in pending.iter().zip(&items) {
                    match item.status {
                        200..=299 => {
                            tally.delivered += 1;
                            stored.push(i);
                        }
                        // `create` of an `_id` the index already holds: stored by an earlier run.
                        409 if ctx.action == Action::Create => {
                            tally.delivered += 1;
                            tally.already_present += 1;
                            stored.push(i);
                        }
                        429 | 500..=599 => {
                            last = item_reason(item.status, item.error.as_deref());
                            again.push(i);
                        }
                        s => {
                            let reason = item_reason(s, item.error.as_deref());
                            reject(&ctx, &mut tally, &batch, &[i], &reason);
                        }
                    }
                }
                ack(&ctx, &batch, &stored);
                (again, last, None)
            }
            BulkOutcome::Retry {
                reason,
                retry_after,
            } => (pending, reason, retry_after),
            BulkOutcome::TooLarge { reason } => {
                if pending.len() == 1 {
                    reject(&ctx, &mut tally, &batch, &pending, &reason);
                } else {
                    let mut a = pending;
                    let b = a.split_off(a.len() / 2);
                    tracing::warn!("elasticsearch: {reason}; splitting the request in two");
                    work.push((b, attempt));
                    work.push((a, attempt));
                }
                continue;
            }
            BulkOutcome::Rejected { reason } => {
                reject(&ctx, &mut tally, &batch, &pending, &reason);
                continue;
            }
        };
        if again.is_empty() {
            continue;
        }
        // The shared retry policy, carried on with the documents that still need it.
        let mut retries = crate::sink::retry::Retries::resume(&ctx.backoff, SINK_NAME, attempt);
        let why = format!("{} documents: {reason}", again.len());
        if let Err(gave_up) = retries.wait(&why, retry_after).await {
            let reason = gave_up.replacen(&why, &reason, 1);
            reject(&ctx, &mut tally, &batch, &again, &reason);
            continue;
        }
        tally.retried += again.len() as u64;
        work.push((again, retries.count));
    }
    ctx.recycle(batch);
    tally
}

fn item_reason(status: u16, error: Option<&str>) -> String {
    match error {
        Some(e) => format!("{status} {e}"),
        None => format!("{status}"),
    }
}

/// Dead-letters the documents `idx` of `batch` for `reason`.
fn reject(ctx: &Ctx, tally: &mut Tally, batch: &Batch, idx: &[usize], reason: &str) {
    let events: Vec<Arc<Event>> = idx.iter().map(|&i| batch.events[i].clone()).collect();
    tally.dead_lettered += events.len() as u64;
    match ctx.dead_letter.write(SINK_NAME, reason, &events) {
        Err(e) => tracing::error!(
            "elasticsearch: writing {} events to the dead-letter file failed: {e}",
            events.len()
        ),
        // Safely on disk: acknowledged (what could not be written is sent again after a restart).
        Ok(()) => {
            if let Some(a) = &ctx.acks {
                a.done_all(&events);
            }
        }
    }
}

/// Acknowledges the stored documents `idx` of `batch` (under one lock).
fn ack(ctx: &Ctx, batch: &Batch, idx: &[usize]) {
    if let Some(a) = &ctx.acks {
        a.done_all(idx.iter().map(|&i| &batch.events[i]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_batches_are_those_in_flight_within_32_mib() {
        // The defaults: 5 MiB bodies, 4 in flight and one being filled.
        assert_eq!(spare_batches(5 << 20, 4), 5);
        assert_eq!(spare_batches(5 << 20, 64), 6);
        assert_eq!(spare_batches(16 << 20, 4), 2);
        // A body larger than a new batch reserves counts as the reserved 16 MiB.
        assert_eq!(spare_batches(1 << 30, 4), 2);
        assert_eq!(spare_batches(1024, 1), 2);
    }

    #[test]
    fn batch_items_and_sub_bodies() {
        let mut b = Batch::default();
        for (i, lines) in ["a\nA\n", "bb\nB\n", "c\nCC\n"].iter().enumerate() {
            let e = Arc::new(Event::new(
                crate::event::EventType::Output,
                crate::event::Level::Info,
                "F",
                i.to_string(),
            ));
            b.push(e, lines.as_bytes());
        }
        assert_eq!(b.item(1), b"bb\nB\n");
        assert_eq!(&*b.body_of(&[0, 2]), b"a\nA\nc\nCC\n");
        assert_eq!(&*b.body_of(&[0, 1, 2]), b.body.as_slice());
    }
}
