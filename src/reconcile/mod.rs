//! The pure reconcile engine: no I/O, no async. Drivers (the operator and the GitOps CLI) fetch
//! the live record, ask the engine what differs and what to do, then act and report.
//!
//! Data flow: spec -> desired projection; live JSON -> live projection; the two -> [`drift`];
//! drift + policy + capability -> [`plan`]; spec + live -> [`overlay`] (the full-PUT body).

mod fields;
mod plan;

pub use fields::{
    DriftReport, MAX_DIFF_BYTES, drift, fingerprint, new_resource, overlay, projection_json,
};
pub use plan::{Action, HoldReason, PlanInput, Resolution, WriteCapability, plan};
