//! The Loki sink as a service: batches events by bytes and wait time, keeps several requests
//! in flight, retries what may succeed later, dead-letters what Loki refuses, and counts it all.

use super::client::Client;
use super::config::{LokiConfig, LokiEncoding};
use super::encoder::{encode, Batch, Body, Encoder, StreamBatch};
use crate::event::Event;
use crate::sink::ack::Acks;
use crate::sink::dead_letter::DeadLetter;
use crate::sink::retry::Backoff;
use crate::sink::retry::{retry, Outcome};
use crate::sink::{Sink, SinkFuture, SinkReport, TAKE_AT_ONCE};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Loki accepts an entry only within one hour behind the newest entry of its stream. A batch
/// whose entries of some stream are newer than this past an in-flight batch's entries of the
/// same stream waits until that batch is done, so it cannot land first and push them out of
/// the window (historical imports of several builds hit this; one build rarely does).
const ORDER_WINDOW_NS: i128 = 30 * 60 * 1_000_000_000;

pub struct LokiSink {
    cfg: LokiConfig,
    client: Client,
    dead_letter: DeadLetter,
    acks: Option<Arc<Acks>>,
}

/// What one request (and its retries) did with its events.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    delivered: u64,
    retried: u64,
    dead_lettered: u64,
    dropped: u64,
}

struct Shared {
    client: Client,
    encoder: Encoder,
    encoding: LokiEncoding,
    gzip: bool,
    backoff: Backoff,
    dead_letter: DeadLetter,
    acks: Option<Arc<Acks>>,
}

enum Final {
    Stored,
    GaveUp(String),
    Rejected(String),
}

type Ranges = HashMap<String, (i128, i128)>;

impl LokiSink {
    pub fn new(cfg: LokiConfig, http: reqwest::Client, dead_letter: DeadLetter) -> Self {
        let client = Client::new(
            http,
            cfg.push_url.clone(),
            cfg.tenant.clone(),
            cfg.auth.clone(),
        );
        LokiSink {
            cfg,
            client,
            dead_letter,
            acks: None,
        }
    }

    async fn serve(self, mut events: mpsc::Receiver<Arc<Event>>) -> anyhow::Result<SinkReport> {
        let mut report = SinkReport::new("loki");
        let encoder = Encoder::new(&self.cfg);
        let shared = Arc::new(Shared {
            client: self.client,
            encoder: encoder.clone(),
            encoding: self.cfg.encoding,
            gzip: self.cfg.gzip,
            backoff: self.cfg.backoff,
            dead_letter: self.dead_letter,
            acks: self.acks,
        });
        let mut flight = InFlight {
            tasks: JoinSet::new(),
            ranges: HashMap::new(),
            next_id: 0,
            limit: self.cfg.concurrency,
        };
        let new_batch = || Batch::with_room(self.cfg.batch_bytes);
        let mut batch = new_batch();
        let mut deadline: Option<Instant> = None;
        let mut taken = Vec::with_capacity(TAKE_AT_ONCE);
        loop {
            tokio::select! {
                biased;
                Some(done) = flight.tasks.join_next(), if !flight.tasks.is_empty() => {
                    flight.account(done?, &mut report);
                }
                received = crate::sink::take_events(&mut events, &mut taken, TAKE_AT_ONCE) => {
                    if received == 0 {
                        break;
                    }
                    for event in taken.drain(..) {
                        report.received += 1;
                        if batch.is_empty() {
                            deadline = Some(Instant::now() + self.cfg.batch_wait);
                        }
                        batch.push(&encoder, event);
                        if batch.bytes() >= self.cfg.batch_bytes {
                            deadline = None;
                            flight.dispatch(std::mem::replace(&mut batch, new_batch()), &shared, &mut report).await?;
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    deadline = None;
                    flight.dispatch(std::mem::replace(&mut batch, new_batch()), &shared, &mut report).await?;
                }
            }
        }
        if !batch.is_empty() {
            flight.dispatch(batch, &shared, &mut report).await?;
        }
        while let Some(done) = flight.tasks.join_next().await {
            flight.account(done?, &mut report);
        }
        Ok(report)
    }
}

impl Sink for LokiSink {
    fn name(&self) -> String {
        "loki".into()
    }
    fn run(self: Box<Self>, events: mpsc::Receiver<Arc<Event>>) -> SinkFuture {
        Box::pin(self.serve(events))
    }
    fn acknowledge_to(&mut self, acks: Arc<Acks>) -> bool {
        self.acks = Some(acks);
        true
    }
}

struct InFlight {
    tasks: JoinSet<(u64, Tally)>,
    /// Per request in flight: the time range of each of its streams.
    ranges: HashMap<u64, Ranges>,
    next_id: u64,
    limit: usize,
}

impl InFlight {
    fn account(&mut self, (id, t): (u64, Tally), report: &mut SinkReport) {
        self.ranges.remove(&id);
        report.delivered += t.delivered;
        report.retried += t.retried;
        report.dead_lettered += t.dead_lettered;
        report.dropped += t.dropped;
    }

    fn must_wait(&self, mine: &Ranges) -> bool {
        self.tasks.len() >= self.limit
            || self.ranges.values().any(|theirs| {
                mine.iter().any(|(labels, &(_, newest))| {
                    theirs
                        .get(labels)
                        .is_some_and(|&(oldest, _)| newest > oldest + ORDER_WINDOW_NS)
                })
            })
    }

    async fn dispatch(
        &mut self,
        batch: Batch,
        shared: &Arc<Shared>,
        report: &mut SinkReport,
    ) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let streams = batch.finish();
        let mine: Ranges = streams
            .iter()
            .map(|s| (s.labels.clone(), s.time_range()))
            .collect();
        while !self.tasks.is_empty() && self.must_wait(&mine) {
            if let Some(done) = self.tasks.join_next().await {
                self.account(done?, report);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.ranges.insert(id, mine);
        let shared = shared.clone();
        self.tasks
            .spawn(async move { (id, deliver(&shared, streams).await) });
        Ok(())
    }
}

/// Sends one batch; on a rejection of a request with several streams, sends each stream on
/// its own so that only the streams Loki refuses are dead-lettered (Loki stores the valid
/// streams of a rejected request, and stores a resent entry once).
async fn deliver(shared: &Shared, mut streams: Vec<StreamBatch>) -> Tally {
    let mut tally = Tally::default();
    let body = {
        let all: Vec<&StreamBatch> = streams.iter().collect();
        encode(&shared.encoder, &all, shared.encoding, shared.gzip)
    };
    // Only the body and the events (for the dead-letter file) are kept while the request
    // is in flight and retried; the entries can be made again from the events if needed.
    for s in &mut streams {
        s.drop_entries();
    }
    let all: Vec<&StreamBatch> = streams.iter().collect();
    match send(shared, &body, &mut tally).await {
        Final::Stored => {
            tally.delivered += count(&all);
            ack(shared, &all);
        }
        Final::GaveUp(reason) => dead_letter(shared, &all, &reason, &mut tally),
        Final::Rejected(reason) if all.len() == 1 => dead_letter(shared, &all, &reason, &mut tally),
        Final::Rejected(_) => {
            drop(body);
            for s in &all {
                let one = [*s];
                let body = encode(
                    &shared.encoder,
                    &[&s.rebuild(&shared.encoder)],
                    shared.encoding,
                    shared.gzip,
                );
                match send(shared, &body, &mut tally).await {
                    Final::Stored => {
                        tally.delivered += count(&one);
                        ack(shared, &one);
                    }
                    Final::GaveUp(reason) | Final::Rejected(reason) => {
                        dead_letter(shared, &one, &reason, &mut tally)
                    }
                }
            }
        }
    }
    tally
}

fn ack(shared: &Shared, streams: &[&StreamBatch]) {
    if let Some(a) = &shared.acks {
        for s in streams {
            a.done_all(&s.events);
        }
    }
}

fn count(streams: &[&StreamBatch]) -> u64 {
    streams.iter().map(|s| s.events.len() as u64).sum()
}

/// Sends one request with the shared retry loop.
async fn send(shared: &Shared, body: &Body, tally: &mut Tally) -> Final {
    let out = retry(&shared.backoff, "loki", |_| shared.client.push(body)).await;
    tally.retried += u64::from(out.retries());
    match out {
        Outcome::Done { .. } => Final::Stored,
        Outcome::Refused { reason, .. } => Final::Rejected(reason),
        Outcome::GaveUp { reason, .. } => Final::GaveUp(reason),
    }
}

fn dead_letter(shared: &Shared, streams: &[&StreamBatch], reason: &str, tally: &mut Tally) {
    let n = count(streams);
    tracing::warn!("loki: {n} entries not delivered: {reason}");
    for s in streams {
        match shared.dead_letter.write("loki", reason, &s.events) {
            Ok(()) => {
                tally.dead_lettered += s.events.len() as u64;
                // Safely on disk: acknowledged (a dropped event is not, and is sent again).
                ack(shared, &[*s]);
            }
            Err(e) => {
                tracing::error!(
                    "loki: could not write {} entries to the dead-letter file: {e}",
                    s.events.len()
                );
                tally.dropped += s.events.len() as u64;
            }
        }
    }
}
