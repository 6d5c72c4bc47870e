//! How fast one walk goes: a first walk at the rate limit, later ones spread over the interval
//! and well inside the paging session, slowing after pages that woke practitioners. Pure.

use std::time::Duration;

/// How fast one walk goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Pace {
    /// Pause after a page, per page and per practitioner the page woke.
    pub(super) per_page: Duration,
    /// Pages the walk expects.
    expected_pages: u32,
    /// The walk must be done by then (well inside the paging session).
    deadline: Duration,
}

impl Pace {
    /// A first walk goes at the rate limit. Later walks spread their pages, and the reads and
    /// writes of the practitioners they are expected to wake (as many as the last walk woke),
    /// over at most 80% of the interval and 40% of the paging session's lifetime, at most 5 s a
    /// page; the deadline, 70% of the lifetime, leaves room for more drift than expected.
    pub(super) fn plan(
        first: bool,
        resync: Duration,
        paging_ttl: Duration,
        expected_pages: u32,
        expected_woken: u32,
    ) -> Self {
        let deadline = paging_ttl.mul_f64(0.7);
        let per_page = if first {
            Duration::ZERO
        } else {
            let budget = resync.mul_f64(0.8).min(paging_ttl.mul_f64(0.4));
            let units = expected_pages.saturating_add(expected_woken).max(1);
            (budget / units).min(Duration::from_secs(5))
        };
        Pace {
            per_page,
            expected_pages,
            deadline,
        }
    }

    /// The pause after a page that woke `woken` practitioners: each woken one sends a read and
    /// maybe a write, so the next page waits that much longer, keeping the request rate even.
    /// A walk running late spreads what is left evenly over the time to its deadline instead.
    pub(super) fn after_page(&self, pages_done: u32, woken: u32, elapsed: Duration) -> Duration {
        let remaining = self.expected_pages.saturating_sub(pages_done);
        let rest = self.per_page.saturating_mul(remaining);
        let wanted = self.per_page.saturating_mul(woken.saturating_add(1));
        if elapsed + wanted + rest <= self.deadline {
            wanted
        } else {
            let left = self.deadline.saturating_sub(elapsed);
            (left / remaining.saturating_add(1)).min(self.per_page)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_fits_well_inside_the_paging_session_at_the_default_interval() {
        // 10,000 records at 50 a page, default 10-minute interval, 5-minute session: the old
        // pace (80% of the interval) took 480 s and met a 4113; now 120 s.
        let s = Duration::from_secs;
        let pace = Pace::plan(false, s(600), s(300), 200, 0);
        assert_eq!(pace.per_page, Duration::from_millis(600));
        assert_eq!(pace.per_page * 200, s(120));
        // 100 practitioners woken last time: their reads and writes share the same 120 s.
        let drifting = Pace::plan(false, s(600), s(300), 200, 100);
        assert_eq!(drifting.per_page * 300, s(120));
        // A learned 60 s session: 24 s for the walk.
        let short = Pace::plan(false, s(600), s(60), 200, 0);
        assert_eq!(short.per_page * 200, s(24));
        // A first walk goes at the rate limit.
        assert_eq!(
            Pace::plan(true, s(600), s(300), 200, 0).per_page,
            Duration::ZERO
        );
        // A short interval paces by the interval.
        let fast = Pace::plan(false, s(60), s(300), 20, 0);
        assert_eq!(fast.per_page * 20, s(48));
    }

    #[test]
    fn woken_records_stretch_the_pause_but_never_past_the_deadline() {
        let s = Duration::from_secs;
        let pace = Pace::plan(false, s(600), s(300), 200, 0);
        assert_eq!(pace.after_page(1, 0, s(0)), Duration::from_millis(600));
        assert_eq!(pace.after_page(1, 2, s(1)), Duration::from_millis(1800));
        // Late (deadline 210 s): what is left is spread evenly, never slower than planned.
        assert_eq!(pace.after_page(100, 2, s(150)), s(60) / 101);
        assert_eq!(pace.after_page(100, 0, s(210)), Duration::ZERO);
    }
}
