//! `buildlog check`: validates the configuration (file, environment, flags) as `ship`,
//! `serve` and `metrics` would read it, then tries each configured sink without sending an
//! event: reachability, credentials, Loki's limits, the Elasticsearch index template.

use super::exit;
use super::ship::ShipArgs;
use crate::sink::http::{error_chain, Auth};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  buildlog check --config /etc/buildlog/buildlog.toml
  buildlog check --loki http://127.0.0.1:3100

Exit codes: 0 every sink answered as configured, 2 the configuration is invalid,
3 a sink is unreachable or refuses the credentials.")]
pub struct CheckArgs {
    #[command(flatten)]
    pub ship: ShipArgs,
}

/// The result of one probe, printed as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub sink: String,
    pub ok: bool,
    pub lines: Vec<String>,
}

pub fn run(args: CheckArgs, config: Option<&PathBuf>) -> anyhow::Result<i32> {
    let a = &args.ship;
    a.input.parse_options()?;
    let loki = a.loki.config()?;
    let es = a.elasticsearch.config()?;
    let forward = a.forward.config()?;
    let otlp = a.otlp.resolve(&|k| std::env::var(k).ok())?;
    let http = a.transport.client()?;
    match super::config::config_path(config) {
        Some(p) => {
            check_serve(&p)?;
            eprintln!("buildlog: configuration {}: valid", p.display())
        }
        None => eprintln!("buildlog: no configuration file; flags and environment are valid"),
    }
    if loki.is_none() && es.is_none() && forward.is_none() && otlp.is_none() {
        eprintln!("buildlog: no sink is configured (--loki, --elasticsearch, --forward, --otlp)");
        return Ok(exit::OK);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let probes = rt.block_on(async {
        let mut probes = Vec::new();
        if let Some(c) = &loki {
            probes.push(probe_loki(&http, c).await);
        }
        if let Some(c) = &es {
            probes.push(probe_es(&http, c).await);
        }
        if let Some(c) = &forward {
            probes.push(probe_tcp("forward", &c.address, c.timeout).await);
        }
        if let Some(c) = &otlp {
            probes.push(probe_otlp(c).await);
        }
        probes
    });
    let mut all_ok = true;
    for p in &probes {
        all_ok &= p.ok;
        let mark = if p.ok { "ok" } else { "FAILED" };
        println!("{}: {mark}", p.sink);
        for l in &p.lines {
            println!("  {l}");
        }
    }
    Ok(if all_ok { exit::OK } else { exit::UNDELIVERED })
}

/// The file's `[serve]` settings as `buildlog serve --config FILE` would read them.
fn check_serve(path: &std::path::Path) -> anyhow::Result<()> {
    use crate::error::UsageError;
    let argv = vec![
        "buildlog".into(),
        "serve".into(),
        "--config".into(),
        path.as_os_str().to_os_string(),
    ];
    match super::parse(argv) {
        Ok(super::Cli {
            command: super::Command::Serve(s),
            ..
        }) => {
            s.listen_addr()?;
            s.config()?;
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(super::ParseFailure::Usage(e)) => Err(e.into()),
        Err(super::ParseFailure::Clap(e)) => {
            Err(UsageError(format!("for serve: {}", e.to_string().trim())).into())
        }
    }
}

fn with_auth(req: reqwest::RequestBuilder, auth: &Auth) -> reqwest::RequestBuilder {
    auth.apply(req)
}

/// The base URL of Loki's API from its push URL.
fn loki_base(push_url: &str) -> &str {
    push_url
        .strip_suffix("/loki/api/v1/push")
        .unwrap_or(push_url)
}

/// A number in Loki's YAML `/config` output: `  key: value`.
fn yaml_number(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(':')?;
        if k.trim() != key {
            return None;
        }
        let v = v.trim().trim_matches('"');
        // Sizes print as `256KB`, `1MB` or a plain number.
        let (num, mult) = if let Some(n) = v.strip_suffix("KB") {
            (n, 1024)
        } else if let Some(n) = v.strip_suffix("MB") {
            (n, 1024 * 1024)
        } else if let Some(n) = v.strip_suffix('B') {
            (n, 1)
        } else {
            (v, 1)
        };
        num.trim().parse::<u64>().ok().map(|n| n * mult)
    })
}

async fn probe_loki(http: &reqwest::Client, c: &crate::sink::loki::LokiConfig) -> Probe {
    let base = loki_base(&c.push_url).trim_end_matches('/').to_string();
    let mut p = Probe {
        sink: format!("loki {base}"),
        ok: true,
        lines: Vec::new(),
    };
    match http.get(format!("{base}/ready")).send().await {
        Ok(r) if r.status().is_success() => p.lines.push("reachable: /ready answered 200".into()),
        Ok(r) => {
            // Behind a gateway /ready may not be exposed: not fatal, the push check decides.
            p.lines.push(format!(
                "/ready answered {} (not ready, or not exposed)",
                r.status()
            ));
        }
        Err(e) => {
            p.ok = false;
            p.lines.push(format!("unreachable: {}", error_chain(&e)));
            return p;
        }
    }
    // Credentials and tenant, with a read of the push endpoint's neighbour: the labels API
    // needs the same authentication and sends nothing.
    let mut req = with_auth(http.get(format!("{base}/loki/api/v1/labels")), &c.auth);
    if let Some(t) = &c.tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => p.lines.push("credentials: accepted".into()),
        Ok(r) if r.status() == 401 || r.status() == 403 => {
            p.ok = false;
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            p.lines.push(format!(
                "credentials: refused ({status}: {})",
                body.trim().chars().take(200).collect::<String>()
            ));
        }
        Ok(r) => p.lines.push(format!(
            "credentials: not checked (the labels API answered {})",
            r.status()
        )),
        Err(e) => {
            p.ok = false;
            p.lines.push(format!("labels API: {}", error_chain(&e)));
        }
    }
    match http.get(format!("{base}/config")).send().await {
        Ok(r) if r.status().is_success() => {
            let text = r.text().await.unwrap_or_default();
            let names = yaml_number(&text, "max_label_names_per_series");
            let line = yaml_number(&text, "max_line_size");
            let used = c.labels.len() as u64;
            match names {
                Some(n) if used > n => {
                    p.ok = false;
                    p.lines.push(format!(
                        "limits: {used} label names per stream, but this Loki allows {n}"
                    ));
                }
                Some(n) => p
                    .lines
                    .push(format!("limits: {used} of {n} label names per stream")),
                None => p
                    .lines
                    .push("limits: max_label_names_per_series not in /config".into()),
            }
            match line {
                Some(0) => p.lines.push("limits: no line size limit".into()),
                Some(n) if (c.max_line_bytes as u64) > n => {
                    p.ok = false;
                    p.lines.push(format!(
                        "limits: --loki-max-line-bytes {} is above this Loki's max_line_size {n}: \
                         longer lines would be refused",
                        c.max_line_bytes
                    ));
                }
                Some(n) => p.lines.push(format!(
                    "limits: lines cut at {} bytes, max_line_size {n}",
                    c.max_line_bytes
                )),
                None => p.lines.push("limits: max_line_size not in /config".into()),
            }
        }
        Ok(r) => p.lines.push(format!(
            "limits: not checked (/config answered {})",
            r.status()
        )),
        Err(e) => p
            .lines
            .push(format!("limits: not checked ({})", error_chain(&e))),
    }
    p
}

async fn probe_es(
    http: &reqwest::Client,
    c: &crate::sink::elasticsearch::config::EsConfig,
) -> Probe {
    let mut base = c.bulk_url.clone();
    base.set_query(None);
    let path = base.path().trim_end_matches("/_bulk").to_string();
    base.set_path(if path.is_empty() { "/" } else { &path });
    let shown = base.as_str().trim_end_matches('/').to_string();
    let mut p = Probe {
        sink: format!("elasticsearch {shown}"),
        ok: true,
        lines: Vec::new(),
    };
    let root = match with_auth(http.get(base.clone()), &c.auth).send().await {
        Ok(r) => r,
        Err(e) => {
            p.ok = false;
            p.lines.push(format!("unreachable: {}", error_chain(&e)));
            return p;
        }
    };
    let status = root.status();
    if status == 401 || status == 403 {
        p.ok = false;
        p.lines.push(format!("credentials: refused ({status})"));
        return p;
    }
    let bytes = root.bytes().await.unwrap_or_default();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    match crate::sink::elasticsearch::client::ServerInfo::from_root(&body) {
        Ok(info) => {
            p.lines.push(format!(
                "reachable: {:?} {} (credentials accepted)",
                info.product, info.version
            ));
            let template = match &c.target {
                crate::sink::elasticsearch::encoder::Target::DataStream(_) => {
                    "container-build-stream"
                }
                crate::sink::elasticsearch::encoder::Target::Index(_) => "container-build-dated",
            };
            let mut url = base.clone();
            url.set_path(&format!(
                "{}/_index_template/{template}",
                base.path().trim_end_matches('/')
            ));
            match with_auth(http.get(url), &c.auth).send().await {
                Ok(r) if r.status().is_success() => {
                    let body: serde_json::Value =
                        serde_json::from_slice(&r.bytes().await.unwrap_or_default())
                            .unwrap_or_default();
                    let listed = body["index_templates"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|t| t["name"] == template));
                    if listed {
                        p.lines
                            .push(format!("index template {template}: installed"));
                    } else {
                        // VictoriaLogs answers `{}`: it keeps no templates.
                        p.lines.push(format!(
                            "index template {template}: not checked (the server lists no \
                             index templates; not Elasticsearch?)"
                        ));
                    }
                }
                Ok(r) if r.status() == 404 => {
                    p.ok = false;
                    p.lines.push(format!(
                        "index template {template}: missing; run `buildlog es setup {shown}`"
                    ));
                }
                Ok(r) => p.lines.push(format!(
                    "index template {template}: not checked ({})",
                    r.status()
                )),
                Err(e) => p.lines.push(format!(
                    "index template {template}: not checked ({})",
                    error_chain(&e)
                )),
            }
        }
        Err(_) if status.is_success() => {
            // Something that speaks `_bulk` but is not Elasticsearch (VictoriaLogs, a proxy):
            // it answered, which is all that can be known without sending a document.
            p.lines.push(format!(
                "reachable: answered {status}, not as Elasticsearch (no version): \
                 templates are not checked"
            ));
        }
        Err(_) => {
            p.lines.push(format!(
                "reachable: answered {status} (not Elasticsearch's root document); \
                 templates are not checked"
            ));
        }
    }
    p
}

async fn probe_tcp(what: &str, address: &str, timeout: Duration) -> Probe {
    let mut p = Probe {
        sink: format!("{what} {address}"),
        ok: true,
        lines: Vec::new(),
    };
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => p.lines.push("reachable: connected".into()),
        Ok(Err(e)) => {
            p.ok = false;
            p.lines.push(format!("unreachable: {e}"));
        }
        Err(_) => {
            p.ok = false;
            p.lines.push(format!(
                "unreachable: no connection within {}",
                crate::duration::format(timeout)
            ));
        }
    }
    p
}

async fn probe_otlp(c: &crate::sink::otlp::config::OtlpConfig) -> Probe {
    let Ok(url) = reqwest::Url::parse(&c.endpoint) else {
        return Probe {
            sink: format!("otlp {}", c.endpoint),
            ok: false,
            lines: vec!["not a URL".into()],
        };
    };
    let host = url.host_str().unwrap_or("localhost");
    let port = url.port_or_known_default().unwrap_or(4318);
    let mut p = probe_tcp("otlp", &format!("{host}:{port}"), c.timeout).await;
    p.sink = format!("otlp {}", c.endpoint);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_loki_config_numbers() {
        let text = "limits_config:\n  max_line_size: 256KB\n  max_label_names_per_series: 15\n";
        assert_eq!(yaml_number(text, "max_line_size"), Some(262_144));
        assert_eq!(yaml_number(text, "max_label_names_per_series"), Some(15));
        assert_eq!(yaml_number(text, "missing"), None);
        assert_eq!(loki_base("http://h:3100/loki/api/v1/push"), "http://h:3100");
    }
}
