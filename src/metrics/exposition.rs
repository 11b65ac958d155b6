//! Encoding families with `prometheus-client`: OpenMetrics as the crate writes it, and the
//! Prometheus text format (0.0.4) derived from it, plus content negotiation on `Accept`.
//!
//! `prometheus-client` writes OpenMetrics only. The two formats differ, for what we expose,
//! in three places: no `# EOF` in 0.0.4, counters' `# HELP`/`# TYPE` lines name the sample
//! (`container_build_errors_total`) rather than the family (`container_build_errors`), and
//! `# UNIT` lines (which we do not use) do not exist. `to_text_004` makes exactly those edits.

use super::{Family, Kind, Value};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpositionFormat {
    /// Prometheus text format 0.0.4 (what the bash exporter served).
    Text,
    OpenMetrics,
}

impl ExpositionFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ExpositionFormat::Text => CONTENT_TYPE_TEXT,
            ExpositionFormat::OpenMetrics => CONTENT_TYPE_OPENMETRICS,
        }
    }

    /// Picks the format an `Accept` header prefers: OpenMetrics when it is acceptable with a
    /// quality at least that of plain text (Prometheus asks for OpenMetrics first), else text.
    pub fn negotiate(accept: Option<&str>) -> ExpositionFormat {
        let Some(accept) = accept else {
            return ExpositionFormat::Text;
        };
        let (mut om, mut text) = (0.0f32, 0.0f32);
        for part in accept.split(',') {
            let mut params = part.split(';').map(str::trim);
            let media = params.next().unwrap_or("").to_ascii_lowercase();
            let q = params
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => om = om.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if om > 0.0 && om >= text {
            ExpositionFormat::OpenMetrics
        } else {
            ExpositionFormat::Text
        }
    }
}

/// Encodes families in the given format.
pub fn render(families: &[Family], format: ExpositionFormat) -> String {
    let open = render_openmetrics(families);
    match format {
        ExpositionFormat::OpenMetrics => open,
        ExpositionFormat::Text => to_text_004(&open),
    }
}

/// A complete OpenMetrics exposition (ending in `# EOF`).
pub fn render_openmetrics(families: &[Family]) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families(families.to_vec())));
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug in our families.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!("encoding metrics failed: {e}");
    }
    out
}

/// The sample lines (no `# ...` lines) of one series' value, as OpenMetrics writes them.
/// Used by the backfill, which adds a timestamp to each.
pub fn series_lines(family: &Family, series: &super::Series) -> Vec<String> {
    let one = Family {
        series: vec![series.clone()],
        ..family.clone()
    };
    render_openmetrics(std::slice::from_ref(&one))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The `# HELP` and `# TYPE` lines of a family in OpenMetrics.
pub fn header_lines(family: &Family) -> Vec<String> {
    let none = Family {
        series: vec![],
        ..family.clone()
    };
    render_openmetrics(std::slice::from_ref(&none))
        .lines()
        .filter(|l| *l != "# EOF")
        .map(str::to_string)
        .collect()
}

/// OpenMetrics as `prometheus-client` writes it, to Prometheus text format 0.0.4.
pub fn to_text_004(open: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for l in open.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.insert(name.to_string());
            }
        }
    }
    let mut out = String::with_capacity(open.len());
    for l in open.lines() {
        if l == "# EOF" || l.starts_with("# UNIT ") {
            continue;
        }
        let header = l
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| l.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        if let Some((kind, rest)) = header {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                out.push_str(kind);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(tail);
                out.push('\n');
                continue;
            }
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The families as a `prometheus-client` collector: encoded afresh on every call.
#[derive(Debug)]
struct Families(Vec<Family>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let kind = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut metric = encoder.encode_descriptor(f.name, f.help, None, kind)?;
            match f.series.as_slice() {
                // A label-less family has one series, encoded without `{}`.
                [one] if one.labels.is_empty() => encode_value(&one.value, metric)?,
                many => {
                    for s in many {
                        let labels: Vec<(&str, String)> =
                            s.labels.iter().map(|(k, v)| (*k, escape(v))).collect();
                        encode_value(&s.value, metric.encode_family(&labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// `prometheus-client` 0.23 writes label values verbatim; both formats need `\\`, `"` and
/// newline escaped. Feature and level labels never hold them, but a disk usage path can.
fn escape(v: &str) -> String {
    if !v.contains(['\\', '"', '\n']) {
        return v.to_string();
    }
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn encode_value(v: &Value, mut enc: MetricEncoder) -> Result<(), std::fmt::Error> {
    match v {
        Value::Counter(n) => ConstCounter::new(*n).encode(enc),
        // Whole numbers print as integers (`4`, as the bash exporter did), others as floats.
        Value::Gauge(g) if g.fract() == 0.0 && g.abs() < 9.0e15 => {
            ConstGauge::new(*g as i64).encode(enc)
        }
        Value::Gauge(g) => ConstGauge::new(*g).encode(enc),
        Value::Histogram {
            sum,
            count,
            buckets,
        } => enc.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            *sum, *count, buckets, None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Family> {
        let mut errors = Family::new(
            "container_build_errors",
            "Total errors during container build",
            Kind::Counter,
        );
        errors.push(vec![("feature", "python".into())], Value::Counter(2));
        errors.push(vec![("feature", "we\"ird\\\n".into())], Value::Counter(0));
        let mut all = Family::new(
            "container_build_errors_total_all",
            "Total errors across all features",
            Kind::Gauge,
        );
        all.push(vec![], Value::Gauge(5.0));
        let mut d = Family::new("container_build_duration_seconds", "Time", Kind::Gauge);
        d.push(
            vec![("feature", "python".into()), ("status", "failed".into())],
            Value::Gauge(1.5),
        );
        let mut h = Family::new(
            "container_build_command_duration_seconds",
            "Durations",
            Kind::Histogram,
        );
        h.push(
            vec![("feature", "python".into())],
            Value::Histogram {
                sum: 3.0,
                count: 2,
                buckets: vec![(1.0, 1), (5.0, 1), (f64::MAX, 0)],
            },
        );
        vec![errors, all, d, h]
    }

    #[test]
    fn openmetrics_has_family_names_and_eof() {
        let s = render(&sample(), ExpositionFormat::OpenMetrics);
        assert!(s.contains("# TYPE container_build_errors counter\n"), "{s}");
        assert!(
            s.contains("container_build_errors_total{feature=\"python\"} 2\n"),
            "{s}"
        );
        assert!(
            s.contains("container_build_errors_total{feature=\"we\\\"ird\\\\\\n\"} 0\n"),
            "{s}"
        );
        assert!(s.contains("# TYPE container_build_errors_total_all gauge\ncontainer_build_errors_total_all 5\n"), "{s}");
        assert!(
            s.contains(
                "container_build_duration_seconds{feature=\"python\",status=\"failed\"} 1.5\n"
            ),
            "{s}"
        );
        assert!(s.contains("container_build_command_duration_seconds_bucket{le=\"5.0\",feature=\"python\"} 2\n"), "{s}");
        assert!(s.contains("container_build_command_duration_seconds_bucket{le=\"+Inf\",feature=\"python\"} 2\n"), "{s}");
        assert!(
            s.contains("container_build_command_duration_seconds_count{feature=\"python\"} 2\n"),
            "{s}"
        );
        assert!(s.ends_with("# EOF\n"));
    }

    #[test]
    fn text_format_names_counters_by_their_samples() {
        let s = render(&sample(), ExpositionFormat::Text);
        assert!(s.contains("# HELP container_build_errors_total Total errors during container build\n# TYPE container_build_errors_total counter\n"), "{s}");
        assert!(
            s.contains("# TYPE container_build_errors_total_all gauge\n"),
            "{s}"
        );
        assert!(!s.contains("# EOF"));
        assert!(!s.contains("# TYPE container_build_errors counter"));
    }

    #[test]
    fn accept_negotiation() {
        use ExpositionFormat::*;
        assert_eq!(ExpositionFormat::negotiate(None), Text);
        assert_eq!(ExpositionFormat::negotiate(Some("*/*")), Text);
        assert_eq!(ExpositionFormat::negotiate(Some("text/plain")), Text);
        // What Prometheus 2.x sends.
        assert_eq!(
            ExpositionFormat::negotiate(Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
            OpenMetrics
        );
        assert_eq!(
            ExpositionFormat::negotiate(Some("application/openmetrics-text; q=0.2, text/plain")),
            Text
        );
        assert_eq!(
            ExpositionFormat::negotiate(Some("application/openmetrics-text; q=0")),
            Text
        );
        assert_eq!(ExpositionFormat::negotiate(Some("garbage;;q=x,,")), Text);
    }

    #[test]
    fn one_series_lines_for_the_backfill() {
        let f = sample();
        let lines = series_lines(&f[3], &f[3].series[0]);
        assert_eq!(lines.len(), 2 + 3, "{lines:?}");
        assert!(header_lines(&f[0]).iter().all(|l| l.starts_with("# ")));
        assert_eq!(header_lines(&f[0]).len(), 2);
    }
}
