//! `ship --loki` flags and environment, validated into a `LokiConfig`.
//!
//! Labels are Loki's index: every distinct label set is a stream, so only low-cardinality
//! values may become labels. Identifiers (correlation, trace, event ids, command numbers)
//! travel as structured metadata or in the line instead, and a configuration that would turn
//! them into labels, or exceed Loki's default limit of 15 label names, is refused up front.

use crate::error::UsageError;
use crate::event::Event;
use crate::sink::http::{secret_from, Auth};
use crate::sink::retry::Backoff;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// The identifiers sent as structured metadata (or in the line).
pub const IDENTIFIER_KEYS: &[&str] = &[
    "correlation_id",
    "event_type",
    "command_num",
    "event_id",
    "trace_id",
    "span_id",
    "logger_correlation_id",
];

/// Loki's default `max_label_names_per_series`.
pub const MAX_LABEL_NAMES: usize = 15;
/// Loki's default `max_label_name_length` and `max_label_value_length`.
pub const MAX_LABEL_NAME_LEN: usize = 1024;
pub const MAX_LABEL_VALUE_LEN: usize = 2048;
/// Loki's default `max_line_size` (256 KiB; exactly this many bytes still passes).
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Args)]
pub struct LokiArgs {
    /// Loki base URL; events are pushed to URL/loki/api/v1/push.
    #[arg(long, value_name = "URL", env = "LOKI_URL", help_heading = "Loki")]
    pub loki: Option<String>,

    /// Request body: snappy-compressed protobuf (Loki's native push) or JSON.
    #[arg(long, value_enum, default_value_t = LokiEncoding::Protobuf, help_heading = "Loki")]
    pub loki_encoding: LokiEncoding,

    /// Body compression: snappy (protobuf, Loki's native push; the default there) or gzip or
    /// none (JSON; none is the default there).
    #[arg(long, value_enum, value_name = "ALG", help_heading = "Loki")]
    pub loki_compression: Option<crate::sink::compression::Compression>,

    /// Old spelling of `--loki-compression gzip`.
    #[arg(long, hide = true, conflicts_with = "loki_compression")]
    pub loki_gzip: bool,

    /// A static label NAME=VALUE (repeatable). Defaults: job=container-build and host=<hostname>;
    /// `--label host=` removes one.
    #[arg(long = "label", value_name = "NAME=VALUE", help_heading = "Loki")]
    pub labels: Vec<String>,

    /// An event field that becomes a label, as FIELD or NAME=FIELD (repeatable; replaces the
    /// default `feature` and `level`). Fields: feature, level, event_type, stage, version,
    /// source_file, metadata.KEY.
    #[arg(
        long = "label-field",
        value_name = "[NAME=]FIELD",
        help_heading = "Loki"
    )]
    pub label_fields: Vec<String>,

    /// Put correlation id, event type, command number, trace and event ids into the line
    /// instead of Loki 3's structured metadata (for Loki 2).
    #[arg(
        long,
        help_heading = "Loki",
        conflicts_with = "loki_structured_metadata"
    )]
    pub no_structured_metadata: bool,

    /// Only these identifiers as structured metadata, comma-separated (the others go into a
    /// raw or logfmt line; a JSON line has them all): correlation_id, event_type,
    /// command_num, event_id, trace_id, span_id, logger_correlation_id. Default: all.
    #[arg(
        long,
        value_name = "KEYS",
        value_delimiter = ',',
        help_heading = "Loki"
    )]
    pub loki_structured_metadata: Vec<String>,

    /// The log line: the JSON event, the raw log line, or logfmt.
    #[arg(long, value_enum, default_value_t = LineFormat::Json, help_heading = "Loki")]
    pub line_format: LineFormat,

    /// Tenant id, sent as X-Scope-OrgID (multi-tenant Loki). Also $LOKI_TENANT_ID.
    #[arg(long, value_name = "ID", env = "LOKI_ORG_ID", help_heading = "Loki")]
    pub loki_tenant: Option<String>,

    /// Basic-auth user; the password comes from $LOKI_PASSWORD or --loki-password-file.
    #[arg(
        long,
        value_name = "USER",
        env = "LOKI_USERNAME",
        help_heading = "Loki"
    )]
    pub loki_user: Option<String>,

    /// File holding the basic-auth password (else $LOKI_PASSWORD).
    #[arg(long, value_name = "FILE", help_heading = "Loki")]
    pub loki_password_file: Option<PathBuf>,

    /// File holding a bearer token (else $LOKI_BEARER_TOKEN).
    #[arg(long, value_name = "FILE", help_heading = "Loki")]
    pub loki_bearer_token_file: Option<PathBuf>,

    /// A request is sent once its entries reach this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024, help_heading = "Loki")]
    pub loki_batch_bytes: usize,

    /// ... or when its first entry has waited this long (`1s`, `500ms`).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::duration::secs, help_heading = "Loki")]
    pub loki_batch_wait: Duration,

    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4, help_heading = "Loki")]
    pub loki_concurrency: usize,

    /// Lines longer than this are cut with a marker (Loki's default max_line_size).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE_BYTES, help_heading = "Loki")]
    pub loki_max_line_bytes: usize,

    /// First retry delay (`500ms`, `2s`); later ones double, with jitter.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = crate::duration::secs, alias = "loki-min-backoff", help_heading = "Loki")]
    pub loki_retry_initial: Duration,

    /// Longest retry delay, also the cap on a server's Retry-After.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::duration::secs, alias = "loki-max-backoff", help_heading = "Loki")]
    pub loki_retry_max_wait: Duration,

    /// Retries of a request before its entries go to the dead-letter file; `infinite` for a
    /// daemon that keeps its events until Loki is back.
    #[arg(long, value_name = "N", default_value = "10", value_parser = crate::duration::retry_limit, alias = "loki-max-retries", help_heading = "Loki")]
    pub loki_retry_max: crate::duration::RetryLimit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LokiEncoding {
    Protobuf,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LineFormat {
    /// The event as JSON (what `buildlog convert` prints).
    Json,
    /// The log line as it was written (ANSI codes and control bytes kept, secrets scrubbed).
    Raw,
    /// `key=value` pairs.
    Logfmt,
}

/// An event field a label can take its value from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Feature,
    Level,
    EventType,
    Stage,
    Version,
    SourceFile,
    Metadata(String),
}

impl Field {
    fn parse(s: &str) -> Result<Field, String> {
        Ok(match s {
            "feature" => Field::Feature,
            "level" => Field::Level,
            "event_type" => Field::EventType,
            "stage" => Field::Stage,
            "version" => Field::Version,
            "source_file" | "source.file" => Field::SourceFile,
            _ => {
                if let Some(k) = s.strip_prefix("metadata.").filter(|k| !k.is_empty()) {
                    return Ok(Field::Metadata(k.to_string()));
                }
                return Err(match s {
                    "correlation_id" | "logger_correlation_id" | "event_id" | "trace_id"
                    | "span_id" | "command_num" | "seq" => format!(
                        "--label-field {s}: identifiers must not be labels (each value would be a new \
                         Loki stream); it is sent as structured metadata"
                    ),
                    _ => format!(
                        "--label-field {s}: not a label field; use feature, level, event_type, stage, \
                         version, source_file or metadata.KEY"
                    ),
                });
            }
        })
    }

    /// Whether `a` and `b` have the same value of this field; the fields of the default
    /// labels compared as they are (once per event shipped), not as their text.
    pub fn same(&self, a: &Event, b: &Event) -> bool {
        match self {
            Field::Feature => crate::short_eq::short_eq(&a.feature, &b.feature),
            Field::Level => a.level == b.level,
            Field::EventType => a.event_type == b.event_type,
            _ => self.value(a) == self.value(b),
        }
    }

    /// The value of this field in `e` ("" when absent: the label is then left out).
    pub fn value<'a>(&self, e: &'a Event) -> std::borrow::Cow<'a, str> {
        use std::borrow::Cow;
        match self {
            Field::Feature => Cow::Borrowed(&e.feature),
            Field::Level => Cow::Borrowed(e.level.as_lower()),
            Field::EventType => Cow::Borrowed(e.event_type.as_str()),
            Field::Stage => Cow::Borrowed(e.stage.as_deref().unwrap_or("")),
            Field::Version => Cow::Borrowed(e.version.as_deref().unwrap_or("")),
            Field::SourceFile => Cow::Borrowed(&e.source.file),
            Field::Metadata(k) => match e.metadata.get(k) {
                None | Some(serde_json::Value::Null) => Cow::Borrowed(""),
                Some(serde_json::Value::String(s)) => Cow::Borrowed(s),
                Some(v) => Cow::Owned(v.to_string()),
            },
        }
    }
}

/// Where one label's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelValue {
    Static(String),
    Field(Field),
}

/// The validated configuration of the Loki sink.
#[derive(Debug, Clone)]
pub struct LokiConfig {
    pub push_url: String,
    pub encoding: LokiEncoding,
    pub gzip: bool,
    /// Sorted by name (Loki's canonical label order).
    pub labels: Vec<(String, LabelValue)>,
    pub structured_metadata: bool,
    /// `--loki-structured-metadata`: only these identifiers; `None`: all.
    pub structured_metadata_keys: Option<Vec<String>>,
    pub line_format: LineFormat,
    pub tenant: Option<String>,
    pub auth: Auth,
    pub batch_bytes: usize,
    pub batch_wait: Duration,
    pub concurrency: usize,
    pub max_line_bytes: usize,
    pub backoff: Backoff,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// A label name made valid for Loki (`[a-zA-Z_][a-zA-Z0-9_]*`): other characters become `_`,
/// a leading digit gets a `_` in front.
pub fn sanitize_label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn positive(flag: &str, d: Duration) -> anyhow::Result<Duration> {
    if d.is_zero() || d > Duration::from_secs(86_400) {
        return Err(usage(format!(
            "{flag} must be more than 0 and at most a day, not {}",
            crate::duration::format(d)
        )));
    }
    Ok(d)
}

impl LokiArgs {
    /// Validates the flags; `None` when `--loki` is not given.
    pub fn config(&self) -> anyhow::Result<Option<LokiConfig>> {
        let Some(url) = &self.loki else {
            return Ok(None);
        };
        let base = url.trim_end_matches('/');
        let parsed = reqwest::Url::parse(base)
            .map_err(|e| usage(format!("--loki {url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(usage(format!("--loki {url:?}: only http and https URLs")));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // A URL ends up in error messages; credentials must not.
            return Err(usage(
                "--loki: no credentials in the URL; use $LOKI_USERNAME with $LOKI_PASSWORD \
                 (or --loki-password-file), or $LOKI_BEARER_TOKEN",
            ));
        }
        let push_url = if base.ends_with("/loki/api/v1/push") {
            base.to_string()
        } else {
            format!("{base}/loki/api/v1/push")
        };
        use crate::sink::compression::Compression;
        let compression = if self.loki_gzip {
            Some(Compression::Gzip)
        } else {
            self.loki_compression
        };
        let gzip = match (self.loki_encoding, compression) {
            (LokiEncoding::Protobuf, None | Some(Compression::Snappy)) => false,
            (LokiEncoding::Protobuf, Some(c)) => {
                return Err(usage(format!(
                    "--loki-compression {c}: Loki's protobuf push is always snappy-compressed; \
                     for gzip or none use --loki-encoding json"
                )))
            }
            (LokiEncoding::Json, Some(Compression::Gzip)) => true,
            (LokiEncoding::Json, None | Some(Compression::None)) => false,
            (LokiEncoding::Json, Some(Compression::Snappy)) => return Err(usage(
                "--loki-compression snappy: Loki takes snappy with --loki-encoding protobuf only; \
                     JSON bodies are gzip or none",
            )),
        };
        let labels = self.label_set(crate::sink::http::hostname())?;
        if self.loki_batch_bytes < 1024 {
            return Err(usage("--loki-batch-bytes must be at least 1024"));
        }
        if self.loki_concurrency == 0 || self.loki_concurrency > 64 {
            return Err(usage("--loki-concurrency must be between 1 and 64"));
        }
        if self.loki_max_line_bytes < 1024 {
            return Err(usage("--loki-max-line-bytes must be at least 1024"));
        }
        let backoff = Backoff::checked(
            "--loki",
            self.loki_retry_initial,
            self.loki_retry_max_wait,
            self.loki_retry_max,
        )?;
        let tenant = self
            .loki_tenant
            .clone()
            .or_else(|| std::env::var("LOKI_TENANT_ID").ok())
            .filter(|t| !t.is_empty());
        Ok(Some(LokiConfig {
            push_url,
            encoding: self.loki_encoding,
            gzip,
            labels,
            structured_metadata: !self.no_structured_metadata,
            structured_metadata_keys: self.structured_metadata_keys()?,
            line_format: self.line_format,
            tenant,
            auth: self.auth()?,
            batch_bytes: self.loki_batch_bytes,
            batch_wait: positive("--loki-batch-wait", self.loki_batch_wait)?,
            concurrency: self.loki_concurrency,
            max_line_bytes: self.loki_max_line_bytes,
            backoff,
        }))
    }

    fn structured_metadata_keys(&self) -> anyhow::Result<Option<Vec<String>>> {
        if self.loki_structured_metadata.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::new();
        for k in &self.loki_structured_metadata {
            let k = k.trim();
            if k.is_empty() {
                continue;
            }
            if !IDENTIFIER_KEYS.contains(&k) {
                return Err(usage(format!(
                    "--loki-structured-metadata {k:?}: not an identifier; use {}",
                    IDENTIFIER_KEYS.join(", ")
                )));
            }
            keys.push(k.to_string());
        }
        Ok(Some(keys))
    }

    fn auth(&self) -> anyhow::Result<Auth> {
        let token = secret_from("LOKI_BEARER_TOKEN", self.loki_bearer_token_file.as_ref())?;
        let user = self.loki_user.clone().filter(|u| !u.is_empty());
        match (user, token) {
            (Some(_), Some(_)) => Err(usage(
                "Loki credentials: give either a user (basic auth) or a bearer token, not both",
            )),
            (Some(user), None) => {
                let password = secret_from("LOKI_PASSWORD", self.loki_password_file.as_ref())?
                    .ok_or_else(|| {
                        usage(format!(
                            "Loki user {user:?} has no password: set $LOKI_PASSWORD or --loki-password-file"
                        ))
                    })?;
                Ok(Auth::Basic { user, password })
            }
            (None, Some(token)) => Ok(Auth::Bearer(token)),
            (None, None) => {
                if self.loki_password_file.is_some() {
                    return Err(usage("--loki-password-file needs --loki-user"));
                }
                Ok(Auth::None)
            }
        }
    }

    /// The label names and where their values come from, sorted by name.
    fn label_set(&self, host: Option<String>) -> anyhow::Result<Vec<(String, LabelValue)>> {
        let mut labels: Vec<(String, LabelValue)> =
            vec![("job".into(), LabelValue::Static("container-build".into()))];
        if let Some(h) = host {
            labels.push(("host".into(), LabelValue::Static(h)));
        }
        let set = |labels: &mut Vec<(String, LabelValue)>, name: String, v: Option<LabelValue>| {
            labels.retain(|(n, _)| *n != name);
            if let Some(v) = v {
                labels.push((name, v));
            }
        };
        let fields: Vec<String> = if self.label_fields.is_empty() {
            vec!["feature".into(), "level".into()]
        } else {
            self.label_fields.clone()
        };
        let mut field_names = Vec::new();
        for spec in &fields {
            let (name, field) = match spec.split_once('=') {
                Some((n, f)) => (n.trim().to_string(), f.trim()),
                None => (spec.trim().to_string(), spec.trim()),
            };
            let field = Field::parse(field).map_err(usage)?;
            let name = checked_name(&name, &format!("--label-field {spec}"))?;
            if field_names.contains(&name) {
                return Err(usage(format!(
                    "--label-field {spec}: label {name:?} is given twice"
                )));
            }
            field_names.push(name.clone());
            set(&mut labels, name, Some(LabelValue::Field(field)));
        }
        for spec in &self.labels {
            let Some((name, value)) = spec.split_once('=') else {
                return Err(usage(format!("--label {spec:?}: expected NAME=VALUE")));
            };
            let name = checked_name(name.trim(), &format!("--label {spec}"))?;
            if field_names.contains(&name) {
                return Err(usage(format!(
                    "--label {spec}: {name:?} is already a --label-field"
                )));
            }
            if value.len() > MAX_LABEL_VALUE_LEN {
                return Err(usage(format!(
                    "--label {name}: the value is longer than Loki's {MAX_LABEL_VALUE_LEN} bytes"
                )));
            }
            let v = (!value.is_empty()).then(|| LabelValue::Static(value.to_string()));
            set(&mut labels, name, v);
        }
        if labels.is_empty() {
            return Err(usage(
                "Loki needs at least one label per stream; keep job or add --label NAME=VALUE",
            ));
        }
        if labels.len() > MAX_LABEL_NAMES {
            let names: Vec<&str> = labels.iter().map(|(n, _)| n.as_str()).collect();
            return Err(usage(format!(
                "{} Loki labels ({}) exceed Loki's default limit of {MAX_LABEL_NAMES} label names per stream",
                labels.len(),
                names.join(", ")
            )));
        }
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(labels)
    }
}

/// Sanitises a label name and refuses what cannot be one.
fn checked_name(name: &str, what: &str) -> anyhow::Result<String> {
    if name.is_empty() {
        return Err(usage(format!("{what}: empty label name")));
    }
    let clean = sanitize_label_name(name);
    if clean.starts_with("__") {
        return Err(usage(format!(
            "{what}: label names starting with __ are reserved"
        )));
    }
    if clean.len() > MAX_LABEL_NAME_LEN {
        return Err(usage(format!(
            "{what}: label name longer than {MAX_LABEL_NAME_LEN} bytes"
        )));
    }
    if clean != name {
        tracing::warn!("{what}: label name {name:?} sent as {clean:?} (Loki's label name rules)");
    }
    Ok(clean)
}

/// `LokiArgs` parsed from `--loki http://127.0.0.1:3100/` and `extra`, for unit tests.
#[cfg(test)]
pub(crate) fn test_args(extra: &[&str]) -> LokiArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        loki: LokiArgs,
    }
    let mut v = vec!["t", "--loki", "http://127.0.0.1:3100/"];
    v.extend_from_slice(extra);
    T::try_parse_from(v).unwrap().loki
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> LokiArgs {
        test_args(a)
    }

    fn names(c: &LokiConfig) -> Vec<&str> {
        c.labels.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn defaults_are_low_cardinality() {
        let a = args(&[]);
        let labels = a.label_set(Some("ci-7".into())).unwrap();
        assert_eq!(
            labels,
            vec![
                ("feature".into(), LabelValue::Field(Field::Feature)),
                ("host".into(), LabelValue::Static("ci-7".into())),
                ("job".into(), LabelValue::Static("container-build".into())),
                ("level".into(), LabelValue::Field(Field::Level)),
            ]
        );
        let c = a.config().unwrap().unwrap();
        assert_eq!(c.push_url, "http://127.0.0.1:3100/loki/api/v1/push");
        assert!(c.structured_metadata);
        assert_eq!(c.batch_bytes, 1 << 20);
        assert_eq!(c.max_line_bytes, 262_144);
    }

    #[test]
    fn statics_fields_and_removal() {
        let a = args(&[
            "--label",
            "env=ci",
            "--label",
            "host=",
            "--label-field",
            "kind=event_type",
            "--label-field",
            "feature",
            "--label-field",
            "metadata.status",
        ]);
        let c = a.config().unwrap().unwrap();
        assert_eq!(
            names(&c),
            vec!["env", "feature", "job", "kind", "metadata_status"]
        );
        assert!(c.labels.contains(&(
            "metadata_status".into(),
            LabelValue::Field(Field::Metadata("status".into()))
        )));
    }

    #[test]
    fn label_names_are_sanitised() {
        assert_eq!(sanitize_label_name("build-host.name"), "build_host_name");
        assert_eq!(sanitize_label_name("9lives"), "_9lives");
        assert_eq!(sanitize_label_name("ok_Name1"), "ok_Name1");
        let c = args(&["--label", "team-name=infra"])
            .config()
            .unwrap()
            .unwrap();
        assert!(names(&c).contains(&"team_name"));
    }

    #[test]
    fn refuses_too_many_labels_and_identifiers() {
        let mut a: Vec<String> = Vec::new();
        for i in 0..12 {
            a.push("--label".into());
            a.push(format!("l{i}=v"));
        }
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        // job, host, feature, level + 12 = 16 names
        let err = args(&refs).label_set(Some("h".into())).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some());
        assert!(err.to_string().contains("16 Loki labels"), "{err}");
        // 15 is still fine
        assert_eq!(
            args(&refs[..22]).label_set(Some("h".into())).unwrap().len(),
            15
        );

        for f in ["correlation_id", "event_id", "trace_id", "command_num"] {
            let e = args(&["--label-field", f]).config().unwrap_err();
            assert!(e.to_string().contains("structured metadata"), "{e}");
        }
        assert!(args(&["--label-field", "message"]).config().is_err());
        assert!(args(&["--label", "novalue"]).config().is_err());
        assert!(args(&["--label", "__name__=x"]).config().is_err());
        assert!(
            args(&["--label-field", "a=feature", "--label-field", "a=level"])
                .config()
                .is_err()
        );
    }

    #[test]
    fn refuses_bad_settings() {
        assert!(args(&["--loki-gzip"]).config().is_err());
        assert!(args(&["--loki-compression", "gzip"]).config().is_err());
        assert!(args(&["--loki-compression", "none"]).config().is_err());
        assert!(
            !args(&["--loki-compression", "snappy"])
                .config()
                .unwrap()
                .unwrap()
                .gzip
        );
        let json = |c: &str| {
            args(&["--loki-encoding", "json", "--loki-compression", c])
                .config()
                .map(|c| c.unwrap().gzip)
        };
        assert!(json("gzip").unwrap());
        assert!(!json("none").unwrap());
        assert!(json("snappy").is_err());
        // the old switch still means gzip
        assert!(
            args(&["--loki-encoding", "json", "--loki-gzip"])
                .config()
                .unwrap()
                .unwrap()
                .gzip
        );
        assert!(args(&["--loki-concurrency", "0"]).config().is_err());
        assert!(args(&["--loki-batch-wait", "0"]).config().is_err());
        assert!(
            args(&["--loki-retry-initial", "5s", "--loki-retry-max-wait", "1s"])
                .config()
                .is_err()
        );
        // old spellings, bare numbers in their old unit (seconds)
        let c = args(&[
            "--loki-min-backoff",
            "2",
            "--loki-max-backoff",
            "60",
            "--loki-max-retries",
            "100000",
            "--loki-batch-wait",
            "0.25",
        ])
        .config()
        .unwrap()
        .unwrap();
        assert_eq!(c.backoff.min, Duration::from_secs(2));
        assert_eq!(c.backoff.max, Duration::from_secs(60));
        assert_eq!(c.backoff.max_retries, 100_000);
        assert_eq!(c.batch_wait, Duration::from_millis(250));
        let c = args(&[
            "--loki-retry-initial",
            "250ms",
            "--loki-retry-max",
            "infinite",
        ])
        .config()
        .unwrap()
        .unwrap();
        assert_eq!(c.backoff.min, Duration::from_millis(250));
        assert_eq!(c.backoff.max_retries, u32::MAX);
        let mut bad = args(&[]);
        bad.loki = Some("https://ci:hunter2@loki.example.com".into());
        let e = bad.config().unwrap_err().to_string();
        assert!(!e.contains("hunter2") && e.contains("LOKI_PASSWORD"), "{e}");
        bad.loki = Some("ftp://x".into());
        assert!(bad.config().is_err());
        bad.loki = None;
        assert!(bad.config().unwrap().is_none());
    }

    #[test]
    fn structured_metadata_keys_are_checked() {
        let c = args(&["--loki-structured-metadata", "correlation_id, trace_id"])
            .config()
            .unwrap()
            .unwrap();
        assert_eq!(
            c.structured_metadata_keys,
            Some(vec!["correlation_id".to_string(), "trace_id".to_string()])
        );
        let e = args(&["--loki-structured-metadata", "correlation_id,host"])
            .config()
            .unwrap_err();
        assert!(e.to_string().contains("\"host\": not an identifier"), "{e}");
        assert!(args(&[])
            .config()
            .unwrap()
            .unwrap()
            .structured_metadata_keys
            .is_none());
    }

    #[test]
    fn credentials_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        let c = args(&[
            "--loki-user",
            "ci",
            "--loki-password-file",
            p.to_str().unwrap(),
        ])
        .config()
        .unwrap()
        .unwrap();
        assert_eq!(
            c.auth,
            Auth::Basic {
                user: "ci".into(),
                password: "s3cret".into()
            }
        );
        let c = args(&["--loki-bearer-token-file", p.to_str().unwrap()])
            .config()
            .unwrap()
            .unwrap();
        assert_eq!(c.auth, Auth::Bearer("s3cret".into()));
        assert!(args(&[
            "--loki-user",
            "ci",
            "--loki-bearer-token-file",
            p.to_str().unwrap()
        ])
        .config()
        .is_err());
    }

    #[test]
    fn field_values() {
        let mut e = Event::new(
            crate::event::EventType::Command,
            crate::event::Level::Warn,
            "Python",
            "x",
        )
        .with_meta("exit_code", 1)
        .with_meta("status", "failed");
        e.stage = Some("install".into());
        assert_eq!(Field::Level.value(&e), "warn");
        assert_eq!(Field::EventType.value(&e), "command");
        assert_eq!(Field::Stage.value(&e), "install");
        assert_eq!(Field::Version.value(&e), "");
        assert_eq!(Field::Metadata("exit_code".into()).value(&e), "1");
        assert_eq!(Field::Metadata("status".into()).value(&e), "failed");
    }
}
