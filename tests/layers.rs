//! The crate's layers, held against its code: `src/lib.rs` lists the parts
//! bottom to top ("# The layers, bottom to top"), and a part may name only
//! parts on layers below its own. This reads every non-test source file,
//! collects the parts each names through `crate::` paths (in `use` lines
//! and in code, grouped imports included; comments are skipped), and fails
//! on a part that names one on its own layer or above, and on a `pub mod`
//! of `lib.rs` that is on no layer. Inside each folder, the files' own
//! imports of one another (`super::` and `crate::part::` paths, `mod.rs`
//! left out: it declares and re-exports its files) must have no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The parts named on each numbered line of lib.rs's layer list: part → layer.
fn layers(lib: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut in_list = false;
    let mut layer = 0;
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if doc.starts_with("# The layers") {
            in_list = true;
            continue;
        }
        if !in_list {
            continue;
        }
        if doc.starts_with('#') {
            break;
        }
        if let Some((n, _)) = doc.split_once(". ")
            && let Ok(n) = n.parse::<usize>()
        {
            layer = n;
        } else if doc.is_empty() && layer > 0 {
            break;
        }
        if layer == 0 {
            continue;
        }
        for name in doc.split("[`").skip(1) {
            if let Some((name, _)) = name.split_once('`') {
                out.insert(name.to_string(), layer);
            }
        }
    }
    out
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A file's code without its tests and comments: files that are test
/// modules (`tests.rs`, `tests/`) give nothing, and a file stops at its
/// `#[cfg(test)]` module.
fn code(rel: &str, text: &str) -> String {
    if rel.ends_with("/tests.rs") || rel.contains("/tests/") {
        return String::new();
    }
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod "))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" // ").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The paths that follow `prefix` in `code`, grouped imports spread out:
/// `crate::{a, b::{c, d}}` gives `a`, `b::c`, `b::d`.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices(prefix) {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        spread("", &code[i + prefix.len()..], &mut out);
    }
    out
}

fn spread(base: &str, rest: &str, out: &mut Vec<String>) {
    if let Some(inner) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        for (j, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    spread(base, inner[start..j].trim(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    spread(base, inner[start..j].trim(), out);
                    start = j + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(rest.len());
    let path = rest[..end].trim_end_matches(':');
    let joined = if base.is_empty() {
        path.to_string()
    } else {
        format!("{base}::{path}")
    };
    if rest[end..].starts_with('{') && rest[..end].ends_with("::") {
        spread(&joined, &rest[end..], out);
    } else if !path.is_empty() {
        out.push(joined);
    }
}

/// The part a source file belongs to: its first folder, or its own name.
fn part_of(rel: &str) -> String {
    let rel = rel.strip_prefix("src/").unwrap();
    rel.split('/')
        .next()
        .unwrap()
        .trim_end_matches(".rs")
        .to_string()
}

/// (relative path, code) of every non-test source file but lib.rs and main.rs.
fn files() -> Vec<(String, String)> {
    let mut all = Vec::new();
    sources(&root().join("src"), &mut all);
    let mut out: Vec<(String, String)> = all
        .iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(p).unwrap();
            let code = code(&rel, &text);
            (rel, code)
        })
        .filter(|(rel, _)| rel != "src/lib.rs" && rel != "src/main.rs")
        .collect();
    out.sort();
    out
}

#[test]
fn no_part_names_one_on_its_own_layer_or_above() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let layers = layers(&lib);
    assert!(
        layers.len() > 10,
        "lib.rs's layer list was not read: {layers:?}"
    );
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    let unplaced: Vec<&&str> = declared
        .iter()
        .filter(|m| !layers.contains_key(**m))
        .collect();
    assert!(
        unplaced.is_empty(),
        "parts on no layer of lib.rs's list (place them there): {unplaced:?}"
    );
    let mut wrong = BTreeSet::new();
    let mut arrows = 0;
    for (rel, code) in files() {
        let part = part_of(&rel);
        let own = layers[&part];
        for path in paths_after(&code, "crate::") {
            let named = path.split("::").next().unwrap();
            if named == part || !layers.contains_key(named) {
                continue;
            }
            arrows += 1;
            if layers[named] >= own {
                wrong.insert(format!(
                    "{rel} (layer {own}) names crate::{path} (layer {})",
                    layers[named]
                ));
            }
        }
    }
    assert!(arrows > 100, "too few crate:: paths were read: {arrows}");
    assert!(
        wrong.is_empty(),
        "a part names one on its own layer or above (move the item down, or the part up in lib.rs's list):\n{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_files_of_a_folder_import_one_another_without_a_cycle() {
    let files = files();
    // file → the sibling files it names, per folder (mod.rs left out).
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, code) in &files {
        let p = Path::new(rel);
        let dir = p.parent().unwrap().to_string_lossy().into_owned();
        if dir == "src" || p.file_name().unwrap() == "mod.rs" {
            continue;
        }
        let module = dir.trim_start_matches("src/").replace('/', "::");
        let mut named = BTreeSet::new();
        for path in paths_after(code, "super::").into_iter().chain(
            paths_after(code, "crate::")
                .into_iter()
                .filter_map(|p| p.strip_prefix(&format!("{module}::")).map(str::to_string)),
        ) {
            let first = path.split("::").next().unwrap();
            let sibling = format!("{dir}/{first}.rs");
            let folder = format!("{dir}/{first}/mod.rs");
            if sibling != *rel && files.iter().any(|(r, _)| *r == sibling) {
                named.insert(sibling);
            } else if files.iter().any(|(r, _)| *r == folder) {
                // A sub-folder: its files count as one, through its mod.rs.
                named.insert(folder);
            }
        }
        graph.insert(rel.clone(), named);
    }
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    assert!(
        edges > 20,
        "too few imports between files were read: {edges}"
    );
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str())
            && let Some(cycle) = visit(n, &graph, &mut state, &mut Vec::new())
        {
            panic!(
                "files that import each other (move the shared item into one of them, or below both): {}",
                cycle.join(" → ")
            );
        }
    }
}

#[test]
fn grouped_imports_are_spread_out() {
    let text = "use crate::{a, b::{c, d::E}, f::g};\nlet x = crate::h::i(); y::crate::z;";
    assert_eq!(
        paths_after(text, "crate::"),
        ["a", "b::c", "b::d::E", "f::g", "h::i"]
    );
    assert_eq!(
        code("src/x/tests.rs", "use crate::a;"),
        "",
        "a test module gives nothing"
    );
    assert_eq!(
        code(
            "src/x.rs",
            "use crate::a; // crate::b\n// crate::c\n#[cfg(test)]\nmod tests {\nuse crate::d;\n}\n"
        ),
        "use crate::a;\n"
    );
}
