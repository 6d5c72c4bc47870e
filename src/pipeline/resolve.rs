//! Resolve: which record is the practitioner's. A saved id is read and must still carry the NPI;
//! a walk's page copy or index answer is taken as it is; otherwise (or when the id is gone or
//! merged) the NPI is searched. A SUBSETTED search copy is then read whole by id.

use super::{Observed, Prefetched, SyncRequest, would_create};
use crate::fhir::{FhirClient, FhirError, NpiLookup};
use crate::reconcile::identity::{carries_npi, is_subsetted, npi_values};
use crate::reconcile::{Absence, Resolution};

/// What resolving found.
pub(super) struct Resolved {
    pub(super) current: Option<Observed>,
    pub(super) resolution: Resolution,
    /// The NPI search ran (no id was known, or the known one was gone).
    pub(super) searched: bool,
    pub(super) ambiguous_ids: Vec<String>,
    pub(super) warnings: Vec<String>,
    /// Where a "not found" came from, when no search ran.
    pub(super) absence: Absence,
    /// A record known to carry the NPI (the saved id, or the walk's) that answered 404 or 410.
    pub(super) gone: Option<String>,
}

/// Reads a record by id and checks that it still carries the NPI: a saved or searched id is
/// never trusted to name the same clinician by itself.
pub(crate) async fn read_verified(
    client: &FhirClient,
    id: &str,
    npi: &str,
) -> Result<Observed, FhirError> {
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

/// Resolves the NPI: by the saved id, the walk's answer, or an identifier search.
pub(super) async fn resolve(
    client: &FhirClient,
    req: &SyncRequest<'_>,
) -> Result<Resolved, FhirError> {
    let spec = req.spec;
    // A recorded id costs one read; if it is gone or merged, the NPI is searched once.
    let mut current: Option<Observed> = None;
    let mut gone = None;
    if let Some(id) = req.known_id {
        match read_verified(client, id, &spec.npi).await {
            Ok(o) => current = Some(o),
            Err(e) if matches!(e, FhirError::NotFound { .. }) || e.is_gone_or_merged() => {
                tracing::info!(npi = %spec.npi, id, reason = %e.reason(), "saved id no longer answers; resolving the NPI again");
                gone = Some(id.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    let mut prefetched = req.prefetched.clone();
    // Set where the "not found" came from a walk; a search's answer is fresh.
    let mut absence = Absence::Searched;
    if matches!(prefetched, Some(Prefetched::NotFound)) {
        absence = Absence::Walked;
    }
    // The walk's id, or, when the saved one is gone, the record the walk found the NPI on
    // (read once: the saved id itself is not read again).
    if current.is_none()
        && let Some(Prefetched::Id(id)) = &prefetched
        && gone.as_deref() != Some(id.as_str())
    {
        match read_verified(client, id, &spec.npi).await {
            Ok(o) => current = Some(o),
            // Gone since the walk (merged or deleted in Epic): the record may live on under
            // another id, so only a fresh search may say NotFound (an instance without
            // identifier search fails there and waits for the next walk, never creating).
            Err(e) if matches!(e, FhirError::NotFound { .. }) || e.is_gone_or_merged() => {
                tracing::info!(npi = %spec.npi, id, reason = %e.reason(), "the indexed id no longer answers; searching the NPI");
                gone = Some(id.clone());
                prefetched = None;
            }
            Err(e) => return Err(e),
        }
    }
    let mut found = Resolved {
        current,
        resolution: Resolution::Found,
        searched: false,
        ambiguous_ids: Vec::new(),
        warnings: Vec::new(),
        absence,
        gone,
    };
    if found.current.is_none() {
        found.resolution = without_record(client, req, prefetched, &mut found).await?;
    }
    Ok(found)
}

/// No record read yet: the walk's answer where it is enough, else an identifier search.
async fn without_record(
    client: &FhirClient,
    req: &SyncRequest<'_>,
    prefetched: Option<Prefetched>,
    found: &mut Resolved,
) -> Result<Resolution, FhirError> {
    let npi = &req.spec.npi;
    Ok(match prefetched {
        Some(Prefetched::Record { id, body }) if carries_npi(&body, npi) => {
            found.current = Some(Observed {
                id,
                body,
                etag: None,
                by_id: false,
            });
            Resolution::Found
        }
        Some(Prefetched::Incomplete(why)) => {
            found
                .warnings
                .push(format!("roster walk incomplete: {why}"));
            Resolution::Incomplete
        }
        Some(Prefetched::Ambiguous(ids)) => {
            let n = ids.len();
            found.ambiguous_ids = ids;
            Resolution::Ambiguous(n)
        }
        // A walk's "not found" is checked by a search just before a POST where the
        // instance has one: the record may have been created since the walk read its page.
        Some(Prefetched::NotFound) if !(req.create_guard.search && would_create(req)) => {
            if !req.create_guard.walk_after_attempt {
                found.absence = Absence::Unconfirmed;
            }
            Resolution::NotFound
        }
        Some(Prefetched::Record { .. } | Prefetched::Id(_) | Prefetched::NotFound) | None => {
            found.searched = true;
            search(
                client,
                npi,
                would_create(req),
                &mut found.current,
                &mut found.ambiguous_ids,
                &mut found.warnings,
            )
            .await?
        }
    })
}

/// Resolves the NPI by identifier search.
async fn search(
    client: &FhirClient,
    npi: &str,
    before_create: bool,
    current: &mut Option<Observed>,
    ambiguous_ids: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<Resolution, FhirError> {
    let found = if before_create {
        client.search_npi_before_create(npi).await?
    } else {
        client.search_npi(npi).await?
    };
    *warnings = found.warnings;
    Ok(match found.lookup {
        NpiLookup::NotFound => Resolution::NotFound,
        NpiLookup::Found { id, record } => {
            *current = Some(Observed {
                id,
                body: record,
                etag: None,
                by_id: false,
            });
            Resolution::Found
        }
        NpiLookup::Ambiguous(ids) => {
            let n = ids.len();
            *ambiguous_ids = ids;
            Resolution::Ambiguous(n)
        }
        NpiLookup::Incomplete(why) => {
            warnings.push(format!("search incomplete: {why}"));
            Resolution::Incomplete
        }
    })
}

/// Observe: a SUBSETTED search copy lacks fields, so drift is computed on the whole record.
pub(super) async fn read_whole(
    client: &FhirClient,
    current: Option<Observed>,
    npi: &str,
) -> Result<Option<Observed>, FhirError> {
    match current {
        Some(o) if !o.by_id && is_subsetted(&o.body) => {
            Ok(Some(read_verified(client, &o.id, npi).await?))
        }
        other => Ok(other),
    }
}
