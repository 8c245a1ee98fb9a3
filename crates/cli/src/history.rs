//! `kling jobs` and `kling resume`: what the journal holds, and finishing
//! what it left unfinished.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::Exit;
use crate::jobs::{Output, Track, finish};
use crate::journal::{Entry, Journal, JournalChoice};
use crate::providers::{ProviderChoice, Session};

fn age(created_at: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let seconds = now.saturating_sub(created_at);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

fn entry_json(entry: &Entry) -> serde_json::Value {
    json!({
        "job": entry.job().map(|j| j.to_string()),
        "intent": entry.intent,
        "provider": entry.provider,
        "model": entry.model,
        "task": entry.task,
        "state": entry.stage.as_str(),
        "created_at": entry.created_at,
        "estimate_usd": entry.estimate_usd,
        "output": entry.output,
        "detail": entry.detail,
        "fingerprint": entry.fingerprint,
        "base_url": entry.base_url,
        "batch_line": entry.batch_line,
    })
}

/// `kling jobs`: every recorded job, newest first.
pub(crate) fn list(journal: &JournalChoice, json: bool) -> Exit {
    let journal = match journal.open() {
        Ok(journal) => journal,
        Err(exit) => return exit,
    };
    let entries = match journal.all() {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    if json {
        let rows: Vec<_> = entries.iter().map(entry_json).collect();
        println!("{}", json!({ "journal": journal.path(), "jobs": rows }));
        return Exit::Success;
    }
    if entries.is_empty() {
        eprintln!("no jobs in {}", journal.path().display());
        return Exit::Success;
    }
    println!(
        "{:<48} {:<8} {:<8} {:<10} {:>5} {:>8}  OUTPUT",
        "JOB", "PROVIDER", "TASK", "STATE", "AGE", "COST"
    );
    for entry in &entries {
        let cost = entry
            .estimate_usd
            .map_or_else(|| "unknown".to_owned(), |usd| format!("${usd:.2}"));
        let output = match (&entry.output, entry.stage.id_unknown()) {
            (_, true) => "may exist: check with the provider (kling resume)".to_owned(),
            (Some(path), false) => path.display().to_string(),
            (None, false) => String::new(),
        };
        println!(
            "{:<48} {:<8} {:<8} {:<10} {:>5} {:>8}  {output}",
            entry.name(),
            entry.provider,
            entry.task,
            entry.stage.as_str(),
            age(entry.created_at),
            cost
        );
    }
    eprintln!("journal: {}", journal.path().display());
    Exit::Success
}

/// `kling resume`: waits for and downloads every recorded job whose result
/// is not on disk; reports the intents that may have reached a provider
/// without an answer, and never sends them again.
pub(crate) fn resume(journal: &JournalChoice, timeout: Duration, json: bool) -> Exit {
    let journal = match journal.open() {
        Ok(journal) => journal,
        Err(exit) => return exit,
    };
    let entries = match journal.unfinished() {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    if entries.is_empty() {
        eprintln!("nothing to resume in {}", journal.path().display());
        if json {
            println!("{}", json!({ "resumed": [], "may_exist": [] }));
        }
        return Exit::Success;
    }
    crate::providers::block_on(resume_all(&journal, entries, timeout, json))
}

async fn resume_all(journal: &Journal, entries: Vec<Entry>, timeout: Duration, json: bool) -> Exit {
    let mut sessions: HashMap<(String, Option<String>), Session> = HashMap::new();
    let mut worst = Exit::Success;
    let mut resumed = Vec::new();
    let mut may_exist = Vec::new();
    for entry in entries {
        if entry.stage.id_unknown() {
            eprintln!(
                "may exist, check with the provider: intent #{} on {} ({}, {}), recorded {} ago, \
                 request fingerprint {}{}; it is not sent again",
                entry.intent,
                entry.provider,
                entry.model,
                entry.task,
                age(entry.created_at),
                entry.fingerprint,
                entry
                    .detail
                    .as_deref()
                    .map(|d| format!(" (last error: {d})"))
                    .unwrap_or_default()
            );
            may_exist.push(entry_json(&entry));
            worst = Exit::Transport;
            continue;
        }
        let Some(job) = entry.job() else { continue };
        let key = (entry.provider.clone(), entry.base_url.clone());
        if !sessions.contains_key(&key) {
            let Some(choice) = ProviderChoice::hosted(&entry.provider, entry.base_url.clone())
            else {
                eprintln!(
                    "error: {job}: this build does not know the provider {}",
                    entry.provider
                );
                worst = Exit::Usage;
                continue;
            };
            match Session::open(&choice, false).await {
                Ok(session) => {
                    sessions.insert(key.clone(), session);
                }
                Err(exit) => {
                    worst = exit;
                    continue;
                }
            }
        }
        let Some(session) = sessions.get(&key) else {
            continue;
        };
        let out = entry
            .output
            .clone()
            .unwrap_or_else(|| crate::jobs::default_output(&job));
        eprintln!("resuming {job}");
        let track = Track {
            journal,
            intent: entry.intent,
        };
        let output = if json { Output::Quiet } else { Output::Text };
        let exit = finish(&session.client, &job, &out, timeout, output, Some(track)).await;
        resumed.push(json!({ "job": job.to_string(), "output": out, "exit": exit.code() }));
        if exit != Exit::Success && worst == Exit::Success {
            worst = exit;
        }
    }
    for (_, session) in sessions {
        session.close().await;
    }
    if json {
        println!("{}", json!({ "resumed": resumed, "may_exist": may_exist }));
    }
    worst
}
