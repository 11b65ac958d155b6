//! Durations on the command line and in the configuration file: `500ms`, `30s`, `2m`,
//! `1h`, `1m30s`, `1.5s`. One syntax for every flag that takes a time.
//!
//! Flags that used to take a bare number keep accepting one, in their old unit, so that
//! existing command lines and unit files keep working; the parser is told that unit.

use std::time::Duration;

/// What a bare number (no unit) means for one flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareUnit {
    Seconds,
    Millis,
}

/// Parses `s` as a duration. A bare number is taken in `bare`.
pub fn parse(s: &str, bare: BareUnit) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration; expected e.g. 30s, 500ms, 2m".into());
    }
    if let Ok(n) = t.parse::<f64>() {
        if !(n.is_finite() && n >= 0.0) {
            return Err(format!("{s:?} is not a duration"));
        }
        let secs = match bare {
            BareUnit::Seconds => n,
            BareUnit::Millis => n / 1000.0,
        };
        return checked(secs, s);
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?}: a number needs a unit (ms, s, m, h, d)"))?;
        if num_len == 0 {
            return Err(format!(
                "{s:?} is not a duration; expected e.g. 30s, 500ms, 2m, 1h30m"
            ));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("{s:?}: {:?} is not a number", &rest[..num_len]))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match rest[..unit_len].trim() {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hours" => 3600.0,
            "d" | "days" => 86_400.0,
            u => {
                return Err(format!(
                    "{s:?}: unknown unit {u:?}; use ms, s, m, h or d (e.g. 30s, 500ms, 2m)"
                ))
            }
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    checked(total, s)
}

fn checked(secs: f64, s: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is out of range"))
}

/// The short form of `d` that [`parse`] reads back: `1m30s`, `500ms`, `2h`.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let mut secs = (ms / 1000) as u64;
    let mut out = String::new();
    for (unit, n) in [("h", 3600u64), ("m", 60), ("s", 1)] {
        if secs >= n {
            out.push_str(&format!("{}{unit}", secs / n));
            secs %= n;
        }
    }
    out
}

/// A clap value parser for a duration flag whose bare numbers mean seconds.
pub fn secs(s: &str) -> Result<Duration, String> {
    parse(s, BareUnit::Seconds)
}

/// A clap value parser for a duration flag whose bare numbers mean milliseconds (the flags
/// that used to be `..._MS`).
pub fn millis(s: &str) -> Result<Duration, String> {
    parse(s, BareUnit::Millis)
}

/// How often to retry: a number of retries or `infinite` (for daemons, which keep a
/// sink's events until it comes back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryLimit {
    Times(u32),
    Infinite,
}

impl Default for RetryLimit {
    fn default() -> Self {
        RetryLimit::Times(10)
    }
}

impl RetryLimit {
    /// As `Backoff::max_retries`: `u32::MAX` stands for infinite.
    pub fn as_u32(self) -> u32 {
        match self {
            RetryLimit::Times(n) => n,
            RetryLimit::Infinite => u32::MAX,
        }
    }
}

impl std::fmt::Display for RetryLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryLimit::Times(n) => write!(f, "{n}"),
            RetryLimit::Infinite => f.write_str("infinite"),
        }
    }
}

/// A clap value parser for `--<sink>-retry-max`.
pub fn retry_limit(s: &str) -> Result<RetryLimit, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("infinite") || t.eq_ignore_ascii_case("inf") {
        return Ok(RetryLimit::Infinite);
    }
    match t.parse::<u32>() {
        Ok(u32::MAX) => Ok(RetryLimit::Infinite),
        Ok(n) => Ok(RetryLimit::Times(n)),
        Err(_) => Err(format!("{s:?}: expected a number of retries or `infinite`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_sums() {
        assert_eq!(secs("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(secs("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(secs("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(secs("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(secs("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(secs("1m 30s"), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn bare_numbers_take_the_old_unit() {
        assert_eq!(secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(secs("30"), Ok(Duration::from_secs(30)));
        assert_eq!(millis("500"), Ok(Duration::from_millis(500)));
        assert_eq!(millis("2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "",
            "s",
            "5x",
            "-1",
            "-1s",
            "1..5s",
            "inf",
            "NaN",
            "3 fortnights",
        ] {
            assert!(secs(bad).is_err(), "{bad}");
        }
        let e = secs("5x").unwrap_err();
        assert!(e.contains("unknown unit \"x\""), "{e}");
    }

    #[test]
    fn format_reads_back() {
        for d in [0u64, 500, 1000, 90_000, 3_600_000, 5_430_250] {
            let d = Duration::from_millis(d);
            assert_eq!(secs(&format(d)), Ok(d), "{}", format(d));
        }
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn retry_limits() {
        assert_eq!(retry_limit("10"), Ok(RetryLimit::Times(10)));
        assert_eq!(retry_limit("infinite"), Ok(RetryLimit::Infinite));
        assert_eq!(retry_limit("100000").unwrap().as_u32(), 100_000);
        assert_eq!(RetryLimit::Infinite.as_u32(), u32::MAX);
        assert!(retry_limit("-1").is_err());
        assert!(retry_limit("many").is_err());
    }
}
