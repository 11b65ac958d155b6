//! Sinks: where events go. Each sink is kept in three parts, as in Vector: its config
//! (CLI flags and environment), its encoder (events to request bodies), and its client
//! (the service that sends, retries and dead-letters).

pub mod ack;
pub mod compression;
pub mod dead_letter;
pub mod elasticsearch;
pub mod forward;
pub mod http;
pub mod loki;
pub mod otlp;
pub mod retry;
pub mod stdout;

use crate::event::Event;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a sink did with the events it was given. Every event ends up in exactly one of
/// `delivered`, `dead_lettered` or `dropped`; `retried` counts attempts, not events.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SinkReport {
    pub name: String,
    pub received: u64,
    pub delivered: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    /// Events the server already had (a 409 on an Elasticsearch `create`): delivered earlier.
    pub already_present: u64,
}

impl SinkReport {
    pub fn new(name: impl Into<String>) -> Self {
        SinkReport {
            name: name.into(),
            ..Default::default()
        }
    }
    /// True when every event the sink received is stored.
    pub fn all_delivered(&self) -> bool {
        self.dead_lettered == 0 && self.dropped == 0
    }
}

/// Events a sink takes from its queue per wake-up (`Receiver::recv_many`): the parser, parked
/// on a full queue, is then woken once per this many events instead of once per event.
pub const TAKE_AT_ONCE: usize = 512;

/// How long a sink that woke up to only a few events lets the producer go on before taking
/// them (`take_events`).
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

/// Takes up to `limit` waiting events into `taken` (`Receiver::recv_many`); 0 once the queue
/// is closed and empty. A sink woken by the first of a run of events would otherwise take it
/// alone and sleep again, to be woken by the next: `ship` pinned to one core switched threads
/// every eleven events (21,000 times for build 13, 45% of its CPU time in the kernel). So when
/// it woke to fewer than `limit / 8`, it waits `GATHER` and takes what came meanwhile, without
/// waiting again. Safe to cancel (a `select!` branch): events a cancelled call took are in
/// `taken`, and the next call returns them at once.
pub async fn take_events(
    events: &mut mpsc::Receiver<Arc<Event>>,
    taken: &mut Vec<Arc<Event>>,
    limit: usize,
) -> usize {
    if !taken.is_empty() {
        return taken.len();
    }
    let n = events.recv_many(taken, limit).await;
    if n == 0 || n >= limit / 8 {
        return n;
    }
    tokio::time::sleep(GATHER).await;
    while taken.len() < limit {
        match events.try_recv() {
            Ok(e) => taken.push(e),
            Err(_) => break,
        }
    }
    taken.len()
}

pub type SinkFuture = Pin<Box<dyn Future<Output = anyhow::Result<SinkReport>> + Send>>;

/// A destination for events. `run` consumes events until the channel closes, flushes what
/// it holds, and reports. Events arrive in the order the parser produced them.
pub trait Sink: Send {
    fn name(&self) -> String;
    fn run(self: Box<Self>, events: mpsc::Receiver<Arc<Event>>) -> SinkFuture;
    /// Asks the sink to report every event it finished with (stored or dead-lettered) to
    /// `acks`, for checkpoints. False: the sink cannot; the pipeline then counts an event
    /// as acknowledged once the sink received it.
    fn acknowledge_to(&mut self, _acks: Arc<ack::Acks>) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventType, Level};

    fn ev(n: u64) -> Arc<Event> {
        let mut e = Event::new(EventType::Output, Level::Info, "f", "m");
        e.seq = n;
        Arc::new(e)
    }

    fn seqs(taken: &[Arc<Event>]) -> Vec<u64> {
        taken.iter().map(|e| e.seq).collect()
    }

    /// Woken by one event, the sink takes it with those that follow within `GATHER`, in
    /// order; woken to many, it takes them at once; a call cancelled while it gathers leaves
    /// its events in `taken`, returned by the next call even once the queue is closed.
    #[tokio::test]
    async fn a_sink_gathers_a_run_of_events_and_loses_none_when_cancelled() {
        let (tx, mut rx) = mpsc::channel(4096);
        let mut taken = Vec::new();

        // One event, then (once the sink has it) 99 more, within the gathering wait.
        let producer = {
            let tx = tx.clone();
            tokio::spawn(async move {
                tx.send(ev(0)).await.unwrap();
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                for n in 1..100 {
                    tx.try_send(ev(n)).unwrap();
                }
            })
        };
        let n = take_events(&mut rx, &mut taken, TAKE_AT_ONCE).await;
        producer.await.unwrap();
        assert_eq!(n, 100);
        assert_eq!(seqs(&taken), (0..100).collect::<Vec<_>>());
        taken.clear();

        // Many waiting: no wait, at most `limit`.
        for n in 100..700 {
            tx.try_send(ev(n)).unwrap();
        }
        let started = std::time::Instant::now();
        assert_eq!(
            take_events(&mut rx, &mut taken, TAKE_AT_ONCE).await,
            TAKE_AT_ONCE
        );
        assert_eq!(seqs(&taken), (100..612).collect::<Vec<_>>());
        taken.clear();
        assert_eq!(take_events(&mut rx, &mut taken, TAKE_AT_ONCE).await, 88);
        assert!(started.elapsed() < GATHER * 50, "{:?}", started.elapsed());
        taken.clear();

        // Cancelled while gathering: the event stays in `taken`.
        tx.try_send(ev(700)).unwrap();
        tokio::select! {
            biased;
            _ = take_events(&mut rx, &mut taken, TAKE_AT_ONCE) => panic!("it was gathering"),
            _ = tokio::task::yield_now() => {}
        }
        assert_eq!(seqs(&taken), [700]);
        drop(tx);
        assert_eq!(take_events(&mut rx, &mut taken, TAKE_AT_ONCE).await, 1);
        taken.clear();
        assert_eq!(
            take_events(&mut rx, &mut taken, TAKE_AT_ONCE).await,
            0,
            "closed"
        );
    }
}
