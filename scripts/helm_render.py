"""Lints and renders the Helm chart with Helm's own Go SDK (helm-python-sdk).

Usage: helm_render.py CHART_DIR VALUES_JSON RELEASE NAMESPACE [notes]
Prints the rendered manifests as one multi-document YAML stream (with `notes`: NOTES.txt
only); exits 1 with the lint errors or the schema violation when there are any.
"""
import json
import sys

import helm_python


def main() -> int:
    chart_dir, values_json, release, namespace = sys.argv[1:5]
    notes = sys.argv[5:6] == ["notes"]
    values = json.loads(values_json)
    report = helm_python.lint(chart_dir, values, strict=True, namespace=namespace)
    errors = report.get("errors", []) + [m["error"] for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    if errors:
        print("helm lint failed:\n" + "\n".join(errors), file=sys.stderr)
        return 1
    chart = helm_python.Chart.load(chart_dir)
    try:
        chart.validate_schema(values)
        rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    except helm_python.HelmError as e:
        print(f"helm render failed: {e}", file=sys.stderr)
        return 1
    if notes:
        print("".join(t for p, t in rendered.items() if p.endswith("NOTES.txt")))
        return 0
    for path in sorted(rendered):
        text = rendered[path].strip()
        if path.endswith(".txt") or not text:
            continue
        print(f"---\n# Source: {path}\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
