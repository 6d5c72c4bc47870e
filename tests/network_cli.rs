//! Trust and reachability from the command line, the real binary against a loopback HTTPS
//! "Epic" with a private CA: the manifest's caBundle or --ca-file, the standard HTTPS_PROXY
//! and NO_PROXY variables (through a loopback CONNECT proxy), client certificates, and
//! advice that fits the failure (spec.tokenUrl only when discovery answered 404).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;
mod net_support;

use std::path::{Path, PathBuf};
use std::process::Output;

use cli_support::{bin, text};
use net_support::{Ca, Proxy, TlsServer, server_config};

const PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Runs `token` with `args` and `env` (no proxy variable inherited from the caller).
async fn token(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut c = bin();
        for v in PROXY_VARS {
            c.env_remove(v);
        }
        c.arg("token").args(args).envs(env).output().unwrap()
    })
    .await
    .unwrap()
}

/// A connection manifest for `base`; `extra` is appended to its spec (indented).
fn manifest(dir: &Path, name: &str, base: &str, extra: &str) -> PathBuf {
    let path = dir.join(name);
    let spec_extra: String = extra.lines().map(|l| format!("  {l}\n")).collect();
    std::fs::write(
        &path,
        format!(
            "apiVersion: epic-operator.dev/v1alpha1\nkind: EpicConnection\nmetadata:\n  name: epic\nspec:\n  fhirBaseUrl: {base}/api/FHIR/R4\n  clientId: c\n  keyId: k\n  privateKeySecretRef: {{name: k, key: private-key.pem}}\n{spec_extra}"
        ),
    )
    .unwrap();
    path
}

fn ca_bundle_field(ca: &Ca) -> String {
    let body: String = ca.pem.lines().map(|l| format!("  {l}\n")).collect();
    format!("caBundle: |\n{body}")
}

fn args(conn: &Path, key: &Path, more: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--connection".to_string(),
        conn.display().to_string(),
        "--private-key".into(),
        key.display().to_string(),
    ];
    v.extend(more.iter().map(|s| s.to_string()));
    v
}

fn write_key(dir: &Path) -> PathBuf {
    let (_, pem) =
        epic_operator::auth::generate_key(epic_operator::crd::Algorithm::RS384, "k").unwrap();
    let key = dir.join("private-key.pem");
    std::fs::write(&key, pem).unwrap();
    key
}

#[tokio::test]
async fn the_ca_bundle_and_the_standard_proxy_variables_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path());
    let ca = Ca::new("Hospital Internal CA");
    let server = TlsServer::start(server_config(&ca.leaf(&["127.0.0.1"]), None), true).await;

    // Without the bundle: the private CA is refused, and the fix is the bundle.
    let bare = manifest(dir.path(), "bare.yaml", &server.url(), "");
    let out = token(args(&bare, &key, &[]), vec![]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("spec.caBundle") && !t.contains("spec.tokenUrl"),
        "{t}"
    );
    assert_eq!(server.requests(), 0);

    // With the manifest's caBundle, through HTTPS_PROXY: every request goes through the tunnel.
    let proxy = Proxy::start(true).await;
    let trusted = manifest(
        dir.path(),
        "trusted.yaml",
        &server.url(),
        &ca_bundle_field(&ca),
    );
    let out = token(
        args(&trusted, &key, &[]),
        vec![("HTTPS_PROXY", proxy.url())],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("token         : obtained"),
        "{}",
        text(&out)
    );
    assert!(!proxy.targets().is_empty(), "the proxy was not used");
    assert!(
        proxy
            .targets()
            .iter()
            .all(|t| *t == server.addr.to_string()),
        "{:?}",
        proxy.targets()
    );
    assert!(server.requests() >= 3, "discovery, token and metadata");

    // NO_PROXY exempts the host: the proxy sees nothing more.
    let before = proxy.targets().len();
    let out = token(
        args(&trusted, &key, &[]),
        vec![
            ("HTTPS_PROXY", proxy.url()),
            ("NO_PROXY", "127.0.0.1".to_string()),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(proxy.targets().len(), before);

    // A proxy that refuses the tunnel says so, with its fix.
    let strict = Proxy::start(false).await;
    let out = token(
        args(&trusted, &key, &[]),
        vec![("HTTPS_PROXY", strict.url())],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("proxy refused the tunnel"),
        "{}",
        text(&out)
    );

    // --ca-file does what caBundle does; a caSecretRef without it asks for it.
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let out = token(
        args(&bare, &key, &["--ca-file", ca_file.to_str().unwrap()]),
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let by_ref = manifest(
        dir.path(),
        "by-ref.yaml",
        &server.url(),
        "caSecretRef: {name: hospital-ca}",
    );
    let out = token(args(&by_ref, &key, &[]), vec![]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("hospital-ca") && t.contains("--ca-file"), "{t}");
}

#[tokio::test]
async fn client_certificates_and_advice_that_fits_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path());
    let ca = Ca::new("Hospital Internal CA");
    let clients = Ca::new("Hospital Client CA");
    let mtls = TlsServer::start(
        server_config(&ca.leaf(&["127.0.0.1"]), Some(&clients)),
        true,
    )
    .await;
    let conn = manifest(dir.path(), "mtls.yaml", &mtls.url(), &ca_bundle_field(&ca));

    let out = token(args(&conn, &key, &[]), vec![]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("spec.clientCertificateSecretRef"),
        "{}",
        text(&out)
    );

    let mine = clients.leaf(&["epic-operator"]);
    let (crt, tls_key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&crt, &mine.cert_pem).unwrap();
    std::fs::write(&tls_key, &mine.key_pem).unwrap();
    let with_cert = [
        "--client-cert",
        crt.to_str().unwrap(),
        "--client-key",
        tls_key.to_str().unwrap(),
    ];
    let out = token(args(&conn, &key, &with_cert), vec![]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A manifest naming a client certificate Secret asks for the files.
    let by_ref = manifest(
        dir.path(),
        "mtls-ref.yaml",
        &mtls.url(),
        &format!(
            "{}clientCertificateSecretRef: {{name: epic-client}}",
            ca_bundle_field(&ca)
        ),
    );
    let out = token(args(&by_ref, &key, &[]), vec![]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--client-cert"), "{}", text(&out));

    // The signing key file holding the JWK Set: named, and recognised.
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        r#"{"keys":[{"kty":"RSA","kid":"k","n":"x","e":"AQAB"}]}"#,
    )
    .unwrap();
    let out = token(args(&conn, &jwks, &with_cert), vec![]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains(jwks.to_str().unwrap()) && t.contains("JWK Set"),
        "{t}"
    );

    // Discovery answered 404: now (and only now) the fix is spec.tokenUrl.
    let no_discovery = TlsServer::start(server_config(&ca.leaf(&["127.0.0.1"]), None), false).await;
    let conn = manifest(
        dir.path(),
        "no-discovery.yaml",
        &no_discovery.url(),
        &ca_bundle_field(&ca),
    );
    let out = token(args(&conn, &key, &[]), vec![]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("404") && t.contains("spec.tokenUrl"), "{t}");
}
