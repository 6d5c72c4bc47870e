//! `plan` and `apply`: run the shared sync steps for every manifest and report the outcome.

use serde::Serialize;

use super::connection::Target;
use super::diagnostics::Diagnostic;
use super::manifests::Loaded;
use super::report_detail::detail;
use super::report_format::{
    ExitCodeMode, FORMAT_VERSION, Summary, ToolInfo, WritesInfo, exit_code, intended_action,
};
use super::report_kinds::{ReportAction, ReportResult};
use super::report_types::WouldBeRequest;
pub use super::report_types::{PlanMode, PractitionerReport};
use crate::crd::{DEACTIVATION_NOTE, EpicPractitionerStatus, NPI_SYSTEMS, Reason, WriteMode};
use crate::fhir::Capability;
use crate::pipeline::{CreateGuard, SyncRequest, WriteOutcome, sync_practitioner, verdict};
use crate::reconcile::{
    Action, Disclosure, Normalizer, Resolution, WriteCapability, disclose, new_resource,
    validate_spec, write_capability,
};

/// The whole run (`-o json`: format version [`FORMAT_VERSION`]).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub format_version: u32,
    pub tool: ToolInfo,
    /// plan or apply.
    pub mode: &'static str,
    /// The EpicConnection name (absent when no connection was opened).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fhir_base_url: Option<String>,
    /// Whether the instance takes writes, and why (absent when no connection was opened).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writes: Option<WritesInfo>,
    pub summary: Summary,
    pub practitioners: Vec<PractitionerReport>,
    pub notes: Vec<String>,
    /// Problems before anything was planned: broken manifests, the connection file, the
    /// connection itself. Nothing is planned when there is one.
    pub diagnostics: Vec<Diagnostic>,
    pub exit_code: i32,
}

impl RunReport {
    /// The report of a run that stopped before planning (exit code 1).
    pub fn stopped(mode: PlanMode, diagnostics: Vec<Diagnostic>, notes: Vec<String>) -> Self {
        RunReport {
            format_version: FORMAT_VERSION,
            tool: ToolInfo::this(),
            mode: mode.as_str(),
            connection: None,
            fhir_base_url: None,
            writes: None,
            summary: Summary::of(&[], diagnostics.len(), mode),
            practitioners: Vec::new(),
            notes,
            diagnostics,
            exit_code: 1,
        }
    }
}

/// How plan and apply run, besides the target.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanOptions {
    /// Show contact values and birth dates in full (default: masked, as in status).
    pub disclosure: Disclosure,
    /// What exit code 2 means.
    pub exit_code: ExitCodeMode,
}

/// Runs plan or apply for every loaded practitioner against one target.
pub async fn run_plan(
    target: &Target,
    loaded: &Loaded,
    mode: PlanMode,
    options: PlanOptions,
) -> RunReport {
    let mut notes = loaded.notes.clone();
    let capability: Option<Capability> = match target.capability().await {
        Ok(c) => Some(c),
        Err(e) => {
            notes.push(format!(
                "could not read the CapabilityStatement ({e}); write capability unknown"
            ));
            None
        }
    };
    let mut writes = write_capability(
        target.spec.writes,
        capability.as_ref().map(Capability::can_update),
    );
    let mut writes_why = writes_reason(target.spec.writes, capability.as_ref());
    if let Some(c) = &capability
        && !c.npi_search()
    {
        notes.push("the CapabilityStatement does not list the Practitioner identifier search; NPI lookups may fail".into());
    }
    let normalizer = target.normalizer();
    let mut reports = Vec::new();
    let mut any_error = false;
    // A failed token request fails every practitioner the same way: it is asked once per run,
    // not once per practitioner.
    let mut auth_failure: Option<(Reason, String)> = None;
    for sourced in &loaded.practitioners {
        let p = &sourced.practitioner;
        let mut r = PractitionerReport::for_manifest(sourced);
        if let Err(e) = validate_spec(&p.spec) {
            any_error = true;
            r.reason = Some(Reason::InvalidSpec);
            r.message = e;
            reports.push(r);
            continue;
        }
        if let Some((reason, message)) = &auth_failure {
            any_error = true;
            r.reason = Some(*reason);
            r.message = format!("not attempted: no token ({message})");
            reports.push(r);
            continue;
        }
        let req = SyncRequest {
            spec: &p.spec,
            known_id: None,
            writes,
            deleting: false,
            paused: p.is_paused(),
            perform_writes: mode == PlanMode::Apply,
            fetch_roles: false,
            normalizer: &normalizer,
            conditional_create: capability.as_ref().is_some_and(|c| c.conditional_create),
            disclosure: options.disclosure,
            prefetched: None,
            known_roles: None,
            create_guard: CreateGuard::SEARCH,
            attempt_recorder: None,
        };
        match sync_practitioner(&target.client, req).await {
            Err(e) => {
                any_error = true;
                r.reason = Some(e.reason());
                r.message = e.to_string();
                if matches!(e, crate::fhir::FhirError::Auth(_)) {
                    auth_failure = Some((e.reason(), e.to_string()));
                }
            }
            Ok(o) => {
                r.resolution = o.resolution.into();
                r.warnings = o.warnings.clone();
                if o.action.writes() {
                    r.if_match = o.if_match.clone();
                }
                let sets_inactive = p.spec.active == Some(false)
                    && o.drift.entries.iter().any(|d| d.path == "active");
                let deactivates =
                    o.action == Action::Deactivate || o.action == Action::Update && sets_inactive;
                if deactivates {
                    r.note = Some(DEACTIVATION_NOTE.to_string());
                }
                r.fhir_id = o.fhir_id.clone();
                r.ambiguous_ids = o.ambiguous_ids.clone();
                r.drift = o.drift.entries.clone();
                r.diff = o.drift.diff.clone();
                r.action = if deactivates {
                    ReportAction::Deactivate
                } else {
                    o.action.into()
                };
                let verdict =
                    verdict::of_sync(p, &EpicPractitionerStatus::default(), &o, &writes_why);
                (r.reason, r.message) = detail(&verdict, &o, mode);
                r.intended_action = intended_action(&r, sets_inactive);
                r.request = would_be_request(
                    &r,
                    &p.spec,
                    &normalizer,
                    o.if_match.clone(),
                    capability.as_ref().is_some_and(|c| c.conditional_create),
                    options.disclosure,
                );
                r.in_sync = o.resolution == Resolution::Found && o.remaining.is_empty();
                r.result = ReportResult::of(&o.write, o.action);
                if let WriteOutcome::Refused(e) = &o.write
                    && target.spec.writes == WriteMode::Auto
                {
                    // The first refused write settles it: no more doomed writes this run.
                    writes = WriteCapability::Disabled;
                    writes_why = format!("a write was refused ({e})");
                }
            }
        }
        reports.push(r);
    }
    let exit_code = exit_code(&reports, any_error, mode, options.exit_code);
    RunReport {
        format_version: FORMAT_VERSION,
        tool: ToolInfo::this(),
        mode: mode.as_str(),
        connection: Some(target.connection_name.clone()),
        fhir_base_url: Some(target.client.base_url().to_string()),
        writes: Some(WritesInfo {
            mode: match writes {
                WriteCapability::Enabled => "enabled",
                WriteCapability::Disabled => "disabled",
                WriteCapability::Unknown => "unknown",
            },
            reason: writes_why,
        }),
        summary: Summary::of(&reports, 0, mode),
        practitioners: reports,
        notes,
        diagnostics: Vec::new(),
        exit_code,
    }
}

/// The `If-None-Exist` a create carries where the instance supports conditional create.
pub(crate) fn if_none_exist(npi: &str) -> String {
    let tokens: Vec<String> = NPI_SYSTEMS.iter().map(|s| format!("{s}|{npi}")).collect();
    format!("identifier={}", tokens.join(","))
}

/// The request the intended action sends: a PUT of the record with the drifted fields
/// replaced, or a POST of a record built from the spec (shown masked as drift is).
fn would_be_request(
    r: &PractitionerReport,
    spec: &crate::crd::EpicPractitionerSpec,
    norm: &Normalizer,
    if_match: Option<String>,
    conditional_create: bool,
    disclosure: Disclosure,
) -> Option<WouldBeRequest> {
    match r.intended_action {
        ReportAction::Create => {
            let body = match new_resource(spec, norm) {
                serde_json::Value::Object(m) => serde_json::Value::Object(
                    m.into_iter()
                        .map(|(k, v)| {
                            let v = disclose(&k, v, disclosure);
                            (k, v)
                        })
                        .collect(),
                ),
                other => other,
            };
            let fields = body
                .as_object()
                .map(|m| m.keys().filter(|k| *k != "resourceType").cloned().collect())
                .unwrap_or_default();
            Some(WouldBeRequest {
                method: "POST",
                url: "Practitioner".into(),
                if_match: None,
                if_none_exist: conditional_create.then(|| if_none_exist(&spec.npi)),
                fields,
                body: Some(body),
            })
        }
        ReportAction::Update | ReportAction::Deactivate => Some(WouldBeRequest {
            method: "PUT",
            url: format!("Practitioner/{}", r.fhir_id.as_deref().unwrap_or_default()),
            if_match,
            if_none_exist: None,
            fields: r.drift.iter().map(|d| d.path.clone()).collect(),
            body: None,
        }),
        _ => None,
    }
}

fn writes_reason(mode: WriteMode, capability: Option<&Capability>) -> String {
    match (mode, capability) {
        (WriteMode::Enabled, _) => "the connection sets writes: Enabled".into(),
        (WriteMode::Disabled, _) => "the connection sets writes: Disabled".into(),
        (WriteMode::Auto, Some(c)) if c.can_update() => {
            "the CapabilityStatement lists Practitioner update".into()
        }
        (WriteMode::Auto, Some(_)) => {
            "the CapabilityStatement lists no Practitioner update, so no write is attempted".into()
        }
        (WriteMode::Auto, None) => {
            "the CapabilityStatement could not be read; the first write will tell".into()
        }
    }
}
