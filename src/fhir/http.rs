//! HTTP rules shared by the FHIR client and the token source: which URLs may carry
//! credentials, and bounded body reads.

use url::Url;

/// Credentials go only over https with certificate checks, except to loopback hosts, where the
/// sandbox and local test servers run over plain http.
pub fn require_allowed_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("invalid URL {raw:?}: {e}"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(format!(
            "refusing plain http to {}: use https (http is allowed only for loopback test servers)",
            url.host_str().unwrap_or("?")
        )),
        other => Err(format!(
            "unsupported URL scheme {other:?} in {raw:?}: use https"
        )),
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

/// A transport error as text, without the URL's query (which may hold search values).
pub fn describe_transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let target = e
        .url()
        .map(|u| format!(" ({}{})", origin_of(u), u.path()))
        .unwrap_or_default();
    let mut source = std::error::Error::source(e);
    let mut cause = String::new();
    while let Some(s) = source {
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
