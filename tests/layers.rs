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
