//! `buildlog metrics` and `buildlog serve` (issue #3).

use super::input::InputArgs;
use clap::Args;

#[derive(Debug, Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: String,
}

pub fn run_metrics(_args: MetricsArgs) -> anyhow::Result<i32> {
    Err(super::UsageError("`buildlog metrics` is not built yet".into()).into())
}

pub fn run_serve(_args: ServeArgs) -> anyhow::Result<i32> {
    Err(super::UsageError("`buildlog serve` is not built yet".into()).into())
}
