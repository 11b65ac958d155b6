//! One build's events, from whichever files they were parsed: the step between the parsers
//! and the sinks that batch, follow and the Fluent Bit plugin share.
//!
//! - **Twins.** The JSON logger writes some events the text log also shows (`feature_start`,
//!   `command`, `warning`, `error`, `feature_end`), with millisecond UTC times and its own
//!   correlation id. A text event takes its twin's time and id; the twin is not emitted
//!   again. Twins the text never claimed (a text log cut short) are emitted by
//!   `json_leftovers`.
//! - **Time.** Text logs give whole seconds in local time. Where a twin shows the same moment
//!   in UTC, the offset is learnt from it (per source file, so a daylight-saving change inside
//!   a feature is followed at its next twin) unless `--timezone` was given, in which case a
//!   contradiction of more than a minute is a warning. In a feature the JSON logger also
//!   wrote, a text time is placed at the start of its second (the logger's own times are
//!   never earlier than that), elsewhere at its middle. Within a source file a time never
//!   decreases: each is at least the one before it.
//! - **Identity.** The `Enricher` stamps correlation, event and trace ids and scrubs.

use crate::enrich::Enricher;
use crate::event::{Event, EventType, Timestamp};
use crate::recent::RecentMap;
use std::collections::VecDeque;

/// A text time without a twin was placed this far into its second by the parser.
const MID_SECOND_MS: i64 = crate::parse::clock::MID_SECOND_MS;
/// UTC offsets are whole quarter hours.
const QUARTER_HOUR_MS: i64 = 15 * 60 * 1000;
/// How far `--timezone` may disagree with the JSON logger before it is a warning.
const TZ_CONTRADICTION_MS: i64 = 60 * 1000;

/// The JSON logger's events of one feature, waiting to be matched with the text's.
#[derive(Default)]
pub struct JsonFeature {
    events: VecDeque<Event>,
    logger_id: Option<String>,
    source: String,
    source_name: String,
}

impl JsonFeature {
    pub fn new(source: &str, source_name: &str) -> Self {
        JsonFeature {
            source: source.to_string(),
            source_name: source_name.to_string(),
            ..Default::default()
        }
    }

    /// One event the logger wrote, its line number in `source.line`.
    pub fn push(&mut self, mut e: Event, logger_id: Option<String>) {
        if self.logger_id.is_none() {
            self.logger_id.clone_from(&logger_id);
        }
        e.logger_correlation_id = logger_id;
        self.events.push_back(e);
    }

    pub fn logger_id(&self) -> Option<&str> {
        self.logger_id.as_deref()
    }

    fn position(&self, e: &Event) -> Option<usize> {
        if !twin_eligible(e) {
            return None;
        }
        self.events.iter().position(|j| {
            j.event_type == e.event_type
                && (e.event_type != EventType::Command || j.command_num == e.command_num)
        })
    }
}

/// Whether the JSON logger writes a twin of this text event.
pub fn twin_eligible(e: &Event) -> bool {
    !e.incomplete
        && matches!(
            e.event_type,
            EventType::FeatureStart
                | EventType::Command
                | EventType::Warning
                | EventType::Error
                | EventType::FeatureEnd
        )
}

/// Time kept per source file.
#[derive(Default)]
struct SourceClock {
    last: Timestamp,
    /// The UTC offset learnt from this source's twins (ms to add to a text time).
    offset: Option<i64>,
}

/// The state of one build between its parsers and its sinks.
pub struct Assembler {
    enricher: Option<Enricher>,
    scrub: bool,
    /// `--timezone` was given: text times are in it, twins only check it.
    tz_explicit: bool,
    tz_name: String,
    /// Looked up for every text event of a build with JSON logging: a fast hasher.
    json: foldhash::HashMap<String, JsonFeature>,
    summary_json: VecDeque<Event>,
    clocks: RecentMap<SourceClock>,
    /// The last offset learnt anywhere in the build, for sources without twins.
    build_offset: Option<i64>,
    /// The latest time of each feature's events, for the events that have none of their own.
    last_time: RecentMap<Timestamp>,
    warned_tz: bool,
    pub warnings: Vec<String>,
}

impl Assembler {
    pub fn new(scrub: bool, tz_explicit: bool, tz_name: &str) -> Self {
        Assembler {
            enricher: None,
            scrub,
            tz_explicit,
            tz_name: tz_name.to_string(),
            json: foldhash::HashMap::default(),
            summary_json: VecDeque::new(),
            clocks: RecentMap::default(),
            build_offset: None,
            last_time: RecentMap::default(),
            warned_tz: false,
            warnings: Vec::new(),
        }
    }

    /// The build's correlation id is known: events can be stamped from now on.
    pub fn set_correlation_id(&mut self, id: String) {
        if self.enricher.is_none() {
            self.enricher = Some(Enricher::new(id, self.scrub));
        }
    }

    pub fn correlation_id(&self) -> Option<&str> {
        self.enricher.as_ref().map(Enricher::correlation_id)
    }

    /// The JSON logger's file of the feature `slug` (created empty if not yet known).
    pub fn json_feature(
        &mut self,
        slug: &str,
        source: &str,
        source_name: &str,
    ) -> &mut JsonFeature {
        self.json
            .entry(slug.to_string())
            .or_insert_with(|| JsonFeature::new(source, source_name))
    }

    pub fn has_json(&self, slug: &str) -> bool {
        self.json.contains_key(slug)
    }

    pub fn json_logger_id(&self, slug: &str) -> Option<&str> {
        self.json.get(slug).and_then(JsonFeature::logger_id)
    }

    /// A line of `json/build-summary.jsonl`.
    pub fn push_summary_json(&mut self, mut e: Event, logger_id: Option<String>) {
        e.logger_correlation_id = logger_id;
        self.summary_json.push_back(e);
    }

    /// Whether the twin of the text event `e` of feature `slug` has arrived.
    pub fn has_twin(&self, slug: &str, e: &Event) -> bool {
        self.json.get(slug).and_then(|j| j.position(e)).is_some()
    }

    /// Whether the build-summary line of a master-summary event has arrived.
    pub fn has_summary_twin(&self, e: &Event) -> bool {
        self.summary_json.iter().any(|j| j.feature == e.feature)
    }

    /// A text log's event (install log, summary or errors log of feature `slug`): takes its
    /// twin's time and ids, is timed and stamped.
    pub fn text_event(&mut self, slug: &str, e: &mut Event, source: &str, name: &str) {
        let jf = self.json.get_mut(slug);
        let has_json = jf.is_some();
        let twin = jf.and_then(|jf| {
            let twin = jf.position(e).and_then(|i| jf.events.remove(i));
            if twin.is_none() && e.logger_correlation_id.is_none() {
                e.logger_correlation_id = jf.logger_id.clone();
            }
            twin
        });
        let clock = self.clocks.entry(name);
        let text_time = if has_json && e.timestamp.0.rem_euclid(1000) == MID_SECOND_MS {
            Timestamp(e.timestamp.0 - MID_SECOND_MS)
        } else {
            e.timestamp
        };
        match twin {
            Some(twin) => {
                let diff = twin.timestamp.0 - text_time.0;
                if self.tz_explicit {
                    if diff.abs() > TZ_CONTRADICTION_MS && !self.warned_tz {
                        self.warned_tz = true;
                        self.warnings.push(format!(
                            "{name}:{}: --timezone {} puts this at {}, the JSON logger wrote {} for it ({} min apart); the JSON logger's time is kept",
                            e.source.line,
                            self.tz_name,
                            text_time,
                            twin.timestamp,
                            diff / 60_000
                        ));
                    }
                } else {
                    let offset =
                        (diff as f64 / QUARTER_HOUR_MS as f64).round() as i64 * QUARTER_HOUR_MS;
                    clock.offset = Some(offset);
                    self.build_offset = Some(offset);
                }
                e.timestamp = twin.timestamp;
                e.logger_correlation_id = twin.logger_correlation_id;
            }
            None => {
                let offset = if self.tz_explicit {
                    0
                } else {
                    clock.offset.or(self.build_offset).unwrap_or(0)
                };
                e.timestamp = Timestamp(text_time.0 + offset);
            }
        }
        self.stamp(e, source, name);
    }

    /// The events the JSON logger wrote for feature `slug` that no text event claimed (a
    /// text log cut short, or none at all), stamped; the feature is done with.
    pub fn json_leftovers(&mut self, slug: &str) -> Vec<Event> {
        let Some(jf) = self.json.remove(slug) else {
            return Vec::new();
        };
        jf.events
            .into_iter()
            .map(|mut e| {
                e.details.insert("from".into(), "json".into());
                self.stamp(&mut e, &jf.source, &jf.source_name);
                e
            })
            .collect()
    }

    /// Every feature's leftovers, in slug order.
    pub fn all_json_leftovers(&mut self) -> Vec<Event> {
        let mut slugs: Vec<String> = self.json.keys().cloned().collect();
        slugs.sort();
        slugs.iter().flat_map(|s| self.json_leftovers(s)).collect()
    }

    /// A `master-summary.log` event: timed by its `build-summary.jsonl` twin, else by its
    /// feature's last event.
    pub fn master_event(&mut self, e: &mut Event, source: &str, name: &str) {
        let twin = self
            .summary_json
            .iter()
            .position(|j| j.feature == e.feature)
            .and_then(|i| self.summary_json.remove(i));
        match twin {
            Some(j) => {
                e.timestamp = j.timestamp;
                e.logger_correlation_id = j.logger_correlation_id;
                e.command_count = j.command_count;
            }
            None => e.timestamp = self.feature_time(&e.feature),
        }
        self.stamp(e, source, name);
    }

    /// The `build-summary.jsonl` lines no master-summary line claimed.
    pub fn summary_leftovers(&mut self, source: &str, name: &str) -> Vec<Event> {
        std::mem::take(&mut self.summary_json)
            .into_iter()
            .map(|mut e| {
                e.details.insert("from".into(), "json".into());
                self.stamp(&mut e, source, name);
                e
            })
            .collect()
    }

    /// A `build-failure.log` event: at its feature's last event.
    pub fn failure_event(&mut self, e: &mut Event, source: &str, name: &str) {
        e.timestamp = self.feature_time(&e.feature);
        self.stamp(e, source, name);
    }

    /// An event whose time is its own (a JSON line, a console line): only ordered and stamped.
    pub fn event(&mut self, e: &mut Event, source: &str, name: &str) {
        self.stamp(e, source, name);
    }

    fn feature_time(&self, feature: &str) -> Timestamp {
        self.last_time.get(feature).copied().unwrap_or_default()
    }

    /// Keeps the source's time from going back, notes the feature's latest time, stamps ids.
    fn stamp(&mut self, e: &mut Event, source: &str, name: &str) {
        let enricher = self
            .enricher
            .as_mut()
            .expect("the correlation id is set before the first event is stamped");
        if !e.correlation_id.is_empty() && !e.event_id.is_empty() {
            // Replayed buildlog output keeps its identity and time.
            enricher.apply(e, source, name);
            return;
        }
        let clock = self.clocks.entry(name);
        e.timestamp = e.timestamp.max(clock.last);
        clock.last = e.timestamp;
        if !e.feature.is_empty() {
            let t = self.last_time.entry(&e.feature);
            *t = (*t).max(e.timestamp);
        }
        self.enricher
            .as_mut()
            .expect("checked above")
            .apply(e, source, name);
    }
}
