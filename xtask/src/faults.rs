//! `cargo xtask faults`: jobs through `kling batch` against `kling sandbox`
//! injecting one fault kind at a time, then all of them, on each provider.
//!
//! Every job must end with its result file, or with an error that names
//! what happened (a failed job, a create that may have reached the
//! provider); the sandbox must count exactly one create per intent the
//! journal holds as possibly sent; no process may panic or outlive its
//! deadline. It prints a table of outcomes per fault.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bench::{http_get, kling_binary, start_sandbox, write_edits};

/// A fault to inject, and what it may leave unfinished.
struct Fault {
    name: &'static str,
    specs: &'static [&'static str],
    /// Jobs may end failed with this in their reason.
    fails_with: Option<&'static str>,
    /// Creates may be lost in flight: "may exist" outcomes are expected.
    may_exist: bool,
    providers: &'static [&'static str],
}

const ALL: &[&str] = &["shortapi", "aimlapi", "oxen"];

const FAULTS: &[Fault] = &[
    Fault {
        name: "429 + Retry-After",
        specs: &["429:0.3"],
        fails_with: None,
        may_exist: false,
        providers: ALL,
    },
    Fault {
        name: "5xx on status",
        specs: &["500:0.2/status", "503:0.2/status"],
        fails_with: None,
        may_exist: false,
        providers: ALL,
    },
    Fault {
        name: "drop on create",
        specs: &["drop:0.2/create"],
        fails_with: None,
        may_exist: true,
        providers: ALL,
    },
    Fault {
        name: "drop on status",
        specs: &["drop:0.3/status"],
        fails_with: None,
        may_exist: false,
        providers: ALL,
    },
    Fault {
        name: "slow answers",
        specs: &["slow=300:0.3"],
        fails_with: None,
        may_exist: false,
        providers: ALL,
    },
    Fault {
        name: "failed jobs",
        specs: &["fail:0.3"],
        fails_with: Some("the sandbox was told to fail this job"),
        may_exist: false,
        providers: ALL,
    },
    Fault {
        name: "expired result URLs",
        specs: &["expire:0.5"],
        fails_with: None,
        may_exist: false,
        providers: ALL,
    },
    Fault {
        name: "SSE stream refused",
        specs: &["drop:0.7/events"],
        fails_with: None,
        may_exist: false,
        providers: &["oxen"],
    },
    Fault {
        name: "mix of all",
        specs: &[
            "429:0.1",
            "503:0.1/status",
            "drop:0.1/create",
            "drop:0.1/status",
            "slow=200:0.1",
            "fail:0.1",
            "expire:0.3",
            "drop:0.3/events",
        ],
        fails_with: Some("the sandbox was told to fail this job"),
        may_exist: true,
        providers: ALL,
    },
];

/// What one batch under one fault came to.
struct Outcome {
    provider: &'static str,
    fault: &'static str,
    done: u64,
    failed: u64,
    may_exist: u64,
    unfinished: u64,
    creates: u64,
    intents: u64,
    wall: Duration,
    problems: Vec<String>,
}

fn count(summary: &Value, key: &str) -> u64 {
    match &summary[key] {
        Value::Array(list) => list.len() as u64,
        other => other.as_u64().unwrap_or(0),
    }
}

/// Each line of the batch summary that is not a result, unless `fault`
/// explains it.
fn unexplained(summary: &Value, fault: &Fault) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, allowed) in [
        ("failed", fault.fails_with),
        ("may_exist", fault.may_exist.then_some("may")),
        ("unfinished", None),
    ] {
        for entry in summary[key].as_array().into_iter().flatten() {
            let reason = entry["reason"].as_str().unwrap_or_default();
            if !allowed.is_some_and(|expected| reason.contains(expected)) {
                problems.push(format!("line {}: {key}: {reason}", entry["line"]));
            }
        }
    }
    problems
}

/// Journal rows that may have reached the provider: all but those refused
/// before anything was created (a 429 on create).
fn possible_creates(journal: &Path) -> u64 {
    let rows: Value = Command::new(kling_binary())
        .args(["--json", "jobs", "--journal"])
        .arg(journal)
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or_default();
    rows["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["state"] != "not_sent")
        .count() as u64
}

fn run_one(
    dir: &Path,
    provider: &'static str,
    fault: &Fault,
    jobs: u32,
    seed: u32,
) -> Result<Outcome, String> {
    let mut args = vec!["--seed".to_owned(), seed.to_string()];
    for spec in fault.specs {
        args.extend(["--fault".to_owned(), (*spec).to_owned()]);
    }
    let (mut sandbox, base) = start_sandbox(&args)?;
    let tag = format!("{provider}-{seed}");
    let file = dir.join(format!("{tag}.jsonl"));
    let journal = dir.join(format!("{tag}.sqlite3"));
    write_edits(&file, jobs)?;
    let key = match provider {
        "shortapi" => "SHORTAPI_KEY",
        "aimlapi" => "AIMLAPI_KEY",
        _ => "OXEN_API_KEY",
    };
    let start = Instant::now();
    let mut batch = Command::new(kling_binary())
        .args([
            "--json",
            "--provider",
            provider,
            "--base-url",
            &format!("{base}/{provider}"),
        ])
        .arg("--journal")
        .arg(&journal)
        .arg("batch")
        .arg(&file)
        .args(["--concurrency", "100", "--timeout", "120", "--out-dir"])
        .arg(dir.join(&tag))
        .env(key, "faults")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    // The deadline: the batch's own 120 s per job, and a margin.
    let deadline = Duration::from_secs(180);
    let mut hung = false;
    while batch.try_wait().map_err(|e| e.to_string())?.is_none() {
        if start.elapsed() > deadline {
            let _ = batch.kill();
            hung = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = batch.wait_with_output().map_err(|e| e.to_string())?;
    let wall = start.elapsed();
    let stats: Value = http_get(&base, "/_sandbox/stats")
        .ok()
        .and_then(|body| serde_json::from_str(&body).ok())
        .unwrap_or_default();
    let _ = sandbox.kill();
    let _ = sandbox.wait();

    let mut problems = Vec::new();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if hung {
        problems.push(format!("still running after {}s", deadline.as_secs()));
    }
    if stderr.contains("panicked") {
        problems.push("a panic".to_owned());
    }
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    problems.extend(unexplained(&summary, fault));
    let intents = possible_creates(&journal);
    let creates = stats[provider]["creates"].as_u64().unwrap_or(0);
    if creates != intents {
        problems.push(format!("{creates} creates for {intents} intents"));
    }
    let outcome = Outcome {
        provider,
        fault: fault.name,
        done: count(&summary, "done"),
        failed: count(&summary, "failed"),
        may_exist: count(&summary, "may_exist"),
        unfinished: count(&summary, "unfinished"),
        creates,
        intents,
        wall,
        problems,
    };
    if outcome.done + outcome.failed + outcome.may_exist + outcome.unfinished != u64::from(jobs) {
        let mut outcome = outcome;
        outcome
            .problems
            .push(format!("not every job is accounted for: {summary}"));
        return Ok(outcome);
    }
    Ok(outcome)
}

/// Runs the suite: `jobs` per fault and provider; `only` keeps the faults
/// whose name contains it.
pub(crate) fn run(jobs: u32, only: Option<&str>) -> Result<bool, String> {
    crate::bench::build_kling()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    println!(
        "| provider | fault | done | failed | may exist | unfinished | creates | intents | wall | problems |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut clean = true;
    let mut seed = 0;
    for fault in FAULTS
        .iter()
        .filter(|f| only.is_none_or(|o| f.name.contains(o)))
    {
        for provider in fault.providers {
            seed += 1;
            let outcome = run_one(dir.path(), provider, fault, jobs, seed)?;
            clean &= outcome.problems.is_empty();
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s | {} |",
                outcome.provider,
                outcome.fault,
                outcome.done,
                outcome.failed,
                outcome.may_exist,
                outcome.unfinished,
                outcome.creates,
                outcome.intents,
                outcome.wall.as_secs_f64(),
                if outcome.problems.is_empty() {
                    "none".to_owned()
                } else {
                    outcome.problems.join("; ")
                }
            );
        }
    }
    Ok(clean)
}
