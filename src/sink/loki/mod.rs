//! Grafana Loki push sink (`buildlog ship --loki`), in the three parts every sink has:
//! `config` (flags, environment, validation), `encoder` (events to streams, entries and
//! request bodies, with `proto` for the wire messages), and `client`/`service` (sending,
//! batching, retries, dead-lettering).

pub mod client;
pub mod config;
pub mod encoder;
pub mod proto;
pub mod service;
pub mod wire;

pub use config::{LokiArgs, LokiConfig};
pub use service::LokiSink;

use super::dead_letter::DeadLetter;
use super::http::TransportArgs;
use super::Sink;

impl LokiArgs {
    /// The Loki sink, when `--loki` is given; a `UsageError` for a configuration that cannot work.
    pub fn build(
        &self,
        transport: &TransportArgs,
        dead_letter: DeadLetter,
    ) -> anyhow::Result<Option<Box<dyn Sink>>> {
        let Some(cfg) = self.config()? else {
            return Ok(None);
        };
        let http = transport.client()?;
        Ok(Some(Box::new(LokiSink::new(cfg, http, dead_letter))))
    }
}
