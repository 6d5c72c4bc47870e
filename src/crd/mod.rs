//! The two custom resources, `EpicPractitioner` and `EpicConnection`, and the pieces they share.
//!
//! These Rust types are the single source of truth for the CRD YAML in `crds/`
//! (`epic-operator crd` prints it; a test keeps the checked-in files equal to it).

mod annotations;
mod budget;
mod conditions;
mod connection;
mod keys;
mod npi;
mod practitioner;
mod reason;
mod trust;
mod walk_windows;

pub use annotations::{PAUSED_ANNOTATION, REQUESTED_AT_ANNOTATION, is_paused, pending_request};
pub use budget::{LoadStatus, RequestBudget};
pub use conditions::{
    Condition, ConditionStatus, IN_SYNC, MAX_CONDITION_MESSAGE_BYTES, READY, SYNCED, reason_of,
    set_condition,
};
pub use connection::{
    EpicConnection, EpicConnectionSpec, EpicConnectionStatus, WalkStatus, WriteMode,
};
pub use keys::{
    Algorithm, KeyLayout, KeyRotation, KeysStatus, MANAGED_KEYS_LABEL, PublishedKey,
    ROTATE_KEYS_ANNOTATION, RotationPeriods, SecretKeyRef,
};
pub use npi::{NPI_OID_SYSTEM, NPI_SYSTEM, NPI_SYSTEMS, NpiError, npi_from_prefix, validate_npi};
pub use practitioner::{
    ConnectionRef, ContactPoint, ContactSystem, ContactUse, CreateAttempt, DEACTIVATION_NOTE,
    DeletionPolicy, DriftEntry, EpicPractitioner, EpicPractitionerSpec, EpicPractitionerStatus,
    Gender, LastError, ListPolicy, ManagementPolicy, PractitionerName, Qualification, RoleSummary,
    refused_within,
};
pub use reason::Reason;
pub use trust::{CaSecretRef, DEFAULT_CA_KEY, SecretNameRef, TLS_CERT_KEY, TLS_KEY_KEY, TrustSpec};
pub use walk_windows::{Day, WalkWindow, WalkWindows, Windows};

/// The API group of both kinds.
pub const GROUP: &str = "epic-operator.dev";

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Both CRDs, ready to install.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [EpicConnection::crd(), EpicPractitioner::crd()]
        .into_iter()
        .map(tidy)
        .collect()
}

/// schemars lists `null` among the values of an optional enum; the field is already
/// `nullable`, and API servers (and kubectl's validation) reject a null enum member.
fn tidy(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                if let Some(serde_json::Value::Array(values)) = o.get_mut("enum") {
                    values.retain(|x| !x.is_null());
                }
                o.values_mut().for_each(walk);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value = match serde_json::to_value(&crd) {
        Ok(v) => v,
        Err(_) => return crd,
    };
    walk(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}

/// Both CRDs as one multi-document YAML stream, in a stable order.
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}

/// The file name each CRD is checked in under, paired with its YAML.
pub fn crd_files() -> Result<Vec<(String, String)>, serde_saphyr::SerializeError> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default());
            Ok((name, serde_saphyr::to_string(&crd)?))
        })
        .collect()
}
