//! Live connections to Epic instances, one per EpicConnection, shared by every practitioner
//! that references it: one token cache, one rate limiter, one view of write capability.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use tokio::sync::Mutex as AsyncMutex;

use crate::crd::{EpicConnection, EpicConnectionSpec, Reason, WriteMode};
use crate::fhir::{Capability, FhirClient, FhirError, RequestObserver};
use crate::http::EndpointPolicy;
use crate::operator::error::{ConnectionFailure, Error};
use crate::pipeline::connect;
use crate::reconcile::{Normalizer, WriteCapability, write_capability};

/// A usable connection.
pub struct ConnectionHandle {
    /// uid/generation/secret resourceVersion: a change means the handle must be rebuilt.
    pub fingerprint: String,
    pub client: Arc<FhirClient>,
    pub spec: EpicConnectionSpec,
    pub resync: Duration,
    pub capability: Option<Capability>,
    pub probe_time: String,
    writes: Mutex<WriteCapability>,
}

impl ConnectionHandle {
    pub fn writes(&self) -> WriteCapability {
        *self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A write was refused: in Auto mode, stop writing until the next probe.
    pub fn mark_refused(&self) {
        if self.spec.writes == WriteMode::Auto {
            *self.writes.lock().unwrap_or_else(|p| p.into_inner()) = WriteCapability::Disabled;
        }
    }

    pub fn base_url(&self) -> &str {
        self.client.base_url()
    }

    /// How contact values of this connection are compared (the region was checked on connect).
    pub fn normalizer(&self) -> Normalizer {
        Normalizer::for_connection(&self.spec).unwrap_or_default()
    }

    /// The CapabilityStatement lists conditional create for Practitioner.
    pub fn conditional_create(&self) -> bool {
        self.capability
            .as_ref()
            .is_some_and(|c| c.conditional_create)
    }
}

#[derive(Clone)]
enum Entry {
    Ready(Arc<ConnectionHandle>),
    Failed(ConnectionFailure),
}

pub type Key = (String, String);

/// `namespace/name`: how metrics label a connection.
pub fn connection_label(key: &Key) -> String {
    format!("{}/{}", key.0, key.1)
}

/// Makes the FHIR request observer of one connection, given its label.
pub type ObserverFactory = Arc<dyn Fn(&str) -> RequestObserver + Send + Sync>;

/// One connection's cache entry. Its lock is held while the connection is built (discovery,
/// token, CapabilityStatement), so concurrent first uses of one connection wait for one build,
/// while other connections (other tenants) never wait for it.
#[derive(Default)]
struct Slot {
    entry: AsyncMutex<Option<Entry>>,
}

/// The cache, keyed by (namespace, name). The map's own lock is only held to find a slot,
/// never across network I/O.
pub struct Connections {
    kube: kube::Client,
    http: reqwest::Client,
    observer: Option<ObserverFactory>,
    endpoints: EndpointPolicy,
    /// The operator's public base URL of its JWK Set listener (for `jku`).
    jwks_public_url: Option<String>,
    ceilings: crate::operator::Ceilings,
    /// CAs every connection trusts (the operator's --ca-file, chart value caBundle); `http`
    /// already trusts them.
    tls: crate::http::TlsOptions,
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
}

/// The outcome of (re)building a connection.
pub enum Built {
    /// Unchanged from before.
    Unchanged(Arc<ConnectionHandle>),
    /// New or changed: practitioners using it should be reconciled again.
    Changed(Arc<ConnectionHandle>),
    Failed(ConnectionFailure, bool),
}

impl Connections {
    pub fn new(
        kube: kube::Client,
        http: reqwest::Client,
        observer: Option<ObserverFactory>,
        endpoints: EndpointPolicy,
        jwks_public_url: Option<String>,
    ) -> Self {
        Self {
            kube,
            http,
            observer,
            endpoints,
            jwks_public_url,
            ceilings: crate::operator::Ceilings::default(),
            tls: crate::http::TlsOptions::default(),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Holds every connection's limits to these operator-wide ceilings.
    pub fn with_ceilings(mut self, ceilings: crate::operator::Ceilings) -> Self {
        self.ceilings = ceilings;
        self
    }

    /// Trust `tls` for every connection (the shared client must have been built with it).
    pub fn with_tls(mut self, tls: crate::http::TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    fn slot(&self, key: &Key) -> Arc<Slot> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone()
    }

    /// The connection for a practitioner: cached, or built now if never seen.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<Arc<ConnectionHandle>, Error> {
        let key = (namespace.to_string(), name.to_string());
        if let Some(e) = self.slot(&key).entry.lock().await.clone() {
            return entry_result(name, e);
        }
        let api: Api<EpicConnection> = Api::namespaced(self.kube.clone(), namespace);
        let conn = api.get_opt(name).await?.ok_or_else(|| {
            Error::ConnectionNotReady(format!(
                "EpicConnection {name} not found in namespace {namespace}"
            ))
        })?;
        match self.build(&conn, false).await {
            Built::Unchanged(h) | Built::Changed(h) => Ok(h),
            Built::Failed(f, _) => entry_result(name, Entry::Failed(f)),
        }
    }

    /// Drops a deleted connection: its client, token and rate limiter go at once, and the next
    /// practitioner that asks finds no EpicConnection (ConnectionNotReady) instead of a cached
    /// client that would keep writing.
    pub async fn forget(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        if let Some(slot) = slot {
            // A reconcile holding the old slot sees the connection gone too.
            *slot.entry.lock().await = None;
        }
    }

    /// Builds or re-probes the connection. `reprobe` forces a new CapabilityStatement read and
    /// token check even when nothing changed (the periodic connection resync).
    pub async fn build(&self, conn: &EpicConnection, reprobe: bool) -> Built {
        let namespace = conn.namespace().unwrap_or_default();
        let name = conn.name_any();
        let key = (namespace.clone(), name.clone());
        // This connection's slot is held across the build: concurrent first uses wait for one
        // build instead of each requesting a token. Other connections are not held up.
        let slot = self.slot(&key);
        let mut entries = slot.entry.lock().await;
        let secret_api: Api<Secret> = Api::namespaced(self.kube.clone(), &namespace);
        let secret_ref = &conn.spec.private_key_secret_ref;
        let secret = match secret_api.get_opt(&secret_ref.name).await {
            Ok(s) => s,
            Err(e) => {
                // The Kubernetes API failing says nothing about the key: a working connection
                // stays as it is, and a failure is not cached, so the next use tries again
                // (found by the fault suite: caching it stalled every practitioner for up to
                // a minute after the API server came back).
                if let Some(Entry::Ready(h)) = entries.clone() {
                    tracing::warn!(connection = %name, error = %e, "cannot re-read the Secret; the connection stays as it was");
                    return Built::Unchanged(h);
                }
                let failure = ConnectionFailure {
                    fingerprint: String::new(),
                    reason: Reason::KubernetesError,
                    message: format!("cannot read Secret {}: {e}", secret_ref.name),
                    http_status: None,
                };
                return Built::Failed(failure, true);
            }
        };
        // The connection's own CA and client certificate, read every build like its key: a
        // renewed certificate changes the digest and so rebuilds the client.
        let own_tls = match crate::operator::connection::tls::options(
            &self.kube, &namespace, &conn.spec,
        )
        .await
        {
            Ok(t) => t,
            Err(f) if f.transient => {
                if let Some(Entry::Ready(h)) = entries.clone() {
                    tracing::warn!(connection = %name, error = %f.message, "cannot re-read a TLS Secret; the connection stays as it was");
                    return Built::Unchanged(h);
                }
                let failure = ConnectionFailure {
                    fingerprint: String::new(),
                    reason: f.reason,
                    message: f.message,
                    http_status: None,
                };
                return Built::Failed(failure, true);
            }
            Err(f) => return self.fail(&mut entries, String::new(), f.reason, f.message, None),
        };
        let fingerprint = format!(
            "{}/{}/{}/{}",
            conn.uid().unwrap_or_default(),
            conn.metadata.generation.unwrap_or_default(),
            secret
                .as_ref()
                .and_then(|s| s.resource_version())
                .unwrap_or_default(),
            own_tls.digest()
        );
        let previous = entries.clone();
        if let Some(Entry::Ready(h)) = &previous
            && h.fingerprint == fingerprint
        {
            if !reprobe {
                return Built::Unchanged(h.clone());
            }
            // Same key and settings: keep the client (and its cached token); re-read only the
            // CapabilityStatement, which also resets a write refusal learned in Auto mode.
            return match h.client.capability().await {
                Ok(c) => {
                    let handle = Arc::new(ConnectionHandle {
                        fingerprint: fingerprint.clone(),
                        writes: Mutex::new(write_capability(h.spec.writes, Some(c.can_update()))),
                        client: h.client.clone(),
                        spec: h.spec.clone(),
                        resync: h.resync,
                        capability: Some(c),
                        probe_time: crate::util::now_rfc3339(),
                    });
                    *entries = Some(Entry::Ready(handle.clone()));
                    Built::Unchanged(handle)
                }
                // Epic asked the client to wait (Retry-After, its daily limit): the
                // connection is sound, and a new client would not know to wait.
                Err(e)
                    if matches!(e, FhirError::DailyLimit { .. }) || e.retry_after().is_some() =>
                {
                    tracing::info!(connection = %name, reason = %e.reason(), "capability probe deferred: Epic asked to wait");
                    Built::Unchanged(h.clone())
                }
                Err(e) => self.fail_fhir(&mut entries, fingerprint, &e),
            };
        }
        let Some(secret) = secret else {
            let what = match &secret_ref.key {
                Some(entry) => format!("the private key PEM under key {entry}"),
                None => "one <kid>.pem entry per private key".to_string(),
            };
            return self.fail(
                &mut entries,
                fingerprint,
                Reason::InvalidKey,
                format!(
                    "Secret {} not found in namespace {namespace}: create it with {what}",
                    secret_ref.name
                ),
                None,
            );
        };
        let keys = match crate::operator::connection::key_secret::ring(
            conn,
            &secret,
            chrono::Utc::now(),
        ) {
            Ok(k) => k,
            Err(e) => {
                let reason = if conn.spec.key_layout().is_err() {
                    Reason::InvalidConnection
                } else {
                    Reason::InvalidKey
                };
                return self.fail(&mut entries, fingerprint, reason, e.to_string(), None);
            }
        };
        let jku = match (conn.spec.send_jku, &self.jwks_public_url) {
            (false, _) => None,
            (true, Some(base)) => Some(crate::operator::jwks::jwks_url(base, &namespace, &name)),
            (true, None) => {
                return self.fail(
                    &mut entries,
                    fingerprint,
                    Reason::InvalidConnection,
                    "sendJku needs the JWK Set URL: start the operator with --jwks-public-url (chart value jwks.publicUrl), or drop sendJku".into(),
                    None,
                );
            }
        };
        let (capped, lowered) = self.ceilings.apply(&conn.spec);
        if !lowered.is_empty() {
            tracing::warn!(connection = %name, lowered = %lowered.join(", "), "the EpicConnection asks for more than the operator's ceilings allow; it runs at the ceilings");
        }

        let http = if own_tls.is_default() {
            self.http.clone()
        } else {
            match crate::http::client_with(&self.tls.merged(&own_tls)) {
                Ok(h) => h,
                Err(message) => {
                    return self.fail(
                        &mut entries,
                        fingerprint,
                        Reason::InvalidConnection,
                        message,
                        None,
                    );
                }
            }
        };
        let client = match connect(
            &http,
            &capped,
            keys,
            jku,
            self.observer
                .as_ref()
                .map(|make| make(&connection_label(&(namespace.clone(), name.clone())))),
            &self.endpoints,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => return self.fail_fhir(&mut entries, fingerprint, &e),
        };
        // What the last status says of the keys survives a rebuild or a restart: the key Epic
        // accepted stays the fallback, and a refused new key is not sent again at once.
        let remembered = conn.status.as_ref().and_then(|s| s.keys.as_ref());
        client.tokens().remember(
            remembered.and_then(|k| k.last_accepted_key_id.clone()),
            remembered.and_then(|k| k.refused_key_id.clone()),
        );
        if let Err(e) = client.tokens().token().await {
            return self.fail_fhir(&mut entries, fingerprint, &FhirError::Auth(e));
        }
        let capability = match client.capability().await {
            Ok(c) => Some(c),
            Err(e) if matches!(e.reason(), Reason::EpicUnavailable | Reason::Throttled) => {
                return self.fail_fhir(&mut entries, fingerprint, &e);
            }
            Err(e) => {
                tracing::warn!(connection = %name, reason = %e.reason(), "CapabilityStatement unreadable; write capability unknown");
                None
            }
        };
        let resync = match conn
            .spec
            .paging_session_ttl()
            .and_then(|_| conn.spec.resync_interval())
        {
            Ok(r) => r,
            Err(message) => {
                return self.fail(
                    &mut entries,
                    fingerprint,
                    Reason::InvalidConnection,
                    message,
                    None,
                );
            }
        };
        let handle = Arc::new(ConnectionHandle {
            fingerprint: fingerprint.clone(),
            writes: Mutex::new(write_capability(
                conn.spec.writes,
                capability.as_ref().map(Capability::can_update),
            )),
            client: Arc::new(client),
            spec: conn.spec.clone(),
            resync,
            capability,
            probe_time: crate::util::now_rfc3339(),
        });
        let changed = !matches!(&previous, Some(Entry::Ready(h)) if h.fingerprint == fingerprint);
        *entries = Some(Entry::Ready(handle.clone()));
        if changed {
            Built::Changed(handle)
        } else {
            Built::Unchanged(handle)
        }
    }

    fn fail_fhir(&self, entries: &mut Option<Entry>, fingerprint: String, e: &FhirError) -> Built {
        self.fail(
            entries,
            fingerprint,
            e.reason(),
            e.to_string(),
            e.http_status(),
        )
    }

    fn fail(
        &self,
        entries: &mut Option<Entry>,
        fingerprint: String,
        reason: Reason,
        message: String,
        http_status: Option<u16>,
    ) -> Built {
        let failure = ConnectionFailure {
            fingerprint,
            reason,
            message,
            http_status,
        };
        let changed = !matches!(entries, Some(Entry::Failed(f)) if f.reason == failure.reason && f.message == failure.message);
        *entries = Some(Entry::Failed(failure.clone()));
        Built::Failed(failure, changed)
    }

    /// Whether the connection is known (not deleted since it was first asked for).
    pub fn has(&self, key: &Key) -> bool {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }

    /// Every ready handle (for roster scans and token metrics). A connection being built
    /// right now is skipped, not waited for.
    pub async fn ready_handles(&self) -> Vec<(Key, Arc<ConnectionHandle>)> {
        let slots: Vec<(Key, Arc<Slot>)> = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        slots
            .into_iter()
            .filter_map(|(k, s)| match s.entry.try_lock().ok()?.as_ref()? {
                Entry::Ready(h) => Some((k, h.clone())),
                Entry::Failed(_) => None,
            })
            .collect()
    }
}

fn entry_result(name: &str, e: Entry) -> Result<Arc<ConnectionHandle>, Error> {
    match e {
        Entry::Ready(h) => Ok(h),
        Entry::Failed(f) => Err(Error::Connection {
            name: name.to_string(),
            failure: f,
        }),
    }
}
