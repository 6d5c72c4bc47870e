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

/// `Retry-After` in either form RFC 9110 allows: delay-seconds, or an HTTP date (then the wait
/// is that date less the clock now, zero for a date gone by). Bounded by [`MAX_RETRY_AFTER`];
/// anything else is ignored.
pub fn parse_retry_after(header: &str) -> Option<Duration> {
    parse_retry_after_at(header, std::time::SystemTime::now())
}

/// [`parse_retry_after`] against a given clock (for tests).
pub fn parse_retry_after_at(header: &str, now: std::time::SystemTime) -> Option<Duration> {
    let text = header.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

// Kept, not backon: full jitter under the cap, Retry-After first, a deadline counting requests too.
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
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
    }

    #[test]
    fn the_http_date_form_is_a_wait_from_now_bounded_and_never_negative() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let at = |h: &str| parse_retry_after_at(h, now);
        assert_eq!(
            at("Wed, 21 Oct 2015 07:28:30 GMT"),
            Some(Duration::from_secs(30))
        );
        // Past dates mean "now"; far ones are capped like huge second counts.
        assert_eq!(at("Wed, 21 Oct 2015 07:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(at("Fri, 31 Dec 9999 23:59:59 GMT"), Some(MAX_RETRY_AFTER));
        // The obsolete forms RFC 9110 still asks recipients to accept.
        assert_eq!(
            at("Wednesday, 21-Oct-15 07:28:10 GMT"),
            Some(Duration::from_secs(10))
        );
        assert_eq!(at("Wed Oct 21 07:28:05 2015"), Some(Duration::from_secs(5)));
        assert_eq!(at("Wed, 21 Oct 2015 25:00:00 GMT"), None);
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
