//! The built-in Epic sandbox: an Epic-like FHIR R4 server with SMART Backend Services auth.
//!
//! It imitates Epic as documented, awkward parts included: opaque instance-specific ids,
//! writes refused by default (403 OperationOutcome with Epic code 4118), opaque expiring paging
//! links (code 4113), PATCH refused, no rate-limit headers and, by default, no Retry-After on
//! 429 (the `load` faults add Retry-After in both forms, a daily allowance, a latency ramp and
//! refused parameterless searches, as production instances may). Admin
//! endpoints under `/_sandbox/` count requests, inject faults, edit records out of band and
//! register clients at run time. A client's keys are a static JWK Set or, as Epic now requires,
//! fetched from its JWK Set URL with Epic's caching (see `jwks`).

// Handlers return ready HTTP responses as their error type, the axum idiom; boxing them would
// only add noise.
#![allow(clippy::result_large_err)]

mod admin;
mod clients;
mod fhir;
mod guard;
mod hostile;
mod jwk_set;
mod jwks;
mod load;
mod oauth;
mod query;
mod realism;
mod responses;
mod search;
mod seed;
mod state;
mod stats;
mod writes;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

pub use clients::RegisteredClient;
pub use load::LoadSettings;
pub use seed::SeedError;
use state::SandboxState;
pub use stats::Stats;

use crate::auth::{ClientKey, generate_key};
use crate::crd::Algorithm;

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the sandbox keeps
/// serving; its data is plain values with no invariants spanning a panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Base path of the FHIR API, as on Epic.
pub const FHIR_PATH: &str = "/api/FHIR/R4";
/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/oauth2/token";
/// Client id registered when no client is given.
pub const DEV_CLIENT_ID: &str = "epic-operator-dev";
/// Key id of the generated development key.
pub const DEV_KEY_ID: &str = "dev-key-1";

/// Scopes a client may be granted unless narrowed.
pub fn default_scopes() -> Vec<String> {
    [
        "system/Practitioner.read",
        "system/Practitioner.write",
        "system/PractitionerRole.read",
        "system/Patient.read",
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

/// Faults and switches that can change at run time through `/_sandbox/settings`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// Accept Practitioner PUT/POST (most Epic instances do not).
    pub writes_enabled: bool,
    /// Added latency of every FHIR response, in milliseconds.
    pub latency_ms: u64,
    /// Random extra latency, 0..=jitter_ms.
    pub jitter_ms: u64,
    /// Fraction (0-1) of FHIR requests answered 429 without Retry-After.
    pub throttle_rate: f64,
    /// Fraction (0-1) of FHIR requests answered 500.
    pub error_rate: f64,
    /// Fraction (0-1) of token requests answered 503.
    pub token_failure_rate: f64,
    /// Server-wide FHIR requests per second; beyond it requests get 429 (0: unlimited).
    pub rate_limit_rps: u32,
    /// Identifier searches match loosely, as some servers do: the system is ignored and any
    /// identifier sharing the first six characters of the value matches.
    pub loose_identifier_search: bool,
    /// Identifier searches with several comma-separated tokens answer 400 (4100), or (the
    /// second) are answered for the first token alone.
    pub or_search_unsupported: bool,
    pub or_search_first_token_only: bool,
    /// The instance does not search Practitioner by identifier: the CapabilityStatement does
    /// not list the parameter and such searches answer 400 (4100).
    pub identifier_search_unsupported: bool,
    /// PractitionerRole searches need a `practitioner` parameter (400, 4111): no role walks.
    pub role_search_needs_practitioner: bool,
    /// NPIs whose search results are suppressed: the matches are hidden and the Bundle carries
    /// an OperationOutcome entry with Epic code 59204.
    pub suppressed_npis: Vec<String>,
    /// NPIs whose identifier searches are cut short: no match, a warning `too-costly` outcome.
    pub cut_npis: Vec<String>,
    /// NPIs whose records a roster walk (a search with no parameter but `_count`) hides: the
    /// first page carries an OperationOutcome entry with the standard issue code `suppressed`
    /// and no Epic code, the other form Epic uses. Identifier searches still find them.
    pub walk_suppressed_npis: Vec<String>,
    /// Every search starts with an empty page that still carries `next` (Epic's post-filter).
    pub sparse_pages: bool,
    /// Identifier search entries are SUBSETTED copies (meta.tag SUBSETTED, no active, no photo).
    pub subsetted_search: bool,
    /// A JSON merge patch applied, as an out-of-band edit, to the target of a PUT just before
    /// its If-Match is checked: the race between a read and a write.
    pub edit_before_put: Option<serde_json::Value>,
    /// How many PUTs in a row meet that edit (0 counts as 1); then it is cleared.
    pub edit_before_put_count: u32,
    /// Fault: the next N accepted writes (PUT or POST) are applied, then their response is cut
    /// off mid-body, so the client sees the connection fail after the write happened.
    pub reset_writes: u32,
    /// Fault: every accepted POST is answered 504 at once and stored this many ms later: Epic
    /// still applying a create its client stopped waiting for (0: off).
    pub late_create_ms: u64,
    /// The instance has no conditional create: the CapabilityStatement does not list it and
    /// `If-None-Exist` is ignored (a POST always creates), as on many Epic instances.
    pub conditional_create_unsupported: bool,
    /// Hostile mode: the first roster walk adds one record carrying the NPI of every other
    /// record, padded with other identifiers to this many (0: off; 110,000 make 9 MiB).
    pub hostile_identifiers: usize,
    /// Hostile mode: every record changes (`active` flips) at the start of every roster walk.
    pub churn_every_walk: bool,
    /// Longest time, in seconds, a JWK Set fetched from a client's JWK Set URL is cached,
    /// whatever its `Cache-Control: max-age` says (a response without max-age is cached this
    /// long; `no-store`/`no-cache` ones not at all). Epic's own limit is undocumented.
    pub jwks_cache_max_secs: u64,
    /// Shortest time, in seconds, between two fetches of a client's JWK Set caused by an
    /// assertion with an unknown kid: within it such assertions are refused, as by a cache
    /// that lags the client's key rotation.
    pub jwks_refetch_cooldown_secs: u64,
    /// Fault: shortest time, in seconds, a fetched JWK Set is cached, even when its max-age
    /// is shorter (0: honour max-age). An Epic that caches longer than the operator's
    /// publishAhead refuses a new key at first: the fallback to the previous key must hold.
    pub jwks_cache_min_secs: u64,
    /// Load: a daily allowance, 503 and 429 with Retry-After, a latency ramp, refused
    /// parameterless searches (see `load`).
    #[serde(flatten)]
    pub load: LoadSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            writes_enabled: false,
            latency_ms: 0,
            jitter_ms: 0,
            throttle_rate: 0.0,
            error_rate: 0.0,
            token_failure_rate: 0.0,
            rate_limit_rps: 0,
            loose_identifier_search: false,
            or_search_unsupported: false,
            or_search_first_token_only: false,
            identifier_search_unsupported: false,
            role_search_needs_practitioner: false,
            suppressed_npis: Vec::new(),
            cut_npis: Vec::new(),
            walk_suppressed_npis: Vec::new(),
            sparse_pages: false,
            subsetted_search: false,
            edit_before_put: None,
            edit_before_put_count: 0,
            reset_writes: 0,
            late_create_ms: 0,
            conditional_create_unsupported: false,
            hostile_identifiers: 0,
            churn_every_walk: false,
            jwks_cache_max_secs: DEFAULT_JWKS_CACHE_MAX_SECS,
            jwks_refetch_cooldown_secs: DEFAULT_JWKS_REFETCH_COOLDOWN_SECS,
            jwks_cache_min_secs: 0,
            load: LoadSettings::default(),
        }
    }
}

/// Default of [`Settings::jwks_cache_max_secs`].
pub const DEFAULT_JWKS_CACHE_MAX_SECS: u64 = 300;
/// Default of [`Settings::jwks_refetch_cooldown_secs`].
pub const DEFAULT_JWKS_REFETCH_COOLDOWN_SECS: u64 = 60;

/// How to start a sandbox.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    pub addr: SocketAddr,
    pub settings: Settings,
    pub token_ttl: Duration,
    /// Paging sessions expire after this long (then `next` links answer Epic code 4113).
    pub paging_ttl: Duration,
    pub default_page_size: usize,
    pub max_page_size: usize,
    /// Registered clients; when empty a development client and key are generated.
    pub clients: Vec<RegisteredClient>,
    /// Seed documents (FHIR Bundle or JSON array), applied in order.
    pub seeds: Vec<String>,
    /// Synthetic practitioners to add.
    pub generate: usize,
    /// Generated records take the shapes real Epic data has (OID-system NPIs, ended NPIs,
    /// usual-only names, formatted phones, pagers, Epic-coded qualifications, ...).
    pub realistic: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            settings: Settings::default(),
            token_ttl: Duration::from_secs(3600),
            paging_ttl: Duration::from_secs(300),
            default_page_size: 10,
            max_page_size: 200,
            clients: Vec::new(),
            seeds: Vec::new(),
            generate: 0,
            realistic: true,
        }
    }
}

/// A running sandbox.
pub struct Sandbox {
    pub addr: SocketAddr,
    /// The development key generated when no client was registered (PEM, PKCS#8).
    pub dev_key_pem: Option<String>,
    state: Arc<SandboxState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sandbox {
    /// Binds, seeds and starts serving in the background.
    pub async fn start(config: SandboxConfig) -> Result<Self, SandboxError> {
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|e| SandboxError::Bind(config.addr.to_string(), e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| SandboxError::Bind(config.addr.to_string(), e.to_string()))?;
        let mut clients = config.clients.clone();
        let mut dev_key_pem = None;
        if clients.is_empty() {
            let (key, pem) = generate_key(Algorithm::RS384, DEV_KEY_ID)
                .map_err(|e| SandboxError::Key(e.to_string()))?;
            clients.push(RegisteredClient::new(
                DEV_CLIENT_ID,
                &key.jwks(),
                default_scopes(),
            )?);
            dev_key_pem = Some(pem);
        }
        let origin = format!("http://{addr}");
        let state = Arc::new(SandboxState::new(&origin, &config, clients));
        for seed in &config.seeds {
            state.load_seed(seed)?;
        }
        if config.generate > 0 {
            state.generate(config.generate, config.realistic);
        }
        let app = router(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        Ok(Self {
            addr,
            dev_key_pem,
            state,
            shutdown: Some(tx),
            task,
        })
    }

    /// `http://127.0.0.1:PORT/api/FHIR/R4`
    pub fn fhir_base_url(&self) -> String {
        format!("http://{}{FHIR_PATH}", self.addr)
    }

    pub fn token_url(&self) -> String {
        format!("http://{}{TOKEN_PATH}", self.addr)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}/_sandbox", self.addr)
    }

    /// An EpicConnection spec for this sandbox's development client, its key in Secret
    /// `secret_name` under `private-key.pem`; defaults everywhere else.
    pub fn connection_spec(&self, secret_name: &str) -> crate::crd::EpicConnectionSpec {
        crate::crd::EpicConnectionSpec {
            default_phone_region: None,
            max_walk_pages: None,
            max_walk_records: None,
            max_walk_duration: None,
            fhir_base_url: self.fhir_base_url(),
            token_url: None,
            client_id: DEV_CLIENT_ID.into(),
            private_key_secret_ref: crate::crd::SecretKeyRef {
                name: secret_name.into(),
                key: Some("private-key.pem".into()),
            },
            key_id: Some(DEV_KEY_ID.into()),
            key_rotation: None,
            send_jku: false,
            trust: crate::crd::TrustSpec::default(),
            algorithm: Algorithm::RS384,
            scopes: None,
            requests_per_second: None,
            burst: None,
            page_size: None,
            writes: crate::crd::WriteMode::Auto,
            resync_interval: None,
            paging_session_ttl: None,
            request_budget: None,
            walk_windows: None,
        }
    }

    /// Request counters.
    pub fn stats(&self) -> serde_json::Value {
        let mut stats = self.state.stats.snapshot();
        stats["load"] = self.state.load.snapshot();
        stats
    }

    /// The development key loaded for signing (when one was generated).
    pub fn dev_key(&self) -> Option<Result<ClientKey, crate::auth::KeyError>> {
        self.dev_key_pem
            .as_ref()
            .map(|pem| ClientKey::from_pem(pem, Algorithm::RS384, DEV_KEY_ID))
    }

    /// Registers a client at run time, replacing one with the same id (and its cached keys).
    pub fn register_client(&self, client: RegisteredClient) {
        self.state.register_client(client);
    }

    /// The registered clients, as `GET /_sandbox/clients` lists them.
    pub fn clients(&self) -> serde_json::Value {
        self.state.clients_snapshot()
    }

    /// Replaces run-time settings (writes, faults).
    pub fn set_settings(&self, settings: Settings) {
        self.state.set_settings(settings);
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {0}: {1}")]
    Bind(String, String),
    #[error("cannot create the development key: {0}")]
    Key(String),
    #[error(transparent)]
    Seed(#[from] SeedError),
}

fn router(state: Arc<SandboxState>) -> Router {
    Router::new()
        .route(TOKEN_PATH, axum::routing::post(oauth::token))
        .nest(FHIR_PATH, fhir::routes(state.clone()))
        .nest("/_sandbox", admin::routes())
        .with_state(state)
}
