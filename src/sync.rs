//! The I/O steps both drivers share: connect to an Epic instance, then for one practitioner
//! resolve -> observe -> (pure) drift and plan -> act -> verify. The operator and the GitOps
//! command line call exactly this, so `plan` shows what the operator will do.

use std::sync::Arc;

use serde_json::Value;

use crate::auth::{ClientKey, TokenSource, discover_token_url};
use crate::crd::{
    DeletionPolicy, EpicConnectionSpec, EpicPractitionerSpec, ManagementPolicy, RoleSummary,
    WriteMode,
};
use crate::fhir::{
    Capability, ConnectionSettings, FhirClient, FhirError, NpiLookup, RequestObserver,
};
use crate::reconcile::{
    Action, DriftReport, PlanInput, Resolution, WriteCapability, drift, new_resource, overlay, plan,
};

/// Builds the HTTP client every connection uses: rustls with certificate verification, and
/// timeouts so a silent server cannot hang a reconcile.
pub fn http_client() -> Result<reqwest::Client, FhirError> {
    // A no-op when already installed; needed because reqwest is built without a default provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("epic-operator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FhirError::Transport(e.to_string()))
}

/// Connects to the instance an EpicConnection describes: loads the key, finds the token URL,
/// and builds the client. No request is sent except token URL discovery.
pub async fn connect(
    http: &reqwest::Client,
    spec: &EpicConnectionSpec,
    private_key_pem: &str,
    observer: Option<RequestObserver>,
) -> Result<FhirClient, FhirError> {
    let key = ClientKey::from_pem(private_key_pem, spec.algorithm, &spec.key_id)
        .map_err(crate::auth::AuthError::from)?;
    let token_url = match &spec.token_url {
        Some(u) => u.clone(),
        None => discover_token_url(http, &spec.fhir_base_url).await?,
    };
    let tokens = TokenSource::new(
        http.clone(),
        key,
        spec.client_id.clone(),
        token_url,
        spec.effective_scopes(),
    )?;
    let mut settings = ConnectionSettings::new(spec.fhir_base_url.clone());
    if let Some(r) = spec.requests_per_second {
        settings.requests_per_second = r;
    }
    settings.burst = spec
        .burst
        .unwrap_or(settings.requests_per_second.saturating_mul(2));
    if let Some(p) = spec.page_size {
        settings.page_size = p;
    }
    FhirClient::new(http.clone(), settings, Arc::new(tokens), observer)
}

/// What the write setting plus the CapabilityStatement say about writes.
pub fn write_capability(mode: WriteMode, capability: Option<&Capability>) -> WriteCapability {
    match mode {
        WriteMode::Enabled => WriteCapability::Enabled,
        WriteMode::Disabled => WriteCapability::Disabled,
        WriteMode::Auto => match capability {
            Some(c) if c.can_update() => WriteCapability::Enabled,
            Some(_) => WriteCapability::Disabled,
            None => WriteCapability::Unknown,
        },
    }
}

/// Inputs of one practitioner sync.
#[derive(Clone, Debug)]
pub struct SyncRequest<'a> {
    pub spec: &'a EpicPractitionerSpec,
    /// A FHIR id recorded earlier for this same connection (skips the NPI search).
    pub known_id: Option<&'a str>,
    pub writes: WriteCapability,
    pub deleting: bool,
    pub paused: bool,
    /// False: plan only (the `plan` command); true: perform the planned write.
    pub perform_writes: bool,
    /// Also list the practitioner's PractitionerRoles.
    pub fetch_roles: bool,
}

/// What happened to a planned write.
#[derive(Clone, Debug)]
pub enum WriteOutcome {
    /// Not attempted (nothing to write, held, or plan only).
    NotAttempted,
    Updated,
    Created,
    Deactivated,
    /// Epic refused the write (write-disabled instance).
    Refused(FhirError),
    /// The write failed for another reason.
    Failed(FhirError),
}

/// Everything one sync learned and did.
#[derive(Clone, Debug)]
pub struct SyncOutcome {
    pub resolution: Resolution,
    pub fhir_id: Option<String>,
    /// The NPI search ran (no id was known, or the known one was gone).
    pub searched: bool,
    /// Ids of every record carrying the NPI when ambiguous.
    pub ambiguous_ids: Vec<String>,
    /// Drift before any write.
    pub drift: DriftReport,
    pub action: Action,
    pub write: WriteOutcome,
    /// Drift after the write (equal to `drift` when nothing was written).
    pub remaining: DriftReport,
    /// The live record after the sync, when one exists.
    pub live: Option<Value>,
    pub roles: Vec<RoleSummary>,
}

/// Resolves, observes, plans and (when asked) writes one practitioner.
pub async fn sync_practitioner(
    client: &FhirClient,
    req: SyncRequest<'_>,
) -> Result<SyncOutcome, FhirError> {
    let spec = req.spec;
    let mut searched = false;
    let mut ambiguous_ids = Vec::new();
    // Resolve: a recorded id costs one read; otherwise (or if it vanished) search by NPI.
    let mut live: Option<(Value, Option<String>)> = None;
    if let Some(id) = req.known_id {
        match client.read_practitioner(id).await {
            Ok(v) => live = Some((v.body, v.etag)),
            Err(FhirError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let resolution = if live.is_some() {
        Resolution::Found
    } else {
        searched = true;
        match client.search_npi(&spec.npi).await? {
            NpiLookup::NotFound => Resolution::NotFound,
            NpiLookup::Found(body) => {
                live = Some((body, None));
                Resolution::Found
            }
            NpiLookup::Ambiguous(ids) => {
                let n = ids.len();
                ambiguous_ids = ids;
                Resolution::Ambiguous(n)
            }
        }
    };
    let fhir_id = live
        .as_ref()
        .and_then(|(b, _)| b.get("id").and_then(Value::as_str).map(str::to_string));
    let report = match &live {
        Some((body, _)) => drift(spec, body),
        None => DriftReport {
            entries: Vec::new(),
            diff: String::new(),
        },
    };
    // Deletion with Deactivate owns exactly one field, active=false: other drift is left alone
    // on the way out.
    let deleting_spec = req.deleting.then(|| EpicPractitionerSpec {
        active: Some(false),
        name: None,
        telecom: None,
        gender: None,
        birth_date: None,
        qualifications: None,
        ..spec.clone()
    });
    let effective_spec = deleting_spec.as_ref().unwrap_or(spec);
    let action = plan(PlanInput {
        management: spec.management_policy,
        deletion: spec.deletion_policy,
        deleting: req.deleting,
        paused: req.paused,
        writes: req.writes,
        resolution,
        drifted: !report.is_empty(),
        live_active: live
            .as_ref()
            .and_then(|(b, _)| b.get("active").and_then(Value::as_bool)),
    });
    let mut outcome = SyncOutcome {
        resolution,
        fhir_id: fhir_id.clone(),
        searched,
        ambiguous_ids,
        remaining: report.clone(),
        drift: report,
        action,
        write: WriteOutcome::NotAttempted,
        live: live.as_ref().map(|(b, _)| b.clone()),
        roles: Vec::new(),
    };
    if req.perform_writes && action.writes() {
        let result = match (action, &live, &fhir_id) {
            (Action::Update | Action::Deactivate, Some((body, etag)), Some(id)) => {
                let put = overlay(effective_spec, body);
                client
                    .update_practitioner(id, &put, etag.as_deref())
                    .await
                    .map(|b| (id.clone(), b))
            }
            (Action::Create, None, _) => client.create_practitioner(&new_resource(spec)).await,
            _ => Err(FhirError::Malformed(
                "internal: planned write without a record".into(),
            )),
        };
        match result {
            Ok((id, mut body)) => {
                if body.is_null() || body.get("id").is_none() {
                    // No usable body came back: read the record to verify the write.
                    body = client.read_practitioner(&id).await?.body;
                }
                // Verify against what was written (for deletion: active=false only).
                outcome.remaining = drift(effective_spec, &body);
                outcome.fhir_id = Some(id);
                outcome.live = Some(body);
                outcome.write = match action {
                    Action::Create => WriteOutcome::Created,
                    Action::Deactivate => WriteOutcome::Deactivated,
                    _ => WriteOutcome::Updated,
                };
                if action == Action::Create {
                    outcome.resolution = Resolution::Found;
                }
            }
            Err(e @ FhirError::WriteDisabled { .. }) => outcome.write = WriteOutcome::Refused(e),
            Err(e) => outcome.write = WriteOutcome::Failed(e),
        }
    }
    if req.fetch_roles
        && let Some(id) = &outcome.fhir_id
    {
        outcome.roles = client
            .practitioner_roles(id)
            .await?
            .iter()
            .map(role_summary)
            .collect();
    }
    Ok(outcome)
}

/// Whether a deleting object may drop its finalizer given what happened.
pub fn deletion_done(spec: &EpicPractitionerSpec, outcome: &SyncOutcome) -> bool {
    spec.deletion_policy == DeletionPolicy::Orphan
        || spec.management_policy == ManagementPolicy::Observe
        || matches!(outcome.action, Action::Nothing)
        || matches!(outcome.write, WriteOutcome::Deactivated) && outcome.remaining.is_empty()
}

fn display_of(v: Option<&Value>) -> Option<String> {
    let v = v?;
    v.get("display")
        .or_else(|| v.get("text"))
        .or_else(|| v.get("reference"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            v.pointer("/coding/0/display")
                .or_else(|| v.pointer("/coding/0/code"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
}

fn first(v: &Value, key: &str) -> Option<Value> {
    match v.get(key)? {
        Value::Array(a) => a.first().cloned(),
        other => Some(other.clone()),
    }
}

/// The parts of a PractitionerRole shown in status.
pub fn role_summary(role: &Value) -> RoleSummary {
    RoleSummary {
        organization: display_of(role.get("organization")),
        location: display_of(first(role, "location").as_ref())
            .or_else(|| display_of(first(role, "healthcareService").as_ref())),
        specialty: display_of(first(role, "specialty").as_ref()),
        code: display_of(first(role, "code").as_ref()),
    }
}
