//! Acknowledgements from sinks back to the pipeline, for checkpoints while following.
//!
//! The pipeline records every event it hands to the sinks (`sent`); each sink reports every
//! event it has finished with (`done`): stored, already stored, or safely in the dead-letter
//! file. An event is acknowledged once every sink has reported it. Per source file, the
//! lowest event still outstanding bounds what a checkpoint may claim as delivered.

use crate::event::Event;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Outstanding events per source: seq -> (reports still due, when it was sent).
type Pending = HashMap<std::sync::Arc<str>, BTreeMap<u64, (u32, Instant)>>;

#[derive(Debug, Default)]
pub struct Acks {
    inner: Mutex<Pending>,
    acknowledged: AtomicU64,
}

impl Acks {
    /// `event` goes to `sinks` sinks; each of them will call `done` for it once.
    pub fn sent(&self, event: &Event, sinks: u32) {
        if sinks == 0 {
            return;
        }
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(event.source.file.clone())
            .or_default()
            .insert(event.seq, (sinks, Instant::now()));
    }

    /// One sink has finished with `event` (stored or dead-lettered).
    pub fn done(&self, event: &Event) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pending) = m.get_mut(&*event.source.file) {
            if let Some((n, _)) = pending.get_mut(&event.seq) {
                *n -= 1;
                if *n == 0 {
                    pending.remove(&event.seq);
                    self.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Several events at once (a batch a sink finished).
    pub fn done_all<'a>(&self, events: impl IntoIterator<Item = &'a std::sync::Arc<Event>>) {
        for e in events {
            self.done(e);
        }
    }

    /// The lowest seq of `source` still outstanding; `None`: everything sent is acknowledged.
    pub fn lowest_pending(&self, source: &str) -> Option<u64> {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.get(source).and_then(|p| p.keys().next().copied())
    }

    /// Events acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// When the oldest outstanding event was sent (None: nothing outstanding).
    pub fn oldest_pending(&self) -> Option<Instant> {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.values()
            .filter_map(|p| p.values().map(|v| v.1).min())
            .min()
    }

    /// Events sent and not yet acknowledged by every sink.
    pub fn outstanding(&self) -> usize {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.values().map(|p| p.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(file: &str, seq: u64) -> Event {
        let mut e: Event = serde_json::from_str(
            r#"{"timestamp":"2025-01-01T00:00:00.000Z","level":"INFO","correlation_id":"c","event_type":"output","feature":"f","message":"m","seq":0,"event_id":"x","source":{"file":"a","line":1}}"#,
        )
        .unwrap();
        e.source.file = file.into();
        e.seq = seq;
        e
    }

    #[test]
    fn acknowledged_only_when_every_sink_reported() {
        let a = Acks::default();
        for s in 0..3 {
            a.sent(&ev("a", s), 2);
        }
        a.sent(&ev("b", 7), 2);
        assert_eq!(a.lowest_pending("a"), Some(0));
        a.done(&ev("a", 0));
        assert_eq!(a.lowest_pending("a"), Some(0), "one sink of two");
        a.done(&ev("a", 0));
        assert_eq!(a.lowest_pending("a"), Some(1));
        // Out of order completion: 2 before 1.
        a.done(&ev("a", 2));
        a.done(&ev("a", 2));
        assert_eq!(a.lowest_pending("a"), Some(1));
        a.done(&ev("a", 1));
        a.done(&ev("a", 1));
        assert_eq!(a.lowest_pending("a"), None);
        assert_eq!(a.lowest_pending("b"), Some(7));
        assert_eq!(a.outstanding(), 1);
        assert_eq!(a.acknowledged(), 3);
        assert!(a.oldest_pending().is_some());
        // A report for an event never sent changes nothing.
        a.done(&ev("b", 9));
        assert_eq!(a.outstanding(), 1);
    }
}
