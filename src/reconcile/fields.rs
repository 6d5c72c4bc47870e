//! The owned fields of a Practitioner: how each is projected, compared and overlaid.
//!
//! Ownership rule: a spec field that is absent is not managed; a present one is owned and the
//! live value is made equal to it. Only owned fields are ever touched, and only when they
//! differ, so a record already in the desired state is written back byte for byte unchanged,
//! and every field the operator does not understand (extensions, meta, photo, address, Epic
//! identifiers, other names) survives a full PUT.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::crd::{ContactPoint, DriftEntry, EpicPractitionerSpec, NPI_SYSTEM, Qualification};
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
    Npi,
    Active,
    Name,
    Telecom,
    Gender,
    BirthDate,
    Qualification,
}

const ALL_FIELDS: [Field; 7] = [
    Field::Npi,
    Field::Active,
    Field::Name,
    Field::Telecom,
    Field::Gender,
    Field::BirthDate,
    Field::Qualification,
];

impl Field {
    fn path(self) -> &'static str {
        match self {
            Field::Npi => "identifier[system=us-npi]",
            Field::Active => "active",
            Field::Name => "name[use=official]",
            Field::Telecom => "telecom",
            Field::Gender => "gender",
            Field::BirthDate => "birthDate",
            Field::Qualification => "qualification",
        }
    }

    /// The desired canonical value, or None when the spec does not own this field.
    fn desired(self, spec: &EpicPractitionerSpec) -> Option<Value> {
        match self {
            Field::Npi => Some(json!([spec.npi])),
            Field::Active => spec.active.map(Value::Bool),
            Field::Name => spec.name.as_ref().map(|n| {
                json!({"family": n.family, "given": n.given, "prefix": n.prefix, "suffix": n.suffix})
            }),
            Field::Telecom => spec.telecom.as_ref().map(|t| {
                let mut items: Vec<Value> = t.iter().map(contact_json).collect();
                sort_values(&mut items);
                Value::Array(items)
            }),
            Field::Gender => spec.gender.map(|g| serde_json::to_value(g).unwrap_or(Value::Null)),
            Field::BirthDate => spec.birth_date.clone().map(Value::String),
            Field::Qualification => spec.qualifications.as_ref().map(|q| json!(desired_codes(q))),
        }
    }

    /// The live canonical value of this field.
    fn live(self, live: &Value) -> Value {
        match self {
            Field::Npi => Value::Array(
                array(live, "identifier")
                    .iter()
                    .filter(|i| is_npi_identifier(i))
                    .map(|i| i.get("value").cloned().unwrap_or(Value::Null))
                    .collect(),
            ),
            Field::Active => live.get("active").cloned().unwrap_or(Value::Null),
            Field::Name => official_name_index(live)
                .map(|i| {
                    let n = &array(live, "name")[i];
                    json!({
                        "family": n.get("family").cloned().unwrap_or(Value::Null),
                        "given": n.get("given").cloned().unwrap_or(json!([])),
                        "prefix": n.get("prefix").cloned().unwrap_or(json!([])),
                        "suffix": n.get("suffix").cloned().unwrap_or(json!([])),
                    })
                })
                .unwrap_or(Value::Null),
            Field::Telecom => {
                let mut items: Vec<Value> = array(live, "telecom")
                    .iter()
                    .map(live_contact_json)
                    .collect();
                sort_values(&mut items);
                Value::Array(items)
            }
            Field::Gender => live.get("gender").cloned().unwrap_or(Value::Null),
            Field::BirthDate => live.get("birthDate").cloned().unwrap_or(Value::Null),
            Field::Qualification => {
                let mut codes: Vec<String> = array(live, "qualification")
                    .iter()
                    .filter_map(qualification_code)
                    .collect();
                codes.sort();
                json!(codes)
            }
        }
    }

    /// Whether the live record already satisfies the spec for this (owned) field.
    fn in_sync(self, spec: &EpicPractitionerSpec, live: &Value) -> bool {
        match self {
            // Desired `use` may be absent, meaning any use matches, so telecom is compared by
            // matching entries rather than by canonical equality.
            Field::Telecom => match &spec.telecom {
                None => true,
                Some(desired) => {
                    let live_items = array(live, "telecom");
                    let (unmatched_desired, kept) = match_contacts(desired, live_items);
                    unmatched_desired.is_empty() && kept.len() == live_items.len()
                }
            },
            _ => match self.desired(spec) {
                None => true,
                Some(d) => d == self.live(live),
            },
        }
    }

    /// Makes the live record's field equal to the spec, touching nothing else.
    fn apply(self, spec: &EpicPractitionerSpec, live: &mut Map<String, Value>) {
        match self {
            Field::Npi => {
                let ids = live.entry("identifier").or_insert_with(|| json!([]));
                if !ids.is_array() {
                    *ids = json!([]);
                }
                if let Value::Array(ids) = ids {
                    let mut seen = false;
                    ids.retain_mut(|id| {
                        if !is_npi_identifier(id) {
                            return true;
                        }
                        if seen {
                            return false;
                        }
                        seen = true;
                        if let Value::Object(o) = id {
                            o.insert("value".into(), Value::String(spec.npi.clone()));
                        }
                        true
                    });
                    if !seen {
                        ids.push(json!({"system": NPI_SYSTEM, "value": spec.npi}));
                    }
                }
            }
            Field::Active => {
                if let Some(a) = spec.active {
                    live.insert("active".into(), Value::Bool(a));
                }
            }
            Field::Name => {
                let Some(n) = &spec.name else { return };
                let snapshot = Value::Object(live.clone());
                let index = official_name_index(&snapshot);
                let names = live.entry("name").or_insert_with(|| json!([]));
                if !names.is_array() {
                    *names = json!([]);
                }
                let Value::Array(names) = names else { return };
                let entry = match index {
                    Some(i) => &mut names[i],
                    None => {
                        names.push(json!({"use": "official"}));
                        let last = names.len() - 1;
                        &mut names[last]
                    }
                };
                if let Value::Object(o) = entry {
                    o.insert("family".into(), Value::String(n.family.clone()));
                    for (key, parts) in [
                        ("given", &n.given),
                        ("prefix", &n.prefix),
                        ("suffix", &n.suffix),
                    ] {
                        if parts.is_empty() {
                            o.remove(key);
                        } else {
                            o.insert(key.into(), json!(parts));
                        }
                    }
                    // `text` is a rendering of the parts; a stale one would contradict them.
                    if o.contains_key("text") {
                        let text = n
                            .given
                            .iter()
                            .chain(std::iter::once(&n.family))
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(" ");
                        o.insert("text".into(), Value::String(text));
                    }
                }
            }
            Field::Telecom => {
                let Some(desired) = &spec.telecom else { return };
                let current = live
                    .get("telecom")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let (unmatched, kept) = match_contacts(desired, &current);
                // Matched live entries are kept whole (rank, period, extensions survive).
                let mut next: Vec<Value> = kept.iter().map(|&i| current[i].clone()).collect();
                next.extend(unmatched.iter().map(|c| contact_json(c)));
                if next.is_empty() {
                    live.remove("telecom");
                } else {
                    live.insert("telecom".into(), Value::Array(next));
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
                let Some(desired) = &spec.qualifications else {
                    return;
                };
                let codes = desired_codes(desired);
                let current = live
                    .get("qualification")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut present: Vec<String> = Vec::new();
                let mut next: Vec<Value> = Vec::new();
                for q in current {
                    if let Some(code) = qualification_code(&q)
                        && codes.contains(&code)
                        && !present.contains(&code)
                    {
                        present.push(code);
                        next.push(q);
                    }
                }
                for q in desired {
                    if !present.contains(&q.code) {
                        present.push(q.code.clone());
                        next.push(qualification_json(q));
                    }
                }
                if next.is_empty() {
                    live.remove("qualification");
                } else {
                    live.insert("qualification".into(), Value::Array(next));
                }
            }
        }
    }
}

/// Field-level drift and a bounded unified diff between the spec and a live record.
pub fn drift(spec: &EpicPractitionerSpec, live: &Value) -> DriftReport {
    let entries: Vec<DriftEntry> = ALL_FIELDS
        .iter()
        .filter_map(|&f| {
            let desired = f.desired(spec)?;
            if f.in_sync(spec, live) {
                return None;
            }
            Some(DriftEntry {
                path: f.path().to_string(),
                desired: desired.to_string(),
                live: f.live(live).to_string(),
            })
        })
        .collect();
    let diff = if entries.is_empty() {
        String::new()
    } else {
        let desired = pretty(&projection_json(spec, None));
        let live_side = pretty(&projection_json(spec, Some(live)));
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
pub fn projection_json(spec: &EpicPractitionerSpec, live: Option<&Value>) -> Value {
    let mut out = Map::new();
    for f in ALL_FIELDS {
        if f.desired(spec).is_some() {
            let v = match live {
                Some(l) => f.live(l),
                None => f.desired(spec).unwrap_or(Value::Null),
            };
            out.insert(f.path().to_string(), v);
        }
    }
    Value::Object(out)
}

/// The full-PUT body: the live resource with only the drifted owned fields replaced.
pub fn overlay(spec: &EpicPractitionerSpec, live: &Value) -> Value {
    let mut body = match live {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for f in ALL_FIELDS {
        if f.desired(spec).is_some() && !f.in_sync(spec, live) {
            f.apply(spec, &mut body);
        }
    }
    Value::Object(body)
}

/// A new Practitioner built from the spec alone (CreateOrUpdate when the NPI is not found).
pub fn new_resource(spec: &EpicPractitionerSpec) -> Value {
    overlay(spec, &json!({"resourceType": "Practitioner"}))
}

/// A short fingerprint of every owned field of a live record, whatever the spec owns: the
/// roster scan compares it with the one in status to find records that changed in Epic.
pub fn fingerprint(live: &Value) -> String {
    let canonical: Vec<Value> = ALL_FIELDS.iter().map(|f| f.live(live)).collect();
    let digest = Sha256::digest(Value::Array(canonical).to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn is_npi_identifier(id: &Value) -> bool {
    id.get("system").and_then(Value::as_str) == Some(NPI_SYSTEM)
}

fn official_name_index(live: &Value) -> Option<usize> {
    array(live, "name")
        .iter()
        .position(|n| n.get("use").and_then(Value::as_str) == Some("official"))
}

fn contact_json(c: &ContactPoint) -> Value {
    let mut v = json!({"system": c.system, "value": c.value});
    if let (Some(u), Value::Object(o)) = (c.use_, &mut v) {
        o.insert("use".into(), json!(u));
    }
    v
}

fn live_contact_json(c: &Value) -> Value {
    let mut out = Map::new();
    for key in ["system", "value", "use"] {
        if let Some(v) = c.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

fn contact_matches(desired: &ContactPoint, live: &Value) -> bool {
    let system = serde_json::to_value(desired.system).unwrap_or(Value::Null);
    live.get("system") == Some(&system)
        && live.get("value").and_then(Value::as_str) == Some(desired.value.as_str())
        && match desired.use_ {
            None => true,
            Some(u) => live.get("use") == Some(&json!(u)),
        }
}

/// Pairs each desired contact with one live entry. Returns the desired contacts left without a
/// partner and the indices (in live order) of the live entries that were matched.
fn match_contacts<'a>(
    desired: &'a [ContactPoint],
    live: &[Value],
) -> (Vec<&'a ContactPoint>, Vec<usize>) {
    let mut used = vec![false; live.len()];
    let mut unmatched = Vec::new();
    // Entries with an explicit `use` pick first, so a use-less entry cannot steal their partner.
    let mut order: Vec<&ContactPoint> = desired.iter().collect();
    order.sort_by_key(|c| c.use_.is_none());
    for c in order {
        match (0..live.len()).find(|&i| !used[i] && contact_matches(c, &live[i])) {
            Some(i) => used[i] = true,
            None => unmatched.push(c),
        }
    }
    let kept = (0..live.len()).filter(|&i| used[i]).collect();
    (unmatched, kept)
}

fn desired_codes(q: &[Qualification]) -> Vec<String> {
    let mut codes: Vec<String> = q.iter().map(|q| q.code.clone()).collect();
    codes.sort();
    codes.dedup();
    codes
}

fn qualification_code(q: &Value) -> Option<String> {
    let code = q.get("code")?;
    code.get("coding")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(|c| c.get("code"))
        .or_else(|| code.get("text"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn qualification_json(q: &Qualification) -> Value {
    let mut coding = json!({"code": q.code});
    let mut code = json!({});
    if let Some(d) = &q.display {
        coding["display"] = json!(d);
        code["text"] = json!(d);
    }
    code["coding"] = json!([coding]);
    let mut v = json!({"code": code});
    if let Some(i) = &q.issuer {
        v["issuer"] = json!({"display": i});
    }
    v
}

fn sort_values(v: &mut [Value]) {
    v.sort_by_key(|a| a.to_string());
}
