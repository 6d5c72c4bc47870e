//! Live connections to Epic instances, one per EpicConnection, shared by every practitioner
//! that references it: one token cache, one rate limiter, one view of write capability.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use tokio::sync::Mutex as AsyncMutex;

use super::error::Error;
use crate::crd::{EpicConnection, EpicConnectionSpec, WriteMode};
use crate::fhir::{Capability, FhirClient, FhirError, RequestObserver};
use crate::reconcile::{Normalizer, WriteCapability};
use crate::sync::{connect, write_capability};

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

/// Why a connection is not usable, as practitioners report it.
#[derive(Clone, Debug)]
pub struct ConnectionFailure {
    pub fingerprint: String,
    pub reason: &'static str,
    pub message: String,
    pub http_status: Option<u16>,
}

#[derive(Clone)]
enum Entry {
    Ready(Arc<ConnectionHandle>),
    Failed(ConnectionFailure),
}

/// The cache, keyed by (namespace, name).
pub struct Connections {
    kube: kube::Client,
    http: reqwest::Client,
    observer: Option<RequestObserver>,
    entries: AsyncMutex<HashMap<(String, String), Entry>>,
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
        observer: Option<RequestObserver>,
    ) -> Self {
        Self {
            kube,
            http,
            observer,
            entries: AsyncMutex::new(HashMap::new()),
        }
    }

    /// The connection for a practitioner: cached, or built now if never seen.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<Arc<ConnectionHandle>, Error> {
        let key = (namespace.to_string(), name.to_string());
        if let Some(e) = self.entries.lock().await.get(&key).cloned() {
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

    /// Drops a deleted connection.
    pub async fn forget(&self, namespace: &str, name: &str) {
        self.entries
            .lock()
            .await
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// Builds or re-probes the connection. `reprobe` forces a new CapabilityStatement read and
    /// token check even when nothing changed (the periodic connection resync).
    pub async fn build(&self, conn: &EpicConnection, reprobe: bool) -> Built {
        let namespace = conn.namespace().unwrap_or_default();
        let name = conn.name_any();
        let key = (namespace.clone(), name.clone());
        // Holding the lock across the build makes concurrent first uses wait for one build
        // instead of each requesting a token.
        let mut entries = self.entries.lock().await;
        let secret_api: Api<Secret> = Api::namespaced(self.kube.clone(), &namespace);
        let secret_ref = &conn.spec.private_key_secret_ref;
        let secret = match secret_api.get_opt(&secret_ref.name).await {
            Ok(s) => s,
            Err(e) => {
                return self.fail(
                    &mut entries,
                    key,
                    String::new(),
                    "KubernetesError",
                    format!("cannot read Secret {}: {e}", secret_ref.name),
                    None,
                );
            }
        };
        let fingerprint = format!(
            "{}/{}/{}",
            conn.uid().unwrap_or_default(),
            conn.metadata.generation.unwrap_or_default(),
            secret
                .as_ref()
                .and_then(|s| s.resource_version())
                .unwrap_or_default()
        );
        let previous = entries.get(&key).cloned();
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
                        writes: Mutex::new(write_capability(h.spec.writes, Some(&c))),
                        client: h.client.clone(),
                        spec: h.spec.clone(),
                        resync: h.resync,
                        capability: Some(c),
                        probe_time: crate::util::now_rfc3339(),
                    });
                    entries.insert(key, Entry::Ready(handle.clone()));
                    Built::Unchanged(handle)
                }
                Err(e) => self.fail_fhir(&mut entries, key, fingerprint, &e),
            };
        }
        let Some(secret) = secret else {
            return self.fail(&mut entries, key, fingerprint, "InvalidKey", format!(
                "Secret {} not found in namespace {namespace}: create it with the private key PEM under key {}",
                secret_ref.name, secret_ref.key
            ), None);
        };
        let Some(pem) = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&secret_ref.key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
        else {
            return self.fail(
                &mut entries,
                key,
                fingerprint,
                "InvalidKey",
                format!(
                    "Secret {} has no key {:?} holding a PEM private key",
                    secret_ref.name, secret_ref.key
                ),
                None,
            );
        };
        let client = match connect(&self.http, &conn.spec, &pem, self.observer.clone()).await {
            Ok(c) => c,
            Err(e) => return self.fail_fhir(&mut entries, key, fingerprint, &e),
        };
        if let Err(e) = client.tokens().token().await {
            return self.fail_fhir(&mut entries, key, fingerprint, &FhirError::Auth(e));
        }
        let capability = match client.capability().await {
            Ok(c) => Some(c),
            Err(e) if e.reason() == "EpicUnavailable" || e.reason() == "Throttled" => {
                return self.fail_fhir(&mut entries, key, fingerprint, &e);
            }
            Err(e) => {
                tracing::warn!(connection = %name, reason = e.reason(), "CapabilityStatement unreadable; write capability unknown");
                None
            }
        };
        let resync = match conn.spec.resync_interval() {
            Ok(r) => r,
            Err(message) => {
                return self.fail(
                    &mut entries,
                    key,
                    fingerprint,
                    "InvalidConnection",
                    message,
                    None,
                );
            }
        };
        let handle = Arc::new(ConnectionHandle {
            fingerprint: fingerprint.clone(),
            writes: Mutex::new(write_capability(conn.spec.writes, capability.as_ref())),
            client: Arc::new(client),
            spec: conn.spec.clone(),
            resync,
            capability,
            probe_time: crate::util::now_rfc3339(),
        });
        let changed = !matches!(&previous, Some(Entry::Ready(h)) if h.fingerprint == fingerprint);
        entries.insert(key, Entry::Ready(handle.clone()));
        if changed {
            Built::Changed(handle)
        } else {
            Built::Unchanged(handle)
        }
    }

    fn fail_fhir(
        &self,
        entries: &mut HashMap<(String, String), Entry>,
        key: (String, String),
        fingerprint: String,
        e: &FhirError,
    ) -> Built {
        self.fail(
            entries,
            key,
            fingerprint,
            e.reason(),
            e.to_string(),
            e.http_status(),
        )
    }

    fn fail(
        &self,
        entries: &mut HashMap<(String, String), Entry>,
        key: (String, String),
        fingerprint: String,
        reason: &'static str,
        message: String,
        http_status: Option<u16>,
    ) -> Built {
        let failure = ConnectionFailure {
            fingerprint,
            reason,
            message,
            http_status,
        };
        let changed = !matches!(entries.get(&key), Some(Entry::Failed(f)) if f.reason == failure.reason && f.message == failure.message);
        entries.insert(key, Entry::Failed(failure.clone()));
        Built::Failed(failure, changed)
    }

    /// Every ready handle (for roster scans and token metrics).
    pub async fn ready_handles(&self) -> Vec<((String, String), Arc<ConnectionHandle>)> {
        self.entries
            .lock()
            .await
            .iter()
            .filter_map(|(k, e)| match e {
                Entry::Ready(h) => Some((k.clone(), h.clone())),
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
