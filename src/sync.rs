//! The I/O steps both drivers share: connect to an Epic instance, then for one practitioner
//! resolve -> observe -> (pure) drift and plan -> act -> verify. The operator and the GitOps
//! command line call exactly this, so `plan` shows what the operator will do.

use std::sync::Arc;

use serde_json::Value;

use crate::auth::{ClientKey, TokenSource, discover_token_url};
use crate::crd::{
    DeletionPolicy, EpicConnectionSpec, EpicPractitionerSpec, ManagementPolicy, NPI_SYSTEMS,
    RoleSummary, WriteMode,
};
use crate::fhir::{
    Capability, ConnectionSettings, EndpointPolicy, FhirClient, FhirError, NpiLookup,
    RequestObserver,
};
use crate::reconcile::identity::{carries_npi, is_subsetted, npi_values, version_precondition};
use crate::reconcile::{
    Action, DriftReport, Normalizer, PlanInput, Resolution, WriteCapability, drift, new_resource,
    overlay, plan,
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
/// `policy` decides which hosts may receive the client assertion and the bearer token.
pub async fn connect(
    http: &reqwest::Client,
    spec: &EpicConnectionSpec,
    private_key_pem: &str,
    observer: Option<RequestObserver>,
    policy: &EndpointPolicy,
) -> Result<FhirClient, FhirError> {
    Normalizer::for_connection(spec).map_err(FhirError::Refused)?;
    policy
        .check_fhir_base(&spec.fhir_base_url)
        .map_err(FhirError::Refused)?;
    let key = ClientKey::from_pem(private_key_pem, spec.algorithm, &spec.key_id)
        .map_err(crate::auth::AuthError::from)?;
    let (token_url, discovered) = match &spec.token_url {
        Some(u) => (u.clone(), false),
        None => (discover_token_url(http, &spec.fhir_base_url).await?, true),
    };
    policy
        .check_token_url(&spec.fhir_base_url, &token_url, discovered)
        .map_err(FhirError::Refused)?;
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
    if let Some(n) = spec.max_walk_pages {
        settings.walk_limits.max_pages = n;
    }
    if let Some(n) = spec.max_walk_records {
        settings.walk_limits.max_records = n;
    }
    if let Some(d) = &spec.max_walk_duration {
        settings.walk_limits.max_duration = crate::util::parse_duration(d)
            .map_err(|e| FhirError::Refused(format!("maxWalkDuration: {e}")))?;
    }
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
    /// How contact values of this connection are compared.
    pub normalizer: &'a Normalizer,
    /// The CapabilityStatement lists conditional create: POST carries `If-None-Exist`.
    pub conditional_create: bool,
}

/// Attempts of one conditional write before a version conflict is reported.
pub const MAX_WRITE_ATTEMPTS: u32 = 3;

/// What happened to a planned write.
#[derive(Clone, Debug)]
pub enum WriteOutcome {
    /// Not attempted (nothing to write, held, plan only, or in sync when re-read).
    NotAttempted,
    Updated,
    Created,
    Deactivated,
    /// Epic refused the write (write-disabled instance).
    Refused(FhirError),
    /// The record kept changing between read and write (412/409 on every attempt).
    Conflict {
        attempts: u32,
        last: FhirError,
    },
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
    /// Warnings Epic attached to the search, and notes from best-effort reads after a write.
    pub warnings: Vec<String>,
    /// Drift before any write.
    pub drift: DriftReport,
    pub action: Action,
    /// The `If-Match` the write sends (or, in plan mode, would send first).
    pub if_match: Option<String>,
    pub write: WriteOutcome,
    /// PUT or POST requests sent.
    pub write_attempts: u32,
    /// Drift after the write (equal to `drift` when nothing was written).
    pub remaining: DriftReport,
    /// The live record after the sync, when one exists.
    pub live: Option<Value>,
    pub roles: Vec<RoleSummary>,
}

/// A record as read, with the version it was read at.
#[derive(Clone, Debug)]
struct Observed {
    id: String,
    body: Value,
    etag: Option<String>,
    /// Read by id (a whole record at a known version), not copied from a search Bundle.
    by_id: bool,
}

/// Reads a record by id and checks that it still carries the NPI: a saved or searched id is
/// never trusted to name the same clinician by itself.
async fn read_verified(client: &FhirClient, id: &str, npi: &str) -> Result<Observed, FhirError> {
    let v = client.read_practitioner(id).await?;
    if !carries_npi(&v.body, npi) {
        let found = npi_values(&v.body);
        return Err(FhirError::IdentityMismatch {
            id: id.to_string(),
            npi: npi.to_string(),
            found: if found.is_empty() {
                "no NPI".into()
            } else {
                found.join(", ")
            },
        });
    }
    Ok(Observed {
        id: id.to_string(),
        body: v.body,
        etag: v.etag,
        by_id: true,
    })
}

fn empty_report() -> DriftReport {
    DriftReport {
        entries: Vec::new(),
        diff: String::new(),
    }
}

/// Resolves, observes, plans and (when asked) writes one practitioner.
pub async fn sync_practitioner(
    client: &FhirClient,
    req: SyncRequest<'_>,
) -> Result<SyncOutcome, FhirError> {
    let spec = req.spec;
    let norm = req.normalizer;
    let mut searched = false;
    let mut ambiguous_ids = Vec::new();
    let mut warnings = Vec::new();
    // Resolve: a recorded id costs one read; if it is gone or merged, the NPI is searched once.
    let mut current: Option<Observed> = None;
    if let Some(id) = req.known_id {
        match read_verified(client, id, &spec.npi).await {
            Ok(o) => current = Some(o),
            Err(e) if matches!(e, FhirError::NotFound { .. }) || e.is_gone_or_merged() => {
                tracing::info!(npi = %spec.npi, id, reason = e.reason(), "saved id no longer answers; resolving the NPI again");
            }
            Err(e) => return Err(e),
        }
    }
    let resolution = if current.is_some() {
        Resolution::Found
    } else {
        searched = true;
        let found = client.search_npi(&spec.npi).await?;
        warnings = found.warnings;
        match found.lookup {
            NpiLookup::NotFound => Resolution::NotFound,
            NpiLookup::Found { id, record } => {
                current = Some(Observed {
                    id,
                    body: record,
                    etag: None,
                    by_id: false,
                });
                Resolution::Found
            }
            NpiLookup::Ambiguous(ids) => {
                let n = ids.len();
                ambiguous_ids = ids;
                Resolution::Ambiguous(n)
            }
            NpiLookup::Incomplete(why) => {
                warnings.push(format!("search incomplete: {why}"));
                Resolution::Incomplete
            }
        }
    };
    // Observe: a SUBSETTED search copy lacks fields, so drift is computed on the whole record.
    if let Some(o) = &current
        && !o.by_id
        && is_subsetted(&o.body)
    {
        current = Some(read_verified(client, &o.id.clone(), &spec.npi).await?);
    }
    let report = current
        .as_ref()
        .map_or_else(empty_report, |o| drift(spec, &o.body, norm));
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
        live_active: current
            .as_ref()
            .and_then(|o| o.body.get("active").and_then(Value::as_bool)),
    });
    let mut outcome = SyncOutcome {
        resolution,
        fhir_id: current.as_ref().map(|o| o.id.clone()),
        searched,
        ambiguous_ids,
        warnings,
        remaining: report.clone(),
        drift: report,
        action,
        if_match: current
            .as_ref()
            .and_then(|o| version_precondition(o.etag.as_deref(), &o.body)),
        write: WriteOutcome::NotAttempted,
        write_attempts: 0,
        live: current.as_ref().map(|o| o.body.clone()),
        roles: Vec::new(),
    };
    if req.perform_writes && action.writes() {
        match (action, current) {
            (Action::Create, None) => create(client, &req, &mut outcome).await,
            (Action::Update | Action::Deactivate, Some(observed)) => {
                update(client, effective_spec, norm, observed, &mut outcome).await
            }
            _ => {
                outcome.write = WriteOutcome::Failed(FhirError::Malformed(
                    "internal: planned write without a record".into(),
                ))
            }
        }
    }
    if req.fetch_roles
        && let Some(id) = &outcome.fhir_id
    {
        match client.practitioner_roles(id).await {
            Ok(roles) => outcome.roles = roles.iter().map(role_summary).collect(),
            // After a write, a failed read must not erase what was done.
            Err(e) if outcome.wrote() => outcome
                .warnings
                .push(format!("PractitionerRoles not read after the write: {e}")),
            Err(e) => return Err(e),
        }
    }
    Ok(outcome)
}

impl SyncOutcome {
    /// A PUT or POST succeeded.
    pub fn wrote(&self) -> bool {
        matches!(
            self.write,
            WriteOutcome::Updated | WriteOutcome::Created | WriteOutcome::Deactivated
        )
    }
}

/// POST a new record (conditional on the NPI where the instance supports it). Reads after it
/// are best-effort: the create is recorded whatever follows.
async fn create(client: &FhirClient, req: &SyncRequest<'_>, outcome: &mut SyncOutcome) {
    let spec = req.spec;
    let if_none_exist = req.conditional_create.then(|| {
        let tokens: Vec<String> = NPI_SYSTEMS
            .iter()
            .map(|s| format!("{s}|{}", spec.npi))
            .collect();
        format!("identifier={}", tokens.join(","))
    });
    let sent = new_resource(spec, req.normalizer);
    outcome.write_attempts = 1;
    match client
        .create_practitioner(&sent, if_none_exist.as_deref())
        .await
    {
        Ok((id, body)) => {
            let body = settle(client, &id, body, &sent, outcome).await;
            outcome.remaining = drift(spec, &body, req.normalizer);
            outcome.fhir_id = Some(id);
            outcome.live = Some(body);
            outcome.resolution = Resolution::Found;
            outcome.write = WriteOutcome::Created;
        }
        Err(e @ FhirError::WriteDisabled { .. }) => outcome.write = WriteOutcome::Refused(e),
        Err(e) => outcome.write = WriteOutcome::Failed(e),
    }
}

/// Read-then-write: every PUT is built from a by-id read of the record (never from a search
/// copy), carries `If-Match` when a version is known, and on 412/409 the record is read again
/// and the write re-planned, up to [`MAX_WRITE_ATTEMPTS`] times.
async fn update(
    client: &FhirClient,
    spec: &EpicPractitionerSpec,
    norm: &Normalizer,
    mut observed: Observed,
    outcome: &mut SyncOutcome,
) {
    let mut last_conflict = None;
    for _ in 0..MAX_WRITE_ATTEMPTS {
        if !observed.by_id {
            observed = match read_verified(client, &observed.id, &spec.npi).await {
                Ok(o) => o,
                Err(e) => {
                    outcome.write = WriteOutcome::Failed(e);
                    return;
                }
            };
        }
        if is_subsetted(&observed.body) {
            outcome.write = WriteOutcome::Failed(FhirError::Refused(format!(
                "Practitioner/{} was read tagged SUBSETTED (not the whole resource); writing it back would erase fields",
                observed.id
            )));
            return;
        }
        // Re-plan on the fresh copy: someone may have fixed the drift meanwhile.
        if drift(spec, &observed.body, norm).is_empty() {
            outcome.action = Action::Nothing;
            outcome.remaining = empty_report();
            outcome.live = Some(observed.body);
            return;
        }
        let body = overlay(spec, &observed.body, norm);
        let if_match = version_precondition(observed.etag.as_deref(), &observed.body);
        outcome.if_match = if_match.clone();
        outcome.write_attempts += 1;
        match client
            .update_practitioner(&observed.id, &body, if_match.as_deref())
            .await
        {
            Ok(v) => {
                let written = settle(client, &observed.id, v.body, &body, outcome).await;
                outcome.remaining = drift(spec, &written, norm);
                outcome.live = Some(written);
                outcome.write = if outcome.action == Action::Deactivate {
                    WriteOutcome::Deactivated
                } else {
                    WriteOutcome::Updated
                };
                return;
            }
            Err(e @ FhirError::Conflict { .. }) => {
                tracing::info!(id = %observed.id, "version conflict on write; reading the record again");
                observed.by_id = false;
                last_conflict = Some(e);
            }
            Err(e @ FhirError::WriteDisabled { .. }) => {
                outcome.write = WriteOutcome::Refused(e);
                return;
            }
            Err(e) => {
                outcome.write = WriteOutcome::Failed(e);
                return;
            }
        }
    }
    if let Some(last) = last_conflict {
        outcome.write = WriteOutcome::Conflict {
            attempts: MAX_WRITE_ATTEMPTS,
            last,
        };
    }
}

/// The record as it stands after a successful write: the server's answer when it is the
/// resource, else a best-effort read, else what was sent (with a warning). Never fails.
async fn settle(
    client: &FhirClient,
    id: &str,
    answered: Value,
    sent: &Value,
    outcome: &mut SyncOutcome,
) -> Value {
    if answered.get("resourceType").and_then(Value::as_str) == Some("Practitioner") {
        return answered;
    }
    match client.read_practitioner(id).await {
        Ok(v) => v.body,
        Err(e) => {
            outcome.warnings.push(format!(
                "the write succeeded but the record could not be read back: {e}"
            ));
            let mut s = sent.clone();
            s["id"] = Value::String(id.to_string());
            s
        }
    }
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
