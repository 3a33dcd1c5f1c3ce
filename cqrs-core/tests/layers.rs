//! The crate reads as layers: a module imports only modules of lower layers (or its own).
//! This test reads the sources and fails on an import that points up, naming it, so the
//! layering in ARCHITECTURE.md stays true.

use std::collections::BTreeMap;
use std::path::Path;

/// Layers, lowest first. A module may use modules of its own layer or below.
const LAYERS: &[&[&str]] = &[
    // Plain building blocks.
    &["ids", "signal", "unwind", "services"],
    // What a store records (with tags and event queries), and progress reports.
    &["envelope", "progress", "tag", "event_query"],
    // Command context and outcome, every error type, the portable SQL unit of work, and the
    // tracing and metrics helpers.
    &["context", "error", "sql", "telemetry"],
    // Events and snapshots.
    &["event", "snapshot"],
    // The model traits.
    &[
        "aggregate",
        "decision",
        "event_of",
        "projection",
        "query",
        "cache",
    ],
    // The store contract (with checkpoints), and the registry of what the program declares.
    &["store", "registry", "catalog"],
    // The in-memory read side of the bus.
    &["read_side"],
    // The command bus.
    &["app"],
    // Untyped dispatch.
    &["dispatch"],
    // Durable projections, process managers, test fixtures.
    &["runner", "process", "fixture"],
];

/// Modules outside the layering: the crate root, the macros' support, test support.
const OUTSIDE: &[&str] = &["lib", "private", "testing"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// `crate::name` references outside comments and `#[cfg(test)]` code.
fn imports(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn imports_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut upward = BTreeMap::new();
    let mut unknown = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        // `tests.rs` and `*_tests.rs` files are `#[cfg(test)]` modules, skipped like
        // `#[cfg(test)]` code.
        let test_module = file.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            n == "tests.rs" || n.ends_with("_tests.rs")
        });
        if OUTSIDE.contains(&module.as_str()) || test_module {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            unknown.push(module);
            continue;
        };
        let source = std::fs::read_to_string(&file).unwrap();
        for used in imports(&source) {
            // Root re-exports (`crate::new_id`, `crate::StreamId`) are not modules.
            match layer_of(&used) {
                Some(layer) if layer > own => {
                    upward
                        .entry(relative.display().to_string())
                        .or_insert_with(Vec::new)
                        .push(used);
                }
                _ => {}
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules missing from LAYERS: {unknown:?}"
    );
    assert!(
        upward.is_empty(),
        "imports that point up the layers (file: modules): {upward:#?}"
    );
}
