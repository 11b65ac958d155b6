//! Fluent forward protocol sink (`buildlog ship --forward HOST:PORT`), for Fluent Bit's and
//! Fluentd's `forward` input. Config (flags), encoder (events to MessagePack messages) and
//! client (TCP, acks, retries, dead letters) as in the other sinks.

pub mod client;
pub mod encoder;

use super::dead_letter::DeadLetter;
use super::retry::Backoff;
use super::Sink;
use clap::{Args, ValueEnum};
use std::time::Duration;

/// How events are framed in a forward message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ForwardMode {
    /// `[tag, [[time, record], ...], options]`
    #[default]
    Forward,
    /// `[tag, bin(<[time, record]>...), options]`: the entries as one binary blob.
    PackedForward,
}

#[derive(Debug, Clone, Args)]
pub struct ForwardArgs {
    /// Send events with the Fluent forward protocol to HOST:PORT (Fluent Bit or Fluentd `forward` input).
    #[arg(long, value_name = "HOST:PORT")]
    pub forward: Option<String>,
    /// The tag of forwarded records.
    #[arg(long, value_name = "TAG", default_value = "buildlog")]
    pub forward_tag: String,
    /// Forward or PackedForward mode.
    #[arg(long, value_enum, default_value_t = ForwardMode::Forward)]
    pub forward_mode: ForwardMode,
    /// Ask for an `ack` of every message (the `chunk` option) and resend what was not acknowledged.
    #[arg(long)]
    pub forward_ack: bool,
    /// Events per message.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub forward_batch: usize,
    /// Seconds to wait for a connection, a write or an ack.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub forward_timeout: f64,
    /// Retries of a message after the first attempt, before it goes to the dead-letter file.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub forward_retries: u32,
    /// First retry delay in milliseconds (doubling, with jitter, up to 30 s).
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub forward_retry_min_ms: u64,
}

/// The settings of a forward sink.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    pub address: String,
    pub tag: String,
    pub mode: ForwardMode,
    pub ack: bool,
    pub batch: usize,
    pub timeout: Duration,
    pub backoff: Backoff,
}

impl ForwardArgs {
    pub fn config(&self) -> Result<Option<ForwardConfig>, crate::cli::UsageError> {
        let Some(address) = &self.forward else {
            return Ok(None);
        };
        if !address.contains(':')
            || address
                .rsplit(':')
                .next()
                .unwrap_or("")
                .parse::<u16>()
                .is_err()
        {
            return Err(crate::cli::UsageError(format!(
                "--forward wants HOST:PORT, got {address:?}"
            )));
        }
        if self.forward_batch == 0 {
            return Err(crate::cli::UsageError(
                "--forward-batch must be at least 1".into(),
            ));
        }
        if !(self.forward_timeout.is_finite() && self.forward_timeout > 0.0) {
            return Err(crate::cli::UsageError(
                "--forward-timeout must be positive".into(),
            ));
        }
        let min = Duration::from_millis(self.forward_retry_min_ms.max(1));
        Ok(Some(ForwardConfig {
            address: address.clone(),
            tag: self.forward_tag.clone(),
            mode: self.forward_mode,
            ack: self.forward_ack,
            batch: self.forward_batch,
            timeout: Duration::from_secs_f64(self.forward_timeout),
            backoff: Backoff {
                min,
                max: Duration::from_secs(30).max(min),
                max_retries: self.forward_retries,
            },
        }))
    }

    pub fn build(&self, dead_letter: DeadLetter) -> anyhow::Result<Option<Box<dyn Sink>>> {
        Ok(self
            .config()?
            .map(|c| Box::new(client::ForwardSink::new(c, dead_letter)) as Box<dyn Sink>))
    }
}
