//! `--callback-listen`: a ShortAPI job on a running sandbox ends when the
//! sandbox calls back, not at the first poll, and the journal records the
//! call.

mod support;

use std::time::{Duration, Instant};

use support::{SandboxProcess, kling_with_journal};

#[test]
fn a_one_second_job_ends_at_its_callback_with_one_status_query() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "1"]);
    let base = format!("{}/shortapi", sandbox.base);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let out = dir.path().join("out.mp4");
    let started = Instant::now();
    let run = kling_with_journal(&journal)
        .args(["--provider", "shortapi", "--base-url", &base])
        .args(["--callback-listen", "127.0.0.1:0", "-vv"])
        .args(["edit", "--video", "https://media.example/in.mp4"])
        .args(["--prompt", "Make it snow on @Video1", "--out"])
        .arg(&out)
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(out.exists());
    // The sandbox counts its call once our answer reaches it.
    support::eventually("the sandbox counted its call", || {
        sandbox.stats()["shortapi"]["callbacks"] == 1
    });
    let stats = &sandbox.stats()["shortapi"];
    println!("a 1 s job with --callback-listen: {took:?}, {stats}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(stats["callbacks"], 1, "{stats}");
    assert!(stats["status_queries"].as_u64().unwrap() <= 1, "{stats}");
    assert!(stderr.contains("listening for callbacks"), "{stderr}");
    assert!(stderr.contains("callback received"), "{stderr}");
    // The token is the call's only credential: never in the log.
    assert!(!stderr.contains("token="), "{stderr}");

    let jobs = support::jobs(&journal);
    assert_eq!(jobs.len(), 1);
    let called = jobs[0]["callback_at"]
        .as_i64()
        .expect("callback_at recorded");
    let created = jobs[0]["created_at"].as_i64().unwrap();
    assert!((created..=created + 5).contains(&called), "{}", jobs[0]);
    // The journal and its write-ahead log, whatever was checkpointed.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("journal.sqlite3") {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains("token="),
                "the callback URL is not kept in {}",
                path.display()
            );
        }
    }
}

#[test]
fn a_listen_address_in_use_means_polling_not_failure() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let run = kling_with_journal(&dir.path().join("journal.sqlite3"))
        .args(["--provider", "shortapi", "--base-url"])
        .arg(format!("{}/shortapi", sandbox.base))
        .args(["--callback-listen", &address])
        .args([
            "edit",
            "--video",
            "https://media.example/in.mp4",
            "--prompt",
            "x",
        ])
        .arg("--out")
        .arg(dir.path().join("out.mp4"))
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("is in use"), "{stderr}");
    assert_eq!(sandbox.stats()["shortapi"]["callbacks"], 0, "polled");
}

#[test]
fn a_dry_run_shows_the_callback_url_without_a_token() {
    let sandbox = SandboxProcess::start(&[]);
    let base = format!("{}/shortapi", sandbox.base);
    let dir = tempfile::tempdir().unwrap();
    let run = kling_with_journal(&dir.path().join("j.sqlite3"))
        .args(["--provider", "shortapi", "--base-url", &base, "--json"])
        .args(["--callback-listen", "127.0.0.1:0"])
        .args(["--callback-url", "https://hooks.example.com/kling"])
        .args(["edit", "--video", "https://media.example/in.mp4"])
        .args(["--prompt", "x", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        shown["body"]["callback_url"], "https://hooks.example.com/kling/shortapi?token=TOKEN",
        "{shown}"
    );
}

#[test]
fn callback_flags_that_cannot_work_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, said) in [
        (
            &["--callback-url", "https://hooks.example.com"][..],
            "needs --callback-listen",
        ),
        (&["--callback-listen", "0.0.0.0:0"][..], "--callback-url"),
        (
            &[
                "--callback-listen",
                "127.0.0.1:0",
                "--callback-url",
                "hooks.example.com",
            ][..],
            "http or https",
        ),
        // The provider is not on this machine: it can never call 127.0.0.1.
        (
            &[
                "--provider",
                "shortapi",
                "--base-url",
                "https://api.example.com/shortapi",
                "--callback-listen",
                "127.0.0.1:0",
            ][..],
            "cannot call",
        ),
    ] {
        let run = kling_with_journal(&dir.path().join("j.sqlite3"))
            .args(flags)
            .args(["edit", "--video", "https://media.example/in.mp4"])
            .args(["--prompt", "x", "--dry-run"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(said), "{flags:?}: {stderr}");
    }
}
