//! HTTP to Elasticsearch / OpenSearch: one bulk request and what its answer means, and the
//! server's version answer (`GET /`), which the two products word differently.

use crate::sink::http::Auth;
use crate::sink::retry::parse_retry_after;
use reqwest::header::{HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Sends bulk bodies to one endpoint.
#[derive(Debug, Clone)]
pub struct BulkClient {
    pub http: reqwest::Client,
    pub url: Url,
    pub auth: Auth,
    pub gzip: bool,
}

/// What a bulk request came to.
#[derive(Debug)]
pub enum BulkOutcome {
    /// The server read the request and answered for each document, in order.
    Items(Vec<ItemResult>),
    /// The whole request failed in a way worth retrying (429, 5xx, connection or timeout).
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// 413: the request is too large for the server; smaller ones may pass.
    TooLarge { reason: String },
    /// The whole request was refused for good (400, 401, 403, 404 ...).
    Rejected { reason: String },
}

/// One document's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResult {
    pub status: u16,
    /// `type: reason` of the item's error, when it has one.
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Option<Items>,
}

/// The `items` of a bulk answer, read one at a time: each becomes its [`ItemResult`] (status
/// and error text) as soon as it is parsed, so only one item's error object is held at once.
struct Items(Vec<ItemResult>);

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Items;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of bulk items")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Items, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(65_536));
                while let Some(OneItem(item)) = seq.next_element()? {
                    out.push(match item {
                        Some(RawItem { status, error }) => ItemResult {
                            status,
                            error: error.as_ref().map(error_text),
                        },
                        None => ItemResult {
                            status: 500,
                            error: Some("empty item in the bulk response".into()),
                        },
                    });
                }
                Ok(Items(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// An item of `items`: `{"<action>": {...}}`, its one value read without keeping the action's
/// name (a map and a `String` per document were 3% of `ship --elasticsearch`).
struct OneItem(Option<RawItem>);

impl<'de> Deserialize<'de> for OneItem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneItem;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a bulk item")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OneItem, A::Error> {
                let mut first = None;
                while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                    let item: RawItem = map.next_value()?;
                    first.get_or_insert(item);
                }
                Ok(OneItem(first))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct RawItem {
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

impl BulkClient {
    pub async fn send(&self, body: &[u8], docs: usize) -> BulkOutcome {
        let payload = if self.gzip {
            match gzip(body) {
                Ok(b) => b,
                Err(e) => {
                    return BulkOutcome::Rejected {
                        reason: format!("compressing the request: {e}"),
                    }
                }
            }
        } else {
            body.to_vec()
        };
        let mut req = self
            .http
            .post(self.url.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            )
            .body(payload);
        if self.gzip {
            req = req.header(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let resp = match self.auth.apply(req).send().await {
            Ok(r) => r,
            Err(e) => {
                return BulkOutcome::Retry {
                    reason: format!("request failed: {}", crate::sink::http::error_chain(&e)),
                    retry_after: None,
                }
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let limit = if status.is_success() {
            crate::sink::http::bulk_response_limit(docs)
        } else {
            crate::sink::http::MAX_RESPONSE_BYTES
        };
        let bytes = match crate::sink::http::read_capped(resp, limit).await {
            Ok((_, true)) if status.is_success() => {
                // Not a real answer to this request: its items cannot be read whole.
                return BulkOutcome::Retry {
                    reason: format!(
                        "HTTP {status}: the bulk response is larger than {limit} bytes for {docs} documents"
                    ),
                    retry_after,
                };
            }
            Ok((b, _)) => b,
            Err(e) => {
                return BulkOutcome::Retry {
                    reason: format!(
                        "reading the response: {}",
                        crate::sink::http::error_chain(&e)
                    ),
                    retry_after: None,
                }
            }
        };
        classify(status, &bytes, docs, retry_after)
    }
}

/// The items of an answer that says every document was stored, found without parsing it
/// item by item (which was 5% of `ship --elasticsearch`): `"errors":false` before its
/// `"items":` (no item failed, by the `_bulk` API's definition) and one `"status":` per
/// document after it. Those bytes cannot occur inside a JSON string (its quotes would be
/// escaped). Any other answer (an item failed, spaces in the JSON, a count that differs)
/// returns `None` and is parsed in full.
fn all_stored(body: &[u8], docs: usize) -> Option<Vec<ItemResult>> {
    let items_at = memchr::memmem::find(body, b"\"items\":")?;
    memchr::memmem::find(&body[..items_at], b"\"errors\":false")?;
    let statuses = memchr::memmem::find_iter(&body[items_at..], b"\"status\":").count();
    let whole = body.trim_ascii_end().ends_with(b"}");
    let stored = ItemResult {
        status: 200,
        error: None,
    };
    (whole && statuses == docs).then(|| vec![stored; docs])
}

/// Turns a status and body into an outcome; separate from I/O so that it can be tested.
pub fn classify(
    status: StatusCode,
    body: &[u8],
    docs: usize,
    retry_after: Option<Duration>,
) -> BulkOutcome {
    if status.is_success() {
        if let Some(items) = all_stored(body, docs) {
            return BulkOutcome::Items(items);
        }
        return match serde_json::from_slice::<BulkResponse>(body) {
            Ok(BulkResponse {
                items: Some(Items(items)),
                ..
            }) if items.len() == docs => BulkOutcome::Items(items),
            // A success without a readable item list cannot say which documents were stored;
            // sending again is harmless (`create` answers 409 for what is already there).
            Ok(BulkResponse {
                errors: false,
                items: None,
            }) => BulkOutcome::Items(vec![
                ItemResult {
                    status: 200,
                    error: None
                };
                docs
            ]),
            Ok(r) => BulkOutcome::Retry {
                reason: format!(
                    "HTTP {status}: the response lists {} items for {docs} documents",
                    r.items.map_or(0, |i| i.0.len())
                ),
                retry_after,
            },
            Err(e) => BulkOutcome::Retry {
                reason: format!(
                    "HTTP {status}: unreadable bulk response ({e}): {}",
                    excerpt(body)
                ),
                retry_after,
            },
        };
    }
    let reason = format!("HTTP {}: {}", status.as_u16(), body_reason(body));
    match status.as_u16() {
        429 | 500..=599 => BulkOutcome::Retry {
            reason,
            retry_after,
        },
        413 => BulkOutcome::TooLarge { reason },
        _ => BulkOutcome::Rejected { reason },
    }
}

/// `type: reason (caused by: type: reason)` from an Elasticsearch error object.
pub fn error_text(v: &Value) -> String {
    match v {
        Value::Object(o) => {
            let t = o.get("type").and_then(Value::as_str).unwrap_or("error");
            let mut s = match o.get("reason").and_then(Value::as_str) {
                Some(r) => format!("{t}: {r}"),
                None => t.to_string(),
            };
            if let Some(c) = o.get("caused_by") {
                s.push_str(" (caused by: ");
                s.push_str(&error_text(c));
                s.push(')');
            }
            s
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The reason of a whole-request error body (`{"error":{...},"status":N}`), else its start.
fn body_reason(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(e) = v.get("error") {
            return error_text(e);
        }
    }
    excerpt(body)
}

fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(300)]);
    if s.trim().is_empty() {
        "(empty body)".into()
    } else {
        s.trim().to_string()
    }
}

pub use crate::sink::compression::gzip;

/// Which product answered `GET /`, and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub product: Product,
    pub version: String,
    pub major: u32,
    pub minor: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Elasticsearch,
    OpenSearch,
}

impl ServerInfo {
    /// Reads the root answer. Elasticsearch says `version.number` (and `tagline` "You Know,
    /// for Search"); OpenSearch adds `version.distribution: "opensearch"`, and in its
    /// compatibility mode reports the number `7.10.2`, so the distribution decides.
    pub fn from_root(body: &Value) -> Result<ServerInfo, String> {
        let version = body
            .get("version")
            .ok_or("the answer to GET / has no `version`: is this Elasticsearch or OpenSearch?")?;
        let number = version
            .get("number")
            .and_then(Value::as_str)
            .ok_or("the answer to GET / has no `version.number`")?
            .to_string();
        let is_os = version.get("distribution").and_then(Value::as_str) == Some("opensearch")
            || body
                .get("tagline")
                .and_then(Value::as_str)
                .is_some_and(|t| t.contains("OpenSearch"));
        let mut nums = number
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let major = nums.next().unwrap_or(0);
        let minor = nums.next().unwrap_or(0);
        Ok(ServerInfo {
            product: if is_os {
                Product::OpenSearch
            } else {
                Product::Elasticsearch
            },
            version: number,
            major,
            minor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn per_item_results_in_order() {
        let body = json!({"took": 3, "errors": true, "items": [
            {"create": {"_index": "x", "_id": "a", "status": 201}},
            {"create": {"_index": "x", "_id": "b", "status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "[b]: version conflict, document already exists (current version [1])"}}},
            {"create": {"_index": "x", "_id": "c", "status": 400, "error": {"type": "document_parsing_exception", "reason": "failed to parse field [seq]", "caused_by": {"type": "illegal_argument_exception", "reason": "bad"}}}},
        ]});
        let BulkOutcome::Items(items) =
            classify(StatusCode::OK, body.to_string().as_bytes(), 3, None)
        else {
            panic!()
        };
        assert_eq!(
            items[0],
            ItemResult {
                status: 201,
                error: None
            }
        );
        assert_eq!(items[1].status, 409);
        assert_eq!(
            items[2].error.as_deref(),
            Some("document_parsing_exception: failed to parse field [seq] (caused by: illegal_argument_exception: bad)")
        );
    }

    #[test]
    fn whole_request_failures() {
        let body = br#"{"error":{"root_cause":[],"type":"es_rejected_execution_exception","reason":"rejected execution"},"status":429}"#;
        match classify(
            StatusCode::TOO_MANY_REQUESTS,
            body,
            1,
            Some(Duration::from_secs(2)),
        ) {
            BulkOutcome::Retry {
                reason,
                retry_after,
            } => {
                assert_eq!(
                    reason,
                    "HTTP 429: es_rejected_execution_exception: rejected execution"
                );
                assert_eq!(retry_after, Some(Duration::from_secs(2)));
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, b"", 1, None),
            BulkOutcome::Retry { .. }
        ));
        assert!(matches!(
            classify(StatusCode::PAYLOAD_TOO_LARGE, b"", 1, None),
            BulkOutcome::TooLarge { .. }
        ));
        match classify(StatusCode::UNAUTHORIZED, b"denied", 1, None) {
            BulkOutcome::Rejected { reason } => assert_eq!(reason, "HTTP 401: denied"),
            o => panic!("{o:?}"),
        }
    }

    /// Answers without a failed item take the short way when they can, and give what the
    /// full parse gives either way; any failed item, or another layout, is parsed in full.
    #[test]
    fn an_answer_without_errors_is_read_without_its_items_parsed() {
        let stored = |n| {
            let items: Vec<_> = (0..n)
                .map(|i| json!({"create": {"_index": "x", "_id": format!("i{i}"), "status": 201, "result": "created"}}))
                .collect();
            json!({"took": 3, "errors": false, "items": items})
        };
        for n in [1, 2, 7] {
            let body = stored(n).to_string();
            assert_eq!(all_stored(body.as_bytes(), n).map(|v| v.len()), Some(n));
            let BulkOutcome::Items(items) = classify(StatusCode::OK, body.as_bytes(), n, None)
            else {
                panic!()
            };
            assert!(items
                .iter()
                .all(|i| (200..300).contains(&i.status) && i.error.is_none()));
            // Pretty-printed: the long way, the same answer.
            let pretty = serde_json::to_string_pretty(&stored(n)).unwrap();
            assert_eq!(all_stored(pretty.as_bytes(), n), None);
            let BulkOutcome::Items(items) = classify(StatusCode::OK, pretty.as_bytes(), n, None)
            else {
                panic!()
            };
            assert_eq!(items.len(), n);
            // One document more or fewer than the answer lists: retried, as before.
            for docs in [n - 1, n + 1] {
                assert_eq!(all_stored(body.as_bytes(), docs), None);
                assert!(matches!(
                    classify(StatusCode::OK, body.as_bytes(), docs, None),
                    BulkOutcome::Retry { .. }
                ));
            }
            // Cut short after the last status: not taken as whole.
            let cut = &body[..body.rfind("201").unwrap() + 3];
            assert_eq!(all_stored(cut.as_bytes(), n), None);
        }
        // An id holding the very words, escaped inside its string: not counted.
        let tricky =
            json!({"errors": false, "items": [{"create": {"_id": "\"status\":1", "status": 201}}]})
                .to_string();
        assert_eq!(all_stored(tricky.as_bytes(), 1).map(|v| v.len()), Some(1));
        assert_eq!(all_stored(tricky.as_bytes(), 2), None);
        // `errors: true`: never the short way, whatever the count.
        let failed = json!({"errors": true, "items": [
            {"create": {"status": 201}},
            {"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}},
        ]})
        .to_string();
        assert_eq!(all_stored(failed.as_bytes(), 2), None);
        let BulkOutcome::Items(items) = classify(StatusCode::OK, failed.as_bytes(), 2, None) else {
            panic!()
        };
        assert_eq!(items[1].status, 400);
    }

    #[test]
    fn mismatched_or_unreadable_answers_are_retried() {
        let body = json!({"errors": false, "items": [{"create": {"status": 201}}]}).to_string();
        assert!(matches!(
            classify(StatusCode::OK, body.as_bytes(), 2, None),
            BulkOutcome::Retry { .. }
        ));
        assert!(matches!(
            classify(StatusCode::OK, b"<html>", 2, None),
            BulkOutcome::Retry { .. }
        ));
        // A bare success without items: every document counts as stored.
        let BulkOutcome::Items(items) = classify(StatusCode::OK, br#"{"errors":false}"#, 2, None)
        else {
            panic!()
        };
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn version_answers() {
        let es = json!({"name": "n", "cluster_name": "c", "version": {"number": "8.15.1", "build_flavor": "default", "lucene_version": "9.11.1"}, "tagline": "You Know, for Search"});
        let i = ServerInfo::from_root(&es).unwrap();
        assert_eq!(
            (i.product, i.major, i.minor),
            (Product::Elasticsearch, 8, 15)
        );
        let os = json!({"name": "n", "version": {"distribution": "opensearch", "number": "2.17.0", "minimum_wire_compatibility_version": "7.10.0"}, "tagline": "The OpenSearch Project: https://opensearch.org/"});
        let i = ServerInfo::from_root(&os).unwrap();
        assert_eq!((i.product, i.major, i.minor), (Product::OpenSearch, 2, 17));
        let compat = json!({"version": {"distribution": "opensearch", "number": "7.10.2"}});
        assert_eq!(
            ServerInfo::from_root(&compat).unwrap().product,
            Product::OpenSearch
        );
        assert!(ServerInfo::from_root(&json!({"status": "ok"})).is_err());
    }

    #[test]
    fn gzip_round_trips() {
        let body = b"{\"create\":{}}\n{\"@timestamp\":\"2025-01-01T00:00:00.000Z\"}\n".repeat(100);
        let z = gzip(&body).unwrap();
        assert!(z.len() < body.len() / 5);
        let mut d = flate2::read::GzDecoder::new(&z[..]);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut back).unwrap();
        assert_eq!(back, body);
    }
}
