//! The floors of `../shared/DESIGN.md`, checked: a module may use the
//! modules below it, never one above. A `use` that runs back up fails here
//! with the file and the line, before it grows into a circle.

use std::fs;
use std::path::{Path, PathBuf};

/// The floors, lowest first: a top-level module of `src/` may use the
/// modules of the floors below its own, never those of its floor's
/// neighbours or above.
const FLOORS: &[&[&str]] = &[
    &[
        "error",
        "geohash",
        "glob",
        "hyperloglog",
        "latency",
        "numbers",
        "memory",
        "version",
    ],
    &["protocol"],
    &["store"],
    // Redis's RDB value encoding: reads and writes store values.
    &["rdb"],
    &["config"],
    &[
        "writebehind",
        "scripting",
        "pubsub",
        "acl",
        "audit",
        "persistence",
    ],
    &["shared"],
    &["commands"],
    // The Prometheus endpoint: serves a socket and runs INFO through the
    // command layer; the server starts and stops it.
    &["metrics"],
    &["server"],
];

/// The floor `module` stands on, if it has one.
fn floor_of(module: &str) -> Option<usize> {
    FLOORS.iter().position(|floor| floor.contains(&module))
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/store/shard.rs`:
/// `store`, `src/glob.rs`: `glob`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("file under src");
    let first = relative
        .components()
        .next()
        .expect("non-empty path")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::<module>` a line of code names (comments skipped).
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
        rest = after;
    }
    names
}

#[test]
fn no_module_uses_a_module_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut checked = 0;
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        // lib.rs and main.rs sit on top and may use everything.
        let Some(floor) = floor_of(&module) else {
            continue;
        };
        let text = fs::read_to_string(file).expect("readable source");
        for (number, line) in text.lines().enumerate() {
            for used in crate_paths(line) {
                checked += 1;
                let below = floor_of(&used).is_none_or(|used_floor| used_floor < floor);
                if used != module && !below {
                    violations.push(format!(
                        "{}:{}: `{module}` uses `{used}`, a floor above it",
                        file.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(
        checked > 100,
        "found only {checked} crate paths: is src/ there?"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn every_module_of_src_has_a_floor() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut unplaced: Vec<String> = files
        .iter()
        .map(|file| module_of(&src, file))
        .filter(|module| !["lib", "main"].contains(&module.as_str()))
        .filter(|module| floor_of(module).is_none())
        .collect();
    unplaced.sort();
    unplaced.dedup();
    assert!(
        unplaced.is_empty(),
        "modules with no floor in tests/layering.rs: {unplaced:?}"
    );
}

#[test]
fn the_checker_sees_an_upward_use() {
    assert_eq!(
        crate_paths("use crate::server::Shared; // crate::commands"),
        vec!["server".to_string()]
    );
    assert_eq!(
        crate_paths("let x = crate::numbers::strict_i64(crate::glob::y);"),
        vec!["numbers".to_string(), "glob".to_string()]
    );
}
