//! A `kling edit` that dies between any two steps (the ledger's crash
//! points abort the process as `kill -9` would) is finished by `kling
//! resume`: no paid job lost, none created twice. Where the create may have
//! left without its answer being recorded, the row says so: Oxen's lookup
//! finds the job again; elsewhere it stays `may_exist`, never re-created.

mod support;

use support::{SandboxProcess, jobs as rows, kling_with_journal};

/// The steps a run can die after, in order.
const POINTS: [&str; 6] = [
    "recorded",
    "sending",
    "created",
    "submitted",
    "succeeded",
    "downloaded",
];

fn key(provider: &str) -> &'static str {
    match provider {
        "oxen" => "OXEN_API_KEY",
        _ => "SHORTAPI_KEY",
    }
}

/// What `kling resume` must leave after a crash at `point` on `provider`:
/// the row's state and how many creates the provider saw.
fn expected(provider: &str, point: &str) -> (&'static str, u64) {
    match (provider, point) {
        // The create never left, but the row said it was leaving: nobody
        // can know, so it may exist; Oxen's lookup finds nothing.
        (_, "sending") => ("may_exist", 0),
        // The create left and its answer was lost with the process: only
        // a provider with a lookup can find it again.
        ("oxen", "created") => ("downloaded", 1),
        (_, "created") => ("may_exist", 1),
        _ => ("downloaded", 1),
    }
}

#[test]
fn a_run_killed_at_any_step_is_finished_by_resume_without_a_second_create() {
    for provider in ["shortapi", "oxen"] {
        for point in POINTS {
            let sandbox = SandboxProcess::start(&["--job-seconds", "0.2"]);
            let dir = tempfile::tempdir().unwrap();
            let journal = dir.path().join("journal.sqlite3");
            let out = dir.path().join("out.mp4");
            let crashed = kling_with_journal(&journal)
                .args(["--provider", provider, "--base-url"])
                .arg(format!("{}/{provider}", sandbox.base))
                .args(["edit", "--video", "https://media.example/in.mp4"])
                .args(["--prompt", "snow", "--out"])
                .arg(&out)
                .env(key(provider), "k")
                .env("KLING_LEDGER_CRASH_AT", point)
                .output()
                .unwrap();
            let case = format!("{provider}, killed after {point}");
            assert_eq!(crashed.status.code(), None, "{case}: the run must die");

            let resumed = kling_with_journal(&journal)
                .arg("resume")
                .env(key(provider), "k")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&resumed.stderr);
            let (state, creates) = expected(provider, point);
            let rows = rows(&journal);
            assert_eq!(rows.len(), 1, "{case}: {rows:?}");
            assert_eq!(rows[0]["state"], state, "{case}: {stderr}");
            assert_eq!(
                sandbox.stats()[provider]["creates"],
                creates,
                "{case}: {stderr}"
            );
            if state == "downloaded" {
                assert_eq!(resumed.status.code(), Some(0), "{case}: {stderr}");
                let probed = kling_core::probe::probe_file(&out);
                assert!(probed.is_ok(), "{case}: {probed:?}");
            } else {
                assert_eq!(resumed.status.code(), Some(4), "{case}: {stderr}");
                assert!(stderr.contains("kling jobs attach"), "{case}: {stderr}");
                assert!(!out.exists(), "{case}");
                // A second resume still never sends it.
                let again = kling_with_journal(&journal)
                    .arg("resume")
                    .env(key(provider), "k")
                    .output()
                    .unwrap();
                assert_eq!(again.status.code(), Some(4), "{case}");
                assert_eq!(sandbox.stats()[provider]["creates"], creates, "{case}");
            }
        }
    }
}
