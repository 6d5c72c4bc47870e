//! The I/O steps both drivers share, for one practitioner: resolve -> observe -> (pure) drift
//! and plan -> act -> verify. The operator and the GitOps command line call exactly this, so
//! `plan` shows what the operator will do. [`connect`] turns an EpicConnection into a client;
//! the writes themselves (read-then-conditional-write) are in `write`.

mod connect;
mod resolve;
pub mod verdict;
mod write;

pub use connect::connect;
pub(crate) use resolve::read_verified;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::crd::{DeletionPolicy, EpicPractitionerSpec, ManagementPolicy, RoleSummary};
use crate::fhir::{FhirClient, FhirError};
use crate::reconcile::identity::version_precondition;
use crate::reconcile::{
    Absence, Action, Disclosure, DriftReport, Normalizer, PlanInput, Resolution, WriteCapability,
    drift_with, guard_create, plan, role_summary,
};

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
    /// How much of personal values `drift` shows (status and Events: masked).
    pub disclosure: Disclosure,
    /// What the connection's roster walk already knows about the NPI, used when no id is
    /// known or instead of reading it again (`None`: resolve by identifier search).
    pub prefetched: Option<Prefetched>,
    /// The practitioner's roles from the connection's PractitionerRole walk; when given, no
    /// role search is sent.
    pub known_roles: Option<Vec<RoleSummary>>,
    /// What a POST needs first.
    pub create_guard: CreateGuard,
    /// Records, durably, that a POST is about to be sent (the operator: in status); the POST
    /// is not sent when that fails. `None`: nothing to record (the command line).
    pub attempt_recorder: Option<&'a dyn AttemptRecorder>,
}

/// What may prove a record absent before a POST (see [`Absence`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateGuard {
    /// The instance searches by identifier: a walk's "not found" is checked by a search made
    /// just before the POST.
    pub search: bool,
    /// The walk whose "not found" is prefetched started after every earlier create attempt for
    /// this NPI whose answer was lost (true when there is none).
    pub walk_after_attempt: bool,
    /// Every earlier create attempt for this NPI whose answer was lost ended longer ago than
    /// Epic may still take to apply it (true when there is none). A search that finds nothing
    /// sooner is no proof: a POST the client stopped waiting for may still land after it.
    pub search_after_attempt: bool,
}

impl CreateGuard {
    /// No walks and no earlier attempts: every "not found" comes from a fresh search.
    pub const SEARCH: CreateGuard = CreateGuard {
        search: true,
        walk_after_attempt: true,
        search_after_attempt: true,
    };
}

/// Records a create attempt before its POST is sent.
pub trait AttemptRecorder: Send + Sync {
    /// Durably notes that a POST for the NPI is about to be sent; an error says why it could
    /// not be noted (the POST is then not sent).
    fn record(&self) -> BoxFuture<'_, Result<(), String>>;
}

impl std::fmt::Debug for dyn AttemptRecorder + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttemptRecorder")
    }
}

/// What became of a create attempt in one pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptState {
    /// No POST was sent.
    NotSent,
    /// Epic answered the POST (created, or refused it): nothing is left unknown.
    Answered,
    /// The POST was sent and no answer came (reset, timeout, 5xx): it may have been applied.
    Unknown,
}

/// What a roster walk (or its index) says about one NPI, so the sync needs no search.
#[derive(Clone, Debug, PartialEq)]
pub enum Prefetched {
    /// The walk's copy of the record (a page copy: drift is computed on it, a write still
    /// reads the record by id first).
    Record { id: String, body: Value },
    /// The index names one record: it is read by id.
    Id(String),
    /// Several records carry the NPI.
    Ambiguous(Vec<String>),
    /// No record carried the NPI in the last complete walk.
    NotFound,
    /// The NPI was not seen, but the walk was incomplete (Epic hid records): nothing may be
    /// concluded, and nothing is created. Holds Epic's explanation.
    Incomplete(String),
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
    /// The create attempt could not be recorded first, so no POST was sent.
    NotSent(String),
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
    /// The id of a record that carried the NPI and no longer answers, when none was found in
    /// its place: none is created there (`HoldReason::RecordGone`), and status keeps the id.
    pub gone_id: Option<String>,
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
    /// `roles` were listed (by the walk or a search) in this sync: status takes them as they are.
    pub roles_known: bool,
    /// Whether a POST was sent and what became of it.
    pub create_attempt: AttemptState,
}

/// A record as read, with the version it was read at.
#[derive(Clone, Debug)]
pub(crate) struct Observed {
    pub(crate) id: String,
    pub(crate) body: Value,
    pub(crate) etag: Option<String>,
    /// Read by id (a whole record at a known version), not copied from a search Bundle.
    pub(crate) by_id: bool,
}

pub(crate) fn empty_report() -> DriftReport {
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
    let found = resolve::resolve(client, &req).await?;
    let current = resolve::read_whole(client, found.current, &req.spec.npi).await?;
    let report = current.as_ref().map_or_else(empty_report, |o| {
        drift_with(req.spec, &o.body, req.normalizer, req.disclosure)
    });
    let absence = match (found.searched, req.create_guard.search_after_attempt) {
        // It was there a moment ago, whatever a search says now.
        _ if found.gone.is_some() => Absence::RecordGone,
        (true, true) => Absence::Searched,
        (true, false) => Absence::Unconfirmed,
        (false, _) => found.absence,
    };
    let action = decide(&req, current.as_ref(), found.resolution, &report, absence);
    // The status keeps the id of a record gone with none in its place, whatever held this
    // pass (a refused write, a policy that does not create, an incomplete search), so that
    // the next pass reads it again instead of taking a search's "not found" as proof.
    let gone_id = found.gone.filter(|_| current.is_none());
    let mut outcome = SyncOutcome {
        gone_id,
        resolution: found.resolution,
        fhir_id: current.as_ref().map(|o| o.id.clone()),
        searched: found.searched,
        ambiguous_ids: found.ambiguous_ids,
        warnings: found.warnings,
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
        roles_known: false,
        create_attempt: AttemptState::NotSent,
    };
    if req.perform_writes && action.writes() {
        act(client, &req, action, current, &mut outcome).await;
    }
    attach_roles(client, req.known_roles, req.fetch_roles, &mut outcome).await?;
    Ok(outcome)
}

/// Plan, pure: the action for what was found, a create standing only on the evidence of
/// absence there is.
fn decide(
    req: &SyncRequest<'_>,
    current: Option<&Observed>,
    resolution: Resolution,
    report: &DriftReport,
    absence: Absence,
) -> Action {
    let spec = req.spec;
    guard_create(
        plan(PlanInput {
            management: spec.management_policy,
            deletion: spec.deletion_policy,
            deleting: req.deleting,
            paused: req.paused,
            writes: req.writes,
            resolution,
            drifted: !report.is_empty(),
            live_active: current.and_then(|o| o.body.get("active").and_then(Value::as_bool)),
        }),
        absence,
    )
}

/// Act: the planned write, its result recorded in `outcome`.
async fn act(
    client: &FhirClient,
    req: &SyncRequest<'_>,
    action: Action,
    current: Option<Observed>,
    outcome: &mut SyncOutcome,
) {
    let spec = req.spec;
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
    match (action, current) {
        (Action::Create, None) => write::create(client, req, outcome).await,
        (Action::Update | Action::Deactivate, Some(observed)) => {
            write::update(client, effective_spec, req.normalizer, observed, outcome).await
        }
        _ => {
            outcome.write = WriteOutcome::Failed(FhirError::Malformed(
                "internal: planned write without a record".into(),
            ))
        }
    }
}

/// The practitioner's roles: the walk's, or listed by a search when asked.
async fn attach_roles(
    client: &FhirClient,
    known_roles: Option<Vec<RoleSummary>>,
    fetch_roles: bool,
    outcome: &mut SyncOutcome,
) -> Result<(), FhirError> {
    if let Some(roles) = known_roles {
        outcome.roles = roles;
        outcome.roles_known = true;
    } else if fetch_roles && let Some(id) = &outcome.fhir_id {
        match client.practitioner_roles(id).await {
            Ok(roles) => {
                outcome.roles = roles.iter().map(role_summary).collect();
                outcome.roles_known = true;
            }
            // After a write, a failed read must not erase what was done.
            Err(e) if outcome.wrote() => outcome
                .warnings
                .push(format!("PractitionerRoles not read after the write: {e}")),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a record found absent would be created: the policy creates and nothing holds it.
pub(super) fn would_create(req: &SyncRequest<'_>) -> bool {
    req.spec.management_policy == ManagementPolicy::CreateOrUpdate
        && !req.deleting
        && !req.paused
        && req.writes != WriteCapability::Disabled
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

/// Whether a deleting object may drop its finalizer given what happened.
pub fn deletion_done(spec: &EpicPractitionerSpec, outcome: &SyncOutcome) -> bool {
    spec.deletion_policy == DeletionPolicy::Orphan
        || spec.management_policy == ManagementPolicy::Observe
        || matches!(outcome.action, Action::Nothing)
        || matches!(outcome.write, WriteOutcome::Deactivated) && outcome.remaining.is_empty()
}
