//! `EpicConnection`: how to reach and authenticate to one Epic instance.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::{Condition, conditions_schema};
use super::practitioner::LastError;

/// An Epic FHIR R4 endpoint and the SMART Backend Services registration used to call it.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "epic-operator.dev",
    version = "v1alpha1",
    kind = "EpicConnection",
    namespaced,
    shortname = "econn",
    category = "epic",
    status = "EpicConnectionStatus",
    doc = "An Epic FHIR R4 endpoint and the SMART Backend Services client used to reach it.",
    printcolumn = r#"{"name":"Base-URL","type":"string","jsonPath":".spec.fhirBaseUrl"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Writable","type":"boolean","jsonPath":".status.writable"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EpicConnectionSpec {
    /// FHIR R4 base URL, for example https://epic.example.org/interconnect-fhir-oauth/api/FHIR/R4.
    /// Must be https (plain http only for loopback test servers).
    pub fhir_base_url: String,
    /// OAuth token endpoint. Absent: discovered from {fhirBaseUrl}/.well-known/smart-configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// The client id of the Backend Services app registered with Epic.
    pub client_id: String,
    /// Secret (same namespace) holding the private key PEM that signs client assertions.
    pub private_key_secret_ref: SecretKeyRef,
    /// Key id (`kid`) of the registered public key.
    pub key_id: String,
    /// Signing algorithm of the client assertion.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Scopes to request. Absent: Practitioner read and write and PractitionerRole read (write
    /// is left out when writes are Disabled). Every scope must be pre-approved at registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Request budget towards Epic shared by every practitioner of this connection (requests per
    /// second). Epic publishes no limits, so the operator sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub requests_per_second: Option<u32>,
    /// Requests that may be sent at once above the steady rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub burst: Option<u32>,
    /// `_count` for roster and search pages (advisory to Epic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub page_size: Option<u32>,
    /// Auto: learn from the CapabilityStatement and the first refused write; Enabled: always try;
    /// Disabled: never write (observe drift only).
    #[serde(default)]
    pub writes: WriteMode,
    /// Most pages one walk (roster or search) may follow before it stops with an error.
    /// Absent: 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub max_walk_pages: Option<u32>,
    /// Most records one walk may collect. Absent: 500000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000000))]
    pub max_walk_records: Option<u32>,
    /// Longest time one walk may take, for example 2h. Absent: 6h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,6}(ms|s|m|h)){1,4}$"))]
    pub max_walk_duration: Option<String>,
    /// Region (ISO 3166 alpha-2, for example US or GB) that phone numbers without a country
    /// code belong to; they are compared as E.164 numbers. Absent: US.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Z]{2}$"))]
    pub default_phone_region: Option<String>,
    /// How often records are re-read to detect drift, for example 10m or 1h30m: between 10s and
    /// 24h. Absent: 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,6}(ms|s|m|h)){1,4}$"))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "duration(self) >= duration('10s') && duration(self) <= duration('24h')", "message": "resyncInterval must be between 10s and 24h"}]))]
    pub resync_interval: Option<String>,
    /// How long Epic keeps a paging session (the `next` links of one search) alive, when
    /// known. Roster walks are paced to finish within half of it. When absent, 5m is assumed
    /// and every expired session (Epic code 4113) shortens it to what the walk reached.
    #[serde(
        default,
        rename = "pagingSessionTTL",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = r"^([0-9]{1,6}(ms|s|m|h)){1,4}$"))]
    pub paging_session_ttl: Option<String>,
}

/// Where the private key is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key inside the Secret's data holding the PEM.
    #[serde(default = "default_key")]
    pub key: String,
}

fn default_key() -> String {
    "private-key.pem".into()
}

/// JWT signing algorithm of the client assertion (Epic accepts the RSA ones for every client).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Algorithm {
    #[default]
    RS384,
    ES384,
    RS256,
    RS512,
}

/// Whether the operator writes to Epic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WriteMode {
    /// Probe the CapabilityStatement, and stop after the first refused write.
    #[default]
    Auto,
    /// Always attempt writes.
    Enabled,
    /// Never write.
    Disabled,
}

/// Observed state of the connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EpicConnectionStatus {
    /// The metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[schemars(schema_with = "conditions_schema")]
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Token endpoint in use (configured or discovered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// When the current access token expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<String>,
    /// Scopes Epic granted (may be narrower than requested).
    #[serde(default)]
    pub granted_scopes: Vec<String>,
    /// Whether Practitioner writes are possible, as far as the operator knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable: Option<bool>,
    /// Whether the CapabilityStatement lists the `identifier` search parameter for Practitioner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npi_search_supported: Option<bool>,
    /// When the CapabilityStatement was last read (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<String>,
    /// The last error met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
}

/// Shortest resync interval accepted.
pub const MIN_RESYNC: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest resync interval accepted.
pub const MAX_RESYNC: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl EpicConnectionSpec {
    /// The scopes to request: configured, or the defaults for the write mode.
    pub fn effective_scopes(&self) -> Vec<String> {
        if let Some(s) = &self.scopes {
            return s.clone();
        }
        let mut scopes = vec!["system/Practitioner.read".to_string()];
        if self.writes != WriteMode::Disabled {
            scopes.push("system/Practitioner.write".into());
        }
        scopes.push("system/PractitionerRole.read".into());
        scopes
    }

    /// The resync interval, defaulting to 10 minutes, and refused outside
    /// [`MIN_RESYNC`]..=[`MAX_RESYNC`] (the schema says so too, but older API servers ignore
    /// the rule): `0s` would spend Epic's whole request budget on probes.
    /// The stated paging-session lifetime, if any (at least 1s).
    pub fn paging_session_ttl(&self) -> Result<Option<std::time::Duration>, String> {
        let Some(text) = &self.paging_session_ttl else {
            return Ok(None);
        };
        let d = crate::util::parse_duration(text)?;
        if d < std::time::Duration::from_secs(1) {
            return Err(format!(
                "pagingSessionTTL {text:?} is shorter than 1s: state the lifetime of Epic's paging sessions, or leave it out to learn it"
            ));
        }
        Ok(Some(d))
    }

    pub fn resync_interval(&self) -> Result<std::time::Duration, String> {
        let d = self.parsed_resync()?;
        if (MIN_RESYNC..=MAX_RESYNC).contains(&d) {
            Ok(d)
        } else {
            Err(format!(
                "resyncInterval {:?} is outside 10s..24h: set a value in that range (10m is the default)",
                self.resync_interval.as_deref().unwrap_or_default()
            ))
        }
    }

    fn parsed_resync(&self) -> Result<std::time::Duration, String> {
        match &self.resync_interval {
            None => Ok(std::time::Duration::from_secs(600)),
            Some(s) => crate::util::parse_duration(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_resync(r: Option<&str>) -> EpicConnectionSpec {
        serde_json::from_value(serde_json::json!({
            "fhirBaseUrl": "https://epic.example.org/api/FHIR/R4",
            "clientId": "c", "keyId": "k", "privateKeySecretRef": {"name": "s"},
            "resyncInterval": r,
        }))
        .unwrap()
    }

    #[test]
    fn resync_interval_is_bounded_and_never_overflows() {
        assert_eq!(
            with_resync(None).resync_interval(),
            Ok(std::time::Duration::from_secs(600))
        );
        assert_eq!(
            with_resync(Some("1h30m")).resync_interval(),
            Ok(std::time::Duration::from_secs(5400))
        );
        for bad in [
            "0s",
            "9s",
            "25h",
            "1000000000000000h",
            "18446744073709551615s",
        ] {
            let e = with_resync(Some(bad)).resync_interval().unwrap_err();
            assert!(
                e.contains("resyncInterval") || e.contains("too long"),
                "{bad}: {e}"
            );
        }
    }
}
