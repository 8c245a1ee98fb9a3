//! `kling jobs` (list, summary, attach, forget) and `kling resume`: what
//! the ledger holds, and finishing what it left unfinished.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kling::Usd;
use kling_ledger::{Filter, Ledger, Record, RunOptions, State};
use serde_json::json;

use crate::Exit;
use crate::args::JobsQuery;
use crate::error::Failure;
use crate::ledger::LedgerChoice;
use crate::output::Output;
use crate::providers::{CallbackChoice, ProviderChoice, Session};
use crate::text::escaped;
use crate::view::View;

fn age(created_at: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let seconds = now.saturating_sub(created_at).max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// Millionths as an exact decimal number for JSON.
fn micros_json(micros: Option<u64>) -> serde_json::Value {
    micros.map_or(serde_json::Value::Null, |m| {
        let text = format!("{}.{:06}", m / 1_000_000, m % 1_000_000);
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    })
}

/// What to do about a row, when something is to be done.
fn next_step(row: &Record) -> Option<String> {
    match row.state {
        State::MayExist => Some(format!(
            "may exist at {}: `kling resume` looks for it where the provider allows it; else \
             find it in the provider's dashboard and run `kling jobs attach {} {}:ID`, or \
             `kling jobs forget {}` if there is none",
            row.provider, row.intent, row.provider, row.intent
        )),
        State::NotSent if row.resend => Some("not sent yet: `kling resume` sends it".to_owned()),
        state if state.has_job() => Some("`kling resume` finishes it".to_owned()),
        State::Intent | State::Sending => {
            Some("being sent, or interrupted: `kling resume`".to_owned())
        }
        _ => None,
    }
}

pub(crate) fn row_json(row: &Record) -> serde_json::Value {
    json!({
        "intent": row.intent,
        "job": row.job().map(|j| j.to_string()),
        "provider": row.provider,
        "model": row.model,
        "task": row.task,
        "state": row.state,
        "estimate_usd": micros_json(row.estimate.map(Usd::micros)),
        "charged_usd": micros_json(row.charged_usd.map(Usd::micros)),
        "charged_credits": micros_json(row.charged_credits_micros),
        "output": row.output,
        "host": row.host,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "callback_at": row.callback_at.map(|ms| ms / 1000),
        "detail": row.detail,
        "base_url": row.base_url,
        "batch": row.batch,
        "batch_line": row.batch_line,
        "attempt": row.attempt,
        "uploads": row
            .uploads()
            .into_iter()
            .map(|(field, url)| json!({ "field": field, "url": url }))
            .collect::<Vec<_>>(),
        "next": next_step(row),
    })
}

/// `kling jobs`, its summary, attach and forget.
pub(crate) fn jobs(
    query: &JobsQuery,
    choice: &LedgerChoice,
    output: Output,
) -> Result<(), Failure> {
    crate::providers::block_on(async move {
        let ledger = choice.open().await?;
        match query {
            JobsQuery::Attach { intent, job } => {
                change(&ledger.attach(*intent, job).await?, output);
            }
            JobsQuery::Forget { intent } => change(&ledger.forget(*intent).await?, output),
            JobsQuery::List {
                summary: totals,
                since,
                until,
            } => {
                let filter = Filter::all().created(*since, *until);
                let rows = ledger.jobs(&filter).await?;
                if *totals {
                    summary(&ledger, &rows, output);
                } else {
                    list(&ledger, &rows, output);
                }
            }
        }
        Ok(())
    })
}

fn change(row: &Record, output: Output) {
    output.print(
        || json!({ "job": row_json(row) }),
        || {
            format!(
                "intent #{}: {} {}",
                row.intent,
                row.state,
                escaped(&row.name())
            )
        },
    );
}

fn list(ledger: &Ledger, rows: &[Record], output: Output) {
    if output.is_json() {
        let rows: Vec<_> = rows.iter().rev().map(row_json).collect();
        println!("{}", json!({ "journal": ledger.location(), "jobs": rows }));
        return;
    }
    if rows.is_empty() {
        eprintln!("no jobs in {}", ledger.location());
        return;
    }
    println!(
        "{:>6} {:<44} {:<8} {:<8} {:<10} {:>5} {:>9} {:>9}  OUTPUT",
        "INTENT", "JOB", "PROVIDER", "TASK", "STATE", "AGE", "ESTIMATE", "CHARGED"
    );
    let money = |usd: Option<Usd>| usd.map_or_else(|| "-".to_owned(), |u| u.to_string());
    for row in rows.iter().rev() {
        let charged = match (row.charged_usd, row.charged_credits_micros) {
            (Some(usd), _) => usd.to_string(),
            (None, Some(credits)) => format!("{}cr", micros_json(Some(credits))),
            (None, None) => "-".to_owned(),
        };
        let output = match next_step(row) {
            Some(step) if row.state.may_exist() => step,
            _ => row
                .output
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        };
        println!(
            "{:>6} {:<44} {:<8} {:<8} {:<10} {:>5} {:>9} {:>9}  {}",
            row.intent,
            escaped(&row.job().map_or_else(|| "-".into(), |j| j.to_string())),
            escaped(&row.provider),
            row.task,
            row.state.as_str(),
            age(row.created_at),
            money(row.estimate),
            charged,
            escaped(&output)
        );
    }
    eprintln!("ledger: {}", ledger.location());
}

/// Totals by provider and model.
fn summary(ledger: &Ledger, rows: &[Record], output: Output) {
    #[derive(Default)]
    struct Total {
        jobs: u64,
        estimate: u64,
        charged_usd: u64,
        charged_credits: u64,
        uncharged: u64,
    }
    let mut totals: BTreeMap<(String, String), Total> = BTreeMap::new();
    for row in rows {
        let total = totals
            .entry((row.provider.clone(), row.model.clone()))
            .or_default();
        total.jobs += 1;
        total.estimate = total
            .estimate
            .saturating_add(row.estimate.map_or(0, Usd::micros));
        total.charged_usd = total
            .charged_usd
            .saturating_add(row.charged_usd.map_or(0, Usd::micros));
        total.charged_credits = total
            .charged_credits
            .saturating_add(row.charged_credits_micros.unwrap_or(0));
        if row.charged_usd.is_none() && row.charged_credits_micros.is_none() && row.job_id.is_some()
        {
            total.uncharged += 1;
        }
    }
    if output.is_json() {
        let rows: Vec<_> = totals
            .iter()
            .map(|((provider, model), t)| {
                json!({
                    "provider": provider,
                    "model": model,
                    "jobs": t.jobs,
                    "estimate_usd": micros_json(Some(t.estimate)),
                    "charged_usd": micros_json(Some(t.charged_usd)),
                    "charged_credits": micros_json(Some(t.charged_credits)),
                    "jobs_without_charge": t.uncharged,
                })
            })
            .collect();
        println!(
            "{}",
            json!({ "journal": ledger.location(), "summary": rows })
        );
        return;
    }
    println!(
        "{:<9} {:<44} {:>5} {:>10} {:>10} {:>10}",
        "PROVIDER", "MODEL", "JOBS", "ESTIMATE", "CHARGED", "CREDITS"
    );
    for ((provider, model), t) in &totals {
        println!(
            "{:<9} {:<44} {:>5} {:>10} {:>10} {:>10}",
            escaped(provider),
            escaped(model),
            t.jobs,
            Usd::from_micros(t.estimate).to_string(),
            Usd::from_micros(t.charged_usd).to_string(),
            micros_json(Some(t.charged_credits)).to_string(),
        );
    }
}

/// `kling resume`: works every unfinished row of the ledger, a few at a
/// time: sends what never left, looks up what may exist, waits for and
/// downloads what has a job. Opens only the providers that have such rows.
///
/// With `--json`, one summary document accounts for every row, its exit
/// code and its error included; a failure before any row is worked is the
/// error document.
pub(crate) fn resume(
    choice: &LedgerChoice,
    callbacks: &CallbackChoice,
    timeout: Duration,
    concurrency: usize,
    output: Output,
) -> Result<(), Failure> {
    let json = output.is_json();
    crate::providers::block_on(async move {
        let ledger = choice.open().await?;
        let rows = ledger.jobs(&Filter::unfinished()).await?;
        if rows.is_empty() {
            eprintln!("nothing to resume in {}", ledger.location());
            if json {
                println!("{}", json!({ "resumed": [], "may_exist": [] }));
            }
            return Ok(());
        }
        let mut targets: BTreeMap<(String, Option<String>), usize> = BTreeMap::new();
        for row in &rows {
            *targets
                .entry((row.provider.clone(), row.base_url.clone()))
                .or_default() += 1;
        }
        let mut worst = Exit::Success;
        let mut resumed = Vec::new();
        let mut may_exist = Vec::new();
        let view = Arc::new(View::labelled("resume".to_owned()));
        let options = RunOptions::default()
            .timeout(timeout)
            .observer(view.observer());
        for ((provider, base_url), count) in targets {
            let Some(choice) = ProviderChoice::hosted(&provider, base_url.clone()) else {
                eprintln!(
                    "error: {count} jobs are on {}, which this build does not know",
                    escaped(&provider)
                );
                worst = Exit::Usage;
                continue;
            };
            // Jobs sent now are created with callbacks; those created
            // earlier are polled, since their calls went elsewhere.
            let opened = match Session::open(&choice, false).await {
                Ok(mut session) => callbacks
                    .listen(session.client.clone())
                    .await
                    .map(|client| {
                        session.client = client;
                        session
                    }),
                Err(failure) => Err(failure),
            };
            let session = match opened {
                Ok(session) => session,
                Err(failure) => {
                    // Said here, on stderr: the summary document is the
                    // one document on stdout.
                    worst = failure.report(Output::Text);
                    continue;
                }
            };
            eprintln!("resuming {count} jobs on {}", escaped(&provider));
            let results = ledger.resume(&session.client, concurrency, &options).await;
            session.close().await;
            let results = match results {
                Ok(results) => results,
                Err(e) => {
                    worst = Failure::from(&e).report(Output::Text);
                    continue;
                }
            };
            for (row, result) in results {
                let exit = match &result {
                    Ok(done) => {
                        Output::done((!json).then_some(Output::Text), done);
                        Exit::Success
                    }
                    Err(e) => {
                        eprintln!("{}: {}", escaped(&row.name()), escaped(&e.to_string()));
                        if e.may_exist() {
                            may_exist.push(row_json(&row));
                        }
                        Failure::from(e).exit
                    }
                };
                let job = match &result {
                    Ok(done) => done.record.job(),
                    Err(_) => row.job(),
                };
                resumed.push(json!({
                    "intent": row.intent,
                    "job": job.map(|j| j.to_string()),
                    "output": result.as_ref().ok().map(|d| &d.output),
                    "exit": exit.code(),
                    "error": result.as_ref().err().map(|e| Failure::from(e).document()["error"].clone()),
                }));
                if exit != Exit::Success && worst == Exit::Success {
                    worst = exit;
                }
            }
        }
        view.finish();
        if json {
            println!("{}", json!({ "resumed": resumed, "may_exist": may_exist }));
        }
        match worst {
            Exit::Success => Ok(()),
            exit => Err(Failure::reported(exit)),
        }
    })
}
