//! `sandbox`: run the Epic-like sandbox server.

use std::process::ExitCode;

use super::keygen::write_private;
use super::{SandboxArgs, WritesFlag, fail};
use crate::gitops;
use crate::sandbox::{RegisteredClient, Sandbox, SandboxConfig, Settings, default_scopes};

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
