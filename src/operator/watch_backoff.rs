//! How the operator's watches are retried after the API server failed them.

use std::time::Duration;

/// How a watch that failed is retried: 0.5 s doubling to 5 s, with jitter, starting over
/// after a minute without failures. kube-runtime's default grows to 30 s, so the operator
/// could sit out half a minute after the API server came back (RELIABILITY.md measured it);
/// a watch is one request, so retrying sooner costs the API server little.
#[derive(Debug, Clone)]
pub(super) struct WatchBackoff {
    next: Duration,
    last: Option<std::time::Instant>,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(5);
    const RESET_AFTER: Duration = Duration::from_secs(60);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self {
            next: Self::FIRST,
            last: None,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.last.is_some_and(|t| t.elapsed() > Self::RESET_AFTER) {
            self.next = Self::FIRST;
        }
        self.last = Some(std::time::Instant::now());
        let now = self.next;
        self.next = self.next.saturating_mul(2).min(Self::MAX);
        Some(now.mul_f64(0.75 + rand::random::<f64>() * 0.5))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        *self = Self::default();
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
}
