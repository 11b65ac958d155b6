//! One push attempt against Loki, and what its answer means for the entries in it.

use super::encoder::Body;
use crate::sink::http::Auth;
use crate::sink::retry::parse_retry_after;

/// Loki's error bodies can be long (one line per rejected stream); we keep this much.
const MAX_REASON: usize = 2048;

/// Loki's classification of an answer: 2xx stored; 429, 5xx, 408, a timeout or a
/// connection error retried; other 4xx refused with Loki's own explanation.
pub type Outcome = crate::sink::retry::Attempt<()>;

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    tenant: Option<String>,
    auth: Auth,
}

fn clip(mut s: String) -> String {
    let s2 = s.trim_end();
    if s2.len() < s.len() {
        s.truncate(s2.len());
    }
    if s.len() > MAX_REASON {
        let mut i = MAX_REASON;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
        s.push('…');
    }
    s
}

impl Client {
    pub fn new(http: reqwest::Client, url: String, tenant: Option<String>, auth: Auth) -> Self {
        Client {
            http,
            url,
            tenant,
            auth,
        }
    }

    pub async fn push(&self, body: &Body) -> Outcome {
        let mut req = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, body.content_type)
            .body(body.bytes.clone());
        if let Some(enc) = body.content_encoding {
            req = req.header(reqwest::header::CONTENT_ENCODING, enc);
        }
        if let Some(t) = &self.tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        let resp = match self.auth.apply(req).send().await {
            Ok(r) => r,
            Err(e) => {
                // The error's Display can name the URL but never the credentials (headers).
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "request failed"
                };
                return Outcome::Retry {
                    reason: format!("{what}: {}", crate::sink::http::error_chain(&e)),
                    retry_after: None,
                };
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = match crate::sink::http::text_capped(resp).await {
            Ok(t) => t,
            Err(e) if !status.is_success() => format!("(body unreadable: {e})"),
            // A 2xx whose body broke off: Loki answered before the body, so it stored it.
            Err(_) => String::new(),
        };
        let code = status.as_u16();
        if status.is_success() {
            Outcome::Done(())
        } else if code == 429 || status.is_server_error() || code == 408 {
            Outcome::Retry {
                reason: clip(format!("HTTP {code}: {text}")),
                retry_after,
            }
        } else {
            Outcome::Refused(format!("Loki answered HTTP {code}: {}", clip(text)))
        }
    }
}
