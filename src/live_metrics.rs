//! The shipper's own metrics for `ship --follow --metrics-listen ADDR`: what it read, what
//! each sink has queued and acknowledged, the in-memory backlog, the delivery lag and the
//! checkpoint's age. Encoded with the same `prometheus-client` exposition as `serve`.

use crate::live::LiveStats;
use crate::metrics::{render, ExpositionFormat, Family, Kind, Value};
use crate::sink::dead_letter::DeadLetter;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::atomic::Ordering;
use std::sync::Arc;

type AppState = (Arc<LiveStats>, Option<DeadLetter>);

pub async fn serve(
    listener: tokio::net::TcpListener,
    stats: Arc<LiveStats>,
    dl: Option<DeadLetter>,
) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state((stats, dl));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("--metrics-listen: {e}");
    }
}

async fn metrics(State((stats, dl)): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let format =
        ExpositionFormat::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    (
        [(header::CONTENT_TYPE, format.content_type())],
        render(&families(&stats, dl.as_ref()), format),
    )
}

/// The families, from the live counters.
pub fn families(stats: &LiveStats, dl: Option<&DeadLetter>) -> Vec<Family> {
    let counter = |name, help, v: u64| {
        let mut f = Family::new(name, help, Kind::Counter);
        f.push(vec![], Value::Counter(v));
        f
    };
    let mut out = vec![
        counter(
            "buildlog_follow_events_read",
            "Events parsed from the followed logs and handed to the sinks.",
            stats.events_read.load(Ordering::Relaxed),
        ),
        counter(
            "buildlog_follow_events_skipped",
            "Events not sent again after a restart: the checkpoint says they were delivered.",
            stats.events_skipped.load(Ordering::Relaxed),
        ),
        counter(
            "buildlog_checkpoints_written",
            "Checkpoints (positions files) written.",
            stats.checkpoints_written.load(Ordering::Relaxed),
        ),
        counter(
            "buildlog_events_dead_lettered",
            "Events written to the dead-letter file (all sinks).",
            dl.map(|d| d.count()).unwrap_or_default(),
        ),
    ];
    let mut queued = Family::new(
        "buildlog_sink_events_queued",
        "Events handed to the sink's queue.",
        Kind::Counter,
    );
    let mut acked = Family::new(
        "buildlog_sink_events_acknowledged",
        "Events the sink reported stored or dead-lettered.",
        Kind::Counter,
    );
    let mut backlog = Family::new(
        "buildlog_sink_events_outstanding",
        "Events queued or in flight, not yet acknowledged (held in memory; the rest of the backlog is the unread part of the logs).",
        Kind::Gauge,
    );
    let mut lag = Family::new(
        "buildlog_sink_delivery_lag_seconds",
        "Age of the oldest event the sink has not acknowledged yet (0: none).",
        Kind::Gauge,
    );
    for s in &stats.sinks {
        let l = || vec![("sink", s.name.clone())];
        queued.push(l(), Value::Counter(s.queued.load(Ordering::Relaxed)));
        if let Some(a) = &s.acks {
            acked.push(l(), Value::Counter(a.acknowledged()));
            backlog.push(l(), Value::Gauge(a.outstanding() as f64));
            let age = a
                .oldest_pending()
                .map(|t| t.elapsed().as_secs_f64())
                .unwrap_or(0.0);
            lag.push(l(), Value::Gauge(age));
        }
    }
    let mut buffered = Family::new(
        "buildlog_buffer_bytes",
        "Bytes in the sink's disk buffer (--buffer-dir).",
        Kind::Gauge,
    );
    let mut dropped = Family::new(
        "buildlog_buffer_events_dropped",
        "Events dropped from a full disk buffer (--buffer-when-full drop-oldest).",
        Kind::Counter,
    );
    for s in &stats.sinks {
        if let Some(sp) = &s.spool {
            buffered.push(
                vec![("sink", s.name.clone())],
                Value::Gauge(sp.bytes() as f64),
            );
            dropped.push(vec![("sink", s.name.clone())], Value::Counter(sp.dropped()));
        }
    }
    out.extend([queued, acked, backlog, lag, buffered, dropped]);
    let last = stats.checkpoint_time.load(Ordering::Relaxed);
    if last > 0 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let mut f = Family::new(
            "buildlog_checkpoint_age_seconds",
            "Seconds since the last checkpoint was written.",
            Kind::Gauge,
        );
        f.push(vec![], Value::Gauge((now - last as f64).max(0.0)));
        out.push(f);
    }
    out
}
