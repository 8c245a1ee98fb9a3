//! `kling jobs` (rows, charges, summary, attach, forget), and `status` and
//! `cancel` keeping the ledger current.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{SandboxProcess, kling_json, kling_with_journal};

fn edit(
    sandbox: &SandboxProcess,
    journal: &Path,
    provider: &str,
    extra: &[&str],
) -> std::process::Output {
    kling_with_journal(journal)
        .args(["--provider", provider, "--base-url"])
        .arg(format!("{}/{provider}", sandbox.base))
        .args([
            "edit",
            "--video",
            "https://media.example/in.mp4",
            "--prompt",
            "x",
        ])
        .args(extra)
        .env("SHORTAPI_KEY", "k")
        .env("OXEN_API_KEY", "k")
        .output()
        .unwrap()
}

#[test]
fn jobs_show_estimates_and_charges_and_sum_them() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.sqlite3");
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    for name in ["a.mp4", "b.mp4"] {
        let run = edit(&sandbox, &journal, "shortapi", &["--out", &out(name)]);
        assert_eq!(
            run.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    // Oxen publishes no price: its charge is read from its record.
    let refer = |seconds: &str, extra: &[&str]| {
        kling_with_journal(&journal)
            .args(["--provider", "oxen", "--base-url"])
            .arg(format!("{}/oxen", sandbox.base))
            .args([
                "refer",
                "--video",
                "https://media.example/in.mp4",
                "--prompt",
                "fly",
            ])
            .args(["--model", "o3", "--duration", seconds])
            .args(extra)
            .env("OXEN_API_KEY", "k")
            .output()
            .unwrap()
    };
    let run = refer("5", &["--out", &out("c.mp4")]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let rows = kling_json(&journal, &["jobs"]);
    let rows = rows["jobs"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        for field in [
            "intent",
            "job",
            "provider",
            "model",
            "task",
            "state",
            "estimate_usd",
            "charged_usd",
            "charged_credits",
            "output",
            "created_at",
        ] {
            assert!(row.get(field).is_some(), "{field} in {row}");
        }
    }
    let shortapi: Vec<&Value> = rows
        .iter()
        .filter(|r| r["provider"] == "shortapi")
        .collect();
    assert!(
        shortapi.iter().all(|r| r["charged_usd"] == 0.715),
        "{shortapi:?}"
    );
    let oxen = rows.iter().find(|r| r["provider"] == "oxen").unwrap();
    assert_eq!(oxen["charged_usd"], 0.5, "{oxen}");
    assert_eq!(
        oxen["estimate_usd"],
        Value::Null,
        "no published price, no past charge yet"
    );

    let summary = kling_json(&journal, &["jobs", "--summary"]);
    let summary = summary["summary"].as_array().unwrap();
    let line = summary
        .iter()
        .find(|s| s["provider"] == "shortapi")
        .unwrap();
    assert_eq!(
        (line["jobs"].as_u64(), line["charged_usd"].as_f64()),
        (Some(2), Some(1.43))
    );
    // A range that ends before the jobs holds none.
    let none = kling_json(&journal, &["jobs", "--summary", "--until", "1d"]);
    assert_eq!(none["summary"].as_array().unwrap().len(), 0);

    // The next Oxen request on that model is estimated from that charge.
    let dry = refer("10", &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0));
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains("estimate: $1.00 (10 s, from the ledger's 1 past charge"),
        "{text}"
    );
}

#[test]
fn status_and_cancel_keep_the_ledger_current() {
    let sandbox = SandboxProcess::start(&["--job-seconds", "30"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.sqlite3");
    let out = dir.path().join("o.mp4");
    let sent = edit(
        &sandbox,
        &journal,
        "oxen",
        &["--no-wait", "--out", out.to_str().unwrap()],
    );
    assert_eq!(
        sent.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let job = String::from_utf8(sent.stdout).unwrap().trim().to_owned();
    let state = || kling_json(&journal, &["jobs"])["jobs"][0]["state"].clone();
    assert_eq!(state(), "submitted");
    let status = kling_with_journal(&journal)
        .args(["status", &job])
        .env("OXEN_API_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(0));
    assert_ne!(state(), "submitted", "status recorded what it saw");
    let cancel = kling_with_journal(&journal)
        .args(["cancel", &job])
        .env("OXEN_API_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(
        cancel.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&cancel.stderr)
    );
    assert_eq!(state(), "cancelled");
    // Nothing is left to resume.
    let resume = kling_with_journal(&journal).arg("resume").output().unwrap();
    assert_eq!(resume.status.code(), Some(0));
}

#[test]
fn a_may_exist_intent_is_forgotten_or_attached_by_hand() {
    let sandbox =
        SandboxProcess::start(&["--job-seconds", "0", "--fault", "drop*1@shortapi/create"]);
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.sqlite3");
    let lost = edit(
        &sandbox,
        &journal,
        "shortapi",
        &["--out", dir.path().join("a.mp4").to_str().unwrap()],
    );
    assert_eq!(lost.status.code(), Some(4));
    let row = &kling_json(&journal, &["jobs"])["jobs"][0];
    assert_eq!(row["state"], "may_exist");
    assert!(
        row["next"].as_str().unwrap().contains("kling jobs attach"),
        "{row}"
    );

    // Attaching a job of another provider, or to an unknown intent, is refused.
    let wrong = kling_with_journal(&journal)
        .args(["jobs", "attach", "1", "oxen:abc"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    let forgot = kling_json(&journal, &["jobs", "forget", "1"]);
    assert_eq!(forgot["job"]["state"], "not_sent");
    let resume = kling_with_journal(&journal)
        .arg("resume")
        .env("SHORTAPI_KEY", "k")
        .output()
        .unwrap();
    assert_eq!(
        resume.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&resume.stderr)
    );
    assert_eq!(
        sandbox.stats()["shortapi"]["creates"],
        1,
        "never sent again"
    );
}
