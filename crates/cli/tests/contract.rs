//! The CLI contract at the process level: exit codes as documented, one
//! JSON error document with `--json`, messages that say what failed,
//! provider text escaped, and a batch input that is bounded.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{SandboxProcess, documents, eventually, jobs, kling, kling_with_journal};

/// `kling --provider shortapi --base-url SANDBOX/shortapi ARGS` with a key.
fn on_sandbox(sandbox: &SandboxProcess, journal: &Path, args: &[&str]) -> Command {
    let mut command = kling_with_journal(journal);
    command
        .args(["--provider", "shortapi", "--base-url"])
        .arg(format!("{}/shortapi", sandbox.base))
        .args(args)
        .env("SHORTAPI_KEY", "k");
    command
}

fn edit_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "edit",
        "--video",
        "https://media.example/in.mp4",
        "--prompt",
        "x",
    ];
    args.extend_from_slice(extra);
    args
}

/// Creates an edit on `sandbox` without waiting for it: its job.
fn submitted(sandbox: &SandboxProcess, journal: &Path) -> String {
    let submit = on_sandbox(sandbox, journal, &edit_args(&["--no-wait"]))
        .output()
        .unwrap();
    assert_eq!(submit.status.code(), Some(0), "{}", stderr(&submit));
    String::from_utf8(submit.stdout).unwrap().trim().to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The one error document `--json` printed.
fn error_document(output: &Output) -> Value {
    let docs = documents(&output.stdout);
    assert_eq!(docs.len(), 1, "{docs:?}\n{}", stderr(output));
    assert!(docs[0]["error"].is_object(), "{}", docs[0]);
    docs[0]["error"].clone()
}

#[test]
fn a_key_no_header_can_carry_is_a_usage_error_before_anything_is_recorded() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let output = on_sandbox(&sandbox, &journal, &edit_args(&[]))
        .arg("--json")
        .env("SHORTAPI_KEY", "sk-canary-1234\n")
        .output()
        .unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("SHORTAPI_KEY cannot be used"), "{text}");
    assert!(text.contains("line break"), "{text}");
    assert!(!text.contains("canary"), "{text}");
    let error = error_document(&output);
    assert_eq!(error["kind"], "usage");
    assert!(!error.to_string().contains("canary"));
    // Nothing recorded, nothing sent.
    assert!(!journal.exists() || jobs(&journal).is_empty());
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 0);
}

#[test]
fn a_status_endpoint_that_keeps_failing_is_a_transport_error() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0", "--fault", "500/status"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let job = submitted(&sandbox, &journal);
    // Retried about 15 s, then given up: exit 4, not "refused".
    let status = on_sandbox(&sandbox, &journal, &["--json", "status", &job])
        .output()
        .unwrap();
    let text = stderr(&status);
    assert_eq!(status.status.code(), Some(4), "{text}");
    assert!(text.contains("kept failing"), "{text}");
    assert!(!text.contains("refused"), "{text}");
    let error = error_document(&status);
    assert_eq!(error["kind"], "transport");
    assert_eq!(error["may_exist"], false);
}

#[test]
fn one_html_page_in_place_of_a_status_is_ridden_over() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0", "--fault", "html*1/status"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let out = dir.path().join("out.mp4");
    let run = on_sandbox(
        &sandbox,
        &journal,
        &edit_args(&["--out", out.to_str().unwrap()]),
    )
    .output()
    .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(out.exists());
    assert!(sandbox.stats()["shortapi"]["polls"].as_u64().unwrap_or(2) >= 1);
}

#[test]
fn a_timeout_with_its_job_says_how_to_go_on() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "60"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let out = dir.path().join("out.mp4");
    let run = on_sandbox(
        &sandbox,
        &journal,
        &edit_args(&["--timeout", "1", "--out", out.to_str().unwrap()]),
    )
    .arg("--json")
    .output()
    .unwrap();
    let text = stderr(&run);
    assert_eq!(run.status.code(), Some(4), "{text}");
    assert!(!text.contains("may exist"), "{text}");
    assert!(text.contains("kling wait shortapi:"), "{text}");
    let error = error_document(&run);
    assert_eq!(error["kind"], "timeout");
    assert_eq!(error["may_exist"], false);
    assert!(error["job"].as_str().unwrap().starts_with("shortapi:"));
}

#[test]
fn with_json_every_failure_is_one_error_document() {
    // Refused by the rules: the violations.
    let output = kling()
        .args([
            "--json",
            "animate",
            "--first",
            "https://media.example/a.png",
            "--prompt",
            "x",
            "--duration",
            "7",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let error = error_document(&output);
    assert_eq!(error["kind"], "rejected");
    assert_eq!(error["may_exist"], false);
    assert!(error["violations"][0]["rule"].is_string(), "{error}");
    // Refused by the rules on a hosted provider, before the key is needed.
    let output = kling()
        .args(["--json", "--provider", "shortapi", "edit", "--video"])
        .args(["https://media.example/in.mp4", "--prompt", "x"])
        .args(["--model", "o3", "--mode", "std", "--keep-audio"])
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(error_document(&output)["kind"], "rejected");
    // Usage: no key.
    let output = kling()
        .args(["--json", "--provider", "shortapi"])
        .args(edit_args(&[]))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let error = error_document(&output);
    assert_eq!(error["kind"], "usage");
    assert!(error["message"].as_str().unwrap().contains("SHORTAPI_KEY"));
    // Usage found by clap.
    let output = kling().args(["--json", "edit"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(error_document(&output)["kind"], "usage");
    // The ledger: a journal that cannot be opened.
    let output = kling_with_journal(Path::new("/dev/null/journal.sqlite3"))
        .args(["--json", "jobs"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(error_document(&output)["kind"], "ledger");
}

#[test]
fn an_output_that_cannot_be_written_is_said_so_not_a_connection() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    // A folder that does not exist: refused before anything is sent.
    let missing = dir.path().join("missing/out.mp4");
    let run = on_sandbox(
        &sandbox,
        &journal,
        &edit_args(&["--out", missing.to_str().unwrap()]),
    )
    .output()
    .unwrap();
    let text = stderr(&run);
    assert_eq!(run.status.code(), Some(2), "{text}");
    assert!(text.contains("nothing was sent"), "{text}");
    assert!(!text.contains("connection"), "{text}");
    // A folder that goes away while the job runs: the result cannot be
    // written, the job is done at the provider.
    let folder = dir.path().join("gone");
    std::fs::create_dir(&folder).unwrap();
    let out = folder.join("out.mp4");
    let child = on_sandbox(
        &sandbox,
        &journal,
        &edit_args(&["--out", out.to_str().unwrap()]),
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    eventually("the job to be created", || {
        sandbox.stats()["shortapi"]["creates"].as_u64() == Some(1)
    });
    std::fs::remove_dir(&folder).unwrap();
    let run = child.wait_with_output().unwrap();
    let text = stderr(&run);
    assert_eq!(run.status.code(), Some(2), "{text}");
    assert!(text.contains("could not be written"), "{text}");
    assert!(!text.contains("connection"), "{text}");
    assert!(text.contains("kling wait shortapi:"), "{text}");
}

#[test]
fn a_hostile_job_id_is_printed_escaped() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let hostile = "shortapi:x\n\u{1b}[2Jfake";
    let run = on_sandbox(&sandbox, &journal, &["wait", hostile, "--timeout", "1"])
        .arg("--json")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = stderr(&run);
    assert_ne!(run.status.code(), Some(0), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("x\\n\\u{1b}[2Jfake"), "{text:?}");
    // The JSON document names it, as JSON escapes it.
    let error = error_document(&run);
    assert_eq!(error["job"], hostile);
    // `wait` recorded it: the ledger's listing prints it escaped.
    let list = kling_with_journal(&journal).arg("jobs").output().unwrap();
    let shown = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    assert!(!shown.contains('\u{1b}'), "{shown:?}");
    assert!(shown.contains("shortapi:x\\n\\u{1b}[2Jfake"), "{shown:?}");
    assert_eq!(shown.lines().count(), 2, "{shown:?}");
}

#[test]
fn a_batch_from_an_endless_stream_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    // A device is refused before a byte is read.
    let started = Instant::now();
    let run = kling_with_journal(&journal)
        .args(["--json", "batch", "/dev/zero"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(stderr(&run).contains("not a regular file or a pipe"));
    assert_eq!(error_document(&run)["kind"], "usage");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A pipe without line breaks is read one capped line at most.
    #[cfg(unix)]
    {
        let fifo = dir.path().join("zeros.jsonl");
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let mut feeder = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "head -c 100000000 /dev/zero > '{}'",
                fifo.display()
            ))
            .spawn()
            .unwrap();
        let started = Instant::now();
        let run = kling_with_journal(&journal)
            .args(["--json", "batch"])
            .arg(&fifo)
            .output()
            .unwrap();
        let _ = feeder.kill();
        let _ = feeder.wait();
        let text = stderr(&run);
        assert_eq!(run.status.code(), Some(2), "{text}");
        assert!(
            text.contains("zeros.jsonl:1: the line is longer than 1 MiB"),
            "{text}"
        );
        let error = error_document(&run);
        assert_eq!(error["violations"][0]["line"], 1);
        assert_eq!(error["violations"][0]["rule"], "batch_line_too_long");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // A byte order mark and bytes that are not UTF-8, named by line.
    let file = dir.path().join("odd.jsonl");
    std::fs::write(&file, b"\xef\xbb\xbf{}\n{\"task\": \"edit\xff\"}\n").unwrap();
    let run = kling_with_journal(&journal)
        .args(["batch"])
        .arg(&file)
        .output()
        .unwrap();
    let text = stderr(&run);
    assert_eq!(run.status.code(), Some(2), "{text}");
    assert!(
        text.contains("odd.jsonl:1: the file starts with a UTF-8 byte order mark"),
        "{text}"
    );
    assert!(
        text.contains("odd.jsonl:2: the line is not UTF-8"),
        "{text}"
    );
}

#[test]
fn attempts_and_the_request_timeout_bound_each_request() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0", "--fault", "500/status"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let job = submitted(&sandbox, &journal);
    // Two tries, not the default six: given up in well under the default's
    // 10 s of backoff.
    let started = std::time::Instant::now();
    let status = on_sandbox(&sandbox, &journal, &["--attempts", "2", "status", &job])
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(4), "{}", stderr(&status));
    assert_eq!(
        sandbox.stats()["shortapi"]["faults"],
        2,
        "each try met the fault"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // A status that takes 3 s, against a 1 s bound and one try.
    let slow = SandboxProcess::start(&["--job-seconds", "0", "--fault", "slow=3000/status"]);
    let job = submitted(&slow, &journal);
    let started = std::time::Instant::now();
    let status = on_sandbox(
        &slow,
        &journal,
        &["--request-timeout", "1", "--attempts", "1", "status", &job],
    )
    .output()
    .unwrap();
    let took = started.elapsed();
    assert_eq!(status.status.code(), Some(4), "{}", stderr(&status));
    assert!(
        took < std::time::Duration::from_millis(2900),
        "took {took:?}"
    );
    // Out of range: a usage error naming the flag.
    let zero = on_sandbox(&slow, &journal, &["--attempts", "0", "status", &job])
        .output()
        .unwrap();
    assert_eq!(zero.status.code(), Some(2));
    assert!(stderr(&zero).contains("--attempts"), "{}", stderr(&zero));
}
