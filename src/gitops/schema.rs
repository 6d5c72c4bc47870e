//! Manifests checked against the generated CRD schemas, as the API server would (with
//! kubectl's strict field validation): unknown fields, types, patterns, enums and required
//! fields are errors, so `plan` refuses what the cluster refuses. The schema is the one the
//! CRDs carry (`crate::crd::crds()`), made into plain JSON Schema (draft 4, which OpenAPI v3
//! schemas follow) by the `jsonschema` crate.

use serde_json::{Map, Value, json};

use crate::crd::crds;

/// The kinds of our group and the validator of each served version's schema.
pub struct SchemaSet {
    kinds: Vec<KindSchema>,
}

struct KindSchema {
    kind: String,
    api_versions: Vec<String>,
    /// The strict schema itself: unknown fields are matched against its property names.
    schema: Value,
    validator: jsonschema::Validator,
}

/// One problem of a document: the field it is about (`spec.telecom[0].value`, empty for the
/// document itself) and the sentence naming it and the fix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldProblem {
    pub path: String,
    pub text: String,
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Metadata fields an API server accepts in a manifest (ObjectMeta's).
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

impl SchemaSet {
    /// The validators, compiled once per process (compiling them costs milliseconds; a fuzzer
    /// or a large tree would pay that per file otherwise).
    pub fn shared() -> Result<&'static SchemaSet, String> {
        static SHARED: std::sync::OnceLock<Result<SchemaSet, String>> = std::sync::OnceLock::new();
        SHARED
            .get_or_init(SchemaSet::new)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Validators for every kind of our CRDs.
    pub fn new() -> Result<Self, String> {
        let mut kinds = Vec::new();
        for crd in crds() {
            let group = crd.spec.group.clone();
            let kind = crd.spec.names.kind.clone();
            for version in &crd.spec.versions {
                let Some(schema) = version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                else {
                    continue;
                };
                let mut schema = serde_json::to_value(schema).map_err(|e| e.to_string())?;
                strict(&mut schema);
                if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                    props.insert("metadata".into(), object_meta_schema());
                    props.insert("apiVersion".into(), json!({"type": "string"}));
                    props.insert("kind".into(), json!({"type": "string"}));
                    // Status is the operator's: an API server ignores it in a manifest.
                    props.insert("status".into(), json!({}));
                }
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft4)
                    .build(&schema)
                    .map_err(|e| format!("the {kind} schema does not compile: {e}"))?;
                kinds.push(KindSchema {
                    kind: kind.clone(),
                    api_versions: vec![format!("{group}/{}", version.name)],
                    schema,
                    validator,
                });
            }
        }
        Ok(Self { kinds })
    }

    /// Whether this document belongs to our API group (any version, any kind).
    pub fn is_ours(api_version: &str) -> bool {
        api_version
            .split_once('/')
            .is_some_and(|(group, _)| group == crate::crd::GROUP)
    }

    /// Every problem of one document of our group, each naming its field; empty when valid.
    #[cfg(test)]
    pub fn check(&self, doc: &Value) -> Vec<String> {
        self.problems(doc).into_iter().map(|p| p.text).collect()
    }

    /// [`check`](Self::check) with the field of each problem apart, for `-o json`
    /// diagnostics. Unknown fields come with the nearest declared name (`fhirBaseURL`: did
    /// you mean `fhirBaseUrl`?).
    pub fn problems(&self, doc: &Value) -> Vec<FieldProblem> {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        let api_version = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(k) = self.kinds.iter().find(|k| k.kind == kind) else {
            let known: Vec<&str> = self.kinds.iter().map(|k| k.kind.as_str()).collect();
            return vec![FieldProblem {
                path: "kind".into(),
                text: format!(
                    "kind {kind:?} is not served by {api_version}: use one of {}",
                    known.join(", ")
                ),
            }];
        };
        if !k.api_versions.iter().any(|v| v == api_version) {
            return vec![FieldProblem {
                path: "apiVersion".into(),
                text: format!(
                    "apiVersion {api_version} is not served for {kind}: use {}",
                    k.api_versions.join(" or ")
                ),
            }];
        }
        let mut problems: Vec<FieldProblem> = k
            .validator
            .iter_errors(doc)
            .flat_map(|e| {
                let pointer = e.instance_path().to_string();
                let path = field_path(&pointer);
                match unknown_fields(&e.to_string()) {
                    Some(fields) => fields
                        .into_iter()
                        .map(|f| {
                            let full = if path == "(document)" {
                                f.clone()
                            } else {
                                format!("{path}.{f}")
                            };
                            let hint = match suggestion(&k.schema, &pointer, &f) {
                                Some(s) => format!("did you mean \"{s}\"?"),
                                None => "check the spelling".into(),
                            };
                            FieldProblem {
                                text: format!(
                                    "unknown field \"{full}\" (not in the CRD schema: {hint})"
                                ),
                                path: full,
                            }
                        })
                        .collect::<Vec<_>>(),
                    None => vec![FieldProblem {
                        text: format!("{path}: {e}"),
                        path: if path == "(document)" {
                            String::new()
                        } else {
                            path
                        },
                    }],
                }
            })
            .collect();
        problems.sort();
        problems.dedup();
        problems
    }
}

/// The declared property nearest to an unknown field name at `pointer` (same name in another
/// case, or at most a couple of letters apart), if any.
fn suggestion(schema: &Value, pointer: &str, field: &str) -> Option<String> {
    let mut here = schema;
    for part in pointer.split('/').skip(1) {
        here = match here.get("properties").and_then(|p| p.get(part)) {
            Some(child) => child,
            None => here.get("items")?,
        };
    }
    let names = here.get("properties")?.as_object()?.keys();
    let lower = field.to_ascii_lowercase();
    let limit = (field.len() / 4).clamp(1, 3);
    names
        .map(|n| {
            let d = if n.to_ascii_lowercase() == lower {
                0
            } else {
                edit_distance(&n.to_ascii_lowercase(), &lower)
            };
            (d, n)
        })
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, n)| n.clone())
}

/// Levenshtein distance (names are short: quadratic is fine).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `/spec/telecom/0/value` -> `spec.telecom[0].value`; the root is `(document)`.
fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.chars().all(|c| c.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part);
        }
    }
    if out.is_empty() {
        "(document)".into()
    } else {
        out
    }
}

/// The field names of an "Additional properties are not allowed ('a', 'b' were unexpected)"
/// message, or None for any other message.
fn unknown_fields(message: &str) -> Option<Vec<String>> {
    let rest = message.strip_prefix("Additional properties are not allowed (")?;
    let list = rest
        .rsplit_once(" were unexpected")
        .or_else(|| rest.rsplit_once(" was unexpected"))?
        .0;
    Some(
        list.split(", ")
            .map(|f| f.trim_matches(|c| c == '\'' || c == '"').to_string())
            .collect(),
    )
}

/// Makes the schema strict where the API server is: an object with declared properties
/// admits no others (they would be pruned, and rejected under strict field validation);
/// `nullable` admits null; Kubernetes extensions are dropped.
fn strict(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let preserve = o
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if o.contains_key("properties") && !o.contains_key("additionalProperties") && !preserve
            {
                o.insert("additionalProperties".into(), Value::Bool(false));
            }
            if o.get("nullable").and_then(Value::as_bool) == Some(true) {
                allow_null(o);
            }
            if o.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
                o.insert("type".into(), json!(["integer", "string"]));
            }
            o.retain(|k, _| !k.starts_with("x-kubernetes-") && k != "nullable");
            for (_, child) in o.iter_mut() {
                strict(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strict),
        _ => {}
    }
}

fn allow_null(o: &mut Map<String, Value>) {
    if let Some(Value::String(t)) = o.get("type").cloned() {
        o.insert("type".into(), json!([t, "null"]));
    }
    if let Some(Value::Array(values)) = o.get_mut("enum") {
        values.push(Value::Null);
    }
}

fn object_meta_schema() -> Value {
    let props: Map<String, Value> = OBJECT_META_FIELDS
        .iter()
        .map(|f| ((*f).to_string(), json!({})))
        .collect();
    let mut meta = json!({
        "type": "object",
        "properties": props,
        "additionalProperties": false,
    });
    meta["properties"]["name"] = json!({
        "type": "string",
        "maxLength": 253,
        "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    });
    meta["properties"]["namespace"] = json!({
        "type": "string",
        "maxLength": 63,
        "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    });
    meta["properties"]["labels"] =
        json!({"type": "object", "additionalProperties": {"type": "string"}});
    meta["properties"]["annotations"] =
        json!({"type": "object", "additionalProperties": {"type": "string"}});
    meta
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
