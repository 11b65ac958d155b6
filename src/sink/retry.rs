//! Exponential backoff with full jitter, and the one retry loop of the network sinks.
//!
//! Each sink classifies what one attempt came to ([`Attempt`]: done, worth retrying, or
//! refused for good); [`retry`] does the waiting, counting and giving up the same way for all.

use std::future::Future;
use std::time::Duration;

/// What one attempt came to, as the sink judges its server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T> {
    /// Delivered.
    Done(T),
    /// May pass (429, 5xx, a timeout, a connection error): try again after a wait, or after
    /// the server's `Retry-After`.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Sending the same again cannot help (a 400, a 401...): the reason says why.
    Refused(String),
}

/// How a retried delivery ended. `retries` counts the attempts after the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Done { value: T, retries: u32 },
    Refused { reason: String, retries: u32 },
    GaveUp { reason: String, retries: u32 },
}

impl<T> Outcome<T> {
    pub fn retries(&self) -> u32 {
        match self {
            Outcome::Done { retries, .. }
            | Outcome::Refused { retries, .. }
            | Outcome::GaveUp { retries, .. } => *retries,
        }
    }
}

/// The waiting, counting and giving up of one delivery, for sinks whose attempts need
/// their own state between tries (a connection, items of a bulk request); [`retry`] is the
/// loop around it for the others.
pub struct Retries<'a> {
    backoff: &'a Backoff,
    sink: &'a str,
    /// Retries so far (attempts after the first).
    pub count: u32,
}

impl<'a> Retries<'a> {
    pub fn new(backoff: &'a Backoff, sink: &'a str) -> Self {
        Self::resume(backoff, sink, 0)
    }

    /// Goes on from `count` retries already made (work that was split or partly retried).
    pub fn resume(backoff: &'a Backoff, sink: &'a str, count: u32) -> Self {
        Retries {
            backoff,
            sink,
            count,
        }
    }

    /// After an attempt that failed in a way that may pass: `Ok` after the wait (the
    /// server's `Retry-After`, bounded, else the jittered delay), or the reason to give up
    /// with when the backoff is used up.
    pub async fn wait(
        &mut self,
        reason: &str,
        retry_after: Option<Duration>,
    ) -> Result<(), String> {
        if self.count >= self.backoff.max_retries {
            return Err(format!(
                "gave up after {} attempts: {reason}",
                self.count + 1
            ));
        }
        self.count += 1;
        let wait = retry_after
            .map(|d| self.backoff.server_delay(d))
            .unwrap_or_else(|| self.backoff.delay(self.count));
        if self.backoff.is_infinite() {
            tracing::warn!(
                "{}: {reason}; retry {} in {:.1}s",
                self.sink,
                self.count,
                wait.as_secs_f64()
            );
        } else {
            tracing::warn!(
                "{}: {reason}; retry {}/{} in {:.1}s",
                self.sink,
                self.count,
                self.backoff.max_retries,
                wait.as_secs_f64()
            );
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// Runs `attempt` until it is done or refused, or `backoff` is used up; waits between tries
/// (the server's `Retry-After`, bounded, else the backoff's jittered delay) and says on
/// stderr what it retries and why. `sink` names the sink in those messages.
pub async fn retry<T, F, Fut>(backoff: &Backoff, sink: &str, mut attempt: F) -> Outcome<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let mut retries = Retries::new(backoff, sink);
    loop {
        match attempt(retries.count).await {
            Attempt::Done(value) => {
                return Outcome::Done {
                    value,
                    retries: retries.count,
                }
            }
            Attempt::Refused(reason) => {
                return Outcome::Refused {
                    reason,
                    retries: retries.count,
                }
            }
            Attempt::Retry {
                reason,
                retry_after,
            } => {
                if let Err(reason) = retries.wait(&reason, retry_after).await {
                    return Outcome::GaveUp {
                        reason,
                        retries: retries.count,
                    };
                }
            }
        }
    }
}

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

    #[tokio::test]
    async fn the_loop_retries_what_may_pass_and_gives_up_in_time() {
        let b = Backoff {
            min: Duration::from_millis(1),
            max: Duration::from_millis(5),
            max_retries: 3,
        };
        let started = std::time::Instant::now();
        // fails twice, then works
        let mut calls = 0;
        let out = retry(&b, "t", |n| {
            calls += 1;
            async move {
                if n < 2 {
                    Attempt::Retry {
                        reason: "HTTP 503".into(),
                        retry_after: None,
                    }
                } else {
                    Attempt::Done(n)
                }
            }
        })
        .await;
        assert_eq!(
            out,
            Outcome::Done {
                value: 2,
                retries: 2
            }
        );
        assert_eq!(calls, 3);
        // always failing: 1 + 3 attempts, the last reason kept
        let out: Outcome<()> = retry(&b, "t", |_| async {
            Attempt::Retry {
                reason: "Connection refused".into(),
                retry_after: Some(Duration::from_secs(60)),
            }
        })
        .await;
        assert_eq!(
            out,
            Outcome::GaveUp {
                reason: "gave up after 4 attempts: Connection refused".into(),
                retries: 3
            }
        );
        // refused at once: no retry
        // the server's Retry-After of a minute was bounded by the backoff's 5 ms
        assert!(started.elapsed() < Duration::from_secs(5));
        let out: Outcome<()> =
            retry(&b, "t", |_| async { Attempt::Refused("HTTP 400".into()) }).await;
        assert_eq!(
            out,
            Outcome::Refused {
                reason: "HTTP 400".into(),
                retries: 0
            }
        );
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
