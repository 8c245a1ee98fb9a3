//! Tidy checks over the workspace's own text, run as tests (the
//! rust-analyzer way): rules that hold for the code as a whole.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::root;

/// Where a provider may be named in code outside its own crate and its
/// sandbox module: the workspace dependency, the facade's feature and the
/// facade's list.
const MAY_NAME_A_PROVIDER: &[&str] = &[
    "Cargo.toml",
    "crates/kling/Cargo.toml",
    "crates/kling/src/providers.rs",
];

/// The protocol the CLI's in-process sandbox speaks, and the one file
/// besides those that names it.
const IN_PROCESS_SANDBOX: (&str, &str) = ("shortapi", "crates/cli/src/providers.rs");

/// The sandbox's list of its protocol modules: part of each one's sandbox
/// module, as its `mod` line and entry.
const SANDBOX_LIST: &str = "crates/sandbox/src/protocols/mod.rs";

/// Every file of code: Rust sources, manifests and the CI script, minus
/// tests, benches and examples (a test may name what it tests).
fn code_files() -> Vec<PathBuf> {
    let root = root();
    let mut files = vec![root.join("Cargo.toml"), root.join(".ci/run")];
    let mut pending = vec![root.join("crates"), root.join("xtask"), root.join("fuzz")];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !matches!(
                    name.as_ref(),
                    "target" | "tests" | "benches" | "examples" | "corpus" | "artifacts"
                ) {
                    pending.push(path);
                }
            } else if name.ends_with(".rs") || name == "Cargo.toml" {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The lines of `text` that are code: comments, doc comments, a manifest's
/// description and keywords, and a Rust file's test module left out.
fn code_lines(path: &Path, text: &str) -> Vec<String> {
    let rust = path.extension().is_some_and(|e| e == "rs");
    let mut lines = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if rust && trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        let comment = if rust { "//" } else { "#" };
        if trimmed.starts_with(comment)
            || (!rust && (trimmed.starts_with("description") || trimmed.starts_with("keywords")))
        {
            continue;
        }
        lines.push(line.to_owned());
    }
    lines
}

/// Lines that hold a provider's name as another provider's wire value, not
/// as a reference to its adapter: the file and the line, trimmed. AI/ML
/// API's `provider` field may ask for its fal.ai backend.
const WIRE_VALUES: &[(&str, &str)] = &[("crates/aimlapi/src/wire.rs", "Fal,")];

/// Whether `line` names `name`: any case, not inside a longer word
/// (`fal` is not in `false` or `FALSE`, but is in `kling-fal`, `FAL_KEY`
/// and `FalApi`).
fn names(line: &str, name: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    let bytes = line.as_bytes();
    lower.match_indices(name).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + name.len()).copied();
        // After an all-capital match, a capital goes on the word
        // (`FALSE`); after `Fal` it starts the next one (`FalApi`).
        let capitals = bytes[at..at + name.len()]
            .iter()
            .all(u8::is_ascii_uppercase);
        !before.is_some_and(|b| b.is_ascii_alphabetic())
            && !after
                .is_some_and(|b| b.is_ascii_lowercase() || (capitals && b.is_ascii_uppercase()))
    })
}

#[test]
fn names_finds_a_name_as_a_word_only() {
    assert!(names("kling-fal = { path }", "fal"));
    assert!(names("std::env::var(\"FAL_KEY\")", "fal"));
    assert!(names("struct FalApi;", "fal"));
    assert!(!names("let falls = false;", "fal"));
    assert!(!names("done BOOLEAN NOT NULL DEFAULT FALSE", "fal"));
    assert!(names("FAL_KEY", "fal"));
    assert!(!names("decimal", "mal"));
}

#[test]
fn a_provider_is_named_only_in_its_crate_its_sandbox_module_and_the_facades_list() {
    let root = root();
    let files: Vec<(PathBuf, Vec<String>)> = code_files()
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let relative = path.strip_prefix(&root).ok()?.to_path_buf();
            let lines = code_lines(&path, &text);
            Some((relative, lines))
        })
        .collect();
    assert!(files.len() > 50, "the walk found the code: {}", files.len());
    let mut wrong = Vec::new();
    for provider in kling::PROVIDERS {
        let name = provider.name();
        let own_crate = PathBuf::from("crates").join(
            provider
                .package
                .strip_prefix("kling-")
                .unwrap_or(provider.package),
        );
        let sandbox_module = PathBuf::from(format!("crates/sandbox/src/protocols/{name}.rs"));
        let naming: BTreeSet<String> = files
            .iter()
            .filter(|(path, _)| {
                !path.starts_with(&own_crate)
                    && *path != sandbox_module
                    // This test, which names none but to check the check.
                    && path != Path::new("xtask/src/tidy.rs")
                    && path != Path::new(SANDBOX_LIST)
            })
            .filter(|(path, lines)| {
                lines.iter().any(|line| {
                    names(line, name)
                        && !WIRE_VALUES.contains(&(&*path.to_string_lossy(), line.trim()))
                })
            })
            .map(|(path, _)| path.display().to_string())
            .collect();
        let allowed =
            |path: &str| MAY_NAME_A_PROVIDER.contains(&path) || (name, path) == IN_PROCESS_SANDBOX;
        for path in naming.iter().filter(|p| !allowed(p)) {
            wrong.push(format!("{path} names {name}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "a provider is named outside its crate, its sandbox module and the facade's list \
         (iterate kling::PROVIDERS instead):\n{}",
        wrong.join("\n")
    );
}
