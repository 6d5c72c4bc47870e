//! The GitOps driver: the same engine and client as the operator, without a cluster.
//! `plan` shows what would change, `apply` performs it, `export` adopts an existing roster.

mod connection;
mod export;
mod key_dir;
mod manifests;
mod report;
mod report_kinds;
mod report_text;
mod schema;
mod trust;

pub use connection::{
    ConnectionInput, EXAMPLES_SEED, Target, load_connection_manifest, open_target,
};
pub use export::{ExportSummary, export_roster, manifest_from_live};
pub use key_dir::{directory_keys, read_entries, ring_from_path};
pub use manifests::{LoadError, Loaded, SourcedPractitioner, load_manifest_text, load_manifests};
pub use report::{PlanMode, PlanOptions, PractitionerReport, RunReport, run_plan};
pub use report_kinds::{ReportAction, ReportResolution, ReportResult};
pub use trust::{TlsFiles, tls_for};
