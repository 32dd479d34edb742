//! The engine's module graph: which top-level module uses which (`crate::<module>` in its
//! files), checked for cycles, and sled kept inside `store`.
//!
//! A cycle (A uses B and B uses A, directly or through others) means neither can be read,
//! tested or replaced alone; the graph must stay a DAG. `cargo test --test module_graph -- --nocapture`
//! prints it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level module a file belongs to (`flow` for `src/flow/runtime/turn.rs`), or `None`
/// for the crate root and the binary.
fn module_of(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src()).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The code of `text` without comments (`//` to the end of the line), so docs that name a
/// module do not count as using it.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules named as `crate::<name>` in `text`.
fn used(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.insert(name);
        }
    }
    names
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src()) {
        let Some(module) = module_of(&file) else {
            continue;
        };
        let text = code(&fs::read_to_string(&file).unwrap());
        let uses = graph.entry(module.clone()).or_default();
        uses.extend(used(&text).into_iter().filter(|name| *name != module));
    }
    graph
}

/// A cycle through `graph`, if there is one, as the modules on it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    for start in graph.keys() {
        if marks.contains_key(start.as_str()) {
            continue;
        }
        // Iterative depth-first search; `path` is the current chain of modules.
        let mut path: Vec<&str> = vec![start];
        let mut pending: Vec<Vec<&str>> = vec![graph[start].iter().map(String::as_str).collect()];
        marks.insert(start, Mark::Open);
        while let Some(next) = pending.last_mut() {
            match next.pop() {
                Some(child) => match marks.get(child) {
                    Some(Mark::Open) => {
                        let from = path.iter().position(|m| *m == child).unwrap();
                        let mut cycle: Vec<String> =
                            path[from..].iter().map(|m| (*m).to_owned()).collect();
                        cycle.push(child.to_owned());
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(child, Mark::Open);
                        path.push(child);
                        pending.push(
                            graph
                                .get(child)
                                .map(|uses| uses.iter().map(String::as_str).collect())
                                .unwrap_or_default(),
                        );
                    }
                },
                None => {
                    pending.pop();
                    if let Some(done) = path.pop() {
                        marks.insert(done, Mark::Done);
                    }
                }
            }
        }
    }
    None
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = graph();
    for (module, uses) in &graph {
        println!(
            "{module} -> {}",
            uses.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    assert!(
        graph.len() > 10,
        "the walk found too few modules: {graph:?}"
    );
    assert!(
        graph["server"].contains("ingress"),
        "the walk misses uses: {graph:?}"
    );
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn the_cycle_finder_finds_a_planted_cycle() {
    let mut graph = graph();
    graph.get_mut("store").unwrap().insert("server".to_owned());
    let cycle = find_cycle(&graph).expect("store -> server -> ... -> store");
    assert_eq!(cycle.first(), cycle.last());
    assert!(cycle.iter().any(|module| module == "store"), "{cycle:?}");
}

#[test]
fn only_the_store_sees_sled() {
    for file in rust_files(&src()) {
        let in_store = file.strip_prefix(src()).unwrap().starts_with("store");
        let text = fs::read_to_string(&file).unwrap();
        if !in_store {
            assert!(!text.contains("sled::"), "{} names sled", file.display());
        }
    }
}

/// The longest functions of the files under `dir` (tests excluded), as (lines, file, name).
fn function_lengths(dir: &Path) -> Vec<(usize, String, String)> {
    let mut lengths = Vec::new();
    for file in rust_files(dir) {
        let text = fs::read_to_string(&file).unwrap();
        let body = text.split("#[cfg(test)]").next().unwrap_or("");
        let lines: Vec<&str> = body.lines().collect();
        for (start, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(super) fn ",
                "pub(crate) fn ",
                "async fn ",
                "pub async fn ",
                "pub(super) async fn ",
                "pub(crate) async fn ",
            ]
            .iter()
            .any(|prefix| trimmed.starts_with(prefix));
            if !is_fn {
                continue;
            }
            let indent = line.len() - trimmed.len();
            let closing = " ".repeat(indent) + "}";
            let end = lines[start..]
                .iter()
                .position(|line| *line == closing)
                .map_or(lines.len(), |offset| start + offset);
            let name = trimmed.split('(').next().unwrap_or(trimmed).to_owned();
            lengths.push((end - start + 1, file.display().to_string(), name));
        }
    }
    lengths.sort();
    lengths
}

#[test]
fn no_function_in_the_runtime_or_the_http_layer_is_over_60_lines() {
    for dir in [src().join("flow/runtime"), src().join("server")] {
        let lengths = function_lengths(&dir);
        assert!(
            lengths.len() > 10,
            "{}: too few functions found",
            dir.display()
        );
        let longest = lengths.last().unwrap();
        println!(
            "longest in {}: {} lines, {} ({})",
            dir.display(),
            longest.0,
            longest.2,
            longest.1
        );
        let long: Vec<_> = lengths.iter().filter(|(lines, ..)| *lines > 60).collect();
        assert!(long.is_empty(), "over 60 lines: {long:#?}");
    }
}
