//! The load a connection may put on Epic, as agreed with the hospital's Epic team: a request
//! budget (`spec.requestBudget`), the windows full roster walks run in (`spec.walkWindows`),
//! and what the connection's status says about both (`status.load`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// At most `requests` FHIR requests per `per`, for everything the connection does: walks,
/// reads, searches, writes and capability probes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestBudget {
    /// Requests allowed per period, for example 20000.
    #[schemars(range(min = 1))]
    pub requests: u64,
    /// The period, for example 24h (between 1m and 168h).
    #[schemars(regex(pattern = r"^([0-9]{1,6}(ms|s|m|h)){1,4}$"))]
    pub per: String,
}

impl RequestBudget {
    /// The period, checked (1m..=168h).
    pub fn period(&self) -> Result<Duration, String> {
        let d = crate::util::parse_duration(&self.per)
            .map_err(|e| format!("requestBudget.per: {e}"))?;
        if !(Duration::from_secs(60)..=Duration::from_secs(168 * 3600)).contains(&d) {
            return Err(format!(
                "requestBudget.per {:?} is outside 1m..168h: give the period the Epic team agreed, for example 24h",
                self.per
            ));
        }
        if self.requests == 0 {
            return Err("requestBudget.requests must be at least 1".into());
        }
        Ok(d)
    }

    /// The budget as requests per day.
    pub fn per_day(&self) -> Result<f64, String> {
        let period = self.period()?;
        Ok(self.requests as f64 * 86_400.0 / period.as_secs_f64())
    }
}

/// What the connection costs Epic and how it paces itself, as the operator sees it now.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadStatus {
    /// The configured ceiling, requests per second.
    pub configured_requests_per_second: u32,
    /// The rate allowed now (requests per second, one decimal): lower than the ceiling after
    /// Epic showed strain (429, 503, slow answers), climbing back while answers are healthy.
    pub current_requests_per_second: String,
    /// Why the rate was last cut (429, 503, no answer, latency), while it is below the ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowed_by: Option<String>,
    /// Until when Epic asked the connection to send nothing (Retry-After, daily limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<String>,
    /// Requests sent in the budget's period (or the last 24h without a budget), as far as
    /// this replica counted them (since `countedSince`).
    pub requests_used: u64,
    /// When this replica started counting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_since: Option<String>,
    /// The budget, as requests per period, when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    /// Requests a day the current settings cost for the practitioners of this connection
    /// (the same estimate as `epic-operator forecast`).
    pub projected_requests_per_day: u64,
    /// How often full roster walks run (the resync interval, or longer to fit the budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walk_interval: Option<String>,
    /// When the next full roster walk is due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_walk_time: Option<String>,
    /// How soon a change made in Epic (drift) is noticed, given the cadence, the windows and
    /// whether roster walks are possible.
    pub drift_detection: String,
}
