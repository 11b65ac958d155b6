//! The stdout (or file) sink: one JSON event per line, flushed per event when following.
//! `convert` writes synchronously without this sink; `ship` uses it to add stdout to a fan-out.

use super::{Sink, SinkFuture, SinkReport};
use crate::event::Event;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::mpsc;

pub struct StdoutSink {
    pub flush_each: bool,
}

impl Sink for StdoutSink {
    fn name(&self) -> String {
        "stdout".into()
    }
    fn run(self: Box<Self>, mut events: mpsc::Receiver<Arc<Event>>) -> SinkFuture {
        Box::pin(async move {
            let mut report = SinkReport::new("stdout");
            let mut buf = Vec::with_capacity(64 * 1024);
            while let Some(event) = events.recv().await {
                report.received += 1;
                event.write_json_line(&mut buf);
                report.delivered += 1;
                if self.flush_each || buf.len() >= 60 * 1024 {
                    write_out(&mut buf)?;
                }
            }
            write_out(&mut buf)?;
            Ok(report)
        })
    }
}

fn write_out(buf: &mut Vec<u8>) -> anyhow::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(buf)?;
    out.flush()?;
    buf.clear();
    Ok(())
}
