//! Loki encoding and compression throughput against `convert` alone, on the same input in
//! the same run: parse a corpus build (convert), and parse + group into streams + encode as
//! protobuf + snappy in 1 MiB requests (what `ship --loki` does before the network).
//! Figures go to docs/performance.md.

use buildlog::build::parse_inputs;
use buildlog::parse::ParseOptions;
use buildlog::sink::loki::config::{LokiArgs, LokiEncoding};
use buildlog::sink::loki::encoder::{encode, Batch, Encoder, StreamBatch};
use buildlog::source::{Input, Progress};
use clap::Parser;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;
use std::sync::Arc;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    loki: LokiArgs,
}

fn input() -> (Vec<Input>, u64) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/build-13-large");
    let bytes = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    (vec![Input::Path(dir)], bytes)
}

fn parse(inputs: &[Input], emit: &mut dyn FnMut(buildlog::Event) -> std::io::Result<()>) {
    let mut progress = Progress::new(true);
    let report = parse_inputs(inputs, &ParseOptions::default(), &mut progress, &mut |e| {
        emit(e.take())
    });
    assert!(report.errors.is_empty());
}

fn bench(c: &mut Criterion) {
    let (inputs, bytes) = input();
    let flags = Flags::try_parse_from([
        "b",
        "--loki",
        "http://127.0.0.1:3100",
        "--label",
        "host=bench",
    ])
    .unwrap();
    let cfg = flags.loki.config().unwrap().unwrap();
    let encoder = Encoder::new(&cfg);
    let mut g = c.benchmark_group("loki");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("convert_only", |b| {
        b.iter(|| {
            let mut n = 0u64;
            parse(&inputs, &mut |e| {
                n += e.seq & 1;
                Ok(())
            });
            n
        })
    });
    // What `convert` does with each event: its JSON line into an output buffer.
    g.bench_function("convert_to_json_lines", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(1 << 20);
            let mut written = 0usize;
            parse(&inputs, &mut |e| {
                e.write_json_line(&mut out);
                if out.len() >= 1 << 20 {
                    written += out.len();
                    out.clear();
                }
                Ok(())
            });
            written + out.len()
        })
    });
    for (name, encoding) in [
        ("convert_and_encode_protobuf_snappy", LokiEncoding::Protobuf),
        ("convert_and_encode_json", LokiEncoding::Json),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut batch = Batch::default();
                let mut sent = 0usize;
                let flush = |batch: Batch| {
                    let streams = batch.finish();
                    let refs: Vec<&StreamBatch> = streams.iter().collect();
                    encode(&encoder, &refs, encoding, false).bytes.len()
                };
                parse(&inputs, &mut |e| {
                    batch.push(&encoder, Arc::new(e));
                    if batch.bytes() >= cfg.batch_bytes {
                        sent += flush(std::mem::take(&mut batch));
                    }
                    Ok(())
                });
                sent + flush(batch)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
