//! Tier 2: the CI examples work. Every `epic-operator` line of `examples/ci/github-actions.yml`
//! and `examples/ci/gitlab-ci.yml` is run, in order, with bash, in a checkout-like directory
//! (practitioners/ and epic-connection.yaml) against a sandbox process that takes writes; the
//! lines carry their own exit-code handling, so each must succeed, and their files (the
//! comment, the saved plan) must be what the next steps use. No GitHub or GitLab is needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::{connection_manifest, examples, start_sandbox, text};
use serde_json::Value;

/// The shell lines of a CI file that call epic-operator, in file order.
fn commands(file: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/ci")
        .join(file);
    let doc: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{file} is YAML: {e}"));
    let mut scripts = Vec::new();
    collect_scripts(&doc, &mut scripts);
    scripts
        .iter()
        .flat_map(|s| s.lines())
        .map(str::trim)
        .filter(|l| l.starts_with("epic-operator "))
        .map(str::to_string)
        .collect()
}

/// GitHub's `run:` strings and GitLab's `script:` lists, anywhere in the document.
fn collect_scripts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                match (k.as_str(), child) {
                    ("run", Value::String(s)) => out.push(s.clone()),
                    ("script", Value::Array(items)) => {
                        out.extend(items.iter().filter_map(|i| i.as_str().map(str::to_string)))
                    }
                    _ => collect_scripts(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_scripts(i, out)),
        _ => {}
    }
}

fn checkout(dir: &Path, base: &str) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("practitioners")).unwrap();
    for e in std::fs::read_dir(examples().join("practitioners")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, repo.join("practitioners").join(p.file_name().unwrap())).unwrap();
    }
    let conn = connection_manifest(dir, base, "epic-operator-dev", "dev-key-1", "RS384", 10);
    std::fs::rename(conn, repo.join("epic-connection.yaml")).unwrap();
    repo
}

fn run_example(file: &str) {
    let lines = commands(file);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("epic-operator validate"))
            && lines.iter().any(|l| l.starts_with("epic-operator plan")
                && l.contains("-o markdown")
                && l.contains("--out plan.json"))
            && lines
                .iter()
                .any(|l| l.starts_with("epic-operator apply") && l.contains("--plan plan.json")),
        "{file}: validate, plan with a comment and a saved plan, apply of that plan: {lines:#?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dev-key.pem");
    let sandbox = start_sandbox(&[
        "--dev-key-out",
        key.to_str().unwrap(),
        "--writes",
        "enabled",
    ]);
    let repo = checkout(dir.path(), &sandbox.base);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_epic-operator"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for line in &lines {
        let out = std::process::Command::new("bash")
            .args(["-c", line])
            .current_dir(&repo)
            .env("PATH", &path)
            // What the CI secret and variables give; plain http only to the loopback sandbox.
            .env("EPIC_OPERATOR_PRIVATE_KEY_FILE", &key)
            .env(
                "EPIC_FLAGS",
                "--connection epic-connection.yaml --insecure-allow-loopback-http",
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: `{line}` failed: {}",
            text(&out)
        );
        if line.starts_with("epic-operator plan") {
            let md = std::fs::read_to_string(repo.join("plan.md")).unwrap();
            assert!(
                md.starts_with(epic_operator::gitops::COMMENT_MARKER),
                "{md}"
            );
            assert!(
                md.contains(
                    "Plan: 1 to create, 1 to update, 1 to deactivate; 1 held (ObserveOnly 1)."
                ),
                "{md}"
            );
        }
    }
    let records = |base: &str| -> Value {
        let out = std::process::Command::new("curl")
            .args(["-sf", &format!("{base}/_sandbox/stats")])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let stats = records(&sandbox.base);
    assert_eq!(
        (&stats["update"], &stats["create"]),
        (&2.into(), &1.into()),
        "{file}: the plan was applied: {stats}"
    );
}

#[test]
fn the_github_actions_example_runs_against_the_sandbox() {
    run_example("github-actions.yml");
}

#[test]
fn the_gitlab_ci_example_runs_against_the_sandbox() {
    run_example("gitlab-ci.yml");
}
