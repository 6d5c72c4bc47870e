//! `token`: obtain a token and probe capabilities, the first thing to run against a new Epic.

use std::process::ExitCode;

use super::{TokenArgs, fail};
use crate::auth::TokenSource;
use crate::gitops::{self, ConnectionInput};

pub(super) async fn token(args: TokenArgs) -> ExitCode {
    let target = match gitops::open_target(&ConnectionInput::from(&args.connection)).await {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let target_spec = target.spec.clone();
    let tokens: &TokenSource = target.client.tokens();
    println!("FHIR base URL : {}", target.client.base_url());
    println!("token URL     : {}", tokens.token_url());
    println!("client id     : {}", target.spec.client_id);
    let path = format!(
        "/jwks/{}/{}",
        target.namespace.as_deref().unwrap_or("<namespace>"),
        target.connection_name
    );
    match &args.jwks_public_url {
        Some(base) => println!(
            "JWK Set URL   : {}{path} (register it with Epic: distinct keys for production and non-production)",
            base.trim_end_matches('/')
        ),
        None => println!(
            "JWK Set URL   : <--jwks-public-url>{path} (the operator serves it; register it with Epic)"
        ),
    }
    println!(
        "requested     : {}",
        target.spec.effective_scopes().join(" ")
    );
    let code = match tokens.token().await {
        Err(e) => {
            eprintln!("error: no token: {e}");
            ExitCode::from(1)
        }
        Ok(t) => {
            println!(
                "token         : obtained (not shown), expires {}",
                t.expires_at.to_rfc3339()
            );
            println!("granted       : {}", t.scopes.join(" "));
            let missing: Vec<String> = target
                .spec
                .effective_scopes()
                .into_iter()
                .filter(|s| !t.scopes.contains(s))
                .collect();
            if !missing.is_empty() {
                println!(
                    "note          : Epic granted fewer scopes than requested; missing: {}",
                    missing.join(" ")
                );
            }
            match target.client.capability().await {
                Ok(c) => {
                    println!(
                        "writes        : {}",
                        if c.can_update() {
                            "Practitioner update listed in the CapabilityStatement"
                        } else {
                            "no Practitioner update in the CapabilityStatement (read-only instance: drift will be reported, not fixed)"
                        }
                    );
                    println!(
                        "create        : {}",
                        if c.can_create() {
                            "listed"
                        } else {
                            "not listed"
                        }
                    );
                    println!(
                        "NPI search    : {}",
                        if c.npi_search() {
                            "identifier search supported"
                        } else {
                            "identifier search NOT listed: NPI resolution may fail"
                        }
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!(
                        "error: token works but the CapabilityStatement could not be read: {e}"
                    );
                    ExitCode::from(1)
                }
            }
        }
    };
    target.stop().await;
    if let Some(n) = args.practitioners {
        let assumptions = super::forecast::Assumptions {
            practitioners: n,
            drift_per_day: 0.01,
            new_per_day: 10,
            no_roster_walks: false,
        };
        if let Err(e) = super::forecast::print_forecast(&target_spec, &assumptions) {
            eprintln!("error: no forecast: {e}");
        }
    }
    code
}
