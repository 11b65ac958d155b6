//! Parser throughput in bytes of input per second, on a corpus install log and on a
//! generated one (see `benches/gen/mod.rs`), for three depths of the pipeline:
//! parse only (LineSplitter + InstallLogParser), parse + enrich (ids, scrubbing), and the
//! full convert to JSON lines in memory (what `buildlog convert` writes, without the I/O).
//!
//! `cargo bench --bench convert`; whole-process figures against `wc -l`/`cat` and peak RSS
//! come from `benches/run-perf.sh` (docs/performance.md).

#[path = "gen/mod.rs"]
mod gen;

use buildlog::enrich::Enricher;
use buildlog::parse::install_log::InstallLogParser;
use buildlog::parse::FormatParser;
use buildlog::source::LineSplitter;
use buildlog::Event;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const CHUNK: usize = 256 * 1024;

/// Feeds `input` in `convert`'s chunk size through the install-log parser, handing each
/// event to `f`; the parser scans for the scrubber too when the events will be scrubbed
/// (`scrubbing`), as `convert` has it do.
fn parse(input: &[u8], scrubbing: bool, f: &mut dyn FnMut(Event)) {
    let mut parser =
        InstallLogParser::new(jiff::tz::TimeZone::UTC).scanning_for_scrubber(scrubbing);
    let mut splitter = LineSplitter::new(256 * 1024);
    let mut events = Vec::new();
    for chunk in input.chunks(CHUNK) {
        let _ = splitter.push::<()>(chunk, &mut |l| {
            parser.line(&l, &mut events);
            Ok(())
        });
        events.drain(..).for_each(&mut *f);
    }
    let _ = splitter.finish::<()>(&mut |l| {
        parser.line(&l, &mut events);
        Ok(())
    });
    parser.finish(&mut events);
    events.drain(..).for_each(f);
}

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let dir = gen::default_corpus();
    let corpus_file = std::fs::read(dir.join("python-install.log")).expect("corpus fixture");
    let corpus = gen::load_corpus(&dir).expect("corpus build");
    let rust_dev = corpus
        .features
        .iter()
        .find(|f| f.name == "Rust Development Tools")
        .expect("a Rust Development Tools log in the corpus");
    let mut rng = gen::Rng::new(1);
    let (generated, _, _) = gen::generate_feature(rust_dev, &mut rng, gen::BUILD_START, 8_000_000);
    vec![
        ("corpus python-install.log", corpus_file),
        ("generated rust-development-tools 8MB", generated),
    ]
}

fn bench(c: &mut Criterion) {
    for (name, input) in inputs() {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.sample_size(10);
        g.bench_function("parse", |b| {
            b.iter(|| {
                let mut n = 0u64;
                parse(black_box(&input), false, &mut |e| {
                    n += 1;
                    black_box(e);
                });
                n
            })
        });
        g.bench_function("parse+enrich", |b| {
            b.iter(|| {
                let mut enr = Enricher::new("build-1791958321-g88d8k".into(), true);
                parse(black_box(&input), true, &mut |mut e| {
                    enr.apply(&mut e, "python-install.log", "python-install.log");
                    black_box(e);
                })
            })
        });
        g.bench_function("convert to JSON", |b| {
            let mut out = Vec::with_capacity(CHUNK * 2);
            b.iter(|| {
                let mut enr = Enricher::new("build-1791958321-g88d8k".into(), true);
                let mut bytes = 0usize;
                parse(black_box(&input), true, &mut |mut e| {
                    enr.apply(&mut e, "python-install.log", "python-install.log");
                    e.write_json_line(&mut out);
                    if out.len() >= CHUNK {
                        bytes += out.len();
                        black_box(&out);
                        out.clear();
                    }
                });
                bytes + out.len()
            })
        });
        // What deriving metrics adds to convert (issue 3: at most 10%): the same work plus
        // folding every event into the metrics state.
        g.bench_function("convert to JSON + metrics", |b| {
            let mut out = Vec::with_capacity(CHUNK * 2);
            b.iter(|| {
                let mut enr = Enricher::new("build-1791958321-g88d8k".into(), true);
                let mut metrics = buildlog::metrics::derive::MetricsState::new();
                let mut bytes = 0usize;
                parse(black_box(&input), true, &mut |mut e| {
                    enr.apply(&mut e, "python-install.log", "python-install.log");
                    metrics.observe(&e);
                    e.write_json_line(&mut out);
                    if out.len() >= CHUNK {
                        bytes += out.len();
                        black_box(&out);
                        out.clear();
                    }
                });
                black_box(metrics.events());
                bytes + out.len()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
