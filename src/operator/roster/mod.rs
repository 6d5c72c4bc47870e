//! Roster walks: per connection, one paged walk of `Practitioner?_count=pageSize` per resync
//! interval finds every record that changed in Epic for about N/pageSize requests and wakes
//! only those EpicPractitioners, handing them the page copy so they need no read of their own.
//! The walk also builds the connection's NPI -> id index, from which practitioners resolve
//! without an identifier search (which some instances do not offer), and, on the first walk
//! and then hourly, a `PractitionerRole` walk gives every practitioner's roles.
//!
//! Epic binds `next` links to a paging session that expires (4113): a walk is paced to finish
//! within half of that session's lifetime (stated on the connection, or learned from a 4113),
//! not stretched over the whole interval. The first walk of a connection runs at its rate
//! limit, since practitioners wait for it to resolve.

pub(crate) mod index;
pub(crate) mod load;
mod matching;
pub mod pace;
mod page_pace;
mod question;
mod safety_sweep;
pub(crate) mod state;
pub(crate) mod stats;
mod walk;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Context;
use super::connection::cache::{ConnectionHandle, Key, connection_label};
use super::practitioner::jittered;
use super::roster::load::{Gate, practitioners_of};
use crate::fhir::FhirError;
use walk::walk;

/// What one walk did.
#[derive(Debug)]
pub struct WalkReport {
    pub woken: usize,
    /// Of those, practitioners whose known record changed (woken during the walk).
    pub woken_as_found: u32,
    pub records: usize,
    /// The walk met a 4113 and started over (once) at a faster pace.
    pub restarted: bool,
    pub elapsed: Duration,
}

type WalkResult = Result<WalkReport, FhirError>;

/// What the next walk of a connection plans by.
#[derive(Clone, Copy, Debug, Default)]
pub struct LastWalk {
    records: usize,
    woken_as_found: u32,
}

/// Runs walks for every ready connection, each on its own jittered schedule and in its own
/// task, until the process ends: one connection's long walk never delays another's.
pub async fn run(ctx: Arc<Context>) {
    // A walk matches records to the practitioners in the watch cache: it waits for the first
    // full list, or practitioners missing from it would resolve one read at a time.
    if ctx.practitioners.wait_until_ready().await.is_err() {
        tracing::warn!("the practitioner watch cache closed; no roster walks");
        return;
    }
    let mut schedule = Schedule::default();
    let mut sweep = safety_sweep::SafetySweep::default();
    loop {
        schedule.collect_finished(&ctx).await;
        // A connection briefly missing from this list (being rebuilt at its periodic probe)
        // keeps its schedule; a deleted one has its walk state forgotten, so it walks at once
        // if it comes back.
        let ready = ctx.connections.ready_handles().await;
        schedule.stop_stale(&ctx, &ready);
        for (key, handle) in &ready {
            schedule.start_if_due(&ctx, key, handle);
        }
        sweep.tick(&ctx, &ready);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The walk schedule of every connection.
#[derive(Default)]
struct Schedule {
    next_due: HashMap<Key, Instant>,
    /// Records seen by the last walk per connection: the next one paces its pages by it.
    last_walk: HashMap<Key, LastWalk>,
    running: HashMap<Key, tokio::task::JoinHandle<WalkResult>>,
    /// The instance each running walk is walking.
    walking: HashMap<Key, String>,
    fingerprints: HashMap<Key, String>,
}

impl Schedule {
    /// Takes the results of finished walks: what the next one plans by, or when to retry.
    async fn collect_finished(&mut self, ctx: &Context) {
        let finished: Vec<Key> = self
            .running
            .iter()
            .filter(|(_, task)| task.is_finished())
            .map(|(k, _)| k.clone())
            .collect();
        for key in finished {
            self.walking.remove(&key);
            let Some(task) = self.running.remove(&key) else {
                continue;
            };
            let label = connection_label(&key);
            match task.await {
                Ok(Ok(report)) => {
                    self.last_walk.insert(
                        key.clone(),
                        LastWalk {
                            records: report.records,
                            woken_as_found: report.woken_as_found,
                        },
                    );
                    ctx.metrics.roster_walk(&label, true);
                    ctx.walk_plans.succeeded(&key, report.records as u64);
                    tracing::info!(connection = %key.1, woken = report.woken, records = report.records, restarted = report.restarted, elapsed_ms = report.elapsed.as_millis() as u64, "roster walk done")
                }
                Ok(Err(e)) => {
                    ctx.metrics.roster_walk(&label, false);
                    self.failed(ctx, &key, &e).await;
                    tracing::warn!(connection = %key.1, reason = %e.reason(), error = %e, "roster walk failed")
                }
                Err(e) => {
                    ctx.metrics.roster_walk(&label, false);
                    tracing::warn!(connection = %key.1, error = %e, "roster walk task ended")
                }
            }
        }
    }

    /// Without an index practitioners wait for a walk: try again soon, backing off (to hours
    /// for a walk the instance refuses); after a daily limit, the next day.
    async fn failed(&mut self, ctx: &Context, key: &Key, e: &FhirError) {
        let ready = ctx.connections.ready_handles().await;
        let Some((_, h)) = ready.iter().find(|(k, _)| k == key) else {
            return;
        };
        let has_index = ctx.rosters.index(key, h.base_url()).is_some();
        let (retry, explained) = ctx.walk_plans.failed(key, h, e, has_index);
        if let Some(x) = &explained {
            ctx.rosters.walk_failed(key, h.base_url(), x);
        }
        if let Some(d) = retry {
            self.next_due.insert(key.clone(), later(d));
        }
    }

    /// A walk of a deleted connection, or of an instance the connection no longer points at,
    /// stops: its findings would be about something that is gone.
    fn stop_stale(&mut self, ctx: &Context, ready: &[(Key, Arc<ConnectionHandle>)]) {
        let stale: Vec<Key> = self
            .walking
            .iter()
            .filter(|(key, base)| {
                !ctx.connections.has(key)
                    || ready
                        .iter()
                        .any(|(k, h)| k == *key && h.base_url() != base.as_str())
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            self.walking.remove(&key);
            if let Some(task) = self.running.remove(&key) {
                task.abort();
                tracing::info!(connection = %key.1, "the connection was deleted or now points at another instance; its roster walk is stopped");
            }
        }
    }

    /// Starts the connection's walk when it is due and the budget, windows and daily limit
    /// let it.
    fn start_if_due(&mut self, ctx: &Arc<Context>, key: &Key, handle: &Arc<ConnectionHandle>) {
        // A changed connection (new windows, budget, interval) plans afresh.
        if self
            .fingerprints
            .insert(key.clone(), handle.fingerprint.clone())
            .is_some_and(|old| old != handle.fingerprint)
        {
            self.next_due.remove(key);
        }
        if self.running.contains_key(key) {
            return;
        }
        // A new connection (or a new instance behind one) walks at once: its practitioners
        // wait for that walk.
        let due = if ctx.rosters.awaiting_first_walk(key, handle.base_url()) {
            Instant::now()
        } else {
            *self
                .next_due
                .entry(key.clone())
                .or_insert_with(Instant::now)
        };
        if Instant::now() < due {
            return;
        }
        let practitioners = practitioners_of(ctx, key);
        // Budget, windows and a daily limit may hold a due walk; practitioners waiting for a
        // first walk then resolve by identifier search where they can.
        if let Gate::Wait(wait, why) = ctx.walk_plans.gate(key, handle, practitioners) {
            if let Some(why) = why
                && ctx.rosters.awaiting_first_walk(key, handle.base_url())
            {
                ctx.rosters.walk_failed(key, handle.base_url(), &why);
            }
            self.next_due.insert(key.clone(), later(wait));
            return;
        }
        let expected = self.last_walk.get(key).copied().unwrap_or_default();
        let interval = ctx.walk_plans.interval(key, handle, practitioners);
        self.next_due.insert(key.clone(), later(jittered(interval)));
        self.walking
            .insert(key.clone(), handle.base_url().to_string());
        let (ctx, walk_key, handle) = (ctx.clone(), key.clone(), handle.clone());
        self.running.insert(
            key.clone(),
            tokio::spawn(async move {
                let stats = stats::Started::now(&ctx, &walk_key);
                let result = walk(&ctx, &walk_key, &handle, expected, interval).await;
                let walked = result.as_ref().map(|r| (r.records, r.restarted));
                stats.finish(&ctx, &walk_key, walked).await;
                result
            }),
        );
    }
}

/// `now + d`, or a day from now when that would overflow the clock.
fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_deadlines_do_not_overflow() {
        assert!(later(Duration::MAX) > Instant::now());
    }
}
