//! Prometheus remote write (protocol 1.0): protobuf `prometheus.WriteRequest`, snappy block
//! compressed, POSTed with the protocol's headers; retried on 5xx, 429 and connection errors.
//!
//! The messages are written by hand with prost's derive (the subset of `prompb/remote.proto`
//! and `types.proto` that 1.0 uses), so the build needs no `protoc`.

use super::{Family, Kind, Value};
use crate::sink::http::Auth;
use crate::sink::retry::{parse_retry_after, Backoff};
use anyhow::{bail, Context};

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// `prometheus.MetricMetadata.MetricType`: 1 counter, 2 gauge, 3 histogram.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Flattens families into remote-write series, each with one sample at `timestamp_ms`, with
/// `extra` labels (e.g. `job`) on every series. Counters get `_total`, histograms their
/// `_bucket` (cumulative, `le` as the exposition writes it), `_sum` and `_count` series.
pub fn to_write_request(
    families: &[Family],
    timestamp_ms: i64,
    extra: &[(String, String)],
) -> WriteRequest {
    let mut req = WriteRequest::default();
    for f in families {
        req.metadata.push(MetricMetadata {
            r#type: match f.kind {
                Kind::Counter => 1,
                Kind::Gauge => 2,
                Kind::Histogram => 3,
            },
            metric_family_name: f.sample_name(),
            help: f.help.to_string(),
            unit: String::new(),
        });
        for s in &f.series {
            let mut push = |name: String, le: Option<String>, value: f64| {
                let mut labels: Vec<Label> = s
                    .labels
                    .iter()
                    .map(|(k, v)| Label {
                        name: k.to_string(),
                        value: v.clone(),
                    })
                    .chain(extra.iter().map(|(k, v)| Label {
                        name: k.clone(),
                        value: v.clone(),
                    }))
                    .chain(le.map(|le| Label {
                        name: "le".into(),
                        value: le,
                    }))
                    .chain(std::iter::once(Label {
                        name: "__name__".into(),
                        value: name,
                    }))
                    .collect();
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                labels.dedup_by(|a, b| a.name == b.name);
                req.timeseries.push(TimeSeries {
                    labels,
                    samples: vec![Sample {
                        value,
                        timestamp: timestamp_ms,
                    }],
                });
            };
            match &s.value {
                Value::Counter(n) => push(f.sample_name(), None, *n as f64),
                Value::Gauge(g) => push(f.name.to_string(), None, *g),
                Value::Histogram {
                    sum,
                    count,
                    buckets,
                } => {
                    let mut cumulative = 0u64;
                    for (le, n) in buckets {
                        cumulative += n;
                        let le = if *le == f64::MAX {
                            "+Inf".to_string()
                        } else {
                            format!("{le:?}")
                        };
                        push(format!("{}_bucket", f.name), Some(le), cumulative as f64);
                    }
                    push(format!("{}_sum", f.name), None, *sum);
                    push(format!("{}_count", f.name), None, *count as f64);
                }
            }
        }
    }
    req
}

/// The request body: protobuf, snappy block format.
pub fn encode(req: &WriteRequest) -> anyhow::Result<Vec<u8>> {
    let raw = prost::Message::encode_to_vec(req);
    Ok(crate::sink::compression::snappy(&raw)?)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    pub requests: u64,
    pub series: u64,
    pub retries: u64,
}

/// Series per request: small enough for any receiver's default limits.
pub const MAX_SERIES_PER_REQUEST: usize = 2000;

/// POSTs `req` to `url` in chunks; retries 5xx, 429 (honouring `Retry-After`) and connection
/// errors with `backoff`; any other status fails with the server's answer.
pub async fn push(
    client: &reqwest::Client,
    url: &str,
    auth: &Auth,
    req: WriteRequest,
    backoff: Backoff,
) -> anyhow::Result<PushReport> {
    let mut report = PushReport::default();
    let metadata = req.metadata;
    let mut first = true;
    for chunk in req.timeseries.chunks(MAX_SERIES_PER_REQUEST) {
        let body = encode(&WriteRequest {
            timeseries: chunk.to_vec(),
            metadata: if first { metadata.clone() } else { vec![] },
        })?;
        first = false;
        // One attempt, classified as Prometheus' remote write spec says: 2xx stored, 5xx and
        // 429 retried (with Retry-After), other answers refused; then the shared retry loop.
        let out = crate::sink::retry::retry(&backoff, "remote write", |_| async {
            use crate::sink::retry::Attempt;
            let sent = auth
                .apply(client.post(url))
                .header("Content-Type", "application/x-protobuf")
                .header("Content-Encoding", "snappy")
                .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => Attempt::Done(()),
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    let text = crate::sink::http::text_capped(resp)
                        .await
                        .unwrap_or_default();
                    let reason = format!("{url} answered {status}: {}", text.trim());
                    if status.is_server_error() || status.as_u16() == 429 {
                        Attempt::Retry {
                            reason,
                            retry_after,
                        }
                    } else {
                        Attempt::Refused(reason)
                    }
                }
                Err(e) => Attempt::Retry {
                    reason: format!("{url}: {}", crate::sink::http::error_chain(&e)),
                    retry_after: None,
                },
            }
        })
        .await;
        report.retries += u64::from(out.retries());
        match out {
            crate::sink::retry::Outcome::Done { .. } => {}
            crate::sink::retry::Outcome::Refused { reason, .. } => {
                bail!("remote write rejected: {reason}")
            }
            crate::sink::retry::Outcome::GaveUp { reason, .. } => {
                bail!("remote write failed: {reason}")
            }
        }
        report.requests += 1;
        report.series += chunk.len() as u64;
    }
    Ok(report)
}

/// Parses `k=v` label flags; names must be valid Prometheus label names.
pub fn parse_labels(flags: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    flags
        .iter()
        .map(|f| {
            let (k, v) = f
                .split_once('=')
                .with_context(|| format!("a label is name=value, not {f:?}"))?;
            let valid = !k.is_empty()
                && !k.starts_with("__")
                && k.chars().enumerate().all(|(i, c)| {
                    c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
                });
            if !valid {
                bail!("{k:?} is not a valid label name");
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn families() -> Vec<Family> {
        let mut c = Family::new("container_build_errors", "errors", Kind::Counter);
        c.push(vec![("feature", "python".into())], Value::Counter(2));
        let mut h = Family::new(
            "container_build_command_duration_seconds",
            "d",
            Kind::Histogram,
        );
        h.push(
            vec![("feature", "rust".into())],
            Value::Histogram {
                sum: 7.0,
                count: 3,
                buckets: vec![(1.0, 1), (5.0, 2), (f64::MAX, 0)],
            },
        );
        vec![c, h]
    }

    #[test]
    fn series_are_flattened_with_sorted_labels() {
        let req = to_write_request(&families(), 1234, &[("job".into(), "ci".into())]);
        assert_eq!(req.timeseries.len(), 1 + 3 + 2);
        let names: Vec<Vec<(&str, &str)>> = req
            .timeseries
            .iter()
            .map(|t| {
                t.labels
                    .iter()
                    .map(|l| (l.name.as_str(), l.value.as_str()))
                    .collect()
            })
            .collect();
        assert_eq!(
            names[0],
            [
                ("__name__", "container_build_errors_total"),
                ("feature", "python"),
                ("job", "ci")
            ]
        );
        assert_eq!(
            names[2],
            [
                (
                    "__name__",
                    "container_build_command_duration_seconds_bucket"
                ),
                ("feature", "rust"),
                ("job", "ci"),
                ("le", "5.0")
            ]
        );
        assert_eq!(
            req.timeseries[2].samples,
            [Sample {
                value: 3.0,
                timestamp: 1234
            }]
        );
        assert_eq!(req.timeseries[3].labels[3].value, "+Inf");
        assert_eq!(
            req.metadata[0].metric_family_name,
            "container_build_errors_total"
        );
        assert_eq!(req.metadata[1].r#type, 3);
    }

    #[test]
    fn body_round_trips_through_snappy_and_protobuf() {
        let req = to_write_request(&families(), 99, &[]);
        let body = encode(&req).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        assert_eq!(WriteRequest::decode(raw.as_slice()).unwrap(), req);
    }

    /// A receiver that answers 503, then 429 with `Retry-After: 0`, then 204; and one that
    /// answers 400 to everything.
    #[tokio::test]
    async fn retries_on_5xx_and_429_but_not_on_400() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let hits = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(std::sync::Mutex::new(Vec::<WriteRequest>::new()));
        let (h, b) = (hits.clone(), bodies.clone());
        let app = axum::Router::new()
            .route(
                "/write",
                axum::routing::post(
                    move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                        let (h, b) = (h.clone(), b.clone());
                        async move {
                            assert_eq!(headers["content-encoding"], "snappy");
                            assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
                            let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                            b.lock()
                                .unwrap()
                                .push(WriteRequest::decode(raw.as_slice()).unwrap());
                            match h.fetch_add(1, Ordering::SeqCst) {
                                0 => (
                                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                    [("retry-after", "0")],
                                    "busy",
                                ),
                                1 => (
                                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                                    [("retry-after", "0")],
                                    "slow down",
                                ),
                                _ => (
                                    axum::http::StatusCode::NO_CONTENT,
                                    [("retry-after", "0")],
                                    "",
                                ),
                            }
                        }
                    },
                ),
            )
            .route(
                "/bad",
                axum::routing::post(|| async {
                    (axum::http::StatusCode::BAD_REQUEST, "out of bounds")
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        let backoff = Backoff {
            min: std::time::Duration::from_millis(1),
            max: std::time::Duration::from_millis(5),
            max_retries: 3,
        };
        let req = to_write_request(&families(), 5, &[]);
        let r = push(
            &client,
            &format!("http://{addr}/write"),
            &Auth::None,
            req.clone(),
            backoff,
        )
        .await
        .unwrap();
        assert_eq!(
            r,
            PushReport {
                requests: 1,
                series: 6,
                retries: 2
            }
        );
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert!(bodies.lock().unwrap().iter().all(|b| *b == req));

        let err = push(
            &client,
            &format!("http://{addr}/bad"),
            &Auth::None,
            req.clone(),
            backoff,
        )
        .await
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("400") && format!("{err:#}").contains("out of bounds"),
            "{err:#}"
        );

        // Nobody listening: connection errors are retried, then reported.
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let err = push(
            &client,
            &format!("http://{dead_addr}/write"),
            &Auth::None,
            req,
            backoff,
        )
        .await
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("gave up after 4 attempts: http://"),
            "{err:#}"
        );
    }

    #[test]
    fn label_flags_are_checked() {
        assert_eq!(
            parse_labels(&["job=ci".into(), "env=a=b".into()]).unwrap(),
            [("job".into(), "ci".into()), ("env".into(), "a=b".into())]
        );
        assert!(parse_labels(&["nolabel".into()]).is_err());
        assert!(parse_labels(&["1x=y".into()]).is_err());
        assert!(parse_labels(&["__name__=y".into()]).is_err());
    }
}
