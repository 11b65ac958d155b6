//! `buildlog es ...` (issue #5).

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum EsCommand {
    /// Install index templates, component templates and the ILM policy.
    Setup {
        /// Elasticsearch or OpenSearch base URL.
        url: String,
    },
}

pub fn run(_cmd: EsCommand) -> anyhow::Result<i32> {
    Err(super::UsageError("`buildlog es` is not built yet".into()).into())
}
