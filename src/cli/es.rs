//! `buildlog es ...`: Elasticsearch / OpenSearch helpers (issue #5).

use super::exit;
use crate::error::UsageError;
use crate::sink::elasticsearch::config::parse_server_url;
use crate::sink::elasticsearch::setup::{plan, SetupClient, SetupOptions};
use crate::sink::elasticsearch::EsAuthArgs;
use crate::sink::http::TransportArgs;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum EsCommand {
    /// Install (or update) the lifecycle policies, component templates and index templates
    /// of `elasticsearch/`, so that the data stream has the right mappings before the first
    /// document. Safe to run again.
    #[command(after_help = "\
Examples:
  buildlog es setup http://127.0.0.1:9200
  buildlog es setup https://es.example:9200 --delete-after 30d --pipeline

Credentials: $ELASTICSEARCH_USERNAME with $ELASTICSEARCH_PASSWORD, or an API key or token.")]
    Setup {
        /// Elasticsearch or OpenSearch base URL.
        url: String,
        /// Delete indices this long after they were created / rolled over (`90d`, `12h`).
        #[arg(long, value_name = "AGE", default_value = "90d")]
        delete_after: String,
        /// Index pattern of the data stream template.
        #[arg(long, value_name = "PATTERN", default_value = "logs-container_build-*")]
        data_stream_pattern: String,
        /// Index pattern of the dated-index template (for `ship --index`).
        #[arg(long, value_name = "PATTERN", default_value = "build-logs-*")]
        index_pattern: String,
        /// Also install the ingest pipeline `container-build` and make it the templates' default.
        #[arg(long)]
        pipeline: bool,
        #[command(flatten)]
        auth: EsAuthArgs,
        #[command(flatten)]
        transport: TransportArgs,
    },
}

pub fn run(cmd: EsCommand) -> anyhow::Result<i32> {
    match cmd {
        EsCommand::Setup {
            url,
            delete_after,
            data_stream_pattern,
            index_pattern,
            pipeline,
            auth,
            transport,
        } => {
            let base = parse_server_url(&url).map_err(UsageError)?;
            let client = SetupClient {
                http: transport.client()?,
                base,
                auth: auth.resolve()?,
            };
            let opts = SetupOptions {
                delete_after,
                data_stream_pattern,
                index_pattern,
                pipeline,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let info = client.server_info().await?;
                eprintln!(
                    "buildlog: {:?} {} at {}",
                    info.product, info.version, client.base
                );
                let steps = plan(&info, &opts)?;
                for line in client.apply(&steps).await? {
                    eprintln!("buildlog: {line}");
                }
                Ok(exit::OK)
            })
        }
    }
}
