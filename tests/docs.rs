//! The README stays true: its reason table lists every reason the operator can set, with the
//! right lasting/transient mark, and the chart's kubeVersion is the minimum the README states.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use epic_operator::crd::Reason;

fn read(path: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_readme_reason_table_lists_every_reason() {
    let readme = read("README.md");
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    for r in Reason::ALL {
        let cell = format!("`{}`", r.as_str());
        let row = rows
            .iter()
            .find(|l| l.split('|').nth(1).is_some_and(|c| c.contains(&cell)))
            .unwrap_or_else(|| panic!("README's reason table lacks {cell}"));
        if r.is_lasting() {
            assert!(row.contains("| lasting |"), "{cell} is lasting: {row}");
        }
        if r.is_transient() {
            assert!(row.contains("| transient |"), "{cell} is transient: {row}");
        }
    }
}

#[test]
fn the_chart_requires_the_kubernetes_version_the_readme_states() {
    let readme = read("README.md");
    let chart = read("charts/epic-operator/Chart.yaml");
    let stated = readme
        .split(" or newer")
        .next()
        .and_then(|before| before.rsplit("Kubernetes ").next())
        .filter(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .expect("the README states \"Kubernetes X.Y or newer\"");
    assert!(
        chart.contains(&format!("kubeVersion: \">={stated}.0-0\"")),
        "Chart.yaml kubeVersion must be >={stated}.0-0:\n{chart}"
    );
}
