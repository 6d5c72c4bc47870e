//! Tier 2: the command line behaves like kubectl and Terraform in CI: usage errors exit 1 (2
//! means drift), input comes from files, repeated `-f` or stdin, manifests are refused where
//! the API server would refuse them, JSON output carries values as JSON, personal values are
//! masked unless asked for, and export never overwrites silently.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use cli_support::{
    bin, connection_manifest, examples, run, sandbox_and_connection, start_sandbox, text,
};
use serde_json::Value;

fn example(name: &str) -> String {
    examples()
        .join("practitioners")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_str().unwrap().to_string()
}

const ALICE: &str = "apiVersion: epic-operator.dev/v1alpha1\nkind: EpicPractitioner\nmetadata:\n  name: alice-smith\nspec:\n  connectionRef:\n    name: epic\n  npi: \"1234567893\"\n  active: true\n";

#[test]
fn usage_errors_exit_1_never_the_drift_code() {
    for args in [
        &["plan", "--sandbox"][..],
        &["plan", "-f", "examples", "--sandbox", "--no-such-flag"],
        &["plan", "-f", "examples", "--sandbox", "-o", "yaml"],
        &["no-such-command"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
    }
    assert_eq!(run(&["--help"]).status.code(), Some(0));
    assert_eq!(run(&["--version"]).status.code(), Some(0));
}

#[test]
fn manifests_come_from_stdin_and_repeated_filenames() {
    let mut child = bin()
        .args(["plan", "-f", "-", "--sandbox"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ALICE.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("alice-smith"), "{}", text(&out));

    let out = run(&[
        "plan",
        "-f",
        &example("alice-smith.yaml"),
        "-f",
        &example("bob-jones.yaml"),
        "--sandbox",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("Summary: 2 practitioner(s)"),
        "{}",
        text(&out)
    );
}

#[test]
fn plan_refuses_what_the_api_server_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let typo = write(dir.path(), "typo.yaml", &format!("{ALICE}  actve: false\n"));
    let out = run(&["plan", "-f", &typo, "--sandbox"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("typo.yaml (document 1)") && t.contains("actve") && t.contains("unknown field"),
        "{t}"
    );

    let beta = write(
        dir.path(),
        "beta.yaml",
        &ALICE.replace("v1alpha1", "v1beta1"),
    );
    let out = run(&["plan", "-f", &beta, "--sandbox"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("apiVersion epic-operator.dev/v1beta1 is not served"));

    let wrong_type = write(
        dir.path(),
        "type.yaml",
        &ALICE.replace("active: true", "active: \"yes\""),
    );
    let out = run(&["plan", "-f", &wrong_type, "--sandbox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("spec.active"), "{}", text(&out));

    let twin = write(
        dir.path(),
        "twin.yaml",
        &ALICE.replace("name: alice-smith", "name: alice-again"),
    );
    let first = write(dir.path(), "alice.yaml", ALICE);
    let out = run(&["plan", "-f", &first, "-f", &twin, "--sandbox"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("NPI 1234567893 is declared twice")
            && t.contains("alice-smith")
            && t.contains("alice-again"),
        "{t}"
    );
}

#[test]
fn a_connection_ref_naming_another_connection_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_sandbox, conn, key) = sandbox_and_connection(dir.path(), "epic-operator-dev");
    let other = write(
        dir.path(),
        "other.yaml",
        &ALICE.replace("name: epic\n", "name: epic-test\n"),
    );
    let args = |extra: &[&str]| {
        let mut a = vec![
            "plan".to_string(),
            "-f".into(),
            other.clone(),
            "--insecure-allow-loopback-http".into(),
            "--connection".into(),
            conn.to_str().unwrap().into(),
            "--private-key".into(),
            key.to_str().unwrap().into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let out = bin().args(args(&[])).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("other.yaml (document 1)")
            && t.contains("spec.connectionRef.name is \"epic-test\", not \"epic\"")
            && t.contains("--any-connection"),
        "{t}"
    );
    let out = bin().args(args(&["--any-connection"])).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_failed_token_is_asked_once_and_every_line_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dev-key.pem");
    let sandbox = start_sandbox(&["--dev-key-out", key.to_str().unwrap()]);
    // A client the sandbox does not know: its token request is refused (invalid_client).
    let conn = connection_manifest(
        dir.path(),
        &sandbox.base,
        "nobody",
        "dev-key-1",
        "RS384",
        10,
    );
    let manifests = dir.path().join("m");
    std::fs::create_dir(&manifests).unwrap();
    for f in ["alice-smith.yaml", "bob-jones.yaml", "carol-lee.yaml"] {
        std::fs::copy(example(f), manifests.join(f)).unwrap();
    }
    let out = run(&[
        "plan",
        "-f",
        manifests.to_str().unwrap(),
        "--insecure-allow-loopback-http",
        "--any-connection",
        "--connection",
        conn.to_str().unwrap(),
        "--private-key",
        key.to_str().unwrap(),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let stats: Value = reqwest_get(&format!("{}/_sandbox/stats", sandbox.base));
    assert_eq!(stats["token"], 1, "one token request per run: {stats}\n{t}");
    assert_eq!(
        t.matches("action   : none (not planned: Unauthorized)")
            .count(),
        3,
        "every practitioner says why nothing is planned: {t}"
    );
    assert_eq!(t.matches("not attempted: no token").count(), 2, "{t}");
}

/// A GET on the sandbox's admin API (loopback, plain HTTP) without an HTTP client crate in
/// the test: curl is on every machine the tests run on.
fn reqwest_get(url: &str) -> Value {
    let out = std::process::Command::new("curl")
        .args(["-sf", url])
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn json_output_carries_values_as_json_and_personal_values_are_masked() {
    let out = run(&[
        "plan",
        "-f",
        &example("bob-jones.yaml"),
        "--sandbox",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let drift = &report["practitioners"][0]["drift"];
    let telecom = drift
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == "telecom")
        .unwrap();
    assert!(
        telecom["desired"].is_array(),
        "a JSON value, not a string: {telecom}"
    );
    let shown = telecom.to_string();
    assert!(
        shown.contains("***0199") && !shown.contains("555 0199"),
        "{shown}"
    );

    let out = run(&[
        "plan",
        "-f",
        &example("bob-jones.yaml"),
        "--sandbox",
        "--show-values",
    ]);
    assert!(text(&out).contains("+1 555 0199"), "{}", text(&out));
    let out = run(&["plan", "-f", &example("bob-jones.yaml"), "--sandbox"]);
    assert!(!text(&out).contains("555 0199"), "{}", text(&out));
}

#[test]
fn the_summary_separates_before_and_after() {
    let out = run(&[
        "apply",
        "-f",
        examples().to_str().unwrap(),
        "--sandbox",
        "--sandbox-writes",
    ]);
    let t = text(&out);
    let summary: Vec<&str> = t
        .lines()
        .skip_while(|l| !l.starts_with("Summary:"))
        .collect();
    assert_eq!(summary.len(), 2, "{t}");
    assert!(
        summary[0].contains("Before: 1 in sync, 3 drifted, 1 not found"),
        "{t}"
    );
    assert!(
        summary[1].starts_with("Apply: 3 written, 0 refused, 1 held")
            && summary[1].contains("After: 4 in sync, 1 not"),
        "{t}"
    );
}

#[test]
fn export_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let (_sandbox, conn, key) = sandbox_and_connection(dir.path(), "epic-operator-dev");
    let out_dir = dir.path().join("exported");
    let export = |extra: &[&str]| {
        let mut c = bin();
        c.args([
            "export",
            "--insecure-allow-loopback-http",
            "--connection",
            conn.to_str().unwrap(),
            "--private-key",
            key.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ])
        .args(extra);
        c.output().unwrap()
    };
    assert_eq!(export(&[]).status.code(), Some(0));
    let file = out_dir.join("npi-1234567893.yaml");
    let manifest = std::fs::read_to_string(&file).unwrap();
    assert!(
        manifest.contains("name: npi-1234567893"),
        "file named by metadata.name"
    );
    std::fs::write(&file, "# edited by hand\n").unwrap();
    let out = export(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--force"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# edited by hand\n"
    );
    assert_eq!(export(&["--force"]).status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), manifest);
}

#[test]
fn completions_and_man_page() {
    let out = run(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("complete -F"));
    let out = run(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(
        man.contains(".TH") && man.contains("epic-operator"),
        "{man}"
    );
}
