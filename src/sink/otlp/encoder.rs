//! Spans to OTLP request bodies, with the published protobuf definitions of the
//! `opentelemetry-proto` crate: binary protobuf or the OTLP JSON mapping (hex ids, integer
//! enums, 64-bit integers as strings), gzip on top; and the server's answer back.

use super::config::{Compression, Protocol};
use super::spans::kv_str;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// The schema of the semantic conventions the attribute names follow.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.30.0";

/// The resource and scope every request carries.
#[derive(Debug, Clone)]
pub struct Envelope {
    resource: Resource,
    scope: InstrumentationScope,
}

impl Envelope {
    pub fn new(resource: &[(String, String)]) -> Self {
        Envelope {
            resource: Resource {
                attributes: resource.iter().map(|(k, v)| kv_str(k, v)).collect(),
                ..Default::default()
            },
            scope: InstrumentationScope {
                name: "buildlog".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            },
        }
    }

    pub fn request(&self, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(self.scope.clone()),
                    spans,
                    schema_url: SCHEMA_URL.into(),
                }],
                schema_url: SCHEMA_URL.into(),
            }],
        }
    }

    /// Bytes of the request around its spans (protobuf), for batching by size.
    pub fn overhead(&self) -> usize {
        self.request(Vec::new()).encoded_len() + 16
    }
}

/// The protobuf size one span adds to a request (its field tag and length prefix included).
pub fn span_size(span: &Span) -> usize {
    let len = span.encoded_len();
    len + prost::length_delimiter_len(len) + 1
}

/// The HTTP body and its content type; gzip-compressed when asked.
pub fn http_body(
    req: &ExportTraceServiceRequest,
    protocol: Protocol,
    compression: Compression,
) -> std::io::Result<(Vec<u8>, &'static str)> {
    let (raw, content_type) = match protocol {
        Protocol::HttpJson => (
            serde_json::to_vec(req).map_err(std::io::Error::other)?,
            "application/json",
        ),
        _ => (req.encode_to_vec(), "application/x-protobuf"),
    };
    let body = compression.apply(raw)?;
    Ok((body, content_type))
}

pub use crate::sink::compression::gzip;

/// The partial success of a successful HTTP answer (an empty body means full success).
pub fn parse_http_response(
    body: &[u8],
    content_type: Option<&str>,
) -> Option<ExportTracePartialSuccess> {
    if body.is_empty() {
        return None;
    }
    let resp = if content_type.is_some_and(|c| c.contains("json")) {
        // Read by hand: the JSON mapping allows int64 as string or number, and fields may be
        // missing, which the crate's serde form does not accept.
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let p = v.get("partialSuccess")?;
        let rejected = match p.get("rejectedSpans") {
            Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
            Some(n) => n.as_i64().unwrap_or(0),
            None => 0,
        };
        ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: p
                    .get("errorMessage")
                    .and_then(|m| m.as_str())
                    .unwrap_or_default()
                    .to_string(),
            }),
        }
    } else {
        ExportTraceServiceResponse::decode(body).ok()?
    };
    resp.partial_success
        .filter(|p| p.rejected_spans > 0 || !p.error_message.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

    fn span() -> Span {
        Span {
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            name: "Python".into(),
            kind: SpanKind::Internal as i32,
            start_time_unix_nano: 1_763_321_440_364_000_000,
            end_time_unix_nano: 1_763_321_441_000_000_000,
            attributes: vec![kv_str("build.feature", "Python")],
            ..Default::default()
        }
    }

    #[test]
    fn protobuf_round_trips_and_sizes_add_up() {
        let env = Envelope::new(&[("service.name".into(), "container-build".into())]);
        let req = env.request(vec![span(), span()]);
        let (body, ct) = http_body(&req, Protocol::HttpProtobuf, Compression::None).unwrap();
        assert_eq!(ct, "application/x-protobuf");
        assert_eq!(ExportTraceServiceRequest::decode(&body[..]).unwrap(), req);
        assert!(body.len() <= env.overhead() + 2 * span_size(&span()));
        let (gz, _) = http_body(&req, Protocol::HttpProtobuf, Compression::Gzip).unwrap();
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut back).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn json_follows_the_otlp_json_mapping() {
        let env = Envelope::new(&[("service.name".into(), "container-build".into())]);
        let req = env.request(vec![span()]);
        let (body, ct) = http_body(&req, Protocol::HttpJson, Compression::None).unwrap();
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let s = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "abababababababababababababababab");
        assert_eq!(s["spanId"], "cdcdcdcdcdcdcdcd");
        assert_eq!(s["kind"], 1);
        assert_eq!(s["startTimeUnixNano"], "1763321440364000000");
        assert_eq!(
            v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "container-build"
        );
    }

    #[test]
    fn partial_success_is_read_from_both_encodings() {
        let resp = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".into(),
            }),
        };
        let p = parse_http_response(&resp.encode_to_vec(), Some("application/x-protobuf")).unwrap();
        assert_eq!((p.rejected_spans, p.error_message.as_str()), (3, "too old"));
        let json = br#"{"partialSuccess":{"rejectedSpans":"2","errorMessage":"x"}}"#;
        assert_eq!(
            parse_http_response(json, Some("application/json"))
                .unwrap()
                .rejected_spans,
            2
        );
        assert!(parse_http_response(b"", None).is_none());
        assert!(parse_http_response(b"{}", Some("application/json")).is_none());
    }
}
