//! The input flags shared by every command that reads build logs (`convert`, `metrics`, `ship`).

use crate::parse::{Format, ParseOptions};
use crate::source::Input;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Files, build log directories, `.gz` files, or `-` for stdin.
    /// Default: $BUILD_LOG_DIR, else stdin.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Input format; detected from content when not given.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,

    /// IANA time zone the build's local times are in.
    #[arg(
        long,
        value_name = "TZ",
        default_value = "UTC",
        env = "BUILDLOG_TIMEZONE"
    )]
    pub timezone: String,

    /// Correlation id for every event (else the build's own, else derived from its content).
    #[arg(long, value_name = "ID", env = "BUILD_CORRELATION_ID")]
    pub correlation_id: Option<String>,

    /// Do not scrub secrets from the events (said on stderr).
    #[arg(long)]
    pub no_scrub: bool,

    /// Lines longer than this are cut and flagged `truncated`.
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    pub max_line_bytes: usize,

    /// No progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

impl InputArgs {
    /// The inputs to read: the given paths, else $BUILD_LOG_DIR, else stdin.
    pub fn inputs(&self) -> Vec<Input> {
        if self.paths.is_empty() {
            if let Some(dir) = std::env::var_os("BUILD_LOG_DIR").filter(|d| !d.is_empty()) {
                return vec![Input::from_path(PathBuf::from(dir))];
            }
            return vec![Input::Stdin];
        }
        self.paths.iter().cloned().map(Input::from_path).collect()
    }

    pub fn parse_options(&self) -> anyhow::Result<ParseOptions> {
        let tz = jiff::tz::TimeZone::get(&self.timezone).map_err(|e| {
            crate::error::UsageError(format!("unknown time zone {:?}: {e}", self.timezone))
        })?;
        if self.max_line_bytes < 1024 {
            return Err(
                crate::error::UsageError("--max-line-bytes must be at least 1024".into()).into(),
            );
        }
        if let Some(id) = &self.correlation_id {
            if id.trim().is_empty() {
                return Err(
                    crate::error::UsageError("--correlation-id must not be empty".into()).into(),
                );
            }
        }
        if self.no_scrub {
            eprintln!("buildlog: secret scrubbing is OFF (--no-scrub): secrets in the logs are passed on as they are");
        }
        Ok(ParseOptions {
            format: self.format,
            timezone: tz,
            correlation_id: self.correlation_id.clone(),
            scrub: !self.no_scrub,
            max_line_bytes: self.max_line_bytes,
        })
    }
}
