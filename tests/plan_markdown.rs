//! Tier 2: `plan -o markdown`, the pull-request comment: it matches its fixture (ids and the
//! sandbox address replaced by names), and a plan too long for one comment is summarised
//! under the limit with every collapsible section whole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::{bin, run, sandbox_and_connection};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs plan -o json and -o markdown against one sandbox process (ids are stable within it),
/// and replaces its base URL and ids by names, so the comment compares with a fixture.
#[test]
fn markdown_matches_its_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let (sandbox, conn, key) = sandbox_and_connection(dir.path(), "epic-operator-dev");
    let plan = |fmt: &str| {
        bin()
            .args([
                "plan",
                "-f",
                "examples/practitioners",
                "-o",
                fmt,
                "--insecure-allow-loopback-http",
            ])
            .args(["--connection", s(&conn), "--private-key", s(&key)])
            .output()
            .unwrap()
    };
    let r: Value = serde_json::from_slice(&plan("json").stdout).unwrap();
    let out = plan("markdown");
    assert_eq!(out.status.code(), Some(2));
    let mut md = String::from_utf8(out.stdout)
        .unwrap()
        .replace(&sandbox.base, "http://SANDBOX");
    for p in r["practitioners"].as_array().unwrap() {
        if let Some(id) = p["fhirId"].as_str() {
            md = md.replace(id, &format!("ID-{}", p["name"].as_str().unwrap()));
        }
    }
    let fixture = root().join("tests/fixtures/plan/examples.md");
    if std::env::var_os("EPIC_OPERATOR_BLESS").is_some() {
        std::fs::write(&fixture, &md).unwrap();
    }
    let expected = std::fs::read_to_string(&fixture).unwrap();
    assert_eq!(
        md,
        expected,
        "set EPIC_OPERATOR_BLESS=1 to rewrite {}",
        fixture.display()
    );
}

#[test]
fn a_long_plan_is_summarised_under_the_comment_limit() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..300u32 {
        let npi = epic_operator::crd::npi_from_prefix(100_000 + i);
        let m = format!(
            "apiVersion: epic-operator.dev/v1alpha1\nkind: EpicPractitioner\nmetadata:\n  name: new-{i}\nspec:\n  connectionRef:\n    name: epic\n  npi: \"{npi}\"\n  managementPolicy: CreateOrUpdate\n  active: true\n  name:\n    family: Doe\n    given: [Jo]\n  telecom:\n    - {{system: email, value: jo{i}@hospital.example.org, use: work}}\n"
        );
        std::fs::write(dir.path().join(format!("new-{i:03}.yaml")), m).unwrap();
    }
    let out = run(&["plan", "-f", s(dir.path()), "--sandbox", "-o", "markdown"]);
    assert_eq!(out.status.code(), Some(2));
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.len() <= epic_operator::gitops::MAX_MARKDOWN_CHARS,
        "{}",
        md.len()
    );
    assert!(md.contains(
        "Plan: 0 to create, 0 to update, 0 to deactivate; 300 held (WriteDisabled 300)."
    ));
    assert!(
        md.contains("more practitioner(s) not shown"),
        "summarised past the limit"
    );
    assert_eq!(
        md.matches("<details>").count(),
        md.matches("</details>").count()
    );
}
