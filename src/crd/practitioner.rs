//! `EpicPractitioner`: one clinician identity record as declared in Git.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::annotations::{is_paused, pending_request};
use super::conditions::{Condition, conditions_schema};

/// Shown wherever deactivation is shown: Epic keeps login access in its own user records.
pub const DEACTIVATION_NOTE: &str = "active=false deactivates the FHIR Practitioner only: it does \
not revoke Epic login access or security classes, which live in Epic's internal user records \
(EMP/SER); revoke those through Epic's user administration.";

/// Desired state of one Epic Practitioner record, identified by its NPI.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "epic-operator.dev",
    version = "v1alpha1",
    kind = "EpicPractitioner",
    namespaced,
    shortname = "epr",
    status = "EpicPractitionerStatus",
    doc = "A clinician identity record in Epic (FHIR R4 Practitioner), identified by NPI and kept in the declared state.",
    category = "epic",
    printcolumn = r#"{"name":"NPI","type":"string","jsonPath":".spec.npi"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Epic matches the spec and the operator did what the policy asks"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","description":"The decisive reason (for example NotFound before WriteDisabled)"}"#,
    printcolumn = r#"{"name":"Active","type":"boolean","jsonPath":".spec.active","description":"active as declared"}"#,
    printcolumn = r#"{"name":"Live-Active","type":"boolean","jsonPath":".status.liveActive","description":"active as Epic holds it"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status","description":"The operator did what the policy asks (False: see the Synced reason)"}"#,
    printcolumn = r#"{"name":"Drift","type":"integer","jsonPath":".status.driftCount","description":"Owned fields that differ from Epic"}"#,
    printcolumn = r#"{"name":"FHIR-ID","type":"string","jsonPath":".status.fhirId","priority":1}"#,
    printcolumn = r#"{"name":"Connection","type":"string","jsonPath":".spec.connectionRef.name","priority":1}"#,
    printcolumn = r#"{"name":"Verified","type":"date","jsonPath":".status.lastVerifiedTime","priority":1,"description":"When the record was last read from Epic (coarse: at most once per resync interval)"}"#,
    printcolumn = r#"{"name":"Last-Change","type":"date","jsonPath":".status.conditions[?(@.type==\"Ready\")].lastTransitionTime","priority":1,"description":"When Ready last changed"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EpicPractitionerSpec {
    /// The EpicConnection (same namespace) that says which Epic instance holds this record.
    pub connection_ref: ConnectionRef,
    /// National Provider Identifier: 10 digits with a valid Luhn check digit. Immutable: it is
    /// how the record is found in Epic.
    #[schemars(regex(pattern = r"^[0-9]{10}$"))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "npi is immutable; create a new EpicPractitioner for another NPI"}]))]
    pub npi: String,
    /// Whether the Practitioner record is active. Absent: not managed. Note that false does not
    /// revoke Epic login access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// The name Epic shows for the clinician: compared with the record's official name or, when
    /// it has none, with its usual (else first) name; a write replaces that same entry and never
    /// adds a second one. Other names are left untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<PractitionerName>,
    /// Contact points, owned per declared key (system + use): live entries of a declared key are
    /// made equal to the declared values (compared after normalisation: phone numbers as E.164,
    /// e-mail domains case-insensitive); entries of undeclared keys stay. Absent: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telecom: Option<Vec<ContactPoint>>,
    /// Merge (default): only the declared keys of `telecom` are owned. Exclusive: the whole list
    /// is owned, and live entries not declared are removed.
    #[serde(default, skip_serializing_if = "ListPolicy::is_merge")]
    pub telecom_policy: ListPolicy,
    /// Administrative gender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<Gender>,
    /// Date of birth, YYYY, YYYY-MM or YYYY-MM-DD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?$"))]
    pub birth_date: Option<String>,
    /// Qualifications, matched by code system + code (or by text when only `display` is
    /// given); declared ones are added when missing, undeclared ones stay. Absent: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifications: Option<Vec<Qualification>>,
    /// Merge (default): undeclared qualifications stay. Exclusive: they are removed.
    #[serde(default, skip_serializing_if = "ListPolicy::is_merge")]
    pub qualification_policy: ListPolicy,
    /// Observe only reports drift; Update writes existing records; CreateOrUpdate also creates a
    /// record when the NPI is not found.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// What deleting this object does in Epic: Orphan leaves the record; Deactivate writes
    /// active=false first (holding a finalizer until it is written).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Reference to an EpicConnection in the same namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionRef {
    /// Name of the EpicConnection.
    pub name: String,
}

/// A person's official name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PractitionerName {
    /// Family name (surname). Required.
    pub family: String,
    /// Given names, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<String>,
    /// Prefixes such as Dr. Absent: the record's prefixes are kept; present (even empty): owned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<Vec<String>>,
    /// Suffixes such as MD or Jr. Absent: the record's suffixes are kept; present (even empty):
    /// owned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<Vec<String>>,
}

/// How much of a list field the spec owns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ListPolicy {
    /// Only the declared entries (by key) are owned; every other live entry stays.
    #[default]
    Merge,
    /// The whole list is owned: live entries that are not declared are removed.
    Exclusive,
}

impl ListPolicy {
    fn is_merge(&self) -> bool {
        *self == ListPolicy::Merge
    }
}

/// A FHIR ContactPoint.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct ContactPoint {
    /// Kind of contact: phone, fax, email, pager, url, sms or other.
    pub system: ContactSystem,
    /// The address or number.
    pub value: String,
    /// Purpose: home, work, temp, old or mobile. Absent: any use matches.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<ContactUse>,
}

/// FHIR ContactPoint.system.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ContactSystem {
    Phone,
    Fax,
    Email,
    Pager,
    Url,
    Sms,
    Other,
}

/// FHIR ContactPoint.use.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ContactUse {
    Home,
    Work,
    Temp,
    Old,
    Mobile,
}

/// FHIR administrative gender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Male,
    Female,
    Other,
    Unknown,
}

/// A qualification (credential), matched by code system + code, or by text when only
/// `display` is given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Qualification {
    /// Code system of `code`. Absent: any system matches, and a new entry is written with
    /// http://terminology.hl7.org/CodeSystem/v2-0360 (degree/license/certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The qualification code, for example MD or RN. Absent: matched by `display` text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Display text for the code (the qualification's text when there is no code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Issuing organisation, as display text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// How far the operator may go to make Epic match this object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ManagementPolicy {
    /// Never write; report drift only.
    Observe,
    /// Write existing records (found by NPI); never create.
    #[default]
    Update,
    /// Write existing records and create the record when the NPI is not found.
    CreateOrUpdate,
}

/// What deleting the object does to the Epic record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave the Epic record as it is.
    #[default]
    Orphan,
    /// Write active=false before the object goes (a finalizer holds it until then).
    Deactivate,
}

/// Observed state of the practitioner, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EpicPractitionerStatus {
    /// The metadata.generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Epic's opaque FHIR id of the record (valid only for `connection`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_id: Option<String>,
    /// `active` as the live record holds it (the `Live-Active` column); absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_active: Option<bool>,
    /// FHIR base URL that `fhirId` belongs to; ids never travel between instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[schemars(schema_with = "conditions_schema")]
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Owned fields whose live value differs from the desired one. Contact values show only
    /// their last four characters (e-mail addresses only their domain) and birth dates only
    /// the year; names, gender, active and qualifications are shown as they are.
    #[serde(default)]
    pub drift: Vec<DriftEntry>,
    /// Unified diff of desired versus live owned fields (bounded length), masked as drift is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// PractitionerRoles of the record in Epic.
    #[serde(default)]
    pub roles: Vec<RoleSummary>,
    /// When a sync last changed this status (RFC 3339). A sync that finds nothing new writes
    /// nothing, so this is the time of the last change seen, not of the last check; roster
    /// walks are counted in the `epic_operator_roster_walks_total` metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// When the record was last read from Epic and compared (RFC 3339). Coarse: written at
    /// most once per resync interval, so that confirming syncs stay free of status writes. In
    /// roster mode a walk that finds the record unchanged does not touch it; the connection's
    /// `status.walk` says when the last walk finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_time: Option<String>,
    /// The `epic-operator.dev/requested-at` annotation value last acted on: equal to the
    /// annotation once the requested re-read is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_requested_at: Option<String>,
    /// How many owned fields differ from Epic (`drift` has them; the `Drift` column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_count: Option<u32>,
    /// When the operator last wrote the record successfully (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_write_time: Option<String>,
    /// When a write was last refused by Epic; refused writes are retried no more often than the
    /// connection's resync interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refused_write_time: Option<String>,
    /// The last error met, if the last reconcile failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Fingerprint of the live owned fields when last read; the roster scan compares it to
    /// wake only records that changed in Epic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_fingerprint: Option<String>,
    /// Warnings Epic attached to the last NPI search (OperationOutcome entries in the Bundle).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Notes for people reading the status (for example what deactivation does not do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A create (POST) sent for this NPI whose outcome is not known (the answer was lost):
    /// written before every POST and cleared once the record is found or Epic answered. While
    /// it stands, no POST is sent again until absence is confirmed by an identifier search made
    /// once Epic has had the request timeout to apply it, or by a complete roster walk that
    /// started after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_attempt: Option<CreateAttempt>,
}

/// A POST whose outcome is not known yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateAttempt {
    /// The NPI the record was created for.
    pub npi: String,
    /// The FHIR base URL it was sent to.
    pub connection: String,
    /// When it was sent (RFC 3339).
    pub sent_at: String,
}

/// One owned field that differs between the spec and Epic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DriftEntry {
    /// FHIR path of the field, for example `active`, `name[use=usual]` or `telecom[phone/work]`.
    pub path: String,
    /// Desired value, as compact JSON (contact values: last four characters, or the e-mail
    /// domain; birth dates: the year).
    pub desired: String,
    /// Live value, as compact JSON, masked the same way.
    pub live: String,
}

/// A PractitionerRole summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleSummary {
    /// Organization display or reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Department or location display or reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Specialty display or code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialty: Option<String>,
    /// Role code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The last error, with what Epic said.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// Stable reason, the same as the Synced condition's.
    pub reason: String,
    /// Detail including Epic's diagnostics.
    pub message: String,
    /// HTTP status returned by Epic, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Epic OperationOutcome detail codes (for example 4118).
    #[serde(default)]
    pub epic_codes: Vec<String>,
}

impl EpicPractitionerStatus {
    /// Whether Epic refused a write for this record less than `window` ago.
    pub fn refused_within(&self, window: std::time::Duration) -> bool {
        refused_within(self.last_refused_write_time.as_deref(), window)
    }
}

/// Whether a write refused at `refused_at` (RFC 3339) was refused less than `window` ago; the
/// whole status and the watch cache's copy (`operator::slim`) both ask it.
pub fn refused_within(refused_at: Option<&str>, window: std::time::Duration) -> bool {
    refused_at
        .and_then(crate::util::age_of)
        .is_some_and(|age| age < window)
}

impl EpicPractitioner {
    /// True when the paused annotation is set to "true".
    pub fn is_paused(&self) -> bool {
        is_paused(&self.metadata)
    }

    /// The `requested-at` value not yet acted on, if any.
    pub fn pending_request(&self) -> Option<&str> {
        let handled = self.status.as_ref();
        pending_request(
            &self.metadata,
            handled.and_then(|s| s.last_handled_requested_at.as_deref()),
        )
    }
}
