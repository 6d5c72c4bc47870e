//! Transport shared by the FHIR client and the token source: the HTTP client, which URLs may
//! carry credentials, and bounded body reads. It sits below both `auth` and `fhir`.

use url::Url;

mod failure;
mod tls;

pub use failure::{NetFailure, classify};
pub use tls::{ClientCertificate, PemSource, TlsOptions, describe_non_pem};

/// Builds the HTTP client every connection uses: rustls with certificate verification against
/// the system roots, and timeouts so a silent server cannot hang a reconcile. The standard
/// HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY variables are honoured (reqwest reads them;
/// nothing here turns that off).
pub fn client() -> Result<reqwest::Client, String> {
    client_with(&TlsOptions::default())
}

/// [`client`] with extra trusted CAs and a client certificate, each checked first so a wrong
/// file is named with what it is.
pub fn client_with(options: &TlsOptions) -> Result<reqwest::Client, String> {
    // A no-op when already installed; needed because reqwest is built without a default provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = Vec::new();
    for source in &options.extra_roots {
        roots.extend(tls::ca_certificates(source)?);
    }
    let mut builder = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("epic-operator/", env!("CARGO_PKG_VERSION")));
    if !roots.is_empty() {
        builder = builder.tls_certs_merge(roots);
    }
    if let Some(c) = &options.client_certificate {
        builder = builder.identity(tls::identity(c)?);
    }
    builder.build().map_err(|_| {
        let origins: Vec<&str> = options
            .extra_roots
            .iter()
            .map(|r| r.origin.as_str())
            .collect();
        if origins.is_empty() {
            "cannot set up TLS for the HTTP client".to_string()
        } else {
            format!(
                "cannot set up TLS with the CA certificates of {}: check that each is a CA certificate (not a server certificate with its key)",
                origins.join(", ")
            )
        }
    })
}

/// The floor every client keeps whatever the policy: credentials go only over https with
/// certificate checks, or plain http to loopback (the sandbox, local test servers). Which of
/// those an EpicConnection may use is decided by its [`EndpointPolicy`] in `pipeline::connect`.
pub fn require_allowed_url(raw: &str) -> Result<Url, String> {
    EndpointPolicy::development().check_scheme("URL", raw)
}

/// Where an EpicConnection may send credentials. Whoever can edit an EpicConnection chooses
/// its URLs, so the operator, not the manifest, decides which hosts may receive a client
/// assertion (the token URL) and a bearer token (the FHIR base URL).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// Plain http to loopback hosts (the built-in sandbox, local test servers). Development
    /// only: in a cluster, loopback can be a sidecar's admin port.
    pub allow_loopback_http: bool,
    /// Token hosts allowed besides the FHIR base URL's own host.
    pub allowed_token_hosts: Vec<String>,
}

impl EndpointPolicy {
    /// The policy of the built-in sandbox flow: loopback http allowed.
    pub fn development() -> Self {
        Self {
            allow_loopback_http: true,
            allowed_token_hosts: Vec::new(),
        }
    }

    fn check_scheme(&self, what: &str, raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw).map_err(|e| format!("{what} {raw:?} is not a URL: {e}"))?;
        match url.scheme() {
            "https" => Ok(url),
            "http" if is_loopback(&url) && self.allow_loopback_http => Ok(url),
            "http" if is_loopback(&url) => Err(format!(
                "{what} {raw} uses plain http: refused outside development (start with --insecure-allow-loopback-http to reach a local test server)"
            )),
            "http" => Err(format!("{what} {raw} uses plain http: use https")),
            other => Err(format!("{what} {raw} has scheme {other:?}: use https")),
        }
    }

    /// The FHIR base URL (where bearer tokens go) must be https (or allowed loopback http).
    pub fn check_fhir_base(&self, raw: &str) -> Result<Url, String> {
        self.check_scheme("fhirBaseUrl", raw)
    }

    /// A token URL (configured, or `discovered` from smart-configuration) must pass the scheme
    /// rule and be on the FHIR base URL's host or an allowed token host: otherwise a manifest
    /// could pair its own FHIR server with Epic's token endpoint and collect live tokens.
    pub fn check_token_url(
        &self,
        fhir_base: &str,
        token_url: &str,
        discovered: bool,
    ) -> Result<Url, String> {
        let what = if discovered {
            "the discovered token_endpoint"
        } else {
            "tokenUrl"
        };
        let base = self.check_fhir_base(fhir_base)?;
        let token = self.check_scheme(what, token_url)?;
        let host = |u: &Url| u.host_str().unwrap_or_default().to_ascii_lowercase();
        let (base_host, token_host) = (host(&base), host(&token));
        let allowed = token_host == base_host
            || self
                .allowed_token_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&token_host));
        if allowed {
            Ok(token)
        } else {
            Err(format!(
                "{what} {token_url} is on host {token_host}, which is neither the FHIR base URL's host ({base_host}) nor an allowed token host; client assertions are only sent there. If Epic really serves tokens from that host, start the operator with --allowed-token-host {token_host} (chart value allowedTokenHosts)"
            ))
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// scheme://host:port of a URL, for same-origin checks.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Reads a response body, failing once it exceeds `limit` bytes (a runaway or hostile server
/// must not exhaust the operator's memory).
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    if let Some(len) = response.content_length()
        && len as usize > limit
    {
        return Err(format!(
            "response of {len} bytes exceeds the {limit}-byte limit"
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| describe_transport_error(&e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!("response exceeds the {limit}-byte limit"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error as text, without the URL's query (which may hold search values): the
/// class of failure and its fix (see [`failure`]), then the URL.
pub fn describe_transport_error(e: &reqwest::Error) -> String {
    let class = classify(e);
    let target = e
        .url()
        .map(|u| format!(" ({}{})", origin_of(u), u.path()))
        .unwrap_or_default();
    let explained = failure::explain(class, e);
    if class != NetFailure::Other {
        let prefix = if e.is_timeout() {
            "timed out"
        } else {
            "connection failed"
        };
        return format!("{prefix}{target}: {explained}");
    }
    let kind = if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut cause = String::new();
    // Bounded: error chains are short; the cap guards against a cycle.
    for _ in 0..32 {
        let Some(s) = source else { break };
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        format!("{kind}{target}")
    } else {
        format!("{kind}{target}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(require_allowed_url("https://epic.example.org/api/FHIR/R4").is_ok());
        assert!(require_allowed_url("http://127.0.0.1:8080/api").is_ok());
        assert!(require_allowed_url("http://127.8.0.1:8080/api").is_ok());
        assert!(require_allowed_url("http://[::1]:8080/api").is_ok());
        assert!(require_allowed_url("http://localhost/api").is_ok());
        assert!(require_allowed_url("http://epic.example.org/api").is_err());
        assert!(require_allowed_url("http://10.0.0.1/api").is_err());
        assert!(require_allowed_url("ftp://x/").is_err());
        assert!(require_allowed_url("not a url").is_err());
    }
}

#[cfg(test)]
mod endpoint_policy_tests {
    use super::*;

    #[test]
    fn tokens_go_only_to_the_fhir_host_or_an_allowed_one() {
        let strict = EndpointPolicy::default();
        let base = "https://fhir.hospital.example.org/api/FHIR/R4";
        assert!(
            strict
                .check_token_url(
                    base,
                    "https://fhir.hospital.example.org/oauth2/token",
                    false
                )
                .is_ok()
        );
        // One's own FHIR server paired with the hospital's token endpoint: refused.
        let e = strict
            .check_token_url(
                "https://attacker.example/fhir",
                "https://fhir.hospital.example.org/oauth2/token",
                false,
            )
            .unwrap_err();
        assert!(
            e.contains("tokenUrl")
                && e.contains("attacker.example")
                && e.contains("--allowed-token-host"),
            "{e}"
        );
        let e = strict
            .check_token_url(base, "https://elsewhere.example/token", true)
            .unwrap_err();
        assert!(e.contains("discovered token_endpoint"), "{e}");
        let allowing = EndpointPolicy {
            allowed_token_hosts: vec!["Login.Hospital.Example.org".into()],
            ..EndpointPolicy::default()
        };
        assert!(
            allowing
                .check_token_url(base, "https://login.hospital.example.org/token", false)
                .is_ok()
        );
    }

    #[test]
    fn plain_http_only_to_loopback_and_only_in_development() {
        let strict = EndpointPolicy::default();
        let e = strict
            .check_fhir_base("http://127.0.0.1:8080/api/FHIR/R4")
            .unwrap_err();
        assert!(e.contains("--insecure-allow-loopback-http"), "{e}");
        assert!(
            strict
                .check_fhir_base("http://epic.example.org/fhir")
                .is_err()
        );
        assert!(
            strict
                .check_fhir_base("ftp://epic.example.org/fhir")
                .is_err()
        );
        let dev = EndpointPolicy::development();
        assert!(
            dev.check_fhir_base("http://127.0.0.1:8080/api/FHIR/R4")
                .is_ok()
        );
        assert!(dev.check_fhir_base("http://[::1]:8080/api/FHIR/R4").is_ok());
        assert!(dev.check_fhir_base("http://epic.example.org/fhir").is_err());
    }
}
