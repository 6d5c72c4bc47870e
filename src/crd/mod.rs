//! The two custom resources, `EpicPractitioner` and `EpicConnection`, and the pieces they share.
//!
//! These Rust types are the single source of truth for the CRD YAML in `crds/`
//! (`epic-operator crd` prints it; a test keeps the checked-in files equal to it).

mod conditions;
mod connection;
mod npi;
mod practitioner;

pub use conditions::{Condition, ConditionStatus, set_condition};
pub use connection::{
    Algorithm, EpicConnection, EpicConnectionSpec, EpicConnectionStatus, SecretKeyRef, WriteMode,
};
pub use npi::{NPI_SYSTEM, NpiError, npi_from_prefix, validate_npi};
pub use practitioner::{
    ConnectionRef, ContactPoint, ContactSystem, ContactUse, DeletionPolicy, DriftEntry,
    EpicPractitioner, EpicPractitionerSpec, EpicPractitionerStatus, Gender, LastError,
    ManagementPolicy, PractitionerName, Qualification, RoleSummary, DEACTIVATION_NOTE,
    PAUSED_ANNOTATION,
};

use kube::CustomResourceExt;

/// Both CRDs as one multi-document YAML stream, in a stable order.
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for crd in [EpicConnection::crd(), EpicPractitioner::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}

/// The file name each CRD is checked in under, paired with its YAML.
pub fn crd_files() -> Result<Vec<(String, String)>, serde_saphyr::SerializeError> {
    [EpicConnection::crd(), EpicPractitioner::crd()]
        .into_iter()
        .map(|crd| {
            let name = format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default());
            Ok((name, serde_saphyr::to_string(&crd)?))
        })
        .collect()
}
