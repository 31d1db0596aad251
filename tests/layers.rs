//! The crate's layers, as `guide::design` states them: each module of `src/`
//! uses only modules left of it in the layer line, so there is no cycle and
//! `error` is a leaf.

use std::collections::BTreeSet;
use std::path::Path;

/// The layer line from `src/guide/design.md`, left to right.
fn layer_order() -> Vec<String> {
    let design = std::fs::read_to_string("src/guide/design.md").unwrap();
    let section = &design[design.find("## Layers").expect("a Layers section")..];
    let line = section.lines().find(|l| l.contains(" ← ")).expect("the layer line");
    line.split('←').map(|m| m.trim().to_owned()).collect()
}

/// Every `crate::<module>` a file uses, outside comments.
fn uses(file: &Path, modules: &[String]) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut found = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if modules.contains(&name) {
                found.insert(name);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_uses_a_layer_above_it() {
    let order = layer_order();
    assert_eq!(order.first().map(String::as_str), Some("error"));
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    let mut checked = 0;
    let mut upward = Vec::new();
    for file in files {
        let top = file
            .strip_prefix("src")
            .unwrap()
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let Some(level) = order.iter().position(|m| *m == top) else {
            continue;
        };
        checked += 1;
        for used in uses(&file, &order) {
            let used_level = order.iter().position(|m| *m == used).unwrap();
            if used_level > level {
                upward.push(format!("{} uses crate::{used}", file.display()));
            }
        }
    }
    assert!(checked > 30, "every module file was read ({checked})");
    assert!(upward.is_empty(), "imports from a higher layer: {upward:#?}");
}

/// The module path of a file under `src/` (`state/draft.rs` → `state::draft`,
/// `store/mod.rs` → `store`, `lib.rs` → ``).
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix("src").unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// Every module a file's code names through `crate::`, `super::` or `self::`
/// paths (in `use` lists too), resolved to the longest module that exists.
fn file_uses(file: &Path, module: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let is_dir_module = file.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs");
    let parent = |m: &str| m.rsplit_once("::").map_or(String::new(), |(p, _)| p.to_owned());
    let resolve = |path: &str| -> Option<String> {
        let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        while !parts.is_empty() {
            let candidate = parts.join("::");
            if modules.contains(&candidate) {
                return Some(candidate);
            }
            parts.pop();
        }
        None
    };
    let mut found = BTreeSet::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    for (prefix, base) in [
        ("crate::", String::new()),
        ("super::", parent(module)),
        (
            "self::",
            if is_dir_module {
                module.to_owned()
            } else {
                parent(module)
            },
        ),
    ] {
        for (at, _) in code.match_indices(prefix) {
            if at > 0 && code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                continue; // `super::super::`, or part of another path
            }
            let mut rest = &code[at + prefix.len()..];
            let mut base = base.clone();
            while let Some(more) = rest.strip_prefix("super::") {
                base = parent(&base);
                rest = more;
            }
            // One path, or each path of a `{…}` list.
            let heads: Vec<String> = match rest.strip_prefix('{') {
                Some(list) => list[..list.find('}').unwrap_or(list.len())]
                    .split(',')
                    .map(|item| item.trim().chars().take_while(|&c| word(c)).collect())
                    .collect(),
                None => vec![rest.chars().take_while(|&c| word(c)).collect()],
            };
            for head in heads {
                let path = if base.is_empty() {
                    head
                } else {
                    format!("{base}::{head}")
                };
                if let Some(used) = resolve(&path) {
                    found.insert(used);
                }
            }
        }
    }
    found
}

/// No file imports one that imports it back, directly or through others. A
/// module's own submodules are its to declare and re-export, so edges from a
/// module into its descendants are not imports here; every other path counts.
#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut edges: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for file in &files {
        let module = module_of(file);
        let descendant = |m: &String| module.is_empty() || m.starts_with(&format!("{module}::"));
        let uses: BTreeSet<String> = file_uses(file, &module, &modules)
            .into_iter()
            .filter(|m| *m != module && !descendant(m))
            .collect();
        edges.insert(module, uses);
    }
    assert!(
        edges.values().map(BTreeSet::len).sum::<usize>() > 100,
        "the imports were read: {edges:#?}"
    );
    // Depth-first search for a back edge; report the cycle it closes.
    fn visit(
        m: &str,
        edges: &std::collections::BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == m) {
            cycles.push(format!("{} → {m}", path[at..].join(" → ")));
            return;
        }
        if !done.insert(m.to_owned()) {
            return;
        }
        path.push(m.to_owned());
        for next in edges.get(m).into_iter().flatten() {
            visit(next, edges, path, done, cycles);
        }
        path.pop();
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        visit(m, &edges, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "file-level import cycles: {cycles:#?}");
}
