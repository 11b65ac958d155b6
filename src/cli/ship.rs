//! `buildlog ship`: parse as `convert` does and fan the events out to the chosen sinks.

use super::input::InputArgs;
use super::{exit, UsageError};
use crate::pipeline;
use crate::sink::dead_letter::DeadLetter;
use crate::sink::stdout::StdoutSink;
use crate::sink::Sink;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  buildlog ship --loki http://127.0.0.1:3100 /var/log/container-build
  buildlog ship --loki http://127.0.0.1:3100 --stdout old-builds/*.tar.gz
  buildlog ship --loki http://127.0.0.1:3100 dead-letter.jsonl   # replay a dead-letter file
  buildlog ship --elasticsearch http://127.0.0.1:9200 /var/log/container-build
  buildlog ship --elasticsearch https://es.example:9200 --ca-file ca.pem --schema ecs \\
      --index 'build-logs-%Y.%m.%d' old-builds/")]
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
}

pub fn run(args: ShipArgs) -> anyhow::Result<i32> {
    let opts = args.input.parse_options()?;
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
    if args.stdout {
        sinks.push(Box::new(StdoutSink { flush_each: true }));
    }
    if sinks.is_empty() {
        return Err(UsageError(
            "ship needs at least one sink: --loki, --elasticsearch or --stdout".into(),
        )
        .into());
    }
    let report = pipeline::run(args.input.inputs(), opts, sinks, args.input.quiet)?;
    for s in &report.sinks {
        eprintln!(
            "buildlog: {}: {} events, {} delivered ({} already stored), {} retries, {} dead-lettered, {} dropped",
            s.name, s.received, s.delivered, s.already_present, s.retried, s.dead_lettered, s.dropped
        );
    }
    if dead_letter.count() > 0 {
        eprintln!(
            "buildlog: {} events could not be delivered; they are in {}",
            dead_letter.count(),
            args.dead_letter.display()
        );
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
