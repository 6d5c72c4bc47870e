#!/usr/bin/env bash
# Makes a virtual environment with Helm's Go SDK (PyPI helm-python-sdk) for the chart tests and
# prints the path of its python. There is no helm binary on the project's machines.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=".venv"
# Tests run in parallel: one of them builds the environment, the others wait.
exec 9>".venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c "import helm_python" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "helm-python-sdk>=0.1" >&2
fi
echo "$PWD/$venv/bin/python"
