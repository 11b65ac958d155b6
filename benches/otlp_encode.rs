//! OTLP cost: spans built from events and encoded per second, and `convert` with and
//! without building and encoding spans, on the largest corpus build in the same run.
//!
//!   cargo bench --bench otlp_encode

use buildlog::build::parse_inputs;
use buildlog::event::{Event, EventType};
use buildlog::parse::ParseOptions;
use buildlog::sink::otlp::config::Compression;
use buildlog::sink::otlp::encoder::{self, Envelope};
use buildlog::sink::otlp::spans::{SpanBuilder, SpanOut};
use buildlog::sink::otlp::Protocol;
use buildlog::source::{Input, Progress};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

fn build_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/build-13-large")
}

fn opts() -> ParseOptions {
    ParseOptions::default()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Spans for `events`, encoded as the sink does: protobuf requests of at most 512 spans.
fn spans_and_encode(events: &[Arc<Event>], envelope: &Envelope, gzip: bool) -> (usize, usize) {
    let mut builder = SpanBuilder::new(64, None, "container-build");
    let mut out: Vec<SpanOut> = Vec::new();
    let now = Instant::now();
    for e in events {
        builder.push(e, now, &mut out);
    }
    builder.finish(&mut out);
    let compression = if gzip {
        Compression::Gzip
    } else {
        Compression::None
    };
    (out.len(), encode_all(&out, envelope, compression))
}

/// Encodes `spans` in requests of at most 512 spans, as the sink batches; returns the bytes.
fn encode_all(spans: &[SpanOut], envelope: &Envelope, compression: Compression) -> usize {
    spans
        .chunks(512)
        .map(|chunk| {
            let req = envelope.request(chunk.iter().map(|s| s.span.clone()).collect());
            encoder::http_body(&req, Protocol::HttpProtobuf, compression)
                .unwrap()
                .0
                .len()
        })
        .sum()
}

fn convert(dir: &Path, with_spans: Option<&Envelope>) -> usize {
    let mut out = Vec::with_capacity(1 << 20);
    let mut builder = SpanBuilder::new(64, None, "container-build");
    let mut spans = Vec::new();
    let now = Instant::now();
    let mut progress = Progress::new(true);
    parse_inputs(
        &[Input::from_path(dir.to_path_buf())],
        &opts(),
        &mut progress,
        &mut |e| {
            e.write_json_line(&mut out);
            if with_spans.is_some() {
                builder.push(&Arc::new(e.take()), now, &mut spans);
            }
            if out.len() > (1 << 20) {
                out.clear();
            }
            Ok(())
        },
    );
    if let Some(envelope) = with_spans {
        builder.finish(&mut spans);
        std::hint::black_box(encode_all(&spans, envelope, Compression::Gzip));
    }
    spans.len() + out.len()
}

fn bench(c: &mut Criterion) {
    let dir = build_dir();
    let mut events = Vec::new();
    let mut progress = Progress::new(true);
    parse_inputs(
        &[Input::from_path(dir.clone())],
        &opts(),
        &mut progress,
        &mut |e| {
            events.push(Arc::new(e.take()));
            Ok(())
        },
    );
    let envelope = Envelope::new(&[("service.name".into(), "container-build".into())]);
    // Folding every event of the build (most are output lines) into its spans, and encoding.
    let mut g = c.benchmark_group("otlp_events_to_spans");
    g.sample_size(20);
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("fold_and_encode_protobuf", |b| {
        b.iter(|| spans_and_encode(&events, &envelope, false))
    });
    g.bench_function("fold_and_encode_protobuf_gzip", |b| {
        b.iter(|| spans_and_encode(&events, &envelope, true))
    });
    g.finish();

    // Spans built and encoded per second: a command span (the most common kind) from its two
    // events, then requests of 512.
    let commands: Vec<Arc<Event>> = events
        .iter()
        .filter(|e| matches!(e.event_type, EventType::CommandStart | EventType::Command))
        .cloned()
        .collect();
    let (n_spans, _) = spans_and_encode(&commands, &envelope, false);
    let mut g = c.benchmark_group("otlp_spans");
    g.sample_size(30);
    g.throughput(Throughput::Elements(n_spans as u64));
    g.bench_function("build_and_encode_protobuf", |b| {
        b.iter(|| spans_and_encode(&commands, &envelope, false))
    });
    g.bench_function("build_and_encode_protobuf_gzip", |b| {
        b.iter(|| spans_and_encode(&commands, &envelope, true))
    });
    g.finish();

    let mut g = c.benchmark_group("convert_vs_convert_with_spans");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(dir_bytes(&dir)));
    g.bench_function("convert", |b| b.iter(|| convert(&dir, None)));
    g.bench_function("convert_with_spans", |b| {
        b.iter(|| convert(&dir, Some(&envelope)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
