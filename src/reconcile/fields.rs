//! The owned fields of a Practitioner: how each is projected, compared and overlaid.
//!
//! Ownership rule: a spec field that is absent is not managed; a present one is owned and the
//! live value is made equal to it. List fields are owned per declared key (see `contacts` and
//! `qualifications`), the name follows the entry Epic shows (see `names`), and identifiers are
//! never owned: the NPI is the key that found the record, so no write changes, reorders or
//! removes an identifier entry (the NPI identifier is added only on create). Only owned fields
//! are touched, and only when they differ, so every field the operator does not understand
//! (extensions, meta, photo, address, Epic identifiers, periods, other names) survives a PUT.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::disclosure::{Disclosure, disclose};
use super::normalize::Normalizer;
use super::{contacts, identity, names, qualifications};
use crate::crd::{DriftEntry, EpicPractitionerSpec, NPI_SYSTEM, validate_npi};
use crate::util::truncate_with_note;

/// Largest unified diff kept (status objects must stay small).
pub const MAX_DIFF_BYTES: usize = 4096;

/// What differs between the spec and a live record.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReport {
    /// One entry per owned field that differs.
    pub entries: Vec<DriftEntry>,
    /// Unified diff of the desired and live projections (empty when in sync), bounded.
    pub diff: String,
}

impl DriftReport {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Active,
    Name,
    Telecom,
    Gender,
    BirthDate,
    Qualification,
}

const OWNABLE: [Field; 6] = [
    Field::Active,
    Field::Name,
    Field::Telecom,
    Field::Gender,
    Field::BirthDate,
    Field::Qualification,
];

impl Field {
    fn path(self, live: Option<&Value>) -> String {
        match self {
            Field::Active => "active".into(),
            Field::Name => live.map_or("name".into(), names::path),
            Field::Telecom => "telecom".into(),
            Field::Gender => "gender".into(),
            Field::BirthDate => "birthDate".into(),
            Field::Qualification => "qualification".into(),
        }
    }

    /// The desired value as shown in drift output, or None when the spec does not own it.
    fn desired(self, spec: &EpicPractitionerSpec) -> Option<Value> {
        match self {
            Field::Active => spec.active.map(Value::Bool),
            Field::Name => spec.name.as_ref().map(names::desired),
            Field::Telecom => spec.telecom.as_deref().map(contacts::desired_projection),
            Field::Gender => spec.gender.and_then(|g| serde_json::to_value(g).ok()),
            Field::BirthDate => spec.birth_date.clone().map(Value::String),
            Field::Qualification => spec
                .qualifications
                .as_deref()
                .map(qualifications::desired_projection),
        }
    }

    /// The live value of the part of this field the spec is about, as shown in drift output.
    fn live(self, spec: &EpicPractitionerSpec, live: &Value) -> Value {
        match self {
            Field::Name => names::live(live, spec.name.as_ref()),
            Field::Telecom => contacts::live_projection(
                spec.telecom.as_deref().unwrap_or(&[]),
                spec.telecom_policy,
                live,
            ),
            Field::Qualification => qualifications::live_projection(live),
            Field::Active => live.get("active").cloned().unwrap_or(Value::Null),
            Field::Gender => live.get("gender").cloned().unwrap_or(Value::Null),
            Field::BirthDate => live.get("birthDate").cloned().unwrap_or(Value::Null),
        }
    }

    /// Whether the live record already satisfies the spec for this field (true when unowned).
    fn in_sync(self, spec: &EpicPractitionerSpec, live: &Value, norm: &Normalizer) -> bool {
        match self {
            Field::Telecom => spec
                .telecom
                .as_deref()
                .is_none_or(|d| contacts::in_sync(d, spec.telecom_policy, live, norm)),
            Field::Qualification => spec
                .qualifications
                .as_deref()
                .is_none_or(|d| qualifications::in_sync(d, spec.qualification_policy, live)),
            _ => self
                .desired(spec)
                .is_none_or(|d| d == self.live(spec, live)),
        }
    }

    /// Makes the live record's field satisfy the spec, touching nothing else.
    fn apply(self, spec: &EpicPractitionerSpec, live: &mut Map<String, Value>, norm: &Normalizer) {
        match self {
            Field::Active => {
                if let Some(a) = spec.active {
                    live.insert("active".into(), Value::Bool(a));
                }
            }
            Field::Name => {
                if let Some(n) = &spec.name {
                    names::apply(n, live);
                }
            }
            Field::Telecom => {
                if let Some(d) = &spec.telecom {
                    contacts::apply(d, spec.telecom_policy, live, norm);
                }
            }
            Field::Gender => {
                if let Some(v) = self.desired(spec) {
                    live.insert("gender".into(), v);
                }
            }
            Field::BirthDate => {
                if let Some(b) = &spec.birth_date {
                    live.insert("birthDate".into(), Value::String(b.clone()));
                }
            }
            Field::Qualification => {
                if let Some(d) = &spec.qualifications {
                    qualifications::apply(d, spec.qualification_policy, live);
                }
            }
        }
    }
}

/// What the schema cannot say about a spec: the NPI check digit and qualifications that could
/// never match anything.
pub fn validate_spec(spec: &EpicPractitionerSpec) -> Result<(), String> {
    validate_npi(&spec.npi).map_err(|e| e.to_string())?;
    if let Some(q) = &spec.qualifications {
        qualifications::validate(q)?;
    }
    Ok(())
}

/// Field-level drift and a bounded unified diff between the spec and a live record, with
/// personal values masked (what status, Events and the default CLI output show).
pub fn drift(spec: &EpicPractitionerSpec, live: &Value, norm: &Normalizer) -> DriftReport {
    drift_with(spec, live, norm, Disclosure::Masked)
}

/// [`drift`], showing personal values as `disclosure` allows.
pub fn drift_with(
    spec: &EpicPractitionerSpec,
    live: &Value,
    norm: &Normalizer,
    disclosure: Disclosure,
) -> DriftReport {
    let entries: Vec<DriftEntry> = OWNABLE
        .iter()
        .filter_map(|&f| {
            let desired = f.desired(spec)?;
            if f.in_sync(spec, live, norm) {
                return None;
            }
            let key = f.path(None);
            Some(DriftEntry {
                path: f.path(Some(live)),
                desired: disclose(&key, desired, disclosure).to_string(),
                live: disclose(&key, f.live(spec, live), disclosure).to_string(),
            })
        })
        .collect();
    let diff = if entries.is_empty() {
        String::new()
    } else {
        let desired = pretty(&projection_json(spec, None, disclosure));
        let live_side = pretty(&projection_json(spec, Some(live), disclosure));
        let text = similar::TextDiff::from_lines(&live_side, &desired)
            .unified_diff()
            .context_radius(2)
            .header("live", "desired")
            .to_string();
        truncate_with_note(&text, MAX_DIFF_BYTES)
    };
    DriftReport { entries, diff }
}

/// The owned fields as one JSON object: desired ones from the spec, or (given a live record)
/// the live values of the same fields. Used for diffs and `plan` output.
pub fn projection_json(
    spec: &EpicPractitionerSpec,
    live: Option<&Value>,
    disclosure: Disclosure,
) -> Value {
    let mut out = Map::new();
    for f in OWNABLE {
        if let Some(desired) = f.desired(spec) {
            let v = match live {
                Some(l) => f.live(spec, l),
                None => desired,
            };
            let key = f.path(None);
            let v = disclose(&key, v, disclosure);
            out.insert(key, v);
        }
    }
    Value::Object(out)
}

/// The full-PUT body: the live resource with only the drifted owned fields replaced.
pub fn overlay(spec: &EpicPractitionerSpec, live: &Value, norm: &Normalizer) -> Value {
    let mut body = match live {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for f in OWNABLE {
        if f.desired(spec).is_some() && !f.in_sync(spec, live, norm) {
            f.apply(spec, &mut body, norm);
        }
    }
    Value::Object(body)
}

/// A new Practitioner built from the spec alone (CreateOrUpdate when the NPI is not found): the
/// only place the NPI identifier is ever written.
pub fn new_resource(spec: &EpicPractitionerSpec, norm: &Normalizer) -> Value {
    overlay(
        spec,
        &json!({
            "resourceType": "Practitioner",
            "identifier": [{"use": "official", "system": NPI_SYSTEM, "value": spec.npi}],
        }),
        norm,
    )
}

/// A short fingerprint of every ownable field of a live record (and its NPIs), whatever the
/// spec owns, in normalised form: the roster scan compares it with the one in status to find
/// records that changed in Epic, and reformatting a phone number is not a change.
pub fn fingerprint(live: &Value, norm: &Normalizer) -> String {
    let canonical = json!([
        identity::npi_values(live),
        live.get("active"),
        live.get("name"),
        contacts::canonical(live, norm),
        live.get("gender"),
        live.get("birthDate"),
        qualifications::live_projection(live),
    ]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}
