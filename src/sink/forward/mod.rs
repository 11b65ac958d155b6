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
#[command(next_help_heading = "Forward")]
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
    /// How long to wait for a connection, a write or an ack (a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::duration::secs)]
    pub forward_timeout: Duration,
    /// Retries of a message after the first attempt, before it goes to the dead-letter file;
    /// `infinite` for a daemon.
    #[arg(long, value_name = "N", default_value = "10", value_parser = crate::duration::retry_limit, alias = "forward-retries")]
    pub forward_retry_max: crate::duration::RetryLimit,
    /// First retry delay (`500ms`; a bare number is milliseconds); doubles, with jitter.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = crate::duration::millis, alias = "forward-retry-min-ms")]
    pub forward_retry_initial: Duration,
    /// Longest retry delay.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::duration::secs)]
    pub forward_retry_max_wait: Duration,
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
    pub fn config(&self) -> Result<Option<ForwardConfig>, crate::error::UsageError> {
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
            return Err(crate::error::UsageError(format!(
                "--forward wants HOST:PORT, got {address:?}"
            )));
        }
        if self.forward_batch == 0 {
            return Err(crate::error::UsageError(
                "--forward-batch must be at least 1".into(),
            ));
        }
        if self.forward_timeout.is_zero() {
            return Err(crate::error::UsageError(
                "--forward-timeout must be positive".into(),
            ));
        }
        Ok(Some(ForwardConfig {
            address: address.clone(),
            tag: self.forward_tag.clone(),
            mode: self.forward_mode,
            ack: self.forward_ack,
            batch: self.forward_batch,
            timeout: self.forward_timeout,
            backoff: Backoff::checked(
                "--forward",
                self.forward_retry_initial,
                self.forward_retry_max_wait,
                self.forward_retry_max,
            )?,
        }))
    }

    pub fn build(&self, dead_letter: DeadLetter) -> anyhow::Result<Option<Box<dyn Sink>>> {
        Ok(self
            .config()?
            .map(|c| Box::new(client::ForwardSink::new(c, dead_letter)) as Box<dyn Sink>))
    }
}
