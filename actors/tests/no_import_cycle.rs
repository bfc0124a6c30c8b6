//! The modules of the actors crate import each other without a cycle (issue 13).
//!
//! The graph has one node per top-level module of `actors/src` (`charge_point.rs`, `store/`,
//! `alerts.rs` with `alerts/`, ...) and the crate root (`lib.rs`, for the items it holds, such
//! as `FastHashMap`). A file depends on the module that every path it names resolves into:
//! `use` trees (`use crate::{a::B, c::{self, D}}`) and paths written inline (`crate::x::Y`),
//! `super::` and `self::` resolved from the module they appear in (inline `mod tests { .. }`
//! included). Comments, doc links and string literals do not count, as they do not compile to a
//! dependency.
//!
//! Edges between the files of one top-level module (`alerts/supervisor.rs` using a type of
//! `alerts.rs`, `alerts.rs` re-exporting its children) do not count: a module and its
//! submodules are one unit of privacy, and a parent that re-exports its children while they
//! use its items is the ordinary shape of a Rust module. What this test keeps out is two
//! top-level modules that need each other, which is what made the graph hard to see and to
//! change. `docs/architecture.md` draws the graph this test accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Name of the crate-root node.
const ROOT: &str = "crate root";

/// Where one dependency was seen, for the failure message.
#[derive(Debug, Clone)]
struct Seen {
    /// File, relative to the crate directory.
    file: String,
    /// 1-based line.
    line: usize,
    /// The path as written.
    path: String,
}

/// Module graph: node -> node it depends on -> first place that dependency was seen.
type Graph = BTreeMap<String, BTreeMap<String, Seen>>;

/// Source with comments, string literals and char literals blanked out (newlines kept, so
/// byte offsets still give the right line).
fn code_only(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let blank = |out: &mut Vec<u8>, b: u8| out.push(if b == b'\n' { b'\n' } else { b' ' });
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                blank(&mut out, bytes[i]);
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < bytes.len() {
                if bytes[i..].starts_with(b"/*") {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if bytes[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, bytes[i]);
                    i += 1;
                }
            }
        } else if let Some(len) = raw_string_len(bytes, i) {
            for &b in &bytes[i..i + len] {
                blank(&mut out, b);
            }
            i += len;
        } else if bytes[i] == b'"' {
            blank(&mut out, bytes[i]);
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                let step = if bytes[i] == b'\\' { 2 } else { 1 };
                for &b in &bytes[i..(i + step).min(bytes.len())] {
                    blank(&mut out, b);
                }
                i += step;
            }
            if i < bytes.len() {
                blank(&mut out, bytes[i]);
                i += 1;
            }
        } else if bytes[i] == b'\'' {
            // A char literal ('x', '\n', '\u{..}', '"', '{') or a lifetime ('a).
            let len = if bytes.get(i + 1) == Some(&b'\\') {
                bytes[i + 2..]
                    .iter()
                    .position(|&b| b == b'\'')
                    .map_or(1, |p| p + 3)
            } else {
                let ch = source[i + 1..].chars().next().map_or(0, char::len_utf8);
                if bytes.get(i + 1 + ch) == Some(&b'\'') {
                    ch + 2
                } else {
                    1
                }
            };
            for &b in &bytes[i..i + len] {
                blank(&mut out, b);
            }
            i += len;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // Only ASCII was replaced by ASCII, and multi-byte characters were copied or blanked
    // whole, so this is still UTF-8; a lossy conversion cannot change what the test reads.
    String::from_utf8_lossy(&out).into_owned()
}

/// Length of a raw string literal (`r"..."`, `r#"..."#`, `br"..."`) starting at `i`, if any.
fn raw_string_len(bytes: &[u8], i: usize) -> Option<usize> {
    if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
        return None;
    }
    let mut j = i;
    if bytes.get(j) == Some(&b'b') {
        j += 1;
    }
    if bytes.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = bytes[j..].iter().take_while(|&&b| b == b'#').count();
    j += hashes;
    if bytes.get(j) != Some(&b'"') {
        return None;
    }
    j += 1;
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    let end = bytes[j..]
        .windows(close.len())
        .position(|w| w == close.as_slice())?;
    Some(j + end + close.len() - i)
}

/// The paths of a `use` tree, expanded: `a::{b, c::{d, self}}` gives `a::b`, `a::c::d`,
/// `a::c`. Aliases (`as x`) are dropped; a glob keeps its prefix (`a::*` gives `a`).
fn expand_use_tree(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree).replace(' ', "");
        let path = path.trim_end_matches("::*").trim_end_matches("::self");
        return vec![path.to_owned()];
    };
    let prefix = tree[..open].replace(' ', "");
    let body = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&body[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| expand_use_tree(p.trim()))
        .map(|p| match p.as_str() {
            "self" | "*" => prefix.trim_end_matches("::").to_owned(),
            _ => format!("{prefix}{p}"),
        })
        .collect()
}

/// The module path of a file of `src/`: `lib.rs` is `[]`, `store/mod.rs` and `store.rs` are
/// `["store"]`, `store/keys.rs` is `["store", "keys"]`.
fn file_module(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// Inline modules (`mod name { .. }`) of a blanked source: (name, start, end) byte spans.
fn inline_modules(code: &str) -> Vec<(String, usize, usize)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut search = 0;
    while let Some(at) = code[search..].find("mod ") {
        let at = search + at;
        search = at + 4;
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let rest = &code[at + 4..];
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = rest.trim_start()[name.len()..].trim_start();
        if name.is_empty() || !after.starts_with('{') {
            continue;
        }
        let open = code.len() - after.len();
        let mut depth = 0;
        for (k, &b) in bytes.iter().enumerate().skip(open) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        found.push((name.clone(), open, k));
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    found
}

/// Every path a file names (from `use` trees and inline), with its byte offset.
fn named_paths(code: &str) -> Vec<(usize, String, bool)> {
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut paths = Vec::new();
    let mut uses = Vec::new();
    let mut search = 0;
    while let Some(at) = code[search..].find("use ") {
        let at = search + at;
        search = at + 4;
        if at > 0 && is_ident(bytes[at - 1]) {
            continue;
        }
        let Some(end) = code[at..].find(';') else {
            break;
        };
        for path in expand_use_tree(&code[at + 4..at + end]) {
            paths.push((at, path, true));
        }
        uses.push(at..at + end);
    }
    for keyword in ["crate::", "super::", "self::"] {
        let mut search = 0;
        while let Some(at) = code[search..].find(keyword) {
            let at = search + at;
            search = at + keyword.len();
            if at > 0 && (is_ident(bytes[at - 1]) || bytes[at - 1] == b':') {
                continue; // inside a longer path
            }
            if uses.iter().any(|span| span.contains(&at)) {
                continue; // counted, expanded, with its `use`
            }
            let len = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(code.len() - at);
            paths.push((
                at,
                code[at..at + len].trim_end_matches(':').to_owned(),
                false,
            ));
        }
    }
    paths
}

/// The absolute module path a path names, seen from module `here`; `None` for paths into
/// other crates.
fn resolve(
    here: &[String],
    path: &str,
    from_use: bool,
    top_level: &BTreeSet<String>,
) -> Option<Vec<String>> {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let (first, rest) = segments.split_first()?;
    let mut base: Vec<String> = match *first {
        "crate" => Vec::new(),
        "self" => here.to_vec(),
        "super" => here[..here.len().saturating_sub(1)].to_vec(),
        // A relative `use` at the crate root names a top-level module; anywhere else it names
        // a child of the current module (same top-level module) or another crate.
        name if from_use && here.is_empty() && top_level.contains(name) => vec![name.to_owned()],
        _ => return None,
    };
    let mut rest = rest;
    while let Some((&"super", tail)) = rest.split_first() {
        base.pop();
        rest = tail;
    }
    base.extend(rest.iter().map(|s| (*s).to_owned()));
    Some(base)
}

/// The top-level module (or the crate root) an absolute path falls in.
fn node_of(path: &[String], top_level: &BTreeSet<String>) -> String {
    match path.first() {
        Some(first) if top_level.contains(first) => first.clone(),
        _ => ROOT.to_owned(),
    }
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Builds the graph of the crate whose sources are `(path relative to src/, text)`.
fn module_graph(sources: &[(PathBuf, String)]) -> Graph {
    let top_level: BTreeSet<String> = sources
        .iter()
        .filter_map(|(p, _)| file_module(p).into_iter().next())
        .collect();
    let mut graph = Graph::new();
    for (relative, text) in sources {
        let module = file_module(relative);
        let code = code_only(text);
        let inline = inline_modules(&code);
        for (at, path, from_use) in named_paths(&code) {
            let mut here = module.clone();
            // Spans nest in source order, so the enclosing ones come out outermost first.
            here.extend(
                inline
                    .iter()
                    .filter(|(_, start, end)| *start < at && at < *end)
                    .map(|(name, _, _)| name.clone()),
            );
            let Some(target) = resolve(&here, &path, from_use, &top_level) else {
                continue;
            };
            let (from, to) = (node_of(&module, &top_level), node_of(&target, &top_level));
            if from == to {
                continue;
            }
            graph
                .entry(from)
                .or_default()
                .entry(to)
                .or_insert_with(|| Seen {
                    file: format!("src/{}", relative.display()),
                    line: text[..at].matches('\n').count() + 1,
                    path,
                });
        }
    }
    graph
}

/// A cycle of the graph, as its nodes in order (the first repeated at the end), if any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    /// Depth-first search; `on_path` is the current path, `done` the nodes fully explored.
    fn visit(
        node: &str,
        graph: &Graph,
        on_path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = on_path.iter().position(|n| n == node) {
            let mut cycle = on_path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        on_path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            if let Some(cycle) = visit(next, graph, on_path, done) {
                return Some(cycle);
            }
        }
        on_path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The cycle, one edge a line with where it is made.
fn describe(graph: &Graph, cycle: &[String]) -> String {
    cycle
        .windows(2)
        .map(|pair| {
            let seen = &graph[&pair[0]][&pair[1]];
            format!(
                "  {} -> {}  ({}:{} `{}`)",
                pair[0], pair[1], seen.file, seen.line, seen.path
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The sources of this crate.
fn crate_sources() -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text =
                fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let relative = file.strip_prefix(&src).unwrap_or(&file).to_path_buf();
            (relative, text)
        })
        .collect()
}

#[test]
fn the_actors_crate_has_no_import_cycle() {
    let graph = module_graph(&crate_sources());
    // The parser must see the crate's real dependencies, or the check below is empty.
    for (from, to) in [
        ("charge_point", "writer"),
        ("writer", "store"),
        ("fleet", "charge_point"),
    ] {
        assert!(
            graph.get(from).is_some_and(|edges| edges.contains_key(to)),
            "the parser no longer sees {from} -> {to}; graph: {graph:#?}"
        );
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the modules of actors/src import each other in a cycle:\n{}\n\
             Move what both need into a module below them (shared data into `exchange`), and \
             keep each message beside the actor that handles it; docs/architecture.md draws \
             the layers.",
            describe(&graph, &cycle)
        );
    }
}

/// A crate of the given files, for the checks of the checker.
fn sources(files: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
        .collect()
}

#[test]
fn a_cycle_through_use_trees_super_and_inline_paths_is_found() {
    let graph = module_graph(&sources(&[
        ("lib.rs", "pub mod a; pub mod b; pub mod c;"),
        ("a.rs", "use crate::{b::{self, B as Bee}, id};\nfn f() {}"),
        ("b/mod.rs", "mod inner;"),
        ("b/inner.rs", "use super::super::c::C;"),
        ("c.rs", "fn f() -> u8 { crate::a::X }"),
    ]));
    let cycle = find_cycle(&graph).unwrap_or_else(|| panic!("no cycle in {graph:#?}"));
    assert_eq!(cycle, ["a", "b", "c", "a"]);
    let text = describe(&graph, &cycle);
    assert!(
        text.contains("b -> c  (src/b/inner.rs:1 `super::super::c::C`)"),
        "{text}"
    );
}

#[test]
fn comments_strings_inline_test_modules_and_submodules_make_no_edge() {
    let graph = module_graph(&sources(&[
        ("lib.rs", "pub mod a; pub mod b;"),
        (
            "a.rs",
            "mod part;\npub use part::P;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}",
        ),
        ("a/part.rs", "use super::Q;\npub struct P;"),
        (
            "b.rs",
            "//! See [`crate::a`].\n/* crate::a::P */\nconst S: &str = \"crate::a::P\";\n\
             const R: &str = r#\"crate::a\"#;\nconst C: char = '\"'; use crate::FastHashMap;",
        ),
    ]));
    assert!(!graph.contains_key("a"), "{graph:#?}");
    let b: Vec<&String> = graph.get("b").into_iter().flat_map(|e| e.keys()).collect();
    assert_eq!(b, [ROOT], "{graph:#?}");
}
