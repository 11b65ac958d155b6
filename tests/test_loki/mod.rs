//! A test Loki: the push endpoint `/loki/api/v1/push` as Loki answers it, in process.
//!
//! What it does the way Loki does (its push.proto, its validation package, and what the real
//! Loki of the peers answered when probed):
//! - bodies: snappy-block protobuf `PushRequest` (anything that is not `application/json`),
//!   or JSON `{"streams":[{"stream":{..},"values":[["ns","line",{sm}]]}]}`, gzip allowed;
//! - labels parsed in Prometheus text form; bad syntax, duplicate names and more than 15 label
//!   names are refused with Loki's texts; a `service_name` label is added (from `job`);
//! - lines longer than the maximum (256 KiB) are refused per entry, the rest of the request is
//!   stored (a 400 is a partial success); entries more than an hour behind the newest of their
//!   stream are refused; identical timestamp and line in a stream are stored once;
//! - no streams: 422; errors: `text/plain` bodies, one line per problem, `N errors like:` ...
//!
//! It can be told to answer the next requests with 429/500, to hang, or to close the
//! connection without an answer. Connections are not kept alive, so each request is a new
//! connection and a close really breaks a request.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Loki's wire messages, declared here from push.proto independently of the crate's own.
pub mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<Stream>,
        #[prost(string, tag = "2")]
        pub format: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Stream {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<Entry>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Ts>,
        #[prost(string, tag = "2")]
        pub line: String,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<Pair>,
        #[prost(message, repeated, tag = "4")]
        pub parsed: Vec<Pair>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Pair {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Ts {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// What the next requests get instead of normal processing.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and Loki's text for it (429 rate limit, 5xx).
    Status(u16, Option<u64>),
    /// Never answer (the client must time out).
    Hang,
    /// Read the request, then close the connection without an answer.
    Close,
    /// Answer with this status and a text body of this many bytes (a broken proxy's page).
    Huge(u16, usize),
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The stream's labels as sent (without the `service_name` Loki adds).
    pub labels: BTreeMap<String, String>,
    pub ts: i128,
    pub line: String,
    pub structured_metadata: BTreeMap<String, String>,
}

/// What a request carried in its headers.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub tenant: Option<String>,
    pub authorization: Option<String>,
    pub body_bytes: usize,
    pub status: u16,
}

#[derive(Default)]
struct StreamState {
    labels: BTreeMap<String, String>,
    newest: i128,
    /// For deduplication: (timestamp, hash of the line).
    seen: HashSet<(i128, u64)>,
    entries: Vec<(i128, String, BTreeMap<String, String>)>,
}

struct State {
    streams: HashMap<String, StreamState>,
    faults: VecDeque<Fault>,
    requests: Vec<RequestInfo>,
    max_line: usize,
    max_labels: usize,
    /// Keep only what deduplication needs (for big inputs).
    keep_lines: bool,
    stored: u64,
    duplicates: u64,
}

pub struct TestLoki {
    pub url: String,
    state: Arc<Mutex<State>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for TestLoki {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl TestLoki {
    pub fn start() -> TestLoki {
        Self::start_with(262_144, true)
    }

    /// `max_line`: Loki's `max_line_size`; `keep_lines: false` keeps counts and dedup keys only.
    pub fn start_with(max_line: usize, keep_lines: bool) -> TestLoki {
        let state = Arc::new(Mutex::new(State {
            streams: HashMap::new(),
            faults: VecDeque::new(),
            requests: Vec::new(),
            max_line,
            max_labels: 15,
            keep_lines,
            stored: 0,
            duplicates: 0,
        }));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let st = state.clone();
        rt.spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(serve_connection(sock, st));
            }
        });
        TestLoki {
            url: format!("http://{addr}"),
            state,
            rt: Some(rt),
        }
    }

    /// The next `n` requests get `fault`.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut s = self.state.lock().unwrap();
        for _ in 0..n {
            s.faults.push_back(fault.clone());
        }
    }

    pub fn entries(&self) -> Vec<Stored> {
        let s = self.state.lock().unwrap();
        let mut out = Vec::new();
        for st in s.streams.values() {
            for (ts, line, sm) in &st.entries {
                out.push(Stored {
                    labels: st.labels.clone(),
                    ts: *ts,
                    line: line.clone(),
                    structured_metadata: sm.clone(),
                });
            }
        }
        out.sort_by(|a, b| (a.ts, &a.line).cmp(&(b.ts, &b.line)));
        out
    }

    /// Entries stored (after deduplication) and entries dropped as duplicates.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.state.lock().unwrap();
        (s.stored, s.duplicates)
    }

    pub fn stream_count(&self) -> usize {
        self.state.lock().unwrap().streams.len()
    }

    pub fn requests(&self) -> Vec<RequestInfo> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn push_url(&self) -> String {
        format!("{}/loki/api/v1/push", self.url)
    }
}

async fn serve_connection(mut sock: tokio::net::TcpStream, st: Arc<Mutex<State>>) {
    // A connection that closes before sending anything (a reachability probe) is no request:
    // it takes no fault.
    let mut first = [0u8; 1];
    match sock.peek(&mut first).await {
        Ok(0) | Err(_) => return,
        Ok(_) => {}
    }
    let close = {
        let mut s = st.lock().unwrap();
        if matches!(s.faults.front(), Some(Fault::Close)) {
            s.faults.pop_front();
            s.requests.push(RequestInfo {
                status: 0,
                ..Default::default()
            });
            true
        } else {
            false
        }
    };
    if close {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        let _ = tokio::time::timeout(Duration::from_millis(200), sock.read(&mut buf)).await;
        return; // dropped: the client sees the connection close with no answer
    }
    let io = hyper_util::rt::TokioIo::new(sock);
    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(io, svc)
        .await;
}

fn text(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("X-Content-Type-Options", "nosniff")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn handle(
    st: Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut info = RequestInfo {
        content_type: header("content-type"),
        content_encoding: header("content-encoding"),
        tenant: header("x-scope-orgid"),
        authorization: header("authorization"),
        ..Default::default()
    };
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(text(400, "reading the body failed\n".into())),
    };
    info.body_bytes = body.len();
    let fault = st.lock().unwrap().faults.pop_front();
    let resp = match fault {
        Some(Fault::Hang) => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Some(Fault::Close) => unreachable!("handled at accept"),
        Some(Fault::Status(429, retry_after)) => {
            let mut r = text(429, format!(
                "Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while attempting to ingest '1' lines totaling '{}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased\n",
                body.len()
            ));
            if let Some(s) = retry_after {
                r.headers_mut()
                    .insert("Retry-After", s.to_string().parse().unwrap());
            }
            r
        }
        Some(Fault::Huge(code, size)) => Response::builder()
            .status(code)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(vec![b'x'; size])))
            .unwrap(),
        Some(Fault::Status(code, _)) => text(
            code,
            "rpc error: code = Unavailable desc = at least 1 live replicas required, could only find 0\n"
                .into(),
        ),
        None if method != hyper::Method::POST || path != "/loki/api/v1/push" => {
            text(404, "404 page not found\n".into())
        }
        None => {
            let (code, msg) = push(&st, &info, &body);
            text(code, msg)
        }
    };
    info.status = resp.status().as_u16();
    st.lock().unwrap().requests.push(info);
    let _ = StatusCode::OK;
    Ok(resp)
}

/// An incoming entry: timestamp, line, structured metadata.
type InEntry = (i128, String, Vec<(String, String)>);

/// An incoming stream, from either encoding.
struct InStream {
    labels: Result<Vec<(String, String)>, String>,
    entries: Vec<InEntry>,
}

fn decode(info: &RequestInfo, body: &[u8]) -> Result<Vec<InStream>, String> {
    let json = info
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json"));
    if !json {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(body)
            .map_err(|_| "snappy: corrupt input".to_string())?;
        let req = <wire::PushRequest as prost::Message>::decode(&raw[..])
            .map_err(|e| format!("proto: {e}"))?;
        return Ok(req
            .streams
            .into_iter()
            .map(|s| InStream {
                labels: parse_labels(&s.labels),
                entries: s
                    .entries
                    .into_iter()
                    .map(|e| {
                        let ts = e
                            .timestamp
                            .map_or(0, |t| t.seconds as i128 * 1_000_000_000 + t.nanos as i128);
                        let sm = e
                            .structured_metadata
                            .into_iter()
                            .map(|p| (p.name, p.value))
                            .collect();
                        (ts, e.line, sm)
                    })
                    .collect(),
            })
            .collect());
    }
    let mut text = Vec::new();
    if info.content_encoding.as_deref() == Some("gzip") {
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut text)
            .map_err(|e| format!("gzip: invalid header: {e}"))?;
    } else {
        text = body.to_vec();
    }
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("loghttp.PushRequest: {e}"))?;
    let streams = v["streams"]
        .as_array()
        .ok_or("loghttp.PushRequest.Streams: expected an array")?;
    let mut out = Vec::new();
    for s in streams {
        let obj = s["stream"]
            .as_object()
            .ok_or("stream: expected an object")?;
        let mut labels = Vec::new();
        for (k, v) in obj {
            labels.push((
                k.clone(),
                v.as_str()
                    .ok_or("label value: expected a string")?
                    .to_string(),
            ));
        }
        // Loki turns the map into the text form and parses that: same rules for names.
        let labels = match labels
            .iter()
            .position(|(k, _)| !valid_name(k))
            .map(|i| &labels[i].0)
        {
            Some(bad) => Err(bad_char(bad)),
            None => Ok(labels),
        };
        let mut entries = Vec::new();
        for v in s["values"].as_array().ok_or("values: expected an array")? {
            let a = v.as_array().ok_or("value: expected an array")?;
            let ts: i128 = a
                .first()
                .and_then(|t| t.as_str())
                .and_then(|t| t.parse().ok())
                .ok_or("timestamp: expected a string of nanoseconds")?;
            let line = a
                .get(1)
                .and_then(|l| l.as_str())
                .ok_or("line: expected a string")?
                .to_string();
            let sm = match a.get(2) {
                Some(serde_json::Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                _ => Vec::new(),
            };
            entries.push((ts, line, sm));
        }
        out.push(InStream { labels, entries });
    }
    Ok(out)
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn bad_char(name: &str) -> String {
    let (i, c) = name
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit())))
        .unwrap_or((0, '?'));
    format!(
        "couldn't parse labels: 1:{}: parse error: unexpected character inside braces: '{c}'",
        i + 2
    )
}

/// Parses `{a="b", c="d"}` (Prometheus text form, Go string escapes in values).
pub fn parse_labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let err = |pos: usize, what: &str| {
        format!("couldn't parse labels: 1:{}: parse error: {what}", pos + 1)
    };
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_whitespace() {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if b.get(i) != Some(&'{') {
        return Err(err(i, "unexpected character: expected '{'"));
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        skip_ws(&mut i);
        match b.get(i) {
            Some('}') => {
                i += 1;
                break;
            }
            None => return Err(err(i, "unexpected end of input inside braces")),
            _ => {}
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_') {
            i += 1;
        }
        let name: String = b[start..i].iter().collect();
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err(
                start,
                &format!(
                    "unexpected character inside braces: '{}'",
                    b.get(start).copied().unwrap_or(' ')
                ),
            ));
        }
        skip_ws(&mut i);
        if b.get(i) != Some(&'=') {
            return Err(err(
                i,
                &format!(
                    "unexpected character inside braces: '{}'",
                    b.get(i).copied().unwrap_or(' ')
                ),
            ));
        }
        i += 1;
        skip_ws(&mut i);
        if b.get(i) != Some(&'"') {
            return Err(err(
                i,
                "unexpected character after '=': expected a quoted string",
            ));
        }
        i += 1;
        let mut value = String::new();
        loop {
            match b.get(i) {
                None => return Err(err(i, "unterminated quoted string")),
                Some('"') => {
                    i += 1;
                    break;
                }
                Some('\\') => {
                    match b.get(i + 1) {
                        Some('n') => value.push('\n'),
                        Some('t') => value.push('\t'),
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        _ => return Err(err(i, "invalid escape sequence")),
                    }
                    i += 2;
                }
                Some('\n') => return Err(err(i, "newline in quoted string")),
                Some(&c) => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        out.push((name, value));
        skip_ws(&mut i);
        match b.get(i) {
            Some(',') => i += 1,
            Some('}') => {}
            Some(&c) => {
                return Err(err(
                    i,
                    &format!("unexpected character inside braces: '{c}'"),
                ))
            }
            None => return Err(err(i, "unexpected end of input inside braces")),
        }
    }
    skip_ws(&mut i);
    if i != b.len() {
        return Err(err(i, "unexpected characters after the label set"));
    }
    Ok(out)
}

/// The label set as Loki prints it in messages: sorted, with the `service_name` it adds.
fn loki_form(labels: &[(String, String)]) -> String {
    let mut l: BTreeMap<&str, &str> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let service = [
        "service_name",
        "service",
        "app",
        "application",
        "name",
        "job",
    ]
    .iter()
    .find_map(|k| l.get(k).copied())
    .unwrap_or("unknown_service")
    .to_string();
    let mut out = String::from("{");
    let mut pairs: Vec<(String, String)> = l
        .iter_mut()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !pairs.iter().any(|(k, _)| k == "service_name") {
        pairs.push(("service_name".into(), service));
        pairs.sort();
    }
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("{k}={v:?}"));
    }
    out.push('}');
    out
}

fn rfc3339(ns: i128) -> String {
    jiff::Timestamp::from_nanosecond(ns)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| ns.to_string())
}

fn hash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Validates and stores a push; returns Loki's status and body.
fn push(st: &Mutex<State>, info: &RequestInfo, body: &[u8]) -> (u16, String) {
    let streams = match decode(info, body) {
        Ok(s) => s,
        Err(e) => return (400, format!("{e}\n")),
    };
    if streams.is_empty() {
        return (
            422,
            "error at least one valid stream is required for ingestion\n".into(),
        );
    }
    let mut s = st.lock().unwrap();
    let (max_line, max_labels, keep) = (s.max_line, s.max_labels, s.keep_lines);
    let mut errors: Vec<String> = Vec::new();
    for stream in streams {
        let labels = match stream.labels {
            Ok(l) => l,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let form = loki_form(&labels);
        if labels.len() > max_labels {
            errors.push(format!(
                "entry for stream '{form}' has {} label names; limit {max_labels}",
                labels.len()
            ));
            continue;
        }
        let mut names = HashSet::new();
        if let Some((dup, _)) = labels.iter().find(|(k, _)| !names.insert(k.clone())) {
            errors.push(format!("stream '{form}' has duplicate label name: '{dup}'"));
            continue;
        }
        let sorted: BTreeMap<String, String> = labels.iter().cloned().collect();
        let key = format!("{sorted:?}");
        let state = s.streams.entry(key).or_insert_with(|| StreamState {
            labels: sorted,
            newest: i128::MIN,
            ..Default::default()
        });
        let mut too_long = Vec::new();
        let mut behind = 0usize;
        let total = stream.entries.len();
        let mut stored = 0u64;
        let mut dups = 0u64;
        let mut first_behind = None;
        for (ts, line, sm) in stream.entries {
            if line.len() > max_line {
                too_long.push(format!(
                    "max entry size '{max_line}' bytes exceeded for stream '{form}' while adding an entry with length '{}' bytes",
                    line.len()
                ));
                continue;
            }
            let oldest_ok = state.newest.saturating_sub(3_600_000_000_000);
            if state.newest != i128::MIN && ts < oldest_ok {
                behind += 1;
                first_behind.get_or_insert((ts, oldest_ok));
                continue;
            }
            if !state.seen.insert((ts, hash(&line))) {
                dups += 1;
                continue;
            }
            state.newest = state.newest.max(ts);
            stored += 1;
            if keep {
                state.entries.push((ts, line, sm.into_iter().collect()));
            }
        }
        if let Some(first) = too_long.first() {
            errors.push(if too_long.len() > 1 {
                format!("{} errors like: {first}", too_long.len())
            } else {
                first.clone()
            });
        }
        if let Some((ts, oldest)) = first_behind {
            errors.push(format!(
                "entry with timestamp {} ignored, reason: 'entry too far behind, entry timestamp is: {}, oldest acceptable timestamp is: {}',\nuser 'fake', total ignored: {behind} out of {total} for stream: {form}",
                rfc3339(ts), rfc3339(ts), rfc3339(oldest)
            ));
        }
        s.stored += stored;
        s.duplicates += dups;
    }
    if errors.is_empty() {
        (204, String::new())
    } else {
        (400, errors.join("\n") + "\n")
    }
}
