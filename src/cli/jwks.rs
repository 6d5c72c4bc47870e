//! `jwks`: the public JWK Set of a key file or key directory, for teams that host it
//! statically instead of registering the operator's JWK Set URL.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use super::{JwksArgs, fail};
use crate::auth::{ClientKey, kid_of_entry, public_jwk_set};
use crate::crd::{Algorithm, EpicConnection};
use crate::gitops::{read_entries, ring_from_path};

pub(super) fn jwks(args: JwksArgs) -> ExitCode {
    let set = match &args.connection {
        Some(file) => connection_spec(file)
            .and_then(|spec| ring_from_path(&args.keys, &spec))
            .map(|ring| ring.jwks()),
        None => keys_of(&args.keys, args.kid.as_deref()).map(|keys| public_jwk_set(&keys)),
    };
    match set {
        Ok(set) => {
            println!("{}", serde_json::to_string_pretty(&set).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn connection_spec(file: &Path) -> Result<crate::crd::EpicConnectionSpec, String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "{}: cannot read the connection manifest: {e}",
            file.display()
        )
    })?;
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| format!("{}: not valid YAML: {e}", file.display()))?;
    let doc = docs
        .into_iter()
        .find(|d| d.get("kind").and_then(|k| k.as_str()) == Some("EpicConnection"))
        .ok_or_else(|| {
            format!(
                "{}: no EpicConnection document in this file",
                file.display()
            )
        })?;
    let conn: EpicConnection = serde_json::from_value(doc)
        .map_err(|e| format!("{}: invalid EpicConnection: {e}", file.display()))?;
    Ok(conn.spec)
}

/// Every key at `path` with its kid, its algorithm read from the key (RS384 for RSA, ES384
/// for P-384). `private-key.pem` (what `keygen --out` writes) takes its kid from the
/// `jwks.json` beside it, or from `--kid`.
pub(super) fn keys_of(path: &Path, kid: Option<&str>) -> Result<Vec<ClientKey>, String> {
    let entries = read_entries(path)?;
    let dir = if path.is_dir() {
        Some(path)
    } else {
        path.parent()
    };
    let published = dir.map(published_kids).unwrap_or_default();
    let mut keys = Vec::new();
    for (name, (bytes, _)) in &entries {
        let pem = String::from_utf8_lossy(bytes);
        let found = kid_of_entry(name).filter(|_| name != crate::auth::LEGACY_KEY_ENTRY);
        let loaded = |kid: &str| load_any(&pem, kid).map_err(|e| format!("{name}: {e}"));
        let key = match (kid.filter(|_| entries.len() == 1), found) {
            (Some(k), _) | (None, Some(k)) => loaded(k)?,
            (None, None) => {
                // Match the public half against the kids already published beside it.
                let probe = loaded("unknown")?;
                let public = serde_json::to_value(probe.public_jwk()).unwrap_or_default();
                let kid = published
                    .iter()
                    .find(|(_, jwk)| same_public_key(jwk, &public))
                    .map(|(k, _)| k.clone())
                    .ok_or_else(|| {
                        format!(
                            "{name}: cannot tell its kid: pass --kid, or rename it to <kid>.pem"
                        )
                    })?;
                loaded(&kid)?
            }
        };
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(format!("{}: no .pem key found", path.display()));
    }
    Ok(keys)
}

fn load_any(pem: &str, kid: &str) -> Result<ClientKey, String> {
    ClientKey::from_pem(pem, Algorithm::RS384, kid)
        .or_else(|rsa| ClientKey::from_pem(pem, Algorithm::ES384, kid).map_err(|_| rsa))
        .map_err(|e| e.to_string())
}

/// kid -> public JWK of the `jwks.json` in `dir`.
fn published_kids(dir: &Path) -> BTreeMap<String, serde_json::Value> {
    std::fs::read_to_string(dir.join("jwks.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("keys").and_then(|k| k.as_array()).cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|jwk| Some((jwk.get("kid")?.as_str()?.to_string(), jwk)))
        .collect()
}

fn same_public_key(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    ["kty", "n", "e", "crv", "x", "y"]
        .iter()
        .all(|m| a.get(m) == b.get(m))
}
