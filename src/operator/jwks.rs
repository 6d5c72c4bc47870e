//! The JWK Set URL Epic fetches client keys from: `GET`/`HEAD /jwks/{namespace}/{connection}`
//! answers the public keys of that EpicConnection, on a listener of its own.
//!
//! Every replica serves it, leader or not (the Service sends Epic to any ready pod), from a
//! table rebuilt in the background: a request never reaches the Kubernetes API, so the public
//! endpoint cannot be used to load it, and an unknown path costs nothing (404, no listing).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use sha2::{Digest, Sha256};

use super::connection::key_secret;
use crate::crd::{EpicConnection, KeyLayout};

/// How often every replica re-reads the connections and their Secrets' versions. A key the
/// leader adds is published by the other replicas within this; keys are published
/// `publishAhead` (hours by default) before they sign, so this is never the bottleneck.
const REFRESH: Duration = Duration::from_secs(10);

/// `max-age` of a single-key connection's set: a replaced key reaches Epic within it.
const SINGLE_KEY_MAX_AGE: Duration = Duration::from_secs(300);

/// One connection's published set.
#[derive(Clone, Debug)]
pub struct Published {
    pub body: Arc<str>,
    pub etag: String,
    pub max_age: Duration,
    /// The connection's uid/generation and the Secret's resourceVersion the set was built from.
    source_version: String,
}

/// The table behind the listener.
#[derive(Default)]
pub struct JwksPublisher {
    sets: RwLock<HashMap<(String, String), Published>>,
    /// The source version whose keys could not be published, per connection: warned about
    /// once, not at every refresh.
    unpublishable: std::sync::Mutex<HashMap<(String, String), String>>,
    /// The table was filled once: before that, every answer would be a false 404.
    loaded: std::sync::atomic::AtomicBool,
    refresh: tokio::sync::Notify,
}

impl JwksPublisher {
    pub fn get(&self, namespace: &str, name: &str) -> Option<Published> {
        self.sets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Whether the table was filled at least once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until the table was filled once, at most `limit` (a replica announces itself
    /// ready only with the keys it will serve).
    pub async fn wait_loaded(&self, limit: Duration) -> bool {
        let started = std::time::Instant::now();
        while !self.is_loaded() {
            if started.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    }

    /// Re-read now (a connection was deleted, or another replica's keys may have changed).
    pub fn refresh_now(&self) {
        self.refresh.notify_one();
    }

    /// Publishes `conn`'s keys from `secret` at once: the leader calls it right after writing
    /// a key, so its own listener never answers an older set than the keys it signs with.
    /// The other replicas follow at their next refresh.
    pub fn publish(&self, conn: &EpicConnection, secret: &Secret) -> Result<(), String> {
        let version = source_version(conn, secret.resource_version().as_deref());
        let set = published(conn, secret, version)?;
        self.sets
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((conn.namespace().unwrap_or_default(), conn.name_any()), set);
        Ok(())
    }

    /// Keeps the table current until the process ends.
    pub async fn run(self: Arc<Self>, kube: kube::Client, namespace: Option<String>) {
        loop {
            if let Err(e) = self.refresh_all(&kube, namespace.as_deref()).await {
                tracing::warn!(error = %e, "cannot refresh the published JWK Sets; serving the last ones");
            }
            tokio::select! {
                _ = tokio::time::sleep(REFRESH) => {}
                _ = self.refresh.notified() => {}
            }
        }
    }

    async fn refresh_all(
        &self,
        kube: &kube::Client,
        namespace: Option<&str>,
    ) -> Result<(), kube::Error> {
        let api: Api<EpicConnection> = match namespace {
            Some(ns) => Api::namespaced(kube.clone(), ns),
            None => Api::all(kube.clone()),
        };
        let connections = api.list(&ListParams::default()).await?;
        let previous = self.sets.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut next = HashMap::new();
        let mut listed = Vec::new();
        for conn in connections {
            let key = (conn.namespace().unwrap_or_default(), conn.name_any());
            listed.push(key.clone());
            if let Some(set) = self.refresh_one(kube, &conn, &key, &previous).await {
                next.insert(key, set);
            }
        }
        self.unpublishable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| listed.contains(key));
        self.install(&previous, next);
        Ok(())
    }

    /// The set to serve for one connection: read again only when its source version changed;
    /// on a read or parse failure the set served before stays (none: not published).
    async fn refresh_one(
        &self,
        kube: &kube::Client,
        conn: &EpicConnection,
        key: &(String, String),
        previous: &HashMap<(String, String), Published>,
    ) -> Option<Published> {
        let (ns, name) = key;
        let secrets: Api<Secret> = Api::namespaced(kube.clone(), ns);
        let secret_name = &conn.spec.private_key_secret_ref.name;
        let kept = || previous.get(key).cloned();
        // The version first (metadata only): the keys are read and parsed again only when
        // the Secret or the connection changed.
        let version = match secrets.get_metadata_opt(secret_name).await {
            Ok(Some(meta)) => source_version(conn, meta.resource_version().as_deref()),
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(connection = %name, namespace = %ns, error = %e, "cannot read the key Secret's version");
                return kept();
            }
        };
        if let Some(p) = previous.get(key)
            && p.source_version == version
        {
            return Some(p.clone());
        }
        match secrets.get_opt(secret_name).await {
            Ok(Some(secret)) => match published(conn, &secret, version.clone()) {
                Ok(p) => {
                    self.unpublishable
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(key);
                    Some(p)
                }
                Err(message) => {
                    let mut failed = self.unpublishable.lock().unwrap_or_else(|p| p.into_inner());
                    if failed.get(key) != Some(&version) {
                        tracing::warn!(connection = %name, namespace = %ns, error = %message, "keys not published");
                        failed.insert(key.clone(), version);
                    }
                    kept()
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(connection = %name, namespace = %ns, error = %e, "cannot read the key Secret");
                kept()
            }
        }
    }

    /// Serves `next` from now on, and marks the table loaded.
    fn install(
        &self,
        previous: &HashMap<(String, String), Published>,
        mut next: HashMap<(String, String), Published>,
    ) {
        let mut table = self.sets.write().unwrap_or_else(|p| p.into_inner());
        // A set `publish` put in while this refresh ran is newer than what it read: kept.
        for (key, current) in table.iter() {
            let untouched = previous
                .get(key)
                .is_some_and(|p| p.source_version == current.source_version);
            if !untouched && next.contains_key(key) {
                next.insert(key.clone(), current.clone());
            }
        }
        *table = next;
        self.loaded
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn source_version(conn: &EpicConnection, secret_version: Option<&str>) -> String {
    format!(
        "{}/{}/{}",
        conn.uid().unwrap_or_default(),
        conn.metadata.generation.unwrap_or_default(),
        secret_version.unwrap_or_default()
    )
}

/// The published form of a connection's keys: the JWK Set body (public members only), its
/// ETag and how long Epic may cache it.
pub fn published(
    conn: &EpicConnection,
    secret: &Secret,
    source_version: String,
) -> Result<Published, String> {
    let ring = key_secret::ring(conn, secret, chrono::Utc::now()).map_err(|e| e.to_string())?;
    let body = serde_json::to_string(&ring.jwks()).map_err(|e| e.to_string())?;
    let digest = Sha256::digest(body.as_bytes());
    let etag = format!(
        "\"{}\"",
        digest
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    Ok(Published {
        body: body.into(),
        etag,
        max_age: max_age(conn),
        source_version,
    })
}

/// How long Epic may cache the set: a quarter of `publishAhead`, so a new key is in every
/// well-behaved cache long before it signs (1 s to 1 h); 5 minutes for a single or pinned key.
pub fn max_age(conn: &EpicConnection) -> Duration {
    match conn.spec.key_layout() {
        Ok(KeyLayout::Several {
            periods,
            pinned: None,
            ..
        }) => (periods.publish_ahead / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600)),
        _ => SINGLE_KEY_MAX_AGE,
    }
}

/// The URL to register with Epic for a connection, under the operator's public base URL.
pub fn jwks_url(public_base: &str, namespace: &str, name: &str) -> String {
    format!(
        "{}/jwks/{namespace}/{name}",
        public_base.trim_end_matches('/')
    )
}

/// Serves the JWK Sets until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    publisher: Arc<JwksPublisher>,
) -> std::io::Result<()> {
    axum::serve(listener, router(publisher)).await
}

/// The routes: one per connection, nothing else (404), and only GET and HEAD (405).
pub fn router(publisher: Arc<JwksPublisher>) -> Router {
    Router::new()
        .route("/jwks/{namespace}/{connection}", get(jwk_set))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .with_state(publisher)
}

async fn jwk_set(
    State(publisher): State<Arc<JwksPublisher>>,
    Path((namespace, connection)): Path<(String, String)>,
    request_headers: HeaderMap,
) -> Response {
    if !publisher.is_loaded() {
        // Not a 404: the connection may well exist; Epic should come back shortly.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "keys not loaded yet",
        )
            .into_response();
    }
    let Some(set) = publisher.get(&namespace, &connection) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mut headers = HeaderMap::new();
    let cache = format!("public, max-age={}", set.max_age.as_secs());
    for (name, value) in [
        (header::CACHE_CONTROL, cache.as_str()),
        (header::ETAG, set.etag.as_str()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    let unchanged = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == set.etag || t.trim() == "*")
        });
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (StatusCode::OK, headers, set.body.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_the_public_base_and_the_connection() {
        assert_eq!(
            jwks_url("https://keys.example.org/", "epic-system", "tst"),
            "https://keys.example.org/jwks/epic-system/tst"
        );
    }
}
