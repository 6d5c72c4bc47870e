//! The roster mode's safety net, without a timer per object. Walks wake the practitioners
//! whose records changed; besides that, every practitioner gets a pass once per safety
//! interval (`pace::safety_interval`: six resync intervals, an hour at least), for a walk that keeps
//! failing. Held as one requeue per object, that net was kube-runtime's scheduler holding
//! 10,000 timers at N = 10,000 (5.8 MB, BENCHMARKS.md). Here each connection keeps one cursor
//! instead: its members are woken a few at a time, in name order, so that every one is woken
//! once per interval, and a settled pass that sees its connection's walks covering it costs no
//! request (`Answer::Covered`). A practitioner created during a pass whose name sorts before
//! the cursor waits for the next pass (after the pass its creation started).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::operator::Context;
use crate::operator::connection::cache::{ConnectionHandle, Key};
use crate::operator::roster::pace::safety_interval;

/// How often a batch is woken.
pub const TICK: Duration = Duration::from_secs(5);

/// One connection's pass through its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// When this pass through the members started.
    started: Instant,
    /// The last name woken in this pass (`None`: the pass has not woken anyone yet).
    cursor: Option<String>,
    /// The pass reached the last name; the next starts an interval after this one did.
    done: bool,
    next_tick: Instant,
}

impl Cycle {
    fn new(now: Instant) -> Self {
        Cycle {
            started: now,
            cursor: None,
            done: false,
            next_tick: now,
        }
    }

    /// How many members to wake now (0: not yet), and from which cursor.
    pub fn due(&mut self, now: Instant, members: u64, interval: Duration) -> usize {
        if now < self.next_tick {
            return 0;
        }
        // From the tick's own time, not from when the loop came round: ticks keep their pace.
        // A loop that fell behind by a whole tick starts again from now, without catching up.
        let next = self.next_tick + TICK;
        self.next_tick = if next > now { next } else { now + TICK };
        if self.done {
            if now < self.started + interval {
                return 0;
            }
            *self = Cycle::new(now);
            self.next_tick = now + TICK;
        }
        batch(members, interval)
    }

    /// `woken` were woken out of the `asked` this tick; the last of them is the new cursor.
    pub fn woke(&mut self, asked: usize, woken: usize, last: Option<String>) {
        if let Some(last) = last {
            self.cursor = Some(last);
        }
        if woken < asked {
            self.done = true;
        }
    }
}

/// Members to wake per tick so that `members` are all woken within nine tenths of `interval`
/// (room for a late loop): at least one.
pub fn batch(members: u64, interval: Duration) -> usize {
    let ticks = (interval.as_secs_f64() * 0.9 / TICK.as_secs_f64()).max(1.0);
    ((members as f64 / ticks).ceil() as usize).max(1)
}

/// The cursor of every connection.
#[derive(Default)]
pub struct SafetySweep {
    cycles: HashMap<Key, Cycle>,
}

impl SafetySweep {
    /// Wakes the next members of every ready connection whose tick is due; forgets deleted
    /// connections.
    pub fn tick(&mut self, ctx: &Context, ready: &[(Key, Arc<ConnectionHandle>)]) {
        self.forget_deleted(|key| ctx.connections.has(key));
        let now = Instant::now();
        for (key, handle) in ready {
            let cycle = self
                .cycles
                .entry(key.clone())
                .or_insert_with(|| Cycle::new(now));
            let want = cycle.due(now, ctx.members.count(key), safety_interval(handle.resync));
            if want == 0 {
                continue;
            }
            let batch = ctx.members.after(key, cycle.cursor.as_deref(), want);
            let last = batch.last().map(|m| m.name.clone());
            let woken = batch.len();
            for member in batch {
                // The controller ended: the process is stopping.
                if ctx.wake.unbounded_send(member).is_err() {
                    return;
                }
            }
            cycle.woke(want, woken, last);
        }
    }
}

impl SafetySweep {
    /// Drops the cycles of deleted connections. A connection missing from the ready list for
    /// a moment (being rebuilt at its periodic probe or Secret read) keeps its place: starting
    /// over would leave the last names unswept.
    fn forget_deleted(&mut self, exists: impl Fn(&Key) -> bool) {
        self.cycles.retain(|key, _| exists(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn every_member_is_woken_once_per_interval() {
        let cases: [(u64, Duration, usize); 5] = [
            // (members, interval, per tick)
            (10_000, HOUR, 16),
            (648, HOUR, 1),
            (649, HOUR, 2),
            (1, HOUR, 1),
            (0, HOUR, 1),
        ];
        for (members, interval, per_tick) in cases {
            assert_eq!(batch(members, interval), per_tick, "{members} members");
            let ticks = interval.as_secs() * 9 / 10 / TICK.as_secs();
            assert!(
                per_tick as u64 * ticks >= members,
                "{members} members are all woken within nine tenths of the interval"
            );
        }
    }

    #[test]
    fn a_finished_pass_waits_for_the_interval() {
        let t0 = Instant::now();
        let mut c = Cycle::new(t0);
        // Three members, one per tick (a long interval).
        assert_eq!(c.due(t0, 3, HOUR), 1);
        c.woke(1, 1, Some("a".into()));
        // Not before the next tick.
        assert_eq!(c.due(t0 + Duration::from_secs(1), 3, HOUR), 0);
        assert_eq!(c.due(t0 + TICK, 3, HOUR), 1);
        c.woke(1, 1, Some("b".into()));
        assert_eq!(c.cursor.as_deref(), Some("b"));
        assert_eq!(c.due(t0 + TICK * 2, 3, HOUR), 1);
        c.woke(1, 1, Some("c".into()));
        // The next tick finds nobody after "c": the pass is done.
        assert_eq!(c.due(t0 + TICK * 3, 3, HOUR), 1);
        c.woke(1, 0, None);
        assert!(c.done);
        // Nothing more until an interval after the pass started, then from the first name.
        assert_eq!(c.due(t0 + TICK * 4, 3, HOUR), 0);
        assert_eq!(c.due(t0 + HOUR - TICK, 3, HOUR), 0);
        assert_eq!(c.due(t0 + HOUR, 3, HOUR), 1);
        assert_eq!(c.cursor, None);
        assert!(!c.done);
    }

    #[test]
    fn a_connection_keeps_its_place_until_it_is_deleted() {
        let t0 = Instant::now();
        let key: Key = ("ns".into(), "epic".into());
        let mut c = Cycle::new(t0);
        assert_eq!(c.due(t0, 3, HOUR), 1);
        c.woke(1, 1, Some("a".into()));
        let mut sweep = SafetySweep::default();
        sweep.cycles.insert(key.clone(), c.clone());
        // Not ready this tick, but not deleted: the cursor and the pass's start stay.
        sweep.forget_deleted(|_| true);
        assert_eq!(sweep.cycles.get(&key), Some(&c));
        sweep.forget_deleted(|_| false);
        assert!(sweep.cycles.is_empty());
    }

    #[test]
    fn a_late_loop_keeps_the_ticks_pace() {
        let t0 = Instant::now();
        let mut c = Cycle::new(t0);
        assert_eq!(c.due(t0 + Duration::from_millis(400), 3, HOUR), 1);
        // The next tick is due a tick after this one was due, not after the loop came round.
        assert_eq!(c.next_tick, t0 + TICK);
        // A loop stalled for many ticks wakes one batch, not every batch it missed.
        assert_eq!(c.due(t0 + TICK * 10, 3, HOUR), 1);
        assert_eq!(c.next_tick, t0 + TICK * 11);
        assert_eq!(c.due(t0 + TICK * 10, 3, HOUR), 0);
    }
}
