//! Keys on disk for the command line: one PEM file, or a key directory holding one
//! `<kid>.pem` per key (what `keygen --add-to` keeps) beside its `jwks.json`.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::auth::{ClientKey, KeyRing, LEGACY_KEY_ENTRY, entry_of_kid, kid_of_entry, load_ring};
use crate::crd::{Algorithm, EpicConnectionSpec, KeyLayout};

/// Key files by name: their bytes and when they were last modified.
pub type KeyFiles = BTreeMap<String, (Vec<u8>, DateTime<Utc>)>;

/// Every regular `*.pem` file directly inside `dir` (name -> bytes), or the one file `path`.
pub fn read_entries(path: &Path) -> Result<KeyFiles, String> {
    let read = |p: &Path| -> Result<(Vec<u8>, DateTime<Utc>), String> {
        let bytes =
            std::fs::read(p).map_err(|e| format!("{}: cannot read the key: {e}", p.display()))?;
        let modified = std::fs::metadata(p)
            .and_then(|m| m.modified())
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(|_| Utc::now());
        Ok((bytes, modified))
    };
    let name_of = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if !path.is_dir() {
        return Ok(BTreeMap::from([(name_of(path), read(path)?)]));
    }
    let mut entries = BTreeMap::new();
    let listing = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for item in listing {
        let item = item.map_err(|e| format!("{}: {e}", path.display()))?;
        let p = item.path();
        let name = name_of(&p);
        if name.ends_with(".pem") && item.file_type().is_ok_and(|t| t.is_file()) {
            entries.insert(name, read(&p)?);
        }
    }
    Ok(entries)
}

/// The keys `spec` signs with, from a PEM file or a key directory at `path`. A single file is
/// the key `keyId` names (or, without keyId, the `<kid>.pem` its name gives); a directory
/// holds every `<kid>.pem`, each published since its file was last modified.
pub fn ring_from_path(path: &Path, spec: &EpicConnectionSpec) -> Result<KeyRing, String> {
    let entries = read_entries(path)?;
    let source = path.display().to_string();
    let mut layout = spec.key_layout()?;
    if !path.is_dir() {
        let name = entries.keys().next().cloned().unwrap_or_default();
        let kid = match &layout {
            KeyLayout::Single { kid, .. } => Some(kid.clone()),
            KeyLayout::Several { pinned, .. } => pinned.clone(),
        }
        .or_else(|| kid_of_entry(&name).map(str::to_string))
        .ok_or_else(|| {
            format!(
                "{source}: the connection sets no keyId and the file name is not <kid>.pem: set keyId or rename the file"
            )
        })?;
        layout = KeyLayout::Single { entry: name, kid };
    }
    let times: BTreeMap<String, DateTime<Utc>> = entries
        .iter()
        .filter_map(|(name, (_, t))| kid_of_entry(name).map(|kid| (kid.to_string(), *t)))
        .collect();
    let mut bytes: BTreeMap<String, Vec<u8>> =
        entries.into_iter().map(|(n, (b, _))| (n, b)).collect();
    // In a key directory, `private-key.pem` (from `keygen --out`) is the key its jwks.json
    // names: signed with under that kid, as `jwks` publishes it.
    if path.is_dir()
        && matches!(layout, KeyLayout::Several { pinned: None, .. })
        && let Some(pem) = bytes.get(LEGACY_KEY_ENTRY)
        && let Some(kid) = legacy_kid(path, pem)
        && let Some(pem) = bytes.remove(LEGACY_KEY_ENTRY)
    {
        bytes.entry(entry_of_kid(&kid)).or_insert(pem);
    }
    load_ring(
        &layout,
        &bytes,
        spec.algorithm,
        |kid| times.get(kid).copied().unwrap_or_else(Utc::now),
        &source,
    )
    .map_err(|e| e.to_string())
}

/// Every key at `path` with its kid and algorithm as the `jwks.json` beside it publishes them
/// (else RS384 for RSA, ES384 for P-384). `private-key.pem` (what `keygen --out` writes)
/// takes its kid from that `jwks.json`, matched by public key, or from `kid`.
pub fn directory_keys(path: &Path, kid: Option<&str>) -> Result<Vec<ClientKey>, String> {
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
        let loaded = |kid: &str| {
            load_any(&pem, kid, published.get(kid).and_then(published_alg))
                .map_err(|e| format!("{name}: {e}"))
        };
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

fn load_any(pem: &str, kid: &str, alg: Option<Algorithm>) -> Result<ClientKey, String> {
    if let Some(alg) = alg {
        return ClientKey::from_pem(pem, alg, kid).map_err(|e| e.to_string());
    }
    ClientKey::from_pem(pem, Algorithm::RS384, kid)
        .or_else(|rsa| ClientKey::from_pem(pem, Algorithm::ES384, kid).map_err(|_| rsa))
        .map_err(|e| e.to_string())
}

fn published_alg(jwk: &serde_json::Value) -> Option<Algorithm> {
    serde_json::from_value(jwk.get("alg")?.clone()).ok()
}

/// The kid `jwks.json` beside a legacy `private-key.pem` gives it (matched by public key).
fn legacy_kid(dir: &Path, pem: &[u8]) -> Option<String> {
    let probe = load_any(&String::from_utf8_lossy(pem), "unknown", None).ok()?;
    let public = serde_json::to_value(probe.public_jwk()).ok()?;
    published_kids(dir)
        .into_iter()
        .find(|(_, jwk)| same_public_key(jwk, &public))
        .map(|(kid, _)| kid)
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
