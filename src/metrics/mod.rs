//! Metrics derived from the event stream (issue #3).
//!
//! `derive` folds events, one at a time, into per-build and per-feature state and turns that
//! state into metric families (`Family`); `exposition` encodes families with `prometheus-client`
//! (Prometheus text and OpenMetrics); `backfill` records the same families at the historical
//! times they changed; `remote_write` pushes them with the Prometheus remote write protocol;
//! `serve` is the live HTTP endpoint with the runtime metrics of `runtime`.

pub mod backfill;
pub mod derive;
pub mod exposition;
pub mod remote_write;
pub mod runtime;
pub mod serve;
pub mod sink;

pub use derive::MetricsState;
pub use exposition::{render, ExpositionFormat};

/// The kind of a metric family, as the exposition formats name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One value of a series.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's value; the family name gets the `_total` suffix on the wire.
    Counter(u64),
    Gauge(f64),
    /// Sum, count and per-bucket (non-cumulative) counts, `f64::MAX` standing for `+Inf`
    /// as in `prometheus-client`.
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

/// One labelled series of a family. Label values are already bounded and sanitised.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

/// A metric family: a name (for counters without the `_total` suffix that the encoders add),
/// its help text and kind, and its series.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub series: Vec<Series>,
}

impl Family {
    pub fn new(name: &'static str, help: &'static str, kind: Kind) -> Self {
        Family {
            name,
            help,
            kind,
            series: Vec::new(),
        }
    }

    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: Value) {
        self.series.push(Series { labels, value });
    }

    /// The name samples carry on the wire (`_total` added to counters).
    pub fn sample_name(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.name),
            _ => self.name.to_string(),
        }
    }
}

/// A feature name as the bash exporter turned it into a label value: spaces to `_`, ASCII
/// upper case to lower case, then everything but `[a-z0-9_-]` dropped (`Node.js` -> `nodejs`,
/// `Development Tools` -> `development_tools`). An empty result becomes `unknown` (an empty
/// label value would make Prometheus drop the label).
pub fn sanitize_label(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c == ' ' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .filter(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
        .collect();
    if s.is_empty() {
        "unknown".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sanitised_like_the_bash_exporter() {
        assert_eq!(sanitize_label("Node.js"), "nodejs");
        assert_eq!(sanitize_label("Development Tools"), "development_tools");
        assert_eq!(sanitize_label("AWS CLI v2"), "aws_cli_v2");
        assert_eq!(sanitize_label("Go-Lang\t(x)"), "go-langx");
        assert_eq!(sanitize_label("Ünïcode Ω"), "ncode_");
        assert_eq!(sanitize_label("..."), "unknown");
        assert_eq!(sanitize_label(""), "unknown");
    }
}
