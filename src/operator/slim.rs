//! What the watch cache keeps of a practitioner: its own type, `CachedPractitioner`, holding
//! what a walk, a metric, the trigger filter, the members index or the decision to skip a
//! pass reads (metadata, connection, NPI, deletion policy, identity, fingerprint, the Synced
//! reason, drift paths, roles, the create attempt), and none of the desired record (names,
//! contacts, qualifications) or the text a status carries for people. The watch decodes each
//! object whole and keeps this (`#[serde(from)]`); a pass that syncs or reports reads the
//! whole object from the API server first (`practitioner::observe`), so nothing dropped here
//! is ever compared with Epic or written back.
//!
//! Why a type of its own: kube-runtime's store holds one `Arc` per object for as long as the
//! object lives, and `EpicPractitioner` is 1,104 bytes before any string (BENCHMARKS.md, "The
//! heap at 0f53904"). This one fits jemalloc's 640-byte size class (a test holds it there).

use kube::api::ObjectMeta;
use kube::runtime::reflector::ObjectRef;

use crate::crd;
use crate::crd::{
    Condition, ConditionStatus, ConnectionRef, CreateAttempt, DeletionPolicy, DriftEntry,
    EpicPractitioner, EpicPractitionerSpec, EpicPractitionerStatus, LastError, ListPolicy,
    ManagementPolicy, PAUSED_ANNOTATION, REQUESTED_AT_ANNOTATION, Reason, RoleSummary, SYNCED,
};
use crate::reconcile::validate_spec;

/// The annotation client-side apply keeps a full copy of the manifest in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A practitioner as the watch cache holds it.
#[derive(Clone, Debug, serde::Deserialize, kube::Resource)]
#[resource(inherit = EpicPractitioner)]
#[serde(from = "EpicPractitioner")]
pub struct CachedPractitioner {
    pub metadata: ObjectMeta,
    pub spec: CachedSpec,
    pub status: Option<CachedStatus>,
}

/// A reference to a practitioner, as the controller's queue, the memory and the members index
/// name it.
pub type PractitionerRef = ObjectRef<CachedPractitioner>;

/// A practitioner's reference and uid, whole or cached, as the memory keys it.
pub fn identity(obj: &impl kube::Resource) -> (PractitionerRef, String) {
    let meta = obj.meta();
    let name = ObjectRef::new(meta.name.as_deref().unwrap_or_default());
    let reference = match &meta.namespace {
        Some(ns) => name.within(ns),
        None => name,
    };
    (reference, meta.uid.clone().unwrap_or_default())
}

/// What the cache keeps of the spec.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedSpec {
    pub connection_ref: ConnectionRef,
    pub npi: Box<str>,
    pub deletion_policy: DeletionPolicy,
    /// Why the whole spec is invalid (`validate_spec`, checked as it entered the cache): such
    /// an object is read whole at once, to report it, instead of waiting for a walk.
    pub invalid: Option<Box<str>>,
}

/// What the cache keeps of the status (the same names as `EpicPractitionerStatus`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CachedStatus {
    pub observed_generation: Option<i64>,
    pub fhir_id: Option<Box<str>>,
    pub connection: Option<Box<str>>,
    pub live_fingerprint: Option<Box<str>>,
    pub live_active: Option<bool>,
    /// The Synced condition: its reason and status (messages and times are for people).
    pub synced: Option<(Reason, ConditionStatus)>,
    /// The paths of the drift entries (their values are for people).
    pub drift: Vec<Box<str>>,
    pub roles: Vec<RoleSummary>,
    pub last_handled_requested_at: Option<Box<str>>,
    pub last_refused_write_time: Option<Box<str>>,
    /// Rare, so boxed; its message is dropped.
    pub last_error: Option<Box<LastError>>,
    pub create_attempt: Option<Box<CreateAttempt>>,
}

fn boxed(s: Option<String>) -> Option<Box<str>> {
    s.map(String::into_boxed_str)
}

impl From<EpicPractitioner> for CachedPractitioner {
    fn from(p: EpicPractitioner) -> Self {
        let EpicPractitioner {
            mut metadata,
            spec,
            status,
        } = p;
        metadata.managed_fields = None;
        // kubectl's and Argo CD's copy of the last applied manifest, and labels: never read
        // here (metadata is only ever written as an explicit finalizer list).
        if let Some(a) = metadata.annotations.as_mut() {
            a.remove(LAST_APPLIED);
        }
        metadata.labels = None;
        CachedPractitioner {
            metadata,
            spec: CachedSpec::from(spec),
            status: status.map(CachedStatus::from),
        }
    }
}

impl From<EpicPractitionerSpec> for CachedSpec {
    fn from(spec: EpicPractitionerSpec) -> Self {
        CachedSpec {
            invalid: validate_spec(&spec).err().map(String::into_boxed_str),
            connection_ref: spec.connection_ref,
            npi: spec.npi.into_boxed_str(),
            deletion_policy: spec.deletion_policy,
        }
    }
}

impl From<EpicPractitionerStatus> for CachedStatus {
    fn from(s: EpicPractitionerStatus) -> Self {
        let synced = s
            .conditions
            .iter()
            .find(|c| c.type_ == SYNCED)
            .map(|c| (c.reason(), c.status));
        CachedStatus {
            observed_generation: s.observed_generation,
            fhir_id: boxed(s.fhir_id),
            connection: boxed(s.connection),
            live_fingerprint: boxed(s.live_fingerprint),
            live_active: s.live_active,
            synced,
            drift: s.drift.into_iter().map(|d| d.path.into()).collect(),
            roles: s.roles,
            last_handled_requested_at: boxed(s.last_handled_requested_at),
            last_refused_write_time: boxed(s.last_refused_write_time),
            last_error: s.last_error.map(|e| {
                Box::new(LastError {
                    message: String::new(),
                    ..e
                })
            }),
            create_attempt: s.create_attempt.map(Box::new),
        }
    }
}

impl CachedStatus {
    /// The reason of the Synced condition.
    pub fn synced_reason(&self) -> Option<Reason> {
        self.synced.as_ref().map(|(r, _)| *r)
    }

    /// Whether Epic refused a write for this record less than `window` ago.
    pub fn refused_within(&self, window: std::time::Duration) -> bool {
        crd::refused_within(self.last_refused_write_time.as_deref(), window)
    }

    /// The status as far as the cache knows it: what a pass decides by before it reads the
    /// whole status, and never writes back.
    pub fn to_status(&self) -> EpicPractitionerStatus {
        let own = |s: &Option<Box<str>>| s.as_deref().map(str::to_string);
        EpicPractitionerStatus {
            observed_generation: self.observed_generation,
            fhir_id: own(&self.fhir_id),
            connection: own(&self.connection),
            live_fingerprint: own(&self.live_fingerprint),
            live_active: self.live_active,
            conditions: self
                .synced
                .iter()
                .map(|(reason, status)| Condition {
                    type_: SYNCED.to_string(),
                    status: *status,
                    reason: reason.as_str().to_string(),
                    message: String::new(),
                    last_transition_time: String::new(),
                    observed_generation: self.observed_generation,
                })
                .collect(),
            drift: self
                .drift
                .iter()
                .map(|path| DriftEntry {
                    path: path.to_string(),
                    desired: String::new(),
                    live: String::new(),
                })
                .collect(),
            roles: self.roles.clone(),
            last_handled_requested_at: own(&self.last_handled_requested_at),
            last_refused_write_time: own(&self.last_refused_write_time),
            last_error: self.last_error.as_deref().cloned(),
            create_attempt: self.create_attempt.as_deref().cloned(),
            ..EpicPractitionerStatus::default()
        }
    }
}

impl CachedPractitioner {
    /// True when the paused annotation is set to "true".
    pub fn is_paused(&self) -> bool {
        crd::is_paused(&self.metadata)
    }

    /// The `requested-at` value not yet acted on, if any.
    pub fn pending_request(&self) -> Option<&str> {
        let handled = self.status.as_ref();
        crd::pending_request(
            &self.metadata,
            handled.and_then(|s| s.last_handled_requested_at.as_deref()),
        )
    }

    /// Whether `whole` (the object as read from the API server) is the one this copy was taken
    /// from, for all a pass asks before reading it: the same object (uid: not one deleted and
    /// made again under the name), generation, NPI and connection, and the same pause and
    /// check-now annotations.
    pub fn describes(&self, whole: &EpicPractitioner) -> bool {
        let theirs = |key| {
            whole
                .metadata
                .annotations
                .as_ref()?
                .get(key)
                .map(String::as_str)
        };
        let same = |key| theirs(key) == self.annotation(key);
        whole.metadata.uid == self.metadata.uid
            && whole.metadata.generation == self.metadata.generation
            && *whole.spec.npi == *self.spec.npi
            && whole.spec.connection_ref == self.spec.connection_ref
            && same(PAUSED_ANNOTATION)
            && same(REQUESTED_AT_ANNOTATION)
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// A stand-in `EpicPractitioner` for a pass that ends before it reads the object whole
    /// (waiting for a walk, covered by one, or failing before the read): the metadata, the
    /// connection, the NPI and the deletion policy, and the status as the cache knows it. Its
    /// spec holds nothing else, so it is never synced, compared or written.
    pub fn stand_in(&self) -> EpicPractitioner {
        let spec = EpicPractitionerSpec {
            connection_ref: self.spec.connection_ref.clone(),
            npi: self.spec.npi.to_string(),
            deletion_policy: self.spec.deletion_policy,
            active: None,
            name: None,
            telecom: None,
            telecom_policy: ListPolicy::default(),
            gender: None,
            birth_date: None,
            qualifications: None,
            qualification_policy: ListPolicy::default(),
            management_policy: ManagementPolicy::default(),
        };
        EpicPractitioner {
            metadata: self.metadata.clone(),
            spec,
            status: self.status.as_ref().map(CachedStatus::to_status),
        }
    }
}

#[cfg(test)]
#[path = "slim_tests.rs"]
mod tests;
