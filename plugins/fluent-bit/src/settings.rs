//! The output section's properties. Destinations are buildlog's own sinks, configured with
//! the same flags as `buildlog ship` (so the plugin uses the same Loki client as `ship --loki`).
//! Where Fluent Bit's own `loki` output has a property of the same meaning, this plugin uses
//! its name, so a section moves from `Name loki` to `Name buildlog` with its Loki settings:
//!
//! | property | meaning | default |
//! |---|---|---|
//! | `Host`, `Port`, `URI`, `TLS` | Loki's address, as out_loki (`ship --loki`) | port `3100`, URI `/loki/api/v1/push`, TLS `off` |
//! | `URL` (old: `Loki_URL`) | the whole Loki URL instead of `Host`... | |
//! | `Tenant_ID` | Loki tenant (`--loki-tenant`) | |
//! | `Labels` | static Loki labels, `name=value, ...` (`--label`) | `job=container-build`, `host` |
//! | `Label_Keys` (old: `Label_Fields`) | event fields that become labels, `$feature, $level` or `feature, level` (`--label-field`) | `feature`, `level` |
//! | `Structured_Metadata` | the identifiers sent as structured metadata, `correlation_id, trace_id, event_id`, or `on` (all) / `off` (none, ids in the line) | `on` |
//! | `Line_Format` | `json`, `key_value` (logfmt) or `raw` | `json` |
//! | `Forward` | `ship --forward HOST:PORT` | |
//! | `Retries` | retries inside one flush before answering FLB_RETRY | `2` |
//! | `Dead_Letter` | file for events the sinks give up on; the chunk is then acknowledged | (retry) |
//! | `Ship_Args` | more `ship` sink flags, e.g. `--loki-compression gzip --forward-ack` | |
//! | `Path_Key` | record key holding the source file (tail's `Path_Key`) | `path` |
//! | `Log_Key` | record key holding the line | `log` |
//! | `Timezone` | IANA zone of the logs' local times | `UTC` |
//! | `Correlation_Id` | one id for every build | derived per build directory |
//! | `Scrub` | secret scrubbing | `on` |
//! | `Max_Line_Bytes` | longer lines are cut and flagged | `262144` |
//!
//! Fluent Bit hands an external output only the properties it asks for by name (its proxy
//! ABI has no list and checks no config map), so a misspelt property cannot be seen by the
//! plugin; what it can see is refused: a value it cannot use, or two names for one setting.

use crate::engine::{Delivery, Settings, SinkDelivery};
use anyhow::Context;
use buildlog::parse::ParseOptions;
use buildlog::sink::dead_letter::DeadLetter;
use buildlog::sink::forward::ForwardArgs;
use buildlog::sink::http::TransportArgs;
use buildlog::sink::loki::LokiArgs;
use buildlog::sink::Sink;
use clap::Parser;

/// The sink flags of `buildlog ship`, parsed from the properties.
#[derive(Debug, Clone, Parser)]
#[command(name = "buildlog output plugin", no_binary_name = true)]
pub struct SinkFlags {
    #[command(flatten)]
    pub loki: LokiArgs,
    #[command(flatten)]
    pub forward: ForwardArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
}

impl SinkFlags {
    /// The sinks for one delivery; what they give up on goes to `dl`.
    pub fn sinks(&self, dl: DeadLetter) -> anyhow::Result<Vec<Box<dyn Sink>>> {
        let mut v = Vec::new();
        v.extend(self.loki.build(&self.transport, dl.clone())?);
        v.extend(self.forward.build(dl)?);
        Ok(v)
    }
}

/// A property under its name or its old name; both set is an error.
fn either(
    prop: &dyn Fn(&str) -> Option<String>,
    name: &str,
    old: &str,
) -> anyhow::Result<Option<String>> {
    match (prop(name), prop(old)) {
        (Some(_), Some(_)) => anyhow::bail!("set {name} or its old name {old}, not both"),
        (a, b) => Ok(a.or(b).filter(|v| !v.trim().is_empty())),
    }
}

/// The Loki URL from `URL`/`Loki_URL`, or from out_loki's `Host`, `Port`, `URI` and `TLS`.
fn loki_url(prop: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Option<String>> {
    let url = either(prop, "URL", "Loki_URL")?;
    let host = prop("host").filter(|h| !h.trim().is_empty());
    let (port, uri, tls) = (prop("port"), prop("uri"), prop("tls"));
    match (url, host) {
        (Some(_), Some(_)) => anyhow::bail!("set URL or Host (with Port, URI, TLS), not both"),
        (Some(u), None) => {
            anyhow::ensure!(
                port.is_none() && uri.is_none(),
                "Port and URI go with Host, not with URL"
            );
            Ok(Some(u))
        }
        (None, Some(h)) => {
            let port = match port {
                Some(p) => p
                    .trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .with_context(|| format!("Port {p:?}"))?,
                None => 3100,
            };
            let tls = match tls {
                Some(t) => on_off(&t).context("TLS")?,
                None => false,
            };
            let uri = uri.unwrap_or_else(|| "/loki/api/v1/push".into());
            anyhow::ensure!(uri.starts_with('/'), "URI {uri:?} must start with /");
            let scheme = if tls { "https" } else { "http" };
            Ok(Some(format!("{scheme}://{}:{port}{uri}", h.trim())))
        }
        (None, None) => {
            anyhow::ensure!(port.is_none() && uri.is_none(), "Port and URI need Host");
            Ok(None)
        }
    }
}

pub fn sink_flags(prop: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<SinkFlags> {
    let split = |v: Option<String>| -> Vec<String> {
        v.map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
    };
    let mut argv: Vec<String> = Vec::new();
    let loki = loki_url(prop)?;
    let forward = prop("forward");
    if let Some(u) = &loki {
        argv.extend(["--loki".into(), u.clone()]);
    }
    if let Some(f) = &forward {
        argv.extend(["--forward".into(), f.clone()]);
    }
    if let Some(t) = prop("tenant_id") {
        argv.extend(["--loki-tenant".into(), t]);
    }
    for l in split(prop("labels")) {
        argv.extend(["--label".into(), l]);
    }
    // out_loki's `label_keys` are record accessors (`$feature`); here they name event fields.
    for l in split(either(prop, "Label_Keys", "Label_Fields")?) {
        let field = l.strip_prefix('$').unwrap_or(&l).to_string();
        argv.extend(["--label-field".into(), field]);
    }
    if let Some(s) = prop("structured_metadata") {
        match on_off(&s) {
            Ok(true) => {}
            Ok(false) => argv.push("--no-structured-metadata".into()),
            Err(_) => {
                let keys: Vec<String> = split(Some(s))
                    .into_iter()
                    .map(|k| k.strip_prefix('$').unwrap_or(&k).to_string())
                    .collect();
                argv.push(format!("--loki-structured-metadata={}", keys.join(",")));
            }
        }
    }
    if let Some(f) = prop("line_format") {
        let v = match f.trim().to_ascii_lowercase().as_str() {
            "json" => "json",
            "key_value" | "logfmt" => "logfmt",
            "raw" => "raw",
            _ => anyhow::bail!("Line_Format {f:?}: expected json, key_value or raw"),
        };
        argv.extend(["--line-format".into(), v.into()]);
    }
    let extra: Vec<String> = prop("ship_args")
        .map(|e| e.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    // Few retries inside a flush: Fluent Bit's own retry (FLB_RETRY) takes over after them.
    let retries = prop("retries").unwrap_or_else(|| "2".into());
    retries
        .parse::<u32>()
        .with_context(|| format!("Retries {retries:?}"))?;
    for (set, flag, old) in [
        (loki.is_some(), "--loki-retry-max", "--loki-max-retries"),
        (
            forward.is_some(),
            "--forward-retry-max",
            "--forward-retries",
        ),
    ] {
        if set
            && !extra
                .iter()
                .any(|a| a.starts_with(flag) || a.starts_with(old))
        {
            argv.extend([flag.to_string(), retries.clone()]);
        }
    }
    argv.extend(extra);
    let flags = SinkFlags::try_parse_from(&argv).map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    anyhow::ensure!(
        flags.loki.loki.is_some() || flags.forward.forward.is_some(),
        "set Host (or URL) or Forward in the output section"
    );
    // Build the configs now so that a bad value fails the start, naming the setting.
    flags.loki.config()?;
    Ok(flags)
}

fn on_off(v: &str) -> anyhow::Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => anyhow::bail!("expected on or off, got {v:?}"),
    }
}

pub fn settings(prop: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
    let mut opts = ParseOptions::default();
    if let Some(tz) = prop("timezone") {
        opts.timezone = jiff::tz::TimeZone::get(&tz).with_context(|| format!("Timezone {tz:?}"))?;
        opts.timezone_given = true;
    }
    opts.correlation_id = prop("correlation_id").filter(|s| !s.is_empty());
    if let Some(s) = prop("scrub") {
        opts.scrub = on_off(&s).context("Scrub")?;
    }
    if let Some(m) = prop("max_line_bytes") {
        opts.max_line_bytes = m
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("Max_Line_Bytes {m:?}"))?;
    }
    let mut timing = buildlog::build::follow::FollowTiming::default();
    if let Some(w) = prop("twin_wait") {
        let secs: f64 = w
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
            .with_context(|| format!("Twin_Wait {w:?} (seconds)"))?;
        timing.twin_wait = std::time::Duration::from_secs_f64(secs);
    }
    if let Some(i) = prop("idle_end") {
        let secs: f64 = i
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
            .with_context(|| format!("Idle_End {i:?} (seconds)"))?;
        timing.idle_end = (secs > 0.0).then(|| std::time::Duration::from_secs_f64(secs));
    }
    Ok(Settings {
        path_key: prop("path_key").unwrap_or_else(|| "path".into()),
        log_key: prop("log_key").unwrap_or_else(|| "log".into()),
        opts,
        timing,
    })
}

/// Settings and the delivery they configure; an error names the property at fault.
pub fn from_properties(
    prop: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<(Settings, Box<dyn Delivery>)> {
    let settings = settings(prop)?;
    let flags = sink_flags(prop)?;
    // Build once now so that a bad setting fails the start, not the first flush.
    // Without a dead-letter file, undeliverable events are only counted and the chunk retried.
    let dead_letter_path = prop("dead_letter").filter(|p| !p.is_empty());
    let dl = DeadLetter::new(dead_letter_path.as_deref().map(std::path::Path::new));
    flags.sinks(dl.clone())?;
    let delivery = SinkDelivery::new(
        Box::new(move || flags.sinks(dl.clone())),
        dead_letter_path.is_some(),
    )?;
    Ok((settings, Box::new(delivery)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn props(p: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = p
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        move |k: &str| m.get(&k.to_ascii_lowercase()).cloned()
    }

    fn loki(p: &[(&str, &str)]) -> anyhow::Result<buildlog::sink::loki::LokiConfig> {
        Ok(sink_flags(&props(p))?.loki.config()?.unwrap())
    }

    #[test]
    fn out_loki_address_properties() {
        let c = loki(&[("Host", "loki.example"), ("Port", "3101"), ("TLS", "on")]).unwrap();
        assert_eq!(c.push_url, "https://loki.example:3101/loki/api/v1/push");
        let c = loki(&[("host", "127.0.0.1"), ("uri", "/gw/loki/api/v1/push")]).unwrap();
        assert_eq!(c.push_url, "http://127.0.0.1:3100/gw/loki/api/v1/push");
        // the whole URL, under the new name and the old one
        for k in ["URL", "Loki_URL"] {
            let c = loki(&[(k, "http://127.0.0.1:3100")]).unwrap();
            assert_eq!(c.push_url, "http://127.0.0.1:3100/loki/api/v1/push");
        }
        for (bad, why) in [
            (&[("Host", "h"), ("URL", "http://h:3100")][..], "not both"),
            (
                &[("URL", "http://a"), ("Loki_URL", "http://b")][..],
                "old name Loki_URL",
            ),
            (&[("Host", "h"), ("Port", "http")][..], "Port"),
            (
                &[("Port", "3100"), ("Forward", "127.0.0.1:24224")][..],
                "need Host",
            ),
            (&[("Host", "h"), ("URI", "loki")][..], "must start with /"),
            (&[("Host", "h"), ("TLS", "sometimes")][..], "TLS"),
        ] {
            let e = format!("{:#}", sink_flags(&props(bad)).unwrap_err());
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn out_loki_label_and_metadata_properties() {
        let c = loki(&[
            ("Host", "127.0.0.1"),
            ("Labels", "job=container-build, env=ci, host="),
            ("Label_Keys", "$feature, $level, $stage"),
            ("Structured_Metadata", "$correlation_id, trace_id, event_id"),
            ("Line_Format", "key_value"),
            ("Tenant_ID", "team-a"),
        ])
        .unwrap();
        let names: Vec<&str> = c.labels.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["env", "feature", "job", "level", "stage"]);
        assert_eq!(
            c.structured_metadata_keys,
            Some(vec![
                "correlation_id".to_string(),
                "trace_id".into(),
                "event_id".into()
            ])
        );
        assert_eq!(
            c.line_format,
            buildlog::sink::loki::config::LineFormat::Logfmt
        );
        assert_eq!(c.tenant.as_deref(), Some("team-a"));
        // the old names still work
        let c = loki(&[("Loki_URL", "http://h:3100"), ("Label_Fields", "feature")]).unwrap();
        assert_eq!(c.labels.len(), 3, "{:?}", c.labels);
        assert!(
            !loki(&[("URL", "http://h"), ("Structured_Metadata", "off")])
                .unwrap()
                .structured_metadata
        );
        // what cannot be used is refused, naming it
        for (bad, why) in [
            (
                &[("URL", "http://h"), ("Structured_Metadata", "host, pod")][..],
                "\"host\": not an identifier",
            ),
            (
                &[("URL", "http://h"), ("Label_Keys", "$message")][..],
                "message",
            ),
            (
                &[("URL", "http://h"), ("Line_Format", "xml")][..],
                "Line_Format",
            ),
            (
                &[
                    ("URL", "http://h"),
                    ("Label_Keys", "a"),
                    ("Label_Fields", "b"),
                ][..],
                "not both",
            ),
        ] {
            let e = format!("{:#}", sink_flags(&props(bad)).unwrap_err());
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
