//! The shapes of a `plan`/`apply` report shared by its parts: the mode, one practitioner's
//! outcome and the request its action sends.

use serde::Serialize;
use serde_json::Value;

use super::report_kinds::{ReportAction, ReportResolution, ReportResult};
use crate::crd::{DriftEntry, Reason};

/// Plan only, or also write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanMode {
    Plan,
    Apply,
}

impl PlanMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanMode::Plan => "plan",
            PlanMode::Apply => "apply",
        }
    }
}

/// The outcome for one manifest.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PractitionerReport {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub file: String,
    pub npi: String,
    /// found, not-found, ambiguous, incomplete, or error.
    pub resolution: ReportResolution,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fhir_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ambiguous_ids: Vec<String>,
    /// Each entry's `desired` and `live` as JSON values (not JSON-encoded strings).
    #[serde(serialize_with = "drift_values")]
    pub drift: Vec<DriftEntry>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub diff: String,
    /// none, update, create, deactivate, hold.
    pub action: ReportAction,
    /// What the action would be without the hold (equal to `action` when nothing is held).
    pub intended_action: ReportAction,
    /// The request `intendedAction` sends (would send, for `plan` or a hold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<WouldBeRequest>,
    /// Stable reason when held (WriteDisabled, ObserveOnly, NotFound, AmbiguousNPI, Paused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// What happened: unchanged, planned, held, updated, created, deactivated, refused,
    /// failed, conflict, error.
    pub result: ReportResult,
    /// Human-readable detail (Epic's diagnostics on refusal).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Live equals desired at the end.
    pub in_sync: bool,
    /// The `If-Match` precondition the write sends (would send, for `plan`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
    /// Warnings Epic attached to the search, and notes from reads after a write.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Set when the record is (or would be) deactivated: what deactivation does not do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The request a practitioner's action sends (or would send, for `plan` and for a hold).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WouldBeRequest {
    /// PUT or POST.
    pub method: &'static str,
    /// Relative to the FHIR base: `Practitioner/{id}` or `Practitioner`.
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub if_none_exist: Option<String>,
    /// The owned fields the request changes.
    pub fields: Vec<String>,
    /// For a create: the new record, with personal values masked unless `--show-values`
    /// (an update carries the whole live record, so only its changed fields are shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// Drift entries with their values as JSON: `{"path": "active", "desired": false, ...}`.
fn drift_values<S: serde::Serializer>(drift: &[DriftEntry], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let value = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
    };
    let mut seq = s.serialize_seq(Some(drift.len()))?;
    for d in drift {
        seq.serialize_element(&serde_json::json!({
            "path": d.path,
            "desired": value(&d.desired),
            "live": value(&d.live),
        }))?;
    }
    seq.end()
}

impl PractitionerReport {
    /// The report of one manifest before anything is known of its record (an error until
    /// the sync says otherwise).
    pub fn for_manifest(s: &super::manifests::SourcedPractitioner) -> Self {
        PractitionerReport {
            name: s.name(),
            namespace: s.practitioner.metadata.namespace.clone(),
            file: s.path.display().to_string(),
            npi: s.practitioner.spec.npi.clone(),
            resolution: ReportResolution::Error,
            fhir_id: None,
            ambiguous_ids: Vec::new(),
            drift: Vec::new(),
            diff: String::new(),
            action: ReportAction::None,
            intended_action: ReportAction::None,
            request: None,
            reason: None,
            result: ReportResult::Error,
            message: String::new(),
            in_sync: false,
            if_match: None,
            warnings: Vec::new(),
            note: None,
        }
    }
}
