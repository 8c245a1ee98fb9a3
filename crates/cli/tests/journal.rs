//! The journal keeps every paid job: a `kling` killed while it waits or
//! downloads is finished by `kling resume` without a second create, and a
//! batch run again skips what is done.

mod support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{SandboxProcess, eventually, jobs, kling_with_journal};

/// The results a batch wrote in `dir`: `STEM-HASH.mp4` files.
fn results_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    found.sort();
    found
}

/// `kling edit` on the sandbox's ShortAPI, in the background.
fn start_edit(sandbox: &SandboxProcess, journal: &Path, out: &Path) -> Child {
    kling_with_journal(journal)
        .args(["--provider", "shortapi", "--base-url"])
        .arg(format!("{}/shortapi", sandbox.base))
        .args([
            "edit",
            "--video",
            "https://media.example/in.mp4",
            "--prompt",
            "x",
            "--out",
        ])
        .arg(out)
        .env("SHORTAPI_KEY", "k")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn resume(journal: &Path) -> std::process::Output {
    kling_with_journal(journal)
        .arg("resume")
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap()
}

#[test]
fn a_job_killed_while_waiting_is_resumed_without_a_second_create() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "3"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let out = dir.path().join("out.mp4");
    let mut edit = start_edit(&sandbox, &journal, &out);
    eventually("the job id in the journal", || {
        jobs(&journal).first().is_some_and(|j| j["job"].is_string())
    });
    edit.kill().unwrap(); // SIGKILL: no cleanup of any kind.
    edit.wait().unwrap();
    assert!(!out.exists());
    let row = &jobs(&journal)[0];
    assert!(
        ["submitted", "queued", "running"].contains(&row["state"].as_str().unwrap()),
        "{row}"
    );

    let resumed = resume(&journal);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(kling_core::probe::probe_file(&out).is_ok(), "{stderr}");
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 1);
    assert_eq!(jobs(&journal)[0]["state"], "downloaded");
    // Nothing is left to resume.
    let again = resume(&journal);
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to resume"));
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 1);
}

#[test]
fn a_job_killed_while_downloading_resumes_from_the_partial_file() {
    // The result comes 1 KiB every 100 ms: about 2 s for the sample.
    let sandbox = SandboxProcess::start(&["--job-seconds", "0", "--fault", "trickle/download"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let out = dir.path().join("out.mp4");
    let part = dir.path().join("out.mp4.part");
    let mut edit = start_edit(&sandbox, &journal, &out);
    eventually("a partial download", || {
        std::fs::metadata(&part).is_ok_and(|m| m.len() >= 2048)
    });
    edit.kill().unwrap();
    edit.wait().unwrap();
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(!out.exists());

    let resumed = resume(&journal);
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let stats = &sandbox.stats()["shortapi"];
    assert_eq!(stats["creates"], 1);
    assert_eq!(
        stats["ranged_downloads"], 1,
        "resumed with a Range from byte {kept}: {stats}"
    );
    assert!(!part.exists());
    assert!(std::fs::metadata(&out).unwrap().len() > kept);
    assert!(kling_core::probe::probe_file(&out).is_ok());
}

#[test]
fn an_intent_without_an_answer_is_reported_never_sent_again() {
    // The create's connection drops: the job may exist.
    let sandbox = SandboxProcess::start(&["--job-seconds", "0", "--fault", "drop/create"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let out = dir.path().join("out.mp4");
    let mut edit = start_edit(&sandbox, &journal, &out);
    assert_eq!(edit.wait().unwrap().code(), Some(4));
    assert_eq!(jobs(&journal)[0]["state"], "may_exist");

    let resumed = resume(&journal);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("intent #1 may exist at shortapi"),
        "{stderr}"
    );
    assert!(stderr.contains("kling jobs attach 1 shortapi:"), "{stderr}");
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 1);
}

#[test]
fn jobs_lists_what_the_journal_holds() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let out = dir.path().join("out.mp4");
    assert_eq!(
        start_edit(&sandbox, &journal, &out).wait().unwrap().code(),
        Some(0)
    );
    let rows = jobs(&journal);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["provider"], "shortapi");
    assert_eq!(row["task"], "edit");
    assert_eq!(row["state"], "downloaded");
    assert_eq!(row["output"], out.to_str().unwrap());
    assert!(row["job"].as_str().unwrap().starts_with("shortapi:"));

    // With --json, stdout is one JSON document, progress or not.
    let run = kling_with_journal(&journal)
        .args(["--json", "--provider", "shortapi", "--base-url"])
        .arg(format!("{}/shortapi", sandbox.base))
        .args([
            "edit",
            "--video",
            "https://media.example/in.mp4",
            "--prompt",
            "x",
            "--out",
        ])
        .arg(dir.path().join("second.mp4"))
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(doc["state"], "downloaded");
    assert_eq!(jobs(&journal).len(), 2);

    let text = kling_with_journal(&journal).arg("jobs").output().unwrap();
    let table = String::from_utf8_lossy(&text.stdout);
    assert!(table.trim_start().starts_with("INTENT"), "{table}");
    assert!(table.contains("downloaded"), "{table}");
}

#[test]
fn a_batch_runs_each_line_once_and_a_second_run_skips_them() {
    let sandbox =
        SandboxProcess::start(&["--job-seconds", "0.5", "--fault", "429*2@shortapi/create"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let file = dir.path().join("night.jsonl");
    let video = support::root().join("samples/street.mp4");
    std::fs::write(
        &file,
        format!(
            "# three edits and an animation\n\
             {{\"task\": \"edit\", \"video\": \"https://media.example/a.mp4\", \"prompt\": \"Make it snow\"}}\n\
             {{\"task\": \"edit\", \"video\": \"https://media.example/b.mp4\", \"prompt\": \"Make it rain\"}}\n\
             \n\
             {{\"task\": \"edit\", \"video\": {video:?}, \"prompt\": \"Make @Video1 foggy\"}}\n\
             {{\"task\": \"animate\", \"images\": [\"https://media.example/bud.png\"], \"prompt\": \"@Image1 opens\", \"duration\": 10}}\n"
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let run = || {
        kling_with_journal(&journal)
            .args(["--provider", "shortapi", "--base-url"])
            .arg(format!("{}/shortapi", sandbox.base))
            .args(["--json", "batch"])
            .arg(&file)
            .args(["--concurrency", "2", "--out-dir"])
            .arg(&out_dir)
            .env("SHORTAPI_KEY", "k")
            .output()
            .unwrap()
    };
    let first = run();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    let summary: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(summary["done"], 4, "{summary}");
    assert!(
        stderr.contains("rate limited; the batch pauses"),
        "{stderr}"
    );
    let results = results_in(&out_dir);
    assert_eq!(results.len(), 4, "{results:?}");
    assert!(
        results
            .iter()
            .any(|r| std::fs::read(r).unwrap() == std::fs::read(&video).unwrap()),
        "the local video was uploaded and echoed"
    );
    let stats = sandbox.stats();
    let creates = stats["shortapi"]["creates"].as_u64().unwrap();
    assert_eq!(creates, 4, "one create per line: {stats}");
    assert_eq!(
        stats["shortapi"]["faults"], 2,
        "two creates were refused with 429 first"
    );

    let second = run();
    assert_eq!(second.status.code(), Some(0));
    let summary: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        (summary["done"].as_u64(), summary["skipped"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(
        sandbox.stats()["shortapi"]["creates"].as_u64().unwrap(),
        creates
    );

    // Lines are known by what they ask for: reordered, with a comment
    // prepended and blank lines, the file pays for nothing again.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<&str> = text.lines().filter(|l| l.starts_with('{')).collect();
    lines.reverse();
    std::fs::write(&file, format!("# reordered\n\n{}\n", lines.join("\n\n"))).unwrap();
    let third = run();
    assert_eq!(third.status.code(), Some(0));
    let summary: Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(summary["skipped"], 4, "{summary}");
    assert_eq!(results_in(&out_dir), results, "the same result names");
    assert_eq!(
        sandbox.stats()["shortapi"]["creates"].as_u64().unwrap(),
        creates
    );
}

#[test]
fn four_batches_at_once_create_each_line_once() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0.3"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let file = dir.path().join("crowd.jsonl");
    let lines: Vec<String> = (0..12)
        .map(|i| {
            format!(
                "{{\"task\": \"edit\", \"video\": \"https://media.example/{}.mp4\", \"prompt\": \"take {i}\"}}",
                i % 5
            )
        })
        // Two identical lines: two jobs, told apart by their occurrence.
        .chain(std::iter::once(
            "{\"task\": \"edit\", \"video\": \"https://media.example/0.mp4\", \"prompt\": \"take 0\"}".to_owned(),
        ))
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out_dir = dir.path().join("out");
    let batches: Vec<_> = (0..4)
        .map(|_| {
            kling_with_journal(&journal)
                .args(["--provider", "shortapi", "--base-url"])
                .arg(format!("{}/shortapi", sandbox.base))
                .args(["--json", "batch"])
                .arg(&file)
                .args(["--concurrency", "3", "--out-dir"])
                .arg(&out_dir)
                .env("SHORTAPI_KEY", "k")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut done = 0;
    for batch in batches {
        let output = batch.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        done += summary["done"].as_u64().unwrap();
    }
    assert_eq!(done, 13, "each process counts its own work");
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 13);
    assert!(sandbox.stats()["shortapi"]["downloads"].as_u64().unwrap() >= 13);
    let results = results_in(&out_dir);
    assert_eq!(results.len(), 13);
    for result in &results {
        assert!(
            kling_core::probe::probe_file(result).is_ok(),
            "{}",
            result.display()
        );
    }
    assert!(jobs(&journal).iter().all(|j| j["state"] == "downloaded"));
}

#[test]
fn two_resumes_after_a_killed_download_write_one_intact_file() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0", "--fault", "trickle/download"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let out = dir.path().join("out.mp4");
    let part = dir.path().join("out.mp4.part");
    let mut edit = start_edit(&sandbox, &journal, &out);
    eventually("a partial download", || {
        std::fs::metadata(&part).is_ok_and(|m| m.len() >= 2048)
    });
    edit.kill().unwrap();
    edit.wait().unwrap();
    let resumes: Vec<_> = (0..2)
        .map(|_| {
            kling_with_journal(&journal)
                .arg("resume")
                .env("SHORTAPI_KEY", "k")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for resume in resumes {
        let output = resume.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 1);
    let sample = kling_core::probe::probe_file(&out);
    assert!(sample.is_ok(), "{sample:?}");
    assert!(!part.exists());
    assert_eq!(jobs(&journal)[0]["state"], "downloaded");
}

#[test]
fn unusable_out_paths_are_refused_before_anything_is_sent() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let taken = dir.path().join("taken.mp4");
    std::fs::write(&taken, b"mine").unwrap();
    for out in [
        dir.path().to_path_buf(),
        dir.path().join("missing/out.mp4"),
        std::path::PathBuf::from("/"),
        std::path::PathBuf::from("/dev/null"),
        taken.clone(),
    ] {
        let mut edit = start_edit(&sandbox, &journal, &out);
        assert_eq!(edit.wait().unwrap().code(), Some(2), "{}", out.display());
    }
    assert_eq!(std::fs::read(&taken).unwrap(), b"mine");
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 0);
    assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
}

#[test]
fn a_bad_batch_line_stops_the_batch_before_anything_is_sent() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(
        &file,
        "{\"task\": \"edit\", \"video\": \"https://media.example/a.mp4\", \"prompt\": \"ok\"}\n\
         {\"task\": \"animate\", \"images\": [\"https://media.example/a.png\"], \"prompt\": \"x\", \"duration\": 7}\n\
         {\"task\": \"edit\", \"prompt\": }\n",
    )
    .unwrap();
    let output = kling_with_journal(&dir.path().join("j.sqlite3"))
        .args(["--provider", "shortapi", "--base-url"])
        .arg(format!("{}/shortapi", sandbox.base))
        .arg("batch")
        .arg(&file)
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.jsonl:2: invalid request"), "{stderr}");
    assert!(stderr.contains("bad.jsonl:3: not a request"), "{stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 0);
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = support::kling()
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(
            script.contains("resume") && script.contains("batch"),
            "{shell}"
        );
    }
    let output = support::kling()
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_recorded_job_is_followed_where_it_was_created() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let submit = kling_with_journal(&journal)
        .args(["--provider", "oxen", "--base-url"])
        .arg(format!("{}/oxen", sandbox.base))
        .args([
            "edit",
            "--video",
            "https://media.example/in.mp4",
            "--prompt",
            "x",
            "--no-wait",
        ])
        .env("OXEN_API_KEY", "k")
        .output()
        .unwrap();
    let job = String::from_utf8(submit.stdout).unwrap().trim().to_owned();
    assert!(job.starts_with("oxen:"), "{job}");
    // No --provider, no --base-url: the journal knows where the job lives.
    let status = kling_with_journal(&journal)
        .args(["--json", "status", &job])
        .env("OXEN_API_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let doc: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["job"], job.as_str());
}

#[test]
fn an_html_result_is_refused_and_fetched_again_by_resume() {
    // Two downloads answer an HTML page: the first, and the one after a
    // fresh status query. The third gets the video.
    let sandbox = SandboxProcess::start(&["--job-seconds", "0", "--fault", "html*2/download"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let out = dir.path().join("out.mp4");
    let mut edit = start_edit(&sandbox, &journal, &out);
    assert_eq!(edit.wait().unwrap().code(), Some(4));
    assert!(!out.exists(), "an HTML page is not a result");
    assert_eq!(jobs(&journal)[0]["state"], "succeeded");

    let resumed = resume(&journal);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(kling_core::probe::probe_file(&out).is_ok());
    assert_eq!(jobs(&journal)[0]["state"], "downloaded");
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 1);
}

#[test]
fn a_stalled_result_ends_at_the_timeout_with_the_partial_file_kept() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0", "--fault", "stall/download"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let out = dir.path().join("out.mp4");
    let started = std::time::Instant::now();
    let output = kling_with_journal(&journal)
        .args(["--provider", "shortapi", "--base-url"])
        .arg(format!("{}/shortapi", sandbox.base))
        .args([
            "edit",
            "--video",
            "https://media.example/in.mp4",
            "--prompt",
            "x",
        ])
        .args(["--timeout", "8", "--out"])
        .arg(&out)
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded by --timeout"
    );
    assert!(stderr.contains("timed out"), "{stderr}");
    assert!(!out.exists());
    assert!(dir.path().join("out.mp4.part").exists(), "kept for resume");
    assert_eq!(jobs(&journal)[0]["state"], "succeeded");
}

#[test]
fn failed_lines_are_reported_again_and_created_again_only_with_retry_failed() {
    // The first two jobs fail at the provider.
    let sandbox = SandboxProcess::start(&["--job-seconds", "0", "--fault", "fail*2"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let file = dir.path().join("storm.jsonl");
    let lines: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "{{\"task\": \"edit\", \"video\": \"https://media.example/{i}.mp4\", \"prompt\": \"storm {i}\"}}"
            )
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let run = |extra: &[&str]| {
        let output = kling_with_journal(&journal)
            .args(["--provider", "oxen", "--base-url"])
            .arg(format!("{}/oxen", sandbox.base))
            .args(["--json", "batch"])
            .arg(&file)
            .args(["--concurrency", "1", "--out-dir"])
            .arg(dir.path().join("out"))
            .args(extra)
            .env("OXEN_API_KEY", "k")
            .output()
            .unwrap();
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        (output.status.code(), summary)
    };
    let creates = || sandbox.stats()["oxen"]["creates"].as_u64().unwrap();
    let (code, first) = run(&[]);
    assert_eq!(code, Some(3), "{first}");
    assert_eq!(first["done"], 1, "{first}");
    assert_eq!(first["failed"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(creates(), 3);
    // Again: the failures are reported, not paid for again.
    let (code, second) = run(&[]);
    assert_eq!(code, Some(3), "{second}");
    assert_eq!(second["skipped"], 1, "{second}");
    let failed = second["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{second}");
    assert!(
        failed
            .iter()
            .all(|f| f["reason"].as_str().unwrap().contains("--retry-failed")),
        "{second}"
    );
    assert_eq!(creates(), 3);
    // With --retry-failed: a new attempt of each, once.
    let (code, third) = run(&["--retry-failed"]);
    assert_eq!(code, Some(0), "{third}");
    assert_eq!(
        (third["done"].as_u64(), third["skipped"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(creates(), 5);
}
