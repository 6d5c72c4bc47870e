//! The TLS flags of the commands that connect to Epic, and of `run`.

use std::path::PathBuf;

use clap::Args;

use crate::gitops::TlsFiles;
use crate::http::{PemSource, TlsOptions};

/// CA and client certificate files for a `--connection` manifest. The manifest's
/// `spec.caBundle` is used as it is; `caSecretRef` and `clientCertificateSecretRef` name
/// Secrets the command line does not read, so their contents are given here.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// A PEM file of CA certificates trusted besides the system roots (the internal CA of an
    /// on-premises Epic). Repeatable.
    #[arg(long = "ca-file", value_name = "PEM", requires = "connection")]
    pub ca_files: Vec<PathBuf>,
    /// The client certificate (PEM, the client's own first) for an Epic that requires mutual
    /// TLS: the tls.crt of the connection's clientCertificateSecretRef.
    #[arg(long, value_name = "PEM", requires_all = ["connection", "client_key"])]
    pub client_cert: Option<PathBuf>,
    /// The private key of --client-cert (the tls.key).
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

impl From<&TlsArgs> for TlsFiles {
    fn from(a: &TlsArgs) -> Self {
        TlsFiles {
            ca_files: a.ca_files.clone(),
            client_certificate: a.client_cert.clone().zip(a.client_key.clone()),
        }
    }
}

/// The operator's `--ca-file` files, read and checked at start-up.
pub(super) fn operator_tls(ca_files: &[PathBuf]) -> Result<TlsOptions, String> {
    let mut out = TlsOptions::default();
    for path in ca_files {
        out.extra_roots.push(PemSource::read_file(path)?);
    }
    // Checked now, so a wrong file stops the start with its name instead of failing later.
    crate::http::client_with(&out).map(|_| out)
}
