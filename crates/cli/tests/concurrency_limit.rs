//! A provider that runs only so many jobs at once: its 429 names the
//! concurrency limit, and `kling batch` works fewer lines at a time instead
//! of only pausing, so every line still gets done.

mod support;

use support::{SandboxProcess, kling_with_journal};

#[test]
fn a_concurrency_limit_lowers_the_batchs_concurrency() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "1", "--max-running", "2"]);
    // ShortAPI's jobs end at their callbacks, AI/ML API's at the polls.
    for (provider, key, extra) in [
        ("aimlapi", "AIMLAPI_KEY", &[][..]),
        (
            "shortapi",
            "SHORTAPI_KEY",
            &["--callback-listen", "127.0.0.1:0"][..],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lines.jsonl");
        let lines: Vec<String> = (0..6)
            .map(|i| {
                format!(
                    "{{\"task\": \"edit\", \"video\": \"https://media.example/in.mp4\", \
                     \"prompt\": \"Make it snow on @Video1, take {i}\"}}"
                )
            })
            .collect();
        let lines = lines.join("\n");
        std::fs::write(&file, lines).unwrap();
        let before = sandbox.stats()[provider].clone();
        let run = kling_with_journal(&dir.path().join("journal.sqlite3"))
            .args(["--provider", provider, "--base-url"])
            .arg(format!("{}/{provider}", sandbox.base))
            .args(extra)
            .args(["--json", "batch"])
            .arg(&file)
            .args(["--concurrency", "4", "--out-dir"])
            .arg(dir.path().join("out"))
            .env(key, "k")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(0), "{provider}: {stderr}");
        assert!(
            stderr.contains("limit on jobs at once") && stderr.contains("2 at a time"),
            "{provider}: {stderr}"
        );
        let after = &sandbox.stats()[provider];
        let count = |name: &str| after[name].as_u64().unwrap() - before[name].as_u64().unwrap();
        assert_eq!(count("creates"), 6, "{provider}: {after}");
        // Two refusals took the batch from 4 to 2 at a time; with 2 it
        // stays under the limit.
        assert_eq!(count("over_concurrency"), 2, "{provider}: {after}");
        let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        println!("{provider}: {summary}");
    }
}
