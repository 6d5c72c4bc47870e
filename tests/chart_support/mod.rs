//! The chart as Helm's own Go SDK renders it (scripts/helm_render.py, with the Python that
//! scripts/ensure-helm.sh prepares), for the chart tests: lint and render, the documents, and
//! what Helm says when it refuses values.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Python with helm-python-sdk; the test fails, saying why, when it cannot be installed.
pub fn helm_python() -> String {
    let out = Command::new("bash")
        .arg(repo().join("scripts/ensure-helm.sh"))
        .output()
        .expect("run scripts/ensure-helm.sh");
    assert!(
        out.status.success(),
        "the chart tests need helm-python-sdk from PyPI; scripts/ensure-helm.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Lints and renders the chart with `values` as release `epic` in `epic-system`; with
/// `notes`, prints the release NOTES instead of the manifests.
pub fn helm(values: &Value, notes: bool) -> Output {
    Command::new(helm_python())
        .arg(repo().join("scripts/helm_render.py"))
        .arg(repo().join("charts/epic-operator"))
        .arg(values.to_string())
        .args(["epic", "epic-system"])
        .args(if notes { &["notes"][..] } else { &[][..] })
        .output()
        .expect("render")
}

/// The YAML documents of a stream, empty ones left out.
pub fn documents(yaml: &[u8]) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(std::str::from_utf8(yaml).unwrap())
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// Renders the chart; returns the documents.
pub fn render(values: &Value) -> Vec<Value> {
    let out = helm(values, false);
    assert!(
        out.status.success(),
        "helm lint/render failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    documents(&out.stdout)
}

/// Renders values the chart must refuse; returns what Helm said.
pub fn refusal(values: &Value) -> String {
    let out = helm(values, false);
    assert!(
        !out.status.success(),
        "{values} rendered:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}
