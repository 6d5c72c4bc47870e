//! The Secret that holds a connection's private keys: its entries, whether the operator may
//! manage it, and when each key was published.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::auth::{KeyError, KeyRing, load_ring};
use crate::crd::{EpicConnection, KeyLayout, MANAGED_KEYS_LABEL};

/// Annotation on a managed Secret: `{"<kid>": "<RFC 3339 time it was published>", ...}`. It
/// lives on the Secret, beside the keys, so one write changes both.
pub const PUBLISHED_ANNOTATION: &str = "epic-operator.dev/keys-published";
/// Annotation on a managed Secret: the EpicConnection (same namespace) whose keys it holds.
/// Two connections rotating one Secret would retire each other's keys.
pub const KEYS_FOR_ANNOTATION: &str = "epic-operator.dev/keys-for";
/// Annotation on a managed Secret: the `epic-operator.dev/rotate-keys` value last acted on.
pub const ROTATED_FOR_ANNOTATION: &str = "epic-operator.dev/rotated-for";

/// The Secret's data entries (name -> bytes).
pub fn entries(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// Whether the Secret carries the label that lets the operator write keys into it.
pub fn is_managed(secret: &Secret) -> bool {
    secret.labels().get(MANAGED_KEYS_LABEL).map(String::as_str) == Some("true")
}

/// When each key of a managed Secret was published (unreadable annotation: none known).
pub fn published_times(secret: &Secret) -> BTreeMap<String, DateTime<Utc>> {
    secret
        .annotations()
        .get(PUBLISHED_ANNOTATION)
        .and_then(|text| serde_json::from_str::<BTreeMap<String, String>>(text).ok())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(kid, t)| {
            DateTime::parse_from_rfc3339(&t)
                .ok()
                .map(|t| (kid, t.with_timezone(&Utc)))
        })
        .collect()
}

/// The connection's keys from its Secret. A key was published when the managed Secret says
/// so, else when the connection's status first listed it, else now (first seen).
pub fn ring(
    conn: &EpicConnection,
    secret: &Secret,
    now: DateTime<Utc>,
) -> Result<KeyRing, KeyError> {
    let layout = conn.spec.key_layout().map_err(KeyError::Layout)?;
    let managed = matches!(layout, KeyLayout::Several { managed: true, .. });
    let from_secret = if managed {
        published_times(secret)
    } else {
        BTreeMap::new()
    };
    let from_status: BTreeMap<String, DateTime<Utc>> = conn
        .status
        .as_ref()
        .and_then(|s| s.keys.as_ref())
        .map(|k| {
            k.published
                .iter()
                .filter_map(|p| {
                    DateTime::parse_from_rfc3339(&p.since)
                        .ok()
                        .map(|t| (p.key_id.clone(), t.with_timezone(&Utc)))
                })
                .collect()
        })
        .unwrap_or_default();
    let source = format!("Secret {}", secret.name_any());
    load_ring(
        &layout,
        &entries(secret),
        conn.spec.algorithm,
        |kid| {
            from_secret
                .get(kid)
                .or_else(|| from_status.get(kid))
                .copied()
                .unwrap_or(now)
        },
        &source,
    )
}
