//! Saved plans: what was reviewed is what gets applied. `plan --out FILE` records, per
//! practitioner, the resolved id, the version it was planned against and the intended request
//! (method, URL, `If-Match`/`If-None-Exist` and the SHA-256 of the body); `apply --plan FILE`
//! sends exactly those requests. The body itself is not kept: it is the whole live record
//! (personal data from Epic that should not travel as a CI artifact); apply rebuilds it from
//! the same manifests and the record at the same version and proves it equal by the digest.
//! A record that changed since (another version, 412 on the write, a record now carrying an
//! NPI planned for creation) is "stale plan: run plan again", and nothing is written for it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::connection::Target;
use super::manifests::Loaded;
use super::report::{PractitionerReport, RunReport};
use super::report_format::{FORMAT_VERSION, ToolInfo};
use super::report_kinds::ReportAction;
use crate::pipeline::read_verified;
use crate::reconcile::identity::{is_subsetted, version_precondition};
use crate::reconcile::{new_resource, overlay};

/// The `kind` of a saved plan file, so another JSON file is refused by name.
pub const SAVED_PLAN_KIND: &str = "EpicOperatorSavedPlan";

/// A saved plan file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedPlan {
    pub kind: String,
    pub format_version: u32,
    pub tool: ToolInfo,
    pub connection: ConnectionIdentity,
    /// SHA-256 of every manifest's namespace, name and spec (file names and order aside).
    pub manifests_digest: String,
    pub practitioners: Vec<SavedEntry>,
}

/// Which Epic instance and client the plan was made for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionIdentity {
    pub name: String,
    /// The FHIR base URL (`built-in sandbox` for `--sandbox`, whose port changes every run).
    pub fhir_base_url: String,
    pub client_id: String,
}

/// One practitioner of a saved plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedEntry {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub npi: String,
    pub action: ReportAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_id: Option<String>,
    /// The version (`If-Match` value) the plan was made against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<SavedRequest>,
}

/// The request apply sends.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SavedRequest {
    pub method: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_none_exist: Option<String>,
    pub body_sha256: String,
}

impl ConnectionIdentity {
    pub fn of(target: &Target) -> Self {
        Self {
            name: target.connection_name.clone(),
            fhir_base_url: if target.sandbox.is_some() {
                "built-in sandbox".into()
            } else {
                target.spec.fhir_base_url.trim_end_matches('/').to_string()
            },
            client_id: target.spec.client_id.clone(),
        }
    }
}

/// The digest of the manifests a plan covers.
pub fn manifests_digest(loaded: &Loaded) -> String {
    let mut items: Vec<Value> = loaded
        .practitioners
        .iter()
        .map(|s| {
            serde_json::json!([
                s.practitioner.metadata.namespace,
                s.name(),
                s.practitioner.spec,
                s.practitioner.is_paused(),
            ])
        })
        .collect();
    items.sort_by_key(canonical);
    sha256(&Value::Array(items))
}

/// JSON with object keys sorted at every depth: the same record read twice digests the same
/// whatever order its fields came in.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

pub fn sha256(v: &Value) -> String {
    Sha256::digest(canonical(v).as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Builds the saved plan of a finished `plan` run: each write is pinned to a by-id read of
/// the record (its version and whole body), the way apply will build it.
pub async fn save(
    target: &Target,
    loaded: &Loaded,
    report: &mut RunReport,
) -> Result<SavedPlan, String> {
    let norm = target.normalizer();
    let mut entries = Vec::new();
    for (s, r) in loaded
        .practitioners
        .iter()
        .zip(report.practitioners.iter_mut())
    {
        let spec = &s.practitioner.spec;
        let request = match (r.action, &r.fhir_id) {
            (ReportAction::Create, _) => Some(SavedRequest {
                method: "POST".into(),
                url: "Practitioner".into(),
                if_match: None,
                if_none_exist: r.request.as_ref().and_then(|q| q.if_none_exist.clone()),
                body_sha256: sha256(&new_resource(spec, &norm)),
            }),
            (ReportAction::Update | ReportAction::Deactivate, Some(id)) => {
                let observed = read_verified(&target.client, id, &spec.npi)
                    .await
                    .map_err(|e| {
                        format!(
                            "cannot pin {} to a version of Practitioner/{id}: {e}",
                            r.name
                        )
                    })?;
                if is_subsetted(&observed.body) {
                    return Err(format!(
                        "Practitioner/{id} was read SUBSETTED: no whole record to plan a write on"
                    ));
                }
                let version = version_precondition(observed.etag.as_deref(), &observed.body);
                r.if_match.clone_from(&version);
                if let Some(q) = &mut r.request {
                    q.if_match.clone_from(&version);
                }
                Some(SavedRequest {
                    method: "PUT".into(),
                    url: format!("Practitioner/{id}"),
                    if_match: version,
                    if_none_exist: None,
                    body_sha256: sha256(&overlay(spec, &observed.body, &norm)),
                })
            }
            _ => None,
        };
        entries.push(SavedEntry {
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            npi: r.npi.clone(),
            action: r.action,
            fhir_id: r.fhir_id.clone(),
            version: request.as_ref().and_then(|q| q.if_match.clone()),
            request,
        });
    }
    Ok(SavedPlan {
        kind: SAVED_PLAN_KIND.into(),
        format_version: FORMAT_VERSION,
        tool: ToolInfo::this(),
        connection: ConnectionIdentity::of(target),
        manifests_digest: manifests_digest(loaded),
        practitioners: entries,
    })
}

/// Reads a saved plan file, refusing anything else by name.
pub fn read_saved_plan(path: &std::path::Path) -> Result<SavedPlan, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the saved plan: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a saved plan (not JSON: {e})", path.display()))?;
    if v.get("kind").and_then(Value::as_str) != Some(SAVED_PLAN_KIND) {
        return Err(format!(
            "{}: not a saved plan (no \"kind\": \"{SAVED_PLAN_KIND}\"): write one with `plan --out FILE`",
            path.display()
        ));
    }
    if v.get("formatVersion").and_then(Value::as_u64) != Some(u64::from(FORMAT_VERSION)) {
        return Err(format!(
            "{}: a saved plan of another format version: run plan again with this version",
            path.display()
        ));
    }
    serde_json::from_value(v).map_err(|e| format!("{}: broken saved plan: {e}", path.display()))
}

/// Why a saved plan does not fit this run (another connection, other manifests), if it does not.
pub fn mismatch(plan: &SavedPlan, target: &Target, loaded: &Loaded) -> Option<String> {
    let here = ConnectionIdentity::of(target);
    if plan.connection != here {
        return Some(format!(
            "the saved plan was made for connection {} ({}, client {}), not {} ({}, client {}): apply it with the connection it was made for, or run plan again",
            plan.connection.name,
            plan.connection.fhir_base_url,
            plan.connection.client_id,
            here.name,
            here.fhir_base_url,
            here.client_id
        ));
    }
    if plan.manifests_digest != manifests_digest(loaded) {
        return Some(
            "the saved plan was made for other manifests than the ones given (-f): apply it with the manifests it was made from, or run plan again".into(),
        );
    }
    None
}

/// The saved entry of a practitioner report.
pub fn entry_for<'a>(plan: &'a SavedPlan, r: &PractitionerReport) -> Option<&'a SavedEntry> {
    plan.practitioners
        .iter()
        .find(|e| e.name == r.name && e.namespace == r.namespace && e.npi == r.npi)
}
