//! `cargo xtask faults`: jobs through `kling batch` against `kling sandbox`
//! injecting one fault kind at a time, then all of them, on each provider.
//!
//! Every job must end with its result file, or with an error that names
//! what happened (a failed job, a create that may have reached the
//! provider). `kling resume` then works what the batch left unfinished
//! against the same sandbox: a provider with a lookup must leave nothing
//! `may_exist`, and the sandbox must count exactly one create per intent
//! the journal holds as possibly sent. No process may panic or outlive its
//! deadline. It prints a table of outcomes per fault.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kling::Descriptor;
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
    /// Which providers it applies to.
    providers: fn(&Descriptor) -> bool,
}

/// Every provider.
fn all(_: &Descriptor) -> bool {
    true
}

/// The providers that push news of their jobs (an event stream).
fn pushing(provider: &Descriptor) -> bool {
    provider.capabilities.push
}

/// How long a `kling batch` or `kling resume` may run: its own 120 s per
/// job, and a margin.
const DEADLINE: Duration = Duration::from_secs(180);

const FAULTS: &[Fault] = &[
    Fault {
        name: "429 + Retry-After",
        specs: &["429:0.3"],
        fails_with: None,
        may_exist: false,
        providers: all,
    },
    Fault {
        name: "5xx on status",
        specs: &["500:0.2/status", "503:0.2/status"],
        fails_with: None,
        may_exist: false,
        providers: all,
    },
    Fault {
        name: "drop on create",
        specs: &["drop:0.2/create"],
        fails_with: None,
        may_exist: true,
        providers: all,
    },
    Fault {
        name: "drop on status",
        specs: &["drop:0.3/status"],
        fails_with: None,
        may_exist: false,
        providers: all,
    },
    Fault {
        name: "slow answers",
        specs: &["slow=300:0.3"],
        fails_with: None,
        may_exist: false,
        providers: all,
    },
    Fault {
        name: "failed jobs",
        specs: &["fail:0.3"],
        fails_with: Some("the sandbox was told to fail this job"),
        may_exist: false,
        providers: all,
    },
    Fault {
        name: "expired result URLs",
        specs: &["expire:0.5"],
        fails_with: None,
        may_exist: false,
        providers: all,
    },
    Fault {
        name: "SSE stream refused",
        specs: &["drop:0.7/events"],
        fails_with: None,
        may_exist: false,
        providers: pushing,
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
        providers: all,
    },
];

/// What one batch under one fault, and the resume after it, came to.
struct Outcome {
    done: u64,
    failed: u64,
    /// Rows `may_exist` in the journal after the batch…
    may_exist: u64,
    /// … and after `kling resume`.
    after_resume: u64,
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

/// The journal's rows, as `kling --json jobs` lists them.
fn journal_rows(journal: &Path) -> Result<Vec<Value>, String> {
    let output = Command::new(kling_binary())
        .args(["--json", "jobs", "--journal"])
        .arg(journal)
        .output()
        .map_err(|e| e.to_string())?;
    let document: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    match document["jobs"].as_array() {
        Some(rows) => Ok(rows.clone()),
        None => Err(format!(
            "kling jobs listed no rows: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

fn in_state(rows: &[Value], state: &str) -> u64 {
    rows.iter().filter(|row| row["state"] == state).count() as u64
}

/// Journal rows that may have reached the provider: all but those refused
/// before anything was created (a 429 on create).
fn possible_creates(rows: &[Value]) -> u64 {
    rows.iter().filter(|row| row["state"] != "not_sent").count() as u64
}

/// `kling --json --journal JOURNAL` with the provider's key.
fn kling(journal: &Path, provider: &Descriptor) -> Command {
    let mut command = Command::new(kling_binary());
    command
        .arg("--json")
        .arg("--journal")
        .arg(journal)
        .env(provider.key_variable, "faults");
    command
}

/// A `kling` process that ended, or was ended at its deadline.
struct Run {
    output: Output,
    hung: bool,
    wall: Duration,
}

impl Run {
    /// Runs `command`, killing it past `DEADLINE`.
    fn start(command: &mut Command) -> Result<Run, String> {
        let start = Instant::now();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
        let mut hung = false;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                hung = true;
                break child.wait().map_err(|e| e.to_string())?;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let wall = start.elapsed();
        let output = Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        Ok(Run { output, hung, wall })
    }

    /// What went wrong with the run, named `what`.
    fn problems(&self, what: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.hung {
            problems.push(format!(
                "{what} still running after {}s",
                DEADLINE.as_secs()
            ));
        }
        if String::from_utf8_lossy(&self.output.stderr).contains("panicked") {
            problems.push(format!("a panic in {what}"));
        }
        problems
    }
}

/// Reads a child's pipe to its end on a thread of its own, so a process
/// that writes a lot never blocks on a full pipe.
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

fn run_one(
    dir: &Path,
    provider: &Descriptor,
    fault: &Fault,
    jobs: u32,
    seed: u32,
) -> Result<Outcome, String> {
    let mut args = vec!["--seed".to_owned(), seed.to_string()];
    for spec in fault.specs {
        args.extend(["--fault".to_owned(), (*spec).to_owned()]);
    }
    let (mut sandbox, base) = start_sandbox(&args)?;
    let tag = format!("{}-{seed}", provider.name());
    let file = dir.join(format!("{tag}.jsonl"));
    let journal = dir.join(format!("{tag}.sqlite3"));
    write_edits(&file, jobs)?;
    let batch = Run::start(
        kling(&journal, provider)
            .args(["--provider", provider.name(), "--base-url"])
            .arg(format!("{base}/{}", provider.name()))
            .arg("batch")
            .arg(&file)
            // The lines' URLs name no real host: the ledger is tested.
            .arg("--no-preflight")
            .args(["--concurrency", "100", "--timeout", "120", "--out-dir"])
            .arg(dir.join(&tag)),
    )?;
    let before = journal_rows(&journal);
    let resume = Run::start(kling(&journal, provider).args([
        "resume",
        "--concurrency",
        "100",
        "--timeout",
        "120",
    ]))?;
    let after = journal_rows(&journal);
    let stats: Value = http_get(&base, "/_sandbox/stats")
        .ok()
        .and_then(|body| serde_json::from_str(&body).ok())
        .unwrap_or_default();
    let _ = sandbox.kill();
    let _ = sandbox.wait();

    let mut problems = batch.problems("batch");
    problems.extend(resume.problems("resume"));
    // 3: a job found again failed; 4: something may still exist.
    if !resume.hung && !matches!(resume.output.status.code(), Some(0 | 3 | 4)) {
        problems.push(format!("resume ended with {}", resume.output.status));
    }
    let summary: Value = serde_json::from_slice(&batch.output.stdout).unwrap_or_default();
    problems.extend(unexplained(&summary, fault));
    let mut rows = |listed: Result<Vec<Value>, String>| {
        listed.unwrap_or_else(|e| {
            problems.push(e);
            Vec::new()
        })
    };
    let (before, after) = (rows(before), rows(after));
    let may_exist = in_state(&before, "may_exist");
    let reported = count(&summary, "may_exist");
    if reported != may_exist {
        problems.push(format!(
            "the batch reported {reported} may exist, its journal {may_exist}"
        ));
    }
    let (done, failed, unfinished) = (
        count(&summary, "done"),
        count(&summary, "failed"),
        count(&summary, "unfinished"),
    );
    if done + failed + reported + unfinished != u64::from(jobs) {
        problems.push(format!("not every job is accounted for: {summary}"));
    }
    let intents = possible_creates(&after);
    let creates = stats[provider.name()]["creates"].as_u64().unwrap_or(0);
    if creates != intents {
        problems.push(format!("{creates} creates for {intents} intents"));
    }
    let after_resume = in_state(&after, "may_exist");
    if provider.capabilities.lookup && after_resume > 0 {
        problems.push(format!("{after_resume} may exist after resume"));
    }
    Ok(Outcome {
        done,
        failed,
        may_exist,
        after_resume,
        unfinished,
        creates,
        intents,
        wall: batch.wall,
        problems,
    })
}

/// Runs the suite: `jobs` per fault and provider; `only` keeps the faults
/// whose name contains it.
pub(crate) fn run(jobs: u32, only: Option<&str>) -> Result<bool, String> {
    crate::bench::build_kling()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    println!(
        "| provider | fault | done | failed | may exist | after resume | unfinished | creates | intents | wall | problems |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut clean = true;
    let mut seed = 0;
    for fault in FAULTS
        .iter()
        .filter(|f| only.is_none_or(|o| f.name.contains(o)))
    {
        for provider in kling::PROVIDERS.iter().filter(|p| (fault.providers)(p)) {
            seed += 1;
            let outcome = run_one(dir.path(), provider, fault, jobs, seed)?;
            clean &= outcome.problems.is_empty();
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s | {} |",
                provider.name(),
                fault.name,
                outcome.done,
                outcome.failed,
                outcome.may_exist,
                outcome.after_resume,
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
