//! The pure reconcile engine: no I/O, no async. Drivers (the operator and the GitOps CLI) fetch
//! the live record, ask the engine what differs and what to do, then act and report.
//!
//! Data flow: spec -> desired projection; live JSON -> live projection; the two -> [`drift`];
//! drift + policy + capability -> [`plan`]; spec + live -> [`overlay`] (the full-PUT body).
//! [`identity`] holds the checks that keep writes on the right record.

mod contacts;
mod disclosure;
mod fields;
pub mod identity;
mod names;
mod normalize;
mod plan;
mod qualifications;
mod roles;
mod write_policy;

pub use disclosure::{Disclosure, disclose, mask_contact, mask_personal_text};
pub use fields::{
    DriftReport, MAX_DIFF_BYTES, drift, drift_with, fingerprint, new_resource, overlay,
    projection_json, validate_spec,
};
pub use names::shown_name;
pub use normalize::{DEFAULT_PHONE_REGION, Normalizer};
pub use plan::{
    Absence, Action, HoldReason, PlanInput, Resolution, WriteCapability, evidence_after_attempt,
    guard_create, plan,
};
pub use qualifications::DEFAULT_QUALIFICATION_SYSTEM;
pub use roles::role_summary;
pub use write_policy::{NOT_FIXED, WritePolicy, write_capability, write_policy};
