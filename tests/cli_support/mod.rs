//! Helpers of the command-line tests: the real binary, and a sandbox as its own process.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_epic-operator"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env_remove("EPIC_OPERATOR_PRIVATE_KEY_FILE");
    c
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run the binary")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// A sandbox run as its own process; killed on drop.
pub struct SandboxProcess {
    pub child: Child,
    pub base: String,
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_sandbox(args: &[&str]) -> SandboxProcess {
    let mut child = bin()
        .args(["sandbox", "--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the sandbox");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut base = String::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(rest) = line.strip_prefix("Epic sandbox listening on ") {
            base = rest.trim().to_string();
            break;
        }
    }
    assert!(
        base.starts_with("http://127.0.0.1:"),
        "sandbox did not start"
    );
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    SandboxProcess { child, base }
}

pub fn connection_manifest(
    dir: &Path,
    base: &str,
    client: &str,
    kid: &str,
    alg: &str,
    page_size: u32,
) -> PathBuf {
    let path = dir.join("connection.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: epic-operator.dev/v1alpha1\nkind: EpicConnection\nmetadata:\n  name: epic\nspec:\n  fhirBaseUrl: {base}/api/FHIR/R4\n  clientId: {client}\n  keyId: {kid}\n  algorithm: {alg}\n  privateKeySecretRef: {{name: k}}\n  pageSize: {page_size}\n"
        ),
    )
    .unwrap();
    path
}

/// A sandbox (default seed, its development key written to DIR/dev-key.pem) and an
/// EpicConnection manifest for it using `client` (page size 10): (sandbox, manifest, key).
pub fn sandbox_and_connection(dir: &Path, client: &str) -> (SandboxProcess, PathBuf, PathBuf) {
    let key = dir.join("dev-key.pem");
    let sandbox = start_sandbox(&["--dev-key-out", key.to_str().unwrap()]);
    let conn = connection_manifest(dir, &sandbox.base, client, "dev-key-1", "RS384", 10);
    (sandbox, conn, key)
}
