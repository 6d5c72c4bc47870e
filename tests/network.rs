//! Trust and reachability, over real TLS on 127.0.0.1: a private CA refused without its
//! bundle and accepted with it, mutual TLS required and satisfied, and every class of network
//! failure answered with its own message and fix (never the TLS library's text).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_support;

use std::time::Duration;

use epic_operator::http::{
    ClientCertificate, NetFailure, PemSource, TlsOptions, classify, client, client_with,
    describe_transport_error,
};
use net_support::{Ca, Proxy, TlsServer, closed_port, plain_http, server_config, silent};

fn with_ca(ca: &Ca) -> TlsOptions {
    TlsOptions {
        extra_roots: vec![PemSource::new("spec.caBundle", ca.pem.clone())],
        client_certificate: None,
    }
}

/// The error of a GET, with its class and message.
async fn failure(http: &reqwest::Client, url: &str) -> (NetFailure, String) {
    let e = http
        .get(url)
        .send()
        .await
        .expect_err("the request should fail");
    (classify(&e), describe_transport_error(&e))
}

/// Text of the TLS library that must never reach a user.
const RAW_TLS: &[&str] = &[
    "InvalidContentType",
    "corrupt message",
    "CaUsedAsEndEntity",
    "UnknownIssuer",
    "NotValidForName",
    "invalid peer certificate",
];

fn assert_clean(message: &str) {
    for raw in RAW_TLS {
        assert!(!message.contains(raw), "raw TLS text {raw:?} in: {message}");
    }
    assert!(
        !message.contains("spec.tokenUrl"),
        "a network failure is not fixed by tokenUrl: {message}"
    );
}

#[tokio::test]
async fn a_private_ca_is_refused_without_its_bundle_and_accepted_with_it() {
    let ca = Ca::new("Hospital Internal CA");
    let server = TlsServer::start(server_config(&ca.leaf(&["127.0.0.1"]), None), true).await;
    let url = format!("{}/api/FHIR/R4/metadata", server.url());

    let (class, message) = failure(&client().unwrap(), &url).await;
    assert_eq!(class, NetFailure::UntrustedCa, "{message}");
    assert!(
        message.contains("spec.caBundle") && message.contains("spec.caSecretRef"),
        "{message}"
    );
    assert_clean(&message);
    assert_eq!(
        server.requests(),
        0,
        "no request crossed an untrusted handshake"
    );

    let http = client_with(&with_ca(&ca)).unwrap();
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.requests(), 1);

    // A CA bundle holding the server's own certificate is not a CA: still refused, and the
    // message still names the fix rather than the library's "CaUsedAsEndEntity".
    let leaf = ca.leaf(&["127.0.0.1"]);
    let own = TlsServer::start(server_config(&leaf, None), true).await;
    let pinned = client_with(&TlsOptions {
        extra_roots: vec![PemSource::new("spec.caBundle", leaf.cert_pem.clone())],
        client_certificate: None,
    })
    .unwrap();
    let (class, message) = failure(&pinned, &format!("{}/x", own.url())).await;
    assert_eq!(class, NetFailure::UntrustedCa, "{message}");
    assert_clean(&message);
}

#[tokio::test]
async fn mutual_tls_is_required_and_satisfied() {
    let ca = Ca::new("Hospital Internal CA");
    let clients = Ca::new("Hospital Client CA");
    let server = TlsServer::start(
        server_config(&ca.leaf(&["127.0.0.1"]), Some(&clients)),
        true,
    )
    .await;
    let url = format!("{}/api/FHIR/R4/metadata", server.url());

    let (class, message) = failure(&client_with(&with_ca(&ca)).unwrap(), &url).await;
    assert_eq!(class, NetFailure::ClientCertificate, "{message}");
    assert!(
        message.contains("spec.clientCertificateSecretRef"),
        "{message}"
    );
    assert_clean(&message);

    // A certificate from another CA is refused the same way.
    let stranger = Ca::new("Someone Else").leaf(&["operator"]);
    let wrong = TlsOptions {
        client_certificate: Some(ClientCertificate {
            cert: PemSource::new("Secret c entry tls.crt", stranger.cert_pem),
            key: PemSource::new("Secret c entry tls.key", stranger.key_pem),
        }),
        ..with_ca(&ca)
    };
    let (class, message) = failure(&client_with(&wrong).unwrap(), &url).await;
    assert_eq!(class, NetFailure::ClientCertificate, "{message}");

    let mine = clients.leaf(&["epic-operator"]);
    let satisfied = TlsOptions {
        client_certificate: Some(ClientCertificate {
            cert: PemSource::new("Secret c entry tls.crt", mine.cert_pem.clone()),
            key: PemSource::new("Secret c entry tls.key", mine.key_pem.clone()),
        }),
        ..with_ca(&ca)
    };
    let response = client_with(&satisfied)
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // The key entry holding the JWK Set, or the certificate again, is named as such.
    for (bad, what) in [
        (
            r#"{"keys":[{"kty":"RSA","n":"x","e":"AQAB"}]}"#.to_string(),
            "JWK Set",
        ),
        (mine.cert_pem.clone(), "a certificate"),
    ] {
        let e = client_with(&TlsOptions {
            client_certificate: Some(ClientCertificate {
                cert: PemSource::new("Secret c entry tls.crt", mine.cert_pem.clone()),
                key: PemSource::new("Secret c entry tls.key", bad),
            }),
            ..with_ca(&ca)
        })
        .unwrap_err();
        assert!(
            e.contains("Secret c entry tls.key") && e.contains(what),
            "{e}"
        );
    }
}

/// A resolver that knows no name: DNS failure without asking any DNS server.
struct NoNames;

impl reqwest::dns::Resolve for NoNames {
    fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async {
            Err(Box::new(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "failed to lookup address information: Name or service not known",
            )) as Box<dyn std::error::Error + Send + Sync>)
        })
    }
}

#[tokio::test]
async fn each_network_failure_has_its_own_message_and_fix() {
    let ca = Ca::new("Hospital Internal CA");
    let trusted = client_with(&with_ca(&ca)).unwrap();
    let mut seen: Vec<(NetFailure, String)> = Vec::new();

    // Refused: nothing listens.
    seen.push(failure(&trusted, &format!("https://127.0.0.1:{}/x", closed_port())).await);
    // DNS: the name does not resolve.
    let no_dns = reqwest::Client::builder()
        .dns_resolver(std::sync::Arc::new(NoNames))
        .build()
        .unwrap();
    seen.push(failure(&no_dns, "https://epic.hospital.internal/x").await);
    // Timeout: the port accepts and never answers.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    seen.push(failure(&impatient, &format!("https://{}/x", silent().await)).await);
    // Not TLS: an https URL pointing at a plain-http port.
    seen.push(failure(&trusted, &format!("https://{}/x", plain_http().await)).await);
    // Untrusted CA.
    let other = TlsServer::start(
        server_config(&Ca::new("Unknown CA").leaf(&["127.0.0.1"]), None),
        true,
    )
    .await;
    seen.push(failure(&trusted, &format!("{}/x", other.url())).await);
    // Name mismatch: a certificate for another host.
    let misnamed = TlsServer::start(
        server_config(&ca.leaf(&["epic.hospital.example"]), None),
        true,
    )
    .await;
    seen.push(failure(&trusted, &format!("{}/x", misnamed.url())).await);
    // Proxy refused: the proxy answers the CONNECT with 403.
    let strict = Proxy::start(false).await;
    let through = reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(strict.url()).unwrap())
        .build()
        .unwrap();
    let good = TlsServer::start(server_config(&ca.leaf(&["127.0.0.1"]), None), true).await;
    seen.push(failure(&through, &format!("{}/x", good.url())).await);
    assert_eq!(strict.targets(), vec![good.addr.to_string()]);
    // Expired certificate.
    let expired =
        TlsServer::start(server_config(&ca.expired_leaf(&["127.0.0.1"]), None), true).await;
    seen.push(failure(&trusted, &format!("{}/x", expired.url())).await);
    // Proxy wanting credentials: 407 to the CONNECT.
    let gatekeeper = Proxy::demanding_credentials().await;
    let through_gate = reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(gatekeeper.url()).unwrap())
        .build()
        .unwrap();
    seen.push(failure(&through_gate, &format!("{}/x", good.url())).await);
    // Proxy unreachable: nothing listens where HTTPS_PROXY points.
    let nowhere = reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(format!("http://127.0.0.1:{}", closed_port())).unwrap())
        .build()
        .unwrap();
    seen.push(failure(&nowhere, &format!("{}/x", good.url())).await);

    let expected = [
        (NetFailure::Refused, "connection refused"),
        (NetFailure::Dns, "did not resolve (DNS)"),
        (NetFailure::Timeout, "no answer"),
        (NetFailure::NotTls, "plain-http port"),
        (NetFailure::UntrustedCa, "spec.caBundle"),
        (NetFailure::NameMismatch, "not valid for the name"),
        (NetFailure::ProxyRefused, "proxy refused the tunnel"),
        (NetFailure::Expired, "has expired"),
        (NetFailure::ProxyAuth, "proxy requires authentication"),
        (NetFailure::ProxyUnreachable, "HTTPS_PROXY"),
    ];
    assert_eq!(seen.len(), expected.len());
    for ((class, message), (want, phrase)) in seen.iter().zip(expected) {
        assert_eq!(*class, want, "{message}");
        assert!(message.contains(phrase), "{want:?}: {message}");
        assert_clean(message);
    }
    // Those only a configuration change fixes are told apart from ones that may pass.
    let lasting: Vec<NetFailure> = seen
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| c.needs_configuration())
        .collect();
    assert_eq!(
        lasting,
        [
            NetFailure::NotTls,
            NetFailure::UntrustedCa,
            NetFailure::NameMismatch
        ]
    );
    let mut distinct: Vec<String> = seen
        .iter()
        .map(|(_, m)| m.split_once(": ").map(|(_, r)| r).unwrap_or(m).to_string())
        .collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        expected.len(),
        "one message per class: {seen:#?}"
    );
}
