//! The output section's properties. Destinations are buildlog's own sinks, configured with
//! the same flags as `buildlog ship` (so the plugin uses the same Loki client as `ship --loki`):
//!
//! | property | meaning | default |
//! |---|---|---|
//! | `Loki_URL` | `ship --loki URL` | |
//! | `Forward` | `ship --forward HOST:PORT` | |
//! | `Tenant_ID` | Loki tenant (`--loki-tenant`) | |
//! | `Labels` | static Loki labels, `name=value, ...` (`--label`) | `job=container-build`, `host` |
//! | `Label_Fields` | event fields that become labels, `feature, level, ...` (`--label-field`) | `feature`, `level` |
//! | `Structured_Metadata` | ids as Loki structured metadata (`on`/`off`) | `on` |
//! | `Retries` | retries inside one flush before answering FLB_RETRY | `2` |
//! | `Dead_Letter` | file for events the sinks give up on; the chunk is then acknowledged | (retry) |
//! | `Ship_Args` | more `ship` sink flags, e.g. `--loki-gzip --forward-ack` | |
//! | `Path_Key` | record key holding the source file (tail's `Path_Key`) | `path` |
//! | `Log_Key` | record key holding the line | `log` |
//! | `Timezone` | IANA zone of the logs' local times | `UTC` |
//! | `Correlation_Id` | one id for every build | derived per build directory |
//! | `Scrub` | secret scrubbing | `on` |
//! | `Max_Line_Bytes` | longer lines are cut and flagged | `262144` |

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

pub fn sink_flags(prop: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<SinkFlags> {
    let list = |key: &str| -> Vec<String> {
        prop(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut argv: Vec<String> = Vec::new();
    let loki = prop("loki_url");
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
    for l in list("labels") {
        argv.extend(["--label".into(), l]);
    }
    for l in list("label_fields") {
        argv.extend(["--label-field".into(), l]);
    }
    if let Some(s) = prop("structured_metadata") {
        if !on_off(&s).context("Structured_Metadata")? {
            argv.push("--no-structured-metadata".into());
        }
    }
    let extra: Vec<String> = prop("ship_args")
        .map(|e| e.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    // Few retries inside a flush: Fluent Bit's own retry (FLB_RETRY) takes over after them.
    let retries = prop("retries").unwrap_or_else(|| "2".into());
    retries
        .parse::<u32>()
        .with_context(|| format!("Retries {retries:?}"))?;
    for (set, flag) in [
        (loki.is_some(), "--loki-max-retries"),
        (forward.is_some(), "--forward-retries"),
    ] {
        if set && !extra.iter().any(|a| a.starts_with(flag)) {
            argv.extend([flag.to_string(), retries.clone()]);
        }
    }
    argv.extend(extra);
    let flags = SinkFlags::try_parse_from(&argv).map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    anyhow::ensure!(
        flags.loki.loki.is_some() || flags.forward.forward.is_some(),
        "set Loki_URL or Forward in the output section"
    );
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
