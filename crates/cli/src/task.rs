//! `edit`, `refer`, `animate`, `compose`: one request run through the
//! ledger to its result (or, with `--dry-run`, shown and not sent).

use std::sync::Arc;

use kling::{Checked, Client, Usd};
use kling_ledger::{Intent, Ledger, Priced, RunOptions};
use serde_json::json;

use crate::args::TaskRun;
use crate::error::Failure;
use crate::ledger::LedgerChoice;
use crate::output::Output;
use crate::providers::{ProviderChoice, Session};
use crate::view::View;

/// A key that makes each run of a task command its own job.
fn fresh_key() -> String {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("run {at:x} {:016x}", fastrand::u64(..))
}

pub(crate) fn run(
    task: TaskRun,
    choice: &ProviderChoice,
    ledger: &LedgerChoice,
    output: Output,
) -> Result<(), Failure> {
    crate::providers::block_on(async move {
        let mut session = Session::open(choice, task.dry_run).await?;
        // Calls back are taken only by a run that waits for its job.
        let client = session.client.clone();
        session.client = if task.dry_run {
            choice.callbacks.preview(client)?
        } else if !task.no_wait {
            choice.callbacks.listen(client).await?
        } else {
            client
        };
        let result = match session.ledger(ledger).await {
            Ok(ledger) => Box::pin(run_request(&session, &ledger, task, output)).await,
            Err(failure) => Err(failure),
        };
        session.close().await;
        result
    })
}

async fn run_request(
    session: &Session,
    ledger: &Ledger,
    task: TaskRun,
    output: Output,
) -> Result<(), Failure> {
    let client = &session.client;
    // The one validation of this run: every rule, each local file probed
    // once, then each URL input read. Everything after takes the checked
    // request.
    let checked = client.validate(&task.request)?;
    let urls = crate::preflight::checker(task.preflight)?;
    let checked = crate::preflight::check(urls.as_ref(), checked, "").await?;
    let priced = ledger.estimate(client, &checked).await?;
    if task.dry_run {
        return dry_run(client, &checked, &priced, output);
    }
    if !output.is_json() {
        eprintln!("estimate: {priced}");
    }
    let intent = match task.out {
        Some(out) => Intent::new(checked, out),
        None => Intent::named_by_job(checked, "."),
    }
    .key(fresh_key())
    .overwrite(task.overwrite);
    let intent = match task.max_cost {
        Some(max) => intent.max_cost(max),
        None => intent,
    };
    let view = Arc::new(View::default());
    let options = RunOptions::default()
        .timeout(task.timeout)
        .observer(view.observer());
    let result = if task.no_wait {
        ledger.send(client, intent, &options).await.map(|row| {
            let job = row.job().map(|j| j.to_string()).unwrap_or_default();
            output.print(
                || {
                    json!({ "job": job, "intent": row.intent, "state": row.state,
                            "estimate_usd": priced.usd.map(Usd::as_f64) })
                },
                || crate::text::escaped(&job),
            );
        })
    } else {
        ledger
            .run(client, intent, &options)
            .await
            .map(|done| Output::done(Some(output), &done))
    };
    view.finish();
    Ok(result?)
}

/// `--dry-run`: the call that would be sent and its estimate.
fn dry_run(
    client: &Client,
    checked: &Checked,
    priced: &Priced,
    output: Output,
) -> Result<(), Failure> {
    let call = client.prepare(checked)?;
    let provider = client.provider().name();
    output.print(
        || {
            json!({
                "provider": provider,
                "method": call.method,
                "url": call.url,
                "body": call.body,
                "estimate_usd": priced.usd.map(Usd::as_f64),
            })
        },
        || {
            format!(
                "{} {}\n{}\nestimate: {priced}",
                call.method,
                call.url,
                serde_json::to_string_pretty(&call.body).unwrap_or_default()
            )
        },
    );
    if !output.is_json() {
        eprintln!("dry run: nothing was sent");
    }
    Ok(())
}
