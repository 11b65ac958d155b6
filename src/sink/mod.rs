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
