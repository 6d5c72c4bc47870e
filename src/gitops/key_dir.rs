//! Keys on disk for the command line: one PEM file, or a key directory holding one
//! `<kid>.pem` per key (what `keygen --add-to` keeps) beside its `jwks.json`.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::auth::{KeyRing, kid_of_entry, load_ring};
use crate::crd::{EpicConnectionSpec, KeyLayout};

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
    let bytes: BTreeMap<String, Vec<u8>> = entries.into_iter().map(|(n, (b, _))| (n, b)).collect();
    load_ring(
        &layout,
        &bytes,
        spec.algorithm,
        |kid| times.get(kid).copied().unwrap_or_else(Utc::now),
        &source,
    )
    .map_err(|e| e.to_string())
}
