//! Requests a connection sent, counted per 5 seconds over the last hour and per minute over
//! the last week: what a request budget (`spec.requestBudget`) is measured against, and what
//! the connection's status reports as used.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest budget period counted.
pub const MAX_PERIOD: Duration = Duration::from_secs(7 * 86_400);
const BUCKET: Duration = Duration::from_secs(60);
/// Short periods (a budget per minute) are counted finer.
const FINE: Duration = Duration::from_secs(5);
const FINE_SPAN: Duration = Duration::from_secs(3600);

/// Requests sent, in one-minute buckets and, for the last hour, five-second ones.
#[derive(Debug)]
pub struct Usage {
    started: Instant,
    buckets: Mutex<VecDeque<(u64, u64)>>,
    fine: Mutex<VecDeque<(u64, u64)>>,
}

impl Default for Usage {
    fn default() -> Self {
        Self::new()
    }
}

impl Usage {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            buckets: Mutex::new(VecDeque::new()),
            fine: Mutex::new(VecDeque::new()),
        }
    }

    fn slot(&self, at: Instant, width: Duration) -> u64 {
        at.duration_since(self.started).as_secs() / width.as_secs()
    }

    /// Counts one request sent now.
    pub fn count(&self) {
        self.count_at(Instant::now());
    }

    fn count_at(&self, at: Instant) {
        for (buckets, width, span) in [
            (&self.buckets, BUCKET, MAX_PERIOD),
            (&self.fine, FINE, FINE_SPAN),
        ] {
            let slot = self.slot(at, width);
            let mut b = buckets.lock().unwrap_or_else(|p| p.into_inner());
            match b.back_mut() {
                Some((m, n)) if *m == slot => *n = n.saturating_add(1),
                _ => b.push_back((slot, 1)),
            }
            let keep = span.as_secs() / width.as_secs();
            while b
                .front()
                .is_some_and(|(m, _)| slot.saturating_sub(*m) > keep)
            {
                b.pop_front();
            }
        }
    }

    /// Requests sent within the last `period` (to 5 s within the hour, else to the minute; at most [`MAX_PERIOD`]).
    pub fn within(&self, period: Duration) -> u64 {
        self.within_at(period, Instant::now())
    }

    fn within_at(&self, period: Duration, at: Instant) -> u64 {
        let (buckets, width) = if period <= FINE_SPAN {
            (&self.fine, FINE)
        } else {
            (&self.buckets, BUCKET)
        };
        let now = self.slot(at, width);
        let span = period.min(MAX_PERIOD).as_secs().div_ceil(width.as_secs());
        let b = buckets.lock().unwrap_or_else(|p| p.into_inner());
        b.iter()
            .rev()
            .take_while(|(m, _)| now.saturating_sub(*m) < span.max(1))
            .map(|(_, n)| *n)
            .fold(0u64, u64::saturating_add)
    }

    /// How long requests have been counted (a budget period not yet elapsed is partly
    /// observed).
    pub fn counted_for(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_period_and_forgets_beyond_a_week() {
        let u = Usage::new();
        let t0 = u.started;
        for _ in 0..5 {
            u.count_at(t0);
        }
        u.count_at(t0 + Duration::from_secs(3600));
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(u.within_at(Duration::from_secs(60), later), 1);
        assert_eq!(u.within_at(Duration::from_secs(3601), later), 6);
        assert_eq!(u.within_at(Duration::from_secs(2 * 3600), later), 6);
        // Counted per 5 s within the hour: a minute ago is out of a 30 s period.
        u.count_at(later + Duration::from_secs(60));
        assert_eq!(
            u.within_at(Duration::from_secs(30), later + Duration::from_secs(60)),
            1
        );
        let week = t0 + MAX_PERIOD + Duration::from_secs(3 * 3600);
        u.count_at(week);
        assert_eq!(u.within_at(MAX_PERIOD * 2, week), 1);
        assert!(u.fine.lock().unwrap().len() <= 2);
        assert!(u.buckets.lock().unwrap().len() <= 2);
    }
}
