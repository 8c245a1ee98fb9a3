//! The `run` example survives being killed at any step: run again, it
//! finds its row and finishes it with one create in all.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use kling_sandbox::{Config, Provider, Sandbox};

/// The example's binary, which `cargo test -p kling-ledger` builds (with
/// the crash points of the dev-dependency) beside this test's.
fn example() -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples")
        .join(format!("run{}", std::env::consts::EXE_SUFFIX))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_killed_at_any_step_finishes_on_restart() {
    for point in [
        "recorded",
        "sending",
        "created",
        "submitted",
        "succeeded",
        "downloaded",
    ] {
        let sandbox = Sandbox::start(Config::default().job_duration(Duration::from_millis(200)))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("jobs.sqlite3");
        let out = dir.path().join("snowy.mp4");
        let run = |crash: Option<&str>| {
            let mut command = Command::new(example());
            command
                .arg(&ledger)
                .arg(&out)
                .arg(sandbox.url(Provider::ShortApi));
            if let Some(point) = crash {
                command.env("KLING_LEDGER_CRASH_AT", point);
            }
            command.output().unwrap()
        };
        let crashed = tokio::task::block_in_place(|| run(Some(point)));
        assert_eq!(crashed.status.code(), None, "{point}: the run must die");
        let again = tokio::task::block_in_place(|| run(None));
        let stderr = String::from_utf8_lossy(&again.stderr);
        match point {
            // The row says the create was leaving (or left) and its answer
            // is not recorded: ShortAPI publishes no lookup, so it is never
            // sent again and the restart says what to do.
            "sending" | "created" => {
                assert_ne!(again.status.code(), Some(0), "{point}");
                assert!(stderr.contains("kling jobs attach"), "{point}: {stderr}");
                assert!(!out.exists());
            }
            _ => {
                assert_eq!(again.status.code(), Some(0), "{point}: {stderr}");
                assert!(kling::probe::probe_file(&out).is_ok(), "{point}");
            }
        }
        let creates = sandbox.stats()["shortapi"].creates;
        let expected = u64::from(point != "sending");
        assert_eq!(creates, expected, "{point}: one create at most, ever");
        sandbox.stop().await;
    }
}
