//! The connection's adaptive request rate. Epic publishes no limits and asks clients to
//! throttle themselves, so a connection slows down by itself when Epic shows strain: a 429, a
//! 503, a timeout, or an answer much slower than the connection's own recent baseline cuts the
//! rate (multiplicatively); healthy answers let it climb back slowly (additively) to the
//! configured `requestsPerSecond`. A `Retry-After` (either form, on 429 and 503) holds every
//! request of the connection until it has passed, and Epic's daily-limit answer holds them until
//! the next day (or its `Retry-After`).
//!
//! The configured ceiling and burst stay with the client's fixed limiter; this pacer only adds
//! spacing while the rate is below the ceiling, and holds.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::FhirError;

/// The rate never falls below this fraction of the ceiling (nor below [`MIN_RATE`]).
const FLOOR_FRACTION: f64 = 0.02;
/// Requests per second the rate never falls below: a sick Epic still sees a trickle, so the
/// connection notices when it is well again.
pub const MIN_RATE: f64 = 0.2;
/// Factor applied on a 429, a 503 or a timeout.
const BACKOFF: f64 = 0.5;
/// Factor applied on an answer far slower than the baseline.
const SLOW_BACKOFF: f64 = 0.75;
/// At most one cut per this long: a burst of 429s from requests already in flight is one
/// signal, not twenty.
const CUT_COOLDOWN: Duration = Duration::from_secs(1);
/// Healthy answers give back this fraction of the ceiling per second since the last change.
const CLIMB_PER_SECOND: f64 = 0.05;
/// An answer is "slow" above this multiple of the baseline latency...
const SLOW_FACTOR: f64 = 4.0;
/// ...and at least this much above it (fast instances jitter by a few milliseconds).
const SLOW_MARGIN: Duration = Duration::from_millis(250);
/// Answers needed before the baseline is trusted.
const BASELINE_SAMPLES: u32 = 10;
/// A hold longer than this makes requests fail at once (their reconciles back off) instead of
/// waiting inside the client.
pub const HOLD_WAIT_MAX: Duration = Duration::from_secs(30);

/// Why requests are held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldKind {
    /// A `Retry-After` on a 429 or a 503.
    RetryAfter,
    /// Epic's daily-limit answer.
    DailyLimit,
}

/// What the rate is now, for status and metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct RateSnapshot {
    /// Requests per second allowed now.
    pub current: f64,
    /// The configured `requestsPerSecond`.
    pub ceiling: f64,
    /// The recent healthy latency, once enough answers were seen.
    pub baseline: Option<Duration>,
    /// How many times the rate was cut since the client was built.
    pub cuts: u64,
    /// What the last cut was for.
    pub last_cut: Option<&'static str>,
    /// Requests are held for this much longer, and why.
    pub held: Option<(Duration, HoldKind)>,
}

#[derive(Debug)]
struct State {
    rate: f64,
    next_slot: Instant,
    last_change: Instant,
    last_cut: Option<(Instant, &'static str)>,
    cuts: u64,
    baseline_ms: f64,
    samples: u32,
    hold: Option<(Instant, HoldKind, FhirError)>,
}

/// One connection's adaptive rate.
#[derive(Debug)]
pub struct AdaptiveRate {
    ceiling: f64,
    state: Mutex<State>,
}

impl AdaptiveRate {
    pub fn new(ceiling_rps: u32) -> Self {
        let now = Instant::now();
        let ceiling = f64::from(ceiling_rps.max(1));
        Self {
            ceiling,
            state: Mutex::new(State {
                rate: ceiling,
                next_slot: now,
                last_change: now,
                last_cut: None,
                cuts: 0,
                baseline_ms: 0.0,
                samples: 0,
                hold: None,
            }),
        }
    }

    fn floor(&self) -> f64 {
        (self.ceiling * FLOOR_FRACTION)
            .max(MIN_RATE)
            .min(self.ceiling)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for this request's turn. A hold that ends soon is waited out; a longer one
    /// answers with the error that started it (its `Retry-After` counting down), so nothing
    /// reaches Epic before Epic asked.
    pub async fn acquire(&self) -> Result<(), FhirError> {
        let wait = {
            let mut s = self.lock();
            let now = Instant::now();
            let held = match &s.hold {
                Some((until, _, e)) if *until > now => Some((*until - now, e.clone())),
                _ => None,
            };
            match held {
                Some((left, e)) if left > HOLD_WAIT_MAX => return Err(with_retry_after(e, left)),
                Some((left, _)) => left,
                None => {
                    s.hold = None;
                    if s.rate >= self.ceiling {
                        Duration::ZERO
                    } else {
                        let slot = s.next_slot.max(now);
                        let spacing = Duration::from_secs_f64(1.0 / s.rate.max(MIN_RATE));
                        s.next_slot = slot.checked_add(spacing).unwrap_or(slot);
                        slot - now
                    }
                }
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Learns from one answer: its HTTP status (None: no answer, a timeout or a reset) and how
    /// long it took.
    pub fn observe(&self, status: Option<u16>, latency: Duration) {
        let now = Instant::now();
        let mut s = self.lock();
        let ms = latency.as_secs_f64() * 1000.0;
        let strained = match status {
            Some(429) => Some((BACKOFF, "429")),
            Some(503) => Some((BACKOFF, "503")),
            None => Some((BACKOFF, "no answer")),
            Some(_) if s.samples >= BASELINE_SAMPLES && self.is_slow(&s, latency) => {
                Some((SLOW_BACKOFF, "latency"))
            }
            _ => None,
        };
        if matches!(status, Some(code) if code != 429 && code < 500) {
            // Slow answers move the baseline only a little: a lasting slowdown becomes the new
            // normal over minutes, one slow spell does not.
            let alpha = if strained.is_some() {
                0.01
            } else if s.samples < BASELINE_SAMPLES {
                1.0 / f64::from(s.samples.saturating_add(1))
            } else {
                0.05
            };
            s.baseline_ms += alpha * (ms - s.baseline_ms);
            s.samples = s.samples.saturating_add(1);
        }
        match strained {
            Some((factor, why)) => {
                let cooled = s
                    .last_cut
                    .is_none_or(|(at, _)| now.duration_since(at) >= CUT_COOLDOWN);
                if cooled {
                    s.rate = (s.rate * factor).max(self.floor());
                    s.last_cut = Some((now, why));
                    s.last_change = now;
                    s.cuts = s.cuts.saturating_add(1);
                    tracing::info!(
                        rate = s.rate,
                        cause = why,
                        "Epic shows strain: the connection slows down"
                    );
                }
            }
            None if s.rate < self.ceiling => {
                let since = now.duration_since(s.last_change).as_secs_f64();
                if since > 0.0 {
                    s.rate = (s.rate + self.ceiling * CLIMB_PER_SECOND * since).min(self.ceiling);
                    s.last_change = now;
                }
            }
            None => {}
        }
    }

    fn is_slow(&self, s: &State, latency: Duration) -> bool {
        let baseline = Duration::from_secs_f64((s.baseline_ms / 1000.0).max(0.0));
        latency > baseline.mul_f64(SLOW_FACTOR) && latency > baseline + SLOW_MARGIN
    }

    /// Holds every request for `wait` (Epic's `Retry-After`, bounded by the caller), or
    /// until the next UTC day for a daily limit that gave none. A longer hold in place stays.
    pub fn hold(&self, error: &FhirError) {
        let (wait, kind) = match error {
            FhirError::DailyLimit { retry_after, .. } => (
                retry_after.unwrap_or_else(until_next_utc_day),
                HoldKind::DailyLimit,
            ),
            other => match other.retry_after() {
                Some(d) => (d, HoldKind::RetryAfter),
                None => return,
            },
        };
        let now = Instant::now();
        let Some(until) = now.checked_add(wait) else {
            return;
        };
        let mut s = self.lock();
        if s.hold.as_ref().is_none_or(|(t, _, _)| *t < until) {
            s.hold = Some((until, kind, error.clone()));
        }
    }

    pub fn snapshot(&self) -> RateSnapshot {
        let s = self.lock();
        let now = Instant::now();
        RateSnapshot {
            current: s.rate,
            ceiling: self.ceiling,
            baseline: (s.samples >= BASELINE_SAMPLES)
                .then(|| Duration::from_secs_f64((s.baseline_ms / 1000.0).max(0.0))),
            cuts: s.cuts,
            last_cut: s.last_cut.map(|(_, why)| why),
            held: s
                .hold
                .as_ref()
                .filter(|(t, _, _)| *t > now)
                .map(|(t, k, _)| (*t - now, *k)),
        }
    }
}

/// The error a hold answers with, its `Retry-After` set to what is left.
fn with_retry_after(error: FhirError, left: Duration) -> FhirError {
    match error {
        FhirError::DailyLimit {
            status, outcome, ..
        } => FhirError::DailyLimit {
            status,
            outcome,
            retry_after: Some(left),
        },
        FhirError::Server {
            status, outcome, ..
        } => FhirError::Server {
            status,
            outcome,
            retry_after: Some(left),
        },
        _ => FhirError::Throttled {
            retry_after: Some(left),
        },
    }
}

/// Time left until the next 00:00 UTC (Epic's daily allowances are per day; with no
/// `Retry-After` that is the earliest a new day can start).
pub fn until_next_utc_day() -> Duration {
    let now = chrono::Utc::now();
    let next = now
        .date_naive()
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc());
    next.and_then(|n| (n - now).to_std().ok())
        .unwrap_or(Duration::from_secs(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy(rate: &AdaptiveRate, n: u32, ms: u64) {
        for _ in 0..n {
            rate.observe(Some(200), Duration::from_millis(ms));
        }
    }

    #[test]
    fn strain_cuts_the_rate_once_per_cooldown_down_to_a_floor() {
        let rate = AdaptiveRate::new(20);
        rate.observe(Some(429), Duration::from_millis(5));
        // Requests already in flight answer 429 too: still one cut.
        rate.observe(Some(429), Duration::from_millis(5));
        rate.observe(Some(503), Duration::from_millis(5));
        let s = rate.snapshot();
        assert_eq!(s.current, 10.0);
        assert_eq!(s.cuts, 1);
        assert_eq!(s.last_cut, Some("429"));
        let mut st = rate.lock();
        for _ in 0..20 {
            st.last_cut = st.last_cut.map(|(t, w)| (t - CUT_COOLDOWN, w));
            drop(st);
            rate.observe(None, Duration::from_secs(30));
            st = rate.lock();
        }
        assert_eq!(st.rate, MIN_RATE.max(20.0 * FLOOR_FRACTION));
    }

    #[test]
    fn slow_answers_against_the_baseline_cut_and_healthy_ones_climb_back() {
        let rate = AdaptiveRate::new(10);
        healthy(&rate, 20, 20);
        assert_eq!(rate.snapshot().current, 10.0);
        let base = rate.snapshot().baseline.unwrap();
        assert!(base >= Duration::from_millis(19) && base <= Duration::from_millis(21));
        // 150 ms is slower than 4x the baseline but within the margin: not strain.
        rate.observe(Some(200), Duration::from_millis(150));
        assert_eq!(rate.snapshot().current, 10.0);
        rate.observe(Some(200), Duration::from_millis(900));
        let cut = rate.snapshot();
        assert_eq!(cut.current, 7.5);
        assert_eq!(cut.last_cut, Some("latency"));
        // Two seconds of healthy answers give back 2 x 5% of the ceiling.
        rate.lock().last_change -= Duration::from_secs(2);
        healthy(&rate, 1, 20);
        let back = rate.snapshot().current;
        assert!((back - 8.5).abs() < 0.05, "{back}");
        rate.lock().last_change -= Duration::from_secs(60);
        healthy(&rate, 1, 20);
        assert_eq!(rate.snapshot().current, 10.0, "never above the ceiling");
    }

    #[tokio::test]
    async fn a_long_hold_answers_at_once_with_the_time_left_and_a_short_one_waits() {
        let rate = AdaptiveRate::new(10);
        rate.hold(&FhirError::Throttled {
            retry_after: Some(Duration::from_secs(600)),
        });
        match rate.acquire().await {
            Err(FhirError::Throttled {
                retry_after: Some(left),
            }) => assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600)),
            other => panic!("{other:?}"),
        }
        let (_, kind) = rate.snapshot().held.unwrap();
        assert_eq!(kind, HoldKind::RetryAfter);
        let short = AdaptiveRate::new(10);
        short.hold(&FhirError::Throttled {
            retry_after: Some(Duration::from_millis(300)),
        });
        let started = Instant::now();
        short.acquire().await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(290));
        // A daily limit without Retry-After holds until the next UTC day.
        let daily = AdaptiveRate::new(10);
        daily.hold(&FhirError::DailyLimit {
            status: 429,
            outcome: Default::default(),
            retry_after: None,
        });
        let (left, kind) = daily.snapshot().held.unwrap();
        assert_eq!(kind, HoldKind::DailyLimit);
        assert!(left <= Duration::from_secs(86_400));
        assert!(matches!(
            daily.acquire().await,
            Err(FhirError::DailyLimit { .. }) | Ok(())
        ));
    }

    #[tokio::test]
    async fn a_cut_rate_spaces_requests() {
        let rate = AdaptiveRate::new(4);
        rate.observe(Some(429), Duration::ZERO);
        // 2 requests per second now: three requests take about a second.
        let started = Instant::now();
        for _ in 0..3 {
            rate.acquire().await.unwrap();
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(950) && took < Duration::from_millis(1500),
            "{took:?}"
        );
    }
}
