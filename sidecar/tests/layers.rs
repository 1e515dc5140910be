//! The layering rule of ARCHITECTURE.md ("The sidecar's layers"), checked
//! from the source: every `crate::` and `super::` path of every file under
//! `src/` (tests excluded) is an import edge between two files; the graph
//! has no circle, `base/` reaches nothing above it, and only `cmd/` (and
//! `main.rs`) reaches `cmd/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`engine::sqlite`, `` for lib.rs) → source text, test
/// modules and comments removed.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => &text[..i],
                None => &text[..],
            };
            let code: String = text
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            let name = parts.join("::");
            // main.rs sits above everything; it is not a module of the library.
            if path.file_name().unwrap() == "main.rs" {
                out.insert("<main>".into(), code);
            } else {
                out.insert(name, code);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

/// The paths written after `prefix` in `code`, `{a, b::{c}}` groups
/// expanded (`crate::{x, y::z}` gives `x` and `y::z`).
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    fn expand(s: &str) -> (Vec<String>, usize) {
        let head_len = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(s.len());
        let head = &s[..head_len];
        if !s[head_len..].starts_with('{') {
            return (vec![head.trim_end_matches(':').to_owned()], head_len);
        }
        let mut depth = 0;
        let mut items = Vec::new();
        let mut start = head_len + 1;
        let mut end = s.len();
        for (i, c) in s.char_indices().skip(head_len) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        items.push(&s[start..i]);
                        end = i + 1;
                        break;
                    }
                }
                ',' if depth == 1 => {
                    items.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for item in items {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            for tail in expand(item).0 {
                out.push(format!("{head}{tail}").replace("::self", ""));
            }
        }
        (out, end)
    }
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let squeezed: String = rest
            .chars()
            .take_while(|&c| c != ';' && c != '(' && c != ')' && c != '>' && c != '<')
            .filter(|c| !c.is_whitespace())
            .collect();
        out.extend(expand(&squeezed).0);
    }
    out
}

/// The module a path names: its longest prefix that is a module.
fn resolve(modules: &BTreeMap<String, String>, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

/// Import edges between modules.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let mut edges = BTreeMap::new();
    for (name, code) in &modules {
        let mut targets = BTreeSet::new();
        for path in paths_after(code, "crate::") {
            targets.extend(resolve(&modules, &path));
        }
        for path in paths_after(code, "maintenance_sidecar::") {
            targets.extend(resolve(&modules, &path));
        }
        // `super::` of a file is its folder's module; of a folder's
        // mod.rs, the module above.
        let parent: Vec<&str> = name.split("::").collect();
        let base = parent[..parent.len().saturating_sub(1)].join("::");
        for path in paths_after(code, "super::") {
            let full = if base.is_empty() {
                path
            } else {
                format!("{base}::{path}")
            };
            targets.extend(resolve(&modules, &full));
        }
        targets.remove(name);
        targets.remove("");
        edges.insert(name.clone(), targets);
    }
    edges
}

/// 0: `base/`, 1: the services, 2: `cmd/`, 3: `main.rs`.
fn layer(module: &str) -> u8 {
    match module.split("::").next().unwrap_or("") {
        "<main>" => 3,
        "cmd" => 2,
        "base" => 0,
        _ => 1,
    }
}

#[test]
fn imports_point_down_only() {
    let edges = edges();
    assert!(edges.len() > 40, "the walk found the sources: {edges:?}");
    assert!(
        edges["cmd::run"].contains("fleet") && edges["backup"].contains("engine"),
        "the walk sees imports: {edges:?}"
    );
    let upward: Vec<String> = edges
        .iter()
        .flat_map(|(from, to)| {
            to.iter()
                .filter(|t| layer(t) > layer(from))
                .map(move |t| format!("{from} -> {t}"))
        })
        .collect();
    assert!(upward.is_empty(), "imports pointing up: {upward:?}");
}

#[test]
fn no_file_reaches_itself_through_others() {
    let edges = edges();
    // Depth-first search for a back edge; the circle is reported.
    fn visit<'a>(
        m: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, bool>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(m, false);
        stack.push(m);
        for t in edges.get(m).into_iter().flatten() {
            match state.get(t.as_str()) {
                Some(false) => {
                    let at = stack.iter().position(|s| s == t).unwrap();
                    return Some(stack[at..].iter().map(|s| s.to_string()).collect());
                }
                Some(true) => {}
                None => {
                    if let Some(c) = visit(t, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(m, true);
        None
    }
    let mut state = BTreeMap::new();
    for m in edges.keys() {
        if !state.contains_key(m.as_str()) {
            let circle = visit(m, &edges, &mut state, &mut Vec::new());
            assert!(circle.is_none(), "import circle: {circle:?}");
        }
    }
}

#[test]
fn the_checker_sees_a_circle_and_an_upward_import() {
    // The parsing the two tests above rely on, on a made-up source.
    let code = "use crate::{a::{b, c}, d};\nfn f() { crate::e::g(); super::h::i(); }";
    assert_eq!(
        paths_after(code, "crate::"),
        vec!["a::b", "a::c", "d", "e::g"]
    );
    assert_eq!(paths_after(code, "super::"), vec!["h::i"]);
    assert_eq!(layer("base::temp"), 0);
    assert!(layer("cmd::run") > layer("fleet"));
}
