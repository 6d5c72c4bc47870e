//! One error type for the controllers, with a stable `reason()` used for conditions, Events
//! and metric labels.

use crate::crd::Reason;
use crate::fhir::FhirError;

/// Why a connection is not usable, as practitioners report it.
#[derive(Clone, Debug)]
pub struct ConnectionFailure {
    pub fingerprint: String,
    pub reason: Reason,
    pub message: String,
    pub http_status: Option<u16>,
}

/// Why a reconcile could not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is invalid in a way the schema cannot express (e.g. NPI check digit).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// Another EpicPractitioner declares the same NPI on the same Epic instance (through this
    /// connection or another one to the same base URL); `other` says which.
    #[error(
        "{other} declares the same NPI on the same Epic instance: nothing is written for either until one of them is removed"
    )]
    DuplicateNpi { other: String },
    /// The EpicConnection is missing or not usable yet.
    #[error("{0}")]
    ConnectionNotReady(String),
    /// The EpicConnection exists but cannot be used (bad key, token refused, Epic down): its
    /// reason (Unauthorized, InvalidScope, ...) is what the practitioner reports.
    #[error("EpicConnection {name} is not ready: {}", failure.message)]
    Connection {
        name: String,
        failure: ConnectionFailure,
    },
    /// Talking to Epic failed.
    #[error(transparent)]
    Fhir(#[from] FhirError),
    /// Talking to Kubernetes failed.
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// The finalizer helper failed (adding or removing the finalizer).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Deletion waits for active=false to be written (deletionPolicy Deactivate), and it has
    /// not been: `why` is the reason that holds it (status says the same, with the way out).
    #[error(
        "deactivation not done yet ({why}); switch deletionPolicy to Orphan to release the object"
    )]
    DeletionBlocked { why: Reason },
}

/// Why `epic-operator run` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("cannot reach Kubernetes (kubeconfig or in-cluster config): {0}")]
    Kubernetes(#[source] kube::Error),
    #[error("leader election failed: {0}")]
    LeaderElection(#[source] kube::Error),
    #[error("cannot list {what} (are the CRDs installed and the RBAC applied?): {source}")]
    Startup {
        what: &'static str,
        source: kube::Error,
    },
    #[error("lost leadership: {0}")]
    LostLeadership(String),
    #[error("health server stopped: {0}")]
    HealthServer(String),
    #[error("JWK Set server: {0}")]
    JwksServer(String),
}

impl Error {
    /// Stable, low-cardinality reason.
    pub fn reason(&self) -> Reason {
        match self {
            Error::InvalidSpec(_) => Reason::InvalidSpec,
            Error::DuplicateNpi { .. } => Reason::DuplicateNpi,
            Error::ConnectionNotReady(_) => Reason::ConnectionNotReady,
            Error::Connection { failure, .. } => failure.reason,
            Error::Fhir(e) => e.reason(),
            Error::Kube(_) => Reason::KubernetesError,
            Error::Finalizer(_) => Reason::FinalizerError,
            Error::DeletionBlocked { .. } => Reason::DeletionBlocked,
        }
    }

    /// Retrying without a spec change cannot help.
    pub fn needs_spec_change(&self) -> bool {
        matches!(self, Error::InvalidSpec(_))
    }
}
