//! Local wall-clock times to UTC instants, the way DESIGN.md's "Time" section says.
//!
//! The text logs carry a date only in `Start Time:`/`End Time:` and a time of day in
//! `[HH:MM:SS]`. A time of day that goes back by more than 12 hours is the next day; a
//! smaller step back is not. Where a local time is ambiguous (clocks falling back), the
//! earliest instant not before the previous one is chosen, so UTC keeps increasing.
//!
//! A stamp names a whole second: the event happened somewhere inside it. Its instant is
//! placed at the middle of that second (`.500`), the estimate that is never more than half
//! a second off; the JSON logger's millisecond times replace it where the build has them.

/// Where inside its second a whole-second stamp is placed.
pub const MID_SECOND_MS: i64 = 500;

use crate::event::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};

pub struct Clock {
    tz: TimeZone,
    date: Date,
    /// Whether `date` came from the log (else it is 1970-01-01, a placeholder).
    dated: bool,
    last_time: Option<Time>,
    last: Option<Timestamp>,
    /// The last resolved (date, time) and its instant: most lines repeat the previous stamp.
    cache: Option<(Date, Time, Timestamp)>,
}

impl Clock {
    pub fn new(tz: TimeZone) -> Self {
        Clock {
            tz,
            date: Date::constant(1970, 1, 1),
            dated: false,
            last_time: None,
            last: None,
            cache: None,
        }
    }

    /// The current instant: the last stamp seen (lines without one inherit it).
    pub fn now(&self) -> Timestamp {
        self.last.unwrap_or_default()
    }

    pub fn is_dated(&self) -> bool {
        self.dated
    }

    /// Moves the clock forward to `ts` if it is later (a command's start plus its duration).
    pub fn advance_to(&mut self, ts: Timestamp) {
        if self.last.is_none_or(|l| ts > l) {
            self.last = Some(ts);
        }
    }

    /// An exact instant (a CI runner's timestamp): it also sets the local date and time of
    /// day that later stamps continue from.
    pub fn set_instant(&mut self, ts: Timestamp) {
        if let Ok(t) = jiff::Timestamp::from_millisecond(ts.0) {
            let local = self.tz.to_datetime(t);
            self.date = local.date();
            self.dated = true;
            self.last_time = Some(local.time());
        }
        self.last = Some(ts);
    }

    /// A full local date and time (`Start Time:`, `End Time:`).
    pub fn set_datetime(&mut self, date: Date, time: Time) -> Timestamp {
        self.date = date;
        self.dated = true;
        self.last_time = Some(time);
        self.resolve(date, time)
    }

    /// A time of day (`[HH:MM:SS]`) on the current date, rolling over past midnight.
    pub fn set_time(&mut self, time: Time) -> Timestamp {
        if let Some(prev) = self.last_time {
            let back = prev.duration_since(time).as_secs();
            if back > 12 * 3600 {
                self.date = self.date.tomorrow().unwrap_or(self.date);
            }
        }
        self.last_time = Some(time);
        self.resolve(self.date, time)
    }

    fn resolve(&mut self, date: Date, time: Time) -> Timestamp {
        if let Some((d, t, ts)) = self.cache {
            if d == date && t == time && self.last.is_none_or(|l| ts >= l) {
                self.last = Some(ts);
                return ts;
            }
        }
        let amb = self
            .tz
            .to_ambiguous_timestamp(DateTime::from_parts(date, time));
        let ts = match amb.offset() {
            AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Gap { .. } => amb
                .compatible()
                .map(|t| Timestamp(t.as_millisecond() + MID_SECOND_MS))
                .unwrap_or_default(),
            AmbiguousOffset::Fold { before, after } => {
                let dt = DateTime::from_parts(date, time);
                let at = |off: jiff::tz::Offset| {
                    off.to_timestamp(dt)
                        .map(|t| Timestamp(t.as_millisecond() + MID_SECOND_MS))
                        .unwrap_or_default()
                };
                let (early, late) = {
                    let (a, b) = (at(before), at(after));
                    (a.min(b), a.max(b))
                };
                match self.last {
                    Some(l) if early < l => late,
                    _ => early,
                }
            }
        };
        self.cache = Some((date, time, ts));
        self.last = Some(ts);
        ts
    }
}

/// `HH:MM:SS` at the start of `s`.
pub fn parse_hms(s: &[u8]) -> Option<Time> {
    if s.len() < 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let two = |i: usize| -> Option<i8> {
        let (a, b) = (s[i], s[i + 1]);
        (a.is_ascii_digit() && b.is_ascii_digit()).then(|| ((a - b'0') * 10 + (b - b'0')) as i8)
    };
    Time::new(two(0)?, two(3)?, two(6)?, 0).ok()
}

/// `YYYY-MM-DD HH:MM:SS`.
pub fn parse_date_time(s: &str) -> Option<(Date, Time)> {
    let s = s.trim();
    let (d, t) = s.split_once(' ')?;
    let date: Date = d.parse().ok()?;
    let time = parse_hms(t.trim().as_bytes())?;
    Some((date, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    #[test]
    fn midnight_rollover_is_the_next_day() {
        let mut c = Clock::new(TimeZone::UTC);
        let (d, t) = parse_date_time("2025-11-16 23:59:58").unwrap();
        c.set_datetime(d, t);
        let ts = c.set_time(parse_hms(b"00:00:03").unwrap());
        assert_eq!(ts.to_rfc3339(), "2025-11-17T00:00:03.500Z");
        // A small step back stays on the same day.
        let back = c.set_time(parse_hms(b"23:59:59").unwrap());
        assert_eq!(back.to_rfc3339(), "2025-11-17T23:59:59.500Z");
    }

    #[test]
    fn chicago_fall_back_keeps_utc_increasing() {
        let mut c = Clock::new(tz("America/Chicago"));
        let (d, t) = parse_date_time("2026-11-01 01:59:58").unwrap();
        assert_eq!(
            c.set_datetime(d, t).to_rfc3339(),
            "2026-11-01T06:59:58.500Z"
        );
        assert_eq!(
            c.set_time(parse_hms(b"01:59:59").unwrap()).to_rfc3339(),
            "2026-11-01T06:59:59.500Z"
        );
        assert_eq!(
            c.set_time(parse_hms(b"01:00:50").unwrap()).to_rfc3339(),
            "2026-11-01T07:00:50.500Z"
        );
        let (d, t) = parse_date_time("2026-11-01 01:00:52").unwrap();
        assert_eq!(
            c.set_datetime(d, t).to_rfc3339(),
            "2026-11-01T07:00:52.500Z"
        );
    }

    #[test]
    fn rejects_malformed_times() {
        assert!(parse_hms(b"25:00:00").is_none());
        assert!(parse_hms(b"1:00:00").is_none());
        assert!(parse_date_time("2025-13-01 00:00:00").is_none());
    }
}
