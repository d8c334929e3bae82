//! The shape of the code, checked: data flows one way (docs/architecture.md). Every
//! `crate::<module>` a library file names must be a module of a lower layer than its own,
//! so there is no import cycle and no module reaches above itself; the library never
//! names clap or indicatif (argument parsing and the terminal belong to the binary:
//! `main.rs`, `cli.rs`, `cmd/`); and every file opens with a `//!` paragraph.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The library's layers, lowest first. A module may use modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    &["input", "atomic", "progress", "glob", "registry", "escape"],
    &["gguf", "fingerprint"],
    &["quant", "tokenizer", "template"],
    &["stats", "infer"],
    &["probe", "quality", "policy", "diff"],
    &["rules"],
    &["report"],
    &["gate", "convert", "inspect"],
];

/// Files of the binary, not the library.
const BINARY: &[&str] = &["main.rs", "cli.rs", "cmd"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/<top>/...` or `src/<top>.rs` -> `top`.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::name` in `text`, outside comments.
fn crate_refs(text: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                refs.push(name);
            }
            rest = after;
        }
    }
    refs
}

#[test]
fn the_library_depends_only_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        let top = top_module(&src, file);
        if top == "lib"
            || BINARY.contains(&top.as_str())
            || BINARY.contains(&format!("{top}.rs").as_str())
        {
            continue;
        }
        let Some(own) = layer_of(&top) else {
            problems.push(format!(
                "{}: module `{top}` has no layer in tests/layers.rs",
                file.display()
            ));
            continue;
        };
        *seen.entry(top.clone()).or_default() += 1;
        let text = std::fs::read_to_string(file).unwrap();
        for used in crate_refs(&text) {
            if used == top {
                continue;
            }
            match layer_of(&used) {
                Some(l) if l < own => {}
                Some(l) => problems.push(format!(
                    "{}: `{top}` (layer {own}) uses `crate::{used}` (layer {l}): only lower layers may be used",
                    file.display()
                )),
                None => problems.push(format!("{}: uses unknown module `crate::{used}`", file.display())),
            }
        }
        for forbidden in ["clap", "indicatif"] {
            if text.lines().any(|l| {
                let code = l.split("//").next().unwrap_or("");
                code.contains(&format!("use {forbidden}"))
                    || code.contains(&format!("{forbidden}::"))
            }) {
                problems.push(format!(
                    "{}: the library uses {forbidden} (binary only)",
                    file.display()
                ));
            }
        }
    }
    // The check saw the library (not an empty tree).
    assert!(
        seen.len() >= 15,
        "only {} modules seen: {seen:?}",
        seen.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_module_above_its_layer_is_caught() {
    // The checker itself can fail: a low module naming a high one is reported.
    assert_eq!(
        crate_refs("use crate::report::Report; // crate::gate"),
        vec!["report"]
    );
    assert!(layer_of("report").unwrap() > layer_of("gguf").unwrap());
}

#[test]
fn every_file_says_why_it_exists() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! paragraph: {missing:?}"
    );
}
