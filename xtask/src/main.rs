//! Project automation, run as `cargo xtask COMMAND`.
//!
//! Kept as a plain binary in the workspace (the rust-analyzer way) so that
//! maintenance tasks are Rust code, versioned and reviewed with the rest.

mod allow;
mod bench;
mod compare;
mod faults;
mod openapi;
mod range_server;
mod schemas;
#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask COMMAND

commands:
  schemas              regenerate schemas/generated/ from the adapters' wire types
                       and copy schemas/published/ into the sandbox's package
  check [--against DIR]
                       fail when schemas/generated/ or the sandbox's copy of
                       schemas/published/ is stale, or when what the
                       adapters send differs from schemas/published/ (or from
                       the providers' OpenAPI documents in DIR) beyond
                       schemas/allowed-differences.toml
  bench [--only NAME]  print the performance figures (BENCHMARKS.md), or only
                       the row NAME (probe, remote-probe, inline, upload,
                       s3-upload, waiting, push, scale, fleet, resume,
                       footprint)
  faults [--jobs N] [--only NAME]
                       run N jobs (default 100) per fault kind and provider
                       through `kling batch` against `kling sandbox`; fail on
                       a lost job, a double create, a panic or a hang
  providers            print each provider of the facade's list: its name (also
                       its facade feature) and its adapter's package, a line each
  help                 print this message
";

/// The workspace root: xtask's parent directory.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["help" | "-h" | "--help"] => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        ["schemas"] => write_schemas(&root()),
        ["providers"] => {
            for provider in kling::PROVIDERS {
                println!("{} {}", provider.name(), provider.package);
            }
            ExitCode::SUCCESS
        }
        ["faults", rest @ ..] => faults_command(rest),
        ["bench"] => match bench::run(None) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        ["bench", "--only", name] => match bench::run(Some(name)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        ["check"] => report(&check(&root(), None)),
        ["check", "--against", dir] => report(&check(&root(), Some(Path::new(dir)))),
        _ => {
            eprint!("error: unknown command `{}`\n\n{USAGE}", args.join(" "));
            ExitCode::from(2)
        }
    }
}

fn faults_command(args: &[&str]) -> ExitCode {
    let mut jobs = 100;
    let mut only = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        match (*flag, rest.next()) {
            ("--jobs", Some(n)) if n.parse::<u32>().is_ok_and(|n| n > 0) => {
                jobs = n.parse().unwrap_or(100);
            }
            ("--only", Some(name)) => only = Some(*name),
            _ => {
                eprint!("error: bad arguments to faults\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match faults::run(jobs, only) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: the fault suite found problems (see the last column)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_schemas(root: &Path) -> ExitCode {
    match schemas::write(root) {
        Ok(changed) if changed.is_empty() => {
            println!(
                "schemas/generated/ and the sandbox's copy of schemas/published/ are up to date"
            );
            ExitCode::SUCCESS
        }
        Ok(changed) => {
            for line in changed {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write schemas/generated/ or the sandbox's copy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `cargo xtask check` found.
#[derive(Debug, Default)]
struct Report {
    /// One line per problem; the check fails when there is any.
    problems: Vec<String>,
    /// What was checked, for the closing line.
    summary: String,
}

fn check(root: &Path, against: Option<&Path>) -> Report {
    let mut report = Report::default();
    report.problems.extend(schemas::stale(root));
    report.problems.extend(schemas::sandbox_copy_drift(root));
    let (published, origin, require_each) = match against {
        None => (
            schemas::published(root),
            "schemas/published/".to_owned(),
            true,
        ),
        Some(dir) => {
            let (found, ignored) = openapi::read(dir);
            for line in ignored {
                eprintln!("note: {line}");
            }
            for document in &found {
                eprintln!(
                    "note: {}: the {} body of {}",
                    document.source, document.provider, document.model
                );
            }
            if found.is_empty() {
                report.problems.push(format!(
                    "{}: no provider's create body found",
                    dir.display()
                ));
            }
            (found, dir.display().to_string(), false)
        }
    };
    let entries = match allow::load(root) {
        Ok(entries) => entries,
        Err(e) => {
            report.problems.push(e);
            Vec::new()
        }
    };
    let findings = schemas::differences(&published, require_each);
    let (left, unused, allowed) = allow::apply(&entries, findings);
    report.problems.extend(left.iter().map(ToString::to_string));
    // Entries for other providers' documents are not stale when checking
    // against a directory that holds only some.
    if against.is_none() {
        report.problems.extend(unused);
    }
    let counts = schemas::models_by_provider();
    let models: Vec<String> = counts
        .iter()
        .map(|(provider, count)| format!("{provider} {count}"))
        .collect();
    report.summary = format!(
        "{} bodies ({}) checked against {} schemas in {origin}; {allowed} reviewed differences \
         allowed by {}",
        counts.values().sum::<usize>(),
        models.join(", "),
        published.len(),
        allow::FILE
    );
    report
}

fn report(report: &Report) -> ExitCode {
    for line in &report.problems {
        println!("{line}");
    }
    if report.problems.is_empty() {
        println!("ok: {}", report.summary);
        ExitCode::SUCCESS
    } else {
        println!(
            "{} problem(s); {}. Fix the wire type or the published transcription, or add a \
             reviewed entry with its reason to {}.",
            report.problems.len(),
            report.summary,
            allow::FILE
        );
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A copy of the workspace's schemas (and the sandbox's copy of the
    /// published ones), to break on purpose.
    fn copy_of_schemas() -> tempfile::TempDir {
        let copy = tempfile::tempdir().unwrap();
        let mut pending = vec![
            PathBuf::from("schemas"),
            PathBuf::from(schemas::SANDBOX_COPY),
        ];
        while let Some(dir) = pending.pop() {
            std::fs::create_dir_all(copy.path().join(&dir)).unwrap();
            for entry in std::fs::read_dir(root().join(&dir)).unwrap().flatten() {
                let relative = dir.join(entry.file_name());
                if entry.path().is_dir() {
                    pending.push(relative);
                } else {
                    std::fs::copy(entry.path(), copy.path().join(relative)).unwrap();
                }
            }
        }
        copy
    }

    fn edit_json(path: &Path, change: impl FnOnce(&mut Value)) {
        let mut value: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        change(&mut value);
        std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    }

    /// Edits a published schema as a maintainer would: the file under
    /// `schemas/published/`, then `cargo xtask schemas`, which copies it into
    /// the sandbox.
    fn edit_published(copy: &Path, relative: &str, change: impl FnOnce(&mut Value)) {
        edit_json(&copy.join("schemas/published").join(relative), change);
        let copied = copy.join(schemas::SANDBOX_COPY).join(relative);
        std::fs::copy(copy.join("schemas/published").join(relative), copied).unwrap();
    }

    #[test]
    fn the_workspace_passes() {
        let report = check(&root(), None);
        assert_eq!(report.problems, Vec::<String>::new());
    }

    #[test]
    fn drift_in_a_published_schema_is_reported_exactly() {
        let copy = copy_of_schemas();
        edit_published(
            copy.path(),
            "aimlapi/video-o1-image-to-video.json",
            |schema| {
                schema["properties"]["seed"] = json!({"type": "integer"});
                schema["required"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("seed"));
                schema["properties"]["duration"]["enum"] = json!([5, 10, 15]);
                schema["properties"]["prompt"]["type"] = json!("integer");
            },
        );
        let report = check(copy.path(), None);
        assert_eq!(
            report.problems,
            [
                "aimlapi klingai/video-o1-image-to-video $.duration: enum: we have [10, 5], \
                 published [10, 15, 5]",
                "aimlapi klingai/video-o1-image-to-video $.prompt: type: we have [string], \
                 published [integer]",
                "aimlapi klingai/video-o1-image-to-video $.seed: required: we have no such \
                 field, published required",
            ]
        );
    }

    #[test]
    fn a_field_we_send_that_is_not_published_is_reported() {
        let copy = copy_of_schemas();
        let file = "oxen/kling-video-o1-video-to-video-edit.json";
        edit_published(copy.path(), file, |schema| {
            schema["properties"]
                .as_object_mut()
                .unwrap()
                .remove("keep_audio");
        });
        assert_eq!(
            check(copy.path(), None).problems,
            [
                "oxen kling-video-o1-video-to-video-edit $.keep_audio: not-published: we have a \
              field we send, published no such field"
            ]
        );
    }

    #[test]
    fn stale_missing_and_stray_generated_files_name_the_fix() {
        let copy = copy_of_schemas();
        let generated = copy.path().join("schemas/generated");
        edit_json(&generated.join("oxen/kling-video-o3-omni.json"), |schema| {
            schema["title"] = json!("edited by hand");
        });
        std::fs::remove_file(generated.join("aimlapi/klingai-video-o1-image-to-video.json"))
            .unwrap();
        std::fs::write(generated.join("shortapi/old-model.json"), "{}").unwrap();
        assert_eq!(
            check(copy.path(), None).problems,
            [
                "schemas/generated/aimlapi/klingai-video-o1-image-to-video.json is missing: run \
                 `cargo xtask schemas`",
                "schemas/generated/oxen/kling-video-o3-omni.json is stale: run `cargo xtask \
                 schemas`",
                "schemas/generated/shortapi/old-model.json is generated by no adapter: run \
                 `cargo xtask schemas` to remove it",
            ]
        );
        // Regenerating fixes all three, and a second run changes nothing.
        assert_eq!(schemas::write(copy.path()).unwrap().len(), 3);
        assert_eq!(schemas::write(copy.path()).unwrap(), Vec::<String>::new());
        assert_eq!(check(copy.path(), None).problems, Vec::<String>::new());
    }

    #[test]
    fn the_sandbox_copy_must_match_the_published_schemas() {
        let copy = copy_of_schemas();
        let sandbox = copy.path().join(schemas::SANDBOX_COPY);
        // One byte more is a difference: the copy is compared byte for byte.
        let edited = sandbox.join("oxen/kling-video-o3-omni.json");
        let mut text = std::fs::read_to_string(&edited).unwrap();
        text.push('\n');
        std::fs::write(&edited, text).unwrap();
        std::fs::remove_file(sandbox.join("shortapi/create-response.json")).unwrap();
        std::fs::write(sandbox.join("aimlapi/old.json"), "{}").unwrap();
        assert_eq!(
            check(copy.path(), None).problems,
            [
                "crates/sandbox/schemas/published/oxen/kling-video-o3-omni.json differs from \
                 schemas/published/oxen/kling-video-o3-omni.json: run `cargo xtask schemas` \
                 to copy it again (edit schemas/published/, never the copy)",
                "crates/sandbox/schemas/published/shortapi/create-response.json is missing \
                 (the sandbox's copy of schemas/published/shortapi/create-response.json): run \
                 `cargo xtask schemas`",
                "crates/sandbox/schemas/published/aimlapi/old.json is not in \
                 schemas/published/: run `cargo xtask schemas` to remove it",
            ]
        );
        // `cargo xtask schemas` puts the copy right, and changes nothing more.
        assert_eq!(
            schemas::write(copy.path()).unwrap(),
            [
                "wrote crates/sandbox/schemas/published/oxen/kling-video-o3-omni.json",
                "wrote crates/sandbox/schemas/published/shortapi/create-response.json",
                "removed crates/sandbox/schemas/published/aimlapi/old.json",
            ]
        );
        assert_eq!(schemas::write(copy.path()).unwrap(), Vec::<String>::new());
        assert_eq!(check(copy.path(), None).problems, Vec::<String>::new());
    }

    #[test]
    fn only_reviewed_differences_pass() {
        let copy = copy_of_schemas();
        let list = copy.path().join(allow::FILE);
        let text = std::fs::read_to_string(&list).unwrap();
        // Without its entry, a reviewed difference fails again.
        let without_oxen = text.replace("provider = \"oxen\"", "provider = \"oxen-gone\"");
        std::fs::write(&list, &without_oxen).unwrap();
        assert_eq!(
            check(copy.path(), None).problems,
            [
                "oxen kling-video-o3-omni $.duration: limit:maximum: we have 10, published 15",
                "schemas/allowed-differences.toml: oxen-gone kling-video-o3-omni $.duration \
                 (limit:maximum) matches no difference any more: remove the entry",
            ]
        );
        let unexplained = "\n[[allow]]\nprovider = \"oxen\"\nmodel = \"m\"\npath = \"$\"\n\
                           kind = \"type\"\nreason = \" \"\n";
        std::fs::write(&list, text + unexplained).unwrap();
        let problems = check(copy.path(), None).problems;
        assert!(
            problems.iter().any(|p| p.contains("gives no reason")),
            "{problems:?}"
        );
    }

    /// An AI/ML API-style OpenAPI document for `schema`: the body behind a
    /// `$ref` into `components`, one field `nullable` as OpenAPI 3.0 says.
    fn openapi_document(mut schema: Value) -> Value {
        for key in [
            "$schema",
            "x-source",
            "x-provider-page",
            "$comment",
            "additionalProperties",
        ] {
            schema.as_object_mut().unwrap().remove(key);
        }
        schema["properties"]["last_image_url"]["nullable"] = json!(true);
        json!({
            "openapi": "3.0.0",
            "info": {"title": "AI/ML API", "version": "1"},
            "paths": {"/v2/video/generations": {"post": {"requestBody": {"content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Body"}}
            }}}}},
            "components": {"schemas": {"Body": schema}},
        })
    }

    #[test]
    fn openapi_documents_in_a_directory_are_checked_too() {
        let published: Value = serde_json::from_str(
            &std::fs::read_to_string(
                root().join("schemas/published/aimlapi/video-o1-image-to-video.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let document = dir.path().join("video-o1-image-to-video.json");
        std::fs::write(&document, openapi_document(published.clone()).to_string()).unwrap();
        std::fs::write(dir.path().join("notes.json"), "{\"not\": \"openapi\"}").unwrap();
        assert_eq!(
            check(&root(), Some(dir.path())).problems,
            Vec::<String>::new()
        );

        let mut changed = published;
        changed["properties"]["duration"]["enum"] = json!([5]);
        changed["properties"]["prompt"]["maxLength"] = json!(2000);
        std::fs::write(&document, openapi_document(changed).to_string()).unwrap();
        assert_eq!(
            check(&root(), Some(dir.path())).problems,
            [
                "aimlapi klingai/video-o1-image-to-video $.duration: enum: we have [10, 5], \
                 published [5]",
                "aimlapi klingai/video-o1-image-to-video $.prompt: limit:maxLength: we have \
                 2500, published 2000",
            ]
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            check(&root(), Some(empty.path())).problems,
            [format!(
                "{}: no provider's create body found",
                empty.path().display()
            )]
        );
    }
}
