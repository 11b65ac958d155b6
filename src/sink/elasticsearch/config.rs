//! `ship --elasticsearch` flags and their validation into a ready `EsConfig`.
//!
//! Flags are prefixed `--es-` (except the two the user names most, `--index` and
//! `--schema`) because the Loki sink's flags sit beside them in `buildlog ship`.

use super::encoder::{Action, IndexPattern, Schema, Target};
use crate::error::UsageError;
use crate::sink::http::{secret_from, Auth};
use crate::sink::retry::Backoff;
use clap::Args;
use reqwest::Url;
use std::path::PathBuf;
use std::time::Duration;

/// The data stream written when no `--index` is given.
pub const DEFAULT_DATA_STREAM: &str = "logs-container_build-default";

/// Credentials, shared by `ship --elasticsearch` and `es setup`. Values come from the
/// environment or from files, never from a flag value, and are never logged.
#[derive(Debug, Clone, Args, Default)]
pub struct EsAuthArgs {
    /// User name for basic auth; the password comes from $ELASTICSEARCH_PASSWORD or --es-password-file.
    #[arg(long, value_name = "USER", env = "ELASTICSEARCH_USERNAME")]
    pub es_user: Option<String>,
    /// File holding the basic-auth password (else $ELASTICSEARCH_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub es_password_file: Option<PathBuf>,
    /// File holding an API key, sent as `Authorization: ApiKey <key>` (else $ELASTICSEARCH_API_KEY).
    /// The key is the base64 `encoded` value Elasticsearch returns when it creates one.
    #[arg(long, value_name = "FILE")]
    pub es_api_key_file: Option<PathBuf>,
    /// File holding a bearer token (else $ELASTICSEARCH_BEARER_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub es_bearer_token_file: Option<PathBuf>,
}

impl EsAuthArgs {
    /// The one authentication method configured; more than one is a usage error.
    pub fn resolve(&self) -> anyhow::Result<Auth> {
        let api_key = secret_from("ELASTICSEARCH_API_KEY", self.es_api_key_file.as_ref())?;
        let bearer = secret_from(
            "ELASTICSEARCH_BEARER_TOKEN",
            self.es_bearer_token_file.as_ref(),
        )?;
        let user = self.es_user.clone().filter(|u| !u.is_empty());
        let mut methods = Vec::new();
        if let Some(k) = api_key {
            methods.push(Auth::ApiKey(k));
        }
        if let Some(t) = bearer {
            methods.push(Auth::Bearer(t));
        }
        if let Some(user) = user {
            let password = secret_from("ELASTICSEARCH_PASSWORD", self.es_password_file.as_ref())?
                .ok_or_else(|| {
                    UsageError(format!(
                        "basic auth for user {user:?} needs a password: set $ELASTICSEARCH_PASSWORD or --es-password-file"
                    ))
                })?;
            methods.push(Auth::Basic { user, password });
        } else if self.es_password_file.is_some() {
            return Err(UsageError("--es-password-file needs --es-user".into()).into());
        }
        match methods.len() {
            0 => Ok(Auth::None),
            1 => Ok(methods.pop().unwrap()),
            _ => Err(UsageError(
                "more than one Elasticsearch credential is set (API key, bearer token, user): keep one".into(),
            )
            .into()),
        }
    }
}

pub use crate::sink::compression::Compression;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Elasticsearch")]
pub struct ElasticsearchArgs {
    /// Elasticsearch or OpenSearch base URL; events are sent to URL/_bulk. A URL whose path
    /// ends in `/_bulk` is used as it is, query included (for servers that speak `_bulk`
    /// elsewhere, e.g. VictoriaLogs' `/insert/elasticsearch/_bulk?_msg_field=message`).
    #[arg(long, value_name = "URL", env = "ELASTICSEARCH_URL")]
    pub elasticsearch: Option<String>,

    /// Write to this index instead of the data stream. Date fields `%Y %m %d %H` are taken
    /// from each event's time (UTC), e.g. `build-logs-%Y.%m.%d`.
    #[arg(long, value_name = "NAME")]
    pub index: Option<String>,

    /// The data stream to write to when no --index is given.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_DATA_STREAM)]
    pub es_data_stream: String,

    /// Bulk action: `create` (idempotent, the default; the only one a data stream accepts)
    /// or `index` (replace documents of the same id; needs --index).
    #[arg(long, value_enum, value_name = "ACTION")]
    pub es_action: Option<Action>,

    /// Document shape: `native` (the event plus @timestamp) or `ecs` (Elastic Common Schema).
    #[arg(long, value_enum, default_value_t = Schema::Native)]
    pub schema: Schema,

    /// Ingest pipeline to run on every document (`pipeline=` on the bulk request).
    #[arg(long, value_name = "NAME")]
    pub es_pipeline: Option<String>,

    /// `service.name` of ECS documents.
    #[arg(
        long,
        value_name = "NAME",
        env = "OTEL_SERVICE_NAME",
        default_value = "container-build"
    )]
    pub es_service_name: String,

    /// Largest bulk request body, in bytes before compression (one larger document is sent alone).
    #[arg(long, value_name = "BYTES", default_value_t = 5 * 1024 * 1024)]
    pub es_max_bytes: usize,

    /// Most documents in one bulk request.
    #[arg(long, value_name = "N", default_value_t = 5000)]
    pub es_max_docs: usize,

    /// Bulk requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub es_concurrency: usize,

    /// Request body compression: gzip or none (Elasticsearch takes no snappy).
    #[arg(long, value_enum, value_name = "ALG", default_value_t = Compression::Gzip)]
    pub es_compression: Compression,

    /// Send what is buffered after this long without a full request (follow mode).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::duration::secs)]
    pub es_flush_interval: Duration,

    /// Retries of a request or of failed items (429, 5xx, connection errors) before they go
    /// to the dead-letter file; `infinite` for a daemon.
    #[arg(long, value_name = "N", default_value = "10", value_parser = crate::duration::retry_limit, alias = "es-max-retries")]
    pub es_retry_max: crate::duration::RetryLimit,

    /// First wait before a retry (doubled each retry, with full jitter).
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = crate::duration::secs, alias = "es-backoff-min")]
    pub es_retry_initial: Duration,

    /// Longest wait before a retry.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::duration::secs, alias = "es-backoff-max")]
    pub es_retry_max_wait: Duration,

    #[command(flatten)]
    pub auth: EsAuthArgs,
}

/// Everything the sink needs, validated.
#[derive(Debug, Clone)]
pub struct EsConfig {
    /// Where bulk requests go, query included.
    pub bulk_url: Url,
    pub target: Target,
    pub action: Action,
    pub schema: Schema,
    pub service_name: String,
    pub max_bytes: usize,
    pub max_docs: usize,
    pub concurrency: usize,
    pub gzip: bool,
    pub flush_interval: Duration,
    pub backoff: Backoff,
    pub auth: Auth,
    /// ECS `host.name`.
    pub host_name: Option<String>,
}

impl ElasticsearchArgs {
    /// `None` when `--elasticsearch` is not given.
    pub fn config(&self) -> anyhow::Result<Option<EsConfig>> {
        let Some(url) = &self.elasticsearch else {
            return Ok(None);
        };
        let usage = |m: String| -> anyhow::Error { UsageError(m).into() };
        let bulk_url = bulk_url(url, self.es_pipeline.as_deref()).map_err(usage)?;
        let target = match &self.index {
            Some(name) => Target::Index(IndexPattern::parse(name).map_err(usage)?),
            None => {
                let p = IndexPattern::parse(&self.es_data_stream).map_err(usage)?;
                if !p.is_fixed() {
                    return Err(usage(format!(
                        "--es-data-stream {:?}: a data stream name has no date fields (use --index for dated indices)",
                        self.es_data_stream
                    )));
                }
                Target::DataStream(self.es_data_stream.clone())
            }
        };
        let action = self.es_action.unwrap_or_default();
        if matches!(target, Target::DataStream(_)) && action != Action::Create {
            return Err(usage(
                "a data stream accepts only `create` actions: use --es-action create, or --index NAME for `index`".into(),
            ));
        }
        if self.es_max_bytes < 1024 {
            return Err(usage("--es-max-bytes must be at least 1024".into()));
        }
        if self.es_max_docs == 0 || self.es_concurrency == 0 {
            return Err(usage(
                "--es-max-docs and --es-concurrency must be at least 1".into(),
            ));
        }
        let backoff = Backoff::checked(
            "--es",
            self.es_retry_initial,
            self.es_retry_max_wait,
            self.es_retry_max,
        )?;
        if self.es_flush_interval.is_zero() {
            return Err(usage("--es-flush-interval must be more than 0".into()));
        }
        if self.es_compression == Compression::Snappy {
            return Err(usage(
                "--es-compression snappy: Elasticsearch takes gzip or none".into(),
            ));
        }
        Ok(Some(EsConfig {
            bulk_url,
            target,
            action,
            schema: self.schema,
            service_name: self.es_service_name.clone(),
            max_bytes: self.es_max_bytes,
            max_docs: self.es_max_docs,
            concurrency: self.es_concurrency,
            gzip: self.es_compression == Compression::Gzip,
            flush_interval: self.es_flush_interval,
            backoff,
            auth: self.auth.resolve()?,
            host_name: crate::sink::http::hostname(),
        }))
    }
}

/// Parses a server URL given by the user; refuses credentials in it (they would end up in
/// logs and process lists: use the environment or files).
pub fn parse_server_url(url: &str) -> Result<Url, String> {
    let u = Url::parse(url).map_err(|e| format!("not a URL: {url:?}: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("{url:?}: only http and https URLs are supported"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(
            "credentials in the URL are refused: use $ELASTICSEARCH_USERNAME/$ELASTICSEARCH_PASSWORD, an API key or a token file"
                .into(),
        );
    }
    Ok(u)
}

/// The bulk endpoint for a user's URL: `http://h:9200` and `http://h:9200/` give
/// `http://h:9200/_bulk`; a path ending in `/_bulk` is kept as is. `filter_path` trims
/// success items to what the sink reads.
pub fn bulk_url(url: &str, pipeline: Option<&str>) -> Result<Url, String> {
    let mut u = parse_server_url(url)?;
    if !u.path().ends_with("/_bulk") {
        let path = format!("{}/_bulk", u.path().trim_end_matches('/'));
        u.set_path(&path);
    }
    let has = |k: &str| u.query_pairs().any(|(n, _)| n == k);
    let add_filter = !has("filter_path");
    let add_pipeline = pipeline.filter(|_| !has("pipeline"));
    if add_filter || add_pipeline.is_some() {
        let mut q = u.query_pairs_mut();
        if add_filter {
            q.append_pair(
                "filter_path",
                "errors,items.*._id,items.*.status,items.*.error",
            );
        }
        if let Some(p) = add_pipeline {
            q.append_pair("pipeline", p);
        }
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        es: ElasticsearchArgs,
    }

    fn parse(args: &[&str]) -> anyhow::Result<Option<EsConfig>> {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).unwrap().es.config()
    }

    #[test]
    fn bulk_urls() {
        let u = bulk_url("http://127.0.0.1:9200", None).unwrap();
        assert_eq!(u.path(), "/_bulk");
        assert!(u.query().unwrap().starts_with("filter_path="));
        let u = bulk_url("https://es.example/prefix/", Some("p1")).unwrap();
        assert_eq!(u.path(), "/prefix/_bulk");
        assert!(u.query_pairs().any(|(k, v)| k == "pipeline" && v == "p1"));
        let u = bulk_url(
            "http://127.0.0.1:9428/insert/elasticsearch/_bulk?_msg_field=message&_time_field=@timestamp",
            None,
        )
        .unwrap();
        assert_eq!(u.path(), "/insert/elasticsearch/_bulk");
        assert!(u
            .query_pairs()
            .any(|(k, v)| k == "_time_field" && v == "@timestamp"));
        assert!(bulk_url("http://u:p@h:9200", None).is_err());
        assert!(bulk_url("ftp://h", None).is_err());
        assert!(bulk_url("not a url", None).is_err());
    }

    #[test]
    fn defaults_to_the_data_stream_with_create() {
        let c = parse(&["--elasticsearch", "http://127.0.0.1:9200"])
            .unwrap()
            .unwrap();
        assert_eq!(c.target, Target::DataStream(DEFAULT_DATA_STREAM.into()));
        assert_eq!(c.action, Action::Create);
        assert_eq!(c.max_bytes, 5 * 1024 * 1024);
        assert!(c.gzip);
        assert!(parse(&[]).unwrap().is_none());
    }

    #[test]
    fn usage_errors() {
        for args in [
            &["--elasticsearch", "http://h:9200", "--es-action", "index"][..],
            &["--elasticsearch", "http://h:9200", "--index", "Bad"],
            &[
                "--elasticsearch",
                "http://h:9200",
                "--es-data-stream",
                "logs-%Y",
            ],
            &["--elasticsearch", "http://h:9200", "--es-max-docs", "0"],
            &["--elasticsearch", "http://h:9200", "--es-backoff-min=0"],
            &[
                "--elasticsearch",
                "http://h:9200",
                "--es-flush-interval",
                "0",
            ],
        ] {
            let err = parse(args).unwrap_err();
            assert!(
                err.downcast_ref::<UsageError>().is_some(),
                "{args:?}: {err}"
            );
        }
        let c = parse(&[
            "--elasticsearch",
            "http://h:9200",
            "--index",
            "build-logs-%Y.%m.%d",
            "--es-action",
            "index",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.action, Action::Index);
    }

    #[test]
    fn credentials_from_files_one_method_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "c2VjcmV0OmtleQ==\n").unwrap();
        let tok = dir.path().join("tok");
        std::fs::write(&tok, "t0k").unwrap();
        let a = EsAuthArgs {
            es_api_key_file: Some(key.clone()),
            ..Default::default()
        };
        assert_eq!(
            a.resolve().unwrap(),
            Auth::ApiKey("c2VjcmV0OmtleQ==".into())
        );
        let a = EsAuthArgs {
            es_user: Some("elastic".into()),
            es_password_file: Some(tok.clone()),
            ..Default::default()
        };
        assert_eq!(
            a.resolve().unwrap(),
            Auth::Basic {
                user: "elastic".into(),
                password: "t0k".into()
            }
        );
        let a = EsAuthArgs {
            es_api_key_file: Some(key),
            es_bearer_token_file: Some(tok.clone()),
            ..Default::default()
        };
        assert!(a.resolve().is_err());
        let a = EsAuthArgs {
            es_password_file: Some(tok),
            ..Default::default()
        };
        assert!(a.resolve().is_err());
    }
}
