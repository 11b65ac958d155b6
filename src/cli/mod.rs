//! Command-line interface: clap definitions and the glue from arguments to the library.
//! One module per subcommand; the shared input flags live in `input`.

pub mod convert;
pub mod es;
pub mod input;
pub mod metrics;
pub mod report;
pub mod ship;
pub mod traceparent;

use clap::{Parser, Subcommand};

/// Exit codes, documented in docs/cli.md.
pub mod exit {
    /// Everything was read and delivered.
    pub const OK: i32 = 0;
    /// Some input could not be read (missing, unreadable); the rest was converted.
    pub const INPUT_ERROR: i32 = 1;
    /// Bad usage or configuration: nothing was done.
    pub const USAGE: i32 = 2;
    /// Some events could not be delivered: they are in the dead-letter file (or were dropped).
    pub const UNDELIVERED: i32 = 3;
    /// An unexpected failure (I/O error on the output, a bug).
    pub const FAILURE: i32 = 4;
    /// `report --compare --max-regression`: a feature got slower than allowed.
    pub const REGRESSION: i32 = 5;
}

const AFTER_HELP: &str = "\
Examples:
  buildlog convert /var/log/container-build > events.jsonl
  tail -F /var/log/container-build/python-install.log | buildlog convert -
  buildlog metrics /var/log/container-build
  buildlog ship --loki http://127.0.0.1:3100 /var/log/container-build
  buildlog report --html timeline.html /var/log/container-build

Exit codes: 0 ok, 1 some input unreadable, 2 usage, 3 some events undelivered, 4 failure,
5 report --compare found a regression.";

#[derive(Debug, Parser)]
#[command(name = "buildlog", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse build logs into JSON events, one per line.
    Convert(convert::ConvertArgs),
    /// Print Prometheus metrics derived from build logs.
    Metrics(metrics::MetricsArgs),
    /// Serve live /metrics for a build log directory.
    Serve(metrics::ServeArgs),
    /// Summarise builds: status, timeline, slowest and failed commands, diagnostics (text,
    /// JSON or an HTML timeline), or compare two builds.
    Report(report::ReportArgs),
    /// Parse build logs and push the events to Loki, Elasticsearch or stdout.
    Ship(ship::ShipArgs),
    /// Elasticsearch helpers (index templates, ILM policy).
    #[command(subcommand)]
    Es(es::EsCommand),
    /// Print the W3C traceparent of a build (its root span), for CI jobs to add their own spans.
    Traceparent(traceparent::TraceparentArgs),
}

/// Parses the arguments, runs the command and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    init_tracing();
    let result = match cli.command {
        Command::Convert(a) => convert::run(a),
        Command::Metrics(a) => metrics::run_metrics(a),
        Command::Serve(a) => metrics::run_serve(a),
        Command::Report(a) => report::run(a),
        Command::Ship(a) => ship::run(a),
        Command::Es(c) => es::run(c),
        Command::Traceparent(a) => traceparent::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("buildlog: error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                exit::USAGE
            } else {
                exit::FAILURE
            }
        }
    }
}

/// A configuration that cannot work; reported with exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BUILDLOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
