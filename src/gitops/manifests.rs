//! Loads EpicPractitioner (and EpicConnection) manifests from files and directories.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::load_error::{LoadError, missing_or_unreadable};
use super::manifest_files::{STDIN, collect_files, read_bounded, read_stdin};
use super::schema::SchemaSet;
use crate::crd::{EpicConnection, EpicPractitioner, validate_npi};

/// A practitioner manifest and where it came from.
#[derive(Clone, Debug)]
pub struct SourcedPractitioner {
    pub path: PathBuf,
    /// Which YAML document of the file (1-based).
    pub doc: usize,
    pub practitioner: EpicPractitioner,
}

impl SourcedPractitioner {
    pub fn name(&self) -> String {
        self.practitioner.metadata.name.clone().unwrap_or_default()
    }
}

/// What was found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub practitioners: Vec<SourcedPractitioner>,
    pub connections: Vec<(PathBuf, EpicConnection)>,
    /// Documents of other kinds, skipped (e.g. Argo CD Applications next to the manifests).
    pub notes: Vec<String>,
}

/// Reads every `.yaml`/`.yml` file under the given paths (directories recursively, in name
/// order; `-` is standard input), multi-document, keeping EpicPractitioners and
/// EpicConnections. Every document of our API group is checked against the CRD schema first.
/// Every problem is an error naming the file and document: a partly loaded set must never be
/// applied. The first problem is returned; [`load_manifests_all`] returns every one.
pub fn load_manifests(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let (loaded, mut errors) = load_manifests_all(paths);
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors.remove(0))
    }
}

/// Loads like [`load_manifests`] but goes on past a broken file or document, so one run
/// reports every problem of a tree (what `plan` and `validate` show). The set is usable only
/// when the error list is empty.
pub fn load_manifests_all(paths: &[PathBuf]) -> (Loaded, Vec<LoadError>) {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for p in paths {
        if p.as_os_str() == STDIN {
            files.push(p.clone());
            continue;
        }
        let root = match std::fs::canonicalize(p) {
            Ok(r) => r,
            Err(e) => {
                errors.push(missing_or_unreadable(p, e));
                continue;
            }
        };
        let root = if root.is_dir() {
            root
        } else {
            root.parent().map(Path::to_path_buf).unwrap_or(root)
        };
        collect_files(p, &root, &mut files, true, &mut errors);
    }
    let mut loaded = Loaded::default();
    let schemas = match SchemaSet::shared() {
        Ok(s) => s,
        Err(detail) => {
            errors.push(LoadError::SchemaUnavailable {
                path: paths.first().cloned().unwrap_or_default(),
                detail,
            });
            return (loaded, errors);
        }
    };
    for file in files {
        let text = if file.as_os_str() == STDIN {
            read_stdin()
        } else {
            read_bounded(&file)
        };
        match text {
            Ok(text) => decode_documents(&file, &text, schemas, &mut loaded, &mut errors),
            Err(e) => errors.push(e),
        }
    }
    (loaded, errors)
}

/// Decodes one file's YAML documents into `loaded`: schema-checked, duplicates refused.
fn decode_documents(
    file: &Path,
    text: &str,
    schemas: &SchemaSet,
    loaded: &mut Loaded,
    errors: &mut Vec<LoadError>,
) {
    let file = file.to_path_buf();
    let docs: Vec<Value> = match serde_saphyr::from_multiple(text) {
        Ok(d) => d,
        Err(e) => {
            errors.push(LoadError::Yaml {
                path: file.clone(),
                detail: yaml_detail(&e),
            });
            return;
        }
    };
    for (i, doc) in docs.into_iter().enumerate() {
        if let Err(e) = decode_document(&file, i + 1, doc, schemas, loaded) {
            errors.push(e);
        }
    }
}

/// One document: schema-checked, decoded, duplicates refused.
fn decode_document(
    file: &Path,
    doc_no: usize,
    doc: Value,
    schemas: &SchemaSet,
    loaded: &mut Loaded,
) -> Result<(), LoadError> {
    let file = file.to_path_buf();
    {
        if doc.is_null() {
            return Ok(());
        }
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let api_version = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ours = SchemaSet::is_ours(api_version);
        if ours {
            let problems = schemas.problems(&doc);
            if !problems.is_empty() {
                return Err(LoadError::Schema {
                    path: file.clone(),
                    doc: doc_no,
                    kind: kind.clone(),
                    name: doc
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("(no name)")
                        .to_string(),
                    problems,
                });
            }
        }
        match kind.as_str() {
            "EpicPractitioner" if ours => {
                let p: EpicPractitioner = decode(doc, &file, doc_no, &kind)?;
                let name = p.metadata.name.clone().unwrap_or_default();
                check_practitioner(&p).map_err(|detail| LoadError::InvalidSpec {
                    path: file.clone(),
                    doc: doc_no,
                    name: name.clone(),
                    detail,
                })?;
                if let Some(prev) = loaded.practitioners.iter().find(|s| {
                    s.name() == name && s.practitioner.metadata.namespace == p.metadata.namespace
                }) {
                    return Err(LoadError::Duplicate {
                        name,
                        first: prev.path.clone(),
                        second: file.clone(),
                    });
                }
                if let Some(prev) = loaded
                    .practitioners
                    .iter()
                    .find(|s| s.practitioner.spec.npi == p.spec.npi)
                {
                    return Err(LoadError::DuplicateNpi {
                        npi: p.spec.npi.clone(),
                        first: prev.path.clone(),
                        first_name: prev.name(),
                        second: file.clone(),
                        second_name: name,
                    });
                }
                loaded.practitioners.push(SourcedPractitioner {
                    path: file.clone(),
                    doc: doc_no,
                    practitioner: p,
                });
            }
            "EpicConnection" if ours => {
                let c: EpicConnection = decode(doc, &file, doc_no, &kind)?;
                loaded.connections.push((file.clone(), c));
            }
            _ => loaded.notes.push(format!(
                "{} (document {doc_no}): skipped {} {}",
                file.display(),
                if kind.is_empty() {
                    "a document without"
                } else {
                    "kind"
                },
                if kind.is_empty() {
                    "kind".to_string()
                } else {
                    format!("{kind} ({api_version})")
                }
            )),
        }
    }
    Ok(())
}

fn decode<T: serde::de::DeserializeOwned>(
    doc: Value,
    path: &Path,
    doc_no: usize,
    kind: &str,
) -> Result<T, LoadError> {
    serde_json::from_value(doc).map_err(|e| LoadError::Invalid {
        path: path.to_path_buf(),
        doc: doc_no,
        kind: kind.to_string(),
        detail: e.to_string(),
    })
}

/// Checks the schema cannot express (it is enforced by the API server for the rest, but the
/// command line has no API server in front of it).
pub fn check_practitioner(p: &EpicPractitioner) -> Result<(), String> {
    if p.metadata.name.as_deref().unwrap_or_default().is_empty() {
        return Err("metadata.name is required".into());
    }
    validate_npi(&p.spec.npi).map_err(|e| e.to_string())?;
    if let Some(n) = &p.spec.name
        && n.family.trim().is_empty()
    {
        return Err("name.family must not be empty".into());
    }
    if let Some(b) = &p.spec.birth_date {
        let ok = b.len() >= 4
            && b.chars().all(|c| c.is_ascii_digit() || c == '-')
            && matches!(b.len(), 4 | 7 | 10);
        if !ok {
            return Err(format!(
                "birthDate {b:?} must be YYYY, YYYY-MM or YYYY-MM-DD"
            ));
        }
    }
    Ok(())
}

/// Decodes manifests from text, as if read from a file named `name` (what `-f -` and the
/// fuzzer use): never panics, whatever the text.
pub fn load_manifest_text(text: &str, name: &Path) -> Result<Loaded, LoadError> {
    let schemas = SchemaSet::shared().map_err(|detail| LoadError::SchemaUnavailable {
        path: name.to_path_buf(),
        detail,
    })?;
    let mut loaded = Loaded::default();
    let mut errors = Vec::new();
    decode_documents(name, text, schemas, &mut loaded, &mut errors);
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(loaded),
    }
}

/// The YAML library's own advice ("set DuplicateKeyPolicy in Options") speaks of its API, not
/// of a manifest: replaced by what the author of the file can do.
pub fn yaml_detail(e: &serde_saphyr::Error) -> String {
    e.to_string()
        .replace(
            ", set DuplicateKeyPolicy in Options if acceptable",
            " (a key may appear once per mapping: keep one of the two; the API server refuses the document too)",
        )
        .replace(
            "set DuplicateKeyPolicy in Options if acceptable",
            "a key may appear once per mapping: keep one of the two",
        )
}
