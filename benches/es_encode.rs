//! Elasticsearch document encoding: events encoded per second, against `convert` alone on the
//! same input in the same run. Input: the corpus' large build (`build-13-large`, 16 MB of
//! install logs). `cargo bench --bench es_encode`; figures go to docs/performance.md.

use buildlog::build::parse_inputs;
use buildlog::parse::ParseOptions;
use buildlog::sink::elasticsearch::encoder::{Action, Encoder, Schema, Target};
use buildlog::source::{Input, Progress};
use buildlog::Event;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::PathBuf;

fn input() -> Vec<Input> {
    vec![Input::from_path(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/build-13-large"),
    )]
}

fn encoder(schema: Schema) -> Encoder {
    Encoder::new(
        Target::DataStream("logs-container_build-default".into()),
        Action::Create,
        schema,
        "container-build".into(),
    )
}

/// Parses the input, handing each event to `f`; returns the event count.
fn parse(inputs: &[Input], f: &mut dyn FnMut(Event)) -> u64 {
    let opts = ParseOptions::default();
    let mut progress = Progress::new(true);
    let report = parse_inputs(inputs, &opts, &mut progress, &mut |e| {
        f(e.take());
        Ok(())
    });
    report.events
}

/// A bulk body buffer that is emptied at the default request size, as the sink does.
const REQUEST_BYTES: usize = 5 * 1024 * 1024;

fn bench(c: &mut Criterion) {
    let inputs = input();
    let mut events = Vec::new();
    parse(&inputs, &mut |e| events.push(e));
    let n = events.len() as u64;
    assert!(n > 100_000, "{n}");

    let mut g = c.benchmark_group("es_encode");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("convert (parse + JSON lines)", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(REQUEST_BYTES);
            parse(&inputs, &mut |e| {
                e.write_json_line(&mut out);
                if out.len() >= REQUEST_BYTES {
                    out.clear();
                }
            })
        })
    });
    for (name, schema) in [("native", Schema::Native), ("ecs", Schema::Ecs)] {
        let enc = encoder(schema);
        g.bench_function(format!("convert + bulk {name}"), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(REQUEST_BYTES);
                parse(&inputs, &mut |e| {
                    enc.encode(&e, &mut out);
                    if out.len() >= REQUEST_BYTES {
                        out.clear();
                    }
                })
            })
        });
        g.bench_function(format!("bulk {name} encoding alone"), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(REQUEST_BYTES);
                for e in &events {
                    enc.encode(e, &mut out);
                    if out.len() >= REQUEST_BYTES {
                        out.clear();
                    }
                }
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
