//! Tier 2: what was reviewed is what gets applied. `plan --out` saves the requests;
//! `apply --plan` sends exactly those with their If-Match, refuses a plan made for another
//! connection or other manifests, and refuses a record changed since as a stale plan (exit 1,
//! nothing written for it), over HTTP against a sandbox process that takes writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::path::Path;

use cli_support::{bin, connection_manifest, examples, start_sandbox, text};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn curl(args: &[&str]) -> Value {
    let out = std::process::Command::new("curl")
        .arg("-sf")
        .args(args)
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {args:?}");
    if out.stdout.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn a_saved_plan_is_applied_exactly_and_a_stale_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dev-key.pem");
    let sandbox = start_sandbox(&["--dev-key-out", s(&key), "--writes", "enabled"]);
    let conn = connection_manifest(
        dir.path(),
        &sandbox.base,
        "epic-operator-dev",
        "dev-key-1",
        "RS384",
        10,
    );
    let manifests = dir.path().join("m");
    std::fs::create_dir(&manifests).unwrap();
    for f in ["alice-smith", "bob-jones", "carol-lee", "erin-new"] {
        std::fs::copy(
            examples().join(format!("practitioners/{f}.yaml")),
            manifests.join(format!("{f}.yaml")),
        )
        .unwrap();
    }
    let plan_file = dir.path().join("plan.json");
    let cli = |args: &[&str]| {
        bin()
            .args(args)
            .args(["-f", s(&manifests), "--insecure-allow-loopback-http"])
            .args(["--connection", s(&conn), "--private-key", s(&key)])
            .output()
            .unwrap()
    };
    let out = cli(&["plan", "--out", s(&plan_file)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    assert_eq!(saved["kind"], "EpicOperatorSavedPlan");
    let entry = |n: &str| {
        saved["practitioners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()
            .clone()
    };
    let bob = entry("bob-jones");
    let bob_id = bob["fhirId"].as_str().unwrap().to_string();
    assert_eq!(bob["request"]["method"], "PUT");
    assert_eq!(bob["request"]["ifMatch"], bob["version"]);
    assert_eq!(entry("erin-novak")["request"]["method"], "POST");
    assert!(entry("alice-smith").get("request").is_none());
    // The manifests' contact values (a digest of the body is kept, never the body; "555"
    // alone could occur in a hex digest by chance).
    let text_of_plan = std::fs::read_to_string(&plan_file).unwrap();
    for value in [
        "555 0100",
        "5550100",
        "555 0199",
        "5550199",
        "alice.smith@",
        "erin.novak@",
    ] {
        assert!(
            !text_of_plan.contains(value),
            "no contact values in a saved plan: {value}"
        );
    }

    // Someone edits Bob in Epic after the review: a new version.
    let before = curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/json",
        "--data",
        r#"{"gender": "male"}"#,
        &format!("{}/_sandbox/practitioners/{bob_id}", sandbox.base),
    ]);
    let edited_version = before["meta"]["versionId"].clone();
    curl(&[
        "-X",
        "POST",
        &format!("{}/_sandbox/stats/reset", sandbox.base),
    ]);

    let out = cli(&["apply", "--plan", s(&plan_file), "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a stale record is an error: {}",
        text(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let result = |n: &str| {
        let p = report["practitioners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap();
        (
            p["result"].as_str().unwrap().to_string(),
            p["message"].as_str().unwrap_or_default().to_string(),
        )
    };
    let (bob_result, bob_message) = result("bob-jones");
    assert_eq!(bob_result, "stale");
    assert!(
        bob_message.starts_with("stale plan: run plan again"),
        "{bob_message}"
    );
    assert_eq!(result("carol-lee").0, "updated");
    assert_eq!(result("erin-novak").0, "created");
    assert_eq!(result("alice-smith").0, "unchanged");
    let bob_now = curl(&[&format!("{}/_sandbox/practitioners/{bob_id}", sandbox.base)]);
    assert_eq!(
        bob_now["meta"]["versionId"], edited_version,
        "nothing written for Bob"
    );
    let stats = curl(&[&format!("{}/_sandbox/stats", sandbox.base)]);
    assert_eq!(
        (&stats["update"], &stats["create"]),
        (&1.into(), &1.into()),
        "one PUT and one POST: {stats}"
    );

    // Applying the same plan again: every planned record has moved on.
    let out = cli(&["apply", "--plan", s(&plan_file)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("stale plan: run plan again"),
        "{}",
        text(&out)
    );

    // A fresh plan applies cleanly.
    let out = cli(&["plan", "--out", s(&plan_file)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = cli(&["apply", "--plan", s(&plan_file)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("result   : updated"), "{}", text(&out));

    // Other manifests, another connection: refused before any request.
    std::fs::remove_file(manifests.join("carol-lee.yaml")).unwrap();
    let out = cli(&["apply", "--plan", s(&plan_file)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("made for other manifests"),
        "{}",
        text(&out)
    );
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let other_conn = connection_manifest(
        &other,
        &sandbox.base,
        "another-client",
        "dev-key-1",
        "RS384",
        10,
    );
    let out = bin()
        .args([
            "apply",
            "--plan",
            s(&plan_file),
            "-f",
            s(&manifests),
            "--insecure-allow-loopback-http",
        ])
        .args(["--connection", s(&other_conn), "--private-key", s(&key)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("made for connection") || t.contains("invalid_client"),
        "{t}"
    );
    // Not a plan file at all.
    let out = cli(&["apply", "--plan", s(&conn)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not a saved plan"), "{}", text(&out));
}
