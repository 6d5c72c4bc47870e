//! `apply --plan FILE`: sends exactly the requests a saved plan recorded, each only while the
//! record is still what the plan saw. No new plan is made: a practitioner the plan did not
//! write is left alone, whatever Epic holds now.

use serde_json::Value;

use super::connection::Target;
use super::manifests::{Loaded, SourcedPractitioner};
use super::report::{PlanMode, PlanOptions, PractitionerReport, RunReport};
use super::report_format::{FORMAT_VERSION, Summary, ToolInfo, WritesInfo, exit_code};
use super::report_kinds::{ReportAction, ReportResolution, ReportResult};
use super::saved_plan::{SavedEntry, SavedPlan, SavedRequest, entry_for, sha256};
use crate::crd::Reason;
use crate::fhir::{FhirError, NpiLookup};
use crate::pipeline::read_verified;
use crate::reconcile::identity::version_precondition;
use crate::reconcile::{Normalizer, drift, new_resource, overlay};

/// What a stale record is called, whatever the detail.
pub const STALE: &str = "stale plan: run plan again";

/// Applies a saved plan that fits `target` and `loaded` (checked by the caller with
/// [`super::saved_plan::mismatch`]).
pub async fn apply_saved(
    target: &Target,
    loaded: &Loaded,
    plan: &SavedPlan,
    options: PlanOptions,
) -> RunReport {
    let norm = target.normalizer();
    let mut reports = Vec::new();
    let mut any_error = false;
    for s in &loaded.practitioners {
        let mut r = PractitionerReport::for_manifest(s);
        match entry_for(plan, &r) {
            None => {
                any_error = true;
                r.message = format!("not in the saved plan: {STALE}");
                r.result = ReportResult::Stale;
            }
            Some(e) => {
                r.fhir_id.clone_from(&e.fhir_id);
                r.action = e.action;
                r.intended_action = e.action;
                r.if_match.clone_from(&e.version);
                r.resolution = if e.fhir_id.is_some() {
                    ReportResolution::Found
                } else {
                    ReportResolution::NotFound
                };
                match &e.request {
                    None => {
                        r.result = if e.action == ReportAction::None {
                            ReportResult::Unchanged
                        } else {
                            ReportResult::Held
                        };
                        r.in_sync = e.action == ReportAction::None;
                        r.message = "no request in the saved plan: left as planned".into();
                    }
                    Some(req) => {
                        send(target, s, e, req, &norm, &mut r).await;
                        any_error |= r.result.failed();
                    }
                }
            }
        }
        reports.push(r);
    }
    let writes_why = "a saved plan is applied: its requests are sent as planned".to_string();
    RunReport {
        format_version: FORMAT_VERSION,
        tool: ToolInfo::this(),
        mode: PlanMode::Apply.as_str(),
        connection: Some(target.connection_name.clone()),
        fhir_base_url: Some(target.client.base_url().to_string()),
        writes: Some(WritesInfo {
            mode: "planned",
            reason: writes_why,
        }),
        summary: Summary::of(&reports, 0, PlanMode::Apply),
        exit_code: exit_code(&reports, any_error, PlanMode::Apply, options.exit_code),
        practitioners: reports,
        notes: loaded.notes.clone(),
        diagnostics: Vec::new(),
    }
}

fn stale(r: &mut PractitionerReport, why: String) {
    r.result = ReportResult::Stale;
    r.message = format!("{STALE} ({why})");
}

/// Sends one planned request, if the record is still the one planned against.
async fn send(
    target: &Target,
    s: &SourcedPractitioner,
    e: &SavedEntry,
    req: &SavedRequest,
    norm: &Normalizer,
    r: &mut PractitionerReport,
) {
    let spec = &s.practitioner.spec;
    let client = &target.client;
    let answer = if req.method == "POST" {
        match client.search_npi(&spec.npi).await {
            Ok(found) => match found.lookup {
                NpiLookup::NotFound => {}
                NpiLookup::Found { id, .. } => {
                    return stale(r, format!("Practitioner/{id} now carries NPI {}", spec.npi));
                }
                NpiLookup::Ambiguous(ids) => {
                    return stale(r, format!("{} records now carry the NPI", ids.len()));
                }
                NpiLookup::Incomplete(why) => {
                    return stale(r, format!("the NPI search is now incomplete: {why}"));
                }
            },
            Err(err) => return failed(r, err),
        }
        let body = new_resource(spec, norm);
        if sha256(&body) != req.body_sha256 {
            return stale(
                r,
                "the record to create differs from the planned one".into(),
            );
        }
        client
            .create_practitioner(&body, req.if_none_exist.as_deref())
            .await
    } else {
        let Some(id) = &e.fhir_id else {
            return stale(r, "the plan names no record to update".into());
        };
        let observed = match read_verified(client, id, &spec.npi).await {
            Ok(o) => o,
            Err(err) if matches!(err, FhirError::NotFound { .. }) || err.is_gone_or_merged() => {
                return stale(r, format!("Practitioner/{id} no longer answers: {err}"));
            }
            Err(err) => return failed(r, err),
        };
        let now = version_precondition(observed.etag.as_deref(), &observed.body);
        if now != req.if_match {
            return stale(
                r,
                format!(
                    "Practitioner/{id} is at version {}, the plan was made against {}",
                    now.as_deref().unwrap_or("(none)"),
                    req.if_match.as_deref().unwrap_or("(none)")
                ),
            );
        }
        let body = overlay(spec, &observed.body, norm);
        if sha256(&body) != req.body_sha256 {
            return stale(
                r,
                "the request built now differs from the planned one".into(),
            );
        }
        client
            .update_practitioner(id, &body, req.if_match.as_deref())
            .await
            .map(|v| (id.clone(), v.body))
    };
    match answer {
        Ok((id, answered)) => {
            let live =
                if answered.get("resourceType").and_then(Value::as_str) == Some("Practitioner") {
                    Some(answered)
                } else {
                    client.read_practitioner(&id).await.ok().map(|v| v.body)
                };
            // As a plain apply reports it: deactivation by spec is an update (the action says
            // deactivate).
            r.result = match e.action {
                ReportAction::Create => ReportResult::Created,
                _ => ReportResult::Updated,
            };
            r.fhir_id = Some(id);
            r.resolution = ReportResolution::Found;
            match live {
                Some(l) => {
                    let remaining = drift(spec, &l, norm);
                    r.in_sync = remaining.is_empty();
                    if !r.in_sync {
                        let what = match r.result {
                            ReportResult::Created => "created the record",
                            _ => "updated the record",
                        };
                        r.reason = Some(Reason::WriteNotApplied);
                        r.message = crate::pipeline::verdict::not_applied_message(what);
                    }
                }
                None => r
                    .warnings
                    .push("the write succeeded but the record could not be read back".into()),
            }
        }
        Err(FhirError::Conflict { .. }) => stale(
            r,
            "Epic answered that the record changed after it was read (If-Match failed)".into(),
        ),
        Err(err @ FhirError::WriteDisabled { .. }) => {
            r.result = ReportResult::Refused;
            r.reason = Some(err.reason());
            r.message = err.to_string();
        }
        Err(err) => failed(r, err),
    }
}

fn failed(r: &mut PractitionerReport, err: FhirError) {
    r.result = ReportResult::Failed;
    r.reason = Some(err.reason());
    r.message = err.to_string();
}
