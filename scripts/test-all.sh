#!/usr/bin/env bash
# Runs every test: formatting, lints, unit and property tests, integration tests over HTTP
# against the sandbox, and the end-to-end suite against a real kube-apiserver + etcd.
# Installs what it needs (etcd from Debian, a cached kube-apiserver built from Debian's
# Kubernetes source package) on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> preparing the end-to-end control plane (cached after the first run)"
EPIC_OPERATOR_KUBE_APISERVER="$(bash scripts/ensure-kube-apiserver.sh)"
export EPIC_OPERATOR_KUBE_APISERVER

echo "==> preparing Helm's Go SDK for the chart tests (a Python virtual environment)"
bash scripts/ensure-helm.sh >/dev/null

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --features e2e --locked -- -D warnings

# One feature set for every step, so nothing is compiled twice.
echo "==> cargo test (unit, property, integration)"
cargo test --features e2e --lib --bins --tests --locked --no-fail-fast -- \
  --skip ::scenario --skip packaging_applies_to_the_api_server --skip readme_quick_start_runs_verbatim

echo "==> cargo test --test e2e (end-to-end: real kube-apiserver + etcd, one test per scenario)"
# Scenarios (the fault suite among them, tests/e2e/faults.rs) wait on the operator more than
# they compute: run them side by side.
cargo test --features e2e --test e2e --locked --no-fail-fast -- --test-threads 8

echo "==> fuzzing: every cargo-fuzz target for 15 s from the checked-in seeds (nightly toolchain)"
bash scripts/fuzz.sh 15
