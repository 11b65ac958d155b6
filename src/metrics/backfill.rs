//! `metrics --backfill`: the families as they stood at the historical moments they changed,
//! as OpenMetrics with a timestamp on every sample, for `promtool tsdb create-blocks-from
//! openmetrics`.
//!
//! Each build is folded on its own (as a live exporter in that build's container would have
//! seen it: counters start at zero with each build), and after every event that changes
//! figures (a command, a feature's end, a summary line, a failure) the series whose value
//! changed get a sample at that event's time. Builds may be read in any order: each series'
//! samples are sorted by time at the end, as OpenMetrics requires.
//!
//! `prometheus-client` cannot attach timestamps, so each sample's lines are encoded by it
//! (`exposition::series_lines`) and the timestamp is appended to them.

use super::exposition::{header_lines, series_lines};
use super::{Family, MetricsState, Series, Value};
use crate::event::{Event, EventType};
use std::collections::{BTreeMap, HashMap};

type SeriesKey = (&'static str, Vec<(&'static str, String)>);

#[derive(Debug, Default)]
struct BuildTrack {
    state: MetricsState,
    last: HashMap<SeriesKey, Value>,
    last_ts: i64,
    /// Events folded since the last snapshot.
    pending: bool,
}

#[derive(Debug, Default)]
pub struct Backfill {
    builds: HashMap<String, BuildTrack>,
    /// Family headers by name, in order of first appearance.
    families: Vec<Family>,
    samples: BTreeMap<SeriesKey, Vec<(i64, Value)>>,
}

impl Backfill {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn observe(&mut self, e: &Event) {
        let track = self.builds.entry(e.correlation_id.to_string()).or_default();
        track.state.observe(e);
        track.last_ts = track.last_ts.max(e.timestamp.0);
        track.pending = true;
        if matches!(
            e.event_type,
            EventType::Command
                | EventType::FeatureEnd
                | EventType::BuildSummary
                | EventType::BuildFailure
        ) {
            let t = if e.timestamp.0 != 0 {
                e.timestamp.0
            } else {
                track.last_ts
            };
            Self::snapshot(track, t, &mut self.families, &mut self.samples);
        }
    }

    fn snapshot(
        track: &mut BuildTrack,
        t: i64,
        families: &mut Vec<Family>,
        samples: &mut BTreeMap<SeriesKey, Vec<(i64, Value)>>,
    ) {
        track.pending = false;
        for f in track.state.families() {
            if !families.iter().any(|h| h.name == f.name) {
                families.push(Family {
                    series: vec![],
                    ..f.clone()
                });
            }
            for s in f.series {
                let key = (f.name, s.labels);
                if track.last.get(&key) != Some(&s.value) {
                    samples
                        .entry(key.clone())
                        .or_default()
                        .push((t, s.value.clone()));
                    track.last.insert(key, s.value);
                }
            }
        }
    }

    /// Number of samples recorded so far (a histogram point counts once).
    pub fn sample_count(&self) -> usize {
        self.samples.values().map(Vec::len).sum()
    }

    /// The OpenMetrics document, ending in `# EOF`.
    pub fn finish(mut self) -> String {
        // Lines counted after the last command of a build still get their sample.
        let mut builds: Vec<_> = self.builds.drain().collect();
        builds.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, mut track) in builds {
            if track.pending {
                let t = track.last_ts;
                Self::snapshot(&mut track, t, &mut self.families, &mut self.samples);
            }
        }
        let mut out = String::new();
        for family in &self.families {
            for l in header_lines(family) {
                out.push_str(&l);
                out.push('\n');
            }
            for ((name, labels), points) in self.samples.range((family.name, Vec::new())..) {
                if *name != family.name {
                    break;
                }
                let mut points = points.clone();
                points.sort_by_key(|p| p.0);
                // One sample per timestamp: the last value at that instant.
                let mut i = 0;
                while i < points.len() {
                    let mut j = i;
                    while j + 1 < points.len() && points[j + 1].0 == points[i].0 {
                        j += 1;
                    }
                    let (t, v) = &points[j];
                    let series = Series {
                        labels: labels.clone(),
                        value: v.clone(),
                    };
                    let ts = format!(" {}.{:03}", t.div_euclid(1000), t.rem_euclid(1000));
                    for l in series_lines(family, &series) {
                        out.push_str(&l);
                        out.push_str(&ts);
                        out.push('\n');
                    }
                    i = j + 1;
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::derive::tests::ev;

    #[test]
    fn samples_carry_the_time_their_value_changed() {
        let mut b = Backfill::new();
        let t0 = 1_763_321_440_000i64;
        b.observe(&ev(
            EventType::FeatureStart,
            "Python",
            t0,
            serde_json::json!({}),
        ));
        b.observe(&ev(
            EventType::Output,
            "Python",
            t0 + 5,
            serde_json::json!({}),
        ));
        b.observe(&ev(
            EventType::FeatureEnd,
            "Python",
            t0 + 2_000,
            serde_json::json!({"duration_seconds":2,"errors":1,"warnings":0,"status":"failed"}),
        ));
        b.observe(&ev(
            EventType::BuildSummary,
            "Python",
            t0 + 2_500,
            serde_json::json!({"duration_seconds":2,"errors":1,"warnings":0,"status":"failed"}),
        ));
        // An older build read later: its samples still come first in its series.
        let mut old = ev(
            EventType::BuildSummary,
            "Python",
            t0 - 86_400_000,
            serde_json::json!({"duration_seconds":7,"errors":1,"warnings":3}),
        );
        old.correlation_id = "build-older".into();
        b.observe(&old);
        let s = b.finish();
        let ts = |ms: i64| format!("{}.{:03}", ms / 1000, ms % 1000);
        assert!(
            s.contains(&format!(
                "container_build_duration_seconds{{feature=\"python\",status=\"failed\"}} 7 {}\ncontainer_build_duration_seconds{{feature=\"python\",status=\"failed\"}} 2 {}\n",
                ts(t0 - 86_400_000),
                ts(t0 + 2_000)
            )),
            "{s}"
        );
        // Unchanged by the summary line: no second sample at t0+2.5s.
        assert!(
            !s.contains(&format!("status=\"failed\"}} 2 {}", ts(t0 + 2_500))),
            "{s}"
        );
        // The output line counted before the feature_end: sampled at the feature_end.
        assert!(
            s.contains(&format!(
                "container_build_log_lines_total{{feature=\"python\",level=\"info\"}} 1 {}\n",
                ts(t0 + 2_000)
            )),
            "{s}"
        );
        assert!(s.contains("# TYPE container_build_errors counter\n"));
        assert_eq!(
            s.matches("# TYPE container_build_duration_seconds gauge")
                .count(),
            1
        );
        assert!(s.ends_with("# EOF\n"));
    }

    #[test]
    fn nothing_read_is_an_empty_document() {
        assert_eq!(Backfill::new().finish(), "# EOF\n");
    }
}
