//! A distinctive key, given to every command, appears in no output, no
//! error, no journal and no dry run, and never reaches a result host.

mod support;

use std::path::Path;
use std::process::Output;

use support::{SandboxProcess, kling_with_journal, root};

const CANARY: &str = "sk-kling-canary-93b1e4d0a7";

fn run(journal: &Path, args: &[&str]) -> Output {
    kling_with_journal(journal)
        .args(args)
        .env("SHORTAPI_KEY", CANARY)
        .env("AIMLAPI_KEY", CANARY)
        .env("OXEN_API_KEY", CANARY)
        .env("RUST_LOG", "trace")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

fn assert_clean(what: &str, output: &Output) {
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains(CANARY),
            "{what}: the key is in {stream}:\n{text}"
        );
    }
}

/// Every job command on `provider`: dry runs, a run to the end, a
/// submit, a transport failure, a refused base URL. Returns the job
/// submitted.
fn job_commands(sandbox: &SandboxProcess, journal: &Path, provider: &str, video: &str) -> String {
    let base = format!("{}/{provider}", sandbox.base);
    let on = |rest: &[&str]| {
        let mut args = vec!["--provider", provider, "--base-url", &base];
        args.extend_from_slice(rest);
        run(journal, &args)
    };
    let out = journal.with_file_name(format!("{provider}.mp4"));
    let out = out.to_str().unwrap();
    let url = "https://media.example/in.mp4";
    let elsewhere = |base: &str| {
        run(
            journal,
            &[
                "--provider",
                provider,
                "--base-url",
                base,
                "edit",
                "--video",
                url,
                "--prompt",
                "x",
            ],
        )
    };
    let cases = [
        on(&[
            "--json",
            "edit",
            "--video",
            video,
            "--prompt",
            "x",
            "--dry-run",
        ]),
        on(&["edit", "--video", video, "--prompt", "x", "--dry-run"]),
        on(&[
            "-v", "edit", "--video", video, "--prompt", "x", "--out", out,
        ]),
        on(&[
            "--json",
            "edit",
            "--video",
            url,
            "--prompt",
            "x",
            "--no-wait",
        ]),
        // A transport failure, with its whole cause chain printed.
        elsewhere("http://127.0.0.1:9"),
        // A refused base URL.
        elsewhere("http://example.com"),
    ];
    for (i, output) in cases.iter().enumerate() {
        assert_clean(&format!("{provider} case {i}"), output);
    }
    let submitted: serde_json::Value = serde_json::from_slice(&cases[3].stdout).unwrap();
    submitted["job"].as_str().unwrap().to_owned()
}

/// The journal and its write-ahead log hold no key.
fn assert_journal_clean(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("journal.sqlite3") {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(
                !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
                "the key is in {name}"
            );
        }
    }
}

#[test]
fn the_key_appears_nowhere() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let video = root().join("samples/street.mp4");
    let video = video.to_str().unwrap();
    let jobs: Vec<String> = ["shortapi", "aimlapi", "oxen"]
        .iter()
        .map(|provider| job_commands(&sandbox, &journal, provider, video))
        .collect();

    let batch = dir.path().join("b.jsonl");
    std::fs::write(
        &batch,
        "{\"task\": \"compose\", \"images\": [\"https://media.example/a.png\"], \"prompt\": \"@Image1\"}\n",
    )
    .unwrap();
    let base = format!("{}/oxen", sandbox.base);
    let out_dir = dir.path().to_str().unwrap();
    let batch_run = run(
        &journal,
        &[
            "--provider",
            "oxen",
            "--base-url",
            &base,
            "batch",
            batch.to_str().unwrap(),
            "--out-dir",
            out_dir,
        ],
    );
    assert_eq!(batch_run.status.code(), Some(0));
    assert_clean("batch", &batch_run);
    // Oxen's waits end on its events: quick.
    assert_clean("wait", &run(&journal, &["wait", &jobs[2]]));
    for job in &jobs {
        for args in [vec!["status", job], vec!["cancel", job]] {
            assert_clean(&format!("{args:?}"), &run(&journal, &args));
        }
    }
    for args in [
        vec!["jobs"],
        vec!["--json", "jobs"],
        vec!["resume"],
        vec!["providers"],
        vec!["validate", video],
        vec!["completions", "bash"],
    ] {
        assert_clean(&format!("{args:?}"), &run(&journal, &args));
    }
    assert_journal_clean(dir.path());
    // No result download carried it.
    let stats = sandbox.stats();
    for provider in ["shortapi", "aimlapi", "oxen"] {
        assert!(
            stats[provider]["downloads"].as_u64().unwrap() >= 1,
            "{stats}"
        );
        assert_eq!(stats[provider]["downloads_with_auth"], 0, "{stats}");
    }
}

/// A journal URL's password, in the user part or as a parameter, appears
/// in no help, no verbose line, no error and no JSON.
#[test]
fn a_journal_password_appears_nowhere() {
    // Nothing listens on port 1: every command fails to connect.
    let url = format!("postgres://kling:{CANARY}@127.0.0.1:1/studio?password={CANARY}");
    for args in [
        &["batch", "--help"][..],
        &["-v", "jobs"],
        &["--json", "jobs"],
        &["-v", "resume"],
    ] {
        let output = kling_with_journal(Path::new(&url))
            .args(args)
            .output()
            .unwrap();
        assert_clean(&format!("{args:?}"), &output);
    }
    let output = kling_with_journal(Path::new(&url))
        .args(["-v", "jobs"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("postgres://kling@127.0.0.1:1/studio"),
        "the journal is named, without its password: {stderr}"
    );
    assert_eq!(output.status.code(), Some(2), "{stderr}");
}
