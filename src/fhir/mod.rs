//! The Epic FHIR R4 client: typed errors, paging, rate limiting and retries.
//!
//! Resource bodies stay raw `serde_json::Value` so that every field Epic sends, understood or
//! not, survives a read-modify-PUT.

mod bundle;
mod client;
mod error;
mod paging;
mod retry;

pub use bundle::{SearchPage, SearchResult, parse_search_page};
pub use client::{
    Capability, ConnectionSettings, FhirClient, NpiLookup, NpiSearch, RequestKind, RequestObserver,
    Versioned, WalkLimits,
};
pub use error::{EPIC_CODE_SYSTEM, FhirError, Issue, OperationOutcome, classify};
pub use retry::{MAX_RETRY_AFTER, RetryPolicy, parse_retry_after};
