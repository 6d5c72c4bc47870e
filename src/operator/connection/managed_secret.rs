//! The contents of a Secret that holds managed keys: which keys it holds since when, a new
//! Secret for them, its annotations (the owner, when each key was published, the rotation
//! request acted on). Managed rotation (`key_rotation.rs`) decides and writes; this edits.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::ObjectMeta;

use crate::auth::kid_of_entry;
use crate::crd::{EpicConnection, MANAGED_KEYS_LABEL, ROTATE_KEYS_ANNOTATION};
use crate::operator::connection::key_secret::{
    KEYS_FOR_ANNOTATION, PUBLISHED_ANNOTATION, ROTATED_FOR_ANNOTATION, published_times,
};

/// The rotate-keys annotation: its value, and whether it was not acted on yet.
pub(super) struct RotationRequest {
    pub(super) value: Option<String>,
    /// Not acted on yet: rotate now.
    pub(super) now: bool,
}

impl RotationRequest {
    pub(super) fn of(conn: &EpicConnection, existing: Option<&Secret>) -> Self {
        let value = conn.annotations().get(ROTATE_KEYS_ANNOTATION).cloned();
        let acted_on = existing.and_then(|s| s.annotations().get(ROTATED_FOR_ANNOTATION).cloned());
        let now = value.is_some() && value != acted_on;
        Self { value, now }
    }
}

/// Keys in the Secret and when each was published; a key someone added by hand counts as
/// published now.
pub(super) fn published_in(
    existing: Option<&Secret>,
    now: DateTime<Utc>,
) -> BTreeMap<String, DateTime<Utc>> {
    let mut published = existing.map(published_times).unwrap_or_default();
    let present: Vec<String> = existing
        .and_then(|s| s.data.as_ref())
        .map(|d| {
            d.keys()
                .filter_map(|k| kid_of_entry(k).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    published.retain(|kid, _| present.contains(kid));
    for kid in &present {
        published.entry(kid.clone()).or_insert(now);
    }
    published
}

/// An empty Secret labelled for managed keys.
pub(super) fn new_managed_secret(name: &str, ns: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            labels: Some([(MANAGED_KEYS_LABEL.to_string(), "true".to_string())].into()),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// Writes the publication times and the owner into the annotations, and marks the rotation
/// request `acted_on` (its value) as done; whether an annotation changed.
pub(super) fn annotate(
    secret: &mut Secret,
    published: &BTreeMap<String, DateTime<Utc>>,
    connection: String,
    acted_on: Option<&str>,
) -> bool {
    let times: BTreeMap<&String, String> = published
        .iter()
        .map(|(k, t)| (k, t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .collect();
    let times = serde_json::to_string(&times).unwrap_or_default();
    let annotations = secret.annotations_mut();
    let mut changed = annotations.get(PUBLISHED_ANNOTATION) != Some(&times)
        || annotations.get(KEYS_FOR_ANNOTATION) != Some(&connection);
    annotations.insert(PUBLISHED_ANNOTATION.into(), times);
    // The Secret belongs to this connection from now on (a labelled Secret without owner is
    // adopted).
    annotations.insert(KEYS_FOR_ANNOTATION.into(), connection);
    if let Some(value) = acted_on {
        annotations.insert(ROTATED_FOR_ANNOTATION.into(), value.to_string());
        changed = true;
    }
    changed
}
