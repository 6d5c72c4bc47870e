//! Live connections to Epic instances, one per EpicConnection, shared by every practitioner
//! that references it: one token cache, one rate limiter, one view of write capability.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use tokio::sync::Mutex as AsyncMutex;

use super::connector::{Connector, Unread, fhir_failure};
use crate::crd::{EpicConnection, EpicConnectionSpec, WriteMode};
use crate::fhir::{Capability, FhirClient, FhirError, RequestObserver};
use crate::http::EndpointPolicy;
use crate::operator::error::{ConnectionFailure, Error};
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
    /// A handle probed now: writes follow the mode and what the CapabilityStatement says.
    fn probed(
        fingerprint: String,
        client: Arc<FhirClient>,
        spec: EpicConnectionSpec,
        resync: Duration,
        capability: Option<Capability>,
    ) -> Self {
        Self {
            fingerprint,
            writes: Mutex::new(write_capability(
                spec.writes,
                capability.as_ref().map(Capability::can_update),
            )),
            client,
            spec,
            resync,
            capability,
            probe_time: crate::util::now_rfc3339(),
        }
    }

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
    connector: Connector,
    observer: Option<ObserverFactory>,
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    /// Every EpicConnection as declared (the connection watch's store), ready or not.
    declared: Store<EpicConnection>,
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
        declared: Store<EpicConnection>,
    ) -> Self {
        Self {
            connector: Connector {
                kube,
                http,
                endpoints,
                jwks_public_url,
                ceilings: crate::operator::Ceilings::default(),
                tls: crate::http::TlsOptions::default(),
            },
            observer,
            slots: Mutex::new(HashMap::new()),
            declared,
        }
    }

    /// Holds every connection's limits to these operator-wide ceilings.
    pub fn with_ceilings(mut self, ceilings: crate::operator::Ceilings) -> Self {
        self.connector.ceilings = ceilings;
        self
    }

    /// Trust `tls` for every connection (the shared client must have been built with it).
    pub fn with_tls(mut self, tls: crate::http::TlsOptions) -> Self {
        self.connector.tls = tls;
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
        let api: Api<EpicConnection> = Api::namespaced(self.connector.kube.clone(), namespace);
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
        let name = conn.name_any();
        let key = (conn.namespace().unwrap_or_default(), name.clone());
        // This connection's slot is held across the build: concurrent first uses wait for one
        // build instead of each requesting a token. Other connections are not held up.
        let slot = self.slot(&key);
        let mut entry = slot.entry.lock().await;
        let secrets = match self.connector.read_secrets(conn).await {
            Ok(s) => s,
            Err(Unread::Transient {
                failure,
                warning,
                error,
            }) => return keep_working(entry.as_ref(), &name, failure, warning, &error),
            Err(Unread::Lasting(failure)) => return record_failure(&mut entry, failure),
        };
        let fingerprint = secrets.fingerprint(conn);
        if let Some(Entry::Ready(h)) = entry.clone()
            && h.fingerprint == fingerprint
        {
            if !reprobe {
                return Built::Unchanged(h);
            }
            return reprobe_capability(&mut entry, &h, &name).await;
        }
        let observer = self
            .observer
            .as_ref()
            .map(|make| make(&connection_label(&key)));
        match self
            .connector
            .open(conn, secrets, &fingerprint, observer)
            .await
        {
            Ok(opened) => {
                let handle = Arc::new(ConnectionHandle::probed(
                    fingerprint,
                    Arc::new(opened.client),
                    conn.spec.clone(),
                    opened.resync,
                    opened.capability,
                ));
                *entry = Some(Entry::Ready(handle.clone()));
                // A ready entry with this fingerprint returned above: this one is new.
                Built::Changed(handle)
            }
            Err(failure) => record_failure(&mut entry, failure),
        }
    }

    /// Whether the connection is known (not deleted since it was first asked for).
    pub fn has(&self, key: &Key) -> bool {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }

    /// The other connections that point at the instance `handle` (of `key`) points at: those
    /// declared so, ready or not (one whose Secret is missing or whose build is under way still
    /// counts: its practitioners write once it is ready), and those whose ready handle still
    /// does (its spec has been changed but the handle not yet rebuilt).
    pub async fn others_on_instance(&self, key: &Key, handle: &ConnectionHandle) -> Vec<Key> {
        let declared = self.declared.state();
        let declared = declared.iter().map(|c| {
            (
                (c.namespace().unwrap_or_default(), c.name_any()),
                &*c.spec.fhir_base_url,
            )
        });
        let ready = self.ready_handles().await;
        let ready = ready.iter().map(|(k, h)| (k.clone(), h.base_url()));
        others_on_instance(key, handle.base_url(), declared.chain(ready))
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

/// The keys other than `key` whose base URL names the instance `base_url` names (as the FHIR
/// client reads a base URL: scheme and host case, a default port and a trailing slash do not
/// count), each once, in order.
fn others_on_instance<'a>(
    key: &Key,
    base_url: &str,
    connections: impl Iterator<Item = (Key, &'a str)>,
) -> Vec<Key> {
    let instance = instance_of(base_url);
    let mut others: Vec<Key> = Vec::new();
    for (k, url) in connections {
        if k != *key && instance.is_some() && instance_of(url) == instance && !others.contains(&k) {
            others.push(k);
        }
    }
    others
}

/// A base URL as the FHIR client holds it; none when it is no URL at all.
fn instance_of(base_url: &str) -> Option<String> {
    let url = url::Url::parse(base_url).ok()?;
    Some(url.as_str().trim_end_matches('/').to_string())
}

/// The Kubernetes API failing says nothing about the key: a working connection stays as it is,
/// and a failure is not cached, so the next use tries again (found by the fault suite: caching
/// it stalled every practitioner for up to a minute after the API server came back).
fn keep_working(
    entry: Option<&Entry>,
    name: &str,
    failure: ConnectionFailure,
    warning: &str,
    error: &str,
) -> Built {
    if let Some(Entry::Ready(h)) = entry {
        tracing::warn!(connection = %name, error = %error, "{warning}");
        return Built::Unchanged(h.clone());
    }
    Built::Failed(failure, true)
}

/// Same key and settings: keep the client (and its cached token); re-read only the
/// CapabilityStatement, which also resets a write refusal learned in Auto mode.
async fn reprobe_capability(
    entry: &mut Option<Entry>,
    h: &Arc<ConnectionHandle>,
    name: &str,
) -> Built {
    match h.client.capability().await {
        Ok(c) => {
            let handle = Arc::new(ConnectionHandle::probed(
                h.fingerprint.clone(),
                h.client.clone(),
                h.spec.clone(),
                h.resync,
                Some(c),
            ));
            *entry = Some(Entry::Ready(handle.clone()));
            Built::Unchanged(handle)
        }
        // Epic asked the client to wait (Retry-After, its daily limit): the connection is
        // sound, and a new client would not know to wait.
        Err(e) if matches!(e, FhirError::DailyLimit { .. }) || e.retry_after().is_some() => {
            tracing::info!(connection = %name, reason = %e.reason(), "capability probe deferred: Epic asked to wait");
            Built::Unchanged(h.clone())
        }
        Err(e) => record_failure(entry, fhir_failure(&h.fingerprint, &e)),
    }
}

/// Caches the failure; practitioners are woken only when it is news (another reason or
/// message than the failure cached before).
fn record_failure(entry: &mut Option<Entry>, failure: ConnectionFailure) -> Built {
    let changed = !matches!(entry, Some(Entry::Failed(f)) if f.reason == failure.reason && f.message == failure.message);
    *entry = Some(Entry::Failed(failure.clone()));
    Built::Failed(failure, changed)
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

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
