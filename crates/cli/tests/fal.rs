//! `kling --provider fal` on a running sandbox, as a fal user runs it: a
//! local file goes up to fal's storage with nothing set up, the end comes
//! from the status stream (or the signed webhook), and the result is the
//! input echoed back.

mod support;

use support::{SandboxProcess, kling_with_journal};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures")
        .join(name)
}

#[test]
fn a_local_file_goes_through_fals_storage_and_the_end_is_pushed() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "1"]);
    let base = format!("{}/fal", sandbox.base);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.sqlite3");
    let out = dir.path().join("out.mp4");
    let input = fixture("moov_at_end.mp4");
    let run = kling_with_journal(&journal)
        .args(["--provider", "fal", "--base-url", &base])
        .args(["--callback-listen", "127.0.0.1:0", "-vv"])
        .args(["edit", "--video"])
        .arg(&input)
        .args(["--prompt", "Make it snow on @Video1", "--out"])
        .arg(&out)
        .env("FAL_KEY", "fal-cli-test-key")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&input).unwrap(),
        "the uploaded input comes back as the result"
    );
    // The stream ended the wait; the webhook may come after the process
    // has gone (fal retries it; the sandbox does not).
    let stats = sandbox.stats();
    let fal = &stats["fal"];
    assert_eq!(stats["uploads"], 1, "{stats}");
    assert_eq!(
        (fal["creates"].as_u64(), fal["rejected"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(fal["subscriptions"].as_u64().unwrap() >= 1, "{fal}");
    // The stream or the webhook ended the wait: at most one status query.
    assert!(fal["status_queries"].as_u64().unwrap() <= 1, "{fal}");
    assert!(fal["callbacks"].as_u64().unwrap() <= 1, "{fal}");
    assert!(
        stderr.contains("estimate: $0.84 (5 s at $0.168/s)"),
        "{stderr}"
    );
    for secret in ["fal-cli-test-key", "token="] {
        assert!(!stderr.contains(secret), "{secret} in {stderr}");
    }
}

#[test]
fn without_the_stream_the_signed_webhook_ends_the_wait() {
    // The status stream answers 503: only the webhook can end the wait
    // before the 30 s safety-net check.
    let sandbox = SandboxProcess::start(&["--job-seconds", "1", "--fault", "503@fal/events"]);
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let run = kling_with_journal(&dir.path().join("journal.sqlite3"))
        .args(["--provider", "fal", "--base-url"])
        .arg(format!("{}/fal", sandbox.base))
        .args(["--callback-listen", "127.0.0.1:0", "-vv"])
        .args(["edit", "--video", "https://media.example/in.mp4"])
        .args(["--prompt", "Snow", "--out"])
        .arg(dir.path().join("out.mp4"))
        .env("FAL_KEY", "fal-cli-test-key")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    assert!(stderr.contains("callback received"), "{stderr}");
    support::eventually("the sandbox counted its webhook", || {
        sandbox.stats()["fal"]["callbacks"] == 1
    });
    let fal = &sandbox.stats()["fal"];
    println!("a 1 s fal job ended by its webhook: {took:?}, {fal}");
    assert_eq!(fal["subscriptions"], 0, "{fal}");
    assert!(!stderr.contains("token="), "{stderr}");
}

#[test]
fn a_dry_run_shows_the_std_endpoint_and_the_webhook_without_its_token() {
    let run = kling_with_journal(&tempfile::tempdir().unwrap().path().join("j.sqlite3"))
        .args(["--provider", "fal", "--callback-listen", "127.0.0.1:0"])
        .args(["--callback-url", "https://hooks.example/kling"])
        .args([
            "--json",
            "edit",
            "--dry-run",
            "--mode",
            "std",
            "--model",
            "o3",
        ])
        .args([
            "--video",
            "https://media.example/in.mp4",
            "--prompt",
            "Rain",
        ])
        .env_remove("FAL_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains(
            "https://queue.fal.run/fal-ai/kling-video/o3/standard/video-to-video/edit?fal_webhook=https%3A%2F%2Fhooks.example%2Fkling%2Ffal%3Ftoken%3DTOKEN"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("\"keep_audio\":false"), "{stdout}");
}
