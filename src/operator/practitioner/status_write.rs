//! The one way practitioner status is written: the whole status by server-side apply under
//! the operator's single field manager.

use kube::Api;
use kube::Resource;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::FIELD_MANAGER;
use crate::crd::{EpicPractitioner, EpicPractitionerStatus};

/// The whole status by server-side apply under the operator's one field manager.
pub async fn apply_status(
    api: &Api<EpicPractitioner>,
    name: &str,
    status: &EpicPractitionerStatus,
) -> Result<(), kube::Error> {
    let patch = json!({
        "apiVersion": EpicPractitioner::api_version(&()),
        "kind": EpicPractitioner::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}
