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

    /// IANA time zone the build's local times are in [default: learnt from the JSON logger's
    /// UTC times where the build has `json/`, else UTC].
    #[arg(long, value_name = "TZ", env = "BUILDLOG_TIMEZONE")]
    pub timezone: Option<String>,

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

    /// Builds parsed at once when the paths hold several (an archive of build directories,
    /// several paths); the output is the same bytes in the same order whatever N is
    /// [default: the available cores].
    #[arg(long, short, value_name = "N", env = "BUILDLOG_JOBS",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
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

    /// Looks at the inputs before reading them: refuses tar archives (their headers would be
    /// read as log lines), warns when `--format` does not match a file's content, and says
    /// on stderr that stdin is being read when it is a terminal (else the command would
    /// seem to hang).
    pub fn preflight(&self) -> anyhow::Result<()> {
        let inputs = self.inputs();
        for input in &inputs {
            let crate::source::Input::Path(p) = input else {
                continue;
            };
            if !p.is_file() {
                continue;
            }
            let head = read_head(p).unwrap_or_default();
            if is_tar(&head) {
                return Err(crate::error::UsageError(format!(
                    "{} is a tar archive; buildlog reads build log directories, log files and \
                     .gz files: extract it first (mkdir build && tar -xf {} -C build) and give \
                     the directory",
                    p.display(),
                    p.display()
                ))
                .into());
            }
            if self.format != Format::Auto {
                let by_content = crate::parse::detect::detect_content(&head);
                if by_content != self.format && !head.is_empty() {
                    eprintln!(
                        "buildlog: warning: {} does not look like --format {} (its content \
                         looks like {}); lines that format does not know become `unparsed` \
                         events",
                        p.display(),
                        format_name(self.format),
                        format_name(by_content)
                    );
                }
            }
        }
        if inputs == [crate::source::Input::Stdin] {
            use std::io::IsTerminal;
            if std::io::stdin().is_terminal() {
                eprintln!(
                    "buildlog: reading build logs from the terminal (stdin); give a PATH or \
                     pipe a log in, or type Ctrl-D to end (see --help)"
                );
            }
        }
        Ok(())
    }

    pub fn parse_options(&self) -> anyhow::Result<ParseOptions> {
        let tz = match &self.timezone {
            Some(name) => jiff::tz::TimeZone::get(name).map_err(|e| {
                crate::error::UsageError(format!("unknown time zone {name:?}: {e}"))
            })?,
            None => jiff::tz::TimeZone::UTC,
        };
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
        self.preflight()?;
        if self.no_scrub {
            eprintln!("buildlog: secret scrubbing is OFF (--no-scrub): secrets in the logs are passed on as they are");
        }
        Ok(ParseOptions {
            format: self.format,
            timezone: tz,
            timezone_given: self.timezone.is_some(),
            correlation_id: self.correlation_id.clone(),
            scrub: !self.no_scrub,
            max_line_bytes: self.max_line_bytes,
            jobs: self
                .jobs
                .map(usize::from)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        })
    }
}

/// The first 64 KiB of a file, gunzipped when it is gzip.
fn read_head(p: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(64 * 1024);
    crate::source::open_file(p)?
        .take(64 * 1024)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// A POSIX (ustar) or GNU tar header: the magic at offset 257.
pub fn is_tar(head: &[u8]) -> bool {
    head.len() >= 262 && &head[257..262] == b"ustar"
}

fn format_name(f: Format) -> String {
    use clap::ValueEnum;
    f.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| format!("{f:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_are_recognised() {
        let mut h = vec![0u8; 512];
        h[..13].copy_from_slice(b"build/x.log\0\0");
        assert!(!is_tar(&h));
        h[257..263].copy_from_slice(b"ustar\0");
        assert!(is_tar(&h));
        assert!(!is_tar(b"===== Feature Installation Log: Python"));
        assert_eq!(format_name(Format::InstallLog), "install-log");
    }
}
