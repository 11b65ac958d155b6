//! The stdout (or file) sink: one JSON event per line, flushed (with `flush_each_wakeup`) once per
//! wake-up, so every event that has reached the sink is out before it waits again.
//! `convert` writes synchronously without this sink; `ship` uses it to add stdout to a fan-out.

use super::{Sink, SinkFuture, SinkReport, TAKE_AT_ONCE};
use crate::event::Event;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::mpsc;

pub struct StdoutSink {
    /// Write out what it holds each time it has taken the queued events (following: events
    /// reach the reader as they come), not only when 60 KiB have gathered.
    pub flush_each_wakeup: bool,
}

impl Sink for StdoutSink {
    fn name(&self) -> String {
        "stdout".into()
    }
    fn run(self: Box<Self>, mut events: mpsc::Receiver<Arc<Event>>) -> SinkFuture {
        Box::pin(async move {
            let mut report = SinkReport::new("stdout");
            let mut buf = Vec::with_capacity(64 * 1024);
            // A closed stdout (`| head -1`) is the reader's choice, not a failure: the other
            // sinks still get every event, and stdout takes no more.
            let mut closed = false;
            let mut taken = Vec::with_capacity(TAKE_AT_ONCE);
            while crate::sink::take_events(&mut events, &mut taken, TAKE_AT_ONCE).await > 0 {
                for event in taken.drain(..) {
                    report.received += 1;
                    report.delivered += 1;
                    if closed {
                        continue;
                    }
                    event.write_json_line(&mut buf);
                    if buf.len() >= 60 * 1024 {
                        closed = write_out(&mut buf)?;
                    }
                }
                if self.flush_each_wakeup && !closed {
                    closed = write_out(&mut buf)?;
                }
            }
            if !closed {
                write_out(&mut buf)?;
            }
            Ok(report)
        })
    }
}

/// Writes and clears `buf`; `Ok(true)` when the reader has closed stdout.
fn write_out(buf: &mut Vec<u8>) -> anyhow::Result<bool> {
    if buf.is_empty() {
        return Ok(false);
    }
    let mut out = std::io::stdout().lock();
    let r = out.write_all(buf).and_then(|_| out.flush());
    buf.clear();
    match r {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            tracing::debug!("stdout was closed by its reader; the other sinks go on");
            Ok(true)
        }
        Err(e) => Err(anyhow::Error::new(e).context("writing events to stdout")),
    }
}
