//! Command-line interface: clap definitions and the glue from arguments to the library.
//! One module per subcommand; the shared input flags live in `input`.

pub mod check;
pub mod config;
pub mod convert;
pub mod es;
pub mod input;
pub mod metrics;
pub mod output;
pub mod report;
pub mod ship;
pub mod traceparent;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

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
  buildlog check --config /etc/buildlog/buildlog.toml
  buildlog report --html timeline.html /var/log/container-build

Exit codes: 0 ok, 1 some input unreadable, 2 usage, 3 some events undelivered, 4 failure,
5 report --compare found a regression.";

#[derive(Debug, Parser)]
#[command(name = "buildlog", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Configuration file (TOML) for ship, serve, metrics and check; flags override it.
    /// Default: /etc/buildlog/buildlog.toml when it exists.
    #[arg(long, value_name = "FILE", env = "BUILDLOG_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Format of buildlog's own messages on stderr.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text, env = "BUILDLOG_LOG_FORMAT", global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Plain lines; coloured only on a terminal, never with $NO_COLOR set.
    Text,
    /// One JSON object per message (for log collectors).
    Json,
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
    /// Check the configuration and try each configured sink, without sending events.
    Check(check::CheckArgs),
    /// Elasticsearch helpers (index templates, ILM policy).
    #[command(subcommand)]
    Es(es::EsCommand),
    /// Print the W3C traceparent of a build (its root span), for CI jobs to add their own spans.
    Traceparent(traceparent::TraceparentArgs),
    /// Print a shell completion script (bash, zsh, fish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `buildlog man > buildlog.1`, or one command's page:
    /// `buildlog man ship > buildlog-ship.1`.
    Man {
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
    },
}

/// Parses the arguments, runs the command and returns the process exit code.
pub fn main() -> i32 {
    run(std::env::args_os().collect())
}

/// `main` for a given command line.
pub fn run(argv: Vec<OsString>) -> i32 {
    let cli = match parse(argv) {
        Ok(cli) => cli,
        Err(ParseFailure::Clap(e)) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
        Err(ParseFailure::Usage(e)) => {
            init_tracing(LogFormat::Text);
            eprintln!("buildlog: error: {e}");
            return exit::USAGE;
        }
    };
    init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Convert(a) => convert::run(a),
        Command::Metrics(a) => metrics::run_metrics(a),
        Command::Serve(a) => metrics::run_serve(a),
        Command::Report(a) => report::run(a),
        Command::Ship(a) => ship::run(a),
        Command::Check(a) => check::run(a, cli.config.as_ref()),
        Command::Es(c) => es::run(c),
        Command::Traceparent(a) => traceparent::run(a),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "buildlog", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Man { command } => man(command.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("buildlog: error: {e:#}");
            if crate::error::is_usage(&e) {
                exit::USAGE
            } else {
                exit::FAILURE
            }
        }
    }
}

fn man(command: Option<&str>) -> anyhow::Result<i32> {
    let mut out = Vec::new();
    let root = Cli::command();
    let page = match command {
        None => root,
        Some(name) => {
            let Some(sub) = root.find_subcommand(name) else {
                return Err(UsageError(format!("man: no command {name:?}")).into());
            };
            // A page's name is `buildlog-ship`, as git's are.
            let title: &'static str = Box::leak(format!("buildlog-{name}").into_boxed_str());
            sub.clone().name(title).version(env!("CARGO_PKG_VERSION"))
        }
    };
    clap_mangen::Man::new(page).render(&mut out)?;
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&out).and_then(|_| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(exit::OK),
    }
}

pub(crate) enum ParseFailure {
    Clap(clap::Error),
    Usage(UsageError),
}

/// Parses the command line; for the commands that take a configuration, the file's keys and
/// the `BUILDLOG_<FLAG>` variables are added as arguments first (see `config`).
pub(crate) fn parse(argv: Vec<OsString>) -> Result<Cli, ParseFailure> {
    let root = Cli::command();
    let m = root
        .clone()
        .try_get_matches_from(&argv)
        .map_err(ParseFailure::Clap)?;
    let Some((sub, sm)) = m.subcommand() else {
        return Cli::from_arg_matches(&m).map_err(ParseFailure::Clap);
    };
    if matches!(sub, "completions" | "man" | "es") {
        return Cli::from_arg_matches(&m).map_err(ParseFailure::Clap);
    }
    // BUILDLOG_<FLAG> applies to every command, the file to those that take one.
    let file = if config::COMMANDS.contains(&sub) {
        match config::config_path(m.get_one::<PathBuf>("config")) {
            Some(p) => Some(config::ConfigFile::load(&p, &root).map_err(ParseFailure::Usage)?),
            None => None,
        }
    } else {
        None
    };
    // `check` reads the same flags as `ship`.
    let target = if sub == "check" { "check" } else { sub };
    let (flags, positionals) = config::injected_args(&root, target, sm, file.as_ref(), &|k| {
        std::env::var(k).ok().filter(|v| !v.is_empty())
    })
    .map_err(ParseFailure::Usage)?;
    if flags.is_empty() && positionals.is_empty() {
        return Cli::from_arg_matches(&m).map_err(ParseFailure::Clap);
    }
    let at = argv
        .iter()
        .skip(1)
        .position(|a| a.as_os_str() == sub)
        .map(|i| i + 2)
        .unwrap_or(argv.len());
    let mut full: Vec<OsString> = argv[..at].to_vec();
    full.extend(flags);
    full.extend(argv[at..].iter().cloned());
    if !positionals.is_empty() {
        if !full.iter().any(|a| a == "--") {
            full.push("--".into());
        }
        full.extend(positionals);
    }
    let m = root
        .try_get_matches_from(&full)
        .map_err(ParseFailure::Clap)?;
    Cli::from_arg_matches(&m).map_err(ParseFailure::Clap)
}

pub use crate::error::UsageError;

/// True when stderr may carry colour: a terminal, and $NO_COLOR unset or empty.
pub fn stderr_color() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BUILDLOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(stderr_color()).try_init(),
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
