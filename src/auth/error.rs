//! Why no token could be had: the OAuth error, the endpoint's failure or the configuration
//! problem, each with its reason for conditions and metrics.

use super::keys::KeyError;
use crate::crd::Reason;

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint answered with an OAuth error (RFC 6749 section 5.2).
    #[error("token request refused: {error}{}{}", .description.as_ref().map(|d| format!(": {d}")).unwrap_or_default(), oauth_hint(.error))]
    OAuth {
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// The token endpoint failed without an OAuth error body.
    #[error("token endpoint answered HTTP {status}: {detail}")]
    Endpoint { status: u16, detail: String },
    /// The token endpoint could not be reached.
    #[error("token endpoint unreachable: {0}")]
    Transport(String),
    /// Token URL discovery through .well-known/smart-configuration failed.
    #[error("token URL discovery failed: {0}")]
    Discovery(String),
    /// The TLS connection to the token or discovery endpoint cannot work as configured (an
    /// untrusted CA, a plain-http port, a wrong host name, a missing client certificate).
    #[error("{0}")]
    Tls(String),
    /// A URL that must not carry credentials.
    #[error("{0}")]
    InsecureUrl(String),
    /// The signing key is unusable.
    #[error("{0}")]
    Key(String),
}

fn oauth_hint(error: &str) -> &'static str {
    match error {
        "invalid_scope" => {
            " (a requested scope was not approved when the app was registered with Epic; nothing can change that at run time: request only approved scopes or have the registration amended)"
        }
        "invalid_client" => {
            " (Epic rejected the client assertion: check client id, key id, that the public key is registered and that this host's clock is right)"
        }
        "unauthorized_client" => {
            " (the client is not allowed this grant: the Epic admin must enable Backend Services and map the client to an Epic user)"
        }
        "invalid_grant" => {
            " (the grant was rejected: check the assertion's audience equals the token URL exactly)"
        }
        _ => "",
    }
}

impl AuthError {
    /// Stable reason for conditions and metrics.
    pub fn reason(&self) -> Reason {
        match self {
            AuthError::OAuth { error, .. } if error == "invalid_scope" => Reason::InvalidScope,
            AuthError::OAuth { status: 429, .. } | AuthError::Endpoint { status: 429, .. } => {
                Reason::Throttled
            }
            AuthError::OAuth { .. } => Reason::Unauthorized,
            AuthError::Endpoint { .. } | AuthError::Transport(_) | AuthError::Discovery(_) => {
                Reason::EpicUnavailable
            }
            AuthError::InsecureUrl(_) | AuthError::Tls(_) => Reason::InvalidConnection,
            AuthError::Key(_) => Reason::InvalidKey,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            AuthError::OAuth { status, .. } | AuthError::Endpoint { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<KeyError> for AuthError {
    fn from(e: KeyError) -> Self {
        AuthError::Key(e.to_string())
    }
}

/// A request that got no answer: [`AuthError::Tls`] (lasting, InvalidConnection) when only a
/// change of configuration fixes it, else `transient` (EpicUnavailable).
pub(super) fn unreachable(
    what: &str,
    e: &reqwest::Error,
    transient: fn(String) -> AuthError,
) -> AuthError {
    let text = crate::http::describe_transport_error(e);
    if crate::http::classify(e).needs_configuration() {
        AuthError::Tls(format!("{what}: {text}"))
    } else {
        transient(text)
    }
}
