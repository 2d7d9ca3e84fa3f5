//! Finds the index of `mi_option_page_reclaim_on_free` in the mimalloc
//! header the `libmimalloc-sys` crate builds (its enum is not exported to
//! Rust, and its numbering moves between mimalloc versions), so that the
//! binary never sets another option by a stale number.

use std::env;
use std::path::Path;

const OPTION: &str = "mi_option_page_reclaim_on_free";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_MIMALLOC_INCLUDE_DIR");
    let Ok(include_dir) = env::var("DEP_MIMALLOC_INCLUDE_DIR") else {
        println!("cargo:warning=mimalloc's include directory is unknown: {OPTION} is not set");
        return;
    };
    let header = Path::new(&include_dir).join("mimalloc.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let index = std::fs::read_to_string(&header)
        .ok()
        .and_then(|text| option_index(&text, OPTION));
    match index {
        Some(index) => println!("cargo:rustc-env=LARDER_MI_PAGE_RECLAIM_ON_FREE={index}"),
        None => println!(
            "cargo:warning={} declares no {OPTION}: the option is not set",
            header.display()
        ),
    }
}

/// The value of `name` in `typedef enum mi_option_e { ... }`: its position,
/// counting the plain entries before `_mi_option_last`.
fn option_index(header: &str, name: &str) -> Option<usize> {
    let start = header.find("typedef enum mi_option_e")?;
    let body = &header[start..];
    let body = &body[body.find('{')? + 1..body.find('}')?];
    let without_comments: String = body
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut index = 0;
    for entry in without_comments.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        if entry == "_mi_option_last" || entry.contains('=') {
            return None;
        }
        if entry == name {
            return Some(index);
        }
        index += 1;
    }
    None
}
