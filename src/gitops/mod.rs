//! The GitOps driver: the same engine and client as the operator, without a cluster.
//! `plan` shows what would change, `apply` performs it, `export` adopts an existing roster.

mod connection;
mod diagnostics;
mod export;
mod key_dir;
mod load_error;
mod manifest_files;
mod manifests;
mod report;
mod report_detail;
mod report_format;
mod report_kinds;
mod report_markdown;
mod report_text;
mod report_types;
mod saved_apply;
mod saved_plan;
mod schema;
mod trust;

pub use connection::{
    ConnectionInput, EXAMPLES_SEED, Target, check_connection_file, load_connection_manifest,
    open_target,
};
pub use diagnostics::Diagnostic;
pub use export::{ExportSummary, export_roster, manifest_from_live};
pub use key_dir::{directory_keys, read_entries, ring_from_path};
pub use load_error::LoadError;
pub use manifests::{
    Loaded, SourcedPractitioner, load_manifest_text, load_manifests, load_manifests_all,
};
pub use report::{PlanMode, PlanOptions, PractitionerReport, RunReport, run_plan};
pub use report_format::{ExitCodeMode, FORMAT_VERSION, Summary};
pub use report_kinds::{ReportAction, ReportResolution, ReportResult};
pub use report_markdown::{COMMENT_MARKER, MAX_MARKDOWN_CHARS};
pub use saved_apply::{STALE, apply_saved};
pub use saved_plan::{SAVED_PLAN_KIND, SavedPlan, mismatch, read_saved_plan, save};
pub use trust::{TlsFiles, tls_for};
