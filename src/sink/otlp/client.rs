//! The OTLP exporter: sends one request, retries what the specification calls retryable
//! (HTTP 429/502/503/504 honouring `Retry-After`, gRPC UNAVAILABLE and kin, timeouts and
//! connection failures) with backoff, and tells the caller what became of it.

use super::config::{Compression, OtlpConfig, Protocol};
use super::encoder::{self, Envelope};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// What became of one batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted; a partial success says how many spans the server still rejected.
    Delivered(Option<ExportTracePartialSuccess>),
    /// Not accepted: the reason, for the dead-letter file.
    Refused(String),
}

/// OTLP's classification of one answer, for the shared retry loop.
type Attempt = crate::sink::retry::Attempt<Option<ExportTracePartialSuccess>>;

// Clients are handles (reqwest's and tonic's): a clone per attempt shares the connections.
#[derive(Clone)]
enum Transport {
    Http(reqwest::Client),
    Grpc(TraceServiceClient<Channel>),
}

pub struct Exporter {
    cfg: OtlpConfig,
    envelope: Envelope,
    transport: Transport,
    /// Retries made so far (attempts after the first).
    pub retries: u64,
    pub requests: u64,
}

impl Exporter {
    pub fn new(cfg: &OtlpConfig) -> anyhow::Result<Self> {
        let transport = match cfg.protocol {
            Protocol::Grpc => {
                let mut ep = Endpoint::from_shared(cfg.endpoint.clone())?
                    .timeout(cfg.timeout)
                    .connect_timeout(cfg.timeout.min(Duration::from_secs(10)));
                if cfg.endpoint.starts_with("https://") {
                    let mut tls = ClientTlsConfig::new().with_native_roots();
                    if let Some(ca) = &cfg.ca_file {
                        let pem = std::fs::read(ca).map_err(|e| {
                            anyhow::anyhow!("reading CA file {}: {e}", ca.display())
                        })?;
                        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
                    }
                    ep = ep.tls_config(tls)?;
                }
                let mut client = TraceServiceClient::new(ep.connect_lazy());
                if cfg.compression == Compression::Gzip {
                    client = client
                        .send_compressed(CompressionEncoding::Gzip)
                        .accept_compressed(CompressionEncoding::Gzip);
                }
                Transport::Grpc(client)
            }
            _ => Transport::Http(cfg.http_client()?),
        };
        Ok(Exporter {
            envelope: Envelope::new(&cfg.resource),
            cfg: cfg.clone(),
            transport,
            retries: 0,
            requests: 0,
        })
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Sends `spans` as one request, retrying as the backoff allows.
    pub async fn export(&mut self, spans: Vec<Span>) -> Outcome {
        let req = self.envelope.request(spans);
        let body = match self.transport {
            Transport::Http(_) => {
                match encoder::http_body(&req, self.cfg.protocol, self.cfg.compression) {
                    Ok(b) => Some(b),
                    Err(e) => return Outcome::Refused(format!("encoding the request: {e}")),
                }
            }
            Transport::Grpc(_) => None,
        };
        let (transport, cfg) = (&self.transport, &self.cfg);
        let out = crate::sink::retry::retry(&cfg.backoff, "otlp", |_| {
            let (transport, body, req) = (transport.clone(), body.clone(), req.clone());
            async move {
                match (transport, body) {
                    (Transport::Http(client), Some((bytes, ct))) => {
                        send_http(&client, cfg, bytes, ct).await
                    }
                    (Transport::Grpc(mut client), _) => send_grpc(&mut client, cfg, req).await,
                    (Transport::Http(_), None) => {
                        Attempt::Refused("HTTP bodies are encoded above".into())
                    }
                }
            }
        })
        .await;
        let retries = u64::from(out.retries());
        self.retries += retries;
        self.requests += retries + 1;
        match out {
            crate::sink::retry::Outcome::Done { value, .. } => Outcome::Delivered(value),
            crate::sink::retry::Outcome::Refused { reason, .. }
            | crate::sink::retry::Outcome::GaveUp { reason, .. } => Outcome::Refused(reason),
        }
    }
}

async fn send_http(
    client: &reqwest::Client,
    cfg: &OtlpConfig,
    body: Vec<u8>,
    content_type: &str,
) -> Attempt {
    let mut req = client
        .post(&cfg.endpoint)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    if cfg.compression == Compression::Gzip {
        req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
    }
    for (k, v) in &cfg.headers.0 {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            return Attempt::Retry {
                reason: describe_reqwest_error(&e),
                retry_after: None,
            }
        }
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::sink::retry::parse_retry_after);
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body =
        match crate::sink::http::read_capped(resp, crate::sink::http::MAX_RESPONSE_BYTES).await {
            Ok((b, _)) => b,
            Err(e) if status.is_success() => {
                // Accepted: the answer only matters for a partial success we then cannot read.
                tracing::warn!("otlp: reading the answer: {}", describe_reqwest_error(&e));
                return Attempt::Done(None);
            }
            Err(e) => {
                return Attempt::Retry {
                    reason: describe_reqwest_error(&e),
                    retry_after: None,
                }
            }
        };
    if status.is_success() {
        return Attempt::Done(encoder::parse_http_response(&body, ct.as_deref()));
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)])
        .trim()
        .to_string();
    let reason = format!("HTTP {status}: {text}");
    match status.as_u16() {
        429 | 502 | 503 | 504 => Attempt::Retry {
            reason,
            retry_after,
        },
        _ => Attempt::Refused(reason),
    }
}

fn describe_reqwest_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "request timed out".to_string()
    } else {
        // The cause chain, without the URL (it may carry credentials in its user info).
        let mut text = String::from(if e.is_connect() {
            "cannot connect"
        } else {
            "request failed"
        });
        crate::sink::http::push_causes(&mut text, e);
        text
    }
}

async fn send_grpc(
    client: &mut TraceServiceClient<Channel>,
    cfg: &OtlpConfig,
    req: ExportTraceServiceRequest,
) -> Attempt {
    let mut request = tonic::Request::new(req);
    for (k, v) in &cfg.headers.0 {
        let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes());
        let val = tonic::metadata::MetadataValue::try_from(v.as_str());
        if let (Ok(key), Ok(val)) = (key, val) {
            request.metadata_mut().insert(key, val);
        }
    }
    match client.export(request).await {
        Ok(resp) => Attempt::Done(
            resp.into_inner()
                .partial_success
                .filter(|p| p.rejected_spans > 0 || !p.error_message.is_empty()),
        ),
        Err(status) => {
            use tonic::Code;
            let reason = format!("gRPC {:?}: {}", status.code(), status.message());
            match status.code() {
                Code::Unavailable
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::Cancelled
                | Code::DeadlineExceeded
                | Code::OutOfRange
                | Code::DataLoss => Attempt::Retry {
                    reason,
                    retry_after: None,
                },
                _ => Attempt::Refused(reason),
            }
        }
    }
}
