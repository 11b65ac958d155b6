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

    /// True when the request may pass. The scheme (`Basic`, `Bearer`) is matched without
    /// regard to case, as HTTP says; the credentials are compared in constant time.
    fn allows(&self, headers: &HeaderMap) -> bool {
        let (scheme, expected) = match self {
            MetricsAuth::None => return true,
            MetricsAuth::Basic(v) => ("basic", v.strip_prefix("Basic ").unwrap_or(v).to_string()),
            MetricsAuth::Bearer(t) => ("bearer", t.clone()),
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let Some(space) = value.iter().position(|b| *b == b' ') else {
            return false;
        };
        let (given_scheme, rest) = value.split_at(space);
        let credentials = rest.trim_ascii_start();
        given_scheme.eq_ignore_ascii_case(scheme.as_bytes())
            && bool::from(credentials.ct_eq(expected.as_bytes()))
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
    pub limits: ConnectionLimits,
}

/// How long a client may take and how many may be connected: a stalled or idle client must
/// never keep scrapes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From a request's first byte to the end of its headers.
    pub header_read_timeout: Duration,
    /// A connection with no request under way (before the first, or after a response on a
    /// keep-alive connection) is closed after this long.
    pub idle_timeout: Duration,
    /// Connections open at once. At the limit, the connection that has waited longest without
    /// a request is closed to make room, once it has waited `MIN_AGE_TO_EVICT`; when none has,
    /// new connections wait in the listen queue.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 256,
        }
    }
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
    let limits = state.cfg.limits;
    let app = router(state);
    let result = conn::accept_loop(listener, app, limits, shutdown).await;
    refresher.abort();
    result
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

mod conn {
    //! The accept loop: one hyper HTTP/1 connection per task, each watched for its header read
    //! time and its idle time, and a bound on how many are open.

    use super::ConnectionLimits;
    use axum::Router;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use std::collections::BTreeMap;
    use std::io;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::Notify;
    use tokio::task::AbortHandle;

    /// A connection that has waited this long without a request may be closed to make room.
    pub(super) const MIN_AGE_TO_EVICT: Duration = Duration::from_millis(500);
    /// A connection that never sent a byte must wait this many times longer to be evicted.
    const SILENT_FACTOR: u64 = 6;

    /// What the watchdog knows of one connection. Times are milliseconds since `epoch`.
    struct Activity {
        epoch: Instant,
        /// Requests whose headers are complete and whose response is not yet written.
        in_flight: AtomicUsize,
        /// When the connection last became idle (accepted, or a response was finished).
        idle_since: AtomicU64,
        /// The first byte read since then, plus one (0: none yet).
        first_byte: AtomicU64,
        /// The connection's task has read from the socket (or found nothing to read): until
        /// then a connection is only waiting for a busy server, not stalling it.
        polled: AtomicBool,
        /// Requests answered on this connection.
        requests_done: AtomicU64,
    }

    impl Activity {
        fn now(&self) -> u64 {
            self.epoch.elapsed().as_millis() as u64
        }
        /// Idle since when, if no request is under way.
        fn waiting_since(&self) -> Option<u64> {
            (self.in_flight.load(Ordering::Acquire) == 0)
                .then(|| self.idle_since.load(Ordering::Acquire))
        }

        /// Waiting since when, if it may be closed to make room: no request under way, its
        /// socket was read, and it has waited `min_age` with half a request or after a
        /// finished one, or `SILENT_FACTOR` times that without sending anything (a silent
        /// connection may also be a request a busy server has not read yet).
        fn evictable_since(&self, min_age: u64) -> Option<u64> {
            if !self.polled.load(Ordering::Acquire) {
                return None;
            }
            let since = self.waiting_since()?;
            let age = self.now().saturating_sub(since);
            let spoke = self.first_byte.load(Ordering::Acquire) > 0
                || self.requests_done.load(Ordering::Acquire) > 0;
            let needed = if spoke {
                min_age
            } else {
                min_age.saturating_mul(SILENT_FACTOR)
            };
            (age >= needed).then_some(since)
        }
    }

    /// The socket, noting when request bytes arrive.
    struct Watched {
        io: TcpStream,
        activity: Arc<Activity>,
    }

    impl AsyncRead for Watched {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let before = buf.filled().len();
            let r = Pin::new(&mut self.io).poll_read(cx, buf);
            self.activity.polled.store(true, Ordering::Release);
            if buf.filled().len() > before {
                let a = &self.activity;
                if a.in_flight.load(Ordering::Acquire) == 0
                    && a.first_byte.load(Ordering::Acquire) == 0
                {
                    a.first_byte.store(a.now() + 1, Ordering::Release);
                }
            }
            r
        }
    }

    impl AsyncWrite for Watched {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.io).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    /// Counts a request in flight from its service call to its response body's end.
    struct InFlight(Arc<Activity>);

    impl Drop for InFlight {
        fn drop(&mut self) {
            let a = &self.0;
            a.first_byte.store(0, Ordering::Release);
            a.idle_since.store(a.now(), Ordering::Release);
            a.requests_done.fetch_add(1, Ordering::AcqRel);
            a.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    #[derive(Default)]
    struct Registry {
        next: u64,
        open: BTreeMap<u64, (Arc<Activity>, AbortHandle)>,
    }

    impl Registry {
        /// Closes the connection that has waited longest without a request, if it has waited
        /// at least `min_age`. True when one was closed.
        fn evict_oldest_waiting(&mut self, min_age: Duration) -> bool {
            let min_age = min_age.as_millis() as u64;
            let victim = self
                .open
                .iter()
                .filter_map(|(id, (a, _))| Some((a.evictable_since(min_age)?, *id)))
                .min();
            match victim.and_then(|(_, id)| self.open.remove(&id)) {
                Some((_, handle)) => {
                    handle.abort();
                    true
                }
                None => false,
            }
        }
    }

    pub(super) async fn accept_loop(
        listener: TcpListener,
        app: Router,
        limits: ConnectionLimits,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let epoch = Instant::now();
        let registry = Arc::new(Mutex::new(Registry::default()));
        let freed = Arc::new(Notify::new());
        tokio::pin!(shutdown);
        loop {
            // Room for one more, making it by closing a long-waiting connection if need be.
            loop {
                let notified = freed.notified();
                {
                    let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
                    if r.open.len() < limits.max_connections.max(1)
                        || r.evict_oldest_waiting(MIN_AGE_TO_EVICT)
                    {
                        break;
                    }
                }
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(MIN_AGE_TO_EVICT / 4) => {}
                    _ = &mut shutdown => {
                        close_all(&registry);
                        return Ok(());
                    }
                }
            }
            let stream = tokio::select! {
                r = listener.accept() => r,
                _ = &mut shutdown => {
                        close_all(&registry);
                        return Ok(());
                    }
            };
            let stream = match stream {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors (or another passing accept error): make room by
                    // closing the longest-waiting connection, whatever its age, and retry.
                    tracing::warn!("accepting a connection failed: {e}");
                    let evicted = registry
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .evict_oldest_waiting(Duration::ZERO);
                    if !evicted {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let activity = Arc::new(Activity {
                epoch,
                in_flight: AtomicUsize::new(0),
                idle_since: AtomicU64::new(epoch.elapsed().as_millis() as u64),
                first_byte: AtomicU64::new(0),
                polled: AtomicBool::new(false),
                requests_done: AtomicU64::new(0),
            });
            let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
            let id = r.next;
            r.next += 1;
            let task = tokio::spawn(connection(
                stream,
                app.clone(),
                activity.clone(),
                limits,
                registry.clone(),
                freed.clone(),
                id,
            ));
            r.open.insert(id, (activity, task.abort_handle()));
        }
    }

    fn close_all(registry: &Mutex<Registry>) {
        let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
        for (_, (_, handle)) in std::mem::take(&mut r.open) {
            handle.abort();
        }
    }

    async fn connection(
        stream: TcpStream,
        app: Router,
        activity: Arc<Activity>,
        limits: ConnectionLimits,
        registry: Arc<Mutex<Registry>>,
        freed: Arc<Notify>,
        id: u64,
    ) {
        let io = TokioIo::new(Watched {
            io: stream,
            activity: activity.clone(),
        });
        let svc = {
            let activity = activity.clone();
            let inner = TowerToHyperService::new(app);
            hyper::service::service_fn(move |req| {
                activity.in_flight.fetch_add(1, Ordering::AcqRel);
                let guard = InFlight(activity.clone());
                let call = hyper::service::Service::call(&inner, req);
                async move {
                    let resp = call.await?;
                    // The request counts as under way until its body has been written.
                    Ok::<_, std::convert::Infallible>(resp.map(|b| GuardedBody {
                        inner: b,
                        _guard: guard,
                    }))
                }
            })
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, svc);
        tokio::pin!(conn);
        let watchdog = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = activity.now();
                let Some(idle_since) = activity.waiting_since() else {
                    continue;
                };
                let first = activity.first_byte.load(Ordering::Acquire);
                if first > 0 {
                    if now + 1 - first >= limits.header_read_timeout.as_millis() as u64 {
                        tracing::debug!("closing a connection whose request headers are late");
                        return;
                    }
                } else if now.saturating_sub(idle_since) >= limits.idle_timeout.as_millis() as u64 {
                    tracing::debug!("closing an idle connection");
                    return;
                }
            }
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("connection ended: {e}");
                }
            }
            _ = watchdog => {}
        }
        registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .open
            .remove(&id);
        freed.notify_one();
    }

    /// A response body that keeps its request counted as under way until it is dropped.
    struct GuardedBody {
        inner: axum::body::Body,
        _guard: InFlight,
    }

    impl hyper::body::Body for GuardedBody {
        type Data = bytes::Bytes;
        type Error = axum::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
            Pin::new(&mut self.inner).poll_frame(cx)
        }
        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }
        fn size_hint(&self) -> hyper::body::SizeHint {
            self.inner.size_hint()
        }
    }
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
            state.observe(e);
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
