//! `buildlog serve`: `/metrics` (text or OpenMetrics by `Accept`) and `/healthz` over axum.
//!
//! Scrapes never parse: a background task re-reads the build log directory when its files
//! changed (at most every refresh interval), reruns the health check and measures disk usage,
//! and swaps the results in. A scrape only encodes what is there, so a scrape storm costs
//! little, and hyper rejects malformed HTTP without touching our code.

use super::exposition::ExpositionFormat;
use super::runtime::{
    runtime_families, scrape_timestamp_family, unix_now, RuntimeConfig, RuntimeSample,
};
use super::{render, Family, MetricsState};
use crate::build::parse_inputs;
use crate::parse::ParseOptions;
use crate::source::{Input, Progress};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;

/// Who may read `/metrics`. Credentials come from the environment or files (never flags).
#[derive(Clone, Default, PartialEq, Eq)]
pub enum MetricsAuth {
    #[default]
    None,
    /// The whole expected `Authorization` value, `Basic <base64(user:password)>`.
    Basic(String),
    Bearer(String),
}

impl fmt::Debug for MetricsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricsAuth::None => "MetricsAuth::None",
            MetricsAuth::Basic(_) => "MetricsAuth::Basic(***)",
            MetricsAuth::Bearer(_) => "MetricsAuth::Bearer(***)",
        })
    }
}

impl MetricsAuth {
    pub fn basic(user: &str, password: &str) -> Self {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        MetricsAuth::Basic(format!("Basic {b64}"))
    }

    /// True when the request may pass. Compared in constant time.
    fn allows(&self, headers: &HeaderMap) -> bool {
        let expected = match self {
            MetricsAuth::None => return true,
            MetricsAuth::Basic(v) => v.clone(),
            MetricsAuth::Bearer(t) => format!("Bearer {t}"),
        };
        headers
            .get(header::AUTHORIZATION)
            .map(|v| bool::from(v.as_bytes().ct_eq(expected.as_bytes())))
            .unwrap_or(false)
    }

    fn challenge(&self) -> &'static str {
        match self {
            MetricsAuth::Bearer(_) => "Bearer realm=\"buildlog\"",
            _ => "Basic realm=\"buildlog\"",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub log_dir: PathBuf,
    pub refresh: Duration,
    pub parse: ParseOptions,
    pub auth: MetricsAuth,
    pub runtime: RuntimeConfig,
}

/// What scrapes read; swapped in by the refresher.
#[derive(Debug, Default)]
struct Snapshot {
    build: Vec<Family>,
    runtime: RuntimeSample,
}

struct AppState {
    cfg: ServeConfig,
    snapshot: RwLock<Snapshot>,
}

/// Runs the server on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = Arc::new(AppState {
        cfg,
        snapshot: RwLock::new(Snapshot::default()),
    });
    // The first refresh before the first scrape can be answered.
    let mut fingerprint = None;
    refresh(&state, &mut fingerprint).await;
    let refresher = tokio::spawn({
        let state = state.clone();
        async move {
            loop {
                tokio::time::sleep(state.cfg.refresh).await;
                refresh(&state, &mut fingerprint).await;
            }
        }
    });
    let app = router(state);
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    refresher.abort();
    Ok(result?)
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/",
            get(|| async { "buildlog: build metrics at /metrics, liveness at /healthz\n" }),
        )
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !state.cfg.auth.allows(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, state.cfg.auth.challenge())],
            "unauthorized\n",
        )
            .into_response();
    }
    let format =
        ExpositionFormat::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let now = unix_now();
    let mut families = {
        let snap = state.snapshot.read().unwrap_or_else(|e| e.into_inner());
        let mut f = snap.build.clone();
        f.extend(runtime_families(&state.cfg.runtime, &snap.runtime, now));
        f
    };
    families.push(scrape_timestamp_family(now));
    (
        [(header::CONTENT_TYPE, format.content_type())],
        render(&families, format),
    )
        .into_response()
}

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// Names, sizes and modification times of the files a build directory holds (and its
/// `json/`): when none changed, the directory needs no new parse.
fn fingerprint(dir: &Path) -> Fingerprint {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    let mut depth = 0;
    while !dirs.is_empty() && depth < 2 {
        let mut next = Vec::new();
        for d in dirs {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let Ok(meta) = e.metadata() else { continue };
                if meta.is_dir() {
                    next.push(e.path());
                } else {
                    out.push((e.path(), meta.len(), meta.modified().ok()));
                }
            }
        }
        dirs = next;
        depth += 1;
    }
    out.sort();
    out
}

/// Parses the directory into families (nothing when it does not exist yet).
pub fn build_families(dir: &Path, opts: &ParseOptions) -> Vec<Family> {
    if !dir.is_dir() {
        return Vec::new();
    }
    let mut state = MetricsState::new();
    let report = parse_inputs(
        &[Input::from_path(dir.to_path_buf())],
        opts,
        &mut Progress::hidden(),
        &mut |e| {
            state.observe(&e);
            Ok(())
        },
    );
    for e in &report.errors {
        tracing::warn!("{e}");
    }
    state.families()
}

async fn refresh(state: &Arc<AppState>, last: &mut Option<Fingerprint>) {
    let dir = state.cfg.log_dir.clone();
    let opts = state.cfg.parse.clone();
    let prev = last.take();
    let parsed = tokio::task::spawn_blocking(move || {
        // Taken before the parse: a file that grows meanwhile is seen again next time.
        let fp = fingerprint(&dir);
        let build = (prev.as_ref() != Some(&fp)).then(|| build_families(&dir, &opts));
        (fp, build)
    })
    .await;
    match parsed {
        Ok((fp, build)) => {
            if let Some(build) = build {
                state
                    .snapshot
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .build = build;
            }
            *last = Some(fp);
        }
        Err(e) => tracing::error!("reading the build logs failed: {e}"),
    }
    let runtime = RuntimeSample::collect(&state.cfg.runtime).await;
    state
        .snapshot
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .runtime = runtime;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_compares_the_whole_header() {
        let mut h = HeaderMap::new();
        let basic = MetricsAuth::basic("prom", "s3cret");
        assert!(!basic.allows(&h));
        h.insert(
            header::AUTHORIZATION,
            "Basic cHJvbTpzM2NyZXQ=".parse().unwrap(),
        );
        assert!(basic.allows(&h));
        h.insert(
            header::AUTHORIZATION,
            "Basic cHJvbTpzM2NyZXU=".parse().unwrap(),
        );
        assert!(!basic.allows(&h));
        let bearer = MetricsAuth::Bearer("tok".into());
        h.insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
        assert!(bearer.allows(&h));
        h.insert(header::AUTHORIZATION, "Bearer tok2".parse().unwrap());
        assert!(!bearer.allows(&h));
        assert!(MetricsAuth::None.allows(&HeaderMap::new()));
        assert!(!format!("{basic:?}{bearer:?}").contains("tok"));
    }

    #[test]
    fn fingerprint_sees_appends_and_new_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a-install.log"), "x").unwrap();
        let f1 = fingerprint(dir.path());
        assert_eq!(f1, fingerprint(dir.path()));
        std::fs::write(dir.path().join("a-install.log"), "xy").unwrap();
        let f2 = fingerprint(dir.path());
        assert_ne!(f1, f2);
        std::fs::create_dir(dir.path().join("json")).unwrap();
        std::fs::write(dir.path().join("json/a.jsonl"), "{}").unwrap();
        assert_ne!(f2, fingerprint(dir.path()));
        assert!(fingerprint(&dir.path().join("missing")).is_empty());
    }
}
