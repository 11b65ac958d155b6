//! Elasticsearch / OpenSearch `_bulk` sink (issue #5).

use super::dead_letter::DeadLetter;
use super::Sink;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct ElasticsearchArgs {
    /// Elasticsearch or OpenSearch base URL; events are sent to URL/_bulk.
    #[arg(long, value_name = "URL")]
    pub elasticsearch: Option<String>,
}

impl ElasticsearchArgs {
    pub fn build(&self, _dead_letter: DeadLetter) -> anyhow::Result<Option<Box<dyn Sink>>> {
        if self.elasticsearch.is_some() {
            anyhow::bail!("the Elasticsearch sink is not built yet");
        }
        Ok(None)
    }
}
