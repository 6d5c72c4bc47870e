//! Per-connection settings of the FHIR client (rate limit, paging, timeouts, retry and walk
//! limits), and the small types requests are described by.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::retry::RetryPolicy;

/// What kind of request, for metrics and sandbox-style accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    Metadata,
    Read,
    Search,
    Page,
    Update,
    Create,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Metadata => "metadata",
            RequestKind::Read => "read",
            RequestKind::Search => "search",
            RequestKind::Page => "page",
            RequestKind::Update => "update",
            RequestKind::Create => "create",
        }
    }
}

/// One HTTP exchange with Epic, as metrics see it.
#[derive(Clone, Copy, Debug)]
pub struct RequestEvent {
    pub kind: RequestKind,
    /// The HTTP status; None when no response came (timeout, reset).
    pub status: Option<u16>,
    /// From sending the request to its response headers.
    pub elapsed: std::time::Duration,
    /// 1 for the first try of a logical request, more for its retries.
    pub attempt: u32,
}

/// Called once per HTTP exchange.
pub type RequestObserver = Arc<dyn Fn(RequestEvent) + Send + Sync>;

/// Per-connection settings.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    pub fhir_base_url: String,
    pub requests_per_second: u32,
    pub burst: u32,
    pub page_size: u32,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub retry: RetryPolicy,
    pub walk_limits: WalkLimits,
}

/// Caps on one paged walk (a roster walk, a search): a server that sends endless distinct
/// `next` links must not keep the operator walking, or its memory growing, forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkLimits {
    pub max_pages: u32,
    pub max_records: u32,
    pub max_duration: Duration,
}

impl Default for WalkLimits {
    fn default() -> Self {
        Self {
            max_pages: 10_000,
            max_records: 500_000,
            max_duration: Duration::from_secs(6 * 3600),
        }
    }
}

impl ConnectionSettings {
    pub fn new(fhir_base_url: impl Into<String>) -> Self {
        Self {
            fhir_base_url: fhir_base_url.into(),
            requests_per_second: 20,
            burst: 40,
            page_size: 50,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 10 << 20,
            retry: RetryPolicy::default(),
            walk_limits: WalkLimits::default(),
        }
    }
}

/// A resource with the ETag it was read with (Epic rarely sends one).
#[derive(Clone, Debug)]
pub struct Versioned {
    pub body: Value,
    pub etag: Option<String>,
}
