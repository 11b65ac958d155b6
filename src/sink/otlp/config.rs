//! OTLP sink configuration: the `--otlp*` flags and the standard `OTEL_*` environment
//! variables of the OpenTelemetry exporter specification. Flags override the environment;
//! the signal-specific variables (`OTEL_EXPORTER_OTLP_TRACES_*`) override the generic ones.

use crate::error::UsageError;
use crate::sink::http::TransportArgs;
use crate::sink::retry::Backoff;
use clap::{Args, ValueEnum};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The wire protocols of OTLP, named as `OTEL_EXPORTER_OTLP_PROTOCOL` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    #[value(name = "http/protobuf")]
    HttpProtobuf,
    #[value(name = "http/json")]
    HttpJson,
    #[value(name = "grpc")]
    Grpc,
}

impl Protocol {
    fn parse(s: &str) -> Option<Protocol> {
        Protocol::from_str(s.trim(), true).ok()
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
            Protocol::Grpc => "grpc",
        }
    }
}

use crate::duration::RetryLimit;
pub use crate::sink::compression::Compression;

/// `buildlog ship --otlp [URL]` and its companions.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "OTLP")]
pub struct OtlpArgs {
    /// Send each build as a trace over OTLP. URL: the collector's base URL (`/v1/traces` is
    /// appended when it has no path) or, with a path, the full traces URL. Without URL:
    /// $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, $OTEL_EXPORTER_OTLP_ENDPOINT, else
    /// http://localhost:4318 (4317 for grpc). Also enabled by OTEL_ENABLED=true.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub otlp: Option<String>,

    /// OTLP protocol [env: OTEL_EXPORTER_OTLP_PROTOCOL; default http/protobuf].
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<Protocol>,

    /// Request body compression [env: OTEL_EXPORTER_OTLP_COMPRESSION; default gzip].
    #[arg(long, value_enum, value_name = "ALG")]
    pub otlp_compression: Option<Compression>,

    /// Extra request header `KEY=VALUE` (repeatable), added to $OTEL_EXPORTER_OTLP_HEADERS.
    #[arg(long, value_name = "KEY=VALUE")]
    pub otlp_header: Vec<String>,

    /// Timeout of one export request (`10s`; a bare number is milliseconds)
    /// [env: OTEL_EXPORTER_OTLP_TIMEOUT, in milliseconds; default 10s].
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::millis)]
    pub otlp_timeout: Option<Duration>,

    /// service.name of the resource [env: OTEL_SERVICE_NAME; default container-build].
    #[arg(long, value_name = "NAME")]
    pub otlp_service_name: Option<String>,

    /// Most spans in one export request.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub otlp_batch_spans: usize,

    /// Most bytes (encoded, before compression) in one export request.
    #[arg(long, value_name = "BYTES", default_value_t = 4 * 1024 * 1024)]
    pub otlp_batch_bytes: usize,

    /// Retries of a request refused with 429/502/503/504 (or UNAVAILABLE) or that timed out;
    /// `infinite` for a daemon.
    #[arg(long, value_name = "N", default_value = "10", value_parser = crate::duration::retry_limit, alias = "otlp-retries")]
    pub otlp_retry_max: RetryLimit,

    /// First wait before a retry (`500ms`; a bare number is milliseconds); doubles, with jitter.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = crate::duration::millis, alias = "otlp-backoff-ms")]
    pub otlp_retry_initial: Duration,

    /// Longest wait before a retry.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::duration::secs)]
    pub otlp_retry_max_wait: Duration,

    /// Most span events (warnings, errors, the failure sentinel) kept per span; the rest are
    /// counted in `build.span_events.dropped`.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub otlp_max_span_events: usize,

    /// A build that gets no new events for this long is considered ended and its
    /// feature and build spans are sent (for builds that stop being written).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = crate::duration::secs)]
    pub trace_idle_timeout: Duration,
}

/// Request headers. `Debug` shows the names only: headers often carry credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}: ***")))
            .finish()
    }
}

/// The W3C trace context a build's span is placed under (`TRACEPARENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

impl ParentContext {
    /// Parses a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`). All-zero ids are invalid.
    pub fn parse(s: &str) -> Option<ParentContext> {
        let parts: Vec<&str> = s.trim().split('-').collect();
        if parts.len() < 4 || parts[0].len() != 2 || parts[0] == "ff" {
            return None;
        }
        if parts[0] == "00" && parts.len() != 4 {
            return None;
        }
        let lower = |p: &str| {
            p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !parts[..4].iter().all(|p| lower(p)) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        let mut flags = [0u8; 1];
        hex::decode_to_slice(parts[1], &mut trace_id).ok()?;
        hex::decode_to_slice(parts[2], &mut span_id).ok()?;
        hex::decode_to_slice(parts[3], &mut flags).ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(ParentContext {
            trace_id,
            span_id,
            flags: flags[0],
        })
    }
}

/// Everything the sink needs, resolved from flags and environment.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// HTTP: the full traces URL. gRPC: the server's base URL.
    pub endpoint: String,
    pub protocol: Protocol,
    pub compression: Compression,
    pub headers: Headers,
    pub timeout: Duration,
    /// The resource: `service.name` first, then `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource: Vec<(String, String)>,
    pub parent: Option<ParentContext>,
    pub batch_spans: usize,
    pub batch_bytes: usize,
    pub backoff: Backoff,
    pub max_span_events: usize,
    pub idle_timeout: Duration,
    /// CA file for the server certificate (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub ca_file: Option<PathBuf>,
}

pub const DEFAULT_SERVICE_NAME: &str = "container-build";

impl OtlpArgs {
    /// Resolves the configuration from the flags and `env` (a lookup, so tests need not touch
    /// the process environment). `None`: the sink is off.
    pub fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpConfig>, UsageError> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let enabled_by_env = env("OTEL_ENABLED")
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
            .unwrap_or(false);
        if self.otlp.is_none() && !enabled_by_env {
            return Ok(None);
        }
        let protocol = match self.otlp_protocol {
            Some(p) => p,
            None => match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            {
                Some(v) => Protocol::parse(&v).ok_or_else(|| {
                    UsageError(format!(
                        "OTEL_EXPORTER_OTLP_PROTOCOL={v:?}: expected http/protobuf, http/json or grpc"
                    ))
                })?,
                None => Protocol::HttpProtobuf,
            },
        };
        let flag_url = self.otlp.clone().filter(|u| !u.trim().is_empty());
        let endpoint = if let Some(url) = flag_url {
            endpoint_from_base(&url, protocol, true)?
        } else if let Some(url) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            endpoint_from_base(&url, protocol, false)?
        } else if let Some(url) = env("OTEL_EXPORTER_OTLP_ENDPOINT") {
            endpoint_from_base(&url, protocol, true)?
        } else {
            let base = match protocol {
                Protocol::Grpc => "http://localhost:4317",
                _ => "http://localhost:4318",
            };
            endpoint_from_base(base, protocol, true)?
        };

        let compression = match self.otlp_compression {
            Some(Compression::Snappy) => {
                return Err(UsageError(
                    "--otlp-compression snappy: OTLP takes gzip or none".into(),
                ))
            }
            Some(c) => c,
            None => match env("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
                .or_else(|| env("OTEL_EXPORTER_OTLP_COMPRESSION"))
                .map(|v| v.trim().to_ascii_lowercase())
                .as_deref()
            {
                None | Some("gzip") => Compression::Gzip,
                Some("none") => Compression::None,
                Some("snappy") => {
                    return Err(UsageError(
                        "OTEL_EXPORTER_OTLP_COMPRESSION=snappy: OTLP takes gzip or none".into(),
                    ))
                }
                Some(other) => {
                    return Err(UsageError(format!(
                        "OTEL_EXPORTER_OTLP_COMPRESSION={other:?}: expected gzip or none"
                    )))
                }
            },
        };

        let mut headers = Vec::new();
        for var in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(v) = env(var) {
                for (k, val) in
                    parse_key_values(&v).map_err(|e| UsageError(format!("{var}: {e}")))?
                {
                    headers.retain(|(h, _): &(String, String)| !h.eq_ignore_ascii_case(&k));
                    headers.push((k, val));
                }
            }
        }
        for h in &self.otlp_header {
            let (k, v) = h.split_once('=').ok_or_else(|| {
                UsageError(format!(
                    "--otlp-header wants KEY=VALUE, got {:?}",
                    redact_value(h)
                ))
            })?;
            let k = k.trim().to_string();
            headers.retain(|(h, _)| !h.eq_ignore_ascii_case(&k));
            headers.push((k, v.trim().to_string()));
        }
        for (k, v) in &headers {
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(v).is_err()
            {
                return Err(UsageError(format!(
                    "invalid OTLP header name or value for {k:?}"
                )));
            }
        }

        let timeout_ms = match self.otlp_timeout {
            Some(d) => d.as_millis().min(u64::MAX as u128) as u64,
            None => match env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
                .or_else(|| env("OTEL_EXPORTER_OTLP_TIMEOUT"))
            {
                Some(v) => v.trim().parse::<u64>().map_err(|_| {
                    UsageError(format!(
                        "OTEL_EXPORTER_OTLP_TIMEOUT={v:?}: expected milliseconds"
                    ))
                })?,
                None => 10_000,
            },
        };
        if timeout_ms == 0 {
            return Err(UsageError("the OTLP timeout must be positive".into()));
        }

        let mut resource: Vec<(String, String)> = Vec::new();
        if let Some(v) = env("OTEL_RESOURCE_ATTRIBUTES") {
            resource = parse_key_values(&v)
                .map_err(|e| UsageError(format!("OTEL_RESOURCE_ATTRIBUTES: {e}")))?;
        }
        let service_name = self
            .otlp_service_name
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .or_else(|| {
                resource
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
        resource.retain(|(k, _)| k != "service.name");
        resource.insert(0, ("service.name".into(), service_name));

        let parent = match env("TRACEPARENT") {
            Some(tp) => Some(ParentContext::parse(&tp).ok_or_else(|| {
                UsageError(format!(
                    "TRACEPARENT={tp:?} is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)"
                ))
            })?),
            None => None,
        };

        if self.otlp_batch_spans == 0 || self.otlp_batch_bytes < 1024 {
            return Err(UsageError(
                "--otlp-batch-spans must be positive and --otlp-batch-bytes at least 1024".into(),
            ));
        }
        if self.trace_idle_timeout.is_zero() {
            return Err(UsageError("--trace-idle-timeout must be positive".into()));
        }
        let ca_file = env("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE")
            .or_else(|| env("OTEL_EXPORTER_OTLP_CERTIFICATE"))
            .map(PathBuf::from);

        Ok(Some(OtlpConfig {
            endpoint,
            protocol,
            compression,
            headers: Headers(headers),
            timeout: Duration::from_millis(timeout_ms),
            resource,
            parent,
            batch_spans: self.otlp_batch_spans,
            batch_bytes: self.otlp_batch_bytes,
            backoff: Backoff::checked(
                "--otlp",
                self.otlp_retry_initial,
                self.otlp_retry_max_wait,
                self.otlp_retry_max,
            )?,
            max_span_events: self.otlp_max_span_events,
            idle_timeout: self.trace_idle_timeout,
            ca_file,
        }))
    }
}

impl OtlpConfig {
    /// The HTTP client: verified TLS (system roots plus the configured CA), the export timeout.
    pub fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        TransportArgs {
            ca_file: self.ca_file.clone(),
            request_timeout: self.timeout,
            connect_timeout: self.timeout.min(Duration::from_secs(10)),
            ..Default::default()
        }
        .client()
    }
}

/// The traces endpoint for a URL: gRPC uses the base; HTTP appends `/v1/traces` to a base URL
/// (`append`, for the generic variable and the flag) when the URL has no path of its own.
fn endpoint_from_base(url: &str, protocol: Protocol, append: bool) -> Result<String, UsageError> {
    let url = url.trim();
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| UsageError(format!("OTLP endpoint {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(UsageError(format!(
            "OTLP endpoint {url:?} must be an http:// or https:// URL"
        )));
    }
    if protocol == Protocol::Grpc {
        let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
        return Ok(format!(
            "{}://{}{port}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default()
        ));
    }
    let path = parsed.path();
    if append && (path.is_empty() || path == "/") {
        Ok(format!("{}/v1/traces", url.trim_end_matches('/')))
    } else {
        Ok(url.to_string())
    }
}

/// `k1=v1,k2=v2` with percent-encoded values (the W3C Baggage form the OTel spec uses).
fn parse_key_values(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("{:?} is not KEY=VALUE", redact_value(item)))?;
        let k = k.trim();
        if k.is_empty() {
            return Err("empty key".into());
        }
        let v = percent_decode(v.trim())
            .ok_or_else(|| format!("bad percent-encoding in the value of {k}"))?;
        out.push((k.to_string(), v));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hexpair = b.get(i + 1..i + 3)?;
            let mut byte = [0u8; 1];
            hex::decode_to_slice(hexpair, &mut byte).ok()?;
            out.push(byte[0]);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `key=***`: error messages about a header never show its value.
fn redact_value(item: &str) -> String {
    match item.split_once('=') {
        Some((k, _)) => format!("{k}=***"),
        None => item.chars().take(20).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(args: &OtlpArgs, vars: &[(&str, &str)]) -> Result<Option<OtlpConfig>, UsageError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        args.resolve(&|k| map.get(k).cloned())
    }

    fn on(url: &str) -> OtlpArgs {
        OtlpArgs {
            otlp: Some(url.into()),
            otlp_batch_spans: 512,
            otlp_batch_bytes: 1 << 20,
            otlp_retry_max: RetryLimit::Times(3),
            otlp_retry_initial: Duration::from_millis(10),
            otlp_retry_max_wait: Duration::from_secs(30),
            otlp_max_span_events: 8,
            trace_idle_timeout: Duration::from_secs(30),
            ..Default::default()
        }
    }

    #[test]
    fn off_unless_flag_or_otel_enabled() {
        let mut a = on("");
        a.otlp = None;
        assert!(resolve(&a, &[]).unwrap().is_none());
        assert!(resolve(&a, &[("OTEL_ENABLED", "false")]).unwrap().is_none());
        let c = resolve(&a, &[("OTEL_ENABLED", "true")]).unwrap().unwrap();
        assert_eq!(c.endpoint, "http://localhost:4318/v1/traces");
    }

    #[test]
    fn endpoints_follow_the_spec() {
        let c = resolve(
            &on(""),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://tempo:4318/")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://tempo:4318/v1/traces");
        // The signal-specific variable is used as is and wins over the generic one.
        let c = resolve(
            &on(""),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://tempo:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "https://gw.example/otlp/traces",
                ),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "https://gw.example/otlp/traces");
        // The flag wins over both.
        let c = resolve(
            &on("http://127.0.0.1:9999"),
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://x/v1/traces")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:9999/v1/traces");
        let c = resolve(&on("http://127.0.0.1:9999/custom/path"), &[])
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:9999/custom/path");
        // gRPC keeps scheme, host and port only; its default port is 4317.
        let c = resolve(&on(""), &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.protocol, c.endpoint.as_str()),
            (Protocol::Grpc, "http://localhost:4317")
        );
        assert!(resolve(&on("ftp://x"), &[]).is_err());
        assert!(resolve(&on("not a url"), &[]).is_err());
    }

    #[test]
    fn protocol_headers_timeout_and_resource() {
        let mut a = on("http://h:4318");
        a.otlp_header = vec!["X-Scope-OrgID=tenant-b".into()];
        let c = resolve(
            &a,
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "Authorization=Bearer%20abc,X-Scope-OrgID=tenant-a",
                ),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "deployment.environment=ci,service.name=ignored,host.name=runner%2D7",
                ),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.protocol, Protocol::HttpJson);
        assert_eq!(
            c.headers.0,
            vec![
                ("Authorization".to_string(), "Bearer abc".to_string()),
                ("X-Scope-OrgID".to_string(), "tenant-b".to_string())
            ]
        );
        assert!(!format!("{:?}", c.headers).contains("abc"));
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(
            c.resource,
            vec![
                ("service.name".to_string(), "ignored".to_string()),
                ("deployment.environment".to_string(), "ci".to_string()),
                ("host.name".to_string(), "runner-7".to_string()),
            ]
        );
        // OTEL_SERVICE_NAME beats the resource attribute; the flag beats both.
        let c = resolve(
            &on(""),
            &[
                ("OTEL_SERVICE_NAME", "images"),
                ("OTEL_RESOURCE_ATTRIBUTES", "service.name=x"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.resource[0].1, "images");
        let mut a = on("");
        a.otlp_service_name = Some("flag".into());
        a.otlp_protocol = Some(Protocol::Grpc);
        let c = resolve(
            &a,
            &[
                ("OTEL_SERVICE_NAME", "images"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (c.resource[0].1.as_str(), c.protocol),
            ("flag", Protocol::Grpc)
        );
        assert_eq!(
            resolve(&on(""), &[]).unwrap().unwrap().resource[0].1,
            DEFAULT_SERVICE_NAME
        );
    }

    #[test]
    fn bad_environment_is_a_usage_error_that_hides_values() {
        for (k, v) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "ten"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ("TRACEPARENT", "00-xyz"),
        ] {
            assert!(resolve(&on(""), &[(k, v)]).is_err(), "{k}={v}");
        }
        let e = resolve(
            &on(""),
            &[(
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Bearer%zzsecret",
            )],
        )
        .unwrap_err();
        assert!(!e.0.contains("secret"), "{}", e.0);
        let mut a = on("");
        a.otlp_header = vec!["Authorization: Bearer s3cr3t".into()];
        let e = resolve(&a, &[]).unwrap_err();
        assert!(!e.0.contains("s3cr3t"), "{}", e.0);
    }

    #[test]
    fn traceparent_parses_w3c() {
        let p = ParentContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .unwrap();
        assert_eq!(hex::encode(p.trace_id), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(hex::encode(p.span_id), "b7ad6b7169203331");
        assert_eq!(p.flags, 1);
        for bad in [
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "",
        ] {
            assert!(ParentContext::parse(bad).is_none(), "{bad}");
        }
    }
}
