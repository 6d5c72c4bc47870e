//! The shape of the code, checked: layers point one way (no import cycle between modules, at the
//! top level or inside one), and ARCHITECTURE.md names only files that exist.
//!
//! How the check works: every `crate::a::b` and `super::b` path in `src/` is an edge from the
//! file's module to the module it names; the top-level modules must respect the layer order
//! below, and the graph of submodules must have no cycle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up; a module may use only modules of a lower rank.
const LAYERS: &[(&str, u32)] = &[
    ("util", 0),
    ("crd", 1),
    ("reconcile", 2),
    ("http", 3),
    ("auth", 4),
    ("fhir", 5),
    ("pipeline", 6),
    ("sandbox", 6),
    ("gitops", 7),
    ("operator", 7),
    ("cli", 8),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/operator/roster.rs` -> ["operator", "roster"]; `src/fhir/mod.rs` -> ["fhir"].
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        parts.pop();
    }
    parts
}

/// The module paths a file refers to, resolved to absolute paths (first three segments).
fn references(file: &Path, text: &str) -> BTreeSet<Vec<String>> {
    let me = module_of(file);
    // `super` is the parent module, for `x/mod.rs` (module x) and `x/y.rs` (module x::y) alike.
    let parent: Vec<String> = me[..me.len().saturating_sub(1)].to_vec();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        for (prefix, base) in [("crate::", Vec::new()), ("super::", parent.clone())] {
            let mut rest = code;
            while let Some(i) = rest.find(prefix) {
                let after = &rest[i + prefix.len()..];
                let segs: Vec<String> = after
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or_default()
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .take(3)
                    .map(str::to_string)
                    .collect();
                let mut path = base.clone();
                path.extend(segs);
                if !path.is_empty() {
                    out.insert(path);
                }
                rest = after;
            }
        }
    }
    out
}

fn rank(top: &str) -> u32 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == top)
        .map(|(_, r)| *r)
        .unwrap_or_else(|| panic!("module {top} is not placed in a layer: add it to LAYERS"))
}

#[test]
fn layers_point_one_way_and_no_module_cycle_exists() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut violations = Vec::new();
    for f in &files {
        let me = module_of(f);
        if me.is_empty() {
            continue; // lib.rs / main.rs
        }
        let text = std::fs::read_to_string(f).unwrap();
        for target in references(f, &text) {
            // The longest existing module that prefixes the path.
            let target = (1..=target.len())
                .rev()
                .map(|n| target[..n].to_vec())
                .find(|p| modules.contains(p));
            let Some(target) = target else { continue };
            if target == me || me.starts_with(&target) || target.starts_with(&me) {
                continue; // itself, its parent's re-exports, its own children
            }
            if target[0] != me[0] && rank(&target[0]) >= rank(&me[0]) {
                violations.push(format!(
                    "{} uses {} (layer {} may not use layer {})",
                    me.join("::"),
                    target.join("::"),
                    rank(&me[0]),
                    rank(&target[0])
                ));
            }
            edges.entry(me.clone()).or_default().insert(target);
        }
    }
    assert!(
        violations.is_empty(),
        "layer violations:\n{}",
        violations.join("\n")
    );
    // No cycle among submodules (depth-first search with colours).
    fn visit(
        n: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(1) => {
                let i = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut cycle: Vec<String> = stack[i..].iter().map(|s| s.join("::")).collect();
                cycle.push(n.join("::"));
                return Some(cycle);
            }
            Some(2) => return None,
            _ => {}
        }
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        let mut stack = Vec::new();
        if let Some(cycle) = visit(n, &edges, &mut state, &mut stack) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn architecture_md_names_only_files_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut named = 0;
    for word in
        doc.split(|c: char| c.is_whitespace() || c == '`' || c == '(' || c == ')' || c == ',')
    {
        let word = word.trim_end_matches(['.', ':', ';']);
        if (word.starts_with("src/") || word.starts_with("tests/")) && word.len() > 4 {
            named += 1;
            assert!(
                root.join(word).exists(),
                "ARCHITECTURE.md names {word}, which does not exist"
            );
        }
    }
    assert!(
        named >= 10,
        "ARCHITECTURE.md should point at the code ({named} paths)"
    );
}
