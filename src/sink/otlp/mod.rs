//! OpenTelemetry traces sink (issue #9): each build becomes one trace, sent over OTLP.
//! config: flags and `OTEL_*` environment; spans: events folded into spans; encoder: OTLP
//! protobuf/JSON bodies; client: sending with retries. This module batches and accounts.

pub mod client;
pub mod config;
pub mod encoder;
pub mod spans;

pub use config::{OtlpArgs, OtlpConfig, ParentContext, Protocol};

use super::dead_letter::DeadLetter;
use super::{Sink, SinkFuture, SinkReport, TAKE_AT_ONCE};
use crate::event::Event;
use client::{Exporter, Outcome};
use spans::{SpanBuilder, SpanOut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub const SINK_NAME: &str = "otlp";

impl OtlpArgs {
    /// The sink, when `--otlp` or `OTEL_ENABLED=true` asks for it.
    pub fn build(&self, dead_letter: DeadLetter) -> anyhow::Result<Option<Box<dyn Sink>>> {
        let Some(cfg) = self.resolve(&|k| std::env::var(k).ok())? else {
            return Ok(None);
        };
        Ok(Some(Box::new(OtlpSink::new(cfg, dead_letter))))
    }
}

pub struct OtlpSink {
    cfg: OtlpConfig,
    dead_letter: DeadLetter,
}

impl OtlpSink {
    pub fn new(cfg: OtlpConfig, dead_letter: DeadLetter) -> Self {
        OtlpSink { cfg, dead_letter }
    }
}

impl Sink for OtlpSink {
    fn name(&self) -> String {
        SINK_NAME.to_string()
    }

    fn run(self: Box<Self>, events: mpsc::Receiver<Arc<Event>>) -> SinkFuture {
        Box::pin(run(*self, events))
    }
}

/// Spans waiting to be sent, bounded by count and encoded size.
struct Batch {
    spans: Vec<SpanOut>,
    bytes: usize,
}

struct State {
    exporter: Exporter,
    dead_letter: DeadLetter,
    report: SinkReport,
    batch: Batch,
    max_spans: usize,
    max_bytes: usize,
    overhead: usize,
    spans_sent: u64,
    spans_refused: u64,
    spans_rejected: u64,
}

async fn run(sink: OtlpSink, mut rx: mpsc::Receiver<Arc<Event>>) -> anyhow::Result<SinkReport> {
    let cfg = sink.cfg;
    let exporter = Exporter::new(&cfg)?;
    let overhead = exporter.envelope().overhead();
    let pipeline_name = cfg.resource[0].1.clone();
    let mut builder = SpanBuilder::new(cfg.max_span_events, cfg.parent, &pipeline_name);
    let mut st = State {
        exporter,
        dead_letter: sink.dead_letter,
        report: SinkReport::new(SINK_NAME),
        batch: Batch {
            spans: Vec::new(),
            bytes: 0,
        },
        max_spans: cfg.batch_spans,
        max_bytes: cfg.batch_bytes,
        overhead,
        spans_sent: 0,
        spans_refused: 0,
        spans_rejected: 0,
    };
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(
        (cfg.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut taken = Vec::with_capacity(TAKE_AT_ONCE);
    loop {
        tokio::select! {
            received = crate::sink::take_events(&mut rx, &mut taken, TAKE_AT_ONCE) => {
                if received == 0 {
                    break;
                }
                let now = Instant::now();
                for e in taken.drain(..) {
                    st.report.received += 1;
                    if !builder.push(&e, now, &mut out) {
                        // Nothing of it goes into a span (an output line): nothing to deliver.
                        st.report.delivered += 1;
                    }
                }
            }
            _ = tick.tick() => builder.flush_idle(Instant::now(), cfg.idle_timeout, &mut out),
        }
        for s in out.drain(..) {
            st.add(s).await;
        }
    }
    builder.finish(&mut out);
    for s in out.drain(..) {
        st.add(s).await;
    }
    st.flush().await;
    eprintln!(
        "buildlog: otlp: {} spans sent to {} in {} requests, {} refused, {} rejected by the server",
        st.spans_sent,
        redacted(&cfg.endpoint),
        st.exporter.requests,
        st.spans_refused,
        st.spans_rejected
    );
    st.report.retried = st.exporter.retries;
    Ok(st.report)
}

/// The endpoint without credentials in its user-info part, for messages.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "the OTLP endpoint".to_string(),
    }
}

impl State {
    async fn add(&mut self, s: SpanOut) {
        let size = encoder::span_size(&s.span);
        if !self.batch.spans.is_empty()
            && (self.batch.spans.len() >= self.max_spans
                || self.overhead + self.batch.bytes + size > self.max_bytes)
        {
            self.flush().await;
        }
        self.batch.bytes += size;
        self.batch.spans.push(s);
    }

    async fn flush(&mut self) {
        if self.batch.spans.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch.spans);
        self.batch.bytes = 0;
        let n = batch.len() as u64;
        let mut spans = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        for s in batch {
            spans.push(s.span);
            events.extend(s.events);
        }
        match self.exporter.export(spans).await {
            Outcome::Delivered(None) => {
                self.spans_sent += n;
                self.report.delivered += events.len() as u64;
            }
            Outcome::Delivered(Some(p)) if p.rejected_spans <= 0 => {
                tracing::warn!(
                    "otlp: the server accepted the spans with a warning: {}",
                    p.error_message
                );
                self.spans_sent += n;
                self.report.delivered += events.len() as u64;
            }
            Outcome::Delivered(Some(p)) => {
                // The server does not say which spans it refused: the whole batch's events go
                // to the dead-letter file (a replay sends the accepted ones again, same ids).
                let reason = format!(
                    "partial success: the server rejected {} of {n} spans of this request: {}",
                    p.rejected_spans, p.error_message
                );
                eprintln!("buildlog: otlp: {reason}");
                self.spans_sent += n;
                self.spans_rejected += p.rejected_spans as u64;
                self.dead_letter_events(&reason, &events);
            }
            Outcome::Refused(reason) => {
                eprintln!("buildlog: otlp: {n} spans refused: {reason}");
                self.spans_refused += n;
                self.dead_letter_events(&reason, &events);
            }
        }
    }

    fn dead_letter_events(&mut self, reason: &str, events: &[Arc<Event>]) {
        match self.dead_letter.write(SINK_NAME, reason, events) {
            Ok(()) => self.report.dead_lettered += events.len() as u64,
            Err(e) => {
                eprintln!("buildlog: otlp: cannot write the dead-letter file: {e}");
                self.report.dropped += events.len() as u64;
            }
        }
    }
}
