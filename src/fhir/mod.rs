//! The Epic FHIR R4 client: typed errors, paging, rate limiting and retries.
//!
//! Resource bodies stay raw `serde_json::Value` so that every field Epic sends, understood or
//! not, survives a read-modify-PUT.

mod bundle;
mod capability;
mod client;
mod error;
mod npi;
mod outcome;
mod paging;
pub use paging::ResourceWalk;
pub mod rate;
mod retry;
mod settings;
pub mod usage;
mod writes;

pub use bundle::{SearchPage, SearchResult, parse_search_page};
pub use capability::Capability;
pub use client::FhirClient;
pub use error::{EPIC_CODE_SYSTEM, FhirError, classify};
pub use npi::{NpiLookup, NpiSearch};
pub use outcome::{Issue, OperationOutcome};
pub use retry::{MAX_RETRY_AFTER, RetryPolicy, parse_retry_after};
pub use settings::{
    ConnectionSettings, RequestEvent, RequestKind, RequestObserver, Versioned, WalkLimits,
};
