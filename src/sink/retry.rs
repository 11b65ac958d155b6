//! Exponential backoff with full jitter, shared by every network sink.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    /// Retries after the first attempt; `0` sends once, `u32::MAX` retries forever.
    pub max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_retries: 10,
        }
    }
}

impl Backoff {
    /// A backoff from a sink's `--<sink>-retry-initial`, `--<sink>-retry-max-wait` and
    /// `--<sink>-retry-max`, refused (exit 2) when it cannot work. `flag` is the sink's flag
    /// prefix (`--loki`), for the messages.
    pub fn checked(
        flag: &str,
        initial: Duration,
        max_wait: Duration,
        max: crate::duration::RetryLimit,
    ) -> Result<Backoff, crate::error::UsageError> {
        use crate::error::UsageError;
        if initial.is_zero() {
            return Err(UsageError(format!(
                "{flag}-retry-initial must be more than 0"
            )));
        }
        if max_wait < initial {
            return Err(UsageError(format!(
                "{flag}-retry-max-wait ({}) must not be shorter than {flag}-retry-initial ({})",
                crate::duration::format(max_wait),
                crate::duration::format(initial)
            )));
        }
        if max_wait > Duration::from_secs(86_400) {
            return Err(UsageError(format!(
                "{flag}-retry-max-wait must be at most a day"
            )));
        }
        Ok(Backoff {
            min: initial,
            max: max_wait,
            max_retries: max.as_u32(),
        })
    }

    /// True when `max_retries` stands for "retry until delivered".
    pub fn is_infinite(&self) -> bool {
        self.max_retries == u32::MAX
    }

    /// The wait before retry number `attempt` (1-based): a random duration in
    /// `[min, min(max, min * 2^(attempt-1))]`, so that many clients do not retry in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .min
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max)
            .max(self.min);
        let span = cap.saturating_sub(self.min).as_millis() as u64;
        self.min
            + Duration::from_millis(if span == 0 {
                0
            } else {
                fastrand::u64(0..=span)
            })
    }

    /// The wait a server asked for (`Retry-After`), bounded by `max`.
    pub fn server_delay(&self, retry_after: Duration) -> Duration {
        retry_after.min(self.max)
    }
}

/// Parses a `Retry-After` header value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let now = jiff::Timestamp::now();
    let d = when.duration_since(now);
    Some(Duration::try_from(d).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_bounds_and_grow() {
        let b = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(2),
            max_retries: 5,
        };
        for attempt in 1..20 {
            let d = b.delay(attempt);
            assert!(d >= b.min && d <= b.max, "{attempt}: {d:?}");
        }
        assert_eq!(b.delay(1), Duration::from_millis(100));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
