//! `buildlog ship`: parse as `convert` does and fan the events out to the chosen sinks.

use super::exit;
use super::input::InputArgs;
use crate::error::UsageError;
use crate::pipeline;
use crate::sink::dead_letter::DeadLetter;
use crate::sink::stdout::StdoutSink;
use crate::sink::Sink;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  buildlog ship --loki http://127.0.0.1:3100 /var/log/container-build
  buildlog ship --loki http://127.0.0.1:3100 --stdout old-builds/*/
  buildlog ship --loki http://127.0.0.1:3100 buildlog-dead-letter.jsonl
  buildlog ship --elasticsearch http://127.0.0.1:9200 --schema ecs /build/logs
  buildlog ship --elasticsearch http://es:9200 --index 'logs-%Y.%m.%d' old/
  buildlog ship --config /etc/buildlog/buildlog.toml --follow /build/logs

A dead-letter file is replayed by shipping it. With --follow, SIGTERM or SIGINT stops
reading, flushes for at most --shutdown-timeout, writes the checkpoint and exits 0; a
second signal exits at once (the checkpoint keeps what was delivered).
See docs/operations.md and docs/configuration.md.")]
pub struct ShipArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Also write the events to stdout, one JSON object per line.
    #[arg(long)]
    pub stdout: bool,

    /// Where events that cannot be delivered are written (JSON lines, replayable with `ship`).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "buildlog-dead-letter.jsonl"
    )]
    pub dead_letter: PathBuf,

    // Boxed: their many flags would make `Command::Ship` much larger than the other commands.
    #[command(flatten)]
    pub loki: Box<crate::sink::loki::LokiArgs>,

    #[command(flatten)]
    pub elasticsearch: Box<crate::sink::elasticsearch::ElasticsearchArgs>,

    #[command(flatten)]
    pub transport: crate::sink::http::TransportArgs,

    #[command(flatten)]
    pub forward: crate::sink::forward::ForwardArgs,

    #[command(flatten)]
    pub otlp: Box<crate::sink::otlp::OtlpArgs>,

    #[command(flatten)]
    pub live: LiveArgs,
}

/// Following live builds (`--follow`).
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Keep following the given build log directories or files (like `tail -F`) and ship
    /// events as their lines complete, until SIGTERM/SIGINT.
    #[arg(long, help_heading = "Follow")]
    pub follow: bool,

    /// Where the positions file (checkpoints) is kept; a restart resumes from it.
    #[arg(
        long,
        value_name = "DIR",
        env = "BUILDLOG_STATE_DIR",
        help_heading = "Follow"
    )]
    pub state_dir: Option<PathBuf>,

    /// How often to look for new lines and files (`250ms`; a bare number is milliseconds).
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = crate::duration::millis, help_heading = "Follow")]
    pub poll_interval: Duration,

    /// How long an event the JSON logger also writes waits for that line (its exact time
    /// and id) before it goes out without (`5s`; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::duration::secs, help_heading = "Follow")]
    pub twin_wait: Duration,

    /// The build is over once no file grew for this long: open features are closed as
    /// aborted and, once delivered, ship exits (`0`: never). A sentinel in
    /// `build-failure.log` ends the build at once.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = crate::duration::secs, help_heading = "Follow")]
    pub idle_end: Duration,

    /// How often the checkpoint is written when it moved (`1s`; a bare number is
    /// milliseconds).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::duration::millis, help_heading = "Follow")]
    pub checkpoint_interval: Duration,

    /// On SIGTERM/SIGINT, how long the sinks may take to deliver what they hold (`10s`; a
    /// bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::duration::secs, help_heading = "Follow")]
    pub shutdown_timeout: Duration,

    /// Serve the shipper's own metrics (events read, queued, acknowledged, dead-lettered,
    /// backlog, delivery lag, checkpoint age) at http://ADDR/metrics while following.
    #[arg(long, value_name = "ADDR", help_heading = "Follow")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// A disk buffer between the follower and each sink: when a sink is slow or down, events
    /// are spooled here (one subdirectory per sink) and sent in order when it recovers.
    #[arg(long, value_name = "DIR", help_heading = "Follow")]
    pub buffer_dir: Option<PathBuf>,

    /// The most the disk buffer holds per sink, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20, help_heading = "Follow")]
    pub buffer_max_bytes: u64,

    /// When the disk buffer is full: wait (the logs stay unread meanwhile) or drop the oldest
    /// spooled events (counted, with a warning).
    #[arg(long, value_enum, default_value_t = crate::spool::WhenFull::Block, help_heading = "Follow")]
    pub buffer_when_full: crate::spool::WhenFull,
}

pub fn run(mut args: ShipArgs) -> anyhow::Result<i32> {
    let opts = args.input.parse_options()?;
    // Replaying the dead-letter file into itself would append to what is being read.
    if let Some(i) = super::output::output_is_input(&args.dead_letter, &args.input.inputs()) {
        return Err(UsageError(format!(
            "the dead-letter file {} is also an input ({}): replaying it would append to the file being read; name another with --dead-letter (e.g. --dead-letter retry.jsonl)",
            args.dead_letter.display(),
            i.display()
        ))
        .into());
    }
    if !args.live.follow {
        refuse_retries_to_refusing_servers(&mut args);
    }
    let dead_letter = DeadLetter::new(Some(&args.dead_letter));
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(s) = args.loki.build(&args.transport, dead_letter.clone())? {
        sinks.push(s);
    }
    if let Some(s) = args
        .elasticsearch
        .build(&args.transport, dead_letter.clone())?
    {
        sinks.push(s);
    }
    sinks.extend(args.forward.build(dead_letter.clone())?);
    sinks.extend(args.otlp.build(dead_letter.clone())?);
    if args.stdout {
        sinks.push(Box::new(StdoutSink {
            flush_each_wakeup: true,
        }));
    }
    if sinks.is_empty() {
        return Err(UsageError(
            "ship needs at least one sink: --loki, --elasticsearch, --forward, --otlp or --stdout"
                .into(),
        )
        .into());
    }
    let mut spool_failures = Vec::new();
    let report = if args.live.follow {
        let report = follow(&args, opts, sinks, dead_letter.clone())?;
        // A disk buffer that could not be written (full disk): the follower stopped there.
        // What was acknowledged is in the checkpoint; the rest is read again after a restart.
        spool_failures = crate::spool::take_failures();
        report
    } else {
        if args.live.state_dir.is_some()
            || args.live.buffer_dir.is_some()
            || args.live.metrics_listen.is_some()
        {
            return Err(UsageError(
                "--state-dir, --buffer-dir and --metrics-listen need --follow".into(),
            )
            .into());
        }
        pipeline::run(args.input.inputs(), opts, sinks, args.input.quiet)?
    };
    for s in &report.sinks {
        eprintln!(
            "buildlog: {}: {} events, {} delivered ({} already stored), {} retries, {} dead-lettered, {} dropped",
            s.name, s.received, s.delivered, s.already_present, s.retried, s.dead_lettered, s.dropped
        );
        if s.dead_lettered > 0 {
            for (reason, n) in dead_letter.reasons(&s.name) {
                eprintln!("buildlog: {}: {n} dead-lettered: {reason}", s.name);
            }
        }
    }
    if dead_letter.count() > 0 {
        eprintln!(
            "buildlog: {} events could not be delivered; they are in {}",
            dead_letter.count(),
            args.dead_letter.display()
        );
    }
    if !spool_failures.is_empty() {
        for f in &spool_failures {
            eprintln!("buildlog: error: {f}");
        }
        eprintln!(
            "buildlog: stopped: the disk buffer could not be written; the checkpoint keeps what was delivered, the rest is read again after a restart"
        );
        return Ok(exit::FAILURE);
    }
    Ok(
        if !report.sinks.iter().all(|s| s.all_delivered()) || dead_letter.count() > 0 {
            exit::UNDELIVERED
        } else if !report.parse.errors.is_empty() {
            exit::INPUT_ERROR
        } else {
            exit::OK
        },
    )
}

/// True when nothing listens at `address` (`HOST:PORT`): every address it resolves to
/// refuses the connection. A timeout or a name that does not resolve is not a refusal.
fn refuses(address: &str) -> bool {
    use std::net::ToSocketAddrs;
    let Ok(addrs) = address.to_socket_addrs() else {
        return false;
    };
    let addrs: Vec<_> = addrs.collect();
    !addrs.is_empty()
        && addrs.iter().all(|a| {
            matches!(
                std::net::TcpStream::connect_timeout(a, Duration::from_secs(2)),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            )
        })
}

/// `HOST:PORT` of an http(s) URL.
fn url_address(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?))
}

/// A batch `ship` to a server that refuses connections when it starts would retry each
/// request for minutes before dead-lettering it: such a sink gets no retries, so its events
/// go to the dead-letter file at once (with the cause) and the command ends in seconds.
/// `--follow` keeps retrying: a daemon waits for its servers.
fn refuse_retries_to_refusing_servers(args: &mut ShipArgs) {
    use crate::duration::RetryLimit;
    let check = |name: &str, address: Option<String>, max: &mut RetryLimit| {
        let Some(address) = address else { return };
        if *max != RetryLimit::Times(0) && refuses(&address) {
            eprintln!(
                "buildlog: {name}: {address} refuses connections (Connection refused): \
                 not retrying, its events go to the dead-letter file"
            );
            *max = RetryLimit::Times(0);
        }
    };
    let loki = args.loki.loki.as_deref().and_then(url_address);
    check("loki", loki, &mut args.loki.loki_retry_max);
    let es = args
        .elasticsearch
        .elasticsearch
        .as_deref()
        .and_then(url_address);
    check("elasticsearch", es, &mut args.elasticsearch.es_retry_max);
    let fwd = args.forward.forward.clone();
    check("forward", fwd, &mut args.forward.forward_retry_max);
    let otlp = args
        .otlp
        .otlp
        .as_deref()
        .filter(|u| !u.is_empty())
        .and_then(url_address);
    check("otlp", otlp, &mut args.otlp.otlp_retry_max);
}

/// `ship --follow`: runs until SIGTERM/SIGINT.
fn follow(
    args: &ShipArgs,
    opts: crate::parse::ParseOptions,
    sinks: Vec<Box<dyn Sink>>,
    dead_letter: DeadLetter,
) -> anyhow::Result<pipeline::PipelineReport> {
    let mut paths = Vec::new();
    for input in args.input.inputs() {
        match input {
            crate::source::Input::Path(p) => paths.push(p),
            _ => {
                return Err(UsageError(
                    "--follow takes build log directories or files, not stdin".into(),
                )
                .into())
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The second signal exits at once: registered first, it fires when `stop` is already set.
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let cfg = crate::live::FollowConfig {
        paths,
        poll_interval: args.live.poll_interval.max(Duration::from_millis(10)),
        timing: super::convert::follow_timing(args.live.twin_wait, args.live.idle_end),
        state_dir: args.live.state_dir.clone(),
        checkpoint_interval: args.live.checkpoint_interval.max(Duration::from_millis(10)),
        shutdown_timeout: args.live.shutdown_timeout,
        stop,
        metrics_listen: args.live.metrics_listen,
        dead_letter: Some(dead_letter),
        buffer: args
            .live
            .buffer_dir
            .clone()
            .map(|dir| crate::live::BufferConfig {
                dir,
                max_bytes: args.live.buffer_max_bytes,
                when_full: args.live.buffer_when_full,
            }),
    };
    if args.live.buffer_max_bytes < 64 * 1024 {
        return Err(UsageError("--buffer-max-bytes must be at least 65536".into()).into());
    }
    let report = crate::live::run(opts, sinks, cfg)?;
    Ok(report)
}
