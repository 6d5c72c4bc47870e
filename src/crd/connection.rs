//! `EpicConnection`: how to reach and authenticate to one Epic instance.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::{Condition, conditions_schema};
use super::keys::{Algorithm, KeyLayout, KeyRotation, KeysStatus, SecretKeyRef};
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
    printcolumn = r#"{"name":"Records","type":"integer","jsonPath":".status.walk.records","description":"Practitioner records the last roster walk saw"}"#,
    printcolumn = r#"{"name":"Last-Walk","type":"date","jsonPath":".status.walk.lastSuccessTime","priority":1,"description":"When a roster walk last finished successfully"}"#,
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
    /// Secret (same namespace) holding the private key(s) that sign client assertions. With
    /// `key`, that one PEM entry is the key; without it, every `<kid>.pem` entry is a key, and
    /// all of them are published at the operator's JWK Set URL.
    pub private_key_secret_ref: SecretKeyRef,
    /// Key id (`kid`) of the signing key. Required with `privateKeySecretRef.key`; with several
    /// keys it pins the signing key (absent: the newest key published for at least
    /// `keyRotation.publishAhead`). Not allowed with managed rotation (the operator chooses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Key rotation: publish the next key ahead of signing with it and keep the previous one
    /// published for a while after the switch. `managed: true` lets the operator generate the
    /// keys itself into the Secret (which must carry, or is created with, the label
    /// `epic-operator.dev/managed-keys: "true"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_rotation: Option<KeyRotation>,
    /// Put `jku` (this connection's JWK Set URL, `status.jwksUrl`) in the client assertion's
    /// header. Epic then checks it against the registered URL; leave it off unless required.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub send_jku: bool,
    /// Trust beyond the system roots (`caBundle`, `caSecretRef`) and the client certificate
    /// for mutual TLS (`clientCertificateSecretRef`).
    #[serde(flatten)]
    pub trust: super::trust::TrustSpec,
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
    /// The request budget agreed with the Epic team, for example 20000 per 24h: walks,
    /// reads, searches and writes are planned to stay inside it (the walk cadence is
    /// stretched; first resolutions of new practitioners keep a reserve). `epic-operator
    /// forecast` says what the settings cost. Absent: only requestsPerSecond limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_budget: Option<super::budget::RequestBudget>,
    /// When full roster walks may run, for example nights and weekends in the hospital's
    /// time zone. Outside them only new or changed EpicPractitioners are resolved and
    /// written, and drift made in Epic is noticed at the next window. Absent: any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walk_windows: Option<super::walk_windows::WalkWindows>,
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
    /// The JWK Set URL to register with Epic (from the operator's --jwks-public-url): the
    /// operator serves this connection's public keys there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// The connection's keys: which one signs, which one Epic last accepted, which are
    /// published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeysStatus>,

    /// The load the connection puts on Epic: rate now, requests used against the budget,
    /// the projected daily volume, the walk cadence and what it means for drift detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<super::budget::LoadStatus>,

    /// The last roster walk (roster drift detection): written once per walk, under its own
    /// field manager (`epic-operator-walks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walk: Option<WalkStatus>,
}

/// What the last roster walk of a connection did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalkStatus {
    /// When the last walk started (RFC 3339).
    pub last_start_time: String,
    /// How long it took, in seconds (millisecond precision).
    pub last_duration_seconds: f64,
    /// Succeeded, or Failed with `lastError`'s reason.
    pub last_result: String,
    /// Practitioner records the walk saw (0 when it failed).
    pub records: u64,
    /// Search and next-page requests this connection sent while the walk ran: the
    /// Practitioner and PractitionerRole walks, and any identifier search meanwhile.
    pub pages: u64,
    /// Paging sessions that expired during the walk (Epic code 4113).
    pub paging_expired: u32,
    /// When a walk last finished successfully (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<String>,
    /// The reason of the last failed walk, while the last walk failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Shortest resync interval accepted.
pub const MIN_RESYNC: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest resync interval accepted.
pub const MAX_RESYNC: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl EpicConnectionSpec {
    /// The key layout, or a sentence naming the conflicting fields and the fix.
    pub fn key_layout(&self) -> Result<KeyLayout, String> {
        let rotation = self.key_rotation.clone().unwrap_or_default();
        let periods = rotation.periods()?;
        let kid = self.key_id.as_deref().filter(|k| !k.is_empty());
        match (&self.private_key_secret_ref.key, rotation.managed) {
            (Some(_), true) => Err(
                "keyRotation.managed needs privateKeySecretRef without key: managed keys are the Secret's <kid>.pem entries".into(),
            ),
            (Some(entry), false) => match kid {
                Some(kid) => Ok(KeyLayout::Single {
                    entry: entry.clone(),
                    kid: kid.to_string(),
                }),
                None => Err(format!(
                    "keyId is required with privateKeySecretRef.key ({entry}): set it to the kid registered with Epic, or drop key to use every <kid>.pem entry"
                )),
            },
            (None, true) if kid.is_some() => Err(
                "keyId cannot be set with keyRotation.managed: the operator chooses the signing key (see status.keys)".into(),
            ),
            (None, managed) => Ok(KeyLayout::Several {
                pinned: kid.map(str::to_string),
                periods,
                managed,
            }),
        }
    }

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
            "clientId": "c", "keyId": "k", "privateKeySecretRef": {"name": "s", "key": "private-key.pem"},
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
