//! Tier 2: the pull request as the control point. The JSON report holds to the published
//! schema in every outcome (errors before planning included), exit codes follow
//! `--exit-code`, every broken file is reported in one pass, the connection file is
//! schema-checked, and every subcommand has a manual page. (The Markdown comment:
//! `plan_markdown.rs`; saved plans: `saved_plan.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::{connection_manifest, examples, run, text};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/plan-output.schema.json")).unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).expect("the published schema compiles")
}

/// The report on stdout, checked against the published schema.
fn report_of(out: &std::process::Output) -> Value {
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {}", text(out)));
    let errors: Vec<String> = validator()
        .iter_errors(&v)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema: {errors:#?}\n{v:#}");
    v
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const ALICE: &str = "apiVersion: epic-operator.dev/v1alpha1\nkind: EpicPractitioner\nmetadata:\n  name: alice-smith\nspec:\n  connectionRef:\n    name: epic\n  npi: \"1234567893\"\n  active: true\n";

#[test]
fn json_holds_to_the_published_schema_in_every_outcome() {
    let ex = examples();
    let out = run(&["plan", "-f", s(&ex), "--sandbox", "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let r = report_of(&out);
    assert_eq!(r["formatVersion"], 1);
    assert_eq!(r["tool"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r["writes"]["mode"], "disabled");
    let sum = &r["summary"];
    assert_eq!(
        (
            &sum["create"],
            &sum["update"],
            &sum["inSync"],
            &sum["errors"]
        ),
        (&0.into(), &0.into(), &1.into(), &0.into())
    );
    assert_eq!(
        sum["held"],
        serde_json::json!({"WriteDisabled": 3, "ObserveOnly": 1})
    );
    let p = |n: &str| {
        r["practitioners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()
            .clone()
    };
    let erin = p("erin-novak");
    assert_eq!(
        (&erin["action"], &erin["intendedAction"]),
        (&"hold".into(), &"create".into())
    );
    assert_eq!(erin["request"]["method"], "POST");
    let body = erin["request"]["body"].to_string();
    assert!(
        body.contains("***@hospital.example.org") && !body.contains("erin."),
        "{body}"
    );
    assert_eq!(p("carol-lee")["intendedAction"], "deactivate");
    assert_eq!(p("dan-okafor")["intendedAction"], "update");

    let out = run(&[
        "apply",
        "-f",
        s(&ex),
        "--sandbox",
        "--sandbox-writes",
        "-o",
        "json",
    ]);
    let r = report_of(&out);
    assert_eq!(r["summary"]["written"], 3, "{r:#}");
    assert_eq!(r["summary"]["deactivate"], 1, "carol is deactivated: {r:#}");

    // Errors before planning: still JSON on stdout, each with its file.
    let dir = tempfile::tempdir().unwrap();
    let broken = broken_tree(dir.path());
    let out = run(&["plan", "-f", s(&broken), "--sandbox", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let r = report_of(&out);
    assert_eq!(r["exitCode"], 1);
    assert_eq!(r["summary"]["errors"], 3, "{r:#}");
    let typo = r["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == "spec.actve")
        .unwrap_or_else(|| panic!("{r:#}"));
    assert!(typo["file"].as_str().unwrap().ends_with("b-typo.yaml") && typo["document"] == 1);
    // A connection that cannot be opened (nothing listens on port 9).
    let (_, pem) =
        epic_operator::auth::generate_key(epic_operator::crd::Algorithm::RS384, "k").unwrap();
    let key = write(dir.path(), "key.pem", &pem);
    let conn = connection_manifest(dir.path(), "http://127.0.0.1:9", "c", "k", "RS384", 50);
    let good = write(dir.path(), "alice.yaml", ALICE);
    let out = run(&[
        "plan",
        "-f",
        s(&good),
        "-o",
        "json",
        "--insecure-allow-loopback-http",
        "--connection",
        s(&conn),
        "--private-key",
        s(&key),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let r = report_of(&out);
    assert_eq!(r["diagnostics"].as_array().unwrap().len(), 1, "{r:#}");
    assert!(
        r["diagnostics"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("connection.yaml")
    );
}

/// A directory with three differently broken files and one good one.
fn broken_tree(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    write(
        &tree,
        "a-dup-key.yaml",
        &format!("{ALICE}  active: false\n"),
    );
    write(
        &tree,
        "b-typo.yaml",
        &format!(
            "{}  actve: false\n",
            ALICE
                .replace("alice-smith", "bob")
                .replace("1234567893", "1987654328")
        ),
    );
    write(
        &tree,
        "c-npi.yaml",
        &ALICE
            .replace("alice-smith", "carol")
            .replace("1234567893", "1234567890"),
    );
    write(
        &tree,
        "d-good.yaml",
        &ALICE
            .replace("alice-smith", "dan")
            .replace("1234567893", "1765432103"),
    );
    tree
}

#[test]
fn every_broken_file_is_reported_in_one_pass_and_validate_works_offline() {
    let dir = tempfile::tempdir().unwrap();
    let tree = broken_tree(dir.path());
    for cmd in [
        &["plan", "-f", s(&tree), "--sandbox"][..],
        &["validate", "-f", s(&tree)],
    ] {
        let out = run(cmd);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {t}");
        for (file, says) in [
            ("a-dup-key.yaml", "a key may appear once per mapping"),
            (
                "b-typo.yaml",
                "unknown field \"spec.actve\" (not in the CRD schema: did you mean \"active\"?)",
            ),
            ("c-npi.yaml", "Luhn"),
        ] {
            let line = t
                .lines()
                .find(|l| l.contains(file))
                .unwrap_or_else(|| panic!("{file} missing: {t}"));
            assert!(line.contains(says), "{file}: {line}");
        }
        assert!(
            !t.contains("DuplicateKeyPolicy") && !t.contains("d-good.yaml"),
            "{t}"
        );
    }
    let out = run(&[
        "validate",
        "-f",
        s(&examples().join("practitioners")),
        "--connection",
        s(&examples().join("epic-connection.yaml")),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&["validate", "-f", s(&tree), "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["valid"].clone(),
            v["diagnostics"].as_array().unwrap().len()
        ),
        (false.into(), 3)
    );
}

#[test]
fn the_connection_file_is_checked_like_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let conn = std::fs::read_to_string(examples().join("epic-connection.yaml"))
        .unwrap()
        .replace("fhirBaseUrl:", "fhirBaseURL:")
        .replace("resyncInterval: 10m", "resyncInterval: 5s");
    let bad = write(dir.path(), "conn.yaml", &conn);
    let good = write(dir.path(), "alice.yaml", ALICE);
    let out = run(&["validate", "-f", s(&good), "--connection", s(&bad)]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("unknown field \"spec.fhirBaseURL\"")
            && t.contains("did you mean \"fhirBaseUrl\"?"),
        "{t}"
    );
    let conn = conn.replace("fhirBaseURL:", "fhirBaseUrl:");
    let bad = write(dir.path(), "conn.yaml", &conn);
    let out = run(&[
        "plan",
        "-f",
        s(&good),
        "--connection",
        s(&bad),
        "--private-key",
        s(&bad),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let r = report_of(&out);
    let d = &r["diagnostics"][0];
    assert_eq!(d["path"], "spec.resyncInterval", "{r:#}");
    assert!(d["message"].as_str().unwrap().contains("10s..24h"), "{d}");
}

#[test]
fn exit_codes_follow_the_chosen_mode() {
    let ex = examples();
    let code = |extra: &[&str]| {
        let mut a = vec!["plan", "-f", s(&ex), "--sandbox"];
        a.extend(extra);
        run(&a).status.code()
    };
    // Read-only sandbox: all drift is held back by policy.
    assert_eq!(code(&[]), Some(2));
    assert_eq!(code(&["--exit-code", "drift"]), Some(2));
    assert_eq!(code(&["--exit-code", "writes"]), Some(0));
    assert_eq!(
        code(&["--exit-code", "writes", "--sandbox-writes"]),
        Some(2)
    );
    let alice = ex.join("practitioners/alice-smith.yaml");
    let out = run(&[
        "plan",
        "-f",
        s(&alice),
        "--sandbox",
        "--exit-code",
        "writes",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = run(&[
        "plan",
        "-f",
        s(&ex),
        "--sandbox",
        "--exit-code",
        "sometimes",
    ]);
    assert_eq!(out.status.code(), Some(1), "a usage error, never 2");
}

#[test]
fn the_summary_reads_like_terraform() {
    let out = run(&[
        "plan",
        "-f",
        s(&examples()),
        "--sandbox",
        "--sandbox-writes",
    ]);
    let t = text(&out);
    assert!(
        t.contains("Plan: 1 to create, 1 to update, 1 to deactivate; 1 held (ObserveOnly 1)."),
        "{t}"
    );
    let out = run(&["plan", "-f", s(&examples()), "--sandbox"]);
    let t = text(&out);
    assert!(t.contains("Plan: 0 to create, 0 to update, 0 to deactivate; 4 held (WriteDisabled 3, ObserveOnly 1)."), "{t}");
    assert!(t.contains("action   : create held (WriteDisabled)"), "{t}");
    assert!(
        t.contains("request  : POST Practitioner")
            && t.contains("\"value\": \"***@hospital.example.org\""),
        "{t}"
    );
}

#[test]
fn man_pages_exist_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["man", "--out-dir", s(dir.path())]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let top = std::fs::read_to_string(dir.path().join("epic-operator.1")).unwrap();
    for sub in [
        "run",
        "crd",
        "plan",
        "apply",
        "validate",
        "export",
        "token",
        "keygen",
        "jwks",
        "sandbox",
        "completions",
        "man",
    ] {
        let page = dir.path().join(format!("epic-operator-{sub}.1"));
        let roff =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            roff.contains(".TH") && top.contains(&format!("epic\\-operator\\-{sub}(1)")),
            "{sub}"
        );
    }
    let plan = std::fs::read_to_string(dir.path().join("epic-operator-plan.1")).unwrap();
    assert!(
        plan.contains("exit\\-code") && plan.contains("markdown"),
        "{plan}"
    );
}
