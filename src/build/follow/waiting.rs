//! A followed file's parsed events that wait to be handed on, oldest first, with when each
//! read parsed them.
//!
//! Events are about 400 bytes. The parser writes a read's events into a list of its own; when
//! nothing waits (the usual case while a build is followed), that list becomes the queue where
//! its events lie and the queue's emptied buffer becomes the parser's next list, so no event
//! is moved on the way. Moving every event into the queue was about a tenth of the follower's
//! samples (`perf record`).

use super::Parsed;
use crate::event::Event;
use std::collections::VecDeque;

#[derive(Default)]
pub(super) struct Waiting {
    events: VecDeque<Event>,
    /// How many events each read added and when it parsed them, oldest first; the counts sum
    /// to `events.len()`, none is zero.
    runs: VecDeque<(usize, Parsed)>,
}

/// What became of the event `Waiting::release_front` offered.
pub(super) enum Step {
    /// Not ready: it and every event after it wait.
    Wait,
    /// Handed on: the next one is offered.
    Next,
    /// Handed on (or refused by a consumer that is gone): nothing more is offered.
    Last,
}

impl Waiting {
    pub(super) fn len(&self) -> usize {
        self.events.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Event> {
        self.events.iter_mut()
    }

    /// When the first waiting event was parsed.
    pub(super) fn front_parsed(&self) -> Option<Parsed> {
        self.runs.front().map(|r| r.1)
    }

    /// Queues the events of `parsed` (left empty, with room) as parsed `when`.
    pub(super) fn append(&mut self, parsed: &mut Vec<Event>, when: Parsed) {
        if parsed.is_empty() {
            return;
        }
        self.runs.push_back((parsed.len(), when));
        if self.events.is_empty() {
            // Both conversions keep their buffer and move no element (the deque is empty).
            let emptied =
                std::mem::replace(&mut self.events, VecDeque::from(std::mem::take(parsed)));
            *parsed = Vec::from(emptied);
        } else {
            self.events.extend(parsed.drain(..));
        }
    }

    /// Every waiting event, taken out in order.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.runs.clear();
        self.events.drain(..)
    }

    /// Offers the waiting events from the first, each with when it was parsed, to `release`
    /// until it says `Wait` or `Last`; the events it handed on are dropped where they lie.
    pub(super) fn release_front(&mut self, mut release: impl FnMut(&mut Event, Parsed) -> Step) {
        let mut done = 0;
        'runs: for &(n, when) in &self.runs {
            for e in self.events.range_mut(done..done + n) {
                match release(e, when) {
                    Step::Wait => break 'runs,
                    Step::Next => done += 1,
                    Step::Last => {
                        done += 1;
                        break 'runs;
                    }
                }
            }
        }
        self.events.drain(..done);
        while done > 0 {
            let run = self.runs.front_mut().expect("the runs count every event");
            if run.0 <= done {
                done -= run.0;
                self.runs.pop_front();
            } else {
                run.0 -= done;
                done = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventType, Level};
    use std::time::Instant;

    fn ev(line: u64) -> Event {
        let mut e = Event::new(EventType::Output, Level::Info, "f", "m");
        e.source.line = line;
        e
    }

    fn lines(w: &Waiting) -> Vec<u64> {
        w.iter().map(|e| e.source.line).collect()
    }

    /// Reads appended one after another, released in steps that stop inside a read, at its
    /// end, and on a refusal: each event is offered with its own read's time, in order, once.
    #[test]
    fn events_leave_in_order_with_their_reads_time() {
        let t0 = Instant::now();
        let when = |poll| Parsed { at: t0, poll };
        let mut w = Waiting::default();
        let mut parsed: Vec<Event> = (1..=3).map(ev).collect();
        w.append(&mut parsed, when(1));
        assert!(
            parsed.is_empty() && parsed.capacity() == 0,
            "the queue's empty buffer"
        );
        parsed.extend((4..=5).map(ev));
        w.append(&mut parsed, when(2));
        w.append(&mut Vec::new(), when(3));
        parsed.extend((6..=9).map(ev));
        w.append(&mut parsed, when(4));
        assert_eq!(lines(&w), (1..=9).collect::<Vec<_>>());
        assert_eq!(w.front_parsed().map(|p| p.poll), Some(1));

        // Up to line 4 (inside the second read).
        let mut seen = Vec::new();
        w.release_front(|e, p| {
            if e.source.line > 4 {
                return Step::Wait;
            }
            seen.push((e.source.line, p.poll));
            Step::Next
        });
        assert_eq!(seen, [(1, 1), (2, 1), (3, 1), (4, 2)]);
        assert_eq!(lines(&w), [5, 6, 7, 8, 9]);
        assert_eq!(w.front_parsed().map(|p| p.poll), Some(2));

        // The consumer goes away at line 6: 6 is dropped all the same.
        let mut seen = Vec::new();
        w.release_front(|e, p| {
            seen.push((e.source.line, p.poll));
            if e.source.line == 6 {
                Step::Last
            } else {
                Step::Next
            }
        });
        assert_eq!(seen, [(5, 2), (6, 4)]);
        assert_eq!(lines(&w), [7, 8, 9]);
        assert_eq!(w.len(), 3);

        // Waiting events: a new read goes behind them.
        let mut parsed: Vec<Event> = vec![ev(10)];
        w.append(&mut parsed, when(5));
        assert!(parsed.is_empty());
        let mut seen = Vec::new();
        w.release_front(|e, p| {
            seen.push((e.source.line, p.poll));
            Step::Next
        });
        assert_eq!(seen, [(7, 4), (8, 4), (9, 4), (10, 5)]);
        assert!(w.is_empty() && w.front_parsed().is_none());

        let mut parsed: Vec<Event> = vec![ev(11), ev(12)];
        w.append(&mut parsed, when(6));
        assert_eq!(
            w.drain().map(|e| e.source.line).collect::<Vec<_>>(),
            [11, 12]
        );
        assert!(w.is_empty() && w.front_parsed().is_none());
    }
}
