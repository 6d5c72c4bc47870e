//! Observe: everything one pass needs to decide, gathered by I/O and returned as data. The
//! object and its previous status, the connection's facts, what the roster walks and the
//! object's memory know, and the sync with Epic (resolve, read, plan, and the write the
//! engine allows), or the error that stopped it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::attempt::{self, StatusAttempt};
use super::backoff::AWAIT_WALK_REQUEUE;
use crate::crd::{CreateAttempt, EpicPractitioner, EpicPractitionerStatus, Reason};
use crate::operator::connection::cache::{ConnectionHandle, Key};
use crate::operator::error::Error;
use crate::operator::roster::index::HandoverFor;
use crate::operator::roster::state::{Answer, Known, Question};
use crate::operator::slim::CachedPractitioner;
use crate::operator::{Context, DriftDetection};
use crate::pipeline::{Prefetched, SyncOutcome, SyncRequest, sync_practitioner};
use crate::reconcile::{Disclosure, Normalizer, validate_spec, write_policy};

/// What one pass saw.
pub struct Observation {
    /// The object as the API server holds it, or, for a pass that ended before reading it,
    /// the cache's stand-in (`CachedPractitioner::stand_in`), which is never written back.
    pub obj: Arc<EpicPractitioner>,
    pub prev: Prev,
    /// The object is being deleted and holds the finalizer.
    pub deleting: bool,
    pub mode: DriftDetection,
    pub found: Found,
    /// The connection the sync used, for the shell's effects on it (decide never reads it).
    pub conn: Option<Arc<ConnectionHandle>>,
}

/// What observing found.
pub enum Found {
    /// Paused by annotation: nothing read, nothing written.
    Paused,
    /// The connection's first walk has not finished: it resolves the object and wakes it;
    /// look again after this at the latest.
    Wait(Duration),
    /// Walks keep coming and none found anything new for this settled object: nothing to do
    /// until a walk wakes it or the safety sweep comes by.
    Covered,
    /// A sync ran.
    Synced(Box<SyncRun>),
    /// The pass stopped; `search_refused_on` names the connection and instance when the
    /// instance refused an identifier search while resolving (its practitioners then resolve
    /// from roster walks only).
    Failed {
        error: Error,
        search_refused_on: Option<(Key, String)>,
    },
}

/// A sync and the connection facts it ran under.
pub struct SyncRun {
    pub outcome: SyncOutcome,
    pub key: Key,
    /// The instance the record's id belongs to.
    pub base_url: String,
    pub resync: Duration,
    pub write_disabled_message: String,
    pub normalizer: Normalizer,
    /// The unanswered create attempt this process knows of, if any, and since when.
    pub known_attempt: Option<(Instant, CreateAttempt)>,
    /// When the sync ended: a POST whose answer was lost in it is dated from here.
    pub ended: Instant,
    /// How long until a search may prove absence despite that attempt (none: it may now).
    pub attempt_settles_in: Option<Duration>,
}

/// The status the object had before this pass, with its Synced reason read once.
#[derive(Clone, Debug, Default)]
pub struct Prev {
    pub status: EpicPractitionerStatus,
    pub synced: Option<Reason>,
    /// The whole status as the API server holds it; false for the watch cache's slim copy,
    /// which a pass may decide by but never writes back.
    pub complete: bool,
}

impl Prev {
    /// The whole status, as read from the API server (or built in a test).
    pub fn of(status: Option<&EpicPractitionerStatus>) -> Self {
        let status = status.cloned().unwrap_or_default();
        Prev {
            synced: status.synced_reason(),
            status,
            complete: true,
        }
    }

    /// The watch cache's slim copy (`operator::slim`).
    pub fn cached(status: Option<&EpicPractitionerStatus>) -> Self {
        Prev {
            complete: false,
            ..Prev::of(status)
        }
    }
}

/// Gathers the observation of one pass.
pub async fn observe(cached: &CachedPractitioner, ctx: &Context, deleting: bool) -> Observation {
    let stand_in = Arc::new(cached.stand_in());
    let slim = Prev::cached(stand_in.status.as_ref());
    let (found, conn, whole) = match gather(cached, ctx, &slim, deleting).await {
        Ok(seen) => seen,
        Err(error) => (
            Found::Failed {
                error,
                search_refused_on: None,
            },
            None,
            None,
        ),
    };
    // A pass that reports needs the whole object: the cache keeps only a slim copy. When it
    // cannot be read, a failed pass reports nothing (the slim copy is never written back).
    let (found, obj, prev) = match (found, whole) {
        (found @ (Found::Wait(_) | Found::Covered), _) => (found, stand_in, slim),
        (found, Some((obj, prev))) => (found, obj, prev),
        (found, None) => match read_whole(ctx, cached).await {
            // Decided on the cached copy, so reported only on the object that copy describes.
            Ok((obj, _)) if !cached.describes(&obj) => {
                (Found::Wait(CHANGED_SINCE_CACHED), stand_in, slim)
            }
            Ok((obj, prev)) => (found, obj, prev),
            Err(error) => match found {
                Found::Failed { .. } => (found, stand_in, slim),
                _ => (
                    Found::Failed {
                        error,
                        search_refused_on: None,
                    },
                    stand_in,
                    slim,
                ),
            },
        },
    };
    Observation {
        obj,
        prev,
        deleting,
        mode: ctx.mode,
        found,
        conn,
    }
}

/// The object and its whole status, as the API server holds them.
type Whole = (Arc<EpicPractitioner>, Prev);

/// Validate, dereference the connection, ask the object's memory and the walks, then sync.
async fn gather(
    obj: &CachedPractitioner,
    ctx: &Context,
    prev: &Prev,
    deleting: bool,
) -> Result<(Found, Option<Arc<ConnectionHandle>>, Option<Whole>), Error> {
    let old = &prev.status;
    // Validate: what the schema cannot express, checked as the object entered the cache. An
    // invalid one is read whole at once, so that the newest spec is the one judged.
    if obj.spec.invalid.is_some() {
        validate_spec(&read_whole(ctx, obj).await?.0.spec).map_err(Error::InvalidSpec)?;
    }
    let ns = obj.namespace().unwrap_or_default();
    let key: Key = (ns.clone(), obj.spec.connection_ref.name.clone());
    // Two objects for one record would both write (alternating PUTs, or two POSTs): neither
    // acts while both exist. Objects being deleted do not count, and are not held.
    let uid = obj.uid().unwrap_or_default();
    if !deleting && let Some(other) = ctx.members.other_with_npi(&key, &obj.spec.npi, &uid) {
        return Err(Error::DuplicateNpi {
            other: format!("EpicPractitioner {other}"),
        });
    }
    if obj.is_paused() {
        return Ok((Found::Paused, None, None));
    }
    // Dereference.
    let conn = ctx
        .connections
        .get(&ns, &obj.spec.connection_ref.name)
        .await?;
    if !deleting {
        declared_once_on_instance(ctx, &key, &conn, &obj.spec.npi, &uid).await?;
    }
    // Ids never travel between instances: a recorded id counts only for the same base URL.
    let known_id = old
        .fhir_id
        .as_deref()
        .filter(|_| old.connection.as_deref() == Some(conn.base_url()));
    // What this object's memory and the connection's walks know: each asked once.
    let about = HandoverFor {
        uid,
        npi: obj.spec.npi.to_string(),
        base_url: conn.base_url().to_string(),
    };
    let recalled = ctx.memory.recall(&ObjectRef::from_obj(obj), &about);
    let (known, search) = match ctx.mode {
        DriftDetection::PerObject => (Known::default(), true),
        DriftDetection::Roster => {
            let question = Question {
                npi: &obj.spec.npi,
                has_id: known_id.is_some(),
                settled: !deleting
                    && old.last_error.is_none()
                    && old.drift.is_empty()
                    && old.observed_generation == obj.metadata.generation
                    && prev.synced != Some(Reason::Paused),
                // "Check now" (the requested-at annotation): a fresh read, not the walk's copy.
                fresh: obj.pending_request().is_some(),
                search_listed: conn.capability.as_ref().is_none_or(|c| c.npi_search()),
                covered_within: walks_due_within(ctx, &key, &conn),
            };
            let base = conn.base_url();
            match ctx.rosters.answer(&key, base, &question, recalled.handover) {
                Answer::Use { known, search } => (known, search),
                Answer::Search(known) => (known, true),
                Answer::AwaitWalk => return Ok((Found::Wait(AWAIT_WALK_REQUEUE), None, None)),
                Answer::Covered => return Ok((Found::Covered, None, None)),
                Answer::Failed(e) => return Err(Error::Fhir(e)),
            }
        }
    };
    let before = Before {
        known_id,
        known,
        search,
        attempt: recalled.attempt,
    };
    sync_whole(obj, ctx, deleting, key, conn, before).await
}

/// How recent the last walk must be to count: two walk intervals (the resync interval, or
/// longer where a request budget stretches it) and a minute for the walk itself.
fn walks_due_within(ctx: &Context, key: &Key, conn: &ConnectionHandle) -> Duration {
    let every = ctx.walk_plans.planned_interval(key).unwrap_or_default();
    every.max(conn.resync).saturating_mul(2) + Duration::from_secs(60)
}

/// No other live object declares `npi` on the same Epic instance through another connection
/// (to the same base URL, in any namespace): both would write (alternating PUTs, or two
/// POSTs). One in another namespace is not named: its name is that tenant's.
async fn declared_once_on_instance(
    ctx: &Context,
    key: &Key,
    conn: &ConnectionHandle,
    npi: &str,
    uid: &str,
) -> Result<(), Error> {
    let others = ctx.connections.others_on_instance(key, conn).await;
    let other = others.iter().find_map(|k| {
        let name = ctx.members.other_with_npi(k, npi, uid)?;
        Some(if k.0 == key.0 {
            format!("EpicPractitioner {name} (through EpicConnection {})", k.1)
        } else {
            "an EpicPractitioner in another namespace".to_string()
        })
    });
    match other {
        Some(other) => Err(Error::DuplicateNpi { other }),
        None => Ok(()),
    }
}

/// The sync compares the desired record and writes status (a create attempt, then the
/// result): it runs on the object read whole, if that is still the one asked about.
async fn sync_whole(
    obj: &CachedPractitioner,
    ctx: &Context,
    deleting: bool,
    key: Key,
    conn: Arc<ConnectionHandle>,
    before: Before<'_>,
) -> Result<(Found, Option<Arc<ConnectionHandle>>, Option<Whole>), Error> {
    let (whole, full) = read_whole(ctx, obj).await?;
    validate_spec(&whole.spec).map_err(Error::InvalidSpec)?;
    if !obj.describes(&whole) {
        // Changed since the cache saw it: what was asked before was about the older object.
        // The watch brings the newer one, whose pass asks again.
        return Ok((Found::Wait(CHANGED_SINCE_CACHED), None, None));
    }
    let found = sync_with_epic(&whole, ctx, &full.status, deleting, key, &conn, before).await?;
    Ok((found, Some(conn), Some((whole, full))))
}

/// How soon a pass that found the object changed since the cache saw it looks again, should
/// the watch event of the change not start a pass first.
const CHANGED_SINCE_CACHED: Duration = Duration::from_secs(5);

/// The object as the API server holds it, with its whole status.
async fn read_whole(ctx: &Context, obj: &CachedPractitioner) -> Result<Whole, Error> {
    let api: kube::Api<EpicPractitioner> =
        kube::Api::namespaced(ctx.kube.clone(), &obj.namespace().unwrap_or_default());
    let live = api.get_status(&obj.name_any()).await?;
    let prev = Prev::of(live.status.as_ref());
    Ok((Arc::new(live), prev))
}

/// What is known before asking Epic: the record's id, what the walks know, whether the
/// instance searches by identifier, and the unanswered create attempt memory holds.
struct Before<'a> {
    known_id: Option<&'a str>,
    known: Known,
    search: bool,
    attempt: Option<(Instant, CreateAttempt)>,
}

/// The sync itself (`pipeline::sync_practitioner`), with the write policy, the create guard
/// and the recorder of create attempts this object's state allows.
async fn sync_with_epic(
    obj: &EpicPractitioner,
    ctx: &Context,
    old: &EpicPractitionerStatus,
    deleting: bool,
    key: Key,
    conn: &ConnectionHandle,
    before: Before<'_>,
) -> Result<Found, Error> {
    let Before {
        known_id: id,
        known,
        search,
        attempt,
    } = before;
    // A refused write is retried no more often than the resync interval. The whole status
    // holds the operator's own last write, so no other record of the refusal is needed.
    let policy = write_policy(
        conn.writes(),
        conn.spec.writes,
        old.refused_within(conn.resync),
        old.last_error.as_ref().map(|e| e.message.as_str()),
    );
    // The walk's page copy replaces the read by id (a write still reads first); a known id
    // whose NPI the walk found on several records holds as ambiguous.
    let known_id = id.filter(|_| {
        !matches!(
            known.prefetched,
            Some(Prefetched::Record { .. } | Prefetched::Ambiguous(_))
        )
    });
    let resolving = known_id.is_none() && known.prefetched.is_none();
    let normalizer = conn.normalizer();
    let (create_guard, known_attempt, attempt_settles_in) =
        attempt::create_guard(obj, old, attempt, conn, search, known.walk_started);
    let recorder = StatusAttempt::new(ctx, obj, old, conn.base_url());
    let synced = sync_practitioner(
        &conn.client,
        SyncRequest {
            spec: &obj.spec,
            known_id,
            writes: policy.writes,
            deleting,
            paused: false,
            perform_writes: true,
            // Roles are read when the record is (re)resolved; they change far less often than
            // the record. In roster mode they come from the PractitionerRole walk.
            fetch_roles: id.is_none(),
            normalizer: &normalizer,
            conditional_create: conn.conditional_create(),
            disclosure: Disclosure::Masked,
            prefetched: known.prefetched,
            known_roles: known.roles,
            create_guard,
            attempt_recorder: Some(&recorder),
        },
    )
    .await;
    let outcome = match synced {
        // The instance does not search by identifier after all: resolve from walks only.
        Err(e) if resolving && is_search_refusal(&e) => {
            return Ok(Found::Failed {
                error: Error::Fhir(e),
                search_refused_on: Some((key, conn.base_url().to_string())),
            });
        }
        other => other?,
    };
    Ok(Found::Synced(Box::new(SyncRun {
        outcome,
        key,
        base_url: conn.base_url().to_string(),
        resync: conn.resync,
        write_disabled_message: policy.held_message,
        normalizer,
        known_attempt,
        ended: Instant::now(),
        attempt_settles_in,
    })))
}

/// An identifier search the instance does not support: 400 (Epic code 4100 and kin).
fn is_search_refusal(e: &crate::fhir::FhirError) -> bool {
    matches!(e, crate::fhir::FhirError::Invalid { status: 400, .. })
}
