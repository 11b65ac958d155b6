//! A test Elasticsearch (or OpenSearch) that behaves like the real `_bulk` endpoint, as
//! Elasticsearch's documentation describes it:
//! - NDJSON bodies (gzip too), which must end with a newline; `Content-Type` must be
//!   `application/x-ndjson` or `application/json` (406 otherwise);
//! - action lines `index`/`create`/`update`/`delete` with `_index`/`_id`; a `_type` (mapping
//!   types, gone since 8) or any other unknown parameter refuses the whole request;
//! - data streams (names matching `logs-*-*` or a template with `data_stream`) accept only
//!   `create` and need `@timestamp`;
//! - documents kept by `_id`: a `create` of an existing `_id` answers 409
//!   `version_conflict_engine_exception`;
//! - per-item results in order, `errors` true when any item failed, each error as
//!   `{"type","reason",...}`;
//! - chosen items (by `_id`) or whole requests can be made to fail with 429/400/500/503.
//!
//! It also serves `GET /` in the Elasticsearch 8 or OpenSearch 2 wording, and records the
//! requests of `es setup` (templates, ILM or ISM policies, ingest pipelines), refusing what
//! the other product would refuse (`flattened` on OpenSearch, ILM settings without ILM...).

#![allow(dead_code)]

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Elasticsearch8,
    OpenSearch2,
}

/// One request as received (body decompressed).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
    pub status: u16,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Debug, Default)]
pub struct State {
    pub flavour: Option<Flavour>,
    /// Index patterns (`*` globs) whose names are data streams.
    pub data_stream_patterns: Vec<String>,
    /// Documents by index (or data stream) name, then `_id`.
    pub docs: BTreeMap<String, BTreeMap<String, Value>>,
    /// Statuses to answer for an `_id`'s next attempts (front first).
    pub item_failures: HashMap<String, VecDeque<u16>>,
    /// Statuses to answer for the next whole bulk requests (front first).
    pub request_failures: VecDeque<u16>,
    /// The next bulk requests are answered with this status and a JSON body of this many
    /// bytes (a hostile or broken server), front first.
    pub huge_answers: VecDeque<(u16, usize)>,
    pub requests: Vec<Recorded>,
    /// The `_id`s of each bulk request, in order.
    pub bulk_ids: Vec<Vec<String>>,
    /// What `es setup` installed, by path (`_index_template/x` ...).
    pub installed: BTreeMap<String, Value>,
    /// OpenSearch ISM policies: path -> (seq_no, body).
    pub ism: BTreeMap<String, (i64, Value)>,
    /// When set, every request must carry this `Authorization` header.
    pub expect_auth: Option<String>,
    /// Each request is answered after this long (to see requests overlap).
    pub delay: std::time::Duration,
    /// Requests being handled now, and the most seen at once.
    pub inflight: usize,
    pub max_inflight: usize,
    next_seq: u64,
}

pub struct TestEs {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for TestEs {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl TestEs {
    pub fn start() -> TestEs {
        Self::start_as(Flavour::Elasticsearch8)
    }

    pub fn start_as(flavour: Flavour) -> TestEs {
        let state = Arc::new(Mutex::new(State {
            flavour: Some(flavour),
            data_stream_patterns: vec!["logs-*-*".into()],
            ..Default::default()
        }));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(state.clone());
        rt.spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestEs {
            addr,
            state,
            rt: Some(rt),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `times` attempts at `_id` get `status`.
    pub fn fail_item(&self, id: &str, status: u16, times: usize) {
        let mut s = self.state.lock().unwrap();
        let q = s.item_failures.entry(id.to_string()).or_default();
        q.extend(std::iter::repeat_n(status, times));
    }

    /// The next bulk requests get these statuses with bodies of these sizes, one each.
    pub fn huge_answers(&self, answers: &[(u16, usize)]) {
        self.state
            .lock()
            .unwrap()
            .huge_answers
            .extend(answers.iter().copied());
    }

    /// The next bulk requests get these statuses, one each.
    pub fn fail_requests(&self, statuses: &[u16]) {
        self.state
            .lock()
            .unwrap()
            .request_failures
            .extend(statuses.iter().copied());
    }

    pub fn docs(&self, index: &str) -> BTreeMap<String, Value> {
        self.state
            .lock()
            .unwrap()
            .docs
            .get(index)
            .cloned()
            .unwrap_or_default()
    }

    pub fn doc_count(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .docs
            .values()
            .map(|d| d.len())
            .sum()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn bulk_ids(&self) -> Vec<Vec<String>> {
        self.state.lock().unwrap().bulk_ids.clone()
    }

    pub fn installed(&self) -> BTreeMap<String, Value> {
        self.state.lock().unwrap().installed.clone()
    }
}

fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(pos) = rest.find(p) else {
                return false;
            };
            rest = &rest[pos + p.len()..];
        }
    }
    true
}

fn error_body(status: u16, kind: &str, reason: &str) -> Value {
    json!({
        "error": {
            "root_cause": [{"type": kind, "reason": reason}],
            "type": kind,
            "reason": reason,
        },
        "status": status,
    })
}

fn reply(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The error an item (or a request) gets for a chosen status.
fn chosen_error(status: u16, index: &str, id: &str) -> Value {
    let (kind, reason) = match status {
        429 => (
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=0]".to_string(),
        ),
        400 => (
            "document_parsing_exception",
            "[1:42] failed to parse field [metadata.exit_code] of type [long] in document with id 'ID'. Preview of field's value: 'x'".replace("ID", id),
        ),
        409 => (
            "version_conflict_engine_exception",
            format!("[{id}]: version conflict, document already exists (current version [1])"),
        ),
        503 => (
            "unavailable_shards_exception",
            format!("[{index}][0] primary shard is not active Timeout: [1m]"),
        ),
        _ => ("exception", "simulated failure".to_string()),
    };
    json!({"type": kind, "reason": reason, "index": index, "shard": "0", "index_uuid": "aBcD1234eFgH5678iJkL90"})
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut rec = Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        content_type: header("content-type"),
        content_encoding: header("content-encoding"),
        authorization: header("authorization"),
        body: body.to_vec(),
        status: 0,
    };
    let delay = {
        let mut s = state.lock().unwrap();
        s.inflight += 1;
        s.max_inflight = s.max_inflight.max(s.inflight);
        s.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = state.lock().unwrap();
    s.inflight -= 1;
    let resp = route(&mut s, &mut rec);
    rec.status = resp.status().as_u16();
    s.requests.push(rec);
    resp
}

fn route(s: &mut State, rec: &mut Recorded) -> Response {
    if let Some(expected) = &s.expect_auth {
        if rec.authorization.as_deref() != Some(expected.as_str()) {
            return reply(
                401,
                error_body(
                    401,
                    "security_exception",
                    &format!(
                        "missing authentication credentials for REST request [{}]",
                        rec.path
                    ),
                ),
            );
        }
    }
    if rec.content_encoding.as_deref() == Some("gzip") {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&rec.body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            return reply(
                400,
                error_body(400, "parse_exception", "request body is not valid gzip"),
            );
        }
        rec.body = out;
    }
    let path = rec.path.trim_start_matches('/').to_string();
    let method = rec.method.as_str();
    if path.is_empty() || path == "_bulk" || path.ends_with("/_bulk") {
        if method == "GET" && path.is_empty() {
            return reply(200, version_answer(s.flavour.unwrap()));
        }
        if method == "POST" || method == "PUT" {
            let default_index = path.strip_suffix("/_bulk").map(str::to_string);
            return bulk(s, rec, default_index);
        }
    }
    setup_api(s, rec, &path)
}

fn version_answer(f: Flavour) -> Value {
    match f {
        Flavour::Elasticsearch8 => json!({
            "name": "test-node", "cluster_name": "test", "cluster_uuid": "abc",
            "version": {"number": "8.15.1", "build_flavor": "default", "build_type": "docker",
                        "lucene_version": "9.11.1", "minimum_wire_compatibility_version": "7.17.0",
                        "minimum_index_compatibility_version": "7.0.0"},
            "tagline": "You Know, for Search"
        }),
        Flavour::OpenSearch2 => json!({
            "name": "test-node", "cluster_name": "test", "cluster_uuid": "abc",
            "version": {"distribution": "opensearch", "number": "2.17.0", "build_type": "tar",
                        "lucene_version": "9.11.1", "minimum_wire_compatibility_version": "7.10.0",
                        "minimum_index_compatibility_version": "7.0.0"},
            "tagline": "The OpenSearch Project: https://opensearch.org/"
        }),
    }
}

fn is_data_stream(s: &State, name: &str) -> bool {
    s.data_stream_patterns.iter().any(|p| glob(p, name))
}

fn bulk(s: &mut State, rec: &Recorded, default_index: Option<String>) -> Response {
    let ct = rec.content_type.as_deref().unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime != "application/x-ndjson" && mime != "application/json" {
        return reply(
            406,
            json!({"error": format!("Content-Type header [{ct}] is not supported"), "status": 406}),
        );
    }
    if let Some((status, size)) = s.huge_answers.pop_front() {
        // A valid JSON object: `{"took":1,"errors":false,"pad":"xxx...","items":[]}`.
        let head = br#"{"took":1,"errors":false,"pad":""#;
        let tail = br#"","items":[]}"#;
        let mut body = Vec::with_capacity(size);
        body.extend_from_slice(head);
        body.resize(size.saturating_sub(tail.len()).max(head.len()), b'x');
        body.extend_from_slice(tail);
        return (
            StatusCode::from_u16(status).unwrap(),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
    }
    if let Some(status) = s.request_failures.pop_front() {
        let e = chosen_error(status, "", "");
        let kind = e["type"].as_str().unwrap().to_string();
        let reason = e["reason"].as_str().unwrap().to_string();
        return reply(status, error_body(status, &kind, &reason));
    }
    let body = match std::str::from_utf8(&rec.body) {
        Ok(b) => b,
        Err(_) => return reply(400, error_body(400, "parse_exception", "body is not UTF-8")),
    };
    if body.is_empty() {
        return reply(
            400,
            error_body(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: no requests added;",
            ),
        );
    }
    if !body.ends_with('\n') {
        return reply(
            400,
            error_body(
                400,
                "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]",
            ),
        );
    }
    // First pass: parse every action so that a malformed request changes nothing.
    struct Op {
        action: String,
        index: String,
        id: Option<String>,
        source: Option<String>,
    }
    let mut ops = Vec::new();
    let mut lines = body.split_terminator('\n').enumerate();
    while let Some((n, line)) = lines.next() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let meta: Map<String, Value> = match serde_json::from_str(line) {
            Ok(Value::Object(m)) if m.len() == 1 => m,
            _ => {
                return reply(
                    400,
                    error_body(400, "illegal_argument_exception", &format!("Malformed action/metadata line [{line_no}], expected START_OBJECT with one action")),
                )
            }
        };
        let (action, params) = meta.into_iter().next().unwrap();
        if !["index", "create", "update", "delete"].contains(&action.as_str()) {
            return reply(
                400,
                error_body(400, "illegal_argument_exception", &format!("Malformed action/metadata line [{line_no}], expected one of [create, delete, index, update] but found [{action}]")),
            );
        }
        let Value::Object(params) = params else {
            return reply(
                400,
                error_body(
                    400,
                    "illegal_argument_exception",
                    &format!("Malformed action/metadata line [{line_no}], expected START_OBJECT"),
                ),
            );
        };
        for k in params.keys() {
            if ![
                "_index",
                "_id",
                "routing",
                "pipeline",
                "require_alias",
                "if_seq_no",
                "if_primary_term",
                "version",
                "version_type",
                "dynamic_templates",
            ]
            .contains(&k.as_str())
            {
                return reply(
                    400,
                    error_body(
                        400,
                        "illegal_argument_exception",
                        &format!(
                            "Action/metadata line [{line_no}] contains an unknown parameter [{k}]"
                        ),
                    ),
                );
            }
        }
        let index = match params
            .get("_index")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(default_index.clone())
        {
            Some(i) => i,
            None => {
                return reply(
                    400,
                    error_body(
                        400,
                        "action_request_validation_exception",
                        "Validation Failed: 1: index is missing;",
                    ),
                )
            }
        };
        let id = params
            .get("_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let source = if action == "delete" {
            None
        } else {
            match lines.next() {
                Some((_, src)) => Some(src.to_string()),
                None => {
                    return reply(
                        400,
                        error_body(400, "illegal_argument_exception", &format!("The bulk request must be terminated by a newline [\\n]: no source after action line [{line_no}]")),
                    )
                }
            }
        };
        ops.push(Op {
            action,
            index,
            id,
            source,
        });
    }
    s.bulk_ids.push(
        ops.iter()
            .map(|o| o.id.clone().unwrap_or_default())
            .collect(),
    );
    let mut items = Vec::new();
    let mut errors = false;
    for op in ops {
        let ds = is_data_stream(s, &op.index);
        let id = op.id.clone().unwrap_or_else(|| {
            s.next_seq += 1;
            format!("auto-{}", s.next_seq)
        });
        let result_index = if ds {
            format!(".ds-{}-2026.11.27-000001", op.index)
        } else {
            op.index.clone()
        };
        let item_error = |status: u16, error: Value| json!({op.action.clone(): {"_index": result_index, "_id": id, "status": status, "error": error}});
        if let Some(status) = s.item_failures.get_mut(&id).and_then(|q| q.pop_front()) {
            errors = true;
            items.push(item_error(status, chosen_error(status, &result_index, &id)));
            continue;
        }
        if ds && op.action != "create" {
            errors = true;
            items.push(item_error(400, json!({"type": "illegal_argument_exception", "reason": "only write ops with an op_type of create are allowed in data streams"})));
            continue;
        }
        if op.action == "update" || op.action == "delete" {
            errors = true;
            items.push(item_error(400, json!({"type": "illegal_argument_exception", "reason": format!("the test server does not support [{}]", op.action)})));
            continue;
        }
        let source: Value = match serde_json::from_str(op.source.as_deref().unwrap_or("")) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                errors = true;
                items.push(item_error(400, json!({"type": "document_parsing_exception", "reason": "[1:1] failed to parse: not a JSON object"})));
                continue;
            }
        };
        if ds && source.get("@timestamp").and_then(Value::as_str).is_none() {
            errors = true;
            items.push(item_error(400, json!({"type": "document_parsing_exception", "reason": "[1:1] failed to parse: data stream timestamp field [@timestamp] is missing"})));
            continue;
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        let index_docs = s.docs.entry(op.index.clone()).or_default();
        let exists = index_docs.contains_key(&id);
        if exists && op.action == "create" {
            errors = true;
            items.push(item_error(409, json!({
                "type": "version_conflict_engine_exception",
                "reason": format!("[{id}]: version conflict, document already exists (current version [1])"),
                "index_uuid": "aBcD1234eFgH5678iJkL90", "shard": "0", "index": result_index,
            })));
            continue;
        }
        index_docs.insert(id.clone(), source);
        let (status, result) = if exists {
            (200, "updated")
        } else {
            (201, "created")
        };
        items.push(json!({op.action.clone(): {
            "_index": result_index, "_id": id, "_version": if exists { 2 } else { 1 },
            "result": result, "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": seq, "_primary_term": 1, "status": status,
        }}));
    }
    reply(200, json!({"errors": errors, "took": 3, "items": items}))
}

fn setup_api(s: &mut State, rec: &Recorded, path: &str) -> Response {
    let os = s.flavour == Some(Flavour::OpenSearch2);
    let no_handler = || {
        reply(
            400,
            json!({"error": format!("no handler found for uri [/{path}] and method [{}]", rec.method), "status": 400}),
        )
    };
    let kind = path.rsplit_once('/').map(|(k, _)| k).unwrap_or("");
    let known = match kind {
        "_index_template" | "_component_template" | "_ingest/pipeline" => true,
        "_ilm/policy" => !os,
        "_plugins/_ism/policies" => os,
        _ => false,
    };
    if !known {
        return no_handler();
    }
    if rec.method == "GET" {
        if kind == "_plugins/_ism/policies" {
            return match s.ism.get(path) {
                Some((seq, body)) => {
                    let mut policy = body["policy"].clone();
                    policy["policy_id"] = path.rsplit('/').next().unwrap().into();
                    policy["last_updated_time"] = 1_764_000_000_000i64.into();
                    policy["schema_version"] = 21.into();
                    reply(
                        200,
                        json!({"_id": path.rsplit('/').next().unwrap(), "_version": seq + 1, "_seq_no": seq, "_primary_term": 1, "policy": policy}),
                    )
                }
                None => reply(404, error_body(404, "status_exception", "Policy not found")),
            };
        }
        return match s.installed.get(path) {
            // `GET _index_template/NAME` answers a list, as Elasticsearch does.
            Some(v) if kind == "_index_template" => reply(
                200,
                json!({"index_templates": [{"name": path.rsplit('/').next().unwrap(), "index_template": v}]}),
            ),
            Some(v) => reply(200, v.clone()),
            None => reply(
                404,
                error_body(
                    404,
                    "resource_not_found_exception",
                    &format!("[{path}] not found"),
                ),
            ),
        };
    }
    if rec.method != "PUT" {
        return no_handler();
    }
    let Ok(body @ Value::Object(_)) = serde_json::from_slice::<Value>(&rec.body) else {
        return reply(
            400,
            error_body(
                400,
                "parse_exception",
                "request body is required and must be a JSON object",
            ),
        );
    };
    if rec
        .content_type
        .as_deref()
        .map(|c| c.starts_with("application/json"))
        != Some(true)
    {
        return reply(
            406,
            json!({"error": "Content-Type header is not supported", "status": 406}),
        );
    }
    let text = body.to_string();
    if os && text.contains("\"flattened\"") {
        return reply(
            400,
            error_body(
                400,
                "mapper_parsing_exception",
                "No handler for type [flattened] declared on field [metadata]",
            ),
        );
    }
    if !os && text.contains("\"flat_object\"") {
        return reply(
            400,
            error_body(
                400,
                "mapper_parsing_exception",
                "No handler for type [flat_object] declared on field [metadata]",
            ),
        );
    }
    if os && text.contains("index.lifecycle.name") {
        return reply(400, error_body(400, "illegal_argument_exception", "unknown setting [index.lifecycle.name] please check that any required plugins are installed"));
    }
    match kind {
        "_index_template" => {
            let missing: Vec<String> = body["composed_of"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|c| {
                    !s.installed
                        .contains_key(&format!("_component_template/{c}"))
                })
                .map(str::to_string)
                .collect();
            if !missing.is_empty() {
                return reply(400, error_body(400, "invalid_index_template_exception", &format!("index_template [{path}] invalid, cause [index template [{path}] specifies component templates {missing:?} that do not exist]")));
            }
            if body
                .get("index_patterns")
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty())
            {
                return reply(
                    400,
                    error_body(
                        400,
                        "action_request_validation_exception",
                        "Validation Failed: 1: index patterns are missing;",
                    ),
                );
            }
            if let Some(policy) = body["template"]["settings"]["index.lifecycle.name"].as_str() {
                // Elasticsearch accepts a missing policy here; the test is stricter, so that
                // setup's order (policies first) is checked.
                if !s.installed.contains_key(&format!("_ilm/policy/{policy}")) {
                    return reply(
                        400,
                        error_body(
                            400,
                            "illegal_argument_exception",
                            &format!("policy [{policy}] does not exist"),
                        ),
                    );
                }
            }
            if body.get("data_stream").is_some() {
                for p in body["index_patterns"].as_array().unwrap() {
                    let p = p.as_str().unwrap_or_default().to_string();
                    if !s.data_stream_patterns.contains(&p) {
                        s.data_stream_patterns.push(p);
                    }
                }
            }
        }
        "_ilm/policy" if body["policy"]["phases"].as_object().is_none() => {
            return reply(
                400,
                error_body(
                    400,
                    "x_content_parse_exception",
                    "[policy] phases are required",
                ),
            );
        }
        "_plugins/_ism/policies" => {
            let q = rec.query.clone().unwrap_or_default();
            let param = |k: &str| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .and_then(|v| v.parse::<i64>().ok())
            };
            return match (s.ism.get(path).map(|(seq, _)| *seq), param("if_seq_no"), param("if_primary_term")) {
                (None, None, _) => {
                    s.ism.insert(path.to_string(), (0, body.clone()));
                    s.installed.insert(path.to_string(), body);
                    reply(201, json!({"_id": path.rsplit('/').next().unwrap(), "_version": 1, "_seq_no": 0, "_primary_term": 1}))
                }
                (Some(cur), Some(seq), Some(1)) if cur == seq => {
                    s.ism.insert(path.to_string(), (cur + 1, body.clone()));
                    s.installed.insert(path.to_string(), body);
                    reply(200, json!({"_id": path.rsplit('/').next().unwrap(), "_version": cur + 2, "_seq_no": cur + 1, "_primary_term": 1}))
                }
                (Some(_), None, _) => reply(409, error_body(409, "version_conflict_engine_exception", &format!("[{path}]: version conflict, document already exists (current version [1])"))),
                _ => reply(409, error_body(409, "version_conflict_engine_exception", &format!("[{path}]: version conflict, required seqNo does not match"))),
            };
        }
        _ => {}
    }
    s.installed.insert(path.to_string(), body);
    reply(200, json!({"acknowledged": true}))
}
