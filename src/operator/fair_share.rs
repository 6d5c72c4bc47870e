//! A fair share of the reconcile workers per connection. All practitioners share one
//! controller and its `--concurrency` workers; a connection whose server is slow, or changes
//! every record on every walk, would otherwise fill them all and starve every other tenant. A
//! connection holds at most half of the workers at once (at least one); a reconcile over its
//! share is put back in the queue for a moment instead of waiting in a worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::connection::cache::Key;

/// In-flight reconciles per connection.
pub struct FairShare {
    share: usize,
    in_flight: Arc<Mutex<HashMap<Key, usize>>>,
}

/// A worker held by one connection's reconcile; released on drop.
pub struct Slot {
    key: Key,
    in_flight: Arc<Mutex<HashMap<Key, usize>>>,
}

impl FairShare {
    /// For a controller with `workers` workers.
    pub fn new(workers: u16) -> Self {
        Self {
            share: usize::from(workers / 2).max(1),
            in_flight: Arc::default(),
        }
    }

    /// A worker for the connection, unless it already holds its share.
    pub fn enter(&self, key: &Key) -> Option<Slot> {
        let mut all = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = all.entry(key.clone()).or_insert(0);
        if *n >= self.share {
            return None;
        }
        *n += 1;
        Some(Slot {
            key: key.clone(),
            in_flight: self.in_flight.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut all = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = all.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                all.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_connection_holds_at_most_half_of_the_workers() {
        let fair = FairShare::new(4);
        let busy = ("ns".to_string(), "hostile".to_string());
        let other = ("ns".to_string(), "healthy".to_string());
        let a = fair.enter(&busy).unwrap();
        let _b = fair.enter(&busy).unwrap();
        assert!(fair.enter(&busy).is_none(), "over its share");
        assert!(
            fair.enter(&other).is_some(),
            "another tenant still gets a worker"
        );
        drop(a);
        assert!(
            fair.enter(&busy).is_some(),
            "a released worker is free again"
        );
        // One worker in all: that one is the share.
        let single = FairShare::new(1);
        let _s = single.enter(&busy).unwrap();
        assert!(single.enter(&busy).is_none());
    }
}
