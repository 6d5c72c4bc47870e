//! How the operator's watches are retried after the API server failed them.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use kube::runtime::utils::{Backoff, ResetTimerBackoff};

/// How a watch that failed is retried: 0.5 s doubling to 5 s, with jitter, starting over
/// after a minute without failures. kube-runtime's default grows to 30 s, so the operator
/// could sit out half a minute after the API server came back (RELIABILITY.md measured it);
/// a watch is one request, so retrying sooner costs the API server little. The doubling is
/// backon's, the start-over kube-runtime's `ResetTimerBackoff`; only the jitter is ours.
pub(super) struct WatchBackoff(ResetTimerBackoff<Doubling>);

const FIRST: Duration = Duration::from_millis(500);
const MAX: Duration = Duration::from_secs(5);
const RESET_AFTER: Duration = Duration::from_secs(60);

/// FIRST doubling to MAX, without end.
struct Doubling(ExponentialBackoff);

impl Doubling {
    fn new() -> Self {
        Self(
            ExponentialBuilder::new()
                .with_min_delay(FIRST)
                .with_max_delay(MAX)
                .without_max_times()
                .build(),
        )
    }
}

impl Iterator for Doubling {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.0.next()
    }
}

impl Backoff for Doubling {
    fn reset(&mut self) {
        *self = Self::new();
    }
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self(ResetTimerBackoff::new(Doubling::new(), RESET_AFTER))
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // Our own ±25 % jitter: backon's adds up to the whole delay again, 10 s at the cap.
        self.0
            .next()
            .map(|d| d.mul_f64(0.75 + rand::random::<f64>() * 0.5))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.0.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_seconds_and_start_over_after_a_reset() {
        let mut b = WatchBackoff::default();
        let delays: Vec<Duration> = (&mut b).take(10).collect();
        assert!(delays[0] <= Duration::from_millis(625));
        assert!(
            delays.iter().all(|d| *d <= Duration::from_millis(6250)),
            "{delays:?}"
        );
        kube::runtime::utils::Backoff::reset(&mut b);
        assert!(b.next().unwrap() <= Duration::from_millis(625));
    }

    #[test]
    fn retries_double_to_the_cap() {
        let delays: Vec<Duration> = WatchBackoff::default().take(10).collect();
        for (d, base) in delays.iter().zip([500, 1000, 2000, 4000, 5000, 5000]) {
            let base = Duration::from_millis(base);
            assert!(
                *d >= base.mul_f64(0.75) && *d <= base.mul_f64(1.25),
                "{delays:?}"
            );
        }
    }
}
