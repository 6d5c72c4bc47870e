//! How one connection is opened: what every connection is built with (the shared HTTP client,
//! the endpoint policy, the ceilings, the operator-wide trust), and the steps of opening one
//! from its EpicConnection and Secrets: the key ring, `jku`, the HTTP client, discovery, a
//! first token and the CapabilityStatement. The cache (`cache.rs`) decides when to open one
//! and what it keeps of the result.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::auth::KeyRing;
use crate::crd::{EpicConnection, Reason};
use crate::fhir::{Capability, FhirClient, FhirError, RequestObserver};
use crate::http::{EndpointPolicy, TlsOptions};
use crate::operator::Ceilings;
use crate::operator::error::ConnectionFailure;
use crate::pipeline::connect;

/// What every connection is opened with.
pub(super) struct Connector {
    pub(super) kube: kube::Client,
    pub(super) http: reqwest::Client,
    pub(super) endpoints: EndpointPolicy,
    /// The operator's public base URL of its JWK Set listener (for `jku`).
    pub(super) jwks_public_url: Option<String>,
    pub(super) ceilings: Ceilings,
    /// CAs every connection trusts (the operator's --ca-file, chart value caBundle); `http`
    /// already trusts them.
    pub(super) tls: TlsOptions,
}

/// The Secrets a build reads every time: the key Secret (absent: `None`) and the connection's
/// own CA and client certificate.
pub(super) struct ConnectionSecrets {
    key: Option<Secret>,
    tls: TlsOptions,
}

impl ConnectionSecrets {
    /// uid/generation/key Secret resourceVersion/TLS digest: a change means the connection
    /// must be opened again.
    pub(super) fn fingerprint(&self, conn: &EpicConnection) -> String {
        format!(
            "{}/{}/{}/{}",
            conn.uid().unwrap_or_default(),
            conn.metadata.generation.unwrap_or_default(),
            self.key
                .as_ref()
                .and_then(|s| s.resource_version())
                .unwrap_or_default(),
            self.tls.digest()
        )
    }
}

/// Why the Secrets could not be read.
pub(super) enum Unread {
    /// The Kubernetes API failed: this says nothing about the key or the certificates.
    Transient {
        failure: ConnectionFailure,
        /// What the log says when a working connection is kept instead.
        warning: &'static str,
        error: String,
    },
    /// The TLS settings are wrong in a way a retry does not fix.
    Lasting(ConnectionFailure),
}

/// A connection that was opened: a token was obtained, the CapabilityStatement was read (if it
/// could be).
pub(super) struct Opened {
    pub(super) client: FhirClient,
    pub(super) capability: Option<Capability>,
    pub(super) resync: Duration,
}

/// A failure of a connection before a request reached Epic (no HTTP status).
fn refused(fingerprint: &str, reason: Reason, message: String) -> ConnectionFailure {
    ConnectionFailure {
        fingerprint: fingerprint.to_string(),
        reason,
        message,
        http_status: None,
    }
}

/// A failure Epic (or the way to it) answered.
pub(super) fn fhir_failure(fingerprint: &str, e: &FhirError) -> ConnectionFailure {
    ConnectionFailure {
        fingerprint: fingerprint.to_string(),
        reason: e.reason(),
        message: e.to_string(),
        http_status: e.http_status(),
    }
}

impl Connector {
    /// Reads the key Secret and the connection's TLS Secrets, in that order.
    pub(super) async fn read_secrets(
        &self,
        conn: &EpicConnection,
    ) -> Result<ConnectionSecrets, Unread> {
        let namespace = conn.namespace().unwrap_or_default();
        let secret_api: Api<Secret> = Api::namespaced(self.kube.clone(), &namespace);
        let secret_name = &conn.spec.private_key_secret_ref.name;
        let key = secret_api
            .get_opt(secret_name)
            .await
            .map_err(|e| Unread::Transient {
                failure: refused(
                    "",
                    Reason::KubernetesError,
                    format!("cannot read Secret {secret_name}: {e}"),
                ),
                warning: "cannot re-read the Secret; the connection stays as it was",
                error: e.to_string(),
            })?;
        // The connection's own CA and client certificate, read every build like its key: a
        // renewed certificate changes the digest and so rebuilds the client.
        let tls = super::tls::options(&self.kube, &namespace, &conn.spec)
            .await
            .map_err(|f| {
                if f.transient {
                    Unread::Transient {
                        failure: refused("", f.reason, f.message.clone()),
                        warning: "cannot re-read a TLS Secret; the connection stays as it was",
                        error: f.message,
                    }
                } else {
                    Unread::Lasting(refused("", f.reason, f.message))
                }
            })?;
        Ok(ConnectionSecrets { key, tls })
    }

    /// Opens the connection: each step's failure is the connection's failure, in this order.
    pub(super) async fn open(
        &self,
        conn: &EpicConnection,
        secrets: ConnectionSecrets,
        fingerprint: &str,
        observer: Option<RequestObserver>,
    ) -> Result<Opened, ConnectionFailure> {
        let fail = |reason, message| refused(fingerprint, reason, message);
        let keys = key_ring(conn, secrets.key).map_err(|(reason, m)| fail(reason, m))?;
        let jku = self
            .jku(conn)
            .map_err(|m| fail(Reason::InvalidConnection, m))?;
        let name = conn.name_any();
        let (capped, lowered) = self.ceilings.apply(&conn.spec);
        if !lowered.is_empty() {
            tracing::warn!(connection = %name, lowered = %lowered.join(", "), "the EpicConnection asks for more than the operator's ceilings allow; it runs at the ceilings");
        }
        let http = self
            .http_for(&secrets.tls)
            .map_err(|m| fail(Reason::InvalidConnection, m))?;
        let client = connect(&http, &capped, keys, jku, observer, &self.endpoints)
            .await
            .map_err(|e| fhir_failure(fingerprint, &e))?;
        remember_keys(&client, conn);
        if let Err(e) = client.tokens().token().await {
            return Err(fhir_failure(fingerprint, &FhirError::Auth(e)));
        }
        let capability = probe_capability(&client, &name)
            .await
            .map_err(|e| fhir_failure(fingerprint, &e))?;
        let resync = conn
            .spec
            .paging_session_ttl()
            .and_then(|_| conn.spec.resync_interval())
            .map_err(|m| fail(Reason::InvalidConnection, m))?;
        Ok(Opened {
            client,
            capability,
            resync,
        })
    }

    /// The `jku` header assertions carry: this connection's JWK Set URL, when it asks for one.
    fn jku(&self, conn: &EpicConnection) -> Result<Option<String>, String> {
        match (conn.spec.send_jku, &self.jwks_public_url) {
            (false, _) => Ok(None),
            (true, Some(base)) => Ok(Some(crate::operator::jwks::jwks_url(
                base,
                &conn.namespace().unwrap_or_default(),
                &conn.name_any(),
            ))),
            (true, None) => Err("sendJku needs the JWK Set URL: start the operator with --jwks-public-url (chart value jwks.publicUrl), or drop sendJku".into()),
        }
    }

    /// The shared client, or one of the connection's own when it sets a CA or a client
    /// certificate.
    fn http_for(&self, own_tls: &TlsOptions) -> Result<reqwest::Client, String> {
        if own_tls.is_default() {
            Ok(self.http.clone())
        } else {
            crate::http::client_with(&self.tls.merged(own_tls))
        }
    }
}

/// The connection's keys from its Secret; a missing Secret says how to create it.
fn key_ring(conn: &EpicConnection, secret: Option<Secret>) -> Result<KeyRing, (Reason, String)> {
    let secret_ref = &conn.spec.private_key_secret_ref;
    let Some(secret) = secret else {
        let what = match &secret_ref.key {
            Some(entry) => format!("the private key PEM under key {entry}"),
            None => "one <kid>.pem entry per private key".to_string(),
        };
        let namespace = conn.namespace().unwrap_or_default();
        return Err((
            Reason::InvalidKey,
            format!(
                "Secret {} not found in namespace {namespace}: create it with {what}",
                secret_ref.name
            ),
        ));
    };
    super::key_secret::ring(conn, &secret, chrono::Utc::now()).map_err(|e| {
        let reason = if conn.spec.key_layout().is_err() {
            Reason::InvalidConnection
        } else {
            Reason::InvalidKey
        };
        (reason, e.to_string())
    })
}

/// What the last status says of the keys survives a rebuild or a restart: the key Epic
/// accepted stays the fallback, and a refused new key is not sent again at once.
fn remember_keys(client: &FhirClient, conn: &EpicConnection) {
    let remembered = conn.status.as_ref().and_then(|s| s.keys.as_ref());
    client.tokens().remember(
        remembered.and_then(|k| k.last_accepted_key_id.clone()),
        remembered.and_then(|k| k.refused_key_id.clone()),
    );
}

/// The CapabilityStatement: Epic unavailable or throttling fails the build; any other failure
/// leaves the write capability unknown.
async fn probe_capability(
    client: &FhirClient,
    name: &str,
) -> Result<Option<Capability>, FhirError> {
    match client.capability().await {
        Ok(c) => Ok(Some(c)),
        Err(e) if matches!(e.reason(), Reason::EpicUnavailable | Reason::Throttled) => Err(e),
        Err(e) => {
            tracing::warn!(connection = %name, reason = %e.reason(), "CapabilityStatement unreadable; write capability unknown");
            Ok(None)
        }
    }
}
