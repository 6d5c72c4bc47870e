//! The load gauges of each connection, set at each connection pass (about once a minute):
//! the adaptive rate now, the requests used against the budget and the budget itself, and the
//! projected requests per day.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `connection="namespace/name"`, as the other per-connection families label it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabel {
    pub connection: String,
}

/// One connection's numbers.
pub struct LoadNumbers {
    pub rate: f64,
    pub used: u64,
    pub budget: Option<u64>,
    pub projected_per_day: u64,
}

#[derive(Default)]
pub struct LoadGauges {
    rate: Family<ConnectionLabel, Gauge<f64, AtomicU64>>,
    used: Family<ConnectionLabel, Gauge>,
    budget: Family<ConnectionLabel, Gauge>,
    projected: Family<ConnectionLabel, Gauge>,
}

impl LoadGauges {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "connection_request_rate",
            "Requests per second a connection allows itself now (below requestsPerSecond after Epic showed strain), by connection",
            self.rate.clone(),
        );
        r.register(
            "request_budget_used",
            "Requests sent in the request budget's period (the last 24h without a budget), by connection",
            self.used.clone(),
        );
        r.register(
            "request_budget",
            "The request budget's requests per period, by connection (absent without a budget)",
            self.budget.clone(),
        );
        r.register(
            "requests_projected_per_day",
            "Requests a day the connection's settings cost for its practitioners (the forecast), by connection",
            self.projected.clone(),
        );
    }

    pub fn set(&self, connection: &str, n: &LoadNumbers) {
        let label = ConnectionLabel {
            connection: connection.to_string(),
        };
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.rate.get_or_create(&label).set(n.rate);
        self.used.get_or_create(&label).set(int(n.used));
        self.projected
            .get_or_create(&label)
            .set(int(n.projected_per_day));
        match n.budget {
            Some(b) => {
                self.budget.get_or_create(&label).set(int(b));
            }
            None => {
                self.budget.remove(&label);
            }
        }
    }

    pub fn forget(&self, connection: &str) {
        let label = ConnectionLabel {
            connection: connection.to_string(),
        };
        self.rate.remove(&label);
        self.used.remove(&label);
        self.budget.remove(&label);
        self.projected.remove(&label);
    }
}
