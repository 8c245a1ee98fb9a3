//! `status JOB`, `wait JOB`, `cancel JOB`: a job followed where it was
//! created, its row in the ledger kept current.

use std::sync::Arc;

use kling::{Client, JobHandle, JobState};
use kling_ledger::{Ledger, Record, RunOptions, State};
use serde_json::json;

use crate::args::WaitRun;
use crate::error::Failure;
use crate::ledger::LedgerChoice;
use crate::output::Output;
use crate::providers::{ProviderChoice, Session};
use crate::text::escaped;
use crate::view::View;

/// What to do with the job.
pub(crate) enum Follow {
    Status,
    Wait(WaitRun),
    Cancel,
}

pub(crate) fn run(
    job: JobHandle,
    follow: Follow,
    choice: &ProviderChoice,
    ledger: &LedgerChoice,
    output: Output,
) -> Result<(), Failure> {
    let named = job.clone();
    crate::providers::block_on(async move {
        // A job this ledger recorded is followed where it was created,
        // unless --base-url says otherwise. A lookup never creates a
        // ledger.
        let recorded = match ledger.open_existing().await {
            Some(open) => match open.find_job(&job).await {
                Ok(Some(row)) => Some((open, row)),
                _ => None,
            },
            None => None,
        };
        let choice = match &recorded {
            Some((_, row)) if choice.base_url.is_none() => recorded_choice(&job, row)?,
            _ => choice.for_job(&job)?,
        };
        let session = Session::open(&choice, false).await?;
        let result = Box::pin(follow_job(&session, recorded, ledger, &job, follow, output)).await;
        session.close().await;
        result
    })
    // Whatever failed, it concerns this job.
    .map_err(|failure| failure.with_job(&named))
}

fn recorded_choice(job: &JobHandle, row: &Record) -> Result<ProviderChoice, Failure> {
    ProviderChoice::hosted(&row.provider, row.base_url.clone()).ok_or_else(|| {
        Failure::usage(format!(
            "{job} was recorded on {}, which this build does not know",
            row.provider
        ))
    })
}

async fn follow_job(
    session: &Session,
    recorded: Option<(Ledger, Record)>,
    choice: &LedgerChoice,
    job: &JobHandle,
    follow: Follow,
    output: Output,
) -> Result<(), Failure> {
    let client = &session.client;
    let observe = |state: State, detail: Option<String>| {
        let recorded = &recorded;
        async move {
            if let Some((ledger, _)) = recorded
                && let Err(e) = ledger.observe(job, state, detail).await
            {
                eprintln!("warning: {}", escaped(&e.to_string()));
            }
        }
    };
    match follow {
        Follow::Status => {
            let status = client.status(job).await?;
            let detail = match &status.state {
                JobState::Failed { reason, .. } => Some(reason.clone()),
                _ => None,
            };
            observe(State::of(&status.state), detail).await;
            output.print(
                || json!({ "job": job.to_string(), "status": status }),
                || {
                    format!(
                        "{}: {}",
                        escaped(&job.to_string()),
                        escaped(&describe(&status.state))
                    )
                },
            );
        }
        Follow::Wait(wait) => {
            let ledger = match recorded {
                Some((ledger, _)) => ledger,
                None => session.ledger(choice).await?,
            };
            wait_for(&ledger, client, wait, output).await?;
        }
        Follow::Cancel => {
            client.cancel(job).await?;
            observe(
                State::Cancelled,
                Some("cancelled by `kling cancel`".to_owned()),
            )
            .await;
            output.print(
                || json!({ "job": job.to_string(), "cancelled": true }),
                || format!("{}: cancelled", escaped(&job.to_string())),
            );
        }
    }
    Ok(())
}

/// `wait JOB`: the job's row (recorded now when it was created elsewhere)
/// worked to its result.
async fn wait_for(
    ledger: &Ledger,
    client: &Client,
    wait: WaitRun,
    output: Output,
) -> Result<(), Failure> {
    let named = wait.out.clone().map_or_else(
        || kling_ledger::Output::NamedByJob(".".into()),
        kling_ledger::Output::File,
    );
    let row = ledger
        .adopt(client, &wait.job, named, wait.overwrite)
        .await?;
    if let Some(out) = &wait.out
        && row.output.as_deref() != Some(kling_ledger::absolute(out).as_path())
    {
        ledger.redirect(row.intent, out, wait.overwrite).await?;
    }
    let view = Arc::new(View::default());
    let options = RunOptions::default()
        .timeout(wait.timeout)
        .observer(view.observer());
    let result = ledger.work(client, row.intent, &options).await;
    view.finish();
    Output::done(Some(output), &result?);
    Ok(())
}

fn describe(state: &JobState) -> String {
    match state {
        JobState::Succeeded { outputs, .. } => format!("succeeded: {}", outputs.join(" ")),
        JobState::Failed { reason, refunded } => {
            let refund = match refunded {
                Some(true) => " (refunded)",
                Some(false) => " (not refunded)",
                None => "",
            };
            format!("failed: {reason}{refund}")
        }
        other => other.name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_providers_reason_is_printed_escaped() {
        let state = JobState::Failed {
            reason: "bad\nline\u{1b}[2J".to_owned(),
            refunded: Some(true),
        };
        assert_eq!(
            escaped(&describe(&state)),
            "failed: bad\\nline\\u{1b}[2J (refunded)"
        );
    }
}
