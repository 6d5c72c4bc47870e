//! epic-operator: keeps clinician identity records in an Epic EHR in the state declared in Git.
//!
//! Follow the names from `main.rs`: [`cli`] parses the command line and hands each command to
//! its driver: [`operator`] (the Kubernetes controllers) or [`gitops`] (plan/apply/export without
//! a cluster). Both drive the same pure [`reconcile`] engine and the same [`fhir`] client, which
//! authenticates through [`auth`]. [`sandbox`] is the built-in Epic-like server.

pub mod auth;
pub mod cli;
pub mod crd;
pub mod fhir;
pub mod gitops;
pub mod http;
pub mod operator;
pub mod pipeline;
pub mod reconcile;
pub mod sandbox;
pub mod util;
