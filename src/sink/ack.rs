//! Acknowledgements from sinks back to the pipeline, for checkpoints while following.
//!
//! The pipeline records every event it hands to the sinks (`sent`); each sink reports every
//! event it has finished with (`done`): stored, already stored, or safely in the dead-letter
//! file. An event is acknowledged once every sink has reported it. Per source file, the
//! lowest event still outstanding bounds what a checkpoint may claim as delivered.

use crate::event::{Event, SharedStr};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One event sent and not yet reported by every sink.
#[derive(Debug, Clone, Copy)]
struct Due {
    seq: u64,
    /// Reports still due; 0: done, removed once it reaches the front.
    reports: u32,
    sent: Instant,
}

/// A source's outstanding events in seq order. Events go out in seq order per source, so a
/// new one is appended, and the lowest outstanding one is at the front once the finished
/// ones before it are popped. A `BTreeMap` (and a SipHash of the path per event to find it)
/// were a sixth of `ship --follow`'s samples (`perf record`); this is an append, a binary
/// search and a pop.
#[derive(Debug)]
struct SourceDue {
    source: SharedStr,
    events: VecDeque<Due>,
}

impl SourceDue {
    fn sent(&mut self, seq: u64, reports: u32, now: Instant) {
        let due = Due {
            seq,
            reports,
            sent: now,
        };
        match self.events.back() {
            Some(last) if last.seq >= seq => {
                // Out of seq order (not seen from the follower): kept sorted all the same.
                match self.events.binary_search_by_key(&seq, |d| d.seq) {
                    // Sent again: counted afresh, as a map entry replaced.
                    Ok(i) => self.events[i] = due,
                    Err(i) => self.events.insert(i, due),
                }
            }
            _ => self.events.push_back(due),
        }
    }

    /// One report for `seq`; true when it was the last one due.
    fn done(&mut self, seq: u64) -> bool {
        let Ok(i) = self.events.binary_search_by_key(&seq, |d| d.seq) else {
            return false;
        };
        let d = &mut self.events[i];
        if d.reports == 0 {
            return false;
        }
        d.reports -= 1;
        if d.reports > 0 {
            return false;
        }
        while self.events.front().is_some_and(|d| d.reports == 0) {
            self.events.pop_front();
        }
        true
    }
}

/// Outstanding events per source. A build has tens of sources; an event's is found by its
/// shared `Arc` first (every event of a file holds the same one), by name otherwise.
#[derive(Debug, Default)]
struct Pending {
    sources: Vec<SourceDue>,
    /// Where the last event's source was found.
    last: usize,
}

impl Pending {
    fn find(&mut self, source: &SharedStr) -> Option<&mut SourceDue> {
        let i = match self.sources.get(self.last) {
            Some(s) if s.source.ptr_eq(source) => self.last,
            _ => {
                let i = self.sources.iter().position(|s| s.source == *source)?;
                self.last = i;
                i
            }
        };
        Some(&mut self.sources[i])
    }

    /// The books of `source`, opened when it is new.
    fn entry(&mut self, source: &SharedStr) -> &mut SourceDue {
        if self.find(source).is_none() {
            self.last = self.sources.len();
            self.sources.push(SourceDue {
                source: source.clone(),
                events: VecDeque::new(),
            });
        }
        // `find` and the push above both leave `last` at the source.
        &mut self.sources[self.last]
    }

    fn get(&self, source: &str) -> Option<&SourceDue> {
        self.sources.iter().find(|s| &*s.source == source)
    }
}

#[derive(Debug, Default)]
pub struct Acks {
    inner: Mutex<Pending>,
    acknowledged: AtomicU64,
}

impl Acks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `event` goes to `sinks` sinks; each of them will call `done` for it once.
    pub fn sent(&self, event: &Event, sinks: u32) {
        if sinks == 0 {
            return;
        }
        let now = Instant::now();
        self.lock()
            .entry(&event.source.file)
            .sent(event.seq, sinks, now);
    }

    /// One sink has finished with `event` (stored or dead-lettered).
    pub fn done(&self, event: &Event) {
        self.done_all(std::iter::once(event));
    }

    /// Several events at once (a batch a sink finished), under one lock.
    pub fn done_all<'a, E: std::borrow::Borrow<Event> + 'a>(
        &self,
        events: impl IntoIterator<Item = &'a E>,
    ) {
        let mut acknowledged = 0;
        let mut m = self.lock();
        for e in events {
            let e: &Event = e.borrow();
            if m.find(&e.source.file).is_some_and(|s| s.done(e.seq)) {
                acknowledged += 1;
            }
        }
        drop(m);
        self.acknowledged.fetch_add(acknowledged, Ordering::Relaxed);
    }

    /// The lowest seq of `source` still outstanding; `None`: everything sent is acknowledged.
    pub fn lowest_pending(&self, source: &str) -> Option<u64> {
        let m = self.lock();
        m.get(source)?.events.front().map(|d| d.seq)
    }

    /// Events acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    /// When the oldest outstanding event was sent (None: nothing outstanding).
    pub fn oldest_pending(&self) -> Option<Instant> {
        let m = self.lock();
        m.sources
            .iter()
            .flat_map(|s| s.events.iter())
            .filter(|d| d.reports > 0)
            .map(|d| d.sent)
            .min()
    }

    /// Events sent and not yet acknowledged by every sink (counted when asked: a metrics
    /// scrape, like `oldest_pending`).
    pub fn outstanding(&self) -> usize {
        let m = self.lock();
        m.sources
            .iter()
            .flat_map(|s| s.events.iter())
            .filter(|d| d.reports > 0)
            .count()
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

    proptest::proptest! {
        /// Any sequence of sends and reports (out of seq order, repeated, for events never
        /// sent) gives the answers of a sorted map per source, the first form of the books.
        #[test]
        fn the_books_agree_with_a_sorted_map(
            ops in proptest::collection::vec((proptest::bool::ANY, 0usize..3, 0u64..40, 1u32..3), 0..300)
        ) {
            use std::collections::{BTreeMap, HashMap};
            let files = ["a", "b", "c"];
            // One shared Arc per file, as the follower's events hold, and a fresh one now
            // and then (found by name).
            let shared: Vec<SharedStr> = files.iter().map(|f| SharedStr::from(*f)).collect();
            let acks = Acks::default();
            let mut model: HashMap<&str, BTreeMap<u64, u32>> = HashMap::new();
            let mut acknowledged = 0u64;
            for (k, (send, file, seq, sinks)) in ops.into_iter().enumerate() {
                let mut e = ev(files[file], seq);
                if k % 7 != 0 {
                    e.source.file = shared[file].clone();
                }
                if send {
                    acks.sent(&e, sinks);
                    model.entry(files[file]).or_default().insert(seq, sinks);
                } else {
                    acks.done(&e);
                    if let Some(n) = model.get_mut(files[file]).and_then(|m| m.get_mut(&seq)) {
                        *n -= 1;
                        if *n == 0 {
                            model.get_mut(files[file]).unwrap().remove(&seq);
                            acknowledged += 1;
                        }
                    }
                }
                for f in files {
                    let low = model.get(f).and_then(|m| m.keys().next().copied());
                    proptest::prop_assert_eq!(acks.lowest_pending(f), low, "{}", f);
                }
                let outstanding: usize = model.values().map(|m| m.len()).sum();
                proptest::prop_assert_eq!(acks.outstanding(), outstanding);
                proptest::prop_assert_eq!(acks.oldest_pending().is_some(), outstanding > 0);
                proptest::prop_assert_eq!(acks.acknowledged(), acknowledged);
            }
        }
    }
}
