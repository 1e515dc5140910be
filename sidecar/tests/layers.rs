//! The layering rule of ARCHITECTURE.md ("The sidecar's layers"), checked
//! from the source. Every path of every file under `src/` (test modules
//! excluded) that names a module of the crate is an import edge between two
//! files: `crate::`, `super::`, `self::` and `maintenance_sidecar::` paths,
//! and, in a folder's `mod.rs` (or `lib.rs`), a bare path that starts with
//! one of its own files (`sqlite::Sqlite`, `pub use ops::Entry`).
//!
//! The rule:
//! * `base/` reaches nothing above it, and only `cmd/` (and `main.rs`)
//!   reaches `cmd/`;
//! * no file reaches itself through imports. The one pair of edges left
//!   out of that search is a file's use of the *types, traits and
//!   constants* its own folder's `mod.rs` defines (names that start with an
//!   upper-case letter): a `mod.rs` may re-export, register and dispatch to
//!   its files while they implement its traits. A file that calls a
//!   *function* of its `mod.rs` while the `mod.rs` names that file is a
//!   circle; what the files of a folder share as logic lives in a file of
//!   its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`engine::sqlite`, `` for lib.rs, `<main>` for main.rs) →
/// source text, comments and test modules removed.
type Modules = BTreeMap<String, String>;

/// `from` → `to` → the names used right after `to` (`Engine` in
/// `super::Engine`; empty when the path names the module itself).
type Edges = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Removes `//` comments and every `#[cfg(test)]` item (an inline
/// `mod tests { .. }` up to its closing brace, wherever it is in the
/// file); the names of the test modules kept in files of their own
/// (`#[cfg(test)] mod tests;`) are returned.
fn strip(text: &str) -> (String, Vec<String>) {
    let mut code = Vec::new();
    let mut test_files = Vec::new();
    let mut lines = text.lines().map(|l| l.split("//").next().unwrap_or(""));
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            code.push(line);
            continue;
        }
        // The item the attribute applies to (after any other attributes).
        let Some(item) = lines.by_ref().find(|l| !l.trim_start().starts_with("#[")) else {
            break;
        };
        let indent = &item[..item.len() - item.trim_start().len()];
        let item = item.trim();
        if let Some(name) = item.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            test_files.push(name.trim().to_owned());
        } else if item.ends_with('{') {
            // rustfmt closes an item at the indentation it opened at.
            let close = format!("{indent}}}");
            lines.by_ref().find(|l| *l == close);
        }
    }
    (code.join("\n"), test_files)
}

/// Every source file of the crate, as [`Modules`].
fn modules() -> Modules {
    fn walk(dir: &Path, root: &Path, out: &mut Modules, tests: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out, tests);
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
            let (code, test_files) = strip(&std::fs::read_to_string(&path).unwrap());
            let name = parts.join("::");
            tests.extend(test_files.into_iter().map(|t| {
                [name.as_str(), &t]
                    .join("::")
                    .trim_start_matches(':')
                    .into()
            }));
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
    let mut tests = Vec::new();
    walk(&root, &root, &mut out, &mut tests);
    for t in tests {
        out.remove(&t);
    }
    out
}

/// The paths written after `prefix` in `code`, `{a, b::{c}}` groups
/// expanded (`crate::{x, y::z}` gives `x` and `y::z`). With `bare`, the
/// prefix must not follow `::` either (`sqlite::` but not `std::sqlite::`).
fn paths_after(code: &str, prefix: &str, bare: bool) -> Vec<String> {
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
                let path = format!("{head}{tail}");
                let path = path.strip_suffix("::self").unwrap_or(&path);
                out.push(path.replace("::self::", "::"));
            }
        }
        (out, end)
    }
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || (bare && c == ':')) {
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

/// The module a path names (its longest prefix that is a module), and the
/// first name after it (empty when the path names the module itself).
fn resolve(modules: &Modules, path: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    (0..=parts.len()).rev().find_map(|n| {
        let module = parts[..n].join("::");
        let item = parts.get(n).copied().unwrap_or("").to_owned();
        modules.contains_key(&module).then_some((module, item))
    })
}

/// The folder module a module sits in (`engine` for `engine::sqlite`,
/// `` for a top-level one).
fn parent(module: &str) -> &str {
    module.rsplit_once("::").map_or("", |(p, _)| p)
}

/// Import edges between the modules of `modules`.
fn edges(modules: &Modules) -> Edges {
    let mut edges = Edges::new();
    for (name, code) in modules {
        let mut paths = Vec::new();
        paths.extend(paths_after(code, "crate::", false));
        paths.extend(paths_after(code, "maintenance_sidecar::", false));
        // `super::` of a file is its folder's module; of a folder's
        // mod.rs, the module above. `self::` is the module itself.
        let here = |path: String, base: &str| {
            if base.is_empty() {
                path
            } else {
                format!("{base}::{path}")
            }
        };
        let above = parent(name);
        paths.extend(
            paths_after(code, "super::", false)
                .into_iter()
                .map(|p| here(p, above)),
        );
        if name != "<main>" {
            paths.extend(
                paths_after(code, "self::", false)
                    .into_iter()
                    .map(|p| here(p, name)),
            );
            // A folder's mod.rs names its own files by a bare path.
            for child in modules.keys().filter(|k| parent(k) == name && *k != name) {
                let file = child.rsplit("::").next().unwrap();
                paths.extend(
                    paths_after(code, &format!("{file}::"), true)
                        .into_iter()
                        .map(|p| here(format!("{file}::{p}"), name)),
                );
            }
        }
        let mut targets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for path in paths {
            if let Some((module, item)) = resolve(modules, &path) {
                if module != *name && !module.is_empty() {
                    targets.entry(module).or_default().insert(item);
                }
            }
        }
        edges.insert(name.clone(), targets);
    }
    edges
}

/// Whether `from` uses only types, traits and constants of `to`, its own
/// folder's mod.rs (the one use the circle search leaves out).
fn uses_only_types_of_its_mod(from: &str, to: &str, items: &BTreeSet<String>) -> bool {
    parent(from) == to
        && items
            .iter()
            .all(|i| i.starts_with(|c: char| c.is_ascii_uppercase()))
}

/// A circle of imports (the modules along it), if there is one.
fn circle(edges: &Edges) -> Option<Vec<String>> {
    // Depth-first search for a back edge; the circle is reported.
    fn visit<'a>(
        m: &'a str,
        edges: &'a Edges,
        state: &mut BTreeMap<&'a str, bool>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(m, false);
        stack.push(m);
        for (t, items) in edges.get(m).into_iter().flatten() {
            if uses_only_types_of_its_mod(m, t, items) {
                continue;
            }
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
            if let Some(c) = visit(m, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
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

/// The edges that point to a higher layer, as `from -> to`.
fn upward(edges: &Edges) -> Vec<String> {
    edges
        .iter()
        .flat_map(|(from, to)| {
            to.keys()
                .filter(|t| layer(t) > layer(from))
                .map(move |t| format!("{from} -> {t}"))
        })
        .collect()
}

#[test]
fn imports_point_down_only() {
    let edges = edges(&modules());
    assert!(edges.len() > 40, "the walk found the sources: {edges:?}");
    assert!(
        edges["cmd::run"].contains_key("fleet") && edges["backup"].contains_key("engine"),
        "the walk sees imports: {edges:?}"
    );
    assert!(
        edges["engine"].contains_key("engine::sqlite") && edges["cmd"].contains_key("cmd::run"),
        "the walk sees a mod.rs naming its own files: {edges:?}"
    );
    assert!(
        !edges.contains_key("config::tests"),
        "test modules are not part of the graph"
    );
    let up = upward(&edges);
    assert!(up.is_empty(), "imports pointing up: {up:?}");
}

#[test]
fn no_file_reaches_itself_through_others() {
    let c = circle(&edges(&modules()));
    assert!(c.is_none(), "import circle: {c:?}");
}

#[test]
fn the_checker_sees_a_circle_and_an_upward_import() {
    // The parsing and the two checks above, on made-up sources.
    let code = "use crate::{a::{b, c}, d};\nfn f() { crate::e::g(); super::h::i(); }";
    assert_eq!(
        paths_after(code, "crate::", false),
        vec!["a::b", "a::c", "d", "e::g"]
    );
    assert_eq!(paths_after(code, "super::", false), vec!["h::i"]);
    assert_eq!(
        paths_after("use std::pin::Pin; pin::take(); x::pin::y", "pin::", true),
        vec!["take"]
    );
    assert_eq!(
        strip(
            "a\n#[cfg(test)]\nmod tests {\n    fn t() {}\n}\nb // c\nimpl X {\n    #[cfg(test)]\n    #[allow(dead_code)]\n    fn u() {\n        v();\n    }\n}\n#[cfg(test)]\nmod more;\n"
        ),
        (
            "a\nb \nimpl X {\n}".to_owned(),
            vec!["more".to_owned()]
        )
    );
    assert_eq!(layer("base::temp"), 0);
    assert!(layer("cmd::run") > layer("fleet"));

    let sources = |files: &[(&str, &str)]| -> Modules {
        files
            .iter()
            .map(|(m, c)| (m.to_string(), c.to_string()))
            .collect()
    };
    // A mod.rs that registers its file, which implements its trait and
    // uses its constant: allowed.
    let registry = sources(&[
        ("", "pub mod base; pub mod eng;"),
        ("base", "pub mod x;"),
        ("base::x", "pub fn f() {}"),
        (
            "eng",
            "pub mod one;\npub trait Kind {}\npub const N: u8 = 1;\npub const ALL: [&dyn Kind; 1] = [&one::One];\npub fn helper() {}",
        ),
        (
            "eng::one",
            "use super::{Kind, N};\npub struct One;\nimpl Kind for One {}",
        ),
    ]);
    let e = edges(&registry);
    assert!(e["eng"].contains_key("eng::one"), "{e:?}");
    assert_eq!(circle(&e), None);
    assert!(upward(&e).is_empty());

    // The file also calls a function of its mod.rs: a circle.
    let mut logic = registry.clone();
    logic.insert(
        "eng::one".into(),
        "use super::{Kind, N};\npub struct One;\nfn g() { super::helper() }".into(),
    );
    assert_eq!(
        circle(&edges(&logic)),
        Some(vec!["eng".to_owned(), "eng::one".to_owned()])
    );
    // The same through `self::` and a re-export.
    let mut via_self = logic.clone();
    via_self.insert(
        "eng".into(),
        "pub use self::one::One;\npub fn helper() {}".into(),
    );
    assert!(circle(&edges(&via_self)).is_some());
    let mut reexport = logic.clone();
    reexport.insert("eng".into(), "pub use one::One;\npub fn helper() {}".into());
    assert!(circle(&edges(&reexport)).is_some());

    // Two files that use each other's types are a circle too (the
    // exemption is only for a file and its own mod.rs), and base naming
    // a service points up.
    let mut siblings = registry.clone();
    siblings.insert("eng::two".into(), "use super::one::One;".into());
    siblings.insert("eng::one".into(), "use super::two::Two;".into());
    assert!(circle(&edges(&siblings)).is_some());
    let mut up = registry;
    up.insert("base::x".into(), "use crate::eng::Kind;".into());
    assert_eq!(upward(&edges(&up)), vec!["base::x -> eng"]);
}
