//! The shape of the code, checked: layers point one way (no import cycle between modules, at the
//! top level or inside one), pure modules do no I/O, files and functions stay small, and
//! ARCHITECTURE.md names only files that exist.
//!
//! How the checks read the code: comments, strings and char literals are blanked first, so a
//! brace or a keyword inside them does not count. Every `use` statement is read as a tree
//! (`use super::{a, b::{c, self}}`, over several lines) and every `crate::`/`super::`/`self::`
//! path in code is an edge from the module it is written in (inline `mod x { .. }` blocks and
//! `#[path = ".."] mod x;` files included) to the longest existing module it names. The
//! top-level modules must respect the layer order below, and the graph of submodules must have
//! no cycle. Each check takes the source texts (path -> text) as input, so the tests at the end
//! can feed it a small tree with a fault in it and see the fault reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

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

/// Modules that decide without doing I/O: no `.await`, no `kube::Api`, no FHIR client. A path
/// ending in `/` is a directory (every file under it); each listed path must exist.
const PURE_MODULES: &[&str] = &[
    "src/reconcile/",
    "src/crd/",
    "src/fhir/bundle.rs",
    "src/fhir/outcome.rs",
    "src/pipeline/verdict.rs",
    "src/auth/lifetime.rs",
    "src/gitops/report_text.rs",
    "src/gitops/report_markdown.rs",
    "src/gitops/report_detail.rs",
    "src/operator/practitioner/decide.rs",
    "src/operator/practitioner/status.rs",
    "src/operator/practitioner/status_limits.rs",
    "src/operator/practitioner/events.rs",
    "src/operator/practitioner/backoff.rs",
    "src/operator/roster/pace.rs",
    "src/operator/roster/page_pace.rs",
    "src/operator/roster/index.rs",
    "src/operator/roster/matching.rs",
    "src/operator/roster/state.rs",
    "src/operator/roster/question.rs",
    "src/operator/memory.rs",
    "src/operator/members.rs",
    "src/operator/slim.rs",
    "src/operator/connection/status.rs",
    "src/operator/connection/managed_secret.rs",
];

/// Pure modules still to be written: checked when they exist, skipped while they do not; each
/// moves into [`PURE_MODULES`] once it is written.
const PURE_MODULES_PLANNED: &[&str] = &[];

/// Longest file in `src/`, in lines.
const MAX_FILE_LINES: usize = 400;
/// Longest function in the directories below, from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 80;
const FN_LIMITED_DIRS: &[&str] = &["src/operator/", "src/pipeline/"];

/// Files of `src/operator/` over either limit while the operator is being split (issue 22):
/// to be emptied, never added to, and never a file outside `src/operator/`.
const SIZE_EXEMPT_FOR_NOW: &[&str] = &[];

type Tree = BTreeMap<String, String>;
type Module = Vec<String>;

/// Every `.rs` file under `src/`, keyed by its path from the crate root (`src/fhir/mod.rs`).
fn src_tree() -> Tree {
    fn walk(root: &Path, dir: &Path, out: &mut Tree) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(root).unwrap();
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().to_string())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(key, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Tree::new();
    walk(root, &root.join("src"), &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Reading Rust well enough for these checks.

/// The text with comments, string literals (raw and byte ones too) and char literals replaced by
/// spaces, newlines kept: positions and line numbers stay those of the original.
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, from: &[char]| {
        for &ch in from {
            out.push(if ch == '\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < c.len() {
        let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            let end = (i..c.len()).find(|&k| c[k] == '\n').unwrap_or(c.len());
            blank(&mut out, &c[i..end]);
            i = end;
            continue;
        }
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            // Block comments nest in Rust.
            let (mut k, mut depth) = (i, 0usize);
            while k < c.len() {
                if c[k] == '/' && c.get(k + 1) == Some(&'*') {
                    depth += 1;
                    k += 2;
                } else if c[k] == '*' && c.get(k + 1) == Some(&'/') {
                    depth -= 1;
                    k += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    k += 1;
                }
            }
            let end = k.min(c.len());
            blank(&mut out, &c[i..end]);
            i = end;
            continue;
        }
        if !ident_before {
            // r"..", r#".."#, br"..", cr"..": no escapes, ended by a quote and as many hashes.
            let mut j = i;
            if matches!(c[j], 'b' | 'c') && c.get(j + 1) == Some(&'r') {
                j += 1;
            }
            if c[j] == 'r' {
                let mut k = j + 1;
                while c.get(k) == Some(&'#') {
                    k += 1;
                }
                let hashes = k - j - 1;
                if c.get(k) == Some(&'"') {
                    let mut end = k + 1;
                    while end < c.len()
                        && !(c[end] == '"' && (1..=hashes).all(|h| c.get(end + h) == Some(&'#')))
                    {
                        end += 1;
                    }
                    let end = (end + 1 + hashes).min(c.len());
                    blank(&mut out, &c[i..end]);
                    i = end;
                    continue;
                }
            }
        }
        if c[i] == '"' {
            let mut k = i + 1;
            while k < c.len() && c[k] != '"' {
                k += if c[k] == '\\' { 2 } else { 1 };
            }
            let end = (k + 1).min(c.len());
            blank(&mut out, &c[i..end]);
            i = end;
            continue;
        }
        if c[i] == '\'' {
            // A char literal ('x', '\n', '\u{7f}', '{'), or else a lifetime ('a, 'static).
            let end = if c.get(i + 1) == Some(&'\\') {
                (i + 3..c.len()).find(|&k| c[k] == '\'').map(|k| k + 1)
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            if let Some(end) = end {
                blank(&mut out, &c[i..end]);
                i = end;
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

#[derive(Debug, Clone)]
struct Token {
    text: String,
    line: usize,
}

/// Identifiers (keywords too), numbers, `::` and single punctuation characters of code that
/// [`code_only`] has cleaned.
fn tokens(code: &str) -> Vec<Token> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Token {
                text: c[start..i].iter().collect(),
                line,
            });
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: ch.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

fn is_ident(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// `src/operator/roster.rs` -> [operator, roster]; `src/fhir/mod.rs` -> [fhir].
fn module_of_path(path: &str) -> Module {
    let rel = path.strip_prefix("src/").unwrap_or(path);
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Module = rel.split('/').map(str::to_string).collect();
    if parts
        .last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        parts.pop();
    }
    parts
}

/// The module of each file: its place in the directory tree, or, for a file named by
/// `#[path = "x_tests.rs"] mod tests;`, the module that attribute declares.
fn modules_of_files(tree: &Tree) -> BTreeMap<String, Module> {
    let mut out: BTreeMap<String, Module> = tree
        .keys()
        .map(|p| (p.clone(), module_of_path(p)))
        .collect();
    for (path, text) in tree {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        let mut rest = text.as_str();
        while let Some(i) = rest.find("#[path = \"") {
            rest = &rest[i + "#[path = \"".len()..];
            let Some(end) = rest.find('"') else { break };
            let target = format!("{dir}/{}", &rest[..end]);
            // Other attributes and a visibility may stand between the attribute and `mod`.
            let mut after = rest[end..].trim_start_matches(['"', ']']).trim_start();
            while after.starts_with("#[") {
                after = after[after.find(']').map_or(after.len(), |k| k + 1)..].trim_start();
            }
            let after = after
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ");
            if let Some(decl) = after.strip_prefix("mod ") {
                let name: String = decl
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let mut m = module_of_path(path);
                m.push(name);
                out.insert(target, m);
            }
        }
    }
    out
}

/// `crate::a::b`, `super::super::c`, `self::d` -> an absolute module path; other paths name
/// external crates or items in scope and are not edges.
fn resolve(cur: &[String], path: &[String]) -> Option<Module> {
    let first = path.first()?;
    if first == "crate" {
        return Some(path[1..].to_vec());
    }
    if first != "super" && first != "self" {
        return None;
    }
    let mut base = cur.to_vec();
    let mut i = 0;
    while let Some(seg) = path.get(i) {
        match seg.as_str() {
            "self" => {}
            "super" => {
                base.pop();
            }
            _ => break,
        }
        i += 1;
    }
    base.extend(path[i..].iter().cloned());
    Some(base)
}

/// The paths a `use` tree names: `a::{b, c::{self, d}}` -> a::b, a::c, a::c::d.
fn use_tree(toks: &[Token], pos: &mut usize, prefix: Module, out: &mut Vec<Module>) {
    let mut path = prefix;
    while let Some(t) = toks.get(*pos) {
        match t.text.as_str() {
            "{" => {
                *pos += 1;
                while toks.get(*pos).is_some_and(|t| t.text != "}") {
                    use_tree(toks, pos, path.clone(), out);
                    if toks.get(*pos).is_some_and(|t| t.text == ",") {
                        *pos += 1;
                    }
                }
                *pos += 1;
                return;
            }
            "*" => {
                *pos += 1;
                break;
            }
            "::" => *pos += 1,
            "self" if !path.is_empty() => *pos += 1,
            "as" => *pos += 2, // the new name is not a path
            s if is_ident(s) => {
                path.push(s.to_string());
                *pos += 1;
            }
            _ => break, // `,` or `}` ends this branch
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
}

/// A path written in a file, resolved where it is an edge, with where it was written.
#[derive(Debug)]
struct Reference {
    /// The module the path is written in (inline modules included).
    from: Module,
    /// The path as written (`super::fhir::outcome`, `kube::Api`).
    written: Vec<String>,
    /// The absolute module path it names, if it names one of this crate.
    to: Option<Module>,
    line: usize,
}

/// Every `use` path and every `crate::`/`super::`/`self::` path of one file, plus the inline
/// modules it declares.
fn references(file_module: &[String], text: &str) -> (Vec<Reference>, Vec<Module>) {
    let toks = tokens(&code_only(text));
    let mut refs = Vec::new();
    let mut inline = Vec::new();
    // The open inline modules: (name, brace depth at which it closes).
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let current = |open: &[(String, usize)]| -> Module {
        let mut m = file_module.to_vec();
        m.extend(open.iter().map(|(n, _)| n.clone()));
        m
    };
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].text.as_str();
        let prev = i.checked_sub(1).map(|k| toks[k].text.as_str());
        match t {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if open.last().is_some_and(|(_, d)| *d == depth) {
                    open.pop();
                }
            }
            "mod" if toks.get(i + 2).is_some_and(|t| t.text == "{") => {
                let name = toks[i + 1].text.clone();
                open.push((name, depth));
                depth += 1;
                inline.push(current(&open));
                i += 3;
                continue;
            }
            "use" if prev != Some("::") && prev != Some(".") => {
                let end = (i..toks.len())
                    .find(|&k| toks[k].text == ";")
                    .unwrap_or(toks.len());
                let body = &toks[i + 1..end];
                let mut paths = Vec::new();
                let mut pos = 0;
                if body.first().is_some_and(|t| t.text == "::") {
                    pos = 1;
                }
                use_tree(body, &mut pos, Vec::new(), &mut paths);
                let from = current(&open);
                for p in paths {
                    refs.push(Reference {
                        to: resolve(&from, &p),
                        from: from.clone(),
                        written: p,
                        line: toks[i].line,
                    });
                }
                i = end + 1;
                continue;
            }
            _ if is_ident(t) && prev != Some("::") => {
                // A path in code: `a::b::c`, read as long as `::ident` follows.
                let mut k = i;
                let mut path = vec![t.to_string()];
                while toks.get(k + 1).is_some_and(|t| t.text == "::")
                    && toks.get(k + 2).is_some_and(|t| is_ident(&t.text))
                {
                    path.push(toks[k + 2].text.clone());
                    k += 2;
                }
                if path.len() > 1 {
                    let from = current(&open);
                    refs.push(Reference {
                        to: resolve(&from, &path),
                        from,
                        written: path,
                        line: toks[i].line,
                    });
                    i = k + 1;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    (refs, inline)
}

// ---------------------------------------------------------------------------------------------
// The checks. Each returns every problem it finds, as text for one failure message.

fn rank(top: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == top).map(|(_, r)| *r)
}

/// Layer violations and import cycles among the modules of `tree`.
fn import_problems(tree: &Tree) -> Vec<String> {
    let file_modules = modules_of_files(tree);
    let mut modules: BTreeSet<Module> = file_modules.values().cloned().collect();
    let mut all = Vec::new();
    for (path, text) in tree {
        let me = &file_modules[path];
        if me.is_empty() {
            continue; // lib.rs / main.rs
        }
        let (refs, inline) = references(me, text);
        modules.extend(inline);
        all.extend(refs.into_iter().map(|r| (path.clone(), r)));
    }
    let mut problems = BTreeSet::new();
    // Each edge with where it was first seen (file:line).
    let mut edges: BTreeMap<Module, BTreeMap<Module, String>> = BTreeMap::new();
    for (path, r) in all {
        let Some(target) = r.to else { continue };
        // The longest existing module that prefixes the path.
        let Some(target) = (1..=target.len())
            .rev()
            .map(|n| target[..n].to_vec())
            .find(|p| modules.contains(p))
        else {
            continue;
        };
        let me = r.from;
        if target == me || me.starts_with(&target) || target.starts_with(&me) {
            continue; // itself, its ancestors' re-exports, its own children
        }
        match (rank(&me[0]), rank(&target[0])) {
            (None, _) => {
                problems.insert(format!(
                    "module {} is not placed in a layer: add it to LAYERS",
                    me[0]
                ));
            }
            (_, None) => {
                problems.insert(format!(
                    "module {} is not placed in a layer: add it to LAYERS",
                    target[0]
                ));
            }
            (Some(a), Some(b)) if target[0] != me[0] && b >= a => {
                problems.insert(format!(
                    "{} uses {} ({path}:{}; layer {a} may not use layer {b})",
                    me.join("::"),
                    target.join("::"),
                    r.line
                ));
            }
            _ => {}
        }
        edges
            .entry(me)
            .or_default()
            .entry(target)
            .or_insert_with(|| format!("{path}:{}", r.line));
    }
    problems.extend(cycles(&edges));
    problems.into_iter().collect()
}

/// One message per group of modules that import each other in a circle (a strongly connected
/// component of more than one module): its members and one shortest circle through them, each
/// step with the line that makes it.
fn cycles(edges: &BTreeMap<Module, BTreeMap<Module, String>>) -> Vec<String> {
    let nodes: BTreeSet<&Module> = edges
        .iter()
        .flat_map(|(a, bs)| std::iter::once(a).chain(bs.keys()))
        .collect();
    let reach = |from: &Module| -> BTreeSet<Module> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for m in edges.get(&n).into_iter().flat_map(BTreeMap::keys) {
                if seen.insert(m.clone()) {
                    todo.push(m.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&Module, BTreeSet<Module>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(*n) || !reachable[n].contains(*n) {
            continue;
        }
        let group: BTreeSet<Module> = nodes
            .iter()
            .filter(|m| reachable[n].contains(**m) && reachable[**m].contains(*n))
            .map(|m| (*m).clone())
            .collect();
        done.extend(group.iter().cloned());
        // Shortest way from n back to n inside the group (breadth first).
        let mut back: BTreeMap<Module, Module> = BTreeMap::new();
        let mut queue = VecDeque::from([(*n).clone()]);
        'search: while let Some(a) = queue.pop_front() {
            for b in edges.get(&a).into_iter().flat_map(BTreeMap::keys) {
                if !group.contains(b) || back.contains_key(b) {
                    continue;
                }
                back.insert(b.clone(), a.clone());
                if b == *n {
                    break 'search;
                }
                queue.push_back(b.clone());
            }
        }
        let mut circle = vec![(*n).clone()];
        let mut at = (*n).clone();
        while let Some(prev) = back.get(&at) {
            circle.push(prev.clone());
            if prev == *n {
                break;
            }
            at = prev.clone();
        }
        circle.reverse();
        let steps: Vec<String> = circle
            .windows(2)
            .map(|w| {
                format!(
                    "  {} uses {} ({})",
                    w[0].join("::"),
                    w[1].join("::"),
                    edges[&w[0]][&w[1]]
                )
            })
            .collect();
        out.push(format!(
            "import cycle among {}: {}\n{}",
            group
                .iter()
                .map(|m| m.join("::"))
                .collect::<Vec<_>>()
                .join(", "),
            circle
                .iter()
                .map(|m| m.join("::"))
                .collect::<Vec<_>>()
                .join(" -> "),
            steps.join("\n")
        ));
    }
    out
}

fn listed(path: &str, entry: &str) -> bool {
    if entry.ends_with('/') {
        path.starts_with(entry)
    } else {
        path == entry
    }
}

/// What makes a module impure: awaiting, the Kubernetes API, the FHIR client.
fn impurities(text: &str) -> Vec<(usize, &'static str)> {
    let toks = tokens(&code_only(text));
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let next = toks.get(i + 1).map(|t| t.text.as_str());
        let prev = i.checked_sub(1).map(|k| toks[k].text.as_str());
        let what = match t.text.as_str() {
            "await" if prev == Some(".") => Some("`.await`"),
            "Api" if next == Some("<") => Some("`Api<..>`"),
            "FhirClient" => Some("the FHIR client (`FhirClient`)"),
            _ => None,
        };
        if let Some(what) = what {
            out.push((t.line, what));
        }
    }
    // `kube::Api`, `use kube::{Api, ..}`, `kube::api::Api`: any kube path ending in Api.
    for r in references(&[], text).0 {
        if r.written.first().is_some_and(|s| s == "kube")
            && r.written.last().is_some_and(|s| s == "Api")
        {
            out.push((r.line, "`kube::Api`"));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Listed pure modules that do I/O, and listed ones that do not exist (unless planned).
fn purity_problems(tree: &Tree, pure: &[&str], planned: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let entries: BTreeSet<&str> = pure.iter().chain(planned).copied().collect();
    for entry in entries {
        let files: Vec<&String> = tree.keys().filter(|p| listed(p, entry)).collect();
        if files.is_empty() && !planned.contains(&entry) {
            problems.push(format!(
                "{entry} is listed as a pure module but does not exist: update PURE_MODULES"
            ));
        }
        for f in files {
            for (line, what) in impurities(&tree[f]) {
                problems.push(format!("{f}:{line}: {what} in a pure module"));
            }
        }
    }
    problems
}

/// Functions as (name, first line, last line): from the `fn` keyword to the closing brace of its
/// body. Declarations without a body (trait methods) are left out.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let toks = tokens(&code_only(text));
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if t.text != "fn" || !toks.get(i + 1).is_some_and(|n| is_ident(&n.text)) {
            continue; // `fn(u32) -> u32` is a type
        }
        // The body starts at the first `{` outside the signature's brackets; `;` first: none.
        let mut k = i + 2;
        let mut nesting = 0i32;
        let body = loop {
            match toks.get(k).map(|t| t.text.as_str()) {
                None => break None,
                Some("(" | "[") => nesting += 1,
                Some(")" | "]") => nesting -= 1,
                Some(";") if nesting == 0 => break None,
                Some("{") if nesting == 0 => break Some(k),
                _ => {}
            }
            k += 1;
        };
        let Some(open) = body else { continue };
        let mut depth = 0usize;
        for tok in &toks[open..] {
            match tok.text.as_str() {
                "{" => depth += 1,
                "}" => {
                    depth -= 1;
                    if depth == 0 {
                        out.push((toks[i + 1].text.clone(), t.line, tok.line));
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Files over [`MAX_FILE_LINES`] and functions over [`MAX_FN_LINES`], except exempt files.
fn size_problems(tree: &Tree, exempt: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, text) in tree {
        if !path.starts_with("src/") || exempt.contains(&path.as_str()) {
            continue;
        }
        let lines = text.lines().count();
        if lines > MAX_FILE_LINES {
            problems.push(format!("{path}: {lines} lines (at most {MAX_FILE_LINES})"));
        }
        // A table test is data, not control flow: files of unit tests (`x_tests.rs`) are held
        // to the file limit only.
        if FN_LIMITED_DIRS.iter().any(|d| path.starts_with(d)) && !path.ends_with("_tests.rs") {
            for (name, first, last) in functions(text) {
                let n = last - first + 1;
                if n > MAX_FN_LINES {
                    problems.push(format!(
                        "{path}:{first}: fn {name} is {n} lines (at most {MAX_FN_LINES})"
                    ));
                }
            }
        }
    }
    problems
}

fn report(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what} ({}):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The checks on the real tree.

#[test]
fn layers_point_one_way_and_no_module_cycle_exists() {
    report("import problems", &import_problems(&src_tree()));
}

#[test]
fn pure_modules_do_no_io() {
    report(
        "pure modules doing I/O",
        &purity_problems(&src_tree(), PURE_MODULES, PURE_MODULES_PLANNED),
    );
}

#[test]
fn files_and_functions_stay_small() {
    report(
        "too large",
        &size_problems(&src_tree(), SIZE_EXEMPT_FOR_NOW),
    );
}

#[test]
fn only_operator_files_are_exempt_from_the_size_limits() {
    for f in SIZE_EXEMPT_FOR_NOW {
        assert!(
            f.starts_with("src/operator/"),
            "{f} may not be exempt from the size limits: only src/operator/ is being split"
        );
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

// ---------------------------------------------------------------------------------------------
// The checks on small trees with a fault in them: each fault is reported.

fn tree(files: &[(&str, &str)]) -> Tree {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

#[test]
fn a_circle_through_a_use_group_is_found() {
    let t = tree(&[
        ("src/sandbox/mod.rs", "mod fhir;\nmod search;\n"),
        (
            "src/sandbox/fhir.rs",
            "use super::{search, stats};\npub fn f() { search::g(); }\n",
        ),
        (
            "src/sandbox/search.rs",
            "use super::fhir::f;\npub fn g() {}\n",
        ),
        ("src/sandbox/stats.rs", "pub fn s() {}\n"),
    ]);
    let problems = import_problems(&t);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "import cycle among sandbox::fhir, sandbox::search: \
             sandbox::fhir -> sandbox::search -> sandbox::fhir"
        ),
        "{}",
        problems[0]
    );
    assert!(
        problems[0].contains("src/sandbox/fhir.rs:1"),
        "{}",
        problems[0]
    );
    // Without the group's edge there is no circle.
    let mut fixed = t.clone();
    fixed.insert("src/sandbox/fhir.rs".into(), "use super::stats;\n".into());
    assert_eq!(import_problems(&fixed), Vec::<String>::new());
}

#[test]
fn nested_multi_line_groups_and_self_are_read() {
    let text = "use crate::{\n    fhir::{client::{Client, self}, retry},\n    util,\n};\n\
                use super::{self as parent, sibling::{*}};\n\
                pub(crate) use crate::auth::{Token as T};\n\
                fn f() { let _ = super::super::crd::X; let s = \"crate::cli::y\"; }\n";
    let (refs, _) = references(&["gitops".into(), "report".into()], text);
    let to: BTreeSet<String> = refs
        .iter()
        .filter_map(|r| r.to.as_ref().map(|m| m.join("::")))
        .collect();
    let want: BTreeSet<String> = [
        "fhir::client::Client",
        "fhir::client",
        "fhir::retry",
        "util",
        "gitops",
        "gitops::sibling",
        "auth::Token",
        "crd::X",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(to, want, "a path in a string is no reference");
}

#[test]
fn a_cycle_through_a_tests_file_and_a_layer_violation_are_found() {
    let t = tree(&[
        ("src/fhir/mod.rs", "mod client;\nmod retry;\n"),
        (
            "src/fhir/client.rs",
            "#[cfg(test)]\n#[path = \"client_tests.rs\"]\nmod tests;\n",
        ),
        // In the tests file, `super` is the client module: this edge is client::tests -> retry.
        ("src/fhir/client_tests.rs", "use super::super::retry::R;\n"),
        ("src/fhir/retry.rs", "use crate::cli::Args;\n"),
        ("src/cli/mod.rs", "use crate::fhir::client::tests::C;\n"),
    ]);
    let problems = import_problems(&t);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("fhir::retry uses cli (src/fhir/retry.rs:1; layer 5")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with(
            "import cycle among cli, fhir::client::tests, fhir::retry: \
             cli -> fhir::client::tests -> fhir::retry -> cli"
        )),
        "{problems:?}"
    );
}

#[test]
fn an_await_in_a_pure_module_is_found() {
    let t = tree(&[
        (
            "src/reconcile/plan.rs",
            "// a comment may say .await\npub async fn plan() {\n    let s = \".await\";\n    \
             fetch().await;\n}\n",
        ),
        (
            "src/reconcile/names.rs",
            "use kube::{Api, Client};\nfn f(c: &crate::fhir::FhirClient) {}\n",
        ),
        ("src/reconcile/fields.rs", "pub fn f() -> u32 { 1 }\n"),
    ]);
    let problems = purity_problems(&t, &["src/reconcile/"], &[]);
    assert_eq!(
        problems,
        vec![
            "src/reconcile/names.rs:1: `kube::Api` in a pure module",
            "src/reconcile/names.rs:2: the FHIR client (`FhirClient`) in a pure module",
            "src/reconcile/plan.rs:4: `.await` in a pure module",
        ]
    );
    let problems = purity_problems(&t, &["src/reconcile/fields.rs"], &[]);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn a_listed_pure_module_must_exist_but_a_planned_one_may_not_yet() {
    let t = tree(&[("src/reconcile/plan.rs", "pub fn plan() {}\n")]);
    assert_eq!(
        purity_problems(&t, &["src/reconcile/", "src/gone.rs"], &["src/later.rs"]),
        vec!["src/gone.rs is listed as a pure module but does not exist: update PURE_MODULES"]
    );
    let t = tree(&[("src/later.rs", "async fn f() { g().await }\n")]);
    assert_eq!(
        purity_problems(&t, &[], &["src/later.rs"]),
        vec!["src/later.rs:1: `.await` in a pure module"]
    );
}

#[test]
fn long_files_and_functions_are_found_and_braces_in_text_do_not_count() {
    let body: String = (0..79).map(|_| "    x();\n").collect();
    let long = format!(
        "fn long() {{\n{body}}}\n\
         fn short(a: [u8; 2]) -> &'static str {{\n    let _ = '{{'; // }}\n    \"}}\"\n}}\n\
         trait T {{ fn declared(&self); }}\n\
         impl S {{\n    fn method(&self) {{\n{body}    }}\n}}\n"
    );
    let fns = functions(&long);
    let names: Vec<&str> = fns.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["long", "short", "method"]);
    assert_eq!(fns[0].2 - fns[0].1 + 1, 81);
    assert_eq!(fns[1].2 - fns[1].1 + 1, 4);
    let many: String = (0..401).map(|_| "//\n").collect();
    let t = tree(&[
        ("src/pipeline/mod.rs", long.as_str()),
        ("src/fhir/big.rs", many.as_str()),
        ("src/operator/big.rs", many.as_str()),
    ]);
    assert_eq!(
        size_problems(&t, &["src/operator/big.rs"]),
        vec![
            "src/fhir/big.rs: 401 lines (at most 400)",
            "src/pipeline/mod.rs:1: fn long is 81 lines (at most 80)",
            "src/pipeline/mod.rs:88: fn method is 81 lines (at most 80)",
        ]
    );
}
