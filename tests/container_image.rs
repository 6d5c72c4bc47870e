//! The Dockerfile's build context holds everything the build needs: its build stage's COPY set
//! is reproduced in an empty directory and built with `cargo build --locked --offline` (the
//! project's machines have no container engine). The debug profile is built into the
//! project's own target directory, reusing the dependencies the test run already compiled (the
//! copy's binary, built from the same sources, lands where the project's own would); the
//! Dockerfile's `--profile dist` differs only in optimisation, not in which files the build reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fs_support;

use std::path::PathBuf;

use fs_support::copy_tree;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(sources, destination)` of every `COPY` of the first (build) stage, `--from` ones excluded.
fn build_stage_copies(dockerfile: &str) -> Vec<(Vec<String>, String)> {
    let mut stages = 0;
    let mut copies = Vec::new();
    for line in dockerfile.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            stages += 1;
            continue;
        }
        if stages != 1 || !line.starts_with("COPY ") || line.contains("--from") {
            continue;
        }
        let mut words: Vec<String> = line
            .split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect();
        let dest = words.pop().unwrap();
        copies.push((words, dest));
    }
    copies
}

#[test]
fn the_dockerfile_context_builds_offline() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let copies = build_stage_copies(&dockerfile);
    assert!(copies.len() >= 2, "{copies:?}");
    let context = tempfile::tempdir().unwrap();
    for (sources, dest) in &copies {
        for s in sources {
            let target = if dest.ends_with('/') && sources.len() > 1 || dest == "./" {
                context.path().join(dest).join(s)
            } else {
                context.path().join(dest)
            };
            copy_tree(&repo().join(s), &target);
        }
    }
    let out = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--offline", "--bin", "epic-operator"])
        .current_dir(context.path())
        .env("CARGO_TARGET_DIR", repo().join("target"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Dockerfile's build context does not build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_copy_set_is_read_as_docker_reads_it() {
    let copies = build_stage_copies(
        "FROM a AS build\nCOPY Cargo.toml Cargo.lock ./\nCOPY src ./src\nFROM b\nCOPY --from=build /x /y\nCOPY z /z\n",
    );
    assert_eq!(
        copies,
        vec![
            (vec!["Cargo.toml".into(), "Cargo.lock".into()], "./".into()),
            (vec!["src".into()], "./src".into()),
        ]
    );
}
