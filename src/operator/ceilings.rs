//! Operator-wide ceilings over every EpicConnection's own limits. Whoever may create an
//! EpicConnection chooses its server and its settings; one operator serves every tenant, so no
//! connection may ask for more requests per second, pages, records or walk time than these
//! (`run` flags). A connection asking for more is run at the ceiling, and says so in the log.

use std::time::Duration;

use crate::crd::EpicConnectionSpec;

/// The ceilings (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ceilings {
    pub requests_per_second: u32,
    pub max_walk_pages: u32,
    pub max_walk_records: u32,
    pub max_walk_duration: Duration,
}

impl Default for Ceilings {
    /// Well above what one Epic organisation allows (a 1,000,000-clinician roster at 50 a
    /// page), far below what would let one tenant starve the others.
    fn default() -> Self {
        Self {
            requests_per_second: 100,
            max_walk_pages: 50_000,
            max_walk_records: 2_000_000,
            max_walk_duration: Duration::from_secs(6 * 3600),
        }
    }
}

impl Ceilings {
    /// The connection's spec with every limit held to the ceilings; what was lowered, for the
    /// log (no personal data: field names and numbers only).
    pub fn apply(&self, spec: &EpicConnectionSpec) -> (EpicConnectionSpec, Vec<String>) {
        let mut capped = spec.clone();
        let mut lowered = Vec::new();
        // Unset walk limits take the ceiling; an unset rate or burst keeps the client's
        // default (20/s, burst twice the rate), which is under it.
        let mut cap = |field: &str, value: &mut Option<u32>, ceiling: u32, fill: bool| match value {
            Some(v) if *v > ceiling => {
                lowered.push(format!("{field} {v} -> {ceiling}"));
                *v = ceiling;
            }
            Some(_) => {}
            None if fill => *value = Some(ceiling),
            None => {}
        };
        cap(
            "requestsPerSecond",
            &mut capped.requests_per_second,
            self.requests_per_second,
            false,
        );
        let burst_ceiling = self.requests_per_second.saturating_mul(2);
        cap("burst", &mut capped.burst, burst_ceiling, false);
        cap(
            "maxWalkPages",
            &mut capped.max_walk_pages,
            self.max_walk_pages,
            true,
        );
        cap(
            "maxWalkRecords",
            &mut capped.max_walk_records,
            self.max_walk_records,
            true,
        );
        let walk = capped
            .max_walk_duration
            .as_deref()
            .and_then(|d| crate::util::parse_duration(d).ok());
        if walk.is_none_or(|d| d > self.max_walk_duration) {
            if let Some(d) = walk {
                lowered.push(format!(
                    "maxWalkDuration {}s -> {}s",
                    d.as_secs(),
                    self.max_walk_duration.as_secs()
                ));
            }
            if walk.is_some() || capped.max_walk_duration.is_none() {
                capped.max_walk_duration = Some(format!("{}s", self.max_walk_duration.as_secs()));
            }
        }
        (capped, lowered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> EpicConnectionSpec {
        let mut v = serde_json::json!({
            "fhirBaseUrl": "https://epic.example.org/api/FHIR/R4",
            "clientId": "c",
            "privateKeySecretRef": {"name": "k", "key": "private-key.pem"},
            "keyId": "k1"
        });
        for (k, f) in extra.as_object().unwrap() {
            v[k] = f.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_tenant_never_exceeds_the_ceilings() {
        let c = Ceilings::default();
        let (capped, lowered) = c.apply(&spec(serde_json::json!({
            "requestsPerSecond": 1000, "burst": 5000, "maxWalkPages": 1_000_000,
            "maxWalkRecords": 10_000_000, "maxWalkDuration": "48h"
        })));
        assert_eq!(capped.requests_per_second, Some(100));
        assert_eq!(capped.burst, Some(200));
        assert_eq!(capped.max_walk_pages, Some(50_000));
        assert_eq!(capped.max_walk_records, Some(2_000_000));
        assert_eq!(capped.max_walk_duration.as_deref(), Some("21600s"));
        assert_eq!(lowered.len(), 5, "{lowered:?}");
    }

    #[test]
    fn settings_under_the_ceilings_are_kept() {
        let c = Ceilings::default();
        let asked = spec(serde_json::json!({
            "requestsPerSecond": 5, "maxWalkPages": 100, "maxWalkDuration": "10m"
        }));
        let (capped, lowered) = c.apply(&asked);
        assert!(lowered.is_empty(), "{lowered:?}");
        assert_eq!(capped.requests_per_second, Some(5));
        assert_eq!(capped.max_walk_pages, Some(100));
        assert_eq!(capped.max_walk_duration.as_deref(), Some("10m"));
        // Unset rate keeps the client's default; unset walk limits take the ceiling.
        let (unset, _) = c.apply(&spec(serde_json::json!({})));
        assert_eq!(unset.requests_per_second, None);
        assert_eq!(unset.burst, None);
        assert_eq!(unset.max_walk_records, Some(2_000_000));
    }
}
