//! `buildlog metrics` and `buildlog serve` (issue #3).

use super::exit;
use super::input::InputArgs;
use crate::build::parse_inputs;
use crate::error::UsageError;
use crate::fsutil::write_atomically;
use crate::metrics::backfill::Backfill;
use crate::metrics::remote_write;
use crate::metrics::runtime::{RuntimeConfig, START_TIME_FILE};
use crate::metrics::serve::{serve, ConnectionLimits, MetricsAuth, ServeConfig};
use crate::metrics::{render, ExpositionFormat, MetricsState};
use crate::parse::ParseOptions;
use crate::sink::http::{secret_from, Auth, TransportArgs};
use crate::sink::retry::Backoff;
use crate::source::Progress;
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Prometheus text format 0.0.4 (what the bash exporter wrote).
    Text,
    /// OpenMetrics 1.0 text.
    Openmetrics,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  buildlog metrics /var/log/container-build
  buildlog metrics --textfile /var/lib/node_exporter/build.prom /build/logs
  buildlog metrics --backfill old-builds/*/ > backfill.om
  promtool tsdb create-blocks-from openmetrics backfill.om ./data
  buildlog metrics --remote-write http://prom:9090/api/v1/write /build/logs

Environment: METRICS_FILE (as --textfile), BUILD_LOG_DIR (default input),
REMOTE_WRITE_USERNAME + REMOTE_WRITE_PASSWORD or REMOTE_WRITE_BEARER_TOKEN (remote write credentials).")]
pub struct MetricsArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Exposition format on stdout or in the textfile.
    #[arg(long = "output-format", value_enum, default_value_t = OutputFormat::Text)]
    pub output_format: OutputFormat,

    /// Write the exposition to FILE atomically (temp file + rename), for node_exporter's
    /// textfile collector, instead of stdout.
    #[arg(long, value_name = "FILE", env = "METRICS_FILE")]
    pub textfile: Option<PathBuf>,

    /// OpenMetrics with every sample at the time it happened, for
    /// `promtool tsdb create-blocks-from openmetrics`.
    #[arg(long, conflicts_with_all = ["remote_write", "output_format"])]
    pub backfill: bool,

    /// Push the samples (stamped now) with the Prometheus remote write protocol to URL
    /// (e.g. http://prometheus:9090/api/v1/write) instead of printing them.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "textfile",
        help_heading = "Remote write"
    )]
    pub remote_write: Option<String>,

    /// Extra label on every remote-written series (name=value, repeatable).
    #[arg(
        long = "remote-write-label",
        alias = "label",
        value_name = "NAME=VALUE",
        requires = "remote_write",
        help_heading = "Remote write"
    )]
    pub labels: Vec<String>,

    /// File holding the remote write password (else $REMOTE_WRITE_PASSWORD).
    #[arg(
        long,
        value_name = "FILE",
        requires = "remote_write",
        help_heading = "Remote write"
    )]
    pub remote_write_password_file: Option<PathBuf>,

    /// File holding a remote write bearer token (else $REMOTE_WRITE_BEARER_TOKEN).
    #[arg(
        long,
        value_name = "FILE",
        requires = "remote_write",
        help_heading = "Remote write"
    )]
    pub remote_write_bearer_token_file: Option<PathBuf>,

    /// Retries of a remote write request answered 5xx or 429 or not answered; `infinite`
    /// to keep trying.
    #[arg(long, value_name = "N", default_value = "10", value_parser = crate::duration::retry_limit, alias = "max-retries", help_heading = "Remote write")]
    pub remote_write_retry_max: crate::duration::RetryLimit,

    /// First retry wait (doubles up to --remote-write-retry-max-wait, with jitter).
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = crate::duration::secs, alias = "retry-min-wait", help_heading = "Remote write")]
    pub remote_write_retry_initial: Duration,

    /// Longest retry wait.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::duration::secs, alias = "retry-max-wait", help_heading = "Remote write")]
    pub remote_write_retry_max_wait: Duration,

    #[command(flatten)]
    pub transport: TransportArgs,
}

pub fn run_metrics(args: MetricsArgs) -> anyhow::Result<i32> {
    let opts = args.input.parse_options()?;
    let inputs = args.input.inputs();
    let mut progress = Progress::new(args.input.quiet);
    let mut state = MetricsState::new();
    let mut backfill = args.backfill.then(Backfill::new);
    let report = parse_inputs(&inputs, &opts, &mut progress, &mut |e| {
        match &mut backfill {
            Some(b) => b.observe(e),
            None => state.observe(e),
        }
        Ok(())
    });
    progress.finish();
    for e in &report.errors {
        eprintln!("buildlog: {e}");
    }
    let input_code = if report.errors.is_empty() {
        exit::OK
    } else {
        exit::INPUT_ERROR
    };

    if let Some(url) = &args.remote_write {
        let extra =
            remote_write::parse_labels(&args.labels).map_err(|e| UsageError(format!("{e:#}")))?;
        let auth = remote_write_auth(&args)?;
        let backoff = backoff(&args)?;
        let client = args
            .transport
            .client()
            .map_err(|e| UsageError(format!("{e:#}")))?;
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let req = remote_write::to_write_request(&state.families(), now_ms, &extra);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        return Ok(
            match rt.block_on(remote_write::push(&client, url, &auth, req, backoff)) {
                Ok(r) => {
                    if !args.input.quiet {
                        eprintln!(
                            "buildlog: remote write: {} series in {} requests, {} retries",
                            r.series, r.requests, r.retries
                        );
                    }
                    input_code
                }
                Err(e) => {
                    eprintln!("buildlog: {e:#}");
                    exit::UNDELIVERED
                }
            },
        );
    }

    let text = match backfill {
        Some(b) => b.finish(),
        None => render(
            &state.families(),
            match args.output_format {
                OutputFormat::Text => ExpositionFormat::Text,
                OutputFormat::Openmetrics => ExpositionFormat::OpenMetrics,
            },
        ),
    };
    match &args.textfile {
        Some(path) => write_atomically(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(input_code)
}

fn remote_write_auth(args: &MetricsArgs) -> anyhow::Result<Auth> {
    if let Some(token) = secret_from(
        "REMOTE_WRITE_BEARER_TOKEN",
        args.remote_write_bearer_token_file.as_ref(),
    )? {
        return Ok(Auth::Bearer(token));
    }
    let user = std::env::var("REMOTE_WRITE_USERNAME")
        .ok()
        .filter(|u| !u.is_empty());
    let password = secret_from(
        "REMOTE_WRITE_PASSWORD",
        args.remote_write_password_file.as_ref(),
    )?;
    match (user, password) {
        (Some(user), Some(password)) => Ok(Auth::Basic { user, password }),
        (None, None) => Ok(Auth::None),
        _ => Err(UsageError(
            "basic auth for remote write needs both REMOTE_WRITE_USERNAME and a password".into(),
        )
        .into()),
    }
}

fn backoff(args: &MetricsArgs) -> anyhow::Result<Backoff> {
    Ok(Backoff::checked(
        "--remote-write",
        args.remote_write_retry_initial,
        args.remote_write_retry_max_wait,
        args.remote_write_retry_max,
    )?)
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  buildlog serve    # on 127.0.0.1:$METRICS_PORT (9090), for $BUILD_LOG_DIR
  buildlog serve --listen 0.0.0.0:9090 /var/log/container-build
  METRICS_BEARER_TOKEN=s3cret buildlog serve --listen 0.0.0.0:9090
  buildlog serve --health-command 'curl -fsS localhost:8080/ready'

Environment: METRICS_PORT, BUILD_LOG_DIR, METRICS_REFRESH_INTERVAL, METRICS_HEALTH_COMMAND,
METRICS_BASIC_AUTH_USER + METRICS_BASIC_AUTH_PASSWORD, or METRICS_BEARER_TOKEN.")]
#[command(next_help_heading = "Serve")]
pub struct ServeArgs {
    /// The build log directory to follow (default /var/log/container-build).
    #[arg(value_name = "DIR", env = "BUILD_LOG_DIR")]
    pub path: Option<PathBuf>,

    /// Address to listen on. Default: 127.0.0.1 and $METRICS_PORT (9090); in a container,
    /// `--listen 0.0.0.0:9090` to be scraped from outside.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Old spelling of the DIR argument.
    #[arg(long, value_name = "DIR", hide = true, conflicts_with = "path")]
    pub log_dir: Option<PathBuf>,

    /// Re-read the logs, rerun the health check and measure disk usage at most this often
    /// (`15s`; a bare number is seconds).
    #[arg(
        long,
        value_name = "DURATION",
        env = "METRICS_REFRESH_INTERVAL",
        default_value = "15s",
        value_parser = crate::duration::secs
    )]
    pub refresh_interval: Duration,

    /// Health check command (run with `sh -c`, exit 0 = healthy). Default: `healthcheck --quick`
    /// when `healthcheck` is on PATH, as the bash exporter did.
    #[arg(long, value_name = "CMD", env = "METRICS_HEALTH_COMMAND")]
    pub health_command: Option<String>,

    /// No health check metrics at all.
    #[arg(long, conflicts_with = "health_command")]
    pub no_health_check: bool,

    /// After this long the health check counts as failed and is killed.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::duration::secs)]
    pub health_timeout: Duration,

    /// Directories whose disk usage is reported when they exist (repeatable).
    /// Default: /cache, /workspace and the log directory.
    #[arg(long = "disk-path", value_name = "DIR")]
    pub disk_paths: Vec<PathBuf>,

    /// Basic auth user for /metrics; the password from $METRICS_BASIC_AUTH_PASSWORD or
    /// --basic-auth-password-file.
    #[arg(long, value_name = "USER", env = "METRICS_BASIC_AUTH_USER")]
    pub basic_auth_user: Option<String>,

    /// File holding the basic auth password (else $METRICS_BASIC_AUTH_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub basic_auth_password_file: Option<PathBuf>,

    /// File holding the bearer token /metrics requires (else $METRICS_BEARER_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,

    /// IANA time zone the build's local times are in.
    #[arg(
        long,
        value_name = "TZ",
        default_value = "UTC",
        env = "BUILDLOG_TIMEZONE"
    )]
    pub timezone: String,

    /// How long a client has from the first byte of a request to the end of its headers
    /// (`10s`; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::duration::secs)]
    pub header_read_timeout: Duration,

    /// After how long a connection with no request under way (a keep-alive connection
    /// between scrapes, or one that never sent anything) is closed (`30s`).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::duration::secs)]
    pub idle_timeout: Duration,

    /// Connections open at once. At the limit, the one that has waited longest without a
    /// request is closed to make room.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_connections: usize,
}

impl ServeArgs {
    pub fn listen_addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        let s = match &self.listen {
            Some(l) => l.clone(),
            None => {
                let port = std::env::var("METRICS_PORT")
                    .ok()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "9090".into());
                format!("127.0.0.1:{port}")
            }
        };
        s.parse()
            .map_err(|e| UsageError(format!("cannot listen on {s:?}: {e}")).into())
    }

    /// The build log directory: the DIR argument (or the old `--log-dir`), else
    /// $BUILD_LOG_DIR, else /var/log/container-build.
    pub fn log_dir(&self) -> PathBuf {
        self.log_dir
            .clone()
            .or_else(|| self.path.clone())
            .unwrap_or_else(|| PathBuf::from("/var/log/container-build"))
    }

    pub fn config(&self) -> anyhow::Result<ServeConfig> {
        let positive = |v: Duration, what: &str| {
            if v.is_zero() {
                Err(UsageError(format!("{what} must be more than 0")))
            } else {
                Ok(v)
            }
        };
        let log_dir = self.log_dir();
        let timezone = jiff::tz::TimeZone::get(&self.timezone)
            .map_err(|e| UsageError(format!("unknown time zone {:?}: {e}", self.timezone)))?;
        let auth = self.auth()?;
        let disk_paths = if self.disk_paths.is_empty() {
            vec![
                PathBuf::from("/cache"),
                PathBuf::from("/workspace"),
                log_dir.clone(),
            ]
        } else {
            self.disk_paths.clone()
        };
        Ok(ServeConfig {
            log_dir,
            refresh: positive(self.refresh_interval, "--refresh-interval")?,
            parse: ParseOptions {
                timezone,
                // UTC is the flag's default: only another zone was chosen on purpose.
                timezone_given: self.timezone != "UTC",
                ..ParseOptions::default()
            },
            auth,
            limits: ConnectionLimits {
                header_read_timeout: positive(self.header_read_timeout, "--header-read-timeout")?,
                idle_timeout: positive(self.idle_timeout, "--idle-timeout")?,
                max_connections: if self.max_connections == 0 {
                    return Err(UsageError("--max-connections must be at least 1".into()).into());
                } else {
                    self.max_connections
                },
            },
            runtime: RuntimeConfig {
                health_command: if self.no_health_check {
                    None
                } else {
                    self.health_command
                        .clone()
                        .filter(|c| !c.trim().is_empty())
                        .or_else(RuntimeConfig::default_health_command)
                },
                health_timeout: positive(self.health_timeout, "--health-timeout")?,
                disk_paths,
                start_time: RuntimeConfig::start_time_from(Path::new(START_TIME_FILE)),
            },
        })
    }

    fn auth(&self) -> anyhow::Result<MetricsAuth> {
        let bearer = secret_from("METRICS_BEARER_TOKEN", self.bearer_token_file.as_ref())?;
        let user = self.basic_auth_user.clone().filter(|u| !u.is_empty());
        let password = secret_from(
            "METRICS_BASIC_AUTH_PASSWORD",
            self.basic_auth_password_file.as_ref(),
        )?;
        match (bearer, user, password) {
            (Some(_), Some(_), _) => Err(UsageError(
                "choose basic auth or a bearer token for /metrics, not both".into(),
            )
            .into()),
            (Some(t), None, _) => Ok(MetricsAuth::Bearer(t)),
            (None, Some(u), Some(p)) => Ok(MetricsAuth::basic(&u, &p)),
            (None, Some(_), None) => Err(UsageError(
                "basic auth needs a password: METRICS_BASIC_AUTH_PASSWORD or --basic-auth-password-file"
                    .into(),
            )
            .into()),
            (None, None, Some(_)) => Err(UsageError(
                "a basic auth password without a user: set METRICS_BASIC_AUTH_USER".into(),
            )
            .into()),
            (None, None, None) => Ok(MetricsAuth::None),
        }
    }
}

pub fn run_serve(args: ServeArgs) -> anyhow::Result<i32> {
    let addr = args.listen_addr()?;
    let cfg = args.config()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!(
            "buildlog: serving metrics of {} on http://{}/metrics (refresh every {:?})",
            cfg.log_dir.display(),
            listener.local_addr()?,
            cfg.refresh
        );
        serve(listener, cfg, shutdown_signal()).await?;
        Ok(exit::OK)
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
