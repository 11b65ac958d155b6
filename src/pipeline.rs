//! source -> parse -> enrich -> fan-out to sinks, with bounded queues.
//!
//! The parser runs on its own thread (it is synchronous and CPU-bound); each sink runs as a
//! tokio task behind a bounded channel. A slow sink slows the parser down (backpressure)
//! rather than letting memory grow.

use crate::build::{self, ParseReport};
use crate::event::Event;
use crate::parse::ParseOptions;
use crate::sink::{Sink, SinkReport};
use crate::source::Input;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Events buffered per sink before the parser waits.
pub const QUEUE_EVENTS: usize = 4096;

#[derive(Debug, Default)]
pub struct PipelineReport {
    pub parse: ParseReport,
    pub sinks: Vec<SinkReport>,
}

/// Parses `inputs` and delivers every event to every sink. Returns when all sinks are done.
pub fn run(
    inputs: Vec<Input>,
    opts: ParseOptions,
    sinks: Vec<Box<dyn Sink>>,
    quiet: bool,
) -> anyhow::Result<PipelineReport> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut senders = Vec::new();
        let mut tasks = Vec::new();
        for sink in sinks {
            let (tx, rx) = mpsc::channel::<Arc<Event>>(QUEUE_EVENTS);
            senders.push(tx);
            tasks.push(tokio::spawn(sink.run(rx)));
        }
        let parser = tokio::task::spawn_blocking(move || {
            let mut progress = crate::source::Progress::new(quiet);
            build::parse_inputs(&inputs, &opts, &mut progress, &mut |event| {
                let event = Arc::new(event.take());
                for tx in &senders {
                    send(tx, event.clone())?;
                }
                Ok(())
            })
        });
        let parse = parser.await?;
        let mut sinks = Vec::new();
        for t in tasks {
            sinks.push(t.await??);
        }
        for w in &parse.warnings {
            eprintln!("buildlog: warning: {w}");
        }
        for e in &parse.errors {
            eprintln!("buildlog: {e}");
        }
        Ok(PipelineReport { parse, sinks })
    })
}

/// Hands `event` to a sink's queue. `try_send` first: parking the parser thread in
/// `blocking_send` costs a runtime round trip per event, worth paying only when the queue is full.
fn send(tx: &mpsc::Sender<Arc<Event>>, event: Arc<Event>) -> std::io::Result<()> {
    let stopped = || std::io::Error::other("a sink stopped early");
    match tx.try_send(event) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(event)) => {
            tx.blocking_send(event).map_err(|_| stopped())
        }
        Err(mpsc::error::TrySendError::Closed(_)) => Err(stopped()),
    }
}
