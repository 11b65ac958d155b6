//! `buildlog convert`: build logs to JSON events on stdout (or `-o FILE`).

use super::input::InputArgs;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  buildlog convert /var/log/container-build > events.jsonl
  buildlog convert old-builds/2025-*/ -o all.jsonl
  tail -F /var/log/container-build/python-install.log | buildlog convert -
  buildlog convert --timezone America/Chicago build.tar.gz-extracted/")]
pub struct ConvertArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Write the events here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(_args: ConvertArgs) -> anyhow::Result<i32> {
    Ok(0)
}
