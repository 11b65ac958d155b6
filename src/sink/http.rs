//! The HTTP side every network sink shares: TLS (verified with the system roots by default),
//! timeouts and credentials. Credentials come from the environment or from files, never from
//! a plain flag value, and are never logged: `Auth`'s `Debug` form hides them.

use anyhow::Context;
use clap::Args;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The most of a response body any sink reads (1 MiB): enough for every error message a
/// server sends; the rest is not read (the connection is dropped, not reused). A success
/// answer of Elasticsearch's `_bulk` may be larger: see [`bulk_response_limit`].
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// How much of a `_bulk` answer for `docs` documents is read: 1 MiB plus 4 KiB per document
/// (an item's result is about 200 bytes, with an error about 1 KiB).
pub fn bulk_response_limit(docs: usize) -> usize {
    MAX_RESPONSE_BYTES.saturating_add(docs.saturating_mul(4096))
}

/// At most `limit` bytes of a response's body, and whether there was more.
pub async fn read_capped(
    mut resp: reqwest::Response,
    limit: usize,
) -> reqwest::Result<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok((out, true));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out, false))
}

/// The start of a response's body as text (lossy UTF-8), at most [`MAX_RESPONSE_BYTES`],
/// with `… (cut at 1 MiB)` when there was more.
pub async fn text_capped(resp: reqwest::Response) -> reqwest::Result<String> {
    let (bytes, more) = read_capped(resp, MAX_RESPONSE_BYTES).await?;
    let mut s = String::from_utf8_lossy(&bytes).into_owned();
    if more {
        s.push_str("… (cut at 1 MiB)");
    }
    Ok(s)
}

/// TLS and timeout flags, flattened into each sink's own flags with a prefix-free name set.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "HTTP (every sink)")]
pub struct TransportArgs {
    /// Extra CA certificate (PEM) to trust, besides the system roots.
    #[arg(long, value_name = "FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --client-key.
    #[arg(long, value_name = "FILE", global = true, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", global = true)]
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate. Only for tests against self-signed servers.
    #[arg(long, global = true)]
    pub insecure_skip_verify: bool,
    /// Timeout of one request (`30s`; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::duration::secs, global = true)]
    pub request_timeout: Duration,
    /// Timeout of connecting (`10s`; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::duration::secs, global = true)]
    pub connect_timeout: Duration,
}

impl TransportArgs {
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(positive(self.request_timeout)?)
            .connect_timeout(positive(self.connect_timeout)?)
            .user_agent(concat!("buildlog/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &self.ca_file {
            let pem =
                std::fs::read(ca).with_context(|| format!("reading CA file {}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("parsing CA file {}", ca.display()))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            let mut pem = std::fs::read(cert)
                .with_context(|| format!("reading client certificate {}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(
                std::fs::read(key)
                    .with_context(|| format!("reading client key {}", key.display()))?,
            );
            b = b
                .identity(reqwest::Identity::from_pem(&pem).context("client certificate and key")?);
        }
        if self.insecure_skip_verify {
            tracing::warn!("TLS certificate verification is off (--insecure-skip-verify)");
            b = b.danger_accept_invalid_certs(true);
        }
        Ok(b.build()?)
    }
}

fn positive(v: Duration) -> anyhow::Result<Duration> {
    if v.is_zero() {
        return Err(crate::error::UsageError::new("a timeout must be more than 0").into());
    }
    Ok(v)
}

/// Credentials for a request. Built from environment variables or files only.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    #[default]
    None,
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
    /// Elasticsearch's `Authorization: ApiKey <base64>`.
    ApiKey(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Basic { user, .. } => write!(f, "Auth::Basic({user}, ***)"),
            Auth::Bearer(_) => f.write_str("Auth::Bearer(***)"),
            Auth::ApiKey(_) => f.write_str("Auth::ApiKey(***)"),
        }
    }
}

impl Auth {
    pub fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => req,
            Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::ApiKey(k) => req.header(reqwest::header::AUTHORIZATION, format!("ApiKey {k}")),
        }
    }
}

/// This machine's host name: Loki's default `host` label, ECS `host.name`.
pub fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// `e`'s message followed by each of its causes, `: `-separated (reqwest's own message omits
/// them: "error sending request").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    push_causes(&mut s, e);
    s
}

/// Appends `: cause` for each cause of `e` (not `e`'s own message).
pub fn push_causes(s: &mut String, e: &dyn std::error::Error) {
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
}

/// Reads a secret: from the file when `file` is given (trailing newline trimmed), else from
/// the environment variable `env`. Empty values count as absent.
pub fn secret_from(env: &str, file: Option<&PathBuf>) -> anyhow::Result<Option<String>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading secret file {}", path.display()))?;
        let t = text.trim_end_matches(['\n', '\r']).to_string();
        return Ok((!t.is_empty()).then_some(t));
    }
    Ok(std::env::var(env).ok().filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let a = Auth::Basic {
            user: "ci".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{a:?}").contains("hunter2"));
        assert!(!format!("{:?}", Auth::Bearer("tok123".into())).contains("tok123"));
    }

    #[test]
    fn secrets_from_files_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "abc\n").unwrap();
        assert_eq!(
            secret_from("BUILDLOG_UNSET_X", Some(&p))
                .unwrap()
                .as_deref(),
            Some("abc")
        );
        assert!(secret_from("BUILDLOG_UNSET_X", Some(&dir.path().join("missing"))).is_err());
        assert_eq!(secret_from("BUILDLOG_UNSET_X", None).unwrap(), None);
    }

    #[test]
    fn rejects_nonsense_timeouts() {
        let t = TransportArgs {
            request_timeout: Duration::ZERO,
            connect_timeout: Duration::from_secs(1),
            ..Default::default()
        };
        assert!(t.client().is_err());
    }
}
