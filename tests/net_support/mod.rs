//! Loopback servers of the network tests: a private CA with certificates made on the spot, a
//! TLS server answering like a minimal Epic (optionally requiring a client certificate), a
//! plain-http port, a silent port, and an HTTP CONNECT proxy. All on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and what it signs.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

/// A certificate with its key, as PEM and as rustls values.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses).
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |_| {})
    }

    /// A leaf certificate for `names` that expired in 2001.
    pub fn expired_leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |p| {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        })
    }

    fn leaf_with(&self, names: &[&str], tweak: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        tweak(&mut params);
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().unwrap()),
            })
            .collect();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        roots
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server config presenting `leaf`; with `client_ca`, a client certificate that CA
/// issued is required.
pub fn server_config(leaf: &Leaf, client_ca: Option<&Ca>) -> rustls::ServerConfig {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(ca.roots()),
                provider(),
            )
            .build()
            .unwrap(),
        ),
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(leaf.chain.clone(), leaf.key.clone_key())
        .unwrap()
}

/// Reads one HTTP request head (bounded), returning its first line.
async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while buf.len() < 16 * 1024 {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
        if buf.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    // Drain a form body (the token request), bounded by its Content-Length.
    let len = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0)
        .min(1 << 20);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    text.lines().next().map(str::to_string)
}

/// The answer of the minimal Epic to a request line.
fn answer(line: &str, base: &str, discovery: bool) -> (u16, String) {
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    if path.ends_with("/.well-known/smart-configuration") {
        if !discovery {
            return (404, "{}".into());
        }
        return (
            200,
            format!(r#"{{"token_endpoint":"{base}/oauth2/token"}}"#),
        );
    }
    if path.ends_with("/oauth2/token") {
        return (
            200,
            r#"{"access_token":"t","token_type":"Bearer","expires_in":3600,"scope":"system/Practitioner.read system/Practitioner.write system/PractitionerRole.read"}"#.into(),
        );
    }
    if path.ends_with("/metadata") {
        return (
            200,
            r#"{"resourceType":"CapabilityStatement","rest":[{"mode":"server","resource":[{"type":"Practitioner","interaction":[{"code":"read"}]}]}]}"#.into(),
        );
    }
    (200, r#"{"ok":true}"#.into())
}

/// A loopback HTTPS server answering like a minimal Epic: smart-configuration (404 unless
/// `discovery`), a token endpoint and a CapabilityStatement. Counts the requests it answered.
pub struct TlsServer {
    pub addr: SocketAddr,
    pub answered: Arc<Mutex<Vec<String>>>,
}

impl TlsServer {
    pub async fn start(config: rustls::ServerConfig, discovery: bool) -> TlsServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("https://{addr}");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let answered = Arc::new(Mutex::new(Vec::new()));
        let log = answered.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let base = base.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    // Keep-alive: answer requests until the client closes (bounded by it).
                    while let Some(line) = read_head(&mut tls).await {
                        let (status, body) = answer(&line, &base, discovery);
                        log.lock().unwrap().push(line);
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if tls.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                        let _ = tls.flush().await;
                    }
                });
            }
        });
        TlsServer { addr, answered }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.answered.lock().unwrap().len()
    }
}

/// A port answering plain HTTP to anything (a TLS client meets an http port).
pub async fn plain_http() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    addr
}

/// A port that accepts connections and never says a word.
pub async fn silent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    addr
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// An HTTP CONNECT proxy; records every CONNECT target, and tunnels only when `allow`.
pub struct Proxy {
    pub addr: SocketAddr,
    pub connects: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub async fn start(allow: bool) -> Proxy {
        Self::start_with(if allow { None } else { Some("403 Forbidden") }).await
    }

    /// A proxy that answers every CONNECT with 407 (it wants credentials).
    pub async fn demanding_credentials() -> Proxy {
        Self::start_with(Some("407 Proxy Authentication Required")).await
    }

    /// Answers every CONNECT with `refusal` when given, else tunnels to loopback.
    async fn start_with(refusal: Option<&'static str>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = Arc::new(Mutex::new(Vec::new()));
        let log = connects.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let Some(line) = read_head(&mut client).await else {
                        return;
                    };
                    let mut parts = line.split_whitespace();
                    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
                        let _ = client
                            .write_all(
                                b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n",
                            )
                            .await;
                        return;
                    };
                    log.lock().unwrap().push(target.to_string());
                    // Tunnels only to loopback: the tests never leave the machine.
                    let loopback = target.starts_with("127.0.0.1:");
                    if refusal.is_some() || !loopback {
                        let status = refusal.unwrap_or("403 Forbidden");
                        let _ = client
                            .write_all(
                                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n")
                                    .as_bytes(),
                            )
                            .await;
                        return;
                    }
                    let Ok(mut upstream) = TcpStream::connect(target).await else {
                        let _ = client
                            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                            .await;
                        return;
                    };
                    let _ = client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        Proxy { addr, connects }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn targets(&self) -> Vec<String> {
        self.connects.lock().unwrap().clone()
    }
}
