//! `sandbox`: run the Epic-like sandbox server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::keygen::write_private;
use super::{fail, parse_duration_arg};
use crate::gitops;
use crate::sandbox::{RegisteredClient, Sandbox, SandboxConfig, Settings, default_scopes};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WritesFlag {
    Enabled,
    Disabled,
}

#[derive(Args, Debug)]
pub struct SandboxArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Seed file: a FHIR Bundle or JSON array of Practitioner, PractitionerRole and Patient
    /// (repeatable). Without any, the examples/ seed is loaded.
    #[arg(long = "seed", value_name = "FILE")]
    pub seeds: Vec<PathBuf>,
    /// Start empty instead of loading the examples/ seed.
    #[arg(long)]
    pub empty: bool,
    /// Add N synthetic practitioners with valid, unique NPIs. They take the shapes real Epic
    /// data has (NPI under the OID system, ended + current NPI, usual-only names, text with
    /// prefix/suffix, formatted phones, pagers, Epic-coded qualifications) unless
    /// --clean-generated is given.
    #[arg(long, default_value_t = 0)]
    pub generate: usize,
    /// Generate uniform, clean records instead of the realistic mix.
    #[arg(long)]
    pub clean_generated: bool,
    /// Whether Practitioner PUT/POST are accepted (most Epic instances refuse them).
    #[arg(long, value_enum, default_value = "disabled")]
    pub writes: WritesFlag,
    /// Register a client: ID=JWKS_FILE (repeatable). Without any (and without
    /// --client-jwks-url), a development key is generated and written to --dev-key-out.
    #[arg(long = "client", value_name = "ID=JWKS_FILE")]
    pub clients: Vec<String>,
    /// Register a client whose keys the sandbox fetches from a JWK Set URL, as Epic does:
    /// ID=URL (repeatable; http(s) to a loopback host only). With --client for the same ID,
    /// the client has both the static keys and the URL.
    #[arg(long = "client-jwks-url", value_name = "ID=URL")]
    pub client_jwks_urls: Vec<String>,
    /// Longest time a fetched JWK Set is cached, whatever its Cache-Control max-age says.
    #[arg(long, default_value = "300s", value_parser = parse_duration_arg)]
    pub jwks_cache_max: Duration,
    /// Shortest time between two JWK Set fetches caused by an unknown kid (within it such
    /// assertions are refused, as by a cache lagging a key rotation).
    #[arg(long, default_value = "60s", value_parser = parse_duration_arg)]
    pub jwks_refetch_cooldown: Duration,
    /// Narrow a client's pre-approved scopes: ID=scope1,scope2 (repeatable).
    #[arg(long = "client-scopes", value_name = "ID=SCOPES")]
    pub client_scopes: Vec<String>,
    /// Where to write the generated development private key.
    #[arg(long, default_value = "epic-sandbox-dev-key.pem")]
    pub dev_key_out: PathBuf,
    /// Access token lifetime, e.g. 3600s or 1h.
    #[arg(long, default_value = "3600s", value_parser = parse_duration_arg)]
    pub token_ttl: Duration,
    /// Paging sessions expire after this long (then next links answer Epic code 4113).
    #[arg(long, default_value = "300s", value_parser = parse_duration_arg)]
    pub paging_ttl: Duration,
    /// Default page size of searches.
    #[arg(long, default_value_t = 10)]
    pub page_size: usize,
    /// Largest page size a client may ask for with _count.
    #[arg(long, default_value_t = 200)]
    pub max_page_size: usize,
    /// Fault: added latency per FHIR request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fault: random extra latency up to this many milliseconds.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Fault: fraction (0-1) of FHIR requests answered 429 without Retry-After.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Fault: fraction (0-1) of FHIR requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fault: fraction (0-1) of token requests answered 503.
    #[arg(long, default_value_t = 0.0)]
    pub token_failure_rate: f64,
    /// Fault: server-wide FHIR requests per second; beyond it 429 (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    pub rate_limit: u32,
}

pub(super) async fn sandbox(args: SandboxArgs) -> ExitCode {
    let mut seeds = Vec::new();
    if args.seeds.is_empty() && !args.empty {
        seeds.push(gitops::EXAMPLES_SEED.to_string());
    }
    for path in &args.seeds {
        match std::fs::read_to_string(path) {
            Ok(s) => seeds.push(s),
            Err(e) => return fail(&format!("{}: cannot read the seed: {e}", path.display())),
        }
    }
    let mut clients = Vec::new();
    for spec in &args.clients {
        let Some((id, file)) = spec.split_once('=') else {
            return fail(&format!("--client {spec:?}: use ID=JWKS_FILE"));
        };
        let jwks = match std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => return fail(&format!("{file}: cannot read the JWK Set: {e}")),
        };
        match RegisteredClient::new(id, &jwks, default_scopes()) {
            Ok(c) => clients.push(c),
            Err(e) => return fail(&e.to_string()),
        }
    }
    for spec in &args.client_jwks_urls {
        let Some((id, url)) = spec.split_once('=') else {
            return fail(&format!("--client-jwks-url {spec:?}: use ID=URL"));
        };
        let registered = match clients.iter_mut().find(|c| c.client_id == id) {
            Some(c) => c.set_jwks_url(url),
            None => {
                RegisteredClient::with_jwks_url(id, url, default_scopes()).map(|c| clients.push(c))
            }
        };
        if let Err(e) = registered {
            return fail(&e.to_string());
        }
    }
    for spec in &args.client_scopes {
        let Some((id, scopes)) = spec.split_once('=') else {
            return fail(&format!("--client-scopes {spec:?}: use ID=scope1,scope2"));
        };
        match clients.iter_mut().find(|c| c.client_id == id) {
            Some(c) => {
                c.approved_scopes = scopes
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            None => {
                return fail(&format!(
                    "--client-scopes names {id:?}, which no --client or --client-jwks-url registers"
                ));
            }
        }
    }
    let config = SandboxConfig {
        addr: args.addr,
        settings: Settings {
            writes_enabled: args.writes == WritesFlag::Enabled,
            latency_ms: args.latency_ms,
            jitter_ms: args.jitter_ms,
            throttle_rate: args.throttle_rate,
            error_rate: args.error_rate,
            token_failure_rate: args.token_failure_rate,
            rate_limit_rps: args.rate_limit,
            jwks_cache_max_secs: args.jwks_cache_max.as_secs(),
            jwks_refetch_cooldown_secs: args.jwks_refetch_cooldown.as_secs(),
            ..Settings::default()
        },
        token_ttl: args.token_ttl,
        paging_ttl: args.paging_ttl,
        default_page_size: args.page_size,
        max_page_size: args.max_page_size,
        clients,
        seeds,
        generate: args.generate,
        realistic: !args.clean_generated,
    };
    let sandbox = match Sandbox::start(config).await {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    println!("Epic sandbox listening on http://{}", sandbox.addr);
    println!("  FHIR base URL : {}", sandbox.fhir_base_url());
    println!("  token URL     : {}", sandbox.token_url());
    println!("  admin         : {}/stats", sandbox.admin_url());
    println!(
        "  writes        : {}",
        if args.writes == WritesFlag::Enabled {
            "enabled"
        } else {
            "disabled (403, Epic code 4118)"
        }
    );
    if let Some(pem) = &sandbox.dev_key_pem {
        if let Err(e) = write_private_overwrite(&args.dev_key_out, pem) {
            return fail(&format!(
                "{}: cannot write the development key: {e}",
                args.dev_key_out.display()
            ));
        }
        println!(
            "  client id     : {}   kid: {}   alg: RS384",
            crate::sandbox::DEV_CLIENT_ID,
            crate::sandbox::DEV_KEY_ID
        );
        println!(
            "  private key   : {} (development key generated for this run)",
            args.dev_key_out.display()
        );
    }
    // Serves until interrupted.
    let _ = tokio::signal::ctrl_c().await;
    sandbox.stop().await;
    ExitCode::SUCCESS
}

fn write_private_overwrite(path: &std::path::Path, pem: &str) -> std::io::Result<()> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    write_private(path, pem)
}
