//! Grafana Loki push sink (issue #4).

use super::dead_letter::DeadLetter;
use super::Sink;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct LokiArgs {
    /// Loki base URL; events are pushed to URL/loki/api/v1/push.
    #[arg(long, value_name = "URL")]
    pub loki: Option<String>,
}

impl LokiArgs {
    pub fn build(&self, _dead_letter: DeadLetter) -> anyhow::Result<Option<Box<dyn Sink>>> {
        if self.loki.is_some() {
            anyhow::bail!("the Loki sink is not built yet");
        }
        Ok(None)
    }
}
