//! Generates a large, realistic build log directory for benchmarks, by recombining the
//! command blocks of the corpus's build 13 (see `benches/gen/mod.rs`).
//!
//! ```text
//! cargo run --release --example gen_bench_log -- --size 200MB --out /tmp/bench-200mb
//! cargo run --release --example gen_bench_log -- --size 1GB --seed 7 --out DIR
//! ```
//! The same `--size` and `--seed` always give byte-identical files.

#[path = "../benches/gen/mod.rs"]
mod gen;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: gen_bench_log --size SIZE --out DIR [--seed N] [--corpus BUILD_DIR]
  SIZE: bytes of install logs, e.g. 200MB, 1GB, 512KiB (default 200MB)
  --seed N: the seed (default 1); same size and seed, same bytes
  --corpus: the build directory to sample (default: the repository's build-13-large)";

fn main() -> ExitCode {
    let mut size = gen::parse_size("200MB").unwrap();
    let mut out: Option<PathBuf> = None;
    let mut seed = 1u64;
    let mut corpus = gen::default_corpus();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let r: Result<(), String> = match a.as_str() {
            "--size" => value("--size").and_then(|v| {
                gen::parse_size(&v)
                    .map(|s| size = s)
                    .ok_or(format!("not a size: {v}"))
            }),
            "--out" => value("--out").map(|v| out = Some(v.into())),
            "--seed" => value("--seed").and_then(|v| {
                v.parse()
                    .map(|s| seed = s)
                    .map_err(|_| format!("not a seed: {v}"))
            }),
            "--corpus" => value("--corpus").map(|v| corpus = v.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument {other}")),
        };
        if let Err(e) = r {
            eprintln!("gen_bench_log: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let Some(out) = out else {
        eprintln!("gen_bench_log: --out is required\n{USAGE}");
        return ExitCode::from(2);
    };
    let result = gen::load_corpus(&corpus).and_then(|c| gen::generate_build(&c, size, seed, &out));
    match result {
        Ok(stats) => {
            let lines: u64 = stats.features.iter().map(|f| f.lines).sum();
            println!(
                "{}: {} features, {} bytes, {} install-log lines",
                out.display(),
                stats.features.len(),
                stats.bytes,
                lines
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_bench_log: {e}");
            ExitCode::FAILURE
        }
    }
}
