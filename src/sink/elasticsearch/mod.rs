//! Elasticsearch / OpenSearch `_bulk` sink (issue #5), in the Vector layout: `config`
//! (flags, validation), `encoder` (events to NDJSON), `client` (one HTTP request and what
//! its answer means) and `service` (batching, concurrency, retries, dead-lettering).
//! `setup` installs the templates and lifecycle policies of `elasticsearch/`.

pub mod client;
pub mod config;
pub mod encoder;
pub mod service;
pub mod setup;

pub use config::{ElasticsearchArgs, EsAuthArgs, EsConfig};

use super::dead_letter::DeadLetter;
use super::http::TransportArgs;
use super::Sink;

impl ElasticsearchArgs {
    /// The sink, or `None` when `--elasticsearch` is not given.
    pub fn build(
        &self,
        transport: &TransportArgs,
        dead_letter: DeadLetter,
    ) -> anyhow::Result<Option<Box<dyn Sink>>> {
        let Some(cfg) = self.config()? else {
            return Ok(None);
        };
        let http = transport.client()?;
        Ok(Some(Box::new(service::ElasticsearchSink::new(
            cfg,
            http,
            dead_letter,
        ))))
    }
}
