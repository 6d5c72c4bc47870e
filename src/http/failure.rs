//! Why a request never got an answer, as one of a few classes a platform engineer can act on,
//! each with its fix. The classes come from the error's causes (I/O error kinds, the TLS
//! library's error values, the proxy tunnel's answer), never from its wording, and the TLS
//! library's own text is not shown: it names protocol internals, not the fix.

use std::error::Error as StdError;

/// A class of network failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetFailure {
    /// Nothing accepted the TCP connection.
    Refused,
    /// The host name did not resolve.
    Dns,
    /// No answer in time (connect or response).
    Timeout,
    /// The server answered something other than TLS (a plain-http port).
    NotTls,
    /// The certificate's issuer is not trusted.
    UntrustedCa,
    /// The certificate does not name the host.
    NameMismatch,
    /// The certificate expired or is not valid yet.
    Expired,
    /// The server wants a client certificate and none (or one it refuses) was sent.
    ClientCertificate,
    /// The proxy answered the tunnel request with a refusal.
    ProxyRefused,
    /// The proxy wants credentials.
    ProxyAuth,
    /// The proxy itself could not be reached.
    ProxyUnreachable,
    /// The TLS handshake failed otherwise.
    Tls,
    /// Anything else.
    Other,
}

impl NetFailure {
    /// Failures only a change of configuration fixes (a CA to trust, the right port or host
    /// name, a client certificate), as opposed to ones that may pass by themselves.
    pub fn needs_configuration(self) -> bool {
        matches!(
            self,
            NetFailure::NotTls
                | NetFailure::UntrustedCa
                | NetFailure::NameMismatch
                | NetFailure::ClientCertificate
        )
    }
}

/// The class of a transport error.
pub fn classify(e: &reqwest::Error) -> NetFailure {
    let mut through_proxy = None;
    let mut found = None;
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    // Bounded: error chains are short and acyclic; the cap guards against a cycle anyway.
    for _ in 0..32 {
        let Some(err) = source else { break };
        if let Some(class) = tunnel_class(err) {
            through_proxy = Some(class);
        }
        if found.is_none() {
            found = own_class(err);
        }
        // io::Error hides its inner error from `source()`: look inside explicitly.
        source = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => err.source(),
        };
    }
    match (through_proxy, found) {
        // The tunnel could not be opened: what failed was the way to the proxy.
        (Some(NetFailure::ProxyUnreachable), _) => NetFailure::ProxyUnreachable,
        (Some(class), _) => class,
        (None, Some(class)) => class,
        (None, None) if e.is_timeout() => NetFailure::Timeout,
        (None, None) if e.is_dns() => NetFailure::Dns,
        (None, None) => NetFailure::Other,
    }
}

/// The proxy tunnel's own failures (hyper-util's tunnel error, which is not exported: known by
/// its fixed wording).
fn tunnel_class(err: &(dyn StdError + 'static)) -> Option<NetFailure> {
    let text = err.to_string();
    let rest = text.strip_prefix("tunnel error: ")?;
    Some(match rest {
        "proxy authorization required" => NetFailure::ProxyAuth,
        "failed to create underlying connection" => NetFailure::ProxyUnreachable,
        _ => NetFailure::ProxyRefused,
    })
}

fn own_class(err: &(dyn StdError + 'static)) -> Option<NetFailure> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(tls_class(tls));
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind as K;
        match io.kind() {
            K::ConnectionRefused => return Some(NetFailure::Refused),
            K::TimedOut => return Some(NetFailure::Timeout),
            _ => {}
        }
    }
    if let Some(r) = err.downcast_ref::<reqwest::Error>()
        && r.is_dns()
    {
        return Some(NetFailure::Dns);
    }
    None
}

fn tls_class(e: &rustls::Error) -> NetFailure {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    match e {
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => NetFailure::NotTls,
        E::InvalidCertificate(c) => match c {
            C::NotValidForName | C::NotValidForNameContext { .. } => NetFailure::NameMismatch,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => NetFailure::Expired,
            _ => NetFailure::UntrustedCa,
        },
        E::AlertReceived(A::CertificateRequired | A::BadCertificate | A::UnknownCA)
        | E::NoCertificatesPresented => NetFailure::ClientCertificate,
        // TLS 1.2 servers refuse a missing client certificate with a bare handshake failure.
        E::AlertReceived(A::HandshakeFailure | A::AccessDenied) => NetFailure::ClientCertificate,
        _ => NetFailure::Tls,
    }
}

/// `host:port` (or the host) of the failed request, for the message.
fn endpoint(e: &reqwest::Error) -> String {
    e.url()
        .map(|u| {
            let host = u.host_str().unwrap_or_default();
            match u.port_or_known_default() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            }
        })
        .unwrap_or_else(|| "the server".into())
}

/// What happened and what to do, in one sentence per class.
pub fn explain(class: NetFailure, e: &reqwest::Error) -> String {
    let at = endpoint(e);
    let host = e
        .url()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "the server".into());
    match class {
        NetFailure::Refused => format!(
            "connection refused by {at}: nothing listens there or a firewall rejects the connection; check the host and port in the URL, and that the cluster may reach it (NetworkPolicy, egress rules)"
        ),
        NetFailure::Dns => format!(
            "the host name {host} did not resolve (DNS): check its spelling in the URL, and that the cluster's DNS resolves it (an internal name may need the hospital's DNS, or the egress proxy in HTTPS_PROXY)"
        ),
        NetFailure::Timeout => format!(
            "no answer from {at} in time: a firewall may be dropping the traffic silently; allow egress to it, or set HTTPS_PROXY if the cluster reaches the outside only through a proxy"
        ),
        NetFailure::NotTls => format!(
            "{at} did not answer with TLS (a plain-http port?): use the https port of the server in the URL"
        ),
        NetFailure::UntrustedCa => format!(
            "the certificate of {host} is not issued by a trusted CA (an internal CA?): add that CA's PEM certificate as spec.caBundle or spec.caSecretRef on the EpicConnection (chart value caBundle for every connection; --ca-file on the command line)"
        ),
        NetFailure::NameMismatch => format!(
            "the certificate of {host} is not valid for the name {host}: use the host name the certificate was issued for in the URL (not an IP address or an alias), or have the certificate reissued with this name"
        ),
        NetFailure::Expired => format!(
            "the certificate of {host} has expired or is not valid yet: have it renewed (or check this node's clock)"
        ),
        NetFailure::ClientCertificate => format!(
            "{host} requires a client certificate it accepts (mutual TLS): set spec.clientCertificateSecretRef to a kubernetes.io/tls Secret with the certificate registered for this client (--client-cert and --client-key on the command line)"
        ),
        NetFailure::ProxyRefused => format!(
            "the proxy refused the tunnel to {at}: ask for {host} to be allowed on the egress proxy, or list the host in NO_PROXY if it is reached directly"
        ),
        NetFailure::ProxyAuth => {
            "the proxy requires authentication: put the credentials in the proxy URL (HTTPS_PROXY=http://user:password@proxy:3128), from a Secret".to_string()
        }
        NetFailure::ProxyUnreachable => format!(
            "the proxy (HTTPS_PROXY/HTTP_PROXY) used to reach {at} could not be reached: check the proxy's host and port, or unset it (or list {host} in NO_PROXY) if the cluster reaches Epic directly"
        ),
        NetFailure::Tls => format!(
            "the TLS handshake with {at} failed: check that it is the https port of the Epic server, and that the server allows TLS 1.2 or 1.3"
        ),
        NetFailure::Other => format!("the request to {at} failed"),
    }
}
