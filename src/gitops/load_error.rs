//! A manifest problem, naming the file (and document) and what to fix: what loading manifests
//! returns, from reading a file to checking a document.

use std::path::{Path, PathBuf};

use super::schema::FieldProblem;

/// A manifest problem, naming the file (and document) and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: no such file or directory")]
    Missing { path: PathBuf },
    #[error("{path}: cannot read: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("{path}: not read: {detail}")]
    Refused { path: PathBuf, detail: String },
    #[error("{path}: not valid YAML: {detail}")]
    Yaml { path: PathBuf, detail: String },
    #[error(
        "{path} (document {doc}): {kind} {name} does not match the CRD schema (the API server would refuse it):\n  {}",
        problems.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n  ")
    )]
    Schema {
        path: PathBuf,
        doc: usize,
        kind: String,
        name: String,
        problems: Vec<FieldProblem>,
    },
    #[error("{path} (document {doc}): invalid {kind}: {detail}")]
    Invalid {
        path: PathBuf,
        doc: usize,
        kind: String,
        detail: String,
    },
    #[error("{path} (document {doc}): EpicPractitioner {name}: {detail}")]
    InvalidSpec {
        path: PathBuf,
        doc: usize,
        name: String,
        detail: String,
    },
    #[error(
        "NPI {npi} is declared twice: {first} ({first_name}) and {second} ({second_name}); one clinician, one manifest"
    )]
    DuplicateNpi {
        npi: String,
        first: PathBuf,
        first_name: String,
        second: PathBuf,
        second_name: String,
    },
    #[error("{path}: cannot compile the CRD schema: {detail}")]
    SchemaUnavailable { path: PathBuf, detail: String },
    #[error("EpicPractitioner {name} is defined twice: {first} and {second}")]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// A file that is not there, or cannot be read.
pub(super) fn missing_or_unreadable(path: &Path, e: std::io::Error) -> LoadError {
    if e.kind() == std::io::ErrorKind::NotFound {
        LoadError::Missing {
            path: path.to_path_buf(),
        }
    } else {
        LoadError::Read {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }
    }
}
