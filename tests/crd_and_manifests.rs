//! Tier 1: the checked-in CRDs equal what the code generates; examples load; invalid
//! manifests are refused with a message naming the problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use epic_operator::gitops::{LoadError, load_manifests};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn checked_in_crds_equal_generated() {
    let files = epic_operator::crd::crd_files().expect("render");
    assert_eq!(files.len(), 2);
    for (name, yaml) in files {
        let path = root().join("crds").join(&name);
        let on_disk =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            on_disk, yaml,
            "{name} is stale: run `cargo run -- crd --out-dir crds`"
        );
        for copy in ["charts/epic-operator/files/crds", "config/crd"] {
            let path = root().join(copy).join(&name);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                text,
                yaml,
                "{} differs from the generated CRD: run `cargo run -- crd --out-dir {copy}`",
                path.display()
            );
        }
    }
    // `kubectl apply -f crds/` applies every file there: only CustomResourceDefinitions.
    for entry in std::fs::read_dir(root().join("crds")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("kind: CustomResourceDefinition")
                && !text.contains("kind: Kustomization"),
            "{} is not a CRD: kubectl apply -f crds/ would fail on it",
            path.display()
        );
    }
}

#[test]
fn crds_have_the_contracted_names_and_schema_rules() {
    let yaml = epic_operator::crd::crds_yaml().unwrap();
    for needle in [
        "group: epic-operator.dev",
        "kind: EpicPractitioner",
        "kind: EpicConnection",
        "- epr",
        "- econn",
        "pattern: ^[0-9]{10}$",
        "x-kubernetes-list-type: map",
        "rule: self == oldSelf",
        "status: {}",
    ] {
        assert!(yaml.contains(needle), "CRDs lack {needle:?}");
    }
    let crds: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    let p = &crds[1]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(
        p["properties"]["name"]["required"],
        serde_json::json!(["family"])
    );
    let systems = &p["properties"]["telecom"]["items"]["properties"]["system"]["enum"];
    assert!(systems.as_array().unwrap().iter().any(|s| s == "email"));
    // Every field of both kinds, at any depth, carries a description (kubectl explain).
    fn described(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (field, child) in props {
                let here = format!("{path}.{field}");
                if child.get("description").is_none() {
                    missing.push(here.clone());
                }
                described(&here, child, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            described(&format!("{path}[]"), items, missing);
        }
    }
    let mut missing = Vec::new();
    for crd in &crds {
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert!(
            root.get("description").is_some(),
            "{kind} has no description"
        );
        described(kind, root, &mut missing);
        // Both kinds in one category: `kubectl get epic`.
        assert_eq!(
            crd["spec"]["names"]["categories"],
            serde_json::json!(["epic"])
        );
    }
    assert!(missing.is_empty(), "no description: {missing:#?}");
}

#[test]
fn examples_are_valid() {
    let loaded = load_manifests(&[root().join("examples")]).expect("examples/ must stay valid");
    assert!(
        loaded.practitioners.len() >= 5,
        "{:?}",
        loaded.practitioners.len()
    );
    assert!(
        loaded
            .practitioners
            .iter()
            .any(|p| p.practitioner.spec.active == Some(false))
    );
    assert!(
        loaded
            .practitioners
            .iter()
            .any(|p| p.practitioner.spec.management_policy
                == epic_operator::crd::ManagementPolicy::Observe)
    );
    // The single-key connection and the managed-keys one; both say where their keys are.
    assert_eq!(loaded.connections.len(), 2);
    for (file, c) in &loaded.connections {
        c.spec
            .key_layout()
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

#[test]
fn invalid_fixtures_are_refused_with_a_named_problem() {
    let dir = root().join("tests/fixtures/invalid");
    let cases = [
        ("bad-npi-check-digit.yaml", "Luhn"),
        ("missing-family.yaml", "family"),
        ("unknown-policy.yaml", "Overwrite"),
        (
            "npi-pattern.yaml",
            "spec.npi: \"12345\" does not match \"^[0-9]{10}$\"",
        ),
        ("unknown-field.yaml", "unknown field \"spec.actve\""),
    ];
    for (file, needle) in cases {
        let err = load_manifests(&[dir.join(file)]).expect_err(file);
        let text = err.to_string();
        assert!(
            text.contains(file),
            "{file}: the error names the file: {text}"
        );
        assert!(
            text.contains(needle),
            "{file}: the error says what is wrong ({needle}): {text}"
        );
    }
    let missing = load_manifests(&[dir.join("no-such-file.yaml")]).unwrap_err();
    assert!(matches!(missing, LoadError::Missing { .. }));
}
