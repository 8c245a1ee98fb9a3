//! URL inputs read before anything is sent: `kling validate URL`, a URL
//! that breaks a rule refused before it is paid for, its length pricing
//! the job, an unreachable one a warning unless `--strict`.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use support::SandboxProcess;

/// Puts `bytes` on the sandbox's upload store: its URL, with a query that
/// stands for a signature.
fn hosted(sandbox: &SandboxProcess, bytes: &[u8]) -> String {
    let addr = sandbox.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /uploads HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    )
    .unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let url = serde_json::from_str::<serde_json::Value>(body).unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    format!("{url}?X-Amz-Signature=SECRET-SIGNATURE")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        support::root()
            .join("crates/core/tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// A URL on a port nothing listens on.
fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/clip.mp4?token=SECRET-SIGNATURE")
}

/// `kling [GLOBAL] edit … [FLAGS]` on the sandbox's ShortAPI.
fn edit(
    sandbox: &SandboxProcess,
    video: &str,
    global: &[&str],
    flags: &[&str],
) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    support::kling_with_journal(&dir.path().join("jobs.sqlite3"))
        .current_dir(dir.path())
        .env("SHORTAPI_KEY", "k")
        .args(["--provider", "shortapi", "--base-url"])
        .arg(format!("{}/shortapi", sandbox.base))
        .args(global)
        .args([
            "edit",
            "--prompt",
            "Make it snow on @Video1",
            "--video",
            video,
        ])
        .args(flags)
        .output()
        .unwrap()
}

#[test]
fn validate_reads_urls_as_it_reads_files() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let good = hosted(
        &sandbox,
        &std::fs::read(support::root().join("samples/street.mp4")).unwrap(),
    );
    let long = hosted(&sandbox, &fixture("too_long.mp4"));
    let missing = format!(
        "{}/uploads/none?X-Amz-Signature=SECRET-SIGNATURE",
        sandbox.base
    );
    let output = support::kling()
        .args(["--json", "validate", &good, &long, &missing])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(!stdout.contains("SECRET"), "{stdout}");
    let lines = support::documents(&output.stdout);
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0]["ok"], true, "{stdout}");
    assert_eq!(lines[0]["kind"], "video");
    assert!(lines[0]["duration_s"].as_f64().is_some());
    assert_eq!(lines[0]["path"], good.split('?').next().unwrap());
    assert_eq!(lines[1]["errors"][0]["rule"], "video_duration", "{stdout}");
    assert_eq!(lines[2]["errors"][0]["rule"], "url_unusable", "{stdout}");
    assert!(
        lines[2]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("404"),
        "{stdout}"
    );
}

#[test]
fn a_url_that_breaks_a_rule_is_refused_before_anything_is_sent() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let long = hosted(&sandbox, &fixture("too_long.mp4"));
    let page = format!("{}/_sandbox/stats?sig=SECRET-SIGNATURE", sandbox.base);
    for (url, rule) in [(long, "video_duration"), (page, "url_")] {
        let output = edit(&sandbox, &url, &["--json"], &[]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
        assert!(stdout.contains(rule), "{stdout}");
        assert!(
            !stdout.contains("SECRET") && !stderr.contains("SECRET"),
            "{stdout}{stderr}"
        );
    }
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 0);
}

#[test]
fn a_url_s_length_prices_the_job_and_max_cost_lets_it_through() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let good = hosted(
        &sandbox,
        &std::fs::read(support::root().join("samples/street.mp4")).unwrap(),
    );
    let dry = edit(&sandbox, &good, &["--json"], &["--dry-run"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let shown = support::documents(&dry.stdout);
    assert!(
        shown[0]["estimate_usd"]
            .as_f64()
            .is_some_and(|usd| usd > 0.0),
        "{shown:?}"
    );
    let sent = edit(&sandbox, &good, &[], &["--max-cost", "100"]);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    // Without reading the URL its length is unknown, and so is the cost.
    let blind = edit(
        &sandbox,
        &good,
        &[],
        &["--max-cost", "100", "--no-preflight"],
    );
    assert_eq!(
        blind.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&blind.stderr)
    );
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 1);
}

#[test]
fn an_unreachable_url_is_a_warning_unless_strict() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let url = unreachable_url();
    let dry = edit(&sandbox, &url, &[], &["--dry-run"]);
    let stderr = String::from_utf8_lossy(&dry.stderr);
    assert!(dry.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("could not be reached"),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRET"), "{stderr}");
    let strict = edit(&sandbox, &url, &["--json"], &["--strict", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&strict.stdout);
    assert_eq!(strict.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("url_unchecked"), "{stdout}");
    assert!(!stdout.contains("SECRET"), "{stdout}");
}

#[test]
fn a_batch_line_whose_url_breaks_a_rule_refuses_the_batch_before_anything_is_sent() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let good = hosted(
        &sandbox,
        &std::fs::read(support::root().join("samples/street.mp4")).unwrap(),
    );
    let long = hosted(&sandbox, &fixture("too_long.mp4"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("night.jsonl");
    let line = |url: &str| {
        serde_json::json!({"task": "edit", "video": url, "prompt": "Make it snow on @Video1"})
            .to_string()
    };
    std::fs::write(&file, format!("{}\n{}\n", line(&good), line(&long))).unwrap();
    let output = support::kling_with_journal(&dir.path().join("jobs.sqlite3"))
        .env("SHORTAPI_KEY", "k")
        .args(["--provider", "shortapi", "--base-url"])
        .arg(format!("{}/shortapi", sandbox.base))
        .arg("batch")
        .arg(&file)
        .arg("--out-dir")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("night.jsonl:2"), "{stderr}");
    assert!(
        stderr.contains("video_duration") || stderr.contains("long"),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRET"), "{stderr}");
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 0);
}

/// Serves `bytes` at any path, whole, until `gone` is set; then 404s.
fn switchable(bytes: Vec<u8>) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let gone = std::sync::Arc::new(AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&gone);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0_u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = if flag.load(Ordering::SeqCst) {
                stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
            } else {
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                )
                .and_then(|()| stream.write_all(&bytes))
            };
        }
    });
    (
        format!("http://{addr}/street.mp4?X-Amz-Signature=SECRET-SIGNATURE"),
        gone,
    )
}

#[test]
fn a_batch_run_again_does_not_read_the_urls_of_lines_already_done() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let (url, gone) =
        switchable(std::fs::read(support::root().join("samples/street.mp4")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("night.jsonl");
    let line =
        serde_json::json!({"task": "edit", "video": url, "prompt": "Make it snow on @Video1"});
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let run = || {
        support::kling_with_journal(&dir.path().join("jobs.sqlite3"))
            .env("SHORTAPI_KEY", "k")
            .args(["--provider", "shortapi", "--base-url"])
            .arg(format!("{}/shortapi", sandbox.base))
            .arg("batch")
            .arg(&file)
            .arg("--out-dir")
            .arg(dir.path().join("out"))
            .output()
            .unwrap()
    };
    let first = run();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // The signed URL has expired since: the line is done, so the batch run
    // again neither refuses it nor creates anything.
    gone.store(true, std::sync::atomic::Ordering::SeqCst);
    let again = run();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("url_unusable"), "{stderr}");
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 1);
    // A new line with the expired URL is still refused before it is sent.
    let other =
        serde_json::json!({"task": "edit", "video": url, "prompt": "Make it rain on @Video1"});
    std::fs::write(&file, format!("{line}\n{other}\n")).unwrap();
    let refused = run();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("night.jsonl:2"), "{stderr}");
    assert!(!stderr.contains("night.jsonl:1"), "{stderr}");
    assert_eq!(sandbox.stats()["shortapi"]["creates"], 1);
}
