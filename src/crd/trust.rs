//! How an EpicConnection trusts its Epic instance beyond the system roots (a hospital's
//! internal CA) and which client certificate it shows when Epic requires mutual TLS.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Secret entry a CA bundle is read from when `caSecretRef.key` is absent (the name
/// cert-manager and most CA tooling use).
pub const DEFAULT_CA_KEY: &str = "ca.crt";
/// The entries of a `kubernetes.io/tls` Secret.
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";

/// Trust and client identity of one connection; every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustSpec {
    /// PEM CA certificate(s) trusted in addition to the system roots, for an Epic instance
    /// whose certificate an internal CA issued. Public data: a certificate, never a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// A Secret (same namespace) whose entry holds PEM CA certificate(s), added to the
    /// system roots like `caBundle` (both may be set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<CaSecretRef>,
    /// A `kubernetes.io/tls` Secret (same namespace, entries `tls.crt` and `tls.key`): the
    /// client certificate shown to an Epic instance that requires mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_secret_ref: Option<SecretNameRef>,
}

/// A Secret entry holding PEM CA certificates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CaSecretRef {
    /// Secret name.
    pub name: String,
    /// Entry holding the PEM certificates. Absent: `ca.crt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl CaSecretRef {
    pub fn entry(&self) -> &str {
        self.key.as_deref().unwrap_or(DEFAULT_CA_KEY)
    }
}

/// A Secret by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretNameRef {
    /// Secret name.
    pub name: String,
}

impl TrustSpec {
    /// Nothing beyond the system roots and no client certificate.
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }
}
