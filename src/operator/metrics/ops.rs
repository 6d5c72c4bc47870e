//! Metrics for running the operator day to day: whether this replica leads, when each
//! connection last walked successfully and when its token expires, and writes to Epic by
//! connection and result.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::pipeline::WriteOutcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabel {
    connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    connection: String,
    result: &'static str,
}

/// A gauge of seconds with a fractional part (timestamps).
type Seconds = Gauge<f64, AtomicU64>;

#[derive(Debug, Default)]
pub struct OpsMetrics {
    leader: Gauge,
    last_walk: Family<ConnectionLabel, Seconds>,
    token_expiry: Family<ConnectionLabel, Seconds>,
    writes: Family<WriteLabels, Counter>,
}

impl OpsMetrics {
    /// Registers the families under `registry` (the project-prefixed one).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease (or runs without leader election), else 0",
            self.leader.clone(),
        );
        registry.register(
            "roster_walk_last_success_timestamp_seconds",
            "When the last successful roster walk of a connection finished, in seconds since the Unix epoch",
            self.last_walk.clone(),
        );
        registry.register(
            "token_expiry_timestamp_seconds",
            "When the access token cached for a connection expires, in seconds since the Unix epoch",
            self.token_expiry.clone(),
        );
        registry.register(
            "writes",
            "Writes to Epic by connection and result (updated, created, deactivated, refused, conflict, failed)",
            self.writes.clone(),
        );
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn walk_succeeded(&self, connection: &str) {
        self.last_walk
            .get_or_create(&label(connection))
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    }

    /// The expiry of the connection's cached token; None (no token yet, or the cache is busy
    /// fetching one) keeps the last value.
    pub fn token_expiry(&self, connection: &str, expires: Option<chrono::DateTime<chrono::Utc>>) {
        if let Some(t) = expires {
            self.token_expiry
                .get_or_create(&label(connection))
                .set(t.timestamp_millis() as f64 / 1000.0);
        }
    }

    /// Counts a write that was attempted (nothing when none was).
    pub fn write(&self, connection: &str, outcome: &WriteOutcome) {
        let result = match outcome {
            // Not sent: its attempt could not be recorded first.
            WriteOutcome::NotAttempted | WriteOutcome::NotSent(_) => return,
            WriteOutcome::Updated => "updated",
            WriteOutcome::Created => "created",
            WriteOutcome::Deactivated => "deactivated",
            WriteOutcome::Refused(_) => "refused",
            WriteOutcome::Conflict { .. } => "conflict",
            WriteOutcome::Failed(_) => "failed",
        };
        self.writes
            .get_or_create(&WriteLabels {
                connection: connection.to_string(),
                result,
            })
            .inc();
    }

    /// A deleted connection's gauges go with it (its counters stay, as counters do).
    pub fn forget_connection(&self, connection: &str) {
        self.last_walk.remove(&label(connection));
        self.token_expiry.remove(&label(connection));
    }
}

fn label(connection: &str) -> ConnectionLabel {
    ConnectionLabel {
        connection: connection.to_string(),
    }
}
