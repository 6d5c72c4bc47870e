//! Automatic retries of reads: how long to wait, from numbers that come from outside (a
//! server's `Retry-After`) as much as from the policy. Every sum and product here saturates:
//! a hostile header must cost at most one bounded wait, never a panic.

#![deny(clippy::arithmetic_side_effects)]

use std::time::Duration;

use rand::Rng;

/// Automatic retries of reads on 429, 5xx and transport errors.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No retry starts after this much time since the first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

/// The largest `Retry-After` believed; longer waits are the reconcile's backoff's business.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` in seconds (the form Epic-like servers send), bounded by [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(header: &str) -> Option<Duration> {
    header
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1 = the first retry): the server's
    /// `Retry-After` when it sent one, else exponential backoff with full jitter. None when the
    /// wait would end after `max_elapsed` (counted from the first attempt, `elapsed` ago).
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        elapsed: Duration,
    ) -> Option<Duration> {
        let delay = retry_after.unwrap_or_else(|| {
            let exponent = attempt.saturating_sub(1).min(16);
            let cap = self
                .base_delay
                .saturating_mul(1u32 << exponent)
                .min(self.max_delay);
            let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
            Duration::from_millis(rand::thread_rng().gen_range(0..=cap_ms))
        });
        (elapsed.saturating_add(delay) <= self.max_elapsed).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_retry_after_is_bounded_and_gives_up_instead_of_overflowing() {
        let d = parse_retry_after("18446744073709551615").unwrap();
        assert_eq!(d, MAX_RETRY_AFTER);
        let policy = RetryPolicy::default();
        // After a slow response (elapsed near the limit), the huge wait means: give up.
        assert_eq!(policy.delay(1, Some(d), Duration::MAX), None);
        assert_eq!(policy.delay(1, Some(d), Duration::from_secs(29)), None);
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(2)), Duration::ZERO),
            Some(Duration::from_secs(2))
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn backoff_stays_within_the_cap() {
        let policy = RetryPolicy::default();
        for attempt in [1, 2, 10, u32::MAX] {
            let d = policy.delay(attempt, None, Duration::ZERO).unwrap();
            assert!(d <= policy.max_delay, "{attempt}: {d:?}");
        }
    }
}
