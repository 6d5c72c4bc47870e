//! Problems found before anything is planned (a broken manifest, a connection file that does
//! not match its schema, a connection that cannot be opened), in one shape for every output:
//! `{file, document, path, message}`. `plan -o json` prints them on stdout, so a CI job can
//! report them like drift instead of scraping stderr.

use std::path::Path;

use serde::Serialize;

use super::load_error::LoadError;

/// One problem, naming where it is and what to fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    /// The file (`-` for standard input); absent when the problem is not in a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Which YAML document of the file (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// The field, as kubectl writes it (`spec.telecom[0].value`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub message: String,
}

impl Diagnostic {
    /// A problem that is about no file (the connection could not be opened, say).
    pub fn general(message: impl Into<String>) -> Self {
        Self {
            file: None,
            document: None,
            path: None,
            message: message.into(),
        }
    }

    /// A problem about a whole file.
    pub fn in_file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: Some(file.display().to_string()),
            ..Self::general(message)
        }
    }

    /// The sentence for a terminal: `file (document n): path: message`.
    pub fn line(&self) -> String {
        let mut out = String::new();
        if let Some(f) = &self.file {
            out.push_str(f);
            if let Some(d) = self.document {
                out.push_str(&format!(" (document {d})"));
            }
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }

    /// The diagnostics of one load error: a schema mismatch gives one per field.
    pub fn from_load_error(e: &LoadError) -> Vec<Diagnostic> {
        let at = |path: &Path, doc: Option<usize>, message: String| Diagnostic {
            file: Some(path.display().to_string()),
            document: doc,
            path: None,
            message,
        };
        match e {
            LoadError::Schema {
                path,
                doc,
                kind,
                name,
                problems,
            } => problems
                .iter()
                .map(|p| Diagnostic {
                    file: Some(path.display().to_string()),
                    document: Some(*doc),
                    path: (!p.path.is_empty()).then(|| p.path.clone()),
                    message: format!(
                        "{kind} {name} does not match the CRD schema (the API server would refuse it): {}",
                        p.text
                    ),
                })
                .collect(),
            LoadError::Missing { path }
            | LoadError::Read { path, .. }
            | LoadError::Refused { path, .. }
            | LoadError::Yaml { path, .. }
            | LoadError::SchemaUnavailable { path, .. } => {
                vec![at(path, None, strip_prefix(&e.to_string(), path))]
            }
            LoadError::Invalid { path, doc, .. } | LoadError::InvalidSpec { path, doc, .. } => {
                vec![at(
                    path,
                    Some(*doc),
                    strip_prefix(&e.to_string(), path)
                        .trim_start_matches(&format!("(document {doc}): "))
                        .to_string(),
                )]
            }
            LoadError::DuplicateNpi { second, .. } | LoadError::Duplicate { second, .. } => {
                vec![at(second, None, e.to_string())]
            }
        }
    }
}

/// The message without the leading `file: ` / `file ` its Display starts with (the file is a
/// field of its own).
fn strip_prefix(text: &str, path: &Path) -> String {
    let p = path.display().to_string();
    text.strip_prefix(&p)
        .map(|r| r.trim_start_matches(':').trim_start().to_string())
        .unwrap_or_else(|| text.to_string())
}
