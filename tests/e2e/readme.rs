//! The README's quick start, run verbatim: every `sh` block of its "In a cluster", "Install
//! with Helm" and "Install with kustomize" sections, line by line in bash, against an API
//! server of its own with nothing installed (a newcomer's cluster), from a copy of the
//! repository. What stands in for the real thing, and why:
//! - `helm`: there is no helm binary on these machines; a stand-in renders the same chart with
//!   the same values through Helm's Go SDK (scripts/helm_render.py) and applies the chart's
//!   CRDs and the manifests with kubectl, creating the namespace when asked.
//! - `kubectl apply` runs with `--validate=false`: the test server is Kubernetes 1.20 (the
//!   newest these machines build), whose OpenAPI predates the CRDs' CEL rules; the README
//!   states 1.25 as the minimum for exactly this reason.
//! - the image is not pulled or run (no kubelet here); the Deployments are checked as applied.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cluster::ControlPlane;
use super::fs_support::copy_tree;
use super::{helm_python, kubectl};

/// The README sections whose commands must run as written.
const SECTIONS: &[&str] = &[
    "## In a cluster",
    "### Install with Helm",
    "### Install with kustomize",
];

/// The `sh` blocks directly under each heading (up to the next heading of any level).
fn blocks(readme: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut in_block = false;
    let mut block = String::new();
    for line in readme.lines() {
        if !in_block && line.starts_with('#') {
            heading = line.trim().to_string();
            continue;
        }
        if line.trim() == "```sh" && SECTIONS.contains(&heading.as_str()) {
            in_block = true;
            block.clear();
            continue;
        }
        if in_block && line.trim() == "```" {
            in_block = false;
            out.push((heading.clone(), block.clone()));
            continue;
        }
        if in_block {
            block.push_str(line);
            block.push('\n');
        }
    }
    out
}

/// A directory of stand-ins put first on PATH: `epic-operator` (the binary under test),
/// `kubectl` (the real one, closest to the server's version, without client-side
/// validation), `helm` (Helm's SDK, see the module comment).
fn shims(dir: &Path, python: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let write = |name: &str, text: String| {
        let p = bin.join(name);
        std::fs::write(&p, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write(
        "epic-operator",
        format!(
            "#!/bin/sh\nexec '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_epic-operator")
        ),
    );
    write(
        "kubectl",
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do if [ \"$a\" = apply ]; then exec '{}' \"$@\" --validate=false; fi; done\nexec '{}' \"$@\"\n",
            kubectl().display(),
            kubectl().display()
        ),
    );
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    write(
        "helm",
        format!(
            r#"#!{python}
"""Stands in for `helm install RELEASE CHART [--namespace NS] [--create-namespace] [--set k=v]...`."""
import json, subprocess, sys, os
args = sys.argv[1:]
assert args and args[0] == "install", f"only helm install is stood in for: {{args}}"
release, chart = args[1], args[2]
ns, create, values = "default", False, {{}}
i = 3
while i < len(args):
    a = args[i]
    if a in ("--namespace", "-n"):
        ns = args[i + 1]; i += 2
    elif a == "--create-namespace":
        create = True; i += 1
    elif a == "--set":
        key, value = args[i + 1].split("=", 1)
        node = values
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {{}})
        node[parts[-1]] = value
        i += 2
    else:
        sys.exit(f"helm stand-in: unsupported argument {{a}}")
rendered = subprocess.run([sys.executable, "{render}", chart, json.dumps(values), release, ns],
                          check=True, capture_output=True, text=True).stdout
if create:
    subprocess.run(["kubectl", "create", "namespace", ns], capture_output=True)
# The CRDs are templates of the chart (crds.install): they come with the rendered manifests.
subprocess.run(["kubectl", "apply", "-n", ns, "-f", "-"], input=rendered, text=True, check=True)
print(f"NAME: {{release}}\nNAMESPACE: {{ns}}\nSTATUS: deployed")
"#,
            render = repo.join("scripts/helm_render.py").display()
        ),
    );
    bin
}

fn kubectl_json(cp: &ControlPlane, args: &[&str]) -> serde_json::Value {
    let out = Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(&cp.admin_kubeconfig)
        .args(args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_quick_start_runs_verbatim() {
    assert!(
        std::env::var("EPIC_OPERATOR_E2E_KUBECONFIG").is_err(),
        "the README test needs an empty API server of its own: unset EPIC_OPERATOR_E2E_KUBECONFIG, or filter this test out"
    );
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let blocks = blocks(&readme);
    for s in SECTIONS {
        assert!(
            blocks.iter().any(|(h, _)| h == s),
            "the README has no sh block under {s:?}"
        );
    }
    let python = helm_python();
    // Helm and kustomize are alternatives (their Deployments differ in selector): each runs
    // after the cluster steps on an empty API server of its own.
    for install in &SECTIONS[1..] {
        let steps: Vec<&(String, String)> = blocks
            .iter()
            .filter(|(h, _)| h == SECTIONS[0] || h == install)
            .collect();
        run_steps(&steps, &python, &repo).await;
    }
}

async fn run_steps(blocks: &[&(String, String)], python: &str, repo: &Path) {
    let cp = ControlPlane::start_bare().await;
    let work = tempfile::tempdir().unwrap();
    for d in ["crds", "examples", "charts", "config"] {
        copy_tree(&repo.join(d), &work.path().join(d));
    }
    let bin = shims(work.path(), python);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut transcript = String::new();
    for (heading, block) in blocks {
        for line in block.lines().filter(|l| !l.trim().is_empty()) {
            let out = Command::new("bash")
                .args(["-euo", "pipefail", "-c", line])
                .current_dir(work.path())
                .env("PATH", &path)
                .env("KUBECONFIG", &cp.admin_kubeconfig)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            transcript.push_str(&format!("$ {line}\n{text}"));
            assert!(
                out.status.success(),
                "README {heading}: `{line}` failed:\n{transcript}"
            );
        }
        match heading.as_str() {
            "## In a cluster" => {
                // Five practitioners listed by the README's own last command.
                let listed = transcript
                    .rsplit("$ kubectl -n epic-system get epr\n")
                    .next()
                    .unwrap_or_default();
                for name in [
                    "alice-smith",
                    "bob-jones",
                    "carol-lee",
                    "dan-okafor",
                    "erin-novak",
                ] {
                    assert!(listed.contains(name), "{name} not listed:\n{transcript}");
                }
                assert!(
                    listed.contains("READY") && listed.contains("REASON"),
                    "{listed}"
                );
                let secret = kubectl_json(
                    &cp,
                    &["-n", "epic-system", "get", "secret", "epic-backend-key"],
                );
                assert!(secret["data"]["private-key.pem"].is_string());
                // The Secret the README creates is the one the example connection names.
                let conn = kubectl_json(&cp, &["-n", "epic-system", "get", "econn", "epic"]);
                assert_eq!(
                    conn["spec"]["privateKeySecretRef"]["name"],
                    "epic-backend-key"
                );
            }
            "### Install with Helm" => {
                let d = kubectl_json(
                    &cp,
                    &["-n", "epic-system", "get", "deployment", "epic-operator"],
                );
                assert_eq!(
                    d["spec"]["template"]["spec"]["containers"][0]["image"],
                    "registry.example.org/epic-operator:0.1.0"
                );
            }
            _ => {
                let d = kubectl_json(
                    &cp,
                    &["-n", "epic-system", "get", "deployment", "epic-operator"],
                );
                assert!(
                    d["spec"]["template"]["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap()
                        .starts_with("epic-operator:"),
                    "{d}"
                );
            }
        }
    }
}
